//! The live endpoints over real sockets on 127.0.0.1: `/metrics` read by a Prometheus text
//! parser, `/verdict` as JSON, Flagger's `fail_on_leak`, error answers, binding and stopping.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use leakgate::live::{LiveError, LiveServer, Snapshot, serve};
use leakgate::record::{EvalOutcome, Evaluation, SignalStatus};
use prometheus_parse::{Scrape, Value};

/// One parsed answer.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Writes `raw`, reads to the end, and splits the answer.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(raw).expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read to end");
    let text = String::from_utf8(buf).expect("utf-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn get(addr: SocketAddr, target: &str) -> Reply {
    let r = exchange(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    assert_eq!(
        r.header("Content-Length"),
        Some(r.body.len().to_string().as_str())
    );
    assert_eq!(r.header("Connection"), Some("close"));
    r
}

fn start() -> (LiveServer, SocketAddr) {
    let server = serve("127.0.0.1:0", false).expect("serve");
    let addr = server.local_addr();
    (server, addr)
}

fn signal(outcome: EvalOutcome, latest: f64, per_second: f64) -> SignalStatus {
    SignalStatus {
        outcome,
        latest: Some(latest),
        per_second: Some(per_second),
        ci_low_per_second: Some(per_second / 2.0),
        ci_high_per_second: Some(per_second * 2.0),
        per_request: Some(per_second / 100.0),
        time_to_limit_s: None,
    }
}

fn snapshot(outcome: EvalOutcome, requests: u64) -> Snapshot {
    let rss = if outcome == EvalOutcome::Leak {
        4096.0
    } else {
        0.5
    };
    let evaluation = Evaluation {
        t: 600.0,
        at: "2026-03-04T05:06:07Z".into(),
        requests,
        horizon_start: 0.0,
        outcome,
        decisive: outcome != EvalOutcome::Inconclusive,
        signals: BTreeMap::from([
            ("rss_bytes".into(), signal(outcome, 5.0e7, rss)),
            ("fd_count".into(), signal(EvalOutcome::Pass, 12.0, -0.25)),
        ]),
        rate: Some(250.0),
        p95_ms: Some(12.0),
        p99_ms: Some(40.0),
        summary: format!("{outcome:?} over the last 10 minutes"),
    };
    Snapshot {
        run: "canary-soak".into(),
        started_at: "2026-03-04T04:56:07Z".into(),
        evaluation: Some(evaluation),
        since: Some("2026-03-04T05:01:07Z".into()),
        requests_total: requests,
        memory_limit: Some((1 << 30, "cgroup memory.max".into())),
        evaluations_total: 10,
    }
}

fn scrape(addr: SocketAddr) -> Scrape {
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let scrape = Scrape::parse(r.body.lines().map(|l| Ok(l.to_string()))).expect("parse");
    for s in &scrape.samples {
        assert!(
            scrape.docs.contains_key(&s.metric),
            "{} has no HELP",
            s.metric
        );
        assert!(
            !matches!(s.value, Value::Untyped(_)),
            "{} has no TYPE",
            s.metric
        );
    }
    scrape
}

/// The value of `metric` with the one label `label` (or none), counters and gauges alike.
fn value(scrape: &Scrape, metric: &str, label: Option<(&str, &str)>) -> Option<f64> {
    let s = scrape.samples.iter().find(|s| {
        s.metric == metric
            && match label {
                Some((k, v)) => s.labels.get(k) == Some(v),
                None => s.labels.is_empty(),
            }
    })?;
    match s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
        _ => None,
    }
}

