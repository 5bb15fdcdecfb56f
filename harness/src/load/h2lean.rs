//! The project's own HTTP/2 client for connections that carry one exchange at a time (h2c or
//! TLS), REST or gRPC: the hot path of every HTTP/2 run with one stream per connection.
//!
//! As in `h1`, the calling task owns the socket: a request's HEADERS and DATA leave in one
//! write and response frames are parsed where they were read, with no connection task,
//! channel or stream store between the request and the socket. Requests are encoded by
//! `hpack` (a request kind's fixed fields go into the server's dynamic table once, then cost a
//! byte each); responses go through a full HPACK decoder, since servers use Huffman coding and
//! their dynamic table. A REST exchange ends with its status and body bytes, a gRPC call with
//! its `grpc-status` and response messages.

use bytes::BytesMut;

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

/// One HTTP/2 connection carrying one exchange at a time.
pub struct H2Lean {
    io: Io,
    /// Bytes read and not yet parsed.
    rbuf: BytesMut,
    /// Frames not written yet: control replies, a reset, the next call.
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
    /// The stream of the call in progress (0: none); still set after a cut-off until reset.
    active: u32,
    open: bool,
    /// The server's SETTINGS frame came first, as its preface must.
    preface_seen: bool,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS (unlimited until it says).
    peer_max_streams: u32,
    /// Set while frames are being written: a call cut off then leaves a torn frame behind.
    writing: bool,
    peer_max_frame: usize,
    peer_window: i64,
    conn_send: i64,
    /// DATA bytes received since the last connection WINDOW_UPDATE.
    conn_unacked: u32,
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

/// The state of one exchange.
struct Call<'m> {
    id: u32,
    /// A gRPC call (outcome from `grpc-status`, messages counted) rather than REST.
    grpc: bool,
    /// REST: the response status once its headers arrived.
    status: u16,
    /// Request bytes not sent yet (flow control may hold them back).
    rest: &'m [u8],
    end_sent: bool,
    send_window: i64,
    /// DATA bytes received since the last stream WINDOW_UPDATE.
    unacked: u32,
    headers_seen: bool,
    code: Option<i32>,
    counter: FrameCounter,
    bytes: u64,
    /// Stop after this many response messages (gRPC) or body bytes (REST).
    abandon_after: Option<u64>,
}

impl Call<'_> {
    /// No call: frames read between calls are only bookkeeping.
    fn idle() -> Self {
        Call {
            id: 0,
            grpc: false,
            status: 0,
            rest: &[],
            end_sent: true,
            send_window: 0,
            unacked: 0,
            headers_seen: false,
            code: None,
            counter: FrameCounter::default(),
            bytes: 0,
            abandon_after: None,
        }
    }

    fn is(&self, stream: u32) -> bool {
        self.id != 0 && self.id == stream
    }
}

