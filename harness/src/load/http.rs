//! HTTP/1.1 and HTTP/2 connections on hyper 1.x: connect (TCP, optional TLS with ALPN), send
//! one request, read (or abandon) its body, classify failures.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::grpc_conn::GrpcConn;
use super::stats::{ErrorKind, Outcome};
use super::tls;
use crate::scenario::plan::Protocol;

/// A sender on one open connection.
pub enum Sender {
    /// Plain-text HTTP/1.1 on the lean client (see `h1`).
    Lean(super::h1::H1Conn),
    /// HTTP/1.1: one request at a time.
    H1(http1::SendRequest<Full<Bytes>>),
    /// HTTP/2: many concurrent streams; cloning the inner sender shares the connection.
    H2(http2::SendRequest<Full<Bytes>>),
    /// gRPC (h2c or TLS) on the lean h2 client (see `grpc_conn`); clones share the connection.
    Grpc(super::grpc_conn::GrpcConn),
    /// gRPC on a plain-text connection of its own, one call at a time (see `grpc_lean`).
    GrpcLean(Box<super::grpc_lean::GrpcLean>),
}

/// Opens connections to one origin.
#[derive(Clone)]
pub struct Connector {
    addr: SocketAddr,
    server_name: Option<rustls::pki_types::ServerName<'static>>,
    tls: Option<TlsConnector>,
    protocol: Protocol,
    /// Calls per connection at a time (HTTP/2 and gRPC streams).
    streams: usize,
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

impl Connector {
    /// A connector for `addr`; `tls` with ALPN when the base URL is `https`.
    pub fn new(
        addr: SocketAddr,
        host: &str,
        https: bool,
        insecure: bool,
        protocol: Protocol,
    ) -> Result<Self, String> {
        let (tls, server_name) = if https {
            let alpn: &[&[u8]] = match protocol {
                Protocol::Http1 => &[b"http/1.1"],
                Protocol::Http2 | Protocol::Grpc => &[b"h2"],
            };
            let cfg = tls::client_config(insecure, alpn);
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| format!("\"{host}\" is not a valid TLS server name: {e}"))?;
            (Some(TlsConnector::from(Arc::new(cfg))), Some(name))
        } else {
            (None, None)
        };
        Ok(Self {
            addr,
            server_name,
            tls,
            protocol,
            streams: 1,
        })
    }

    /// Sets how many calls share one connection at a time (the plan's streams per connection).
    pub fn with_streams(mut self, streams: usize) -> Self {
        self.streams = streams;
        self
    }

    /// True when every connection is plain-text gRPC carrying one call at a time: each slot
    /// then owns a lean client (`grpc_lean`) instead of sharing an `h2` connection.
    pub fn lean_grpc(&self) -> bool {
        self.protocol == Protocol::Grpc && self.tls.is_none() && self.streams == 1
    }

    /// Opens one connection and completes the HTTP handshake.
    pub async fn connect(&self) -> Result<Sender, ErrorKind> {
        if self.protocol == Protocol::Http1 && self.tls.is_none() {
            return super::h1::H1Conn::connect(self.addr)
                .await
                .map(Sender::Lean);
        }
        if self.lean_grpc() {
            return super::grpc_lean::GrpcLean::connect(self.addr)
                .await
                .map(|c| Sender::GrpcLean(Box::new(c)));
        }
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|_| ErrorKind::Connect)?;
        let _ = tcp.set_nodelay(true);
        let grpc = self.protocol == Protocol::Grpc;
        match (&self.tls, &self.server_name) {
            (Some(tls), Some(name)) => {
                let stream = tls
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|_| ErrorKind::Connect)?;
                if grpc {
                    return GrpcConn::handshake(stream).await.map(Sender::Grpc);
                }
                self.handshake(TokioIo::new(stream)).await
            }
            _ if grpc => GrpcConn::handshake(tcp).await.map(Sender::Grpc),
            _ => self.handshake(TokioIo::new(tcp)).await,
        }
    }

    async fn handshake<T>(&self, io: TokioIo<T>) -> Result<Sender, ErrorKind>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        match self.protocol {
            Protocol::Http1 => {
                let (send, conn) = http1::Builder::new()
                    .handshake(io)
                    .await
                    .map_err(|_| ErrorKind::Connect)?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(Sender::H1(send))
            }
            // gRPC never reaches here: `connect` hands it to the lean client.
            Protocol::Http2 | Protocol::Grpc => {
                let (send, conn) = http2::Builder::new(TokioExecutor::new())
                    .initial_stream_window_size(super::h2wire::STREAM_WINDOW)
                    .initial_connection_window_size(super::h2wire::CONNECTION_WINDOW)
                    .handshake(io)
                    .await
                    .map_err(|_| ErrorKind::Connect)?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(Sender::H2(send))
            }
        }
    }
}

