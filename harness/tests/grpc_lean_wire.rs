//! The lean h2c gRPC client (single-call connections) against scripted HTTP/2 servers:
//! flow control in both directions, SETTINGS and PING answered, a shrunken HPACK table
//! honoured; GOAWAY, early closes and garbage end as counted errors, never a panic.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leakgate::load::h2wire::{self as wire, Head, flag, kind};
use leakgate::scenario::plan::{GrpcPlan, LoadPlan, Protocol, Rate};

/// What the scripted server saw.
#[derive(Debug, Default)]
struct Seen {
    /// Complete requests with the expected path and `te: trailers`.
    requests: u64,
    /// Request bytes per call (all DATA of the stream).
    request_bytes: Vec<usize>,
    /// PING acknowledgements received.
    ping_acks: u64,
    /// Times the client sent more DATA than the window allowed.
    window_violations: u64,
    /// HPACK blocks the server could not decode.
    hpack_errors: u64,
    /// Connections accepted.
    connections: u64,
    /// GOAWAY frames the client sent.
    goaways: u64,
}

/// How a scripted server handles one connection.
type Script = fn(TcpStream, &Mutex<Seen>);

/// Serves every accepted connection with `script` on its own thread; returns the address.
fn serve(script: Script, seen: Arc<Mutex<Seen>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                script(s, &seen);
            });
        }
    });
    addr
}

fn read_frame(s: &mut TcpStream) -> Option<(Head, Vec<u8>)> {
    let mut h = [0u8; wire::HEAD_LEN];
    s.read_exact(&mut h).ok()?;
    let h = Head::parse(&h);
    let mut p = vec![0u8; h.len];
    s.read_exact(&mut p).ok()?;
    Some((h, p))
}

const SERVER_STREAM_WINDOW: i64 = 1000;
/// Response bytes per call: three times the client's 1 MiB stream window.
const MESSAGE: usize = 64 * 1024;
const MESSAGES: usize = 48;

/// The strict server's view of one connection.
struct Conn<'a> {
    s: TcpStream,
    seen: &'a Mutex<Seen>,
    dec: loona_hpack::Decoder<'static>,
    /// The client's windows for what we send: the connection's and a new stream's.
    conn_window: i64,
    stream_init: i64,
    /// The window of the stream being answered.
    stream_window: i64,
    /// What the client may still send us on each stream.
    windows: std::collections::HashMap<u32, i64>,
    /// The client has acknowledged our SETTINGS (our window and table size apply).
    acked: bool,
}

impl Conn<'_> {
    /// SETTINGS, their ACK, PING ACK and WINDOW_UPDATE; other frames are left to the caller.
    fn control(&mut self, h: &Head, p: &[u8], answering: u32) {
        match h.kind {
            kind::SETTINGS if !h.has(flag::ACK) => {
                for e in p.chunks_exact(6) {
                    if u16::from_be_bytes([e[0], e[1]]) == 4 {
                        self.stream_init = i64::from(u32::from_be_bytes([e[2], e[3], e[4], e[5]]));
                    }
                }
                let mut a = Vec::new();
                wire::settings_ack(&mut a);
                self.s.write_all(&a).unwrap();
            }
            kind::SETTINGS => {
                // From here the client's encoder must fit our 64-byte table, and streams
                // opened before get our small window (RFC 9113 6.9.2).
                self.dec.set_max_allowed_table_size(64);
                for w in self.windows.values_mut() {
                    *w += SERVER_STREAM_WINDOW - wire::DEFAULT_WINDOW;
                }
                self.acked = true;
            }
            kind::PING if h.has(flag::ACK) => self.seen.lock().unwrap().ping_acks += 1,
            kind::WINDOW_UPDATE => {
                let inc = i64::from(u32::from_be_bytes([p[0], p[1], p[2], p[3]]));
                if h.stream == 0 {
                    self.conn_window += inc;
                } else if h.stream == answering {
                    self.stream_window += inc;
                }
            }
            _ => {}
        }
    }

    /// Streams the 3 MiB answer on `stream`, only as the client's windows allow.
    fn answer(&mut self, stream: u32, enc: &mut loona_hpack::Encoder<'static>) {
        let mut a = Vec::new();
        let head = enc.encode([
            (&b":status"[..], &b"200"[..]),
            (b"content-type", b"application/grpc"),
        ]);
        wire::headers(&mut a, stream, &head, 16_384, false);
        self.s.write_all(&a).unwrap();
        self.stream_window = self.stream_init;
        let mut body = Vec::new();
        for _ in 0..MESSAGES {
            body.push(0);
            body.extend_from_slice(&(MESSAGE as u32 - 5).to_be_bytes());
            body.resize(body.len() + MESSAGE - 5, 7);
        }
        let mut at = 0;
        while at < body.len() {
            let room = self.stream_window.min(self.conn_window).min(16_384);
            if room <= 0 {
                // Wait for the client's WINDOW_UPDATE.
                let Some((h, p)) = read_frame(&mut self.s) else {
                    return;
                };
                self.control(&h, &p, stream);
                continue;
            }
            let n = (room as usize).min(body.len() - at);
            a.clear();
            wire::data(&mut a, stream, &body[at..at + n], false);
            self.s.write_all(&a).unwrap();
            at += n;
            self.stream_window -= n as i64;
            self.conn_window -= n as i64;
        }
        a.clear();
        let trailers = enc.encode([(&b"grpc-status"[..], &b"0"[..])]);
        wire::headers(&mut a, stream, &trailers, 16_384, true);
        self.s.write_all(&a).unwrap();
    }
}

