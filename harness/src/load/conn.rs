//! What every client shares and nothing else: the byte stream under a connection (TCP, or TLS
//! over TCP), reading into a buffer, what one exchange came to, and how I/O errors are counted.
//!
//! The clients (`h1`, `h2conn`) depend on this module and on the wire
//! helpers only; `client` picks one of them per plan. Nothing here knows a protocol.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::stats::{ErrorKind, Outcome};

/// A connection's byte stream: plain TCP or TLS over TCP.
pub enum Io {
    /// Plain text.
    Tcp(TcpStream),
    /// TLS (boxed: its session state is large).
    Tls(Box<TlsStream<TcpStream>>),
}

impl Io {
    /// The protocol the server chose by ALPN (TLS only).
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            Io::Tcp(_) => None,
            Io::Tls(t) => t.get_ref().1.alpn_protocol(),
        }
    }

    /// Writes all of `bytes` (and flushes TLS records out of the session).
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Io::Tcp(t) => t.write_all(bytes).await,
            Io::Tls(t) => {
                t.write_all(bytes).await?;
                t.flush().await
            }
        }
    }

    /// Reads what is there into `buf`, waiting for at least a byte; 0 at EOF.
    pub async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Io::Tcp(t) => t.read_buf(buf).await,
            Io::Tls(t) => t.read_buf(buf).await,
        }
    }

    /// Reads what is there without waiting (`WouldBlock` when nothing is).
    pub fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Io::Tcp(t) => t.try_read_buf(buf),
            Io::Tls(t) => {
                // TLS has no `try_read`: one poll with a waker that does nothing.
                let mut chunk = [0u8; 4096];
                let mut rb = ReadBuf::new(&mut chunk);
                let mut cx = Context::from_waker(Waker::noop());
                match Pin::new(&mut **t).poll_read(&mut cx, &mut rb) {
                    Poll::Ready(Ok(())) => {
                        buf.extend_from_slice(rb.filled());
                        Ok(rb.filled().len())
                    }
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }

    /// Writes what the socket takes now (`WouldBlock` when it takes nothing).
    pub fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(t) => t.try_write(bytes),
            Io::Tls(t) => {
                let mut cx = Context::from_waker(Waker::noop());
                let written = match Pin::new(&mut **t).poll_write(&mut cx, bytes) {
                    Poll::Ready(r) => r?,
                    Poll::Pending => return Err(io::ErrorKind::WouldBlock.into()),
                };
                // Records the socket did not take stay in the session for the next write.
                let _ = Pin::new(&mut **t).poll_flush(&mut cx);
                Ok(written)
            }
        }
    }
}

// Both kinds of stream as one, for the HTTP/2 client's poll-based reads and writes (`h2conn`).
impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(t) => Pin::new(t).poll_read(cx, buf),
            Io::Tls(t) => Pin::new(&mut **t).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(t) => Pin::new(t).poll_write(cx, b),
            Io::Tls(t) => Pin::new(&mut **t).poll_write(cx, b),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(t) => Pin::new(t).poll_flush(cx),
            Io::Tls(t) => Pin::new(&mut **t).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(t) => Pin::new(t).poll_shutdown(cx),
            Io::Tls(t) => Pin::new(&mut **t).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(t) => Pin::new(t).poll_write_vectored(cx, bufs),
            Io::Tls(t) => Pin::new(&mut **t).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Tcp(t) => t.is_write_vectored(),
            Io::Tls(t) => t.is_write_vectored(),
        }
    }
}

/// What happened to one exchange, and whether its connection can carry another request.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// The outcome.
    pub outcome: Outcome,
    /// Body bytes read.
    pub bytes: u64,
    /// False when the connection must be replaced (HTTP/1.1 after an abandoned body).
    pub reusable: bool,
}

/// An exchange that got no response; its connection is not reused.
pub fn failed(kind: ErrorKind) -> Exchange {
    Exchange {
        outcome: Outcome::Error(kind),
        bytes: 0,
        reusable: false,
    }
}

/// An exchange that ended on a connection that stays usable (an HTTP/2 stream's end or reset
/// does not close its connection).
pub fn done(outcome: Outcome, bytes: u64) -> Exchange {
    Exchange {
        outcome,
        bytes,
        reusable: true,
    }
}

/// Reads more bytes into `buf` (growing it when nearly full); EOF is a reset, since callers
/// read only while a response is incomplete.
pub async fn read_more(io: &mut Io, buf: &mut BytesMut) -> Result<usize, ErrorKind> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
    match io.read_buf(buf).await {
        Ok(0) => Err(ErrorKind::Reset),
        Ok(n) => Ok(n),
        Err(e) => Err(io_kind(&e)),
    }
}

/// Maps an I/O error to an error kind.
pub fn io_kind(e: &io::Error) -> ErrorKind {
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            ErrorKind::Reset
        }
        K::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    }
}

/// Opens a TCP connection with Nagle off (every write is a whole request).
pub async fn tcp(addr: std::net::SocketAddr) -> Result<TcpStream, ErrorKind> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}
