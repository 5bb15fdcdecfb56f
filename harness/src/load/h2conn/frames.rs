//! What each frame read on an HTTP/2 connection does to the connection and to the calls in
//! flight on it.

use bytes::Buf;
use tokio::time::Instant;

use super::{Call, Inner, MAX_BLOCK};
use crate::load::conn::{Exchange, done};
use crate::load::h2wire::{
    self as wire, CONNECTION_WINDOW, STREAM_WINDOW, code, flag, kind, setting,
};
use crate::load::stats::{ErrorKind, Outcome};

impl Inner {
    /// Handles every complete frame read so far; an error fails the connection.
    pub(super) fn drain(&mut self) -> Result<(), ErrorKind> {
        // Out of `self` while frames borrow from it and handlers change `self`.
        let mut buf = std::mem::take(&mut self.rbuf);
        let mut at = 0;
        let mut result = Ok(());
        while buf.len() - at >= wire::HEAD_LEN {
            let h = wire::Head::parse(&buf[at..]);
            // We never raise SETTINGS_MAX_FRAME_SIZE above its default.
            if h.len > wire::DEFAULT_MAX_FRAME {
                result = Err(ErrorKind::Protocol);
                break;
            }
            let end = at + wire::HEAD_LEN + h.len;
            if buf.len() < end {
                break;
            }
            let payload = &buf[at + wire::HEAD_LEN..end];
            at = end;
            if let Err(e) = self.frame(h, payload) {
                result = Err(e);
                break;
            }
        }
        buf.advance(at);
        self.rbuf = buf;
        result
    }

    fn frame(&mut self, h: wire::Head, p: &[u8]) -> Result<(), ErrorKind> {
        if !self.preface_seen {
            // The server's connection preface is a SETTINGS frame (RFC 9113 3.4).
            if h.kind != kind::SETTINGS || h.has(flag::ACK) {
                return Err(ErrorKind::Protocol);
            }
            self.preface_seen = true;
        }
        if let Some((id, flags)) = self.partial {
            // A header block in progress admits only its own CONTINUATION frames.
            if h.kind != kind::CONTINUATION || h.stream != id {
                return Err(ErrorKind::Protocol);
            }
            self.block.extend_from_slice(p);
            if self.block.len() > MAX_BLOCK {
                return Err(ErrorKind::Protocol);
            }
            if !h.has(flag::END_HEADERS) {
                return Ok(());
            }
            self.partial = None;
            let block = std::mem::take(&mut self.block);
            let r = self.headers(id, flags, &block);
            self.block = block;
            self.block.clear();
            return r;
        }
        match h.kind {
            kind::DATA => self.data(h, p),
            kind::HEADERS => {
                let block = wire::content(&h, p).ok_or(ErrorKind::Protocol)?;
                if h.stream == 0 {
                    return Err(ErrorKind::Protocol);
                }
                if !h.has(flag::END_HEADERS) {
                    self.partial = Some((h.stream, h.flags));
                    self.block.extend_from_slice(block);
                    return Ok(());
                }
                self.headers(h.stream, h.flags, block)
            }
            kind::RST_STREAM => {
                let reason = u32_at(p, 4)?;
                // The server ended the stream: nothing to reset, the connection goes on. A
                // refused stream was not processed: counted as such (the dispatcher may send
                // it again on a shared connection).
                let kind = match reason {
                    code::PROTOCOL_ERROR | code::COMPRESSION_ERROR => ErrorKind::Protocol,
                    code::REFUSED_STREAM => ErrorKind::Refused,
                    _ => ErrorKind::Reset,
                };
                self.on_call(h.stream, |_, call| {
                    Some(done(Outcome::Error(kind), call.bytes))
                });
                Ok(())
            }
            kind::SETTINGS => {
                if h.stream != 0 || !p.len().is_multiple_of(6) {
                    return Err(ErrorKind::Protocol);
                }
                if !h.has(flag::ACK) {
                    self.settings(p)?;
                    wire::settings_ack(&mut self.out);
                }
                Ok(())
            }
            kind::PING => {
                if p.len() != 8 {
                    return Err(ErrorKind::Protocol);
                }
                if !h.has(flag::ACK) {
                    wire::ping_ack(&mut self.out, p);
                }
                Ok(())
            }
            kind::GOAWAY => {
                let last = u32_at(p, 8)? & wire::MAX_STREAM_ID;
                // No new streams; the server still finishes those up to `last`.
                self.open = false;
                for k in 0..self.calls.len() {
                    let call = &self.calls[k];
                    if call.id > last {
                        let x = done(Outcome::Error(ErrorKind::Reset), call.bytes);
                        self.complete(k, x);
                    }
                }
                Ok(())
            }
            kind::WINDOW_UPDATE => {
                let inc = i64::from(u32_at(p, 4)? & wire::MAX_STREAM_ID);
                if inc == 0 {
                    return Err(ErrorKind::Protocol);
                }
                if h.stream == 0 {
                    self.conn_send += inc;
                    if self.conn_send > wire::MAX_WINDOW {
                        return Err(ErrorKind::Protocol);
                    }
                    self.wake_senders();
                    return Ok(());
                }
                self.on_call(h.stream, |this, call| {
                    call.send_window += inc;
                    if call.send_window > wire::MAX_WINDOW {
                        // A stream error (RFC 9113 6.9.1): that stream ends, not the connection.
                        let outcome = Outcome::Error(ErrorKind::Protocol);
                        return Some(this.end(call, outcome, Some(code::FLOW_CONTROL_ERROR)));
                    }
                    None
                });
                self.wake_senders();
                Ok(())
            }
            kind::CONTINUATION | kind::PUSH_PROMISE => Err(ErrorKind::Protocol),
            // PRIORITY and unknown frame types carry nothing a client must act on.
            _ => Ok(()),
        }
    }

