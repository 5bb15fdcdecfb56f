//! Flags and start-up shared by both binaries.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Which leak the service has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LeakMode {
    /// No leak: LRU cache with capacity and TTL, upstream bodies drained, tasks tied to the request.
    None,
    /// A global cache keyed by the request's key with no eviction and no TTL.
    UnboundedCache,
    /// Upstream responses kept without being read or dropped: buffers, connections and fds pile up.
    UnclosedBodies,
    /// Each request spawns a task that waits forever on a channel nobody sends on.
    LeakedTasks,
    /// Each `/native` request allocates a buffer with the C library's malloc and never frees it
    /// (rest-target only): RSS grows, jemalloc's statistics do not.
    Native,
}

/// Flags common to both targets.
#[derive(Debug, Clone, Args)]
pub struct LeakArgs {
    /// Leak mode (see the list above).
    #[arg(long, value_enum, default_value = "none")]
    pub leak: LeakMode,
    /// Bytes retained per request by the leaking structure (cache value, upstream body, task
    /// buffer, native buffer).
    #[arg(long, default_value_t = 1024)]
    pub leak_bytes: usize,
    /// Capacity of the fixed (LRU) cache.
    #[arg(long, default_value_t = 10_000)]
    pub cache_capacity: usize,
    /// Time to live of fixed-cache entries.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub cache_ttl: Duration,
    /// How long a fixed-mode task may wait before it gives up.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub task_timeout: Duration,
    /// Extra time every answer waits, like a slow dependency (0: none). Makes a latency
    /// regression on purpose, for testing `leakgate compare`.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub delay: Duration,
    /// Address of the admin listener: /metrics, /healthz, /debug/pprof/heap.
    #[arg(long, default_value = "127.0.0.1:6060")]
    pub admin_listen: SocketAddr,
}

/// The long help listing every mode, for `--help`.
pub const MODES_HELP: &str = "\
LEAK MODES (--leak):
  none             fixed: LRU cache with capacity and TTL, upstream bodies drained, tasks ended
                   by the request's cancellation or --task-timeout
  unbounded-cache  a global cache keyed by the request key, no eviction, no TTL: grows per new key
  unclosed-bodies  upstream responses kept unread: buffers, connections and fds pile up
  leaked-tasks     each request spawns a task waiting forever on a channel nobody sends on
  native           each /native request mallocs a buffer through the C library and never frees
                   it (rest-target only): RSS grows, jemalloc's statistics stay flat";

/// Raises the open-files limit as far as allowed: unclosed bodies hold two fds per request.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let want = libc::rlimit {
            rlim_cur: 1 << 20,
            rlim_max: lim.rlim_max.max(1 << 20),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Prints the `listening NAME=ADDR` line leakgate and the tests wait for, and flushes it.
pub fn announce(name: &str, addr: SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening {name}={addr}");
    let _ = out.flush();
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
