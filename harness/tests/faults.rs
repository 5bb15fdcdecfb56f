//! The fault suite: every way a run can end, caused for real (process signals, a cgroup
//! memory limit, a small tmpfs and a read-only mount, a target that stops answering), each
//! checked for its exit code, its message, and a run folder whose `summary.json` and
//! `samples.ndjson` parse with every sample written before the fault. The README's table of
//! ways out names these tests.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Mutex;

mod procs;
mod runs;

use procs::*;

/// Load-driving faults run one at a time: two at once on two cores would disturb each other.
static SERIAL: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn text_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// Writes a scenario into `dir` and returns its path.
fn scenario(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("fault.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `leakgate run SCENARIO` into `results` with extra args and environment.
fn run(path: &Path, results: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = leakgate();
    c.arg("run")
        .arg(path)
        .args(["--no-progress", "--results-dir"])
        .arg(results)
        .args(extra);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Starts `leakgate run SCENARIO` into `results`, its output piped, to be signalled mid-run.
fn spawn_run(path: &Path, results: &Path) -> std::process::Child {
    leakgate()
        .arg("run")
        .arg(path)
        .args(["--no-progress", "--results-dir"])
        .arg(results)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The run folder is whole: summary.json parses and fits the schema, and every line of
/// samples.ndjson but a torn last one parses. Returns the summary and the probe count.
fn folder_is_whole(dir: &Path) -> (serde_json::Value, usize) {
    let s = summary(dir);
    assert!(
        runs::summary_validator().is_valid(&s),
        "summary.json fits its schema: {s}"
    );
    let text = std::fs::read_to_string(dir.join("samples.ndjson")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut probes = 0;
    for (i, l) in lines.iter().enumerate() {
        match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) => probes += usize::from(v["type"] == "probe"),
            Err(e) => assert!(
                i + 1 == lines.len() && !text.ends_with('\n'),
                "samples.ndjson:{}: {e}",
                i + 1
            ),
        }
    }
    (s, probes)
}

/// A scenario attached to a running target, with short phases.
fn attach_text(t: &RestTarget, steady: &str, extra: &str) -> String {
    format!(
        r#"[target]
pid = {pid}
base_url = "http://127.0.0.1:{port}"
[load]
connections = 8
timeout = "500ms"
[[load.phases]]
kind = "warmup"
duration = "1s"
rate = 200
[[load.phases]]
kind = "steady"
duration = "{steady}"
rate = 200
[[load.requests]]
path = "/cache/{{{{seq}}}}"
[probes]
interval = "250ms"
drain_wait = "250ms"
{extra}
"#,
        pid = t.pid(),
        port = t.port
    )
}

#[test]
fn oom_kill_by_its_cgroup_exits_3() {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    // 64 KiB kept per request at 1 000 req/s against a 48 MiB limit: killed within a second
    // or two of load.
    let path = scenario(
        tmp.path(),
        r#"[target]
command = ["{bin:rest-target}", "--listen", "127.0.0.1:{port:http}", "--admin-listen", "127.0.0.1:{port:admin}", "--leak", "unbounded-cache", "--leak-bytes", "65536"]
ready_url = "http://127.0.0.1:{port:http}/healthz"
base_url = "http://127.0.0.1:{port:http}"
memory_limit = "48 MiB"
start_timeout = "300s"
[load]
connections = 16
[[load.phases]]
duration = "20s"
rate = 1000
[[load.requests]]
path = "/cache/{{seq}}"
[probes]
interval = "200ms"
"#,
    );
    let results = tmp.path().join("r");
    let out = run(&path, &results, &[], &[]);
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("OOM"), "{text}");
    let (s, probes) = folder_is_whole(&only_run_dir(&results));
    assert_eq!(s["target_exit"]["oom_killed"], true, "{s}");
    assert!(probes >= 1, "the samples before the kill are kept");
}

#[test]
fn target_never_ready_exits_3_with_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let path = scenario(
        tmp.path(),
        r#"[target]
command = ["sleep", "30"]
ready_port = "127.0.0.1:{port:never}"
base_url = "http://127.0.0.1:{port:never}"
start_timeout = "1s"
[load]
[[load.phases]]
duration = "5s"
rate = 10
[[load.requests]]
path = "/"
"#,
    );
    let results = tmp.path().join("r");
    let out = run(&path, &results, &[], &[]);
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("was not ready after"), "{text}");
    let (s, _) = folder_is_whole(&only_run_dir(&results));
    assert_eq!(s["exit_code"], 3);
    assert!(
        s["target_exit"]["cause"]
            .as_str()
            .unwrap()
            .contains("not ready")
    );
}

