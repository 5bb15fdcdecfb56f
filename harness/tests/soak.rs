//! Soak use on a canary, end to end through the real binary: `leakgate watch` of a running
//! reference target driven by a second leakgate process agrees with that `run`; attach by a
//! systemd-unit and container cgroup made here; `kill -9` then `leakgate report`; SIGTERM;
//! `--until-verdict`; the live endpoints parsed by a real Prometheus parser; bad input.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod procs;
mod runs;

use procs::*;

/// Each test here drives a target at up to 2 000 req/s: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn failed_signals(s: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = s["verdict"]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["outcome"] == "fail" && g["kind"] == "slope")
        .filter_map(|g| g["signal"].as_str().map(String::from))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn text_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// A scenario that attaches to `pid` and drives it: the `run` half of the agreement test.
fn attach_scenario(dir: &Path, t: &RestTarget) -> PathBuf {
    let path = dir.join("attach.toml");
    std::fs::write(
        &path,
        format!(
            r#"name = "attach"
[target]
pid = {pid}
base_url = "http://127.0.0.1:{port}"

[load]
connections = 16
[[load.phases]]
kind = "warmup"
duration = "3s"
rate = 2000
[[load.phases]]
kind = "steady"
duration = "16s"
rate = 2000
[[load.requests]]
path = "/cache/{{{{seq}}}}"

[probes]
interval = "500ms"
drain_wait = "500ms"
prometheus = {{ url = "http://127.0.0.1:{admin}/metrics", metrics = ["cache_entries"] }}

[gates.signals.rss_bytes]
max_slope = "256 B/request"
[gates.signals.cache_entries]
max_slope = "0.01/request"
"#,
            pid = t.pid(),
            port = t.port,
            admin = t.admin
        ),
    )
    .unwrap();
    path
}

#[test]
fn watch_agrees_with_run_and_serves_live_endpoints() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let t = RestTarget::start("unbounded-cache");
    let tmp = tempfile::tempdir().unwrap();
    let (watch_results, run_results) = (tmp.path().join("watch"), tmp.path().join("run"));
    let live_port = free_port();
    let watch = leakgate()
        .args(["watch", "--pid", &t.pid().to_string()])
        .args([
            "--requests-from",
            &format!("http://127.0.0.1:{}/metrics", t.admin),
        ])
        .args(["--requests-metric", "requests_served_total"])
        .args([
            "--prometheus",
            &format!("http://127.0.0.1:{}/metrics", t.admin),
        ])
        .args(["--metric", "cache_entries"])
        .args(["--gate", "rss_bytes=256 B/request"])
        .args(["--gate", "cache_entries=0.01/request"])
        .args([
            "--interval",
            "500ms",
            "--evaluate-every",
            "2s",
            "--duration",
            "24s",
        ])
        .args(["--listen", &format!("127.0.0.1:{live_port}")])
        .args(["--no-progress", "--results-dir"])
        .arg(&watch_results)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The watch serves before it samples: the endpoints answer at once.
    wait_for(Duration::from_secs(20), "the live endpoints", || {
        get(live_port, "/healthz").is_some()
    });
    let run = leakgate()
        .arg("run")
        .arg(attach_scenario(tmp.path(), &t))
        .args(["--no-progress", "--results-dir"])
        .arg(&run_results)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // While both run: /metrics parses with a real Prometheus parser and carries the rolling
    // verdict; /verdict is JSON.
    let mut saw_evaluation = false;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(40) && !saw_evaluation {
        std::thread::sleep(Duration::from_millis(500));
        let Some((200, metrics)) = get(live_port, "/metrics") else {
            continue;
        };
        let lines = metrics.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("/metrics parses");
        let verdict = scrape
            .samples
            .iter()
            .find(|s| s.metric == "leakgate_verdict")
            .expect("leakgate_verdict present");
        assert!(matches!(verdict.value, prometheus_parse::Value::Gauge(_)));
        let (code, body) = get(live_port, "/verdict").unwrap();
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&body).expect("/verdict is JSON");
        assert!(["pass", "leak", "inconclusive"].contains(&v["verdict"].as_str().unwrap()));
        saw_evaluation = scrape
            .samples
            .iter()
            .any(|s| s.metric == "leakgate_signal_slope_per_second");
    }
    assert!(saw_evaluation, "no rolling evaluation reached /metrics");

    let run_out = run.wait_with_output().unwrap();
    let watch_out = watch.wait_with_output().unwrap();
    let (run_text, watch_text) = (text_of(&run_out), text_of(&watch_out));
    assert_eq!(run_out.status.code(), Some(1), "run:\n{run_text}");
    assert_eq!(watch_out.status.code(), Some(1), "watch:\n{watch_text}");
    let (rs, ws) = (
        summary(&only_run_dir(&run_results)),
        summary(&only_run_dir(&watch_results)),
    );
    let want = vec!["cache_entries".to_string(), "rss_bytes".to_string()];
    assert_eq!(failed_signals(&rs), want, "run:\n{run_text}");
    assert_eq!(failed_signals(&ws), want, "watch:\n{watch_text}");
    // Both judged growth per request, and agree on its size within a factor of two.
    let per_request = |s: &serde_json::Value| {
        s["verdict"]["gates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "cache_entries per request")
            .unwrap()["observed"]
            .as_f64()
            .unwrap()
    };
    let (r, w) = (per_request(&rs), per_request(&ws));
    assert!((0.5..2.0).contains(&(w / r)), "run {r} vs watch {w}");
    let validator = runs::summary_validator();
    for s in [&rs, &ws] {
        assert!(validator.is_valid(s), "summary.json fits the schema");
    }
}

