//! The gate end to end: the shipped REST and gRPC scenarios against the real reference target, through
//! the real `leakgate` binary. Leaky → exit 1 naming the signal; fixed → exit 0; a target
//! killed mid-run → exit 3. Runs one scenario at a time (each drives 2 000 req/s).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod runs;

static SERIAL: Mutex<()> = Mutex::new(());

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"))
}

fn leakgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_leakgate"));
    c.env_remove("RUST_BACKTRACE");
    c
}

fn run(name: &str, extra: &[&str]) -> (i32, String, tempfile::TempDir) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let results = tempfile::tempdir().unwrap();
    let out: Output = leakgate()
        .arg("run")
        .arg(scenario(name))
        .args(["--no-progress", "--results-dir"])
        .arg(results.path())
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text, results)
}

fn summary(results: &tempfile::TempDir) -> serde_json::Value {
    let dir = std::fs::read_dir(results.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    assert!(dir.join("samples.ndjson").exists());
    let summary = serde_json::from_str(&text).unwrap();
    check_reports(&dir, &summary);
    summary
}

/// Every run folder carries its reports; `leakgate report` rebuilds the same bytes from the
/// folder's files; summary.json fits the committed JSON Schema.
fn check_reports(dir: &Path, summary: &serde_json::Value) {
    let names = ["junit.xml", "summary.md", "report.html"];
    let written: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(dir.join(n)).unwrap_or_else(|e| panic!("{n}: {e}")))
        .collect();
    let out = leakgate().arg("report").arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, before) in names.iter().zip(written) {
        assert!(
            std::fs::read(dir.join(name)).unwrap() == before,
            "leakgate report rewrote {name} differently"
        );
    }
    let validator = runs::summary_validator();
    let errors: Vec<String> = validator
        .iter_errors(summary)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "summary.json does not fit its schema: {errors:?}"
    );
}

fn failed_signals(s: &serde_json::Value) -> Vec<String> {
    s["verdict"]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["outcome"] == "fail")
        .filter_map(|g| g["signal"].as_str().map(String::from))
        .collect()
}

/// Leaky scenarios stop once every gate is decided (`--until-verdict=all`): the suite waits for
/// the evidence of each signal it names, not for the scenario's planned length.
fn leaky(name: &str, signals: &[&str]) -> tempfile::TempDir {
    let (code, text, results) = run(name, &["--until-verdict=all"]);
    assert_eq!(code, 1, "{name} should fail the gate:\n{text}");
    // The verdict line names the outcome and the signals; the gate lines below explain.
    let verdict = text
        .lines()
        .find(|l| l.starts_with("Verdict: "))
        .unwrap_or_else(|| panic!("{name}: no verdict line:\n{text}"));
    assert!(
        verdict.starts_with("Verdict: FAIL: ") && !verdict.contains('→'),
        "{name}: {verdict}"
    );
    // What a person reads carries no Rust debug values.
    for debug in ["Some(", "None", "????", "Grpc ", "Http1 ", "Http2 "] {
        assert!(
            !text.contains(debug),
            "{name}: output shows {debug:?}:\n{text}"
        );
    }
    let s = summary(&results);
    runs::check_diagnosis(name, &s, &text);
    let failed = failed_signals(&s);
    for sig in signals {
        assert!(
            failed.iter().any(|f| f == sig),
            "{name}: {sig} not among failed {failed:?}\n{text}"
        );
        assert!(
            text.contains(&format!("FAIL  {sig}")),
            "{name}: output does not name {sig}:\n{text}"
        );
    }
    results
}

/// Clean scenarios stop once two evaluations in a row pass; the drain check still runs.
fn clean(name: &str) {
    clean_with(name, &["--until-verdict"]);
}

fn clean_with(name: &str, extra: &[&str]) {
    let (code, text, results) = run(name, extra);
    assert_eq!(code, 0, "{name} should pass:\n{text}");
    assert_eq!(summary(&results)["verdict"]["outcome"], "pass");
}