#[test]
fn metrics_parse_before_and_after_publish() {
    let (server, addr) = start();
    let before = scrape(addr);
    assert_eq!(value(&before, "leakgate_verdict", None), Some(2.0));
    let info = Some(("verdict", "inconclusive"));
    assert_eq!(value(&before, "leakgate_verdict_info", info), Some(1.0));
    assert_eq!(value(&before, "leakgate_requests_total", None), Some(0.0));
    assert!(
        !before
            .samples
            .iter()
            .any(|s| s.metric.starts_with("leakgate_signal_"))
    );

    server.publish(&snapshot(EvalOutcome::Leak, 123_456));
    let m = scrape(addr);
    assert_eq!(value(&m, "leakgate_verdict", None), Some(1.0));
    assert_eq!(
        value(&m, "leakgate_verdict_info", Some(("verdict", "leak"))),
        Some(1.0)
    );
    let rss = Some(("signal", "rss_bytes"));
    let fds = Some(("signal", "fd_count"));
    assert_eq!(
        value(&m, "leakgate_signal_slope_per_second", rss),
        Some(4096.0)
    );
    assert_eq!(
        value(&m, "leakgate_signal_slope_per_second", fds),
        Some(-0.25)
    );
    assert_eq!(
        value(&m, "leakgate_signal_slope_ci_low_per_second", rss),
        Some(2048.0)
    );
    assert_eq!(
        value(&m, "leakgate_signal_slope_ci_high_per_second", fds),
        Some(-0.5)
    );
    assert_eq!(
        value(&m, "leakgate_signal_growth_per_request", rss),
        Some(40.96)
    );
    assert_eq!(value(&m, "leakgate_signal_latest", rss), Some(5.0e7));
    assert_eq!(value(&m, "leakgate_signal_outcome", rss), Some(1.0));
    assert_eq!(value(&m, "leakgate_signal_outcome", fds), Some(0.0));
    assert_eq!(
        value(&m, "leakgate_signal_time_to_limit_seconds", rss),
        None
    );
    let requests = m
        .samples
        .iter()
        .find(|s| s.metric == "leakgate_requests_total");
    assert_eq!(requests.map(|s| &s.value), Some(&Value::Counter(123_456.0)));
    assert_eq!(
        value(&m, "leakgate_achieved_rate_per_second", None),
        Some(250.0)
    );
    let p95 = value(&m, "leakgate_latency_seconds", Some(("quantile", "0.95")));
    let p99 = value(&m, "leakgate_latency_seconds", Some(("quantile", "0.99")));
    assert_eq!((p95, p99), (Some(0.012), Some(0.04)));
    let limit = Some(("source", "cgroup memory.max"));
    assert_eq!(
        value(&m, "leakgate_memory_limit_bytes", limit),
        Some(1_073_741_824.0)
    );
    let at = value(&m, "leakgate_last_evaluation_timestamp_seconds", None);
    assert_eq!(at, Some(1_772_600_767.0));
    assert_eq!(value(&m, "leakgate_evaluations_total", None), Some(10.0));
    server.stop();
}

#[test]
fn verdict_json_before_and_after_publish() {
    let (server, addr) = start();
    let r = get(addr, "/verdict");
    assert_eq!(
        (r.status, r.header("Content-Type")),
        (200, Some("application/json"))
    );
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(v["verdict"], "inconclusive");
    assert_eq!(v["summary"], "no evaluation yet");
    assert!(v["evaluated_at"].is_null());

    server.publish(&snapshot(EvalOutcome::Pass, 99));
    let v: serde_json::Value = serde_json::from_str(&get(addr, "/verdict").body).expect("json");
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["run"], "canary-soak");
    assert_eq!(v["requests"], 99);
    assert_eq!(v["since"], "2026-03-04T05:01:07Z");
    assert_eq!(v["evaluated_at"], "2026-03-04T05:06:07Z");
    assert_eq!(v["summary"], "Pass over the last 10 minutes");
    let rss = &v["signals"]["rss_bytes"];
    assert_eq!(rss["outcome"], "pass");
    assert_eq!(rss["latest"], 5.0e7);
    assert_eq!(rss["per_second"], 0.5);
    assert_eq!(rss["ci_low_per_second"], 0.25);
    assert_eq!(rss["ci_high_per_second"], 1.0);
    assert_eq!(rss["per_request"], 0.005);
    assert!(rss["time_to_limit_s"].is_null());
    assert_eq!(v["signals"]["fd_count"]["per_second"], -0.25);
}

#[test]
fn fail_on_leak_is_503_on_leak_and_200_on_pass() {
    let (server, addr) = start();
    assert_eq!(get(addr, "/verdict?fail_on_leak=1").status, 200);
    server.publish(&snapshot(EvalOutcome::Leak, 1));
    assert_eq!(get(addr, "/verdict?fail_on_leak=1").status, 503);
    let r = get(addr, "/verdict?fail_on_leak=true");
    assert_eq!(r.status, 503);
    assert!(r.body.contains("\"verdict\":\"leak\""), "{}", r.body);
    assert_eq!(get(addr, "/verdict").status, 200);
    assert_eq!(get(addr, "/verdict?fail_on_leak=0").status, 200);
    server.publish(&snapshot(EvalOutcome::Pass, 2));
    assert_eq!(get(addr, "/verdict?fail_on_leak=1").status, 200);
}

