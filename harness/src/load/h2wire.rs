//! HTTP/2 framing for the lean gRPC client (RFC 9113): frame heads and the frames a client
//! writes; header blocks come from `hpack`.

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame head.
pub const HEAD_LEN: usize = 9;
/// Largest frame payload either side may send until told otherwise (we never raise ours).
pub const DEFAULT_MAX_FRAME: usize = 16_384;
/// Flow-control window every stream and connection starts with.
pub const DEFAULT_WINDOW: i64 = 65_535;
/// Largest flow-control window.
pub const MAX_WINDOW: i64 = (1 << 31) - 1;
/// Per-stream receive window leakgate announces on every HTTP/2 connection: large enough that
/// a streaming response rarely waits for a WINDOW_UPDATE, and updates (extra writes) stay rare.
pub const STREAM_WINDOW: u32 = 1 << 20;
/// Per-connection receive window leakgate opens on every HTTP/2 connection.
pub const CONNECTION_WINDOW: u32 = 1 << 24;
/// Largest stream identifier.
pub const MAX_STREAM_ID: u32 = (1 << 31) - 1;

/// Frame types.
pub mod kind {
    /// DATA.
    pub const DATA: u8 = 0;
    /// HEADERS.
    pub const HEADERS: u8 = 1;
    /// RST_STREAM.
    pub const RST_STREAM: u8 = 3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 4;
    /// PUSH_PROMISE.
    pub const PUSH_PROMISE: u8 = 5;
    /// PING.
    pub const PING: u8 = 6;
    /// GOAWAY.
    pub const GOAWAY: u8 = 7;
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: u8 = 8;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 9;
}

/// Frame flags.
pub mod flag {
    /// END_STREAM (DATA, HEADERS).
    pub const END_STREAM: u8 = 0x1;
    /// ACK (SETTINGS, PING).
    pub const ACK: u8 = 0x1;
    /// END_HEADERS (HEADERS, CONTINUATION).
    pub const END_HEADERS: u8 = 0x4;
    /// PADDED (DATA, HEADERS).
    pub const PADDED: u8 = 0x8;
    /// PRIORITY (HEADERS).
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS identifiers.
pub mod setting {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub const HEADER_TABLE_SIZE: u16 = 1;
    /// SETTINGS_ENABLE_PUSH.
    pub const ENABLE_PUSH: u16 = 2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u16 = 3;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: u16 = 4;
    /// SETTINGS_MAX_FRAME_SIZE.
    pub const MAX_FRAME_SIZE: u16 = 5;
}

/// Error codes (RST_STREAM, GOAWAY).
pub mod code {
    /// NO_ERROR.
    pub const NO_ERROR: u32 = 0x0;
    /// PROTOCOL_ERROR.
    pub const PROTOCOL_ERROR: u32 = 0x1;
    /// FLOW_CONTROL_ERROR.
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    /// REFUSED_STREAM: the server did not process the stream; it may be retried.
    pub const REFUSED_STREAM: u32 = 0x7;
    /// CANCEL.
    pub const CANCEL: u32 = 0x8;
    /// COMPRESSION_ERROR.
    pub const COMPRESSION_ERROR: u32 = 0x9;
}

/// A parsed frame head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Payload length.
    pub len: usize,
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (the reserved bit cleared).
    pub stream: u32,
}