#[test]
fn target_that_stops_answering_fails_the_error_rate() {
    let _one = one_at_a_time();
    let t = RestTarget::start("none");
    let tmp = tempfile::tempdir().unwrap();
    let path = scenario(
        tmp.path(),
        &attach_text(&t, "4s", "[gates.latency]\nerror_rate = 0.01\n"),
    );
    let results = tmp.path().join("r");
    let child = spawn_run(&path, &results);
    wait_for_samples(&results, 1.5);
    // SAFETY: kill(2) on the target this test started: it stops answering, its sockets stay.
    unsafe {
        libc::kill(t.pid() as i32, libc::SIGSTOP);
    }
    let out = child.wait_with_output().unwrap();
    // SAFETY: as above; let it finish before it is killed by Drop.
    unsafe {
        libc::kill(t.pid() as i32, libc::SIGCONT);
    }
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  error rate"), "{text}");
    let (s, _) = folder_is_whole(&only_run_dir(&results));
    assert!(s["load"]["errors"]["timeout"].as_u64().unwrap() > 0, "{s}");
}

#[test]
fn slow_target_fails_the_p99_limit() {
    let _one = one_at_a_time();
    let t = RestTarget::start_with("none", &["--delay", "300ms"]);
    let tmp = tempfile::tempdir().unwrap();
    let text = attach_text(&t, "3s", "[gates.latency]\np99 = \"100ms\"\n").replace("500ms", "5s");
    let results = tmp.path().join("r");
    let out = run(&scenario(tmp.path(), &text), &results, &[], &[]);
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  p99") && text.contains("over the limit"),
        "{text}"
    );
    folder_is_whole(&only_run_dir(&results));
}

/// A TCP server that reads each request and resets the connection instead of answering (a
/// connection that only opens and closes, as a reachability check does, is left alone).
fn resetting_server() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut first = [0u8; 1];
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            if !matches!(std::io::Read::read(&mut &s, &mut first), Ok(1)) {
                continue;
            }
            // SO_LINGER 0: close sends a reset.
            let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: setsockopt on a socket this thread owns, with a valid struct.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as u32,
                );
            }
            drop(s);
        }
    });
    port
}

#[test]
fn target_resetting_connections_fails_the_error_rate() {
    let _one = one_at_a_time();
    let port = resetting_server();
    let tmp = tempfile::tempdir().unwrap();
    let path = scenario(
        tmp.path(),
        &format!(
            r#"[load]
base_url = "http://127.0.0.1:{port}"
connections = 4
[[load.phases]]
duration = "2s"
rate = 100
[[load.requests]]
path = "/"
[gates.latency]
error_rate = 0.01
"#
        ),
    );
    let results = tmp.path().join("r");
    let out = run(&path, &results, &[], &[]);
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  error rate"), "{text}");
    let (s, _) = folder_is_whole(&only_run_dir(&results));
    let errors = &s["load"]["errors"];
    let resets = errors["reset"].as_u64().unwrap_or(0) + errors["connect"].as_u64().unwrap_or(0);
    assert!(resets > 0, "resets are counted: {errors}");
}

#[test]
fn sigint_writes_every_report_with_the_verdict_so_far() {
    let _one = one_at_a_time();
    let t = RestTarget::start("unbounded-cache");
    let tmp = tempfile::tempdir().unwrap();
    let path = scenario(
        tmp.path(),
        &attach_text(
            &t,
            "30s",
            "[gates.signals.rss_bytes]\nmax_slope = \"256 B/request\"\n",
        ),
    );
    let results = tmp.path().join("r");
    let child = spawn_run(&path, &results);
    let dir = wait_for_samples(&results, 2.0);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let text = text_of(&out);
    let (s, _) = folder_is_whole(&dir);
    assert_eq!(out.status.code(), s["exit_code"].as_i64().map(|c| c as i32));
    assert!(
        s["stopped"]["reason"].as_str().unwrap().contains("SIGINT"),
        "{s}"
    );
    assert!(
        text.contains("Stopped at") && text.contains("SIGINT"),
        "{text}"
    );
    for f in ["junit.xml", "summary.md", "report.html"] {
        assert!(dir.join(f).exists(), "{f}");
    }
}

