//! The lean HTTP/1.1 client against scripted servers: answers without a body (to a HEAD, 204,
//! 304, interim 1xx) end at their head and leave the connection usable; a 101 ends it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use leakgate::load::h1::H1Conn;
use leakgate::load::http::Exchange;
use leakgate::load::stats::Outcome;

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
    let mut conn = H1Conn::connect(addr).await.unwrap();
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
