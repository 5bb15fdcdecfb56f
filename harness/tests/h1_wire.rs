//! The lean HTTP/1.1 client against scripted servers: answers without a body (to a HEAD, 204,
//! 304, interim 1xx) end at their head and leave the connection usable; a 101 ends it. Any
//! bytes a server sends before it closes (random, or a valid answer cut or corrupted) end the
//! exchange in bounded time, as a response or an error, never a panic.

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use leakgate::load::conn::{Exchange, Io};
use leakgate::load::h1::H1Conn;
use leakgate::load::stats::{ErrorKind, Outcome};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
const HEAD: &[u8] = b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n";
/// What a body-less answer is followed by on the same connection: 2 body bytes.
const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
/// Longest an exchange with a scripted server may take: they answer at once.
const BOUND: Duration = Duration::from_secs(5);

/// Reads one request head (the requests here have no body); false at EOF.
async fn read_head(s: &mut TcpStream) -> bool {
    let mut seen = Vec::new();
    let mut b = [0u8; 512];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&b[..n]),
        }
    }
    true
}

/// A server for one connection: answers each request with the next of `answers`, then
/// closes.
async fn serve(answers: Vec<&'static [u8]>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        for a in answers {
            if !read_head(&mut s).await || s.write_all(a).await.is_err() {
                return;
            }
        }
    });
    addr
}

/// Sends `requests` (bytes, is HEAD) in turn on one connection to a server answering with
/// `answers`; every exchange must end within `BOUND`.
async fn run(answers: Vec<&'static [u8]>, requests: &[(&[u8], bool)]) -> Vec<Exchange> {
    let addr = serve(answers).await;
    let mut conn = H1Conn::new(Io::Tcp(leakgate::load::conn::tcp(addr).await.unwrap()));
    let mut out = Vec::new();
    for (req, head) in requests {
        let x = tokio::time::timeout(BOUND, conn.exchange(req, *head, None))
            .await
            .expect("the exchange ends");
        assert_eq!(x.reusable, conn.is_open());
        out.push(x);
    }
    out
}

/// (outcome, bytes, reusable) of an exchange.
fn seen(x: &Exchange) -> (Outcome, u64, bool) {
    (x.outcome, x.bytes, x.reusable)
}

#[tokio::test]
async fn head_response_has_no_body_whatever_its_length_says() {
    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n";
    let x = run(vec![head, OK], &[(HEAD, true), (GET, false)]).await;
    assert_eq!(seen(&x[0]), (Outcome::Http(200), 0, true));
    // The connection was left at the next answer's start.
    assert_eq!(seen(&x[1]), (Outcome::Http(200), 2, true));
}

#[tokio::test]
async fn head_response_that_is_chunked_has_no_body() {
    let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
    let x = run(vec![head, OK], &[(HEAD, true), (GET, false)]).await;
    assert_eq!(seen(&x[0]), (Outcome::Http(200), 0, true));
    assert_eq!(seen(&x[1]), (Outcome::Http(200), 2, true));
}

#[tokio::test]
async fn no_content_and_not_modified_have_no_body() {
    let no_content = b"HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n";
    let not_modified = b"HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n";
    let x = run(
        vec![no_content, not_modified, OK],
        &[(GET, false), (GET, false), (GET, false)],
    )
    .await;
    assert_eq!(seen(&x[0]), (Outcome::Http(204), 0, true));
    assert_eq!(seen(&x[1]), (Outcome::Http(304), 0, true));
    assert_eq!(seen(&x[2]), (Outcome::Http(200), 2, true));
}

#[tokio::test]
async fn interim_answers_precede_the_real_one() {
    // 100 and 103 with a (meaningless) length, then the answer, in one write.
    let answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\ncontent-length: 3\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let x = run(vec![answer, OK], &[(GET, false), (GET, false)]).await;
    assert_eq!(seen(&x[0]), (Outcome::Http(200), 2, true));
    assert_eq!(seen(&x[1]), (Outcome::Http(200), 2, true));
}

#[tokio::test]
async fn switching_protocols_ends_the_connection() {
    let up =
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n";
    let x = run(vec![up], &[(GET, false)]).await;
    assert_eq!(seen(&x[0]), (Outcome::Http(101), 0, false));
}

