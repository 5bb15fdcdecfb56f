//! The request mix, compiled once from the plan: templates, weights, behaviours.
//!
//! Header values and paths are held to hyper's rules (`HeaderValue`, `Uri`) on the raw
//! HTTP/1.1 path too, so a CR, LF or space from the plan never reaches the wire: static ones
//! when the plan is compiled, templated ones per request.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Uri};
use http_body_util::Full;
use rand::Rng;
use rand::rngs::SmallRng;

use super::LoadError;
use super::template::Template;
use crate::scenario::plan::{Behaviour, LoadPlan, Protocol, RequestSpec};
use wire::{check_value, full_path, invalid_path, invalid_value, own_path, write_raw};

mod wire;

/// One compiled request kind.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Label.
    pub name: String,
    method: Method,
    path: Template,
    /// The path was an absolute URL of the base URL's origin: the base URL's path does not
    /// go before it.
    rooted: bool,
    headers: Vec<(HeaderName, Template)>,
    body: Option<Template>,
    static_body: Option<Bytes>,
    /// The URI when the path has no template (built once instead of per request).
    static_uri: Option<Uri>,
    /// The whole HTTP/1.1 request when nothing in it is a template.
    static_raw: Option<Vec<u8>>,
    /// The gRPC method (protocol = grpc).
    grpc: Option<super::grpc::Method>,
    /// The encoded gRPC frame when the JSON body has no template.
    static_frame: Option<Bytes>,
    /// gRPC: the headers that do not vary, built once and cloned per call.
    grpc_head: Option<GrpcHead>,
    /// What the client does with the response.
    pub behaviour: Behaviour,
}

impl Prepared {
    /// True for a HEAD request, whose response never has a body.
    pub fn is_head(&self) -> bool {
        self.method == Method::HEAD
    }

    /// What goes before this request's path: the base URL's path `base`, unless rooted.
    fn prefix<'a>(&self, base: &'a str) -> &'a str {
        if self.rooted { "" } else { base }
    }
}

/// The fixed part of a gRPC call's head and the metadata templates filled per call.
#[derive(Debug, Clone)]
struct GrpcHead {
    uri: Uri,
    headers: http::HeaderMap,
    templated: Vec<(HeaderName, Template)>,
    /// The same fixed fields for the lean client's HPACK encoder (pseudo-headers first).
    fields: Vec<super::hpack::Field>,
}

