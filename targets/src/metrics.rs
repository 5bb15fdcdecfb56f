//! Counters and gauges of a target, rendered as Prometheus text on `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Live counters; gauges move both ways.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Accepted client connections currently open.
    pub open_connections: AtomicI64,
    /// Upstream responses currently held (unread or being read).
    pub open_upstream_responses: AtomicI64,
    /// gRPC Watch streams whose producer task is alive.
    pub open_streams: AtomicI64,
    /// Tasks spawned per request that are still waiting.
    pub waiting_tasks: AtomicI64,
    /// Requests served.
    pub requests_served: AtomicU64,
}

/// A guard that increments a gauge now and decrements it when dropped.
pub struct GaugeGuard<'a>(&'a AtomicI64);

impl<'a> GaugeGuard<'a> {
    /// Increments `g` until the guard is dropped.
    pub fn new(g: &'a AtomicI64) -> Self {
        g.fetch_add(1, Ordering::Relaxed);
        Self(g)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An owned gauge guard for tasks that outlive a borrow.
pub struct OwnedGauge(
    pub std::sync::Arc<crate::metrics::Metrics>,
    pub fn(&Metrics) -> &AtomicI64,
);

impl OwnedGauge {
    /// Increments the selected gauge until dropped.
    pub fn new(m: std::sync::Arc<Metrics>, pick: fn(&Metrics) -> &AtomicI64) -> Self {
        pick(&m).fetch_add(1, Ordering::Relaxed);
        Self(m, pick)
    }
}

impl Drop for OwnedGauge {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Renders every metric in the Prometheus text format.
    pub fn render(&self, cache_entries: usize) -> String {
        let mut out = String::with_capacity(2048);
        let mut gauge = |name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        if let Some(rss) = rss_bytes() {
            gauge(
                "process_resident_memory_bytes",
                "Resident set size.",
                rss as f64,
            );
        }
        if let Some(n) = open_fds() {
            gauge("open_fds", "Open file descriptors.", n as f64);
        }
        if let Some((allocated, active, resident)) = jemalloc_stats() {
            gauge(
                "jemalloc_allocated_bytes",
                "Bytes allocated by the application.",
                allocated as f64,
            );
            gauge(
                "jemalloc_active_bytes",
                "Bytes in active pages.",
                active as f64,
            );
            gauge(
                "jemalloc_resident_bytes",
                "Bytes in physically resident pages.",
                resident as f64,
            );
        }
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            gauge(
                "tokio_alive_tasks",
                "Tasks alive in the runtime.",
                h.metrics().num_alive_tasks() as f64,
            );
        }
        let g = |a: &AtomicI64| a.load(Ordering::Relaxed) as f64;
        gauge(
            "open_connections",
            "Accepted client connections currently open.",
            g(&self.open_connections),
        );
        gauge(
            "open_upstream_responses",
            "Upstream responses currently held.",
            g(&self.open_upstream_responses),
        );
        gauge(
            "open_streams",
            "gRPC Watch streams whose producer is alive.",
            g(&self.open_streams),
        );
        gauge(
            "waiting_tasks",
            "Per-request tasks still waiting.",
            g(&self.waiting_tasks),
        );
        gauge(
            "native_buffers",
            "Buffers from the C library's malloc never freed (--leak native).",
            crate::native::LEAKED_BUFFERS.load(Ordering::Relaxed) as f64,
        );
        gauge(
            "cache_entries",
            "Entries in the cache.",
            cache_entries as f64,
        );
        let _ = writeln!(
            out,
            "# HELP requests_served Requests served.\n# TYPE requests_served counter\nrequests_served_total {}",
            self.requests_served.load(Ordering::Relaxed)
        );
        out
    }
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(4096) as u64)
}

fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

fn jemalloc_stats() -> Option<(usize, usize, usize)> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // Statistics are cached until the epoch advances.
    epoch::advance().ok()?;
    Some((
        stats::allocated::read().ok()?,
        stats::active::read().ok()?,
        stats::resident::read().ok()?,
    ))
}
