//! A real HTTP server for tests, on 127.0.0.1 port 0, with counters the tests assert on.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use leakgate::scenario::plan::*;

/// Counters kept by the test server.
#[derive(Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    /// Connections the server is done with (closed by either side); what a handler was
    /// producing for one stops there.
    pub closed: AtomicU64,
    pub requests: AtomicU64,
    /// Requests per connection, in the order the connections were accepted.
    pub per_connection: std::sync::Mutex<Vec<Arc<AtomicU64>>>,
    /// Bytes of `/big` bodies handed to hyper (stops growing when the client stops reading).
    pub big_bytes_yielded: AtomicU64,
    /// `/big` bodies produced to their last byte.
    pub big_completed: AtomicU64,
    /// Handlers of `/slow` dropped before they answered (the client went away).
    pub cancelled: AtomicU64,
    stalled: AtomicBool,
    pause_until: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// A running test server.
pub struct Server {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    _rt: std::thread::JoinHandle<()>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// Starts the server on its own thread and runtime (so the driver under test runs apart).
pub fn start() -> Server {
    let counters = Arc::new(Counters::default());
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let c = counters.clone();
    let rt = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            let start = tokio::time::Instant::now();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                c.accepted.fetch_add(1, Ordering::SeqCst);
                let mine = Arc::new(AtomicU64::new(0));
                c.per_connection.lock().unwrap().push(mine.clone());
                let c = c.clone();
                let c2 = c.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        mine.fetch_add(1, Ordering::SeqCst);
                        handle(req, c.clone(), start)
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                    c2.closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
    });
    Server {
        addr,
        counters,
        _rt: rt,
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(b.into()).boxed()
}

struct DropGuard(Arc<Counters>, bool);
impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    c: Arc<Counters>,
    start: tokio::time::Instant,
) -> Result<Response<Body>, Infallible> {
    c.requests.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    let body = match path.as_str() {
        "/small" => full("hello, world\n"),
        // `?chunks=N` x 16 KiB (default 256: 4 MiB), counting what hyper pulls from the stream.
        "/big" => {
            let n: u64 = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("chunks="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(256);
            let c2 = c.clone();
            let chunks = futures_util::stream::iter(0..n).map(move |i| {
                c2.big_bytes_yielded.fetch_add(16384, Ordering::SeqCst);
                if i + 1 == n {
                    c2.big_completed.fetch_add(1, Ordering::SeqCst);
                }
                Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; 16384])))
            });
            BodyExt::boxed(StreamBody::new(chunks))
        }
        // Stalls every request for 1 s, once, 2 s after the server started (a GC pause).
        "/stall" => {
            let now = tokio::time::Instant::now();
            if now >= start + Duration::from_secs(2) && !c.stalled.swap(true, Ordering::SeqCst) {
                *c.pause_until.lock().unwrap() = Some(now + Duration::from_secs(1));
            }
            let until = *c.pause_until.lock().unwrap();
            if let Some(u) = until {
                tokio::time::sleep_until(u).await;
            }
            full("ok")
        }
        // Answers after 5 s; counts handlers dropped before that (client cancelled).
        "/slow" => {
            let mut g = DropGuard(c.clone(), false);
            tokio::time::sleep(Duration::from_secs(5)).await;
            g.1 = true;
            full("late")
        }
        "/echo" => {
            let b = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            full(b)
        }
        _ => full("not found"),
    };
    Ok(Response::new(body))
}

use futures_util::StreamExt;

/// A load plan against `base` with one request kind.
pub fn plan(base: &str, path: &str, rate: Rate, secs: f64, connections: usize) -> LoadPlan {
    LoadPlan {
        protocol: Protocol::Http1,
        base_url: base.to_string(),
        connections,
        streams_per_connection: 1,
        threads: Some(1),
        phases: vec![Phase {
            kind: PhaseKind::Steady,
            duration: Duration::from_secs_f64(secs),
            rate,
        }],
        arrivals: Arrivals::Uniform,
        requests: vec![RequestSpec {
            name: "r".into(),
            weight: 1,
            method: "GET".into(),
            path: path.into(),
            headers: vec![],
            body: None,
            behaviour: Behaviour::default(),
        }],
        max_queue: 100_000,
        timeout: Duration::from_secs(10),
        rate_tolerance: 0.01,
        window: Duration::from_secs(1),
        insecure: false,
        grpc: None,
        seed: Some(1),
        shard: None,
    }
}

/// Runs a load plan, collecting its windows.
pub fn run(plan: &LoadPlan) -> (leakgate::record::LoadReport, Vec<leakgate::record::Window>) {
    let windows = Arc::new(std::sync::Mutex::new(Vec::new()));
    let w = windows.clone();
    let ctx = leakgate::load::LoadContext {
        cancel: tokio_util::sync::CancellationToken::new(),
        completed: Arc::new(AtomicU64::new(0)),
        on_window: Box::new(move |x| w.lock().unwrap().push(x.clone())),
    };
    let report = leakgate::load::run(plan, ctx).expect("load runs");
    let windows = windows.lock().unwrap().clone();
    (report, windows)
}