impl Head {
    /// Reads a frame head from the first [`HEAD_LEN`] bytes of `b` (which must hold them).
    pub fn parse(b: &[u8]) -> Self {
        Self {
            len: (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & MAX_STREAM_ID,
        }
    }

    /// True if `f` is set.
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// Appends a frame head.
pub fn head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = len as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

/// Appends a SETTINGS frame.
pub fn settings(out: &mut Vec<u8>, values: &[(u16, u32)]) {
    head(out, values.len() * 6, kind::SETTINGS, 0, 0);
    for (id, v) in values {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Appends a SETTINGS acknowledgement.
pub fn settings_ack(out: &mut Vec<u8>) {
    head(out, 0, kind::SETTINGS, flag::ACK, 0);
}

/// Appends a PING acknowledgement echoing `payload`.
pub fn ping_ack(out: &mut Vec<u8>, payload: &[u8]) {
    head(out, payload.len(), kind::PING, flag::ACK, 0);
    out.extend_from_slice(payload);
}

/// Appends a WINDOW_UPDATE.
pub fn window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    head(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&increment.to_be_bytes());
}

/// Appends a RST_STREAM.
pub fn rst_stream(out: &mut Vec<u8>, stream: u32, error: u32) {
    head(out, 4, kind::RST_STREAM, 0, stream);
    out.extend_from_slice(&error.to_be_bytes());
}

/// Appends a GOAWAY: no stream above `last` was processed.
pub fn goaway(out: &mut Vec<u8>, last: u32, error: u32) {
    head(out, 8, kind::GOAWAY, 0, 0);
    out.extend_from_slice(&last.to_be_bytes());
    out.extend_from_slice(&error.to_be_bytes());
}

/// Appends a header block as HEADERS plus CONTINUATION frames of at most `max_frame` bytes.
pub fn headers(out: &mut Vec<u8>, stream: u32, block: &[u8], max_frame: usize, end_stream: bool) {
    let max = max_frame.max(1);
    let mut at = 0;
    // At least one frame: an empty block is still one HEADERS frame.
    loop {
        let end = (at + max).min(block.len());
        let (first, last) = (at == 0, end == block.len());
        let mut flags = if last { flag::END_HEADERS } else { 0 };
        if first && end_stream {
            flags |= flag::END_STREAM;
        }
        let kind = if first {
            kind::HEADERS
        } else {
            kind::CONTINUATION
        };
        head(out, end - at, kind, flags, stream);
        out.extend_from_slice(&block[at..end]);
        if last {
            return;
        }
        at = end;
    }
}

/// Appends one DATA frame.
pub fn data(out: &mut Vec<u8>, stream: u32, payload: &[u8], end_stream: bool) {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    head(out, payload.len(), kind::DATA, flags, stream);
    out.extend_from_slice(payload);
}

/// The content of a DATA or HEADERS payload without padding and priority fields; `None` when
/// the padding is longer than the frame (a protocol error).
pub fn content<'p>(h: &Head, payload: &'p [u8]) -> Option<&'p [u8]> {
    let mut p = payload;
    let mut pad = 0usize;
    if h.has(flag::PADDED) {
        pad = usize::from(*p.first()?);
        p = &p[1..];
    }
    if h.kind == kind::HEADERS && h.has(flag::PRIORITY) {
        p = p.get(5..)?;
    }
    p.get(..p.len().checked_sub(pad)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_header_blocks_are_split_into_continuations() {
        let block: Vec<u8> = (0..40u8).collect();
        let mut out = Vec::new();
        headers(&mut out, 3, &block, 16, false);
        let mut at = 0;
        let mut seen = Vec::new();
        let mut kinds = Vec::new();
        while at < out.len() {
            let h = Head::parse(&out[at..]);
            assert_eq!(h.stream, 3);
            kinds.push((h.kind, h.flags));
            seen.extend_from_slice(&out[at + HEAD_LEN..at + HEAD_LEN + h.len]);
            at += HEAD_LEN + h.len;
        }
        assert_eq!(seen, block);
        assert_eq!(
            kinds,
            vec![
                (kind::HEADERS, 0),
                (kind::CONTINUATION, 0),
                (kind::CONTINUATION, flag::END_HEADERS)
            ]
        );
        // An empty block is one HEADERS frame that ends the headers (and here the stream).
        let mut empty = Vec::new();
        headers(&mut empty, 5, &[], 16, true);
        let h = Head::parse(&empty);
        assert_eq!(empty.len(), HEAD_LEN);
        assert_eq!(
            (h.kind, h.flags, h.len, h.stream),
            (kind::HEADERS, flag::END_HEADERS | flag::END_STREAM, 0, 5)
        );
    }

    #[test]
    fn padding_and_priority_are_stripped_and_bad_padding_refused() {
        let h = Head {
            len: 0,
            kind: kind::HEADERS,
            flags: flag::PADDED | flag::PRIORITY,
            stream: 1,
        };
        let payload = [2u8, 0, 0, 0, 0, 16, b'a', b'b', 0, 0];
        assert_eq!(content(&h, &payload), Some(&b"ab"[..]));
        let bad = [9u8, b'a'];
        assert_eq!(content(&h, &bad), None);
        let d = Head {
            kind: kind::DATA,
            flags: flag::PADDED,
            ..h
        };
        assert_eq!(content(&d, &[1, b'x', 0]), Some(&b"x"[..]));
        assert_eq!(content(&d, &[]), None);
    }
}
