//! A request's target and header values as they go on the wire: the raw HTTP/1.1 bytes, the
//! target of an absolute URL in the plan, and the rules of hyper's `HeaderValue` and `Uri`
//! checked without building either in the common case.

use std::borrow::Cow;

use http::uri::Authority;
use http::{HeaderName, HeaderValue, Method, Uri};
use rand::rngs::SmallRng;

use super::Prepared;

/// The error for a templated header value that is not a valid one.
pub(super) fn invalid_value(
    name: &HeaderName,
    value: &str,
    e: http::header::InvalidHeaderValue,
) -> String {
    format!("header {name}: \"{value}\" is not a valid value: {e}")
}

/// The error for a request target that is not a valid URI.
pub(super) fn invalid_path(request: &str, path: &str, e: http::uri::InvalidUri) -> String {
    format!("request \"{request}\": path \"{path}\" is not a valid URI: {e}")
}

/// Checks `value` by the rule of `HeaderValue::from_str` without building one; only a bad
/// value is built, for its error.
pub(super) fn check_value(name: &HeaderName, value: &str) -> Result<(), String> {
    if !value.bytes().all(|b| (b >= 32 && b != 127) || b == b'\t') {
        HeaderValue::from_str(value).map_err(|e| invalid_value(name, value, e))?;
    }
    Ok(())
}

/// True for a byte `Uri` takes as is in a path and in a query alike (not `#`, which starts
/// a fragment `Uri` drops).
fn plain_target_byte(b: u8) -> bool {
    matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x5F | 0x61..=0x7E)
}

/// Serialises one HTTP/1.1 request (origin-form target, Host, Content-Length) into `out`;
/// a path or header value `build` would refuse gives its error, and nothing is sent.
pub(super) fn write_raw(
    p: &Prepared,
    seq: u64,
    rng: &mut SmallRng,
    buf: &mut String,
    prefix: &str,
    authority: &str,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    use std::io::Write;
    out.clear();
    p.path.fill(seq, rng, buf);
    let _ = write!(out, "{} ", p.method);
    let at = out.len();
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(buf.as_bytes());
    if let Some(t) = parsed_target(&p.name, &out[at..])? {
        out.truncate(at);
        out.extend_from_slice(t.as_bytes());
    }
    let _ = write!(out, " HTTP/1.1\r\nHost: {authority}\r\n");
    for (name, t) in &p.headers {
        t.fill(seq, rng, buf);
        check_value(name, buf)?;
        let _ = write!(out, "{name}: {buf}\r\n");
    }
    let body: &[u8] = match (&p.static_body, &p.body) {
        (Some(b), _) => b,
        (None, Some(t)) => {
            t.fill(seq, rng, buf);
            buf.as_bytes()
        }
        (None, None) => b"",
    };
    if !body.is_empty() || !matches!(p.method, Method::GET | Method::HEAD) {
        let _ = write!(out, "content-length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Ok(())
}

/// A request target (`prefix` and path, origin-form) by `Uri`'s rules, for every client:
/// `None` when it goes out as it is, which is the common case, checked without parsing or
/// allocating (`Uri`'s length limit and first byte, and bytes it takes as they are); else the
/// target as `Uri` parses it, or its error naming `request`.
pub(super) fn parsed_target(request: &str, target: &[u8]) -> Result<Option<String>, String> {
    let plain = target.len() < usize::from(u16::MAX)
        && target.first() == Some(&b'/')
        && target.iter().all(|&b| plain_target_byte(b));
    if plain {
        return Ok(None);
    }
    // Built from `&str` pieces, so always UTF-8.
    let full = String::from_utf8_lossy(target);
    let uri: Uri = full.parse().map_err(|e| invalid_path(request, &full, e))?;
    Ok(Some(uri.to_string()))
}

/// The path to compile for the plan's `path`, and whether it is rooted: an absolute URL of
/// the base URL's origin (`scheme`, `origin`) is sent as it is, without the base URL's path;
/// one of another origin cannot be sent, since every connection goes to the base URL's.
pub(super) fn own_path<'a>(
    path: &'a str,
    scheme: &str,
    origin: &Authority,
) -> Result<(Cow<'a, str>, bool), String> {
    let absolute = path
        .split_once("://")
        .filter(|(s, _)| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
    let Some((s, rest)) = absolute else {
        return Ok((Cow::from(path), false));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let port = |a: &Authority, scheme: &str| {
        let default = if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            80
        };
        a.port_u16().unwrap_or(default)
    };
    let same = s.eq_ignore_ascii_case(scheme)
        && authority.parse::<Authority>().is_ok_and(|a| {
            a.host().eq_ignore_ascii_case(origin.host()) && port(&a, s) == port(origin, scheme)
        });
    if !same {
        return Err(format!(
            "path \"{path}\" names another origin than the base URL's ({scheme}://{origin}): \
             every connection goes to the base URL's origin; give a path, or a URL of that \
             origin"
        ));
    }
    // `http://host` and `http://host?q` name the root.
    if tail.starts_with('/') {
        Ok((Cow::from(tail), true))
    } else {
        Ok((Cow::from(format!("/{tail}")), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick check of `write_raw` never passes a target `build` would refuse or change.
    #[test]
    fn plain_target_bytes_are_taken_by_uri_as_they_are() {
        for b in (0..=255u8).filter(|&b| plain_target_byte(b)) {
            for target in [vec![b'/', b], vec![b'/', b'?', b]] {
                let text = String::from_utf8(target).unwrap();
                let uri: Uri = text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"));
                assert_eq!(uri.to_string(), text);
            }
        }
    }
}
