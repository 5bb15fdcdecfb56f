//! The project's own HTTP/2 client (h2c or TLS), REST or gRPC, with one or several streams per
//! connection: every HTTP/2 exchange of a run goes through it.
//!
//! There is no connection task. The handles on a connection live on one worker thread and
//! share it (`Rc<RefCell>`); the task of one call in flight at a time, the reader, reads and
//! writes the socket and handles every frame, and wakes another call's task only when its
//! stream ends (or its flow-control window opens). Calls that start while another reads queue
//! their frames for the reader's next write, so the requests of the calls one read ended go
//! out together. With one stream per connection the calling task is always the reader, as in
//! `h1`: a request's HEADERS and DATA leave in one write and its response is parsed where it
//! was read, with no hand-off at all.
//!
//! Requests are encoded by `hpack` (a request kind's fixed fields go into the server's dynamic
//! table once, then cost a byte each); responses go through a full HPACK decoder, since servers
//! use Huffman coding and their dynamic table. A REST exchange ends with its status and body
//! bytes, a gRPC call with its `grpc-status` and response messages.

use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::io::AsyncWrite;
use tokio::time::Instant;

use super::conn::{self, Exchange, Io};
use super::grpc::FrameCounter;
use super::h2wire::{self as wire, CONNECTION_WINDOW, STREAM_WINDOW, code, setting};
use super::hpack::{Encoder, Field};
use super::stats::{ErrorKind, StreamStats};

mod frames;

/// Largest response header block accepted (HEADERS plus CONTINUATION payloads).
const MAX_BLOCK: usize = 256 * 1024;
/// Dynamic table size the decoder allows (the HTTP/2 default; we never announce another).
const HPACK_TABLE: usize = 4096;

/// A handle on one HTTP/2 connection, carrying one exchange at a time; clones are further
/// handles on the same connection (one per stream slot).
#[derive(Clone)]
pub struct H2Conn {
    inner: Rc<RefCell<Inner>>,
}

/// A request's header fields: the fixed ones of its request kind and templated literals.
pub struct Head<'a> {
    /// The request kind (its index in the mix), under which the encoded block is cached.
    pub kind: usize,
    /// Fixed fields, indexed through the HPACK encoder.
    pub fields: &'a [Field],
    /// Templated fields, already encoded as HPACK literals.
    pub extra: &'a [u8],
}

/// The connection, shared by its handles.
struct Inner {
    io: Io,
    /// Bytes read and not yet parsed.
    rbuf: BytesMut,
    /// Frames not written yet: requests, control replies, resets.
    out: Vec<u8>,
    hpack: super::hpack::decode::Decoder,
    encoder: Encoder,
    /// Scratch space for a call's header block.
    scratch: Vec<u8>,
    /// A header block spread over CONTINUATION frames: its stream and HEADERS flags.
    partial: Option<(u32, u8)>,
    /// The bytes of that block so far.
    block: Vec<u8>,
    next_id: u32,
    /// New streams may start (no GOAWAY, no failure, stream ids left).
    open: bool,
    /// The connection failed: nothing more is read or written.
    broken: bool,
    /// The server's SETTINGS frame came first, as its preface must.
    preface_seen: bool,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS (unlimited until it says).
    peer_max_streams: u32,
    peer_max_frame: usize,
    peer_window: i64,
    conn_send: i64,
    /// DATA bytes received since the last connection WINDOW_UPDATE.
    conn_unacked: u32,
    /// One entry per call in flight; a released entry is reused.
    calls: Vec<Call>,
    /// Entries in use.
    busy: u32,
    /// The entry whose task reads the socket now.
    reader: Option<usize>,
    /// Tasks waiting for the server to allow another stream.
    waiting: Vec<Waker>,
}

/// The state of one exchange.
#[derive(Default)]
struct Call {
    /// The entry belongs to a call that has not been released.
    busy: bool,
    /// Its stream while the stream is live (0 once it has ended).
    id: u32,
    /// A gRPC call (outcome from `grpc-status`, messages counted) rather than REST.
    grpc: bool,
    /// REST: the response status once its headers arrived.
    status: u16,
    /// Request body bytes queued so far; the call's own task queues the rest.
    sent: usize,
    end_sent: bool,
    send_window: i64,
    /// DATA bytes received since the last stream WINDOW_UPDATE.
    unacked: u32,
    headers_seen: bool,
    code: Option<i32>,
    counter: FrameCounter,
    bytes: u64,
    /// When the first response message was complete (gRPC).
    first_at: Option<Instant>,
    /// Stop after this many response messages (gRPC) or body bytes (REST).
    abandon_after: Option<u64>,
    /// How the exchange ended, once it has.
    result: Option<Exchange>,
    /// The call's task, while it waits for the reader.
    waker: Option<Waker>,
}

