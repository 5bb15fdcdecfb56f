//! Out of file descriptors, the targets' accept loops wait between failed accepts instead of
//! spinning. The real binaries' fd limit is lowered (prlimit) until every accept fails with
//! EMFILE while a connection waits in each backlog, the state the unclosed-bodies leak ends
//! in; the process must then be idle nearly all the time, where a loop that retries at once
//! keeps a thread running or runnable throughout.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Target;

/// How long a test waits for the target to reach a state.
const WAIT: Duration = Duration::from_secs(10);

/// The fd numbers `pid` has open.
fn open_fds(pid: u32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The lowest fd number `pid` does not use: the next fd it makes gets this number.
fn lowest_free_fd(pid: u32) -> u64 {
    let open = open_fds(pid);
    (0..).find(|n| !open.contains(n)).unwrap()
}

/// Sets `pid`'s soft RLIMIT_NOFILE. The limit bounds fd numbers, not their count: at
/// [`lowest_free_fd`] no new fd can be made, one above it exactly one more.
fn set_fd_limit(pid: u32, soft: u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reads `new` and writes `old`, both live for the call.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: as above.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// Whether some thread of `pid` is running or waiting for a core ('R'): a spinning loop is,
/// however little of a busy machine's CPU it gets.
fn some_thread_runnable(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(Result::ok).any(|t| {
        std::fs::read_to_string(t.path().join("stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('R'))
        })
    })
}

/// Share of 100 samples, 10 ms apart, in which `pid` had a runnable thread.
fn runnable_share(pid: u32) -> f64 {
    const SAMPLES: u32 = 100;
    let mut runnable = 0;
    for _ in 0..SAMPLES {
        runnable += u32::from(some_thread_runnable(pid));
        // Sampling at a fixed pace, not waiting for anything.
        std::thread::sleep(Duration::from_millis(10));
    }
    f64::from(runnable) / f64::from(SAMPLES)
}

/// Waits (at most [`WAIT`]) until `done` holds.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "waited {WAIT:?} for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One keep-alive GET on `s`; returns the status line.
fn keep_alive_get(s: &mut TcpStream, path: &str) -> String {
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    // A short answer: the head and a Content-Length body arrive in a few reads.
    for _ in 0..64 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the target closed the connection");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return head.lines().next().unwrap_or_default().to_string();
            }
        }
    }
    panic!("no whole answer to {path}");
}

/// Asserts `t` stays mostly idle with every listener's accept failing for want of an fd. A
/// spinning loop's thread is runnable in every sample; a waiting one only briefly after each
/// pause, so half is a wide margin either way on a busy machine.
fn assert_idle(t: &Target) {
    let share = runnable_share(t.child.id());
    assert!(
        share < 0.5,
        "out of fds, the target had a runnable thread in {:.0} % of samples: an accept loop \
         spins",
        share * 100.0
    );
}

#[test]
fn rest_target_waits_out_fd_exhaustion_on_every_listener() {
    let t = common::start(env!("CARGO_BIN_EXE_rest-target"), "http", &[]);
    let pid = t.child.id();
    let mut c = TcpStream::connect(&t.addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    assert!(keep_alive_get(&mut c, "/hello").contains("200"));
    // One fd left: the proxy's client takes it for its upstream connection, and the upstream
    // listener then cannot accept that connection.
    let last = lowest_free_fd(pid);
    set_fd_limit(pid, last + 1);
    write!(c, "GET /proxy HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    wait_for("the proxy's upstream connection", || {
        open_fds(pid).contains(&last)
    });
    // Connections waiting on the service and admin listeners too.
    let _waiting = [
        TcpStream::connect(&t.addr).unwrap(),
        TcpStream::connect(&t.admin).unwrap(),
    ];
    assert_idle(&t);
}

#[test]
fn grpc_target_waits_out_fd_exhaustion_on_every_listener() {
    let t = common::start(env!("CARGO_BIN_EXE_grpc-target"), "grpc", &[]);
    let pid = t.child.id();
    // Served: one connection accepted on each listener, so both loops are running.
    let before = open_fds(pid).len();
    let _served = [
        TcpStream::connect(&t.addr).unwrap(),
        TcpStream::connect(&t.admin).unwrap(),
    ];
    wait_for("both connections accepted", || {
        open_fds(pid).len() >= before + 2
    });
    // No fd left.
    set_fd_limit(pid, lowest_free_fd(pid));
    let _waiting = [
        TcpStream::connect(&t.addr).unwrap(),
        TcpStream::connect(&t.admin).unwrap(),
    ];
    assert_idle(&t);
}
