//! Accepting connections without spinning when the process is out of file descriptors.
//!
//! `accept` fails with EMFILE or ENFILE for as long as a connection waits in the backlog and no
//! fd is free, which is the end state of the unclosed-bodies leak; a loop that retries at once
//! burns a core and starves the rest of the process. Like hyper's and axum's serve loops, the
//! loops here pause after such an error and retry at once only after an error that belongs to
//! one connection (it left the queue with its error).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::Stream;
use tokio::net::{TcpListener, TcpStream};

/// Pause after an accept error that would repeat at once (no fd, no buffer, no memory).
pub const BACKOFF: Duration = Duration::from_millis(50);

/// Accepts the next connection, waiting out errors that are not one connection's.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) if one_connections(&e) => {}
            Err(_) => tokio::time::sleep(BACKOFF).await,
        }
    }
}

/// The accepted sockets of `listener` as a stream, for servers that take one (tonic retries a
/// failed accept at once, so errors are waited out here and never reach it).
pub fn incoming(listener: TcpListener) -> impl Stream<Item = io::Result<TcpStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let (stream, _) = accept(&listener).await;
        Some((Ok(stream), listener))
    })
}

/// An error of the connection being accepted, which the next accept does not meet again.
fn one_connections(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}