impl Sender {
    /// Another handle on this connection when it is shared between slots (HTTP/2, gRPC on
    /// the `h2` crate) and still open.
    pub fn share(&self) -> Option<Sender> {
        match self {
            Sender::H2(s) if !s.is_closed() => Some(Sender::H2(s.clone())),
            Sender::Grpc(c) if c.is_open() => Some(Sender::Grpc(c.clone())),
            _ => None,
        }
    }

    /// Takes in what the server sent while the connection sat idle (lean gRPC only: the other
    /// clients read as they go).
    pub fn refresh(&mut self) {
        if let Sender::GrpcLean(c) = self {
            c.refresh();
        }
    }

    /// False once the connection is closed.
    pub fn is_open(&self) -> bool {
        match self {
            Sender::Lean(c) => c.is_open(),
            Sender::H1(s) => !s.is_closed(),
            Sender::H2(s) => !s.is_closed(),
            Sender::Grpc(c) => c.is_open(),
            Sender::GrpcLean(c) => c.is_open(),
        }
    }

    /// Sends `req` and reads the body, stopping after `abandon_after` bytes if set.
    pub async fn exchange(
        &mut self,
        req: http::Request<Full<Bytes>>,
        abandon_after: Option<u64>,
    ) -> Exchange {
        let result = match self {
            Sender::Lean(_) | Sender::Grpc(_) | Sender::GrpcLean(_) => {
                return failed(ErrorKind::Other);
            }
            Sender::H1(s) => {
                if s.ready().await.is_err() {
                    return failed(ErrorKind::Reset);
                }
                s.send_request(req).await
            }
            Sender::H2(s) => {
                if s.ready().await.is_err() {
                    return failed(ErrorKind::Reset);
                }
                s.send_request(req).await
            }
        };
        let resp = match result {
            Ok(r) => r,
            Err(e) => return failed(classify(&e)),
        };
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut bytes = 0u64;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(d) = f.data_ref() {
                        bytes += d.len() as u64;
                        if abandon_after.is_some_and(|n| bytes >= n) {
                            // Dropping the body mid-way: h2 resets the stream, h1 must close.
                            return Exchange {
                                outcome: Outcome::Http(status),
                                bytes,
                                reusable: matches!(self, Sender::H2(_)),
                            };
                        }
                    }
                }
                Err(e) => {
                    return Exchange {
                        outcome: Outcome::Error(classify(&e)),
                        bytes,
                        reusable: false,
                    };
                }
            }
        }
        Exchange {
            outcome: Outcome::Http(status),
            bytes,
            reusable: true,
        }
    }
}

/// An exchange that got no response; its connection is not reused.
pub(crate) fn failed(kind: ErrorKind) -> Exchange {
    Exchange {
        outcome: Outcome::Error(kind),
        bytes: 0,
        reusable: false,
    }
}

/// An exchange that ended on a connection that stays usable (an HTTP/2 stream's end or reset
/// does not close its connection).
pub(crate) fn done(outcome: Outcome, bytes: u64) -> Exchange {
    Exchange {
        outcome,
        bytes,
        reusable: true,
    }
}

/// Reads more bytes into `buf` (growing it when nearly full); EOF is a reset, since callers
/// read only while a response is incomplete.
pub(crate) async fn read_more(
    io: &mut TcpStream,
    buf: &mut bytes::BytesMut,
) -> Result<usize, ErrorKind> {
    use tokio::io::AsyncReadExt;
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
pub fn io_kind(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            ErrorKind::Reset
        }
        K::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    }
}

/// Maps a hyper error to an error kind.
pub fn classify(e: &hyper::Error) -> ErrorKind {
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() || e.is_user() {
        return ErrorKind::Protocol;
    }
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return ErrorKind::Reset;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io_kind(io);
        }
        if s.downcast_ref::<h2::Error>().is_some() {
            return ErrorKind::Protocol;
        }
        source = s.source();
    }
    ErrorKind::Other
}