#[test]
fn errors_are_404_405_400_and_head_has_no_body() {
    let (_server, addr) = start();
    assert_eq!(get(addr, "/nope").status, 404);
    let r = get(addr, "/healthz");
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));

    let r = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((r.status, r.header("Allow")), (405, Some("GET, HEAD")));
    // Flagger's webhooks POST their canary's metadata to /verdict.
    let body = br#"{"name":"api","namespace":"prod","phase":"Progressing"}"#;
    let mut post = format!(
        "POST /verdict?fail_on_leak=1 HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    post.extend_from_slice(body);
    let r = exchange(addr, &post);
    assert_eq!(
        r.status, 200,
        "an inconclusive verdict is not a failed webhook"
    );
    assert!(r.body.contains("\"verdict\""), "{}", r.body);
    let r = exchange(addr, b"PUT /verdict HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        (r.status, r.header("Allow")),
        (405, Some("GET, HEAD, POST"))
    );

    let r = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let length: usize = r
        .header("Content-Length")
        .and_then(|l| l.parse().ok())
        .expect("length");
    assert_eq!(length, get(addr, "/metrics").body.len());

    for garbage in [
        &b"\x00\x01\xff nonsense\r\n\r\n"[..],
        b"GET /metrics\r\n\r\n",
        b"GET /metrics HTTP/1.1 extra\r\n\r\n",
        b"\r\n\r\n",
    ] {
        assert_eq!(exchange(addr, garbage).status, 400, "{garbage:?}");
    }
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9 * 1024));
    assert_eq!(exchange(addr, long.as_bytes()).status, 400);
    let endless = "x".repeat(20 * 1024);
    assert_eq!(exchange(addr, endless.as_bytes()).status, 400);
    // Still serving after all that.
    assert_eq!(get(addr, "/healthz").status, 200);
}

#[test]
fn second_serve_on_the_same_port_is_a_bind_error() {
    let (_server, addr) = start();
    let Err(e) = serve(&addr.to_string(), false) else {
        panic!("a second serve on {addr} bound");
    };
    assert!(matches!(e, LiveError::Bind { .. }), "{e:?}");
    let message = e.to_string();
    assert!(message.contains(&addr.port().to_string()), "{message}");
    assert!(message.contains("--listen"), "{message}");
}

#[test]
fn public_addresses_need_allow_public() {
    let Err(e) = serve("0.0.0.0:0", false) else {
        panic!("0.0.0.0 was served without allow_public");
    };
    assert!(matches!(e, LiveError::NotLoopback { .. }), "{e:?}");
    assert!(e.to_string().contains("--listen-public"), "{e}");
    let server = serve("0.0.0.0:0", true).expect("allowed");
    assert!(server.local_addr().ip().is_unspecified());
    server.stop();
}

#[test]
fn stop_and_drop_return_promptly_and_free_the_port() {
    let (server, addr) = start();
    assert_eq!(get(addr, "/healthz").status, 200);
    let (done, stopped) = mpsc::channel();
    thread::spawn(move || {
        server.stop();
        let _ = done.send(());
    });
    stopped
        .recv_timeout(Duration::from_secs(2))
        .expect("stop returned within 2 s");
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening on {addr}"
    );

    let (server, addr) = start();
    let (done, dropped) = mpsc::channel();
    thread::spawn(move || {
        drop(server);
        let _ = done.send(());
    });
    dropped
        .recv_timeout(Duration::from_secs(2))
        .expect("drop returned within 2 s");
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening on {addr}"
    );
}

#[test]
fn requests_during_publishes_all_answer() {
    let (server, addr) = start();
    let (tick, ticks) = mpsc::channel::<u64>();
    thread::scope(|scope| {
        scope.spawn(|| {
            for n in ticks {
                let outcome = if n % 2 == 0 {
                    EvalOutcome::Pass
                } else {
                    EvalOutcome::Leak
                };
                server.publish(&snapshot(outcome, n));
            }
        });
        for i in 0..200u64 {
            if i % 10 == 0 {
                tick.send(i / 10 + 1).expect("publisher alive");
            }
            let target = ["/metrics", "/verdict", "/healthz"][(i % 3) as usize];
            let r = get(addr, target);
            assert_eq!(r.status, 200, "request {i} to {target}");
            if target == "/verdict" {
                let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
                assert!(v["requests"].as_u64().is_some_and(|n| n <= 20), "{v}");
            }
        }
        drop(tick);
    });
    let v: serde_json::Value = serde_json::from_str(&get(addr, "/verdict").body).expect("json");
    assert_eq!(v["requests"], 20);
}
