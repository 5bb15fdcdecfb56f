//! A reference target started for a test: the real binary on ephemeral ports, killed on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// A running target and the addresses it announced.
pub struct Target {
    pub child: Child,
    /// The service address (`http=` or `grpc=` line).
    pub addr: String,
    /// The admin address (`admin=` line).
    pub admin: String,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin` with `args` on 127.0.0.1:0 and reads its `listening NAME=ADDR` lines.
pub fn start(bin: &str, service: &str, args: &[&str]) -> Target {
    let mut child = Command::new(bin)
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
    let addr_ = addr(service);
    let admin = addr("admin");
    Target {
        child,
        addr: addr_,
        admin,
    }
}

/// One GET on a fresh connection; returns status and body.
pub fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
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

/// A gauge or counter from the target's `/metrics`.
pub fn metric(t: &Target, name: &str) -> f64 {
    let (_, body) = get(&t.admin, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

/// How long a test waits for a target's metric to reach what it expects: gauges move after
/// the response that caused them (a task ends, a reset stream is noticed).
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads `name` until `done(value)`, for at most [`SETTLE`]; returns the last value read.
pub fn metric_until(t: &Target, name: &str, done: impl Fn(f64) -> bool) -> f64 {
    let start = std::time::Instant::now();
    loop {
        let v = metric(t, name);
        if done(v) || start.elapsed() > SETTLE {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// [`metric_until`] for async tests: waits with the runtime's timer, so the test's own client
/// tasks (which send the stream resets the target must see) keep running meanwhile.
pub async fn metric_until_async(t: &Target, name: &str, done: impl Fn(f64) -> bool) -> f64 {
    let start = std::time::Instant::now();
    loop {
        let v = metric(t, name);
        if done(v) || start.elapsed() > SETTLE {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
