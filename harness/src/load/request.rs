//! The request mix, compiled once from the plan: templates, weights, behaviours.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Uri};
use http_body_util::Full;
use rand::Rng;
use rand::rngs::SmallRng;

use super::LoadError;
use super::template::Template;
use crate::scenario::plan::{Behaviour, LoadPlan, Protocol, RequestSpec};

/// One compiled request kind.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Label.
    pub name: String,
    method: Method,
    path: Template,
    headers: Vec<(HeaderName, Template)>,
    body: Option<Template>,
    static_body: Option<Bytes>,
    /// What the client does with the response.
    pub behaviour: Behaviour,
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
    /// Compiles the plan's requests against its base URL.
    pub fn new(plan: &LoadPlan) -> Result<Self, LoadError> {
        let base: Uri = plan
            .base_url
            .parse()
            .map_err(|e| LoadError::Plan(format!("base URL \"{}\": {e}", plan.base_url)))?;
        let scheme = base.scheme_str().unwrap_or("http").to_string();
        let authority = base
            .authority()
            .ok_or_else(|| LoadError::Plan(format!("base URL \"{}\" has no host", plan.base_url)))?
            .to_string();
        let prefix = base.path().trim_end_matches('/').to_string();
        let mut items = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u32;
        for r in &plan.requests {
            items.push(prepare(r)?);
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
            absolute: plan.protocol != Protocol::Http1,
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

    /// The compiled request kind `i`.
    pub fn get(&self, i: usize) -> &Prepared {
        &self.items[i]
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
        p.path.fill(seq, rng, buf);
        let path = if buf.starts_with("http://") || buf.starts_with("https://") {
            buf.clone()
        } else if self.absolute {
            format!("{}://{}{}{}", self.scheme, self.authority, self.prefix, buf)
        } else {
            format!("{}{}", self.prefix, buf)
        };
        let uri: Uri = path.parse().map_err(|e| {
            format!(
                "request \"{}\": path \"{path}\" is not a valid URI: {e}",
                p.name
            )
        })?;
        let body = match (&p.static_body, &p.body) {
            (Some(b), _) => b.clone(),
            (None, Some(t)) => {
                t.fill(seq, rng, buf);
                Bytes::from(buf.clone())
            }
            (None, None) => Bytes::new(),
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
            let v = HeaderValue::from_str(buf)
                .map_err(|e| format!("header {name}: \"{buf}\" is not a valid value: {e}"))?;
            h.append(name.clone(), v);
        }
        Ok(req)
    }
}

fn prepare(r: &RequestSpec) -> Result<Prepared, LoadError> {
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
        headers.push((name, t(v)?));
    }
    let body = r.body.as_deref().map(t).transpose()?;
    let static_body = body
        .as_ref()
        .and_then(|b| b.as_static().map(|s| Bytes::from(s.to_string())));
    Ok(Prepared {
        name: r.name.clone(),
        method,
        path: t(&r.path)?,
        headers,
        body,
        static_body,
        behaviour: r.behaviour.clone(),
    })
}