/// A metrics endpoint that accepts and never answers: each probe of it takes its whole
/// timeout (2 s), so stopping the run waits for it.
fn hanging_server() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

#[test]
fn second_sigint_exits_at_once_and_report_recovers_the_run() {
    let _one = one_at_a_time();
    let t = RestTarget::start("none");
    let hang = hanging_server();
    let tmp = tempfile::tempdir().unwrap();
    let extra = format!(
        "prometheus = {{ url = \"http://127.0.0.1:{hang}/metrics\", metrics = [\"x\"] }}\n\
         [gates.signals.rss_bytes]\nmax_slope = \"256 B/request\"\n"
    );
    let path = scenario(tmp.path(), &attach_text(&t, "30s", &extra));
    let results = tmp.path().join("r");
    let mut child = spawn_run(&path, &results);
    let dir = wait_for_samples(&results, 1.0);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    // The second arrives once the first is seen, while the stop waits for the hanging probe.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("stopping") {
        line.clear();
    }
    assert!(line.contains("SIGINT received: stopping"), "{line}");
    // SAFETY: as above.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text_of(&out));
    let (s, probes) = folder_is_whole(&dir);
    assert_eq!(s["finished"], false, "cut off before the final summary");
    assert!(probes >= 1);
    let out = leakgate().arg("report").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", text_of(&out));
    let (s, after) = folder_is_whole(&dir);
    assert_eq!(
        (s["finished"].clone(), s["recovered"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(
        after, probes,
        "every sample written before the fault is kept"
    );
}

/// Mounts a tmpfs at `dir` with `opts`; None where this user may not mount (not root).
fn mount_tmpfs(dir: &Path, opts: &str) -> Option<()> {
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(());
    }
    assert!(
        std::env::var("CI").is_err(),
        "cannot mount a tmpfs at {} (needs root): the disk-full and read-only faults are not \
         checked",
        dir.display()
    );
    eprintln!("SKIPPED: cannot mount a tmpfs here (not root)");
    None
}

fn umount(dir: &Path) {
    let _ = std::process::Command::new("umount").arg(dir).status();
}

/// A URL run of `secs` at `rate` against a plain target.
fn url_run(t: &RestTarget, results: &Path, rate: &str, secs: &str, env: &[(&str, &str)]) -> Output {
    let mut c = leakgate();
    c.args(["run", &format!("http://127.0.0.1:{}/cache/x", t.port)])
        .args([
            "--rate",
            rate,
            "-d",
            secs,
            "-c",
            "8",
            "--no-progress",
            "--results-dir",
        ])
        .arg(results);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn results_disk_full_exits_74_keeping_what_was_written() {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    if mount_tmpfs(&disk, "size=256k").is_none() {
        return;
    }
    // Fill the disk but for 16 KiB: the provisional summary fits, six seconds of windows (two
    // HdrHistograms each, a few KiB a second) do not.
    let filler = vec![0u8; 240 * 1024];
    let _ = std::fs::write(disk.join("filler"), &filler);
    let t = RestTarget::start("none");
    let out = url_run(&t, &disk, "2000", "6s", &[]);
    let text = text_of(&out);
    let dirs: Vec<PathBuf> = std::fs::read_dir(&disk)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    let whole = dirs.first().map(|d| folder_is_whole(d));
    umount(&disk);
    assert_eq!(out.status.code(), Some(74), "{text}");
    assert!(text.contains("No space left on device"), "{text}");
    let (s, _) = whole.expect("the run folder was made");
    assert_eq!(
        s["finished"], false,
        "the final summary did not fit: the provisional stays"
    );
}

#[test]
fn results_folder_not_writable_exits_74() {
    let tmp = tempfile::tempdir().unwrap();
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    if mount_tmpfs(&ro, "ro,size=64k").is_none() {
        return;
    }
    let out = leakgate()
        .args([
            "run",
            "http://127.0.0.1:9/x",
            "--rate",
            "10",
            "-d",
            "1s",
            "--results-dir",
        ])
        .arg(&ro)
        .output()
        .unwrap();
    umount(&ro);
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(74), "{text}");
    assert!(
        text.contains("cannot write results to") && text.contains("Read-only"),
        "{text}"
    );
}

/// A metrics endpoint that answers `n` scrapes, then is gone (its port refuses).
fn dying_metrics(n: usize) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    serve_metrics(l, "# TYPE queue_depth gauge\nqueue_depth 3\n", Some(n));
    port
}

