//! The HTTP/2 form of a request kind (REST or gRPC): its fixed head, built once when the mix
//! is compiled, and the few parts filled per request.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use rand::rngs::SmallRng;

use super::super::LoadError;
use super::super::hpack::{self, Field, index};
use super::super::template::Template;
use super::wire::{check_value, invalid_path, parsed_target};

/// A request kind's head for the HTTP/2 client (`h2conn`): HPACK fields and literals.
#[derive(Debug, Clone)]
pub(super) struct H2Head {
    /// The request's name, for errors.
    name: String,
    /// Headers filled per request.
    templated: Vec<(HeaderName, Template)>,
    /// The path template when the path varies.
    path: Option<Template>,
    /// Fixed fields for the HPACK encoder: pseudo-headers, then `headers` when the path is
    /// fixed.
    fields: Vec<Field>,
    /// `headers` as HPACK literals when the path varies: a templated `:path` is a literal,
    /// and pseudo-headers must precede every other field.
    tail: Vec<u8>,
}

/// Where requests go: the base URL's scheme, authority and path prefix.
pub(super) struct Origin<'a> {
    pub scheme: &'a str,
    pub authority: &'a str,
    pub prefix: &'a str,
}

impl H2Head {
    /// The head of a request kind: `method` to `path` (a template, or fixed), `fixed` headers
    /// that come first (gRPC's content type, `te` and deadline), then the scenario's
    /// `headers`. Static values are checked here; a bad one is a plan error naming `name`.
    pub(super) fn new(
        name: &str,
        method: Method,
        path: &Template,
        fixed: HeaderMap,
        headers: &[(HeaderName, Template)],
        origin: &Origin<'_>,
    ) -> Result<Self, LoadError> {
        let mut all = fixed;
        let mut templated = Vec::new();
        for (h, t) in headers {
            match t.as_static() {
                Some(v) => {
                    let v = HeaderValue::from_str(v).map_err(|e| {
                        LoadError::Plan(format!(
                            "request \"{name}\": header {h}: \"{v}\" is not a valid value: {e}"
                        ))
                    })?;
                    all.append(h.clone(), v);
                }
                None => templated.push((h.clone(), t.clone())),
            }
        }
        // The same target rules as the raw HTTP/1.1 path (`wire::parsed_target`).
        let static_path = match path.as_static() {
            Some(p) => {
                let full = format!("{}{p}", origin.prefix);
                let target = parsed_target(name, full.as_bytes()).map_err(LoadError::Plan)?;
                Some(target.unwrap_or(full))
            }
            None => None,
        };
        if let Some(p) = &static_path {
            absolute(origin, p).map_err(|e| LoadError::Plan(invalid_path(name, p, e)))?;
        }
        let mut fields = vec![
            method_field(&method),
            Field::Static(if origin.scheme == "https" {
                index::SCHEME_HTTPS
            } else {
                index::SCHEME_HTTP
            }),
            pair(
                ":authority",
                origin.authority.as_bytes(),
                Some(index::AUTHORITY),
            ),
        ];
        let mut tail = Vec::new();
        match &static_path {
            Some(p) => {
                fields.push(pair(":path", p.as_bytes(), Some(index::PATH)));
                for (h, v) in &all {
                    fields.push(pair(h.as_str(), v.as_bytes(), name_index(h)));
                }
            }
            None => {
                for (h, v) in &all {
                    hpack::literal(
                        &mut tail,
                        name_index(h),
                        h.as_str().as_bytes(),
                        v.as_bytes(),
                    );
                }
            }
        }
        Ok(Self {
            name: name.to_string(),
            templated,
            path: static_path.is_none().then(|| path.clone()),
            fields,
            tail,
        })
    }

    /// The fixed fields for the HPACK encoder (cached per request kind by the encoder).
    pub(super) fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Writes the literals of request `seq` to `block`: a templated path, the fixed headers
    /// that must follow it, the templated headers. Values are checked without allocating.
    pub(super) fn literals(
        &self,
        seq: u64,
        rng: &mut SmallRng,
        buf: &mut String,
        prefix: &str,
        block: &mut Vec<u8>,
    ) -> Result<(), String> {
        block.clear();
        if let Some(t) = &self.path {
            t.fill(seq, rng, buf);
            // The base URL's path first; `buf` is reused, so this does not allocate.
            buf.insert_str(0, prefix);
            let parsed = parsed_target(&self.name, buf.as_bytes())?;
            let target = parsed.as_deref().unwrap_or(buf);
            hpack::literal(block, Some(index::PATH), b":path", target.as_bytes());
            block.extend_from_slice(&self.tail);
        }
        for (name, t) in &self.templated {
            t.fill(seq, rng, buf);
            check_value(name, buf)?;
            hpack::literal(block, None, name.as_str().as_bytes(), buf.as_bytes());
        }
        Ok(())
    }
}

fn absolute(origin: &Origin<'_>, path: &str) -> Result<Uri, http::uri::InvalidUri> {
    format!("{}://{}{path}", origin.scheme, origin.authority).parse()
}

fn method_field(m: &Method) -> Field {
    match *m {
        Method::GET => Field::Static(index::METHOD_GET),
        Method::POST => Field::Static(index::METHOD_POST),
        _ => pair(":method", m.as_str().as_bytes(), Some(index::METHOD_GET)),
    }
}

fn name_index(h: &HeaderName) -> Option<u8> {
    (h == http::header::CONTENT_TYPE).then_some(index::CONTENT_TYPE)
}

fn pair(name: &str, value: &[u8], name_index: Option<u8>) -> Field {
    Field::Pair {
        name: name.as_bytes().to_vec(),
        value: value.to_vec(),
        name_index,
    }
}