#[tokio::test]
async fn an_endless_trailer_line_is_a_protocol_error() {
    let mut flood = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx: ".to_vec();
    flood.resize(flood.len() + 100 * 1024, b'a');
    // The connection stays open behind it (the server waits for a next request).
    let flood: &'static [u8] = flood.leak();
    let x = run(vec![flood, OK], &[(GET, false)]).await;
    assert_eq!(seen(&x[0]), (Outcome::Error(ErrorKind::Protocol), 0, false));
}

/// `cases` per property, no regression files written into the tree.
fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// The exchange of one request (a HEAD if `head`) with a server that answers `bytes` and
/// closes; it must end within `BOUND`.
fn answer_then_close(bytes: Vec<u8>, head: bool) -> Exchange {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            if read_head(&mut s).await {
                let _ = s.write_all(&bytes).await;
            }
        });
        let mut conn = H1Conn::new(Io::Tcp(leakgate::load::conn::tcp(addr).await.unwrap()));
        let request = if head { HEAD } else { GET };
        let x = tokio::time::timeout(BOUND, conn.exchange(request, head, None))
            .await
            .expect("the exchange ends once the server has closed");
        server.await.unwrap();
        x
    })
}

/// A valid answer, its status and body length: an optional 100 Continue first, then a body
/// framed by length, chunks or the close (none for a HEAD, 204 or 304).
#[derive(Debug, Clone)]
struct Answer {
    bytes: Vec<u8>,
    status: u16,
    body: u64,
    head: bool,
}

fn answer() -> impl Strategy<Value = Answer> {
    (
        prop::sample::select(&[200u16, 204, 304, 404, 503][..]),
        0..3u8,
        prop::collection::vec(1..300usize, 0..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(status, framing, chunks, interim, head)| {
            let bodiless = head || status == 204 || status == 304;
            let mut b = Vec::new();
            if interim {
                b.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            b.extend_from_slice(format!("HTTP/1.1 {status} X\r\nserver: prop\r\n").as_bytes());
            let len: usize = chunks.iter().sum();
            match framing {
                0 => b.extend_from_slice(format!("content-length: {len}\r\n\r\n").as_bytes()),
                1 => b.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n"),
                _ => b.extend_from_slice(b"connection: close\r\n\r\n"),
            }
            if !bodiless {
                if framing == 1 {
                    for c in &chunks {
                        b.extend_from_slice(format!("{c:x};ext=1\r\n").as_bytes());
                        b.resize(b.len() + c, b'x');
                        b.extend_from_slice(b"\r\n");
                    }
                    b.extend_from_slice(b"0\r\ntrailer: t\r\n\r\n");
                } else {
                    b.resize(b.len() + len, b'x');
                }
            }
            Answer {
                bytes: b,
                status,
                body: if bodiless { 0 } else { len as u64 },
                head,
            }
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn random_bytes_end_the_exchange(
        status_line in any::<bool>(),
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        head in any::<bool>(),
    ) {
        // Half the cases behind a valid status line, so the random part meets the headers'
        // and the body's parsers too.
        let mut b = if status_line { b"HTTP/1.1 200 OK\r\n".to_vec() } else { Vec::new() };
        b.extend_from_slice(&bytes);
        answer_then_close(b, head);
    }

    #[test]
    fn cut_answers_end_the_exchange(a in answer(), cut in any::<Index>()) {
        let cut = cut.index(a.bytes.len() + 1);
        let x = answer_then_close(a.bytes[..cut].to_vec(), a.head);
        if cut == a.bytes.len() {
            // Whole: the answer, all of its body.
            prop_assert_eq!((x.outcome, x.bytes), (Outcome::Http(a.status), a.body));
        }
    }

    #[test]
    fn corrupted_answers_end_the_exchange(
        a in answer(),
        flips in prop::collection::vec((any::<Index>(), any::<u8>()), 1..6),
    ) {
        let mut b = a.bytes.clone();
        for (at, v) in flips {
            let i = at.index(b.len());
            b[i] = v;
        }
        answer_then_close(b, a.head);
    }
}