#[test]
fn probe_url_dead_mid_run_is_reported_and_the_run_goes_on() {
    let _one = one_at_a_time();
    let t = RestTarget::start("none");
    let metrics = dying_metrics(6);
    let tmp = tempfile::tempdir().unwrap();
    // No gates: the run is about the probe (three seconds judge no memory trend), so it ends 0.
    let extra = format!(
        "prometheus = {{ url = \"http://127.0.0.1:{metrics}/metrics\", metrics = [\"queue_depth\"] }}\n"
    );
    let results = tmp.path().join("r");
    let out = run(
        &scenario(tmp.path(), &attach_text(&t, "3s", &extra)),
        &results,
        &[],
        &[],
    );
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Probe problem: prometheus probe"), "{text}");
    let (s, _) = folder_is_whole(&only_run_dir(&results));
    let problems = s["probe_problems"].as_array().unwrap();
    assert!(
        problems[0].as_str().unwrap().contains(&metrics.to_string()),
        "{s}"
    );
    // The metric is there before the endpoint died, absent after: never zero.
    let samples = std::fs::read_to_string(only_run_dir(&results).join("samples.ndjson")).unwrap();
    assert!(
        samples.contains("\"queue_depth\":3"),
        "sampled while it answered"
    );
    assert!(!samples.contains("\"queue_depth\":0"), "absent is not zero");
}

#[test]
fn driver_falling_behind_exits_4() {
    let _one = one_at_a_time();
    let t = RestTarget::start_with("none", &["--delay", "50ms"]);
    let tmp = tempfile::tempdir().unwrap();
    // 8 connections × 20 answers/s each = 160/s at most, against 2 000/s planned.
    let out = leakgate()
        .args(["run", &format!("http://127.0.0.1:{}/cache/x", t.port)])
        .args([
            "--rate",
            "2000",
            "-d",
            "2s",
            "-c",
            "8",
            "--max-queue",
            "100",
        ])
        .args(["--no-progress", "--results-dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("fell behind"), "{text}");
    let (s, _) = folder_is_whole(&only_run_dir(tmp.path()));
    assert_eq!(s["load"]["fell_behind"], true);
    assert!(s["load"]["dropped"].as_u64().unwrap() > 0);
}

#[test]
fn worker_panic_exits_70_and_says_so() {
    let _one = one_at_a_time();
    let t = RestTarget::start("none");
    let tmp = tempfile::tempdir().unwrap();
    let out = url_run(
        &t,
        tmp.path(),
        "200",
        "1s",
        &[("LEAKGATE_FAULT_WORKER_PANIC", "1")],
    );
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(70), "{text}");
    assert!(text.contains("a load worker failed"), "{text}");
    let (s, _) = folder_is_whole(&only_run_dir(tmp.path()));
    assert!(
        s["error"].as_str().unwrap().contains("fault injected"),
        "{s}"
    );
}

/// A server that answers every connection as HTTP/1.1, whatever is asked.
fn http1_only_server() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    port
}

#[test]
fn grpc_scenario_against_an_http1_target_exits_3_with_a_summary() {
    let port = http1_only_server();
    let tmp = tempfile::tempdir().unwrap();
    let path = scenario(
        tmp.path(),
        &format!(
            r#"[load]
protocol = "grpc"
base_url = "http://127.0.0.1:{port}"
[[load.phases]]
duration = "2s"
rate = 10
[[load.requests]]
path = "leakgate.target.v1.Target/Get"
body = '{{"key": "k"}}'
"#
        ),
    );
    let results = tmp.path().join("r");
    let out = run(&path, &results, &[], &[]);
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("does not answer as a gRPC server"), "{text}");
    let (s, _) = folder_is_whole(&only_run_dir(&results));
    assert_eq!(s["exit_code"], 3);
    assert!(s["error"].as_str().unwrap().contains("reflection"), "{s}");
}
