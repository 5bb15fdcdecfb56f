//! A tiny blocking HTTP/1.1 GET for the sampler thread (loopback metrics endpoints).
//!
//! The sampler runs on a plain thread and must never block the load path, so it uses its own
//! short-timeout std socket rather than the load engine's runtime.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest body accepted (a metrics page or a goroutine dump header is far smaller).
const MAX_BODY: usize = 32 << 20;

/// GETs `url` (http only) and returns the body of a 2xx answer.
pub fn get(url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    get_up_to(url, timeout, MAX_BODY)
}

/// [`get`] with another largest body (a goroutine dump is larger than a metrics page); above
/// the default a longer body is an error, not a silently shorter answer.
pub fn get_up_to(url: &str, timeout: Duration, max: usize) -> Result<Vec<u8>, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs can be probed"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .or_else(|| {
            format!("{authority}:80")
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
        })
        .ok_or_else(|| format!("{url}: cannot resolve {authority}"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{url}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: leakgate-probe\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{url}: {e}"))?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| format!("{url}: {e}"))?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer: {:?}", line.trim()))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        r.read_line(&mut line).map_err(|e| format!("{url}: {e}"))?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding")
                && v.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        read_chunked(&mut r, max).map_err(|e| format!("{url}: {e}"))?
    } else {
        let mut body = Vec::new();
        let limit = length.unwrap_or(max).min(max) as u64;
        r.take(limit)
            .read_to_end(&mut body)
            .map_err(|e| format!("{url}: {e}"))?;
        // Metrics pages keep their first MAX_BODY bytes; a larger limit asked for is a dump
        // that must be whole.
        if max > MAX_BODY && length.is_some_and(|l| l > max) {
            return Err(format!("{url}: the body is larger than {max} bytes"));
        }
        body
    };
    if !(200..300).contains(&status) {
        return Err(format!("{url}: HTTP {status}"));
    }
    Ok(body)
}

fn read_chunked(r: &mut impl BufRead, max: usize) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            return Ok(body);
        }
        if body.len() + size > max {
            if max > MAX_BODY {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("the body is larger than {max} bytes"),
                ));
            }
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        line.clear();
        r.read_line(&mut line)?;
    }
}