/// A strict server: a tiny stream window and HPACK table for the client, a PING, and a 3 MiB
/// streamed answer sent only as the client's windows allow.
fn strict(mut s: TcpStream, seen: &Mutex<Seen>) {
    let mut pre = [0u8; 24];
    if s.read_exact(&mut pre).is_err() || pre != wire::PREFACE {
        return;
    }
    let mut out = Vec::new();
    // INITIAL_WINDOW_SIZE and HEADER_TABLE_SIZE.
    wire::settings(&mut out, &[(4, SERVER_STREAM_WINDOW as u32), (1, 64)]);
    wire::head(&mut out, 8, kind::PING, 0, 0);
    out.extend_from_slice(b"12345678");
    s.write_all(&out).unwrap();
    let mut c = Conn {
        s,
        seen,
        dec: loona_hpack::Decoder::new(),
        conn_window: wire::DEFAULT_WINDOW,
        stream_init: wire::DEFAULT_WINDOW,
        stream_window: 0,
        windows: Default::default(),
        acked: false,
    };
    let mut enc = loona_hpack::Encoder::new();
    let mut got = 0usize;
    let mut ok_head = false;
    while let Some((h, p)) = read_frame(&mut c.s) {
        match h.kind {
            kind::HEADERS => {
                let mut path_ok = false;
                let mut te = false;
                match c.dec.decode_with_cb(&p, |n, v| {
                    path_ok |= &*n == b":path" && &*v == b"/leakgate.target.v1.Target/Put";
                    te |= &*n == b"te" && &*v == b"trailers";
                }) {
                    Ok(()) => ok_head = path_ok && te,
                    Err(_) => c.seen.lock().unwrap().hpack_errors += 1,
                }
                let w = if c.acked {
                    SERVER_STREAM_WINDOW
                } else {
                    wire::DEFAULT_WINDOW
                };
                c.windows.insert(h.stream, w);
                got = 0;
            }
            kind::DATA => {
                got += p.len();
                let w = c.windows.entry(h.stream).or_insert(0);
                *w -= p.len() as i64;
                if *w < 0 {
                    c.seen.lock().unwrap().window_violations += 1;
                }
                if !p.is_empty() {
                    // Hand the bytes back at once, to the stream and the connection.
                    *w += p.len() as i64;
                    let mut a = Vec::new();
                    wire::window_update(&mut a, h.stream, p.len() as u32);
                    wire::window_update(&mut a, 0, p.len() as u32);
                    c.s.write_all(&a).unwrap();
                }
                if h.has(flag::END_STREAM) {
                    {
                        let mut g = c.seen.lock().unwrap();
                        g.requests += u64::from(ok_head);
                        g.request_bytes.push(got);
                    }
                    c.answer(h.stream, &mut enc);
                }
            }
            _ => c.control(&h, &p, 0),
        }
    }
}

fn plan(addr: &str, body: &str, secs: f64) -> LoadPlan {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets/proto");
    let mut p = common::plan(
        &format!("http://{addr}"),
        "leakgate.target.v1.Target/Put",
        Rate::Constant { rps: 20.0 },
        secs,
        2,
    );
    p.protocol = Protocol::Grpc;
    p.streams_per_connection = 1;
    p.timeout = Duration::from_secs(5);
    p.requests[0].body = Some(body.into());
    p.grpc = Some(GrpcPlan {
        protos: vec![dir.join("leakgate/target/v1/target.proto")],
        import_paths: vec![dir],
        protoset: None,
        reflection: false,
        streaming: false,
    });
    p
}

