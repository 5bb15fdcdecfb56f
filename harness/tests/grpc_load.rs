//! gRPC through the engine against the real grpc-target: methods from .proto, protoset and
//! reflection; unary and server-streaming calls; abandoned streams seen server-side. Each test
//! runs on multiplexed connections (several streams each) and on single-call connections, the
//! two ways the own HTTP/2 client carries real runs. The metadata a plan sets is checked where it lands:
//! a test-local gRPC server keeps every call it receives.

mod common;

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};

use leakgate::scenario::placeholders::default_bin_dir;
use leakgate::scenario::plan::{GrpcPlan, Protocol, Rate};

struct Target {
    child: Child,
    grpc: String,
    admin: String,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bin() -> PathBuf {
    leakgate::run::target::ensure_built("grpc-target").expect("grpc-target builds");
    default_bin_dir().join("grpc-target")
}

fn start(args: &[&str]) -> Target {
    let mut child = Command::new(bin())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = |name: &str| {
        let l = lines.next().unwrap().unwrap();
        l.strip_prefix(&format!("listening {name}="))
            .unwrap()
            .to_string()
    };
    let grpc = addr("grpc");
    let admin = addr("admin");
    Target { child, grpc, admin }
}

fn metric(t: &Target, name: &str) -> f64 {
    let mut s = TcpStream::connect(&t.admin).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Reads `name` until it equals `want` (the server's gauges move after the client is done),
/// for at most 10 s; returns the last value read.
fn metric_settles(t: &Target, name: &str, want: f64) -> f64 {
    let start = Instant::now();
    loop {
        let v = metric(t, name);
        if v == want || start.elapsed() > Duration::from_secs(10) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One call as the recording server received it.
struct Call {
    path: String,
    metadata: http::HeaderMap,
    /// The request's length-prefixed message.
    message: Bytes,
}

/// A gRPC server (HTTP/2 without TLS) that keeps every call it receives and answers each with
/// one empty message and status OK, so a test can check what the client sent.
fn recording_server() -> (String, Arc<Mutex<Vec<Call>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let kept = calls.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            loop {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| record(req, kept.clone()));
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
    });
    (addr, calls)
}

async fn record(
    req: hyper::Request<hyper::body::Incoming>,
    calls: Arc<Mutex<Vec<Call>>>,
) -> Result<hyper::Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let (parts, body) = req.into_parts();
    let message = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    calls.lock().unwrap().push(Call {
        path: parts.uri.path().to_string(),
        metadata: parts.headers,
        message,
    });
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames = futures_util::stream::iter([
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
        Ok(Frame::trailers(trailers)),
    ]);
    Ok(hyper::Response::builder()
        .header("content-type", "application/grpc")
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .unwrap())
}

/// The `key` (field 1) of a length-prefixed WatchRequest/GetRequest message.
fn key_of(message: &[u8]) -> String {
    assert!(message.len() >= 7 && message[0] == 0, "{message:?}");
    let body = &message[5..];
    assert_eq!(body[0], 0x0a, "{message:?}");
    let len = usize::from(body[1]);
    String::from_utf8(body[2..2 + len].to_vec()).unwrap()
}

fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets/proto")
}

/// Streams per connection the tests run with: 4 (shared `h2` connections), 1 (lean client).
const STREAMS: [usize; 2] = [4, 1];

fn grpc_plan(
    t: &Target,
    method: &str,
    body: &str,
    g: Option<GrpcPlan>,
    streams: usize,
) -> leakgate::scenario::plan::LoadPlan {
    let mut p = common::plan(
        &format!("http://{}", t.grpc),
        method,
        Rate::Constant { rps: 200.0 },
        1.0,
        2,
    );
    p.protocol = Protocol::Grpc;
    // Eight call slots either way.
    p.connections = 8 / streams;
    p.streams_per_connection = streams;
    p.requests[0].body = Some(body.into());
    p.grpc = g;
    p
}

fn protos() -> Option<GrpcPlan> {
    Some(GrpcPlan {
        protos: vec![proto_dir().join("leakgate/target/v1/target.proto")],
        import_paths: vec![proto_dir()],
        protoset: None,
        reflection: false,
        streaming: false,
    })
}

#[test]
fn unary_via_proto_protoset_and_reflection() {
    for streams in STREAMS {
        unary_via(streams);
    }
}

fn unary_via(streams: usize) {
    let t = start(&["--leak", "unbounded-cache"]);
    let (r, _) = common::run(&grpc_plan(
        &t,
        "leakgate.target.v1.Target/Get",
        r#"{"key": "p{{seq}}"}"#,
        protos(),
        streams,
    ));
    assert_eq!(r.status.get("OK"), Some(&200), "{r:?}");
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("t.protoset");
    assert!(
        Command::new(bin())
            .arg("--write-protoset")
            .arg(&set)
            .status()
            .unwrap()
            .success()
    );
    let g = GrpcPlan {
        protos: vec![],
        import_paths: vec![],
        protoset: Some(set),
        reflection: false,
        streaming: false,
    };
    let (r, _) = common::run(&grpc_plan(
        &t,
        "/leakgate.target.v1.Target/Get",
        r#"{"key": "s{{seq}}"}"#,
        Some(g),
        streams,
    ));
    assert_eq!(r.status.get("OK"), Some(&200), "{r:?}");
    let (r, _) = common::run(&grpc_plan(
        &t,
        "leakgate.target.v1.Target/Get",
        r#"{"key": "r{{seq}}"}"#,
        None,
        streams,
    ));
    assert_eq!(r.status.get("OK"), Some(&200), "{r:?}");
    // Three distinct key families reached the server's cache.
    assert_eq!(metric(&t, "cache_entries"), 600.0);
}

#[test]
fn abandoned_streams_are_seen_server_side() {
    for streams in STREAMS {
        abandoned_seen(streams);
    }
}

fn abandoned_seen(streams: usize) {
    let t = start(&["--leak", "leaked-tasks"]);
    let mut p = grpc_plan(
        &t,
        "leakgate.target.v1.Target/Watch",
        r#"{"key": "w{{seq}}"}"#,
        protos(),
        streams,
    );
    p.requests[0].behaviour.abandon_after = Some(1);
    let (r, _) = common::run(&p);
    assert_eq!(r.status.get("OK"), Some(&200), "{r:?}");
    assert_eq!(
        r.messages_per_stream,
        Some(1.0),
        "abandoned after the first message"
    );
    // The leaky producers never end: every abandoned stream stays open.
    assert_eq!(metric_settles(&t, "open_streams", 200.0), 200.0);
    let fixed = start(&["--task-timeout", "60s"]);
    let mut p = grpc_plan(
        &fixed,
        "leakgate.target.v1.Target/Watch",
        r#"{"key": "w{{seq}}"}"#,
        protos(),
        streams,
    );
    p.requests[0].behaviour.abandon_after = Some(1);
    let (r, _) = common::run(&p);
    assert_eq!(r.status.get("OK"), Some(&200), "{r:?}");
    // The fixed producer noticed every reset stream long before its timeout (60 s; the wait
    // is at most 10 s).
    assert_eq!(metric_settles(&fixed, "open_streams", 0.0), 0.0);
}

#[test]
fn bad_method_and_bad_json_are_plan_errors() {
    let streams = 1;
    let t = start(&[]);
    let e = leakgate::load::prepare(&grpc_plan(
        &t,
        "leakgate.target.v1.Target/Nope",
        "{}",
        protos(),
        streams,
    ))
    .err()
    .unwrap();
    assert!(
        e.is_plan_error() && e.to_string().contains("has no method \"Nope\""),
        "{e}"
    );
    let e = leakgate::load::prepare(&grpc_plan(&t, "x.Y/Get", "{}", protos(), streams))
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("unknown gRPC service \"x.Y\""),
        "{e}"
    );
    let e = leakgate::load::prepare(&grpc_plan(
        &t,
        "leakgate.target.v1.Target/Get",
        r#"{"kee": 1}"#,
        protos(),
        streams,
    ))
    .err()
    .unwrap();
    assert!(
        e.to_string()
            .contains("does not fit leakgate.target.v1.GetRequest"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.proto");
    std::fs::write(&bad, "syntax = \"proto3\";\nmessage X { strin x = 1; }\n").unwrap();
    let g = GrpcPlan {
        protos: vec![bad],
        import_paths: vec![],
        protoset: None,
        reflection: false,
        streaming: false,
    };
    let e = leakgate::load::prepare(&grpc_plan(&t, "a.B/C", "{}", Some(g), streams))
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("does not compile") && e.to_string().contains("bad.proto"),
        "{e}"
    );
}

#[test]
fn whole_streams_are_read_to_their_end() {
    for streams in STREAMS {
        whole_streams(streams);
    }
}

fn whole_streams(streams: usize) {
    // Fixed Watch: one event at once, then the stream ends after --task-timeout.
    let t = start(&["--task-timeout", "2s"]);
    let mut p = grpc_plan(
        &t,
        "leakgate.target.v1.Target/Watch",
        r#"{"key": "k"}"#,
        protos(),
        streams,
    );
    // Eight calls in the first second, one per call slot: all open at once, none queued.
    p.phases[0].rate = Rate::Constant { rps: 8.0 };
    let (r, _) = common::run(&p);
    assert_eq!(r.status.get("OK"), Some(&8), "{r:?}");
    assert_eq!(r.messages_per_stream, Some(1.0));
    // End of stream waits for the 2 s timeout; the first message does not (half of it is a
    // margin no loaded machine uses up).
    assert!(r.corrected.p50 >= 2000.0, "{r:?}");
    assert!(r.first_message.p50 < 1000.0, "{r:?}");
}

#[test]
fn cancels_and_deadlines_cut_streams_and_metadata_templates_are_sent() {
    for streams in STREAMS {
        cancels_and_deadlines(streams);
    }
}

fn cancels_and_deadlines(streams: usize) {
    // Fixed Watch: one event at once, then the stream stays open for --task-timeout, far
    // longer than the test waits for the server to see the cancels.
    let t = start(&["--task-timeout", "60s"]);
    let mut p = grpc_plan(
        &t,
        "leakgate.target.v1.Target/Watch",
        r#"{"key": "c{{seq}}"}"#,
        protos(),
        streams,
    );
    p.phases[0].rate = Rate::Constant { rps: 50.0 };
    // Metadata: a fixed value and a template filled per call.
    p.requests[0]
        .headers
        .push(("x-tenant".into(), "acme".into()));
    p.requests[0]
        .headers
        .push(("x-request-id".into(), "r-{{seq}}".into()));

    // Every call carries both, the template filled with the call's own `seq` (the same one
    // its message's key holds).
    let (addr, calls) = recording_server();
    let mut to_recorder = p.clone();
    to_recorder.base_url = format!("http://{addr}");
    let (r, _) = common::run(&to_recorder);
    assert_eq!(r.status.get("OK"), Some(&50), "{r:?}");
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 50, "calls the server received");
    let mut ids = std::collections::BTreeSet::new();
    for c in calls.iter() {
        assert_eq!(c.path, "/leakgate.target.v1.Target/Watch");
        let seq = key_of(&c.message)
            .strip_prefix('c')
            .expect("key c{{seq}}")
            .to_string();
        assert_eq!(
            c.metadata.get("x-tenant").map(|v| v.to_str().unwrap()),
            Some("acme"),
            "{:?}",
            c.metadata
        );
        let id = c
            .metadata
            .get_all("x-request-id")
            .iter()
            .collect::<Vec<_>>();
        assert_eq!(id, [&format!("r-{seq}")], "{:?}", c.metadata);
        ids.insert(seq);
    }
    assert_eq!(ids.len(), 50, "one seq per call: {ids:?}");
    drop(calls);

    p.requests[0].behaviour.cancel_after = Some(Duration::from_millis(50));
    let (r, _) = common::run(&p);
    assert_eq!(r.errors.get("cancelled"), Some(&50), "{r:?}");
    assert_eq!(r.messages_per_stream, Some(1.0), "{r:?}");
    // The server saw every cancelled stream go away, long before its own timeout.
    assert_eq!(metric_settles(&t, "open_streams", 0.0), 0.0);

    // Without a cancel, the deadline ends each call: the client cuts it at the request
    // timeout, or the server (told by grpc-timeout) answers DEADLINE_EXCEEDED just before.
    p.requests[0].behaviour.cancel_after = None;
    p.timeout = Duration::from_millis(100);
    let (r, _) = common::run(&p);
    let timeouts = r.errors.get("timeout").copied().unwrap_or(0);
    let exceeded = r.status.get("DEADLINE_EXCEEDED").copied().unwrap_or(0);
    // (The last call may still be in flight when the drain grace, also 100 ms, ends.)
    assert!(r.completed >= 45, "{r:?}");
    assert_eq!(timeouts + exceeded, r.completed, "{r:?}");
}