impl Call {
    fn is(&self, stream: u32) -> bool {
        self.id != 0 && self.id == stream
    }

    /// Body bytes still to queue (flow control may hold them back).
    fn unsent(&self) -> bool {
        !self.end_sent && self.id != 0
    }
}

impl H2Conn {
    /// A connection on `io` (TCP, or TLS that chose `h2`); the preface and our SETTINGS leave
    /// with the first request.
    pub fn new(io: Io) -> Self {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(wire::PREFACE);
        wire::settings(
            &mut out,
            &[
                (setting::ENABLE_PUSH, 0),
                (setting::INITIAL_WINDOW_SIZE, STREAM_WINDOW),
            ],
        );
        wire::window_update(&mut out, 0, CONNECTION_WINDOW - wire::DEFAULT_WINDOW as u32);
        let inner = Inner {
            io,
            rbuf: BytesMut::with_capacity(16 * 1024),
            out,
            hpack: super::hpack::decode::Decoder::new(HPACK_TABLE),
            encoder: Encoder::default(),
            scratch: Vec::with_capacity(256),
            partial: None,
            block: Vec::new(),
            next_id: 1,
            open: true,
            broken: false,
            preface_seen: false,
            peer_max_streams: u32::MAX,
            peer_max_frame: wire::DEFAULT_MAX_FRAME,
            peer_window: wire::DEFAULT_WINDOW,
            conn_send: wire::DEFAULT_WINDOW,
            conn_unacked: 0,
            calls: Vec::new(),
            busy: 0,
            reader: None,
            waiting: Vec::new(),
        };
        Self {
            inner: Rc::new(RefCell::new(inner)),
        }
    }

    /// False once the connection cannot carry another call.
    pub fn is_open(&self) -> bool {
        self.inner.borrow().open
    }

    /// Takes in, without waiting, what the server sent while no call was reading (SETTINGS,
    /// PING, GOAWAY, a close), so a closed connection is replaced before a call.
    pub fn refresh(&self) {
        self.inner.borrow_mut().refresh();
    }

    /// Sends one request (`head`, then `body`: for gRPC the length-prefixed message) and
    /// reads its response; stops (resetting the stream) after `abandon_after` response
    /// messages (gRPC) or body bytes (REST) if set. The outcome is the `grpc-status` code of
    /// a gRPC call, the HTTP status of a REST exchange. Waits for a stream while the server's
    /// SETTINGS_MAX_CONCURRENT_STREAMS are in use. Dropping the future (a cut-off) resets the
    /// stream; the connection goes on.
    pub async fn send(
        &mut self,
        head: Head<'_>,
        body: &[u8],
        grpc: bool,
        abandon_after: Option<u64>,
        stream: &mut StreamStats,
    ) -> Exchange {
        let inner = &*self.inner;
        if let Err(x) = poll_fn(|cx| inner.borrow_mut().poll_stream(cx)).await {
            return x;
        }
        let k = inner.borrow_mut().start(head, body, grpc, abandon_after);
        // From here on the entry is released however the call ends, a cut-off included.
        let _call = Ongoing { inner, k, stream };
        poll_fn(|cx| inner.borrow_mut().poll_call(k, body, cx)).await
    }
}

/// A call between its start and its release: on drop (the end, or a cut-off) hands the call's
/// messages to the caller and releases its entry.
struct Ongoing<'a> {
    inner: &'a RefCell<Inner>,
    k: usize,
    stream: &'a mut StreamStats,
}

impl Drop for Ongoing<'_> {
    fn drop(&mut self) {
        // Never borrowed here but for a panic inside a poll; then nothing is left to release.
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            let call = &inner.calls[self.k];
            self.stream.messages = call.counter.messages;
            self.stream.first_at = call.first_at;
            inner.release(self.k);
        }
    }
}

