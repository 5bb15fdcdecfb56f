//! The load engine against a real local server: open loop, coordinated omission, behaviours.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use leakgate::scenario::plan::{Behaviour, Protocol, Rate};

#[test]
fn constant_rate_sends_the_planned_requests() {
    let s = common::start();
    let plan = common::plan(&s.url(""), "/small", Rate::Constant { rps: 500.0 }, 2.0, 4);
    let (r, windows) = common::run(&plan);
    assert_eq!(r.planned, 1000);
    assert_eq!(r.sent, 1000);
    assert_eq!(r.completed, 1000);
    assert_eq!(r.status.get("2xx"), Some(&1000));
    assert!(!r.fell_behind);
    assert_eq!(s.counters.requests.load(Ordering::SeqCst), 1000);
    // Keep-alive: no more connections than asked for.
    assert!(s.counters.accepted.load(Ordering::SeqCst) <= 4);
    assert_eq!(windows.last().unwrap().cumulative_completed, 1000);
    let per_window: u64 = windows.iter().map(|w| w.completed).sum();
    assert_eq!(per_window, 1000);
    assert!(windows.len() >= 2);
}

#[test]
fn coordinated_omission_is_corrected() {
    let s = common::start();
    // 1 000 req/s for 5 s; the server stalls every request for 1 s once, 2 s in.
    let plan = common::plan(&s.url(""), "/stall", Rate::Constant { rps: 1000.0 }, 5.0, 8);
    let (r, _) = common::run(&plan);
    assert_eq!(r.completed, 5000, "{r:?}");
    eprintln!(
        "corrected p99 {} ms, uncorrected p99 {} ms",
        r.corrected.p99, r.uncorrected.p99
    );
    assert!(
        r.corrected.p99 > 700.0,
        "corrected p99 {} ms",
        r.corrected.p99
    );
    assert!(
        r.corrected.max >= 900.0,
        "corrected max {} ms",
        r.corrected.max
    );
    // Uncorrected latency misses the queue the stall built (only the few requests in flight
    // saw it): far below the corrected figure however fast this machine runs.
    assert!(
        r.uncorrected.p99 < r.corrected.p99 / 2.0,
        "uncorrected p99 {} ms, corrected p99 {} ms",
        r.uncorrected.p99,
        r.corrected.p99
    );
}

#[test]
fn abandoned_bodies_are_not_read() {
    let s = common::start();
    // 64 MiB bodies: far more than loopback socket buffers can hold.
    let mut plan = common::plan(
        &s.url(""),
        "/big?chunks=4096",
        Rate::Constant { rps: 20.0 },
        1.0,
        2,
    );
    plan.requests[0].behaviour = Behaviour {
        abandon_after: Some(16384),
        ..Behaviour::default()
    };
    let (r, _) = common::run(&plan);
    assert_eq!(r.completed, 20);
    // The client read about 16 KiB of each body and dropped the rest...
    assert!(r.bytes < 20 * 200_000, "read {} bytes", r.bytes);
    // ...so the server could only fill the socket buffers: no body was sent to its end, also
    // once the server is done with every connection (nothing can produce more after that).
    let accepted = s.counters.accepted.load(Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.counters.closed.load(Ordering::SeqCst) < accepted
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        s.counters.closed.load(Ordering::SeqCst),
        accepted,
        "connections the server has not seen closed"
    );
    assert_eq!(s.counters.big_completed.load(Ordering::SeqCst), 0);
    let yielded = s.counters.big_bytes_yielded.load(Ordering::SeqCst);
    assert!(
        yielded < 20 * 16 * 1024 * 1024,
        "server produced {yielded} bytes"
    );
    // HTTP/1.1 cannot reuse a connection whose body was abandoned: one per request.
    assert!(s.counters.accepted.load(Ordering::SeqCst) >= 18);
}

#[test]
fn whole_bodies_are_read_by_default() {
    let s = common::start();
    let plan = common::plan(&s.url(""), "/big", Rate::Constant { rps: 10.0 }, 1.0, 2);
    let (r, _) = common::run(&plan);
    assert_eq!(r.bytes, 10 * 4 * 1024 * 1024);
    assert_eq!(s.counters.big_completed.load(Ordering::SeqCst), 10);
}

