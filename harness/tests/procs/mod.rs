//! Processes for the end-to-end tests: the real binary, a reference target started by the
//! test, run folders read back, and waits on conditions (never fixed sleeps).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The leakgate binary under test, without the environment's backtraces.
pub fn leakgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_leakgate"));
    c.env_remove("RUST_BACKTRACE");
    c
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET http://127.0.0.1:port/path` → (status, body), or None when nothing answers.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

/// Waits for `cond`, polling every 50 ms, at most `limit`.
pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A reference REST target started by the test (the leakgate processes only attach to it).
pub struct RestTarget {
    pub child: Child,
    pub port: u16,
    pub admin: u16,
}

impl RestTarget {
    /// Starts rest-target with `--leak leak` and waits until it answers.
    pub fn start(leak: &str) -> Self {
        Self::start_with(leak, &[])
    }

    /// Starts rest-target with `--leak leak` plus `extra` flags and waits until it answers.
    /// Tests run side by side, so a port found free can be taken before the target binds it:
    /// a target that exits before it is ready is started again on other ports.
    pub fn start_with(leak: &str, extra: &[&str]) -> Self {
        leakgate::run::target::ensure_built("rest-target").unwrap();
        let bin = leakgate::scenario::placeholders::default_bin_dir().join("rest-target");
        for _attempt in 0..5 {
            let (port, admin) = (free_port(), free_port());
            let mut child = Command::new(&bin)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
                .args(["--leak", leak, "--leak-bytes", "1024"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut exited = false;
            wait_for(Duration::from_secs(60), "rest-target to be ready", || {
                exited = child.try_wait().ok().flatten().is_some();
                exited || get(port, "/healthz").is_some_and(|(c, _)| c == 200)
            });
            if !exited {
                return Self { child, port, admin };
            }
        }
        panic!("rest-target exited before it was ready five times (ports taken?)");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RestTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The one run folder under `results`.
pub fn only_run_dir(results: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(results)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// A run folder's summary.json.
pub fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// Children of `pid` (its spawned target).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(c.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// Probe samples written so far, and the largest t among them.
pub fn probes_written(dir: &Path) -> (usize, f64) {
    let text = std::fs::read_to_string(dir.join("samples.ndjson")).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("\"type\":\"probe\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .fold((0, f64::MIN), |(n, t), v| {
            (n + 1, t.max(v["t"].as_f64().unwrap_or(0.0)))
        })
}

/// Waits until the run folder exists and holds samples up to `t` seconds of load.
pub fn wait_for_samples(results: &Path, t: f64) -> PathBuf {
    let mut dir = None;
    wait_for(Duration::from_secs(300), "samples to be written", || {
        dir = std::fs::read_dir(results)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path());
        dir.as_ref().is_some_and(|d| probes_written(d).1 >= t)
    });
    dir.unwrap()
}

/// Serves `body` as a Prometheus page on `listener` to at most `n` connections (None: until the
/// test ends), reading each whole request head first as a real server does (closing on unread
/// bytes would reset the connection under the client). The listener drops after the last one,
/// so later connections are refused.
pub fn serve_metrics(listener: std::net::TcpListener, body: &'static str, n: Option<usize>) {
    use std::io::BufRead;
    std::thread::spawn(move || {
        for s in listener.incoming().take(n.unwrap_or(usize::MAX)).flatten() {
            let mut s = s;
            let mut reader = std::io::BufReader::new(&s);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && !line.trim().is_empty() {
                line.clear();
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}