impl Inner {
    /// Ready when a new stream may open: the server's limit leaves room, and the first
    /// stream waits alone for the server's SETTINGS that say what the limit is.
    fn poll_stream(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Exchange>> {
        if !self.open {
            return Poll::Ready(Err(conn::failed(ErrorKind::Reset)));
        }
        if self.peer_max_streams == 0 {
            // The server allows no stream here now: refused, not sent; try a new connection.
            self.open = false;
            return Poll::Ready(Err(conn::failed(ErrorKind::Refused)));
        }
        let limit = if self.preface_seen {
            self.peer_max_streams
        } else {
            1
        };
        if self.busy < limit {
            return Poll::Ready(Ok(()));
        }
        self.waiting.push(cx.waker().clone());
        Poll::Pending
    }

    /// Opens a stream for the call and queues its HEADERS and what the windows allow of its
    /// body; returns the call's entry.
    fn start(&mut self, head: Head<'_>, body: &[u8], grpc: bool, abandon: Option<u64>) -> usize {
        let id = self.next_id;
        self.next_id += 2;
        // The last stream id: this call still runs, the next one reconnects.
        if self.next_id > wire::MAX_STREAM_ID {
            self.open = false;
        }
        let k = match self.calls.iter().position(|c| !c.busy) {
            Some(k) => k,
            None => {
                self.calls.push(Call::default());
                self.calls.len() - 1
            }
        };
        self.calls[k] = Call {
            busy: true,
            id,
            grpc,
            end_sent: body.is_empty(),
            send_window: self.peer_window,
            abandon_after: abandon,
            ..Call::default()
        };
        self.busy += 1;
        self.scratch.clear();
        self.encoder
            .block(head.kind, head.fields, &mut self.scratch);
        self.scratch.extend_from_slice(head.extra);
        // A request without a body ends with its HEADERS (GET, HEAD).
        let end = self.calls[k].end_sent;
        wire::headers(&mut self.out, id, &self.scratch, self.peer_max_frame, end);
        self.push_data(k, body);
        k
    }

    /// Drives call `k`: queues its body as windows open, writes, and reads for it (and for
    /// every other call) while it is the reader; ready with its exchange once it has ended.
    fn poll_call(&mut self, k: usize, body: &[u8], cx: &mut Context<'_>) -> Poll<Exchange> {
        loop {
            if let Some(x) = self.calls[k].result {
                return Poll::Ready(x);
            }
            self.push_data(k, body);
            let w = &mut self.calls[k].waker;
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
            match self.reader {
                Some(r) if r != k => {
                    // Another call's task reads, and writes: woken now, it runs after the
                    // other tasks its last read woke, so the requests they queue meanwhile
                    // leave in one write. It wakes this one when its stream ends.
                    self.wake_reader_to_write();
                    return Poll::Pending;
                }
                _ => self.reader = Some(k),
            }
            if !self.out.is_empty() && self.calls.iter().any(|c| c.busy && c.result.is_some()) {
                // The calls the last read ended are about to queue their next requests: write
                // after their tasks have run, once for all.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if let Poll::Ready(Err(kind)) = self.poll_flush(cx) {
                self.fail(kind);
                continue;
            }
            if self.rbuf.capacity() - self.rbuf.len() < 4096 {
                self.rbuf.reserve(16 * 1024);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => self.fail(ErrorKind::Reset),
                Poll::Ready(Err(e)) => self.fail(conn::io_kind(&e)),
                Poll::Ready(Ok(_)) => {
                    if let Err(kind) = self.drain() {
                        self.fail(kind);
                    }
                }
            }
        }
    }

    /// Queues as much of call `k`'s body as the flow-control windows allow.
    fn push_data(&mut self, k: usize, body: &[u8]) {
        let call = &mut self.calls[k];
        while call.unsent() {
            let rest = &body[call.sent..];
            let room = call.send_window.min(self.conn_send).max(0) as usize;
            let n = rest.len().min(room).min(self.peer_max_frame);
            if n == 0 && !rest.is_empty() {
                return;
            }
            let last = n == rest.len();
            wire::data(&mut self.out, call.id, &rest[..n], last);
            call.send_window -= n as i64;
            self.conn_send -= n as i64;
            call.sent += n;
            call.end_sent = last;
        }
    }

    /// Writes the queued frames; pending (with the task registered) while the socket is full.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ErrorKind>> {
        if self.broken {
            return Poll::Ready(Ok(()));
        }
        while !self.out.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(ErrorKind::Reset)),
                Poll::Ready(Ok(n)) => {
                    self.out.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(conn::io_kind(&e))),
                Poll::Pending => return Poll::Pending,
            }
        }
        // TLS records the socket did not take stay in the session until flushed.
        Pin::new(&mut self.io)
            .poll_flush(cx)
            .map_err(|e| conn::io_kind(&e))
    }

    /// Writes what the socket takes now; the rest waits for the next write.
    fn try_flush(&mut self) {
        while !self.out.is_empty() && !self.broken {
            match self.io.try_write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => return self.fail(conn::io_kind(&e)),
            }
        }
    }

    /// Reads, without waiting, what arrived while no call was reading.
    fn refresh(&mut self) {
        // Bounded: a server that keeps sending cannot hold the slot here.
        for _ in 0..16 {
            if self.broken || self.reader.is_some() {
                return;
            }
            self.rbuf.reserve(4096);
            match self.io.try_read_buf(&mut self.rbuf) {
                Ok(0) => self.fail(ErrorKind::Reset),
                Ok(_) => {
                    if let Err(kind) = self.drain() {
                        self.fail(kind);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => self.fail(conn::io_kind(&e)),
            }
        }
        self.try_flush();
    }

    /// Ends call `k` with `x` and wakes its task (the reader's own task is running already).
    fn complete(&mut self, k: usize, x: Exchange) {
        let call = &mut self.calls[k];
        call.id = 0;
        call.result = Some(x);
        self.wake_call(k);
    }

    /// Wakes call `k`'s task, unless it is the reader's (running now).
    fn wake_call(&mut self, k: usize) {
        if self.reader != Some(k)
            && let Some(w) = self.calls[k].waker.take()
        {
            w.wake();
        }
    }

    /// Wakes the reader's task when frames are queued: it writes them, with whatever the
    /// tasks woken before it add meanwhile.
    fn wake_reader_to_write(&mut self) {
        if !self.out.is_empty()
            && let Some(w) = self.reader.and_then(|r| self.calls[r].waker.take())
        {
            w.wake();
        }
    }

    /// The connection failed: every call in flight ends with `kind`, no new stream starts.
    fn fail(&mut self, kind: ErrorKind) {
        self.open = false;
        self.broken = true;
        self.out.clear();
        for k in 0..self.calls.len() {
            if self.calls[k].busy && self.calls[k].result.is_none() {
                self.complete(k, conn::failed(kind));
            }
        }
        self.waiting.drain(..).for_each(Waker::wake);
    }

    /// Gives entry `k` back: a stream still live is reset, the read goes to another call in
    /// flight, and a task waiting for a stream may start.
    fn release(&mut self, k: usize) {
        let call = &mut self.calls[k];
        if call.id != 0 && !self.broken {
            wire::rst_stream(&mut self.out, call.id, code::CANCEL);
        }
        call.busy = false;
        call.id = 0;
        call.waker = None;
        self.busy -= 1;
        let was_reader = self.reader == Some(k);
        if was_reader {
            self.reader = None;
        }
        if !self.waiting.is_empty() {
            self.waiting.drain(..).for_each(Waker::wake);
        }
        if self.busy == 0 {
            // Nobody else will write soon: a reset goes out now.
            self.try_flush();
        } else if was_reader {
            // Another call in flight takes over reading and writing: its task registers with
            // the socket when it is polled.
            self.wake_any();
        } else {
            self.wake_reader_to_write();
        }
    }

    /// Wakes the task of one call still in flight, the reader's first.
    fn wake_any(&mut self) {
        let first = self.reader.into_iter();
        let rest = 0..self.calls.len();
        for k in first.chain(rest) {
            let c = &mut self.calls[k];
            if c.busy
                && c.result.is_none()
                && let Some(w) = c.waker.take()
            {
                return w.wake();
            }
        }
    }
}

impl Drop for Inner {
    /// Says goodbye as RFC 9113 6.8 asks: a GOAWAY naming no stream, without waiting.
    fn drop(&mut self) {
        if !self.broken && self.preface_seen {
            wire::goaway(&mut self.out, 0, code::NO_ERROR);
            self.try_flush();
        }
    }
}