#[test]
fn head_requests_end_at_the_head() {
    let s = common::start();
    // The server answers HEAD /small with its GET's content-length and no body.
    let mut plan = common::plan(&s.url(""), "/small", Rate::Constant { rps: 100.0 }, 1.0, 2);
    plan.requests[0].method = "HEAD".into();
    plan.timeout = Duration::from_secs(1);
    let (r, _) = common::run(&plan);
    assert_eq!(r.status.get("2xx"), Some(&100), "{r:?}");
    assert_eq!(r.bytes, 0);
    // Each answer left its connection usable.
    assert!(s.counters.accepted.load(Ordering::SeqCst) <= 2);
}

#[test]
fn churn_opens_a_connection_per_request() {
    let s = common::start();
    let mut plan = common::plan(&s.url(""), "/small", Rate::Constant { rps: 200.0 }, 1.0, 4);
    plan.requests[0].behaviour.new_connection = true;
    let (r, _) = common::run(&plan);
    assert_eq!(r.completed, 200);
    assert_eq!(s.counters.accepted.load(Ordering::SeqCst), 200);
}

#[test]
fn cancel_after_really_cancels() {
    let s = common::start();
    let mut plan = common::plan(&s.url(""), "/slow", Rate::Constant { rps: 20.0 }, 1.0, 20);
    plan.requests[0].behaviour.cancel_after = Some(Duration::from_millis(100));
    let (r, _) = common::run(&plan);
    assert_eq!(r.errors.get("cancelled"), Some(&20), "{r:?}");
    // The server sees each client go away (its handler is dropped).
    // (Up to 10 s: a handler that answers, at 5 s, is not counted, so a long wait cannot pass
    // a client that never cancelled.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.counters.cancelled.load(Ordering::SeqCst) < 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.counters.cancelled.load(Ordering::SeqCst), 20);
    assert_eq!(r.failed, 0, "deliberate cancels are not failures");
}

#[test]
fn h2c_multiplexes_streams() {
    let s = common::start();
    let mut plan = common::plan(&s.url(""), "/small", Rate::Constant { rps: 400.0 }, 1.0, 2);
    plan.protocol = Protocol::Http2;
    plan.streams_per_connection = 8;
    let (r, _) = common::run(&plan);
    assert_eq!(r.status.get("2xx"), Some(&400), "{r:?}");
    assert_eq!(s.counters.accepted.load(Ordering::SeqCst), 2);
    // The jobs of a tick go to one connection's idle streams, but connections take turns:
    // at under two requests a tick, each carries about half.
    let per: Vec<u64> = s
        .counters
        .per_connection
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.load(Ordering::SeqCst))
        .collect();
    assert!(
        per.iter().all(|&n| n >= 100),
        "requests per connection: {per:?}"
    );
}

#[test]
fn max_throughput_mode_runs_closed_loop() {
    let s = common::start();
    let plan = common::plan(&s.url(""), "/small", Rate::Max, 0.5, 4);
    let (r, _) = common::run(&plan);
    assert!(r.completed > 100, "{r:?}");
    assert_eq!(r.completed, s.counters.requests.load(Ordering::SeqCst));
    assert!(!r.fell_behind);
}

#[test]
fn slow_target_fills_the_queue_then_drops() {
    let s = common::start();
    let mut plan = common::plan(&s.url(""), "/slow", Rate::Constant { rps: 200.0 }, 1.0, 2);
    plan.max_queue = 10;
    plan.timeout = Duration::from_millis(300);
    let (r, _) = common::run(&plan);
    assert_eq!(r.planned, 200);
    assert!(r.dropped > 100, "{r:?}");
    assert!(r.fell_behind);
}

#[test]
fn dead_target_counts_connect_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let plan = common::plan(
        &format!("http://127.0.0.1:{port}"),
        "/x",
        Rate::Constant { rps: 100.0 },
        0.5,
        2,
    );
    let (r, _) = common::run(&plan);
    assert_eq!(r.errors.get("connect"), Some(&50), "{r:?}");
    assert_eq!(r.failed, 50);
}
