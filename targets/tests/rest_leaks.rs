//! Each leak mode of rest-target moves its own signal, and the fixed mode does not: read from
//! `/metrics` and `/proc/<pid>` of the real binary, driven by a bounded number of requests.

mod common;

use std::io::{Read, Write};
use std::process::Command;

use common::{Target, get, metric, metric_until};

fn start(args: &[&str]) -> Target {
    common::start(env!("CARGO_BIN_EXE_rest-target"), "http", args)
}

fn fds(t: &Target) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", t.child.id()))
        .unwrap()
        .count()
}

const N: usize = 300;

#[test]
fn unbounded_cache_grows_and_lru_stays_bounded() {
    let leaky = start(&["--leak", "unbounded-cache"]);
    let fixed = start(&["--leak", "none", "--cache-capacity", "100"]);
    for i in 0..N {
        assert_eq!(get(&leaky.addr, &format!("/cache/{i}")).0, 200);
        assert_eq!(get(&fixed.addr, &format!("/cache/{i}")).0, 200);
    }
    assert_eq!(metric(&leaky, "cache_entries"), N as f64);
    assert_eq!(metric(&fixed, "cache_entries"), 100.0);
}

#[test]
fn unclosed_bodies_hold_connections_and_fds() {
    let leaky = start(&["--leak", "unclosed-bodies"]);
    let fixed = start(&["--leak", "none"]);
    let (fd0_leaky, fd0_fixed) = (fds(&leaky), fds(&fixed));
    for _ in 0..N {
        assert_eq!(get(&leaky.addr, "/proxy").0, 200);
        assert_eq!(get(&fixed.addr, "/proxy").0, 200);
    }
    assert_eq!(metric(&leaky, "open_upstream_responses"), N as f64);
    assert_eq!(metric(&fixed, "open_upstream_responses"), 0.0);
    // Each held response keeps both ends of its upstream connection open in this process.
    let grown = fds(&leaky) - fd0_leaky;
    assert!(grown >= 2 * N - 10, "leaky fds grew by {grown}");
    assert!(
        fds(&fixed) < fd0_fixed + 20,
        "fixed fds grew to {}",
        fds(&fixed)
    );
}

#[test]
fn leaked_tasks_pile_up_and_fixed_ones_end() {
    let leaky = start(&["--leak", "leaked-tasks"]);
    let fixed = start(&["--leak", "none", "--task-timeout", "200ms"]);
    let (t0_leaky, t0_fixed) = (
        metric(&leaky, "tokio_alive_tasks"),
        metric(&fixed, "tokio_alive_tasks"),
    );
    for _ in 0..N {
        assert_eq!(get(&leaky.addr, "/task").0, 202);
        assert_eq!(get(&fixed.addr, "/task").0, 202);
    }
    // The leaky tasks wait forever: all N are counted and stay.
    let alive = metric_until(&leaky, "tokio_alive_tasks", |v| v >= t0_leaky + N as f64);
    assert!(alive >= t0_leaky + N as f64, "{alive} leaky tasks alive");
    assert_eq!(
        metric_until(&leaky, "waiting_tasks", |v| v == N as f64),
        N as f64
    );
    // The fixed ones end after their 200 ms timeout (waited for up to SETTLE).
    let alive = metric_until(&fixed, "tokio_alive_tasks", |v| v <= t0_fixed + 3.0);
    assert!(alive <= t0_fixed + 3.0, "{alive} fixed tasks alive");
    assert_eq!(metric_until(&fixed, "waiting_tasks", |v| v == 0.0), 0.0);
}

#[test]
fn health_metrics_and_heap_profile_answer() {
    let t = start(&[]);
    assert_eq!(get(&t.addr, "/healthz"), (200, "ok\n".into()));
    assert_eq!(get(&t.admin, "/healthz").0, 200);
    assert!(metric(&t, "process_resident_memory_bytes") > 0.0);
    assert!(metric(&t, "jemalloc_allocated_bytes") > 0.0);
    let mut s = std::net::TcpStream::connect(&t.admin).unwrap();
    write!(
        s,
        "GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let head = String::from_utf8_lossy(&raw[..raw.len().min(12)]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body_at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        &raw[body_at..body_at + 2],
        &[0x1f, 0x8b],
        "a gzipped pprof profile"
    );
}

#[test]
fn help_lists_every_mode() {
    let out = Command::new(env!("CARGO_BIN_EXE_rest-target"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for mode in ["none", "unbounded-cache", "unclosed-bodies", "leaked-tasks"] {
        assert!(
            help.contains(&format!("  {mode} ")),
            "--help does not list {mode}:\n{help}"
        );
    }
}

#[test]
fn native_buffers_grow_rss_but_not_jemalloc() {
    const BYTES: usize = 64 * 1024;
    let bytes = BYTES.to_string();
    let leaky = start(&["--leak", "native", "--leak-bytes", &bytes]);
    let fixed = start(&["--leak", "none", "--leak-bytes", &bytes]);
    let rss = |t: &Target| metric(t, "process_resident_memory_bytes");
    let heap = |t: &Target| metric(t, "jemalloc_allocated_bytes");
    let (rss0, heap0, fixed_rss0) = (rss(&leaky), heap(&leaky), rss(&fixed));
    for _ in 0..N {
        assert_eq!(get(&leaky.addr, "/native").0, 200);
        assert_eq!(get(&fixed.addr, "/native").0, 200);
    }
    let leaked = (N * BYTES) as f64;
    assert_eq!(metric(&leaky, "native_buffers"), N as f64);
    assert_eq!(metric(&fixed, "native_buffers"), 0.0);
    // The buffers come from the C library's malloc, written through: resident, and unseen by
    // jemalloc.
    let grew = rss(&leaky) - rss0;
    assert!(
        grew >= 0.9 * leaked,
        "leaky RSS grew by {grew}, leaked {leaked}"
    );
    let heap_grew = heap(&leaky) - heap0;
    assert!(heap_grew < 0.1 * leaked, "jemalloc grew by {heap_grew}");
    let fixed_grew = rss(&fixed) - fixed_rss0;
    assert!(fixed_grew < 0.25 * leaked, "fixed RSS grew by {fixed_grew}");
}
