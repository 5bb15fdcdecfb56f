//! The one connection interface of the engine: which client serves a plan (chosen once, when
//! the load is prepared), how a connection is opened, and one exchange on it.
//!
//! | plan | client |
//! | --- | --- |
//! | HTTP/1.1, plain or TLS | `h1`: own, one task owns the socket |
//! | HTTP/2 REST or gRPC, h2c or TLS, one or several streams per connection | `h2conn`: own |
//!
//! Every client does the whole job (encode, send, read, classify); this module only routes.
//! The clients depend on `conn` and the wire helpers, never on this module.

use std::net::SocketAddr;
use std::sync::Arc;

use rand::rngs::SmallRng;
use tokio_rustls::TlsConnector;

use super::LoadError;
use super::conn::{self, Exchange, Io};
use super::h1::H1Conn;
use super::h2conn::{self, H2Conn};
use super::request::Mix;
use super::stats::{ErrorKind, Outcome, StreamStats};
use super::tls;
use crate::scenario::plan::{LoadPlan, Protocol};

/// Times a request on a shared connection is sent when the server refuses its stream.
const REFUSED_RETRIES: u32 = 8;

/// The client a plan runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Own HTTP/1.1 (`h1`).
    H1,
    /// Own HTTP/2 (`h2conn`), one stream per connection.
    H2,
    /// Own HTTP/2 (`h2conn`), connections shared by several streams.
    H2Shared,
}

impl Client {
    /// The client that serves `plan`.
    pub fn for_plan(plan: &LoadPlan) -> Client {
        match plan.protocol {
            Protocol::Http1 => Client::H1,
            Protocol::Http2 | Protocol::Grpc if plan.streams_per_connection <= 1 => Client::H2,
            Protocol::Http2 | Protocol::Grpc => Client::H2Shared,
        }
    }

    /// The protocol it asks a TLS server for by ALPN.
    pub fn alpn(self) -> &'static [u8] {
        match self {
            Client::H1 => b"http/1.1",
            Client::H2 | Client::H2Shared => b"h2",
        }
    }

    /// True when slots share connections (several streams each).
    pub fn shares_connections(self) -> bool {
        self == Client::H2Shared
    }
}

/// Opens connections to one origin for one client.
#[derive(Clone)]
pub struct Connector {
    addr: SocketAddr,
    tls: Option<(TlsConnector, rustls::pki_types::ServerName<'static>)>,
    client: Client,
}

impl Connector {
    /// A connector for `plan`'s client to `addr`; TLS with ALPN when the base URL is `https`.
    pub fn new(
        plan: &LoadPlan,
        addr: SocketAddr,
        host: &str,
        https: bool,
    ) -> Result<Self, LoadError> {
        let client = Client::for_plan(plan);
        let tls = if https {
            let cfg = tls::client_config(plan.insecure, &[client.alpn()]);
            let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
                LoadError::Plan(format!("\"{host}\" is not a valid TLS server name: {e}"))
            })?;
            Some((TlsConnector::from(Arc::new(cfg)), name))
        } else {
            None
        };
        Ok(Self { addr, tls, client })
    }

    /// The client connections are opened for.
    pub fn client(&self) -> Client {
        self.client
    }

    /// Opens one connection (TCP, then TLS for `https`).
    pub async fn connect(&self) -> Result<Conn, ErrorKind> {
        let tcp = conn::tcp(self.addr).await?;
        let io = match &self.tls {
            Some((tls, name)) => {
                let s = tls
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|_| ErrorKind::Connect)?;
                let io = Io::Tls(Box::new(s));
                // A server that did not choose the protocol asked for does not speak it.
                if io.alpn().is_some_and(|p| p != self.client.alpn()) {
                    return Err(ErrorKind::Protocol);
                }
                io
            }
            None => Io::Tcp(tcp),
        };
        Ok(match self.client {
            Client::H1 => Conn::H1(H1Conn::new(io)),
            Client::H2 => Conn::H2 {
                conn: H2Conn::new(io),
                shared: false,
            },
            Client::H2Shared => Conn::H2 {
                conn: H2Conn::new(io),
                shared: true,
            },
        })
    }
}

