//! Each leak mode of rest-target moves its own signal, and the fixed mode does not: read from
//! `/metrics` and `/proc/<pid>` of the real binary, driven by a bounded number of requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Target {
    child: Child,
    http: String,
    admin: String,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Target {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rest-target"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = |name: &str| {
        let l = lines.next().unwrap().unwrap();
        l.strip_prefix(&format!("listening {name}="))
            .unwrap_or_else(|| panic!("unexpected line {l:?}"))
            .to_string()
    };
    let http = addr("http");
    let admin = addr("admin");
    Target { child, http, admin }
}

/// One GET on a fresh connection; returns status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

fn metric(t: &Target, name: &str) -> f64 {
    let (_, body) = get(&t.admin, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
        .trim()
        .parse()
        .unwrap()
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
        assert_eq!(get(&leaky.http, &format!("/cache/{i}")).0, 200);
        assert_eq!(get(&fixed.http, &format!("/cache/{i}")).0, 200);
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
        assert_eq!(get(&leaky.http, "/proxy").0, 200);
        assert_eq!(get(&fixed.http, "/proxy").0, 200);
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
        assert_eq!(get(&leaky.http, "/task").0, 202);
        assert_eq!(get(&fixed.http, "/task").0, 202);
    }
    std::thread::sleep(Duration::from_millis(600));
    assert!(metric(&leaky, "tokio_alive_tasks") >= t0_leaky + N as f64);
    assert_eq!(metric(&leaky, "waiting_tasks"), N as f64);
    assert!(metric(&fixed, "tokio_alive_tasks") <= t0_fixed + 3.0);
    assert_eq!(metric(&fixed, "waiting_tasks"), 0.0);
}

#[test]
fn health_metrics_and_heap_profile_answer() {
    let t = start(&[]);
    assert_eq!(get(&t.http, "/healthz"), (200, "ok\n".into()));
    assert_eq!(get(&t.admin, "/healthz").0, 200);
    assert!(metric(&t, "process_resident_memory_bytes") > 0.0);
    assert!(metric(&t, "jemalloc_allocated_bytes") > 0.0);
    let mut s = TcpStream::connect(&t.admin).unwrap();
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
