//! Supervision with real processes: readiness, early exit, memory limit, attach, stop.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use leakgate::scenario::plan::{AttachPlan, Readiness, SpawnPlan};
use leakgate::supervise::{self, SuperviseError};

fn plan(cmd: &[&str], ready: Readiness) -> SpawnPlan {
    SpawnPlan {
        command: cmd.iter().map(|s| s.to_string()).collect(),
        env: BTreeMap::new(),
        cwd: None,
        ready,
        start_timeout: Duration::from_secs(10),
        memory_limit: None,
        stop_timeout: Duration::from_secs(2),
        build_bins: vec![],
        build_go: vec![],
        build_python: vec![],
        build_java: vec![],
    }
}

/// A python one-liner that listens on `port` and then runs `then`.
fn listener(port: u16, then: &str) -> Vec<String> {
    let code = format!(
        "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',{port}))\ns.listen()\nprint('listening',flush=True)\n{then}"
    );
    vec!["python3".into(), "-c".into(), code]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(
    cmd: Vec<String>,
    port: u16,
    limit: Option<u64>,
) -> Result<supervise::Supervised, SuperviseError> {
    let dir = tempfile::tempdir().unwrap();
    let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let mut p = plan(
        &refs,
        Readiness::Port {
            addr: format!("127.0.0.1:{port}"),
        },
    );
    p.memory_limit = limit;
    let s = supervise::spawn(&p, dir.path());
    // Logs were captured in the run folder.
    assert!(dir.path().join("target.stderr.log").exists());
    s
}

#[test]
fn ready_by_port_then_graceful_stop() {
    let port = free_port();
    let s = spawn(listener(port, "time.sleep(60)"), port, None).unwrap();
    assert!(supervise::alive(s.pid()));
    assert!(s.try_exit().is_none());
    let exit = s.stop().expect("stopped");
    assert_eq!(exit.signal, Some(libc::SIGTERM), "{exit:?}");
    assert!(!supervise::alive(s.pid()));
}

#[test]
fn early_exit_reports_status_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(
        &["sh", "-c", "echo 'boom: bad config' >&2; exit 3"],
        Readiness::Port {
            addr: "127.0.0.1:1".into(),
        },
    );
    let e = supervise::spawn(&p, dir.path()).err().expect("fails");
    let msg = e.to_string();
    assert!(
        msg.contains("exited with status 3") && msg.contains("boom: bad config"),
        "{msg}"
    );
}

#[test]
fn never_ready_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = plan(
        &["sleep", "30"],
        Readiness::Port {
            addr: format!("127.0.0.1:{}", free_port()),
        },
    );
    p.start_timeout = Duration::from_millis(300);
    let t = Instant::now();
    let e = supervise::spawn(&p, dir.path()).err().expect("fails");
    assert!(matches!(e, SuperviseError::NotReady { .. }), "{e}");
    // Given up at the 300 ms start timeout, not when `sleep 30` ends (a generous bound: this
    // machine may be busy).
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
}

#[test]
fn killed_target_is_seen_at_once() {
    let port = free_port();
    let s = spawn(listener(port, "time.sleep(60)"), port, None).unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(s.pid() as i32, libc::SIGKILL) };
    let t = Instant::now();
    let exit = loop {
        if let Some(e) = s.try_exit() {
            break e;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the SIGKILL was not seen in 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(exit.signal, Some(libc::SIGKILL));
    assert!(exit.cause.contains("SIGKILL"), "{}", exit.cause);
}

#[test]
fn memory_limit_ends_a_target_that_grows_past_it() {
    let port = free_port();
    // Ready first, then allocate 400 MiB under a 64 MiB limit.
    let grow = "x=[]\nfor i in range(400):\n    x.append(bytearray(1<<20))\n    time.sleep(0.002)\ntime.sleep(60)";
    let s = spawn(listener(port, grow), port, Some(64 << 20)).unwrap();
    let t = Instant::now();
    let exit = loop {
        if let Some(e) = s.try_exit() {
            break e;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the limit did not stop it"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Its own cgroup: the OOM killer's SIGKILL; RLIMIT_AS: Python's MemoryError (exit 1).
    assert!(exit.oom_killed || exit.code == Some(1), "{exit:?}");
    if s.cgroup().is_some() {
        assert!(exit.oom_killed && exit.cause.contains("OOM"), "{exit:?}");
    }
}

#[test]
fn attach_by_pid_and_pid_file() {
    let port = free_port();
    let s = spawn(listener(port, "time.sleep(60)"), port, None).unwrap();
    let a = supervise::attach(&AttachPlan {
        pid: Some(s.pid()),
        pid_file: None,
        cgroup: None,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(a.pid, Some(s.pid()));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("svc.pid");
    std::fs::write(&f, format!("{}\n", s.pid())).unwrap();
    let a = supervise::attach(&AttachPlan {
        pid: None,
        pid_file: Some(f.clone()),
        cgroup: None,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(a.pid, Some(s.pid()));
    s.stop();
    let e = supervise::attach(&AttachPlan {
        pid: None,
        pid_file: Some(f),
        cgroup: None,
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("no process with pid"), "{e}");
    let e = supervise::attach(&AttachPlan {
        pid: None,
        pid_file: None,
        cgroup: Some("/nonexistent/cg".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
}