    /// Runs `f` on the call of `stream` (none: the frame is for a stream that has ended) and
    /// completes the call when `f` ends it.
    fn on_call(&mut self, stream: u32, f: impl FnOnce(&mut Self, &mut Call) -> Option<Exchange>) {
        let Some(k) = self.calls.iter().position(|c| c.is(stream)) else {
            return;
        };
        // Out of the table while `f` changes the connection.
        let mut call = std::mem::take(&mut self.calls[k]);
        let x = f(self, &mut call);
        self.calls[k] = call;
        if let Some(x) = x {
            self.complete(k, x);
        }
    }

    /// Wakes the tasks of calls whose body waits for a window (when another task reads).
    fn wake_senders(&mut self) {
        for k in 0..self.calls.len() {
            if self.calls[k].unsent() {
                self.wake_call(k);
            }
        }
    }

    fn data(&mut self, h: wire::Head, p: &[u8]) -> Result<(), ErrorKind> {
        if h.stream == 0 {
            return Err(ErrorKind::Protocol);
        }
        // Every DATA frame counts against the connection window, even on a stream we reset.
        self.conn_unacked += h.len as u32;
        if self.conn_unacked >= CONNECTION_WINDOW / 2 {
            wire::window_update(&mut self.out, 0, self.conn_unacked);
            self.conn_unacked = 0;
        }
        let body = wire::content(&h, p).ok_or(ErrorKind::Protocol)?;
        let end = h.has(flag::END_STREAM);
        self.on_call(h.stream, |this, call| this.body(call, h.len, body, end));
        Ok(())
    }

    /// DATA of a call (`len` counts against the windows, `body` without padding).
    fn body(&mut self, call: &mut Call, len: usize, body: &[u8], end: bool) -> Option<Exchange> {
        if !call.headers_seen {
            return Some(self.finish(call, Outcome::Error(ErrorKind::Protocol), end));
        }
        call.unacked += len as u32;
        if !end && call.unacked >= STREAM_WINDOW / 2 {
            wire::window_update(&mut self.out, call.id, call.unacked);
            call.unacked = 0;
        }
        call.bytes += body.len() as u64;
        if !call.grpc {
            if call.abandon_after.is_some_and(|n| call.bytes >= n) || end {
                let outcome = Outcome::Http(call.status);
                return Some(self.finish(call, outcome, end));
            }
            return None;
        }
        call.counter.feed(body);
        if call.counter.messages > 0 && call.first_at.is_none() {
            call.first_at = Some(Instant::now());
        }
        if call
            .abandon_after
            .is_some_and(|n| call.counter.messages >= n)
        {
            return Some(self.finish(call, Outcome::Grpc(0), end));
        }
        if end {
            // The stream ended without trailers: only a status already in the headers counts.
            let outcome = call
                .code
                .map_or(Outcome::Error(ErrorKind::Protocol), Outcome::Grpc);
            return Some(self.finish(call, outcome, true));
        }
        None
    }

    fn headers(&mut self, id: u32, flags: u8, block: &[u8]) -> Result<(), ErrorKind> {
        let mut status = None;
        let mut grpc_status = None;
        // Every block is decoded, whatever its stream: the HPACK table is the connection's.
        self.hpack
            .decode_some(block, is_status, |name, value| match name {
                b":status" => status = parse::<u16>(value),
                b"grpc-status" => grpc_status = parse::<i32>(value),
                _ => {}
            })
            .map_err(|_| ErrorKind::Protocol)?;
        let end = flags & flag::END_STREAM != 0;
        self.on_call(id, |this, call| {
            if call.grpc {
                this.grpc_headers(status, grpc_status, end, call)
            } else {
                this.rest_headers(status, end, call)
            }
        });
        Ok(())
    }