#[test]
fn flow_control_settings_and_ping_are_honoured_both_ways() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let addr = serve(strict, seen.clone());
    // A 100 000-byte value: a hundred times the 1 000-byte window the server grants.
    let value = base64_of(&vec![42u8; 100_000]);
    let (r, _) = common::run(&plan(
        &addr,
        &format!(r#"{{"key": "k", "value": "{value}"}}"#),
        1.0,
    ));
    assert_eq!(r.status.get("OK"), Some(&20), "{r:?}");
    assert_eq!(r.messages_per_stream, Some(MESSAGES as f64), "{r:?}");
    assert_eq!(r.bytes, 20 * (MESSAGE * MESSAGES) as u64, "{r:?}");
    let g = seen.lock().unwrap();
    assert_eq!(g.requests, 20, "{g:?}");
    // Field 1 "k" (3 bytes), field 2 (100 000 bytes, 3-byte length), 5-byte gRPC prefix.
    assert!(
        g.request_bytes
            .iter()
            .all(|&b| b == 5 + 3 + 1 + 3 + 100_000),
        "{g:?}"
    );
    assert_eq!(g.window_violations, 0, "{g:?}");
    assert_eq!(g.hpack_errors, 0, "{g:?}");
    assert_eq!(g.ping_acks, 2, "one per connection: {g:?}");
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Answers like an HTTP/1.1 server.
fn http1(mut s: TcpStream, _: &Mutex<Seen>) {
    let mut b = [0u8; 1024];
    let _ = s.read(&mut b);
    let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
}

/// Closes every connection at once.
fn closes(_: TcpStream, _: &Mutex<Seen>) {}

/// SETTINGS, then GOAWAY before any stream.
fn goaway(mut s: TcpStream, _: &Mutex<Seen>) {
    let mut out = Vec::new();
    wire::settings(&mut out, &[]);
    wire::head(&mut out, 8, kind::GOAWAY, 0, 0);
    out.extend_from_slice(&[0; 8]);
    let _ = s.write_all(&out);
    let mut b = [0u8; 4096];
    while matches!(s.read(&mut b), Ok(n) if n > 0) {}
}

/// Answers every request with a header block that is not valid HPACK (index 0).
fn bad_hpack(mut s: TcpStream, _: &Mutex<Seen>) {
    let mut pre = [0u8; 24];
    if s.read_exact(&mut pre).is_err() {
        return;
    }
    while let Some((h, _)) = read_frame(&mut s) {
        if h.kind == kind::HEADERS {
            let mut out = Vec::new();
            wire::headers(&mut out, h.stream, &[0x80], 16_384, true);
            let _ = s.write_all(&out);
        }
    }
}

/// Answers with pseudo-random bytes.
fn noise(mut s: TcpStream, _: &Mutex<Seen>) {
    let mut b = [0u8; 1024];
    let _ = s.read(&mut b);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let _ = s.write_all(&junk);
}

#[test]
fn broken_servers_give_counted_errors() {
    let cases: [(&str, Script, &[&str]); 5] = [
        ("http1", http1, &["protocol"]),
        ("closes", closes, &["reset"]),
        ("goaway", goaway, &["reset"]),
        ("bad hpack", bad_hpack, &["protocol"]),
        ("noise", noise, &["protocol", "reset"]),
    ];
    for (name, script, kinds) in cases {
        let addr = serve(script, Arc::default());
        let (r, _) = common::run(&plan(&addr, r#"{"key": "k"}"#, 0.5));
        assert_eq!(r.completed, r.planned, "{name}: {r:?}");
        assert!(r.planned >= 9, "{name}: {r:?}");
        let counted: u64 = kinds.iter().filter_map(|k| r.errors.get(*k)).sum();
        assert_eq!(counted, r.completed, "{name}: {r:?}");
        assert!(r.status.is_empty(), "{name}: {r:?}");
    }
}

/// Serves calls plainly (an empty OK message each) after `first` (frames sent before the
/// server's SETTINGS) and `per_stream` (frames sent on each new stream before the answer).
fn respond(mut s: TcpStream, seen: &Mutex<Seen>, first: &[u8], per_stream: fn(u32) -> Vec<u8>) {
    seen.lock().unwrap().connections += 1;
    let mut pre = [0u8; 24];
    if s.read_exact(&mut pre).is_err() {
        return;
    }
    let mut out = first.to_vec();
    wire::settings(&mut out, &[]);
    let _ = s.write_all(&out);
    let mut enc = loona_hpack::Encoder::new();
    while let Some((h, _)) = read_frame(&mut s) {
        match h.kind {
            kind::GOAWAY => seen.lock().unwrap().goaways += 1,
            kind::SETTINGS if !h.has(flag::ACK) => {
                let mut a = Vec::new();
                wire::settings_ack(&mut a);
                let _ = s.write_all(&a);
            }
            kind::DATA if h.has(flag::END_STREAM) => {
                let mut a = per_stream(h.stream);
                let head = enc.encode([
                    (&b":status"[..], &b"200"[..]),
                    (b"content-type", b"application/grpc"),
                ]);
                wire::headers(&mut a, h.stream, &head, 16_384, false);
                wire::data(&mut a, h.stream, &[0, 0, 0, 0, 0], false);
                let t = enc.encode([(&b"grpc-status"[..], &b"0"[..])]);
                wire::headers(&mut a, h.stream, &t, 16_384, true);
                let _ = s.write_all(&a);
            }
            _ => {}
        }
    }
}

fn nothing(_: u32) -> Vec<u8> {
    Vec::new()
}

/// A well-behaved server (the control case).
fn plain(s: TcpStream, seen: &Mutex<Seen>) {
    respond(s, seen, &[], nothing);
}

/// Sends a PING before its SETTINGS: not an HTTP/2 server preface (RFC 9113 3.4).
fn no_preface(s: TcpStream, seen: &Mutex<Seen>) {
    let mut first = Vec::new();
    wire::head(&mut first, 8, kind::PING, 0, 0);
    first.extend_from_slice(&[0; 8]);
    respond(s, seen, &first, nothing);
}

/// Refuses every stream (REFUSED_STREAM), as an overloaded server does.
fn refuses(s: TcpStream, seen: &Mutex<Seen>) {
    fn refuse(stream: u32) -> Vec<u8> {
        let mut a = Vec::new();
        wire::head(&mut a, 4, kind::RST_STREAM, 0, stream);
        a.extend_from_slice(&7u32.to_be_bytes());
        a
    }
    respond(s, seen, &[], refuse);
}

/// Grows every stream's send window past 2^31-1 before answering: a stream error.
fn overflows(s: TcpStream, seen: &Mutex<Seen>) {
    fn overflow(stream: u32) -> Vec<u8> {
        let mut a = Vec::new();
        wire::window_update(&mut a, stream, 0x7fff_ffff);
        a
    }
    respond(s, seen, &[], overflow);
}

#[test]
fn stream_errors_end_the_stream_and_connection_errors_the_connection() {
    // (server, outcome counted per call, whether each slot keeps its one connection)
    let cases: [(&str, Script, &str, bool); 4] = [
        ("plain", plain, "OK", true),
        ("no preface", no_preface, "protocol", false),
        ("refuses", refuses, "refused", true),
        ("window overflow", overflows, "protocol", true),
    ];
    for (name, script, counted, kept) in cases {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let addr = serve(script, seen.clone());
        let (r, _) = common::run(&plan(&addr, r#"{"key": "k"}"#, 0.5));
        assert!(r.planned >= 9, "{name}: {r:?}");
        assert_eq!(r.completed, r.planned, "{name}: {r:?}");
        let n = r.status.get(counted).or(r.errors.get(counted));
        assert_eq!(n, Some(&r.completed), "{name}: {r:?}");
        let connections = seen.lock().unwrap().connections;
        if kept {
            // A refused or reset stream leaves the connection as it was: no retry storm,
            // no reconnect per call (two slots, two connections).
            assert!(connections <= 2, "{name}: {connections} connections");
        } else {
            assert!(
                connections >= r.completed,
                "{name}: {connections} connections"
            );
        }
    }
}

#[test]
fn the_client_says_goaway_when_it_closes() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let addr = serve(plain, seen.clone());
    let (r, _) = common::run(&plan(&addr, r#"{"key": "k"}"#, 0.3));
    assert_eq!(r.status.get("OK"), Some(&r.completed), "{r:?}");
    // The server thread reads the GOAWAY after the run returns: wait for it, bounded.
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().goaways < 2 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(seen.lock().unwrap().goaways, 2, "one per connection");
}