/// The weighted mix and the origin it is sent to.
#[derive(Debug, Clone)]
pub struct Mix {
    items: Vec<Prepared>,
    cumulative: Vec<u32>,
    total: u32,
    scheme: String,
    authority: String,
    host: HeaderValue,
    prefix: String,
    absolute: bool,
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
        let absolute = plan.protocol != Protocol::Http1;
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
                let uri: Uri = format!("{scheme}://{authority}{}", m.path)
                    .parse()
                    .map_err(|e| LoadError::Plan(format!("request \"{}\": {e}", r.name)))?;
                p.grpc_head = Some(grpc_head(&p, uri, &grpc_timeout)?);
                p.method = Method::POST;
                p.grpc = Some(m);
            } else if let Some(path) = p.path.as_static() {
                let full = full_path(path, absolute, &scheme, &authority, p.prefix(&prefix));
                match full.parse() {
                    Ok(uri) => p.static_uri = Some(uri),
                    Err(e) if plan.protocol != Protocol::Grpc => {
                        return Err(LoadError::Plan(invalid_path(&r.name, &full, e)));
                    }
                    // A gRPC method checked without its descriptors: not a URI path yet.
                    Err(_) => {}
                }
            }
            // Only the lean HTTP/1.1 client sends raw bytes.
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
            host: HeaderValue::from_str(&authority)
                .map_err(|e| LoadError::Plan(format!("host \"{authority}\": {e}")))?,
            scheme,
            authority,
            prefix,
            absolute,
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

    /// The head and length-prefixed message of gRPC call `i` for arrival `seq`: the fixed
    /// headers and a static message are cloned (reference counts, no encoding); only
    /// templates are filled and encoded per call.
    pub fn grpc_call(
        &self,
        i: usize,
        seq: u64,
        rng: &mut SmallRng,
        buf: &mut String,
    ) -> Result<(http::Request<()>, Bytes), String> {
        let (message, head) = self.grpc_message(i, seq, rng, buf)?;
        let mut req = http::Request::new(());
        *req.method_mut() = Method::POST;
        *req.uri_mut() = head.uri.clone();
        *req.headers_mut() = head.headers.clone();
        for (name, t) in &head.templated {
            t.fill(seq, rng, buf);
            let v = HeaderValue::from_str(buf).map_err(|e| invalid_value(name, buf, e))?;
            req.headers_mut().append(name.clone(), v);
        }
        Ok((req, message))
    }

    /// gRPC call `i` for arrival `seq` for the lean h2c client: the length-prefixed message,
    /// the fixed fields, and the templated ones as HPACK literals (written to `block`).
    pub fn grpc_parts(
        &self,
        i: usize,
        seq: u64,
        rng: &mut SmallRng,
        buf: &mut String,
        block: &mut Vec<u8>,
    ) -> Result<(Bytes, &[super::hpack::Field]), String> {
        let (message, head) = self.grpc_message(i, seq, rng, buf)?;
        block.clear();
        for (name, t) in &head.templated {
            t.fill(seq, rng, buf);
            check_value(name, buf)?;
            super::hpack::literal(block, None, name.as_str().as_bytes(), buf.as_bytes());
        }
        Ok((message, &head.fields))
    }

    /// The encoded message of gRPC call `i` and its fixed head.
    fn grpc_message(
        &self,
        i: usize,
        seq: u64,
        rng: &mut SmallRng,
        buf: &mut String,
    ) -> Result<(Bytes, &GrpcHead), String> {
        let p = &self.items[i];
        let (Some(m), Some(head)) = (&p.grpc, &p.grpc_head) else {
            return Err(format!("request \"{}\" is not a gRPC call", p.name));
        };
        let message = match (&p.static_frame, &p.body) {
            (Some(f), _) => f.clone(),
            (None, Some(t)) => {
                t.fill(seq, rng, buf);
                super::grpc::frame(&m.input, buf)?
            }
            (None, None) => super::grpc::frame(&m.input, "")?,
        };
        Ok((message, head))
    }

    /// The compiled request kind `i`.
    pub fn get(&self, i: usize) -> &Prepared {
        &self.items[i]
    }

    /// The raw HTTP/1.1 bytes of request `i` for arrival `seq` (prebuilt when fully static);
    /// a templated header value or path that is not valid gives `build`'s error.
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

    /// Builds request `i` for arrival `seq`; `buf` is scratch space reused across calls.
    pub fn build(
        &self,
        i: usize,
        seq: u64,
        rng: &mut SmallRng,
        buf: &mut String,
    ) -> Result<http::Request<Full<Bytes>>, String> {
        let p = &self.items[i];
        let uri = match &p.static_uri {
            Some(u) => u.clone(),
            None => {
                p.path.fill(seq, rng, buf);
                let path = full_path(
                    buf,
                    self.absolute,
                    &self.scheme,
                    &self.authority,
                    p.prefix(&self.prefix),
                );
                path.parse().map_err(|e| invalid_path(&p.name, &path, e))?
            }
        };
        let body = match (&p.static_body, &p.body) {
            (Some(b), _) => b.clone(),
            (None, Some(t)) => {
                t.fill(seq, rng, buf);
                Bytes::from(buf.clone())
            }
            _ => Bytes::new(),
        };
        let mut req = http::Request::new(Full::new(body));
        *req.method_mut() = p.method.clone();
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        if !self.absolute {
            h.insert(http::header::HOST, self.host.clone());
        }
        for (name, t) in &p.headers {
            t.fill(seq, rng, buf);
            let v = HeaderValue::from_str(buf).map_err(|e| invalid_value(name, buf, e))?;
            h.append(name.clone(), v);
        }
        Ok(req)
    }
}

/// The fixed gRPC headers of `p` (content type, `te`, deadline, static metadata).
fn grpc_head(p: &Prepared, uri: Uri, timeout: &HeaderValue) -> Result<GrpcHead, LoadError> {
    let mut headers = http::HeaderMap::with_capacity(4 + p.headers.len());
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    // The deadline travels with the call, so the server can give up when the client does.
    headers.insert("grpc-timeout", timeout.clone());
    let mut templated = Vec::new();
    for (name, t) in &p.headers {
        match t.as_static() {
            Some(v) => {
                let v = HeaderValue::from_str(v).map_err(|e| {
                    LoadError::Plan(format!(
                        "request \"{}\": header {name}: \"{v}\" is not a valid value: {e}",
                        p.name
                    ))
                })?;
                headers.append(name.clone(), v);
            }
            None => templated.push((name.clone(), t.clone())),
        }
    }
    let fields = hpack_fields(&uri, &headers);
    Ok(GrpcHead {
        uri,
        headers,
        templated,
        fields,
    })
}

/// A gRPC call's fixed fields for HPACK, pseudo-headers first; names by static index where
/// the table has them.
fn hpack_fields(uri: &Uri, headers: &http::HeaderMap) -> Vec<super::hpack::Field> {
    use super::hpack::{Field, index};
    let pair = |name: &str, value: &[u8], name_index| Field::Pair {
        name: name.as_bytes().to_vec(),
        value: value.to_vec(),
        name_index,
    };
    let scheme = if uri.scheme_str() == Some("https") {
        index::SCHEME_HTTPS
    } else {
        index::SCHEME_HTTP
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or("", |a| a.as_str());
    let mut f = vec![
        Field::Static(index::METHOD_POST),
        Field::Static(scheme),
        pair(":path", path.as_bytes(), Some(index::PATH)),
        pair(":authority", authority.as_bytes(), Some(index::AUTHORITY)),
    ];
    for (name, value) in headers {
        let at = (name == http::header::CONTENT_TYPE).then_some(index::CONTENT_TYPE);
        f.push(pair(name.as_str(), value.as_bytes(), at));
    }
    f
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
        static_uri: None,
        static_raw: None,
        grpc: None,
        static_frame: None,
        grpc_head: None,
        behaviour: r.behaviour.clone(),
    })
}
