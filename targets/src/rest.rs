//! The REST service: `/cache/{key}`, `/proxy`, `/task`, `/native`, `/hello`, plus `/healthz` and
//! `/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::cache::{self, Cache};
use crate::common::{LeakArgs, LeakMode};
use crate::metrics::{GaugeGuard, Metrics};
use crate::tasks::Waiters;
use crate::upstream::{self, Upstream};

/// Everything a request handler needs.
pub struct Service {
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The cache.
    pub cache: Arc<Cache>,
    upstream: Upstream,
    waiters: Waiters,
    leak_bytes: usize,
    leak_native: bool,
    delay: Duration,
    admin: Arc<AdminState>,
}

impl Service {
    /// Builds the service for `args`, starting its upstream listener.
    pub async fn new(args: &LeakArgs) -> std::io::Result<Arc<Self>> {
        let metrics = Arc::new(Metrics::default());
        let cache = Arc::new(Cache::new(
            args.leak == LeakMode::UnboundedCache,
            args.cache_capacity,
            args.cache_ttl,
        ));
        let up_addr = upstream::start(args.leak_bytes).await?;
        Ok(Arc::new(Self {
            upstream: Upstream::new(
                up_addr,
                args.leak == LeakMode::UnclosedBodies,
                args.leak_bytes,
                metrics.clone(),
            ),
            waiters: Waiters::new(
                args.leak == LeakMode::LeakedTasks,
                args.task_timeout,
                metrics.clone(),
            ),
            leak_bytes: args.leak_bytes,
            leak_native: args.leak == LeakMode::Native,
            delay: args.delay,
            admin: Arc::new(AdminState {
                metrics: metrics.clone(),
                cache: cache.clone(),
            }),
            metrics,
            cache,
        }))
    }

    /// State for the admin listener.
    pub fn admin_state(&self) -> Arc<AdminState> {
        self.admin.clone()
    }

    async fn handle(&self, path: &str, conn: &CancellationToken) -> Response<Full<Bytes>> {
        self.metrics.requests_served.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = admin::answer(path, &self.admin).await {
            return r;
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if let Some(key) = path.strip_prefix("/cache/") {
            let v = self
                .cache
                .get_or_insert(key, || cache::make_value(self.leak_bytes));
            return text(StatusCode::OK, format!("{} bytes\n", v.len()));
        }
        match path {
            "/hello" => text(StatusCode::OK, "hello, world\n".into()),
            "/proxy" => match self.upstream.call().await {
                Ok(n) => text(StatusCode::OK, format!("upstream sent {n} bytes\n")),
                Err(e) => text(StatusCode::BAD_GATEWAY, format!("{e}\n")),
            },
            "/native" => {
                if crate::native::leak_native_buffer(self.leak_bytes, self.leak_native) {
                    text(
                        StatusCode::OK,
                        format!("{} native bytes\n", self.leak_bytes),
                    )
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "malloc failed\n".into())
                }
            }
            "/task" => {
                self.waiters.spawn(self.leak_bytes, conn.child_token());
                text(StatusCode::ACCEPTED, "task started\n".into())
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

/// Serves HTTP/1.1 and h2c on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    svc: Arc<Service>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer): (_, SocketAddr) = tokio::select! {
            _ = &mut shutdown => return,
            // Out of fds or similar: waits, serving the connections we have.
            accepted = crate::accept::accept(&listener) => accepted,
        };
        let _ = stream.set_nodelay(true);
        let svc = svc.clone();
        tokio::spawn(async move {
            let _open = GaugeGuard::new(&svc.metrics.open_connections);
            // Cancelled when the client connection ends: what a fixed task is tied to.
            let conn = CancellationToken::new();
            let _cancel_on_close = conn.clone().drop_guard();
            let s = svc.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let s = s.clone();
                let conn = conn.clone();
                async move { Ok::<_, Infallible>(s.handle(req.uri().path(), &conn).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