#[test]
fn unbounded_cache_leaks() {
    let results = leaky("rest-unbounded-cache", &["rss_bytes", "cache_entries"]);
    let dir = std::fs::read_dir(results.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // The heap diff names the code that holds the memory: the cache's value builder on top.
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    let top = md
        .lines()
        .skip_while(|l| !l.starts_with("| site |"))
        .nth(2)
        .unwrap_or_else(|| panic!("no heap table in summary.md:\n{md}"));
    assert!(top.contains("`leakgate_targets::cache::"), "{top}\n{md}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("<table id=\"heap\""),
        "no heap table in report.html"
    );
    // `analyze` reaches the same verdict from the recorded samples alone.
    let out = leakgate()
        .arg("analyze")
        .arg(dir.join("samples.ndjson"))
        .args(["--signal", "rss_bytes", "--max-slope", "256 B/request"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("rss_bytes"), "{text}");
}

#[test]
fn fixed_cache_passes() {
    clean("rest-cache-fixed");
}

#[test]
fn bounded_cache_plateau_passes() {
    // A cache still filling looks like a leak until it is full: this one runs its whole plan.
    clean_with("rest-bounded-cache", &[]);
}

#[test]
fn unclosed_bodies_leak() {
    leaky(
        "rest-unclosed-bodies",
        &["fd_count", "open_upstream_responses"],
    );
}

#[test]
fn closed_bodies_pass() {
    clean("rest-closed-bodies");
}

#[test]
fn leaked_tasks_leak() {
    leaky("rest-leaked-tasks", &["tokio_alive_tasks"]);
}

#[test]
fn bounded_tasks_pass() {
    clean("rest-bounded-tasks");
}

#[test]
fn grpc_unbounded_cache_leaks() {
    leaky("grpc-unbounded-cache", &["rss_bytes", "cache_entries"]);
}

#[test]
fn grpc_fixed_cache_passes() {
    clean("grpc-cache-fixed");
}

#[test]
fn grpc_unclosed_bodies_leak() {
    leaky(
        "grpc-unclosed-bodies",
        &["fd_count", "open_upstream_responses"],
    );
}

#[test]
fn grpc_closed_bodies_pass() {
    clean("grpc-closed-bodies");
}

#[test]
fn grpc_leaked_streams_leak() {
    leaky(
        "grpc-leaked-streams",
        &["open_streams", "tokio_alive_tasks"],
    );
}

#[test]
fn grpc_bounded_streams_pass() {
    clean("grpc-bounded-streams");
}

/// Children of `pid` (via /proc/<pid>/task/*/children).
fn children(pid: u32) -> Vec<u32> {
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

/// The first descendant of `pid` running the program `exe` (by `/proc/<pid>/exe`).
fn descendant_running(pid: u32, exe: &Path) -> Option<u32> {
    let mut todo = children(pid);
    while let Some(c) = todo.pop() {
        if let Ok(link) = std::fs::read_link(format!("/proc/{c}/exe")) {
            // A binary rebuilt while it runs reads as "<path> (deleted)".
            let link = link.to_string_lossy();
            if Path::new(link.trim_end_matches(" (deleted)")) == exe {
                return Some(c);
            }
        }
        todo.extend(children(c));
    }
    None
}

/// True once the run folder under `results` has recorded a load window.
fn has_a_window(results: &Path) -> bool {
    let Some(dir) = std::fs::read_dir(results)
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
    else {
        return false;
    };
    std::fs::read_to_string(dir.path().join("samples.ndjson"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|v| v["type"] == "window")
}

#[test]
fn a_target_killed_mid_run_exits_3() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // Built first, so the run does not start with `cargo build` (a child that is no target),
    // and known by its path, so the process killed is the target and nothing else.
    leakgate::run::target::ensure_built("rest-target").expect("rest-target builds");
    let exe = leakgate::scenario::placeholders::default_bin_dir()
        .join("rest-target")
        .canonicalize()
        .unwrap();
    let results = tempfile::tempdir().unwrap();
    let child = leakgate()
        .arg("run")
        .arg(scenario("rest-unbounded-cache"))
        .args(["--no-progress", "--results-dir"])
        .arg(results.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the load to be under way (a window recorded), then kill the target as the OOM
    // killer would.
    let start = Instant::now();
    let target = loop {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no {} under leakgate with a load window recorded",
            exe.display()
        );
        if let Some(t) = descendant_running(child.id(), &exe)
            && has_a_window(results.path())
        {
            break t;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // SAFETY: kill(2) on a pid we just read; at worst it is already gone.
    unsafe {
        libc::kill(target as i32, libc::SIGKILL);
    }
    let killed = Instant::now();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{text}");
    // Noticed at once: the scenario's load still had over 20 s to go.
    assert!(
        killed.elapsed() < Duration::from_secs(15),
        "the death was noticed after {:?}",
        killed.elapsed()
    );
    assert!(
        text.contains("Target died") && text.contains("signal 9"),
        "{text}"
    );
    let s = summary(&results);
    assert_eq!(s["exit_code"], 3);
    assert!(
        s["target_exit"]["cause"]
            .as_str()
            .unwrap()
            .contains("SIGKILL")
    );
    assert!(
        !s["last_samples"].as_array().unwrap().is_empty(),
        "the last samples are kept"
    );
}

#[test]
fn check_works_offline_for_reflection_and_prints_durations_as_written() {
    let out = leakgate()
        .arg("check")
        .arg(scenario("grpc-unbounded-cache"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("resolved by server reflection when the run starts"),
        "{text}"
    );
    assert!(text.contains("duration = \"5s\""), "{text}");
    assert!(!text.contains("secs ="), "{text}");
}

#[test]
fn check_validates_and_bad_files_exit_65() {
    let out = leakgate()
        .arg("check")
        .arg(scenario("quickstart"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid; the resolved plan"));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[load]\nconnections = \"x\"\n").unwrap();
    let out = leakgate().arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(65));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:2:15"), "{err}");
    // A bad template is a scenario mistake too.
    let text = std::fs::read_to_string(scenario("quickstart"))
        .unwrap()
        .replace("{{seq}}", "{{nope}}");
    std::fs::write(&bad, text).unwrap();
    let out = leakgate().arg("check").arg(&bad).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A usage mistake is 64.
    let out = leakgate()
        .args(["run", "http://127.0.0.1:1/", "--rate", "-3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn unreachable_url_exits_3() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = leakgate()
        .args([
            "run",
            &format!("http://127.0.0.1:{port}/"),
            "--duration",
            "1s",
            "--results-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not reachable"));
}
