//! The live HTTP endpoints on plain std threads, answering from pages rendered at publish.
//!
//! One accept thread polls the listener every 50 ms so that `stop` is prompt; each connection
//! gets a short-lived thread (see `http`) that reads one request and answers from the pages
//! in force. A request never computes anything: it clones an `Arc` to the pages.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::http::{Pages, handle};
use super::render::Snapshot;

/// How often the accept thread looks at the stop flag, in milliseconds.
const POLL_MS: i32 = 50;
/// Connections handled at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;

/// Why the live endpoints could not start.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The address is not `host:port`, or the host does not resolve.
    #[error(
        "cannot listen on {addr:?}: {reason}; write host:port, e.g. 127.0.0.1:9090 or [::1]:9090"
    )]
    BadAddress {
        /// The address as written.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The address is reachable from other hosts and that was not allowed.
    #[error(
        "refusing to serve on {addr}, which is reachable from other hosts; pass --listen-public to allow it"
    )]
    NotLoopback {
        /// The non-loopback address.
        addr: SocketAddr,
    },
    /// The socket could not be bound (port taken, no permission, address not local).
    #[error("cannot listen on {addr}: {source}; pick another port with --listen")]
    Bind {
        /// The address tried.
        addr: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The accept thread could not be started.
    #[error("cannot start the live endpoints' thread: {0}")]
    Thread(io::Error),
}

/// What the accept thread, the connection threads and the handle share.
struct Shared {
    pages: Mutex<Arc<Pages>>,
    stop: AtomicBool,
    active: AtomicUsize,
}

/// The running endpoints; stopped by [`LiveServer::stop`] or on drop.
pub struct LiveServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

/// Starts serving `/metrics`, `/verdict` and `/healthz` on `addr` (loopback unless
/// `allow_public`), showing an inconclusive verdict until the first [`LiveServer::publish`].
pub fn serve(addr: &str, allow_public: bool) -> Result<LiveServer, LiveError> {
    let candidates = resolve(addr)?;
    if !allow_public && let Some(a) = candidates.iter().find(|a| !a.ip().is_loopback()) {
        return Err(LiveError::NotLoopback { addr: *a });
    }
    let mut failure = None;
    let mut bound = None;
    for a in candidates {
        match TcpListener::bind(a).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
            Ok(l) => {
                bound = Some(l);
                break;
            }
            Err(source) => failure = Some((a, source)),
        }
    }
    let listener = match (bound, failure) {
        (Some(l), _) => l,
        (None, Some((a, source))) => return Err(bind_error(a, source)),
        (None, None) => return Err(bad_address(addr, "it resolves to no address")),
    };
    let local_addr = listener
        .local_addr()
        .map_err(|source| bind_error_text(addr, source))?;
    let shared = Arc::new(Shared {
        pages: Mutex::new(Arc::new(Pages::render(&Snapshot::default()))),
        stop: AtomicBool::new(false),
        active: AtomicUsize::new(0),
    });
    let for_thread = Arc::clone(&shared);
    let thread = thread::Builder::new()
        .name("leakgate-live".into())
        .spawn(move || accept_loop(&listener, &for_thread))
        .map_err(LiveError::Thread)?;
    Ok(LiveServer {
        shared,
        local_addr,
        thread: Some(thread),
    })
}

fn bad_address(addr: &str, reason: &str) -> LiveError {
    LiveError::BadAddress {
        addr: addr.to_string(),
        reason: reason.to_string(),
    }
}

fn bind_error(a: SocketAddr, source: io::Error) -> LiveError {
    bind_error_text(&a.to_string(), source)
}

fn bind_error_text(addr: &str, source: io::Error) -> LiveError {
    LiveError::Bind {
        addr: addr.to_string(),
        source,
    }
}

/// `ip:port` or `[ipv6]:port` as written; `localhost:port` is 127.0.0.1; other names resolve.
fn resolve(addr: &str) -> Result<Vec<SocketAddr>, LiveError> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(bad_address(addr, "there is no port"));
    };
    let Ok(port) = port.parse::<u16>() else {
        return Err(bad_address(
            addr,
            "the port is not a number from 0 to 65535",
        ));
    };
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))]);
    }
    if host.is_empty() {
        return Err(bad_address(addr, "there is no host"));
    }
    match (host, port).to_socket_addrs() {
        Ok(addrs) => Ok(addrs.collect()),
        Err(e) => Err(bad_address(addr, &e.to_string())),
    }
}

impl LiveServer {
    /// Renders both pages from `s` once and swaps them in for every later request.
    pub fn publish(&self, s: &Snapshot) {
        let pages = Arc::new(Pages::render(s));
        let old = {
            let mut current = self
                .shared
                .pages
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *current, pages)
        };
        drop(old);
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, joins the accept thread and frees the port (within about 50 ms).
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Waits up to `timeout_ms` for a connection to be waiting on `listener`.
fn readable(listener: &TcpListener, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one initialised pollfd that outlives the call, and nfds is 1.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    n > 0
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Acquire) {
        if !readable(listener, POLL_MS) {
            continue;
        }
        match listener.accept() {
            Ok((stream, _)) => dispatch(stream, shared),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            // Out of descriptors or similar: back off instead of spinning.
            Err(_) => thread::sleep(Duration::from_millis(POLL_MS.unsigned_abs().into())),
        }
    }
}

/// Counts a connection as active until dropped, wherever its thread ends.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

fn dispatch(stream: TcpStream, shared: &Arc<Shared>) {
    if shared.active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
        shared.active.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let active = Active(Arc::clone(shared));
    // If the thread cannot start, the closure is dropped: the stream closes, the count drops.
    let _ = thread::Builder::new()
        .name("leakgate-live-conn".into())
        .spawn(move || {
            handle(stream, &active.0.pages);
            drop(active);
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_addresses() {
        assert!(matches!(resolve("localhost:9"), Ok(a) if a[0].ip().is_loopback()));
        assert!(matches!(resolve("[::1]:9"), Ok(a) if a[0].ip().is_loopback()));
        assert!(matches!(resolve("9090"), Err(LiveError::BadAddress { .. })));
        assert!(matches!(
            resolve("127.0.0.1:x"),
            Err(LiveError::BadAddress { .. })
        ));
    }
}
