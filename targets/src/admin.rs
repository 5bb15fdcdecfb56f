//! The admin listener: `/metrics`, `/healthz`, `/debug/pprof/heap` (as Go services expose them).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::cache::Cache;
use crate::metrics::Metrics;

/// What the admin endpoints read.
pub struct AdminState {
    /// The service's counters.
    pub metrics: Arc<Metrics>,
    /// The cache (for `cache_entries`).
    pub cache: Arc<Cache>,
}

/// Binds the admin listener and serves it in the background; returns the bound address.
pub async fn serve(addr: SocketAddr, state: Arc<AdminState>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (stream, _) = crate::accept::accept(&listener).await;
            let state = state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(req, state.clone()));
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(local)
}

/// Answers an admin path, or `None` when the path is not an admin one.
pub async fn answer(path: &str, state: &AdminState) -> Option<Response<Full<Bytes>>> {
    Some(match path {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/metrics" => {
            let mut r = text(StatusCode::OK, state.metrics.render(state.cache.len()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        "/debug/pprof/heap" => heap_profile().await,
        _ => return None,
    })
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    state: Arc<AdminState>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(answer(req.uri().path(), &state)
        .await
        .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "not found\n".into())))
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

async fn heap_profile() -> Response<Full<Bytes>> {
    let Some(ctl) = jemalloc_pprof::PROF_CTL.as_ref() else {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "jemalloc profiling is not enabled\n".into(),
        );
    };
    let mut ctl = ctl.lock().await;
    if !ctl.activated() {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "jemalloc profiling is not active\n".into(),
        );
    }
    match ctl.dump_pprof() {
        Ok(pprof) => {
            let mut r = Response::new(Full::new(Bytes::from(pprof)));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/octet-stream"),
            );
            r
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("heap profile failed: {e}\n"),
        ),
    }
}
