//! The request mix, compiled once from the plan: templates, weights, behaviours, and each
//! request kind in the form its client sends (raw HTTP/1.1 bytes, or an HTTP/2 head).
//!
//! Header values and paths are held to hyper's rules (`HeaderValue`, `Uri`) on every path, so
//! a CR, LF or space from the plan never reaches the wire: static ones when the plan is
//! compiled, templated ones per request.

mod h2head;
mod wire;

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use rand::Rng;
use rand::rngs::SmallRng;

use super::LoadError;
use super::template::Template;
use crate::scenario::plan::{Behaviour, LoadPlan, Protocol, RequestSpec};
use h2head::{H2Head, Origin};
use wire::{invalid_value, own_path, parsed_target, write_raw};

/// One compiled request kind.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Label.
    pub name: String,
    method: Method,
    path: Template,
    /// The path is an absolute URL of the base URL's origin: sent without the base path.
    rooted: bool,
    headers: Vec<(HeaderName, Template)>,
    body: Option<Template>,
    static_body: Option<Bytes>,
    /// The whole HTTP/1.1 request when nothing in it is a template.
    static_raw: Option<Vec<u8>>,
    /// The gRPC method (protocol = grpc).
    grpc: Option<super::grpc::Method>,
    /// The encoded gRPC frame when the JSON body has no template.
    static_frame: Option<Bytes>,
    /// HTTP/2 (REST and gRPC): the head, its fixed parts built once.
    h2: Option<H2Head>,
    /// What the client does with the response.
    pub behaviour: Behaviour,
}

impl Prepared {
    /// True for a gRPC call.
    pub fn is_grpc(&self) -> bool {
        self.grpc.is_some()
    }

    /// True for a HEAD request, whose response never has a body.
    pub fn is_head(&self) -> bool {
        self.method == Method::HEAD
    }

    /// What goes before this request's path: the base URL's path `base`, unless rooted.
    fn prefix<'a>(&self, base: &'a str) -> &'a str {
        if self.rooted { "" } else { base }
    }
}

/// The weighted mix and the origin it is sent to.
#[derive(Debug, Clone)]
pub struct Mix {
    items: Vec<Prepared>,
    cumulative: Vec<u32>,
    total: u32,
    authority: String,
    prefix: String,
}

impl Mix {
    /// Compiles the plan's requests against its base URL (gRPC methods from `pool`).
    pub fn new(
        plan: &LoadPlan,
        pool: Option<&prost_reflect::DescriptorPool>,
    ) -> Result<Self, LoadError> {
        let base: Uri = plan
            .base_url
            .parse()
            .map_err(|e| LoadError::Plan(format!("base URL \"{}\": {e}", plan.base_url)))?;
        let scheme = base.scheme_str().unwrap_or("http").to_string();
        let origin = base.authority().ok_or_else(|| {
            LoadError::Plan(format!("base URL \"{}\" has no host", plan.base_url))
        })?;
        let authority = origin.to_string();
        let prefix = base.path().trim_end_matches('/').to_string();
        let mut items = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u32;
        let grpc_timeout = HeaderValue::from_str(&format!(
            "{}m",
            plan.timeout.as_millis().clamp(1, 99_999_999)
        ))
        .unwrap_or(HeaderValue::from_static("10000m"));
        for r in &plan.requests {
            let (path, rooted) = match plan.protocol {
                // A gRPC method name, not a URL.
                Protocol::Grpc => (Cow::from(r.path.as_str()), false),
                _ => own_path(&r.path, &scheme, origin)
                    .map_err(|e| LoadError::Plan(format!("request \"{}\": {e}", r.name)))?,
            };
            let mut p = prepare(r, &path)?;
            p.rooted = rooted;
            if let Some(pool) = pool {
                let m = super::grpc::method(pool, &r.path)?;
                // Encode once now: a body that does not fit the message fails before the run.
                let mut buf = String::new();
                let mut rng = rand::SeedableRng::seed_from_u64(0);
                let json = match &p.body {
                    Some(t) => {
                        t.fill(0, &mut rng, &mut buf);
                        buf.clone()
                    }
                    None => String::new(),
                };
                let frame = super::grpc::frame(&m.input, &json)
                    .map_err(|e| LoadError::Plan(format!("request \"{}\": {e}", r.name)))?;
                if p.body.as_ref().is_none_or(|b| b.as_static().is_some()) {
                    p.static_frame = Some(frame);
                }
                // The method's path replaces the base URL's.
                let origin = Origin {
                    scheme: &scheme,
                    authority: &authority,
                    prefix: "",
                };
                p.method = Method::POST;
                p.h2 = Some(H2Head::new(
                    &r.name,
                    Method::POST,
                    &Template::compile(&m.path).map_err(|e| LoadError::Plan(e.to_string()))?,
                    grpc_headers(&grpc_timeout),
                    &p.headers,
                    &origin,
                )?);
                p.grpc = Some(m);
            } else if plan.protocol == Protocol::Http2 {
                let origin = Origin {
                    scheme: &scheme,
                    authority: &authority,
                    prefix: p.prefix(&prefix),
                };
                p.h2 = Some(H2Head::new(
                    &r.name,
                    p.method.clone(),
                    &p.path,
                    HeaderMap::new(),
                    &p.headers,
                    &origin,
                )?);
            } else if plan.protocol == Protocol::Http1
                && let Some(path) = p.path.as_static()
            {
                // (A gRPC plan checked without its descriptors gets its head at run time.)
                let full = format!("{}{path}", p.prefix(&prefix));
                parsed_target(&r.name, full.as_bytes()).map_err(LoadError::Plan)?;
            }
            // Only the own HTTP/1.1 client sends raw bytes.
            let fixed = plan.protocol == Protocol::Http1
                && p.path.as_static().is_some()
                && p.headers.iter().all(|(_, t)| t.as_static().is_some())
                && p.body.as_ref().is_none_or(|b| b.as_static().is_some());
            if fixed {
                // Nothing varies: the bytes on the wire are built once.
                let mut raw = Vec::new();
                let mut rng = rand::SeedableRng::seed_from_u64(0);
                write_raw(
                    &p,
                    0,
                    &mut rng,
                    &mut String::new(),
                    p.prefix(&prefix),
                    &authority,
                    &mut raw,
                )
                .map_err(LoadError::Plan)?;
                p.static_raw = Some(raw);
            }
            items.push(p);
            total = total.saturating_add(r.weight.max(1));
            cumulative.push(total);
        }
        if items.is_empty() {
            return Err(LoadError::Plan("the request mix is empty".into()));
        }
        Ok(Self {
            items,
            cumulative,
            total,
            authority,
            prefix,
        })
    }