impl H2Lean {
    /// A client on `io` (TCP, or TLS that chose `h2`); the preface and our SETTINGS leave
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
        let hpack = super::hpack::decode::Decoder::new(HPACK_TABLE);
        Self {
            io,
            rbuf: BytesMut::with_capacity(16 * 1024),
            out,
            hpack,
            encoder: Encoder::default(),
            scratch: Vec::with_capacity(256),
            partial: None,
            block: Vec::new(),
            next_id: 1,
            active: 0,
            open: true,
            preface_seen: false,
            peer_max_streams: u32::MAX,
            writing: false,
            peer_max_frame: wire::DEFAULT_MAX_FRAME,
            peer_window: wire::DEFAULT_WINDOW,
            conn_send: wire::DEFAULT_WINDOW,
            conn_unacked: 0,
        }
    }

    /// False once the connection cannot carry another call.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Takes in, without waiting, what the server sent while the connection sat idle
    /// (SETTINGS, PING, GOAWAY, a close), so a closed connection is replaced before a call.
    pub fn refresh(&mut self) {
        // Bounded: a server that keeps sending cannot hold the slot here.
        for _ in 0..16 {
            if !self.open {
                return;
            }
            self.rbuf.reserve(4096);
            match self.io.try_read_buf(&mut self.rbuf) {
                Ok(0) => self.open = false,
                Ok(_) => {
                    let idle = &mut Call::idle();
                    if self.drain(idle, &mut StreamStats::default()).is_err() {
                        self.open = false;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => self.open = false,
            }
        }
        self.try_flush();
    }

    /// Ends the exchange in progress after its future was dropped (cut off by a cancel or the
    /// request timeout): resets its stream, or gives the connection up if a write was torn.
    pub fn cut(&mut self) {
        if self.writing {
            self.open = false;
            return;
        }
        if self.active != 0 {
            wire::rst_stream(&mut self.out, self.active, code::CANCEL);
            self.active = 0;
            self.try_flush();
        }
    }

    /// Sends one request (`head`, then `body`: for gRPC the length-prefixed message) and
    /// reads its response; stops (resetting the stream) after `abandon_after` response
    /// messages (gRPC) or body bytes (REST) if set. The outcome is the `grpc-status` code of
    /// a gRPC call, the HTTP status of a REST exchange.
    pub async fn send(
        &mut self,
        head: Head<'_>,
        body: &[u8],
        grpc: bool,
        abandon_after: Option<u64>,
        stream: &mut StreamStats,
    ) -> Exchange {
        match self.run(head, body, grpc, abandon_after, stream).await {
            Ok(x) => x,
            Err(kind) => {
                self.open = false;
                conn::failed(kind)
            }
        }
    }

    async fn run(
        &mut self,
        head: Head<'_>,
        body: &[u8],
        grpc: bool,
        abandon_after: Option<u64>,
        stream: &mut StreamStats,
    ) -> Result<Exchange, ErrorKind> {
        if !self.open {
            return Err(ErrorKind::Reset);
        }
        if self.peer_max_streams == 0 {
            // The server allows no stream here now: refused, not sent; try a new connection.
            self.open = false;
            return Ok(conn::failed(ErrorKind::Refused));
        }
        let id = self.next_id;
        self.next_id += 2;
        // The last stream id: this call still runs, the next one reconnects.
        if self.next_id > wire::MAX_STREAM_ID {
            self.open = false;
        }
        self.active = id;
        let mut call = Call {
            id,
            grpc,
            rest: body,
            end_sent: body.is_empty(),
            send_window: self.peer_window,
            abandon_after,
            ..Call::idle()
        };
        self.scratch.clear();
        self.encoder
            .block(head.kind, head.fields, &mut self.scratch);
        self.scratch.extend_from_slice(head.extra);
        // A request without a body ends with its HEADERS (GET, HEAD).
        wire::headers(
            &mut self.out,
            id,
            &self.scratch,
            self.peer_max_frame,
            call.end_sent,
        );
        self.push_data(&mut call);
        self.flush().await?;
        loop {
            if let Some(x) = self.drain(&mut call, stream)? {
                // Replies to control frames (and a reset) go out now, without waiting.
                self.try_flush();
                return Ok(x);
            }
            self.push_data(&mut call);
            if !self.out.is_empty() {
                self.flush().await?;
            }
            conn::read_more(&mut self.io, &mut self.rbuf).await?;
        }
    }

    /// Queues as much of the request as the flow-control windows allow.
    fn push_data(&mut self, call: &mut Call<'_>) {
        while !call.end_sent && call.id != 0 {
            let room = call.send_window.min(self.conn_send).max(0) as usize;
            let n = call.rest.len().min(room).min(self.peer_max_frame);
            if n == 0 && !call.rest.is_empty() {
                return;
            }
            let last = n == call.rest.len();
            wire::data(&mut self.out, call.id, &call.rest[..n], last);
            call.send_window -= n as i64;
            self.conn_send -= n as i64;
            call.rest = &call.rest[n..];
            call.end_sent = last;
        }
    }

    /// Writes all queued frames.
    async fn flush(&mut self) -> Result<(), ErrorKind> {
        self.writing = true;
        self.io
            .write_all(&self.out)
            .await
            .map_err(|e| conn::io_kind(&e))?;
        self.writing = false;
        self.out.clear();
        Ok(())
    }

    /// Writes what the socket takes now; the rest waits for the next write.
    fn try_flush(&mut self) {
        while !self.out.is_empty() {
            match self.io.try_write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.open = false;
                    return;
                }
            }
        }
    }
}

impl Drop for H2Lean {
    /// Says goodbye as RFC 9113 6.8 asks: a GOAWAY naming no stream, without waiting.
    fn drop(&mut self) {
        if self.open && !self.writing && self.preface_seen {
            wire::goaway(&mut self.out, 0, code::NO_ERROR);
            self.try_flush();
        }
    }
}
