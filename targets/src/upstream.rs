//! The upstream a proxying handler calls: a second HTTP listener in the same process, and a
//! pooled client whose responses are either drained (fixed) or kept unread (the leak).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::metrics::{Metrics, OwnedGauge};

/// A held upstream response with the gauge that counts it.
type Held = (Response<Incoming>, OwnedGauge);

/// The proxy side: client, upstream address, and the responses the leak keeps.
pub struct Upstream {
    client: Client<HttpConnector, Empty<Bytes>>,
    url: hyper::Uri,
    leak: bool,
    body_len: usize,
    held: Mutex<Vec<Held>>,
    metrics: Arc<Metrics>,
}

/// Starts the upstream listener on 127.0.0.1:0, answering every request with `body_len` bytes.
///
/// The body goes out in two chunks, as a streaming upstream would send it: a client that
/// never reads past the first chunk keeps the connection (and its fds) busy.
pub async fn start(body_len: usize) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let half = body_len / 2;
    let body = (
        Bytes::from(vec![b'u'; half]),
        Bytes::from(vec![b'u'; body_len - half]),
    );
    tokio::spawn(async move {
        loop {
            let (stream, _) = crate::accept::accept(&listener).await;
            let body = body.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let frames = [body.0.clone(), body.1.clone()]
                        .into_iter()
                        .map(|b| Ok::<_, Infallible>(Frame::data(b)));
                    let stream = StreamBody::new(futures_util::stream::iter(frames));
                    async move { Ok::<_, Infallible>(Response::new(stream)) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .http1_only()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

impl Upstream {
    /// A client for the upstream at `addr`; `leak` keeps every response unread.
    pub fn new(addr: SocketAddr, leak: bool, body_len: usize, metrics: Arc<Metrics>) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            client,
            url: format!("http://{addr}/blob")
                .parse()
                .expect("a socket address forms a valid URI"),
            leak,
            body_len,
            held: Mutex::default(),
            metrics,
        }
    }

    /// Calls the upstream once. Returns the number of body bytes the handler saw.
    pub async fn call(&self) -> Result<usize, String> {
        let req = hyper::Request::get(self.url.clone())
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("upstream: {e}"))?;
        let gauge = OwnedGauge::new(self.metrics.clone(), |m| &m.open_upstream_responses);
        if self.leak {
            // The bug: the response is stashed "for later" and never read or dropped, so its
            // connection cannot go back to the pool and its buffers and fds stay held.
            self.held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((resp, gauge));
            Ok(self.body_len)
        } else {
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("upstream body: {e}"))?;
            drop(gauge);
            Ok(body.to_bytes().len())
        }
    }
}
