//! HTTP/2 connections shared by several streams at a time (`streams_per_connection > 1`),
//! REST or gRPC, on the `h2` crate (h2c and TLS).
//!
//! hyper's HTTP/2 client hands each request through a channel to its connection task and pipes
//! the body from a second task, so HEADERS and DATA leave in two writes (two packets the
//! server must read) and every request pays for the hand-offs. Here the calling task opens the
//! stream and queues HEADERS and the whole body before the connection task runs, so both go
//! out in one write; the response is read straight from h2's stream. The crate keeps to the
//! server's SETTINGS_MAX_CONCURRENT_STREAMS: a slot waits for a free stream.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};

use super::conn::{Exchange, Io, done, failed};
use super::grpc::FrameCounter;
use super::h2wire::{CONNECTION_WINDOW, STREAM_WINDOW};
use super::stats::{ErrorKind, Outcome, StreamStats};

/// One HTTP/2 connection; clones share it (one per stream slot).
pub struct H2Mux {
    send: SendRequest<Bytes>,
    /// Set when the connection task ends (peer closed, GOAWAY, I/O error).
    closed: Arc<AtomicBool>,
    /// The last call's stream, ended cleanly. Dropping the last handle on a closed h2
    /// stream wakes the connection task to clean it up; dropping it right after the next
    /// call is queued folds that wake-up into the one the new call needs anyway.
    parked: Option<(RecvStream, SendStream<Bytes>)>,
}

impl Clone for H2Mux {
    fn clone(&self) -> Self {
        Self {
            send: self.send.clone(),
            closed: self.closed.clone(),
            parked: None,
        }
    }
}

impl H2Mux {
    /// Completes the HTTP/2 handshake on `io` (TCP or TLS) and spawns the connection task;
    /// must run on a `LocalSet` (the engine's workers do).
    pub async fn handshake(io: Io) -> Result<Self, ErrorKind> {
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|_| ErrorKind::Connect)?;
        let closed = Arc::new(AtomicBool::new(false));
        let flag = closed.clone();
        // On the worker's LocalSet, next to the calls: waking each other stays on one queue.
        tokio::task::spawn_local(async move {
            let _ = conn.await;
            flag.store(true, Ordering::Release);
        });
        Ok(Self {
            send,
            closed,
            parked: None,
        })
    }

    /// False once the connection is gone.
    pub fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// Sends one request (`head`, then `body`: for gRPC the length-prefixed message) and
    /// reads its response; stops after `abandon_after` response messages (gRPC) or body bytes
    /// (REST) if set (dropping the stream resets it, as a client that goes away does). The
    /// outcome is the `grpc-status` code of a gRPC call, the HTTP status of a REST exchange.
    pub async fn send(
        &mut self,
        head: http::Request<()>,
        body: Bytes,
        grpc: bool,
        abandon_after: Option<u64>,
        stream: &mut StreamStats,
    ) -> Exchange {
        let previous = self.parked.take();
        if poll_fn(|cx| self.send.poll_ready(cx)).await.is_err() {
            // The connection refuses new streams (GOAWAY, closed): the next call reconnects
            // instead of trying it again while its task drains.
            self.closed.store(true, Ordering::Release);
            return failed(ErrorKind::Reset);
        }
        let end = body.is_empty();
        let (response, mut body_tx) = match self.send.send_request(head, end) {
            Ok(x) => x,
            Err(e) => {
                if e.is_go_away() || e.is_io() {
                    self.closed.store(true, Ordering::Release);
                }
                return failed(classify(&e));
            }
        };
        if !end && let Err(e) = body_tx.send_data(body, true) {
            return failed(classify(&e));
        }
        drop(previous);
        let response = match response.await {
            Ok(r) => r,
            Err(e) => return failed(classify(&e)),
        };
        let status = response.status().as_u16();
        if grpc && status != 200 {
            return done(Outcome::Http(status), 0);
        }
        // A gRPC trailers-only answer carries the status in the headers.
        let mut code = if grpc {
            status_of(response.headers())
        } else {
            None
        };
        let mut body = response.into_body();
        let mut counter = FrameCounter::default();
        let mut bytes = 0u64;
        while let Some(chunk) = body.data().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => return done(Outcome::Error(classify(&e)), bytes),
            };
            // Hand the window back at once: the data is consumed here.
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes += chunk.len() as u64;
            // Enough read: gRPC counts response messages, REST body bytes.
            let read = if grpc {
                counter.feed(&chunk);
                stream.messages = counter.messages;
                if counter.messages > 0 && stream.first_at.is_none() {
                    stream.first_at = Some(tokio::time::Instant::now());
                }
                counter.messages
            } else {
                bytes
            };
            if abandon_after.is_some_and(|n| read >= n) {
                let outcome = if grpc {
                    Outcome::Grpc(0)
                } else {
                    Outcome::Http(status)
                };
                return done(outcome, bytes);
            }
        }
        match body.trailers().await {
            Ok(Some(t)) if grpc => code = status_of(&t).or(code),
            Ok(_) => {}
            Err(e) => return done(Outcome::Error(classify(&e)), bytes),
        }
        // Both directions have ended: keeping the handles sends nothing and holds no window.
        self.parked = Some((body, body_tx));
        let outcome = if grpc {
            code.map_or(Outcome::Error(ErrorKind::Protocol), Outcome::Grpc)
        } else {
            Outcome::Http(status)
        };
        done(outcome, bytes)
    }
}

fn status_of(h: &http::HeaderMap) -> Option<i32> {
    h.get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
}

/// Maps an h2 error to an error kind: I/O by its kind, resets and GOAWAY as resets.
fn classify(e: &h2::Error) -> ErrorKind {
    if let Some(io) = e.get_io() {
        return super::conn::io_kind(io);
    }
    match e.reason() {
        Some(h2::Reason::PROTOCOL_ERROR | h2::Reason::COMPRESSION_ERROR) => ErrorKind::Protocol,
        Some(h2::Reason::REFUSED_STREAM) => ErrorKind::Refused,
        _ if e.is_reset() || e.is_go_away() => ErrorKind::Reset,
        _ => ErrorKind::Protocol,
    }
}