/// Makes a cgroup v1 memory folder (or v2 where that is the hierarchy) under `parent`.
fn make_cgroup(rel: &str) -> Option<PathBuf> {
    for root in [
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ] {
        let root = Path::new(root);
        let probe = if root.ends_with("memory") {
            "memory.usage_in_bytes"
        } else {
            "cgroup.procs"
        };
        if !root.join(probe).exists() {
            continue;
        }
        let dir = root.join(rel);
        if std::fs::create_dir_all(&dir).is_ok() && dir.join("cgroup.procs").exists() {
            return Some(dir);
        }
    }
    None
}

/// Removes a test cgroup tree, deepest first (a cgroup must be empty to go).
fn remove_cgroup(top: &Path) {
    let mut dirs = vec![top.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        if let Ok(rd) = std::fs::read_dir(&dirs[i]) {
            dirs.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        i += 1;
    }
    for d in dirs.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
}

#[test]
fn attach_by_systemd_unit_and_container_cgroups_made_here() {
    let tag = format!("leakgate-test-{}", std::process::id());
    let hex = format!("{:016x}{:048x}", std::process::id(), 0xabcdefu64);
    let unit_rel = format!("{tag}.slice/demo-{tag}.service");
    let container_rel = format!("{tag}.slice/docker-{hex}.scope");
    let (Some(unit), Some(container)) = (make_cgroup(&unit_rel), make_cgroup(&container_rel))
    else {
        assert!(
            std::env::var("CI").is_err(),
            "cannot make a cgroup here (needs root and a writable cgroup hierarchy)"
        );
        eprintln!("SKIPPED: cannot make a cgroup here");
        return;
    };
    let top = unit.parent().unwrap().to_path_buf();
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for (dir, flag, value) in [
        (&unit, "--systemd-unit", format!("demo-{tag}")),
        (&container, "--container", hex[..12].to_string()),
    ] {
        let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(dir.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
        let results = tmp.path().join(flag.trim_start_matches('-'));
        let out = leakgate()
            .args([
                "watch",
                flag,
                &value,
                "--duration",
                "1500ms",
                "--interval",
                "100ms",
            ])
            .args([
                "--evaluate-every",
                "500ms",
                "--no-progress",
                "--results-dir",
            ])
            .arg(&results)
            .output()
            .unwrap();
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        cases.push((flag, sleeper.id(), out, results));
    }
    remove_cgroup(&top);
    for (flag, pid, out, results) in cases {
        let text = text_of(&out);
        // A sleeping process's memory is flat: the gate passes.
        assert_eq!(out.status.code(), Some(0), "{flag}:\n{text}");
        let s = summary(&only_run_dir(&results));
        assert_eq!(
            s["target_pid"], pid,
            "{flag}: the cgroup's process was found"
        );
        let sample = &s["last_samples"][0]["signals"];
        assert!(
            sample["rss_bytes"].as_f64().unwrap() > 0.0,
            "{flag}: {sample}"
        );
        assert!(
            sample.get("cgroup_memory_bytes").is_some(),
            "{flag}: the cgroup is sampled: {sample}"
        );
    }
}

fn start_quickstart(results: &Path, extra: &[&str]) -> Child {
    leakgate()
        .arg("run")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/quickstart.toml"))
        .args(["--no-progress", "--results-dir"])
        .arg(results)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn kill_9_leaves_a_folder_report_can_judge() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let mut run = start_quickstart(tmp.path(), &[]);
    let dir = wait_for_samples(tmp.path(), 8.0);
    let target = children(run.id());
    run.kill().unwrap();
    run.wait().unwrap();
    for pid in target {
        // SAFETY: kill(2) on the orphaned target a killed leakgate left behind.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
    }
    assert_eq!(
        summary(&dir)["finished"],
        false,
        "the provisional summary is there"
    );
    let (written, _) = probes_written(&dir);
    let out = leakgate().arg("report").arg(&dir).output().unwrap();
    let text = text_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("cut off"), "{text}");
    let s = summary(&dir);
    assert_eq!(s["finished"], true);
    assert_eq!(s["recovered"], true);
    assert!(s["verdict"]["outcome"].is_string(), "a verdict: {s}");
    assert!(
        s["load"]["completed"].as_u64().unwrap() > 10_000,
        "load rebuilt from windows"
    );
    for f in ["junit.xml", "summary.md", "report.html"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    // Every sample written before the kill is still there.
    assert_eq!(probes_written(&dir).0, written);
    assert!(runs::summary_validator().is_valid(&s));
}

#[test]
fn sigterm_writes_every_report_and_exits_with_the_verdict_so_far() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let run = start_quickstart(tmp.path(), &[]);
    let dir = wait_for_samples(tmp.path(), 7.0);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(run.id() as i32, libc::SIGTERM);
    }
    let out = run.wait_with_output().unwrap();
    let text = text_of(&out);
    let s = summary(&dir);
    assert_eq!(
        out.status.code(),
        Some(s["exit_code"].as_i64().unwrap() as i32)
    );
    assert!([1, 2].contains(&s["exit_code"].as_i64().unwrap()), "{text}");
    assert!(
        s["stopped"]["reason"].as_str().unwrap().contains("SIGTERM"),
        "{s}"
    );
    assert_eq!(s["finished"], true);
    for f in ["junit.xml", "summary.md", "report.html"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    assert!(text.contains("Stopped at"), "{text}");
}

#[test]
fn until_verdict_stops_a_leaky_quickstart_early() {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let out = start_quickstart(tmp.path(), &["--until-verdict"])
        .wait_with_output()
        .unwrap();
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let s = summary(&only_run_dir(tmp.path()));
    let stopped = &s["stopped"];
    assert_eq!(stopped["verdict_decided"], true, "{s}");
    let t = stopped["t"].as_f64().unwrap();
    // Planned: 5 s warm-up and 20 s steady.
    assert!(t < 20.0, "decided at {t} s");
    assert!(s["load"]["elapsed"].as_f64().unwrap() < 21.0);
    assert!(text.contains("Time to verdict"), "{text}");
    // It stops at the first gate that fails (`--until-verdict=all` would wait for both).
    let failed = failed_signals(&s);
    assert!(
        !failed.is_empty()
            && failed
                .iter()
                .all(|f| f == "rss_bytes" || f == "cache_entries"),
        "{failed:?}\n{text}"
    );
}

#[test]
fn bad_watch_input_is_a_usage_error_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let not_cgroup = tempfile::tempdir().unwrap();
    let me = std::process::id().to_string();
    let taken_text = taken_port.to_string();
    // A metrics page without the counter asked for.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_port = server.local_addr().unwrap().port();
    serve_metrics(server, "# TYPE other_total counter\nother_total 5\n", None);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--pid".into(), "999999999".into()],
            "no process with pid 999999999",
        ),
        (
            vec!["--cgroup".into(), not_cgroup.path().display().to_string()],
            "is not a cgroup",
        ),
        (
            vec![
                "--pid".into(),
                me.clone(),
                "--requests-from".into(),
                format!("http://127.0.0.1:{metrics_port}/metrics"),
            ],
            "http_requests_total",
        ),
        (
            vec![
                "--pid".into(),
                me.clone(),
                "--listen".into(),
                format!("127.0.0.1:{taken_port}"),
            ],
            &taken_text,
        ),
        (
            vec![
                "--pid".into(),
                me.clone(),
                "--listen".into(),
                "0.0.0.0:0".into(),
            ],
            "--listen-public",
        ),
        (vec![], "say which service to watch"),
        (
            vec![
                "--pid".into(),
                me.clone(),
                "--gate".into(),
                "rss_bytes".into(),
            ],
            "SIGNAL=LIMIT",
        ),
        (
            vec!["--process-name".into(), "no-such-process-leakgate".into()],
            "no process named",
        ),
    ];
    for (args, needle) in cases {
        let out = leakgate()
            .arg("watch")
            .args(&args)
            .args(["--duration", "1s", "--no-progress", "--results-dir"])
            .arg(tmp.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(lines.len() <= 2, "{args:?}: one line, not:\n{err}");
    }
    drop(taken);
}
