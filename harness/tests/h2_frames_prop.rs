//! The own HTTP/2 client's frame reader (`load::h2conn`) against scripted servers: after a
//! valid preface and the client's requests, any frames a server sends before it closes
//! (random ones, or valid answers cut or corrupted) end every call in flight in bounded time,
//! as a response or an error, never a panic; with one to three streams sharing the connection.

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use leakgate::load::conn::{Exchange, Io};
use leakgate::load::h2conn::{H2Conn, Head};
use leakgate::load::h2wire::{self as wire, flag, kind};
use leakgate::load::hpack::{Field, index};
use leakgate::load::stats::{Outcome, StreamStats};

/// Longest the calls on a scripted connection may take: the server answers at once.
const BOUND: Duration = Duration::from_secs(5);

/// `cases` per property, no regression files written into the tree.
fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Reads the client's preface and frames until `streams` HEADERS frames have arrived; false
/// if the client closed first.
async fn read_requests(s: &mut TcpStream, streams: usize) -> bool {
    let mut buf = vec![0u8; wire::PREFACE.len()];
    if s.read_exact(&mut buf).await.is_err() || buf != wire::PREFACE {
        return false;
    }
    let mut seen = 0;
    while seen < streams {
        let mut head = [0u8; wire::HEAD_LEN];
        if s.read_exact(&mut head).await.is_err() {
            return false;
        }
        let h = wire::Head::parse(&head);
        let mut payload = vec![0u8; h.len];
        if s.read_exact(&mut payload).await.is_err() {
            return false;
        }
        seen += usize::from(h.kind == kind::HEADERS);
    }
    true
}

/// A server that sends its preface (an empty SETTINGS), waits for `streams` requests, answers
/// `bytes`, closes its side and reads on until the client has gone.
async fn serve(bytes: Vec<u8>, streams: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut preface = Vec::new();
        wire::settings(&mut preface, &[]);
        if s.write_all(&preface).await.is_err() {
            return;
        }
        if read_requests(&mut s, streams).await {
            let _ = s.write_all(&bytes).await;
        }
        let _ = s.shutdown().await;
        let mut sink = [0u8; 4096];
        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    addr
}

/// `streams` GET calls at once on one connection to a server that answers `bytes`; they must
/// all end within `BOUND`.
fn calls(bytes: Vec<u8>, streams: usize) -> Vec<Exchange> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&rt, async move {
        let addr = serve(bytes, streams).await;
        let tcp = leakgate::load::conn::tcp(addr).await.unwrap();
        let conn = H2Conn::new(Io::Tcp(tcp));
        // One task per call, as the engine's slots are: a call's task is woken only for its own
        // reasons (its end, the read handed over to it), never polled along with the others.
        let all = (0..streams).map(|_| {
            let mut handle = conn.clone();
            tokio::task::spawn_local(async move {
                let fields = [
                    Field::Static(index::METHOD_GET),
                    Field::Static(index::SCHEME_HTTP),
                    Field::Static(index::PATH),
                ];
                let head = Head {
                    kind: 0,
                    fields: &fields,
                    extra: &[],
                };
                let mut stream = StreamStats::default();
                handle.send(head, &[], false, None, &mut stream).await
            })
        });
        let ended = tokio::time::timeout(BOUND, futures_util::future::join_all(all))
            .await
            .expect("every call ends once the server has closed");
        ended.into_iter().map(|x| x.unwrap()).collect()
    })
}

/// One frame: its type, flags, stream and payload.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    wire::head(out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
}

/// A valid answer to the GETs on streams 1, 3, …: `:status 200` and a 2-byte body each.
fn valid_answer(streams: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for s in 0..streams as u32 {
        // 0x88: `:status: 200` from the static table.
        frame(&mut b, kind::HEADERS, flag::END_HEADERS, 1 + 2 * s, &[0x88]);
        frame(&mut b, kind::DATA, flag::END_STREAM, 1 + 2 * s, b"ok");
    }
    b
}

/// A frame of any type (the defined ones, and a few unknown), any flags, on the connection, a
/// live stream or a stream never opened, with a payload that is random or well formed for its
/// type.
fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        0..12u8,
        any::<u8>(),
        prop::sample::select(&[0u32, 1, 3, 5, 7, 0x7fff_ffff][..]),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..48),
    )
        .prop_map(|(kind, flags, stream, shaped, random)| {
            let payload = if shaped {
                match kind {
                    kind::HEADERS | kind::CONTINUATION => vec![0x88],
                    kind::DATA => b"ok".to_vec(),
                    kind::SETTINGS => random[..random.len() / 6 * 6].to_vec(),
                    kind::RST_STREAM | kind::WINDOW_UPDATE => {
                        random.iter().copied().chain([1; 4]).take(4).collect()
                    }
                    kind::PING | kind::GOAWAY => {
                        random.iter().copied().chain([0; 8]).take(8).collect()
                    }
                    _ => random,
                }
            } else {
                random
            };
            let mut b = Vec::new();
            frame(&mut b, kind, flags, stream, &payload);
            b
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn random_frames_end_every_call(
        frames in prop::collection::vec(any_frame(), 0..12),
        streams in 1..4usize,
    ) {
        calls(frames.concat(), streams);
    }

    #[test]
    fn cut_answers_end_every_call(streams in 1..4usize, cut in any::<Index>()) {
        let answer = valid_answer(streams);
        let cut = cut.index(answer.len() + 1);
        let got = calls(answer[..cut].to_vec(), streams);
        if cut == answer.len() {
            // Whole: every call gets its status and both body bytes.
            for x in got {
                prop_assert_eq!((x.outcome, x.bytes), (Outcome::Http(200), 2));
            }
        }
    }

    #[test]
    fn corrupted_answers_end_every_call(
        streams in 1..4usize,
        flips in prop::collection::vec((any::<Index>(), any::<u8>()), 1..6),
    ) {
        let mut b = valid_answer(streams);
        for (at, v) in flips {
            let i = at.index(b.len());
            b[i] = v;
        }
        calls(b, streams);
    }
}
