//! A lean HTTP/1.1 client for plain-text keep-alive connections, the hot path of most runs.
//!
//! hyper's client hands every request through a channel to a connection task and reads once
//! more after each response to look for the next; at 5 000 req/s that is most of the driver's
//! CPU. Here one task owns the socket: one write per request, reads until the response is
//! complete (by Content-Length or chunked framing), headers parsed with httparse. The caller
//! says whether the request was a HEAD: its response has no body whatever its headers say.

use super::conn::{Exchange, Io};
use super::stats::{ErrorKind, Outcome};
use bytes::{Buf, BytesMut};

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// One keep-alive connection.
pub struct H1Conn {
    stream: Io,
    buf: BytesMut,
    open: bool,
}

enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

impl H1Conn {
    /// A client on `io` (TCP, or TLS that chose `http/1.1`).
    pub fn new(stream: Io) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            open: true,
        }
    }

    /// False once the connection cannot carry another request.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Writes `request` (head and body) and reads the response, stopping after
    /// `abandon_after` body bytes if set; `head` when the request's method is HEAD.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        head: bool,
        abandon_after: Option<u64>,
    ) -> Exchange {
        let r = self.run(request, head, abandon_after).await;
        match r {
            Ok(x) => {
                self.open &= x.reusable;
                x
            }
            Err(kind) => {
                self.open = false;
                Exchange {
                    outcome: Outcome::Error(kind),
                    bytes: 0,
                    reusable: false,
                }
            }
        }
    }

    async fn run(
        &mut self,
        request: &[u8],
        head: bool,
        abandon_after: Option<u64>,
    ) -> Result<Exchange, ErrorKind> {
        if !self.buf.is_empty() {
            // Bytes nobody asked for: the server is not speaking HTTP/1.1 request-response.
            return Err(ErrorKind::Protocol);
        }
        self.stream.write_all(request).await.map_err(io_kind)?;
        let (status, framing, keep_alive) = loop {
            if let Some(parsed) = self.parse_head(head)? {
                // 1xx (e.g. 100 Continue) precede the real answer.
                if (100..200).contains(&parsed.0) && parsed.0 != 101 {
                    continue;
                }
                break parsed;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ErrorKind::Protocol);
            }
            self.fill().await?;
        };
        let limit = abandon_after.unwrap_or(u64::MAX);
        let (bytes, complete) = match framing {
            Framing::None => (0, true),
            Framing::Length(n) => self.read_length(n, limit).await?,
            Framing::Chunked => self.read_chunked(limit).await?,
            Framing::UntilClose => {
                let (b, _) = self.read_length(u64::MAX, limit).await?;
                (b, false)
            }
        };
        Ok(Exchange {
            outcome: Outcome::Http(status),
            bytes,
            reusable: complete && keep_alive,
        })
    }

    /// Reads more bytes; EOF is a reset (the response was not complete).
    async fn fill(&mut self) -> Result<usize, ErrorKind> {
        super::conn::read_more(&mut self.stream, &mut self.buf).await
    }

    /// Parses a response head if the buffer holds one: (status, body framing, keep-alive);
    /// `head_request` when it answers a HEAD.
    fn parse_head(
        &mut self,
        head_request: bool,
    ) -> Result<Option<(u16, Framing, bool)>, ErrorKind> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ErrorKind::Protocol),
        };
        let status = resp.code.ok_or(ErrorKind::Protocol)?;
        let mut keep_alive = resp.version == Some(1);
        let mut framing = Framing::UntilClose;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or(ErrorKind::Protocol)?;
                if !matches!(framing, Framing::Chunked) {
                    framing = Framing::Length(n);
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                if h.value
                    .windows(7)
                    .any(|w| w.eq_ignore_ascii_case(b"chunked"))
                {
                    framing = Framing::Chunked;
                }
            } else if h.name.eq_ignore_ascii_case("connection") {
                if h.value.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
        // No body after a HEAD, a 204, a 304 or a 1xx, whatever the headers say (RFC 9112
        // §6.3): waiting for one would hang the exchange until its timeout.
        if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
            framing = Framing::None;
        }
        if status == 101 {
            // The connection now speaks another protocol.
            keep_alive = false;
        }
        if matches!(framing, Framing::UntilClose) {
            keep_alive = false;
        }
        self.buf.advance(len);
        Ok(Some((status, framing, keep_alive)))
    }

    /// Reads `n` body bytes (or until `limit`); returns (bytes read, complete).
    async fn read_length(&mut self, n: u64, limit: u64) -> Result<(u64, bool), ErrorKind> {
        let mut got = 0u64;
        loop {
            let take = (self.buf.len() as u64).min(n - got);
            self.buf.advance(take as usize);
            got += take;
            if got >= n {
                return Ok((got, true));
            }
            if got >= limit {
                return Ok((got, false));
            }
            match self.fill().await {
                Ok(_) => {}
                // A close-delimited body ends at EOF.
                Err(ErrorKind::Reset) if n == u64::MAX => return Ok((got, true)),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads a chunked body (or until `limit`); returns (data bytes, complete).
    async fn read_chunked(&mut self, limit: u64) -> Result<(u64, bool), ErrorKind> {
        let mut got = 0u64;
        loop {
            // Chunk size line.
            let line_end = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                if self.buf.len() > 1024 {
                    return Err(ErrorKind::Protocol);
                }
                self.fill().await?;
            };
            let size_text =
                std::str::from_utf8(&self.buf[..line_end]).map_err(|_| ErrorKind::Protocol)?;
            let size = u64::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| ErrorKind::Protocol)?;
            self.buf.advance(line_end + 2);
            if size == 0 {
                // Trailers end with an empty line.
                loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        self.buf.advance(i + 2);
                        if i == 0 {
                            return Ok((got, true));
                        }
                        continue;
                    }
                    // Bounded like the head: a server may not stream one endless line.
                    if self.buf.len() > MAX_HEAD {
                        return Err(ErrorKind::Protocol);
                    }
                    self.fill().await?;
                }
            }
            let (n, complete) = self.read_length(size, limit.saturating_sub(got)).await?;
            got += n;
            if !complete {
                return Ok((got, false));
            }
            while self.buf.len() < 2 {
                self.fill().await?;
            }
            if &self.buf[..2] != b"\r\n" {
                return Err(ErrorKind::Protocol);
            }
            self.buf.advance(2);
            if got >= limit {
                return Ok((got, false));
            }
        }
    }
}

fn io_kind(e: std::io::Error) -> ErrorKind {
    super::conn::io_kind(&e)
}