    /// Picks a request kind by weight.
    pub fn pick(&self, rng: &mut SmallRng) -> usize {
        if self.items.len() == 1 {
            return 0;
        }
        let x = rng.random_range(0..self.total);
        self.cumulative.partition_point(|&c| c <= x)
    }

    /// True when the mix sends gRPC calls.
    pub fn is_grpc(&self) -> bool {
        self.items.iter().any(|p| p.grpc.is_some())
    }

    /// Request `i` for arrival `seq` for the own HTTP/2 client: its body (for gRPC the
    /// length-prefixed message), its fixed fields, and the rest as HPACK literals (written to
    /// `block`).
    pub fn h2_parts(
        &self,
        i: usize,
        seq: u64,
        rng: &mut SmallRng,
        buf: &mut String,
        block: &mut Vec<u8>,
    ) -> Result<(Bytes, &[super::hpack::Field]), String> {
        let body = self.body(i, seq, rng, buf)?;
        let head = self.h2_head(i)?;
        head.literals(seq, rng, buf, self.items[i].prefix(&self.prefix), block)?;
        Ok((body, head.fields()))
    }

    fn h2_head(&self, i: usize) -> Result<&H2Head, String> {
        let p = &self.items[i];
        p.h2.as_ref()
            .ok_or_else(|| format!("request \"{}\" has no HTTP/2 form", p.name))
    }

    /// The body of request `i` for arrival `seq`: a gRPC call's length-prefixed message, or
    /// the REST body (shared when it has no template).
    fn body(
        &self,
        i: usize,
        seq: u64,
        rng: &mut SmallRng,
        buf: &mut String,
    ) -> Result<Bytes, String> {
        let p = &self.items[i];
        if let Some(m) = &p.grpc {
            return match (&p.static_frame, &p.body) {
                (Some(f), _) => Ok(f.clone()),
                (None, Some(t)) => {
                    t.fill(seq, rng, buf);
                    super::grpc::frame(&m.input, buf)
                }
                (None, None) => super::grpc::frame(&m.input, ""),
            };
        }
        Ok(match (&p.static_body, &p.body) {
            (Some(b), _) => b.clone(),
            (None, Some(t)) => {
                t.fill(seq, rng, buf);
                Bytes::copy_from_slice(buf.as_bytes())
            }
            _ => Bytes::new(),
        })
    }

    /// The compiled request kind `i`.
    pub fn get(&self, i: usize) -> &Prepared {
        &self.items[i]
    }

    /// The raw HTTP/1.1 bytes of request `i` for arrival `seq` (prebuilt when fully static).
    pub fn raw<'a>(
        &'a self,
        i: usize,
        seq: u64,
        rng: &mut SmallRng,
        buf: &mut String,
        out: &'a mut Vec<u8>,
    ) -> Result<&'a [u8], String> {
        let p = &self.items[i];
        if let Some(r) = &p.static_raw {
            return Ok(r);
        }
        write_raw(
            p,
            seq,
            rng,
            buf,
            p.prefix(&self.prefix),
            &self.authority,
            out,
        )?;
        Ok(out)
    }
}

/// The headers every gRPC call carries first: content type, `te`, and the deadline (so the
/// server can give up when the client does).
fn grpc_headers(timeout: &HeaderValue) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(3);
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(http::header::TE, HeaderValue::from_static("trailers"));
    h.insert("grpc-timeout", timeout.clone());
    h
}

fn prepare(r: &RequestSpec, path: &str) -> Result<Prepared, LoadError> {
    let t = |text: &str| {
        Template::compile(text).map_err(|e| LoadError::Plan(format!("request \"{}\": {e}", r.name)))
    };
    let method = Method::from_bytes(r.method.as_bytes()).map_err(|_| {
        LoadError::Plan(format!(
            "request \"{}\": bad method \"{}\"",
            r.name, r.method
        ))
    })?;
    let mut headers = Vec::new();
    for (k, v) in &r.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            LoadError::Plan(format!("request \"{}\": bad header name \"{k}\"", r.name))
        })?;
        let value = t(v)?;
        if let Some(v) = value.as_static() {
            HeaderValue::from_str(v).map_err(|e| {
                LoadError::Plan(format!(
                    "request \"{}\": {}",
                    r.name,
                    invalid_value(&name, v, e)
                ))
            })?;
        }
        headers.push((name, value));
    }
    let body = r.body.as_deref().map(t).transpose()?;
    let static_body = body
        .as_ref()
        .and_then(|b| b.as_static().map(|s| Bytes::from(s.to_string())));
    Ok(Prepared {
        name: r.name.clone(),
        method,
        path: t(path)?,
        rooted: false,
        headers,
        body,
        static_body,
        static_raw: None,
        grpc: None,
        static_frame: None,
        h2: None,
        behaviour: r.behaviour.clone(),
    })
}