/// One open connection of any client.
pub enum Conn {
    /// Own HTTP/1.1.
    H1(H1Conn),
    /// A handle on an own HTTP/2 connection.
    H2 {
        /// The handle.
        conn: H2Conn,
        /// Other slots' handles share the connection.
        shared: bool,
    },
}

/// Scratch space a slot lends to every request it builds (reused, so building allocates
/// only for templated bodies).
#[derive(Default)]
pub struct Scratch {
    /// Template output.
    pub text: String,
    /// Encoded request bytes (HTTP/1.1) or HPACK literals (HTTP/2).
    pub bytes: Vec<u8>,
}

impl Conn {
    /// Another handle on this connection when it is shared between slots and still open.
    pub fn share(&self) -> Option<Conn> {
        match self {
            Conn::H2 { conn, shared: true } if conn.is_open() => Some(Conn::H2 {
                conn: conn.clone(),
                shared: true,
            }),
            _ => None,
        }
    }

    /// Takes in what the server sent while the connection sat idle, so a closed one is
    /// replaced before a request (HTTP/2; HTTP/1.1 reads as it goes).
    pub fn refresh(&mut self) {
        if let Conn::H2 { conn, .. } = self {
            conn.refresh();
        }
    }

    /// False once the connection cannot carry another request.
    pub fn is_open(&self) -> bool {
        match self {
            Conn::H1(c) => c.is_open(),
            Conn::H2 { conn, .. } => conn.is_open(),
        }
    }

    /// Sends request kind `i` of `mix` for arrival `seq` and reads the response, stopping
    /// after `abandon_after` body bytes (REST) or messages (gRPC) if set.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &mut self,
        mix: &Mix,
        i: usize,
        seq: u64,
        rng: &mut SmallRng,
        scratch: &mut Scratch,
        abandon_after: Option<u64>,
        stream: &mut StreamStats,
    ) -> Exchange {
        let grpc = mix.get(i).is_grpc();
        match self {
            Conn::H1(c) => {
                let head = mix.get(i).is_head();
                match mix.raw(i, seq, rng, &mut scratch.text, &mut scratch.bytes) {
                    Ok(raw) => c.exchange(raw, head, abandon_after).await,
                    Err(_) => unbuildable(),
                }
            }
            Conn::H2 { conn, shared } => {
                // A refused stream was not processed (RFC 9113 8.7): on a shared connection it
                // is sent again, a bounded number of times, since servers may count streams
                // that have just closed. With one stream per connection it is counted.
                let tries = if *shared { REFUSED_RETRIES } else { 1 };
                let mut x = conn::failed(ErrorKind::Refused);
                for attempt in 0..tries {
                    if attempt > 0 {
                        // A moment's wait, growing, within the request's own timeout.
                        tokio::time::sleep(std::time::Duration::from_millis(1 << attempt)).await;
                    }
                    let (body, fields) =
                        match mix.h2_parts(i, seq, rng, &mut scratch.text, &mut scratch.bytes) {
                            Ok(x) => x,
                            Err(_) => return unbuildable(),
                        };
                    let head = h2conn::Head {
                        kind: i,
                        fields,
                        extra: &scratch.bytes,
                    };
                    x = conn.send(head, &body, grpc, abandon_after, stream).await;
                    if x.outcome != Outcome::Error(ErrorKind::Refused) || !conn.is_open() {
                        break;
                    }
                }
                x
            }
        }
    }

    /// Ends the exchange in progress after its future was dropped (cut off by the request
    /// timeout or a `cancel_after`); true when the connection can carry another request.
    pub fn cut(&mut self) -> bool {
        match self {
            // The response may still arrive: the connection is out of step.
            Conn::H1(_) => false,
            // Dropping the exchange reset its stream.
            Conn::H2 { conn, .. } => conn.is_open(),
        }
    }
}

/// A request whose templates filled to something that cannot be sent (an invalid header
/// value or path): counted as an error, the connection stays.
fn unbuildable() -> Exchange {
    Exchange {
        reusable: true,
        ..conn::failed(ErrorKind::Other)
    }
}
