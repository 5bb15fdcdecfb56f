//! Per-request background tasks: leaked (wait forever) or bounded (cancellation + timeout).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, OwnedGauge};

/// Spawns per-request tasks that wait for an event nobody ever sends.
pub struct Waiters {
    /// Kept alive so receivers never see the channel close (that is what makes the wait endless).
    events: broadcast::Sender<()>,
    leak: bool,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Waiters {
    /// `leak`: tasks wait forever; otherwise until `cancel` fires or `timeout` passes.
    pub fn new(leak: bool, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            events: broadcast::channel(1).0,
            leak,
            timeout,
            metrics,
        }
    }

    /// Spawns one task holding `bytes` bytes.
    pub fn spawn(&self, bytes: usize, cancel: CancellationToken) {
        let mut rx = self.events.subscribe();
        let leak = self.leak;
        let timeout = self.timeout;
        let gauge = OwnedGauge::new(self.metrics.clone(), |m| &m.waiting_tasks);
        let buffer = vec![0x7u8; bytes];
        tokio::spawn(async move {
            let _keep = (gauge, buffer);
            if leak {
                // The bug: nothing ties this task to the request that started it.
                let _ = rx.recv().await;
            } else {
                tokio::select! {
                    _ = rx.recv() => {}
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(timeout) => {}
                }
            }
        });
    }
}