    /// A gRPC call's headers (or trailers): the status they carry, and its end when they end
    /// it.
    fn grpc_headers(
        &mut self,
        status: Option<u16>,
        grpc_status: Option<i32>,
        end: bool,
        call: &mut Call,
    ) -> Option<Exchange> {
        if call.headers_seen {
            // Trailers: they must end the stream.
            if !end {
                return Some(self.finish(call, Outcome::Error(ErrorKind::Protocol), false));
            }
            let code = grpc_status.or(call.code);
            let outcome = code.map_or(Outcome::Error(ErrorKind::Protocol), Outcome::Grpc);
            return Some(self.finish(call, outcome, true));
        }
        match status {
            // Informational answers precede the real one.
            Some(s) if (100..200).contains(&s) && !end => None,
            Some(200) => {
                call.headers_seen = true;
                // A trailers-only answer carries the status in the headers.
                call.code = grpc_status;
                if !end {
                    return None;
                }
                let outcome =
                    grpc_status.map_or(Outcome::Error(ErrorKind::Protocol), Outcome::Grpc);
                Some(self.finish(call, outcome, true))
            }
            Some(s) if s >= 200 => Some(self.finish(call, Outcome::Http(s), end)),
            _ => Some(self.finish(call, Outcome::Error(ErrorKind::Protocol), end)),
        }
    }

    /// A REST response's headers (or trailers): its status, and its end when they end it.
    fn rest_headers(
        &mut self,
        status: Option<u16>,
        end: bool,
        call: &mut Call,
    ) -> Option<Exchange> {
        if call.headers_seen {
            // Trailers: they must end the stream.
            let outcome = if end {
                Outcome::Http(call.status)
            } else {
                Outcome::Error(ErrorKind::Protocol)
            };
            return Some(self.finish(call, outcome, end));
        }
        match status {
            // Informational answers precede the real one.
            Some(s) if (100..200).contains(&s) && !end => None,
            Some(s) if (200..1000).contains(&s) => {
                call.headers_seen = true;
                call.status = s;
                end.then(|| self.finish(call, Outcome::Http(s), true))
            }
            _ => Some(self.finish(call, Outcome::Error(ErrorKind::Protocol), end)),
        }
    }

    /// Ends the call; a stream still open in either direction is reset.
    fn finish(&mut self, call: &mut Call, outcome: Outcome, remote_ended: bool) -> Exchange {
        let open = !remote_ended || !call.end_sent;
        self.end(call, outcome, open.then_some(code::CANCEL))
    }

    /// Ends the call, resetting its stream with error code `reset` when given.
    fn end(&mut self, call: &mut Call, outcome: Outcome, reset: Option<u32>) -> Exchange {
        if let Some(error) = reset {
            wire::rst_stream(&mut self.out, call.id, error);
        }
        call.id = 0;
        done(outcome, call.bytes)
    }

    fn settings(&mut self, p: &[u8]) -> Result<(), ErrorKind> {
        for s in p.chunks_exact(6) {
            let id = u16::from_be_bytes([s[0], s[1]]);
            let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
            match id {
                setting::INITIAL_WINDOW_SIZE => {
                    let v = i64::from(v);
                    if v > wire::MAX_WINDOW {
                        return Err(ErrorKind::Protocol);
                    }
                    // The change applies to open streams too.
                    for call in self.calls.iter_mut().filter(|c| c.id != 0) {
                        call.send_window += v - self.peer_window;
                    }
                    self.peer_window = v;
                    self.wake_senders();
                }
                setting::HEADER_TABLE_SIZE => self.encoder.set_limit(v),
                setting::MAX_CONCURRENT_STREAMS => self.peer_max_streams = v,
                setting::MAX_FRAME_SIZE => {
                    if !(wire::DEFAULT_MAX_FRAME..=(1 << 24) - 1).contains(&(v as usize)) {
                        return Err(ErrorKind::Protocol);
                    }
                    self.peer_max_frame = v as usize;
                }
                _ => {}
            }
        }
        // The first SETTINGS (or a new stream limit) may let waiting calls start.
        self.waiting.drain(..).for_each(std::task::Waker::wake);
        Ok(())
    }
}

/// The big-endian u32 at the start of a payload that must be at least `len` bytes long.
fn u32_at(p: &[u8], len: usize) -> Result<u32, ErrorKind> {
    if p.len() < len || (len == 4 && p.len() != 4) {
        return Err(ErrorKind::Protocol);
    }
    Ok(u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
}

/// The fields a response is judged by; the decoder skips the others' values.
fn is_status(name: &[u8]) -> bool {
    name == b":status" || name == b"grpc-status"
}

fn parse<T: std::str::FromStr>(v: &[u8]) -> Option<T> {
    std::str::from_utf8(v).ok()?.parse().ok()
}
