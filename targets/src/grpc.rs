//! The gRPC service: Get/Put on the cache, Proxy to the upstream, server-streaming Watch.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::{broadcast, mpsc};
use tonic::{Request, Response, Status};

use crate::admin::AdminState;
use crate::cache::{self, Cache};
use crate::common::{LeakArgs, LeakMode};
use crate::metrics::{Metrics, OwnedGauge};
use crate::upstream::{self, Upstream};

/// Generated messages and service traits.
pub mod pb {
    tonic::include_proto!("leakgate.target.v1");
}

/// The encoded FileDescriptorSet (reflection, `--write-protoset`).
pub const DESCRIPTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/target_descriptor.bin"));

/// The gRPC target's state.
pub struct GrpcService {
    metrics: Arc<Metrics>,
    cache: Arc<Cache>,
    upstream: Upstream,
    /// Kept alive so Watch producers never see the channel close.
    events: broadcast::Sender<()>,
    leak_tasks: bool,
    task_timeout: Duration,
    leak_bytes: usize,
    delay: Duration,
}

impl GrpcService {
    /// Builds the service for `args`, starting its upstream listener.
    pub async fn new(args: &LeakArgs) -> std::io::Result<Self> {
        let metrics = Arc::new(Metrics::default());
        let up = upstream::start(args.leak_bytes).await?;
        Ok(Self {
            cache: Arc::new(Cache::new(
                args.leak == LeakMode::UnboundedCache,
                args.cache_capacity,
                args.cache_ttl,
            )),
            upstream: Upstream::new(
                up,
                args.leak == LeakMode::UnclosedBodies,
                args.leak_bytes,
                metrics.clone(),
            ),
            events: broadcast::channel(1).0,
            leak_tasks: args.leak == LeakMode::LeakedTasks,
            task_timeout: args.task_timeout,
            leak_bytes: args.leak_bytes,
            delay: args.delay,
            metrics,
        })
    }

    /// The service's counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// State for the admin listener.
    pub fn admin_state(&self) -> Arc<AdminState> {
        Arc::new(AdminState {
            metrics: self.metrics.clone(),
            cache: self.cache.clone(),
        })
    }

    fn served(&self) {
        self.metrics.requests_served.fetch_add(1, Ordering::Relaxed);
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::target_server::Target for Arc<GrpcService> {
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetReply>, Status> {
        self.served();
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let key = req.into_inner().key;
        let before = self.cache.len();
        let v = self
            .cache
            .get_or_insert(&key, || cache::make_value(self.leak_bytes));
        Ok(Response::new(pb::GetReply {
            hit: self.cache.len() == before,
            size: v.len() as u64,
        }))
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutReply>, Status> {
        self.served();
        let r = req.into_inner();
        self.cache.put(&r.key, r.value.into());
        Ok(Response::new(pb::PutReply {}))
    }

    async fn proxy(
        &self,
        _req: Request<pb::ProxyRequest>,
    ) -> Result<Response<pb::ProxyReply>, Status> {
        self.served();
        match self.upstream.call().await {
            Ok(n) => Ok(Response::new(pb::ProxyReply {
                upstream_bytes: n as u64,
            })),
            Err(e) => Err(Status::unavailable(e)),
        }
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        self.served();
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let key = req.into_inner().key;
        let (tx, rx) = mpsc::channel::<Result<pb::WatchEvent, Status>>(4);
        let mut events = self.events.subscribe();
        let gauge = OwnedGauge::new(self.metrics.clone(), |m| &m.open_streams);
        let buffer = vec![0x3u8; self.leak_bytes];
        let (leak, timeout) = (self.leak_tasks, self.task_timeout);
        tokio::spawn(async move {
            let _keep = (gauge, buffer);
            let _ = tx
                .send(Ok(pb::WatchEvent {
                    key: key.clone(),
                    seq: 0,
                }))
                .await;
            if leak {
                // The bug: the producer waits for the next event and never notices the client
                // went away, so it (and what it holds) outlives every abandoned stream.
                let _ = events.recv().await;
            } else {
                tokio::select! {
                    _ = tx.closed() => {}
                    _ = events.recv() => {}
                    _ = tokio::time::sleep(timeout) => {}
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
