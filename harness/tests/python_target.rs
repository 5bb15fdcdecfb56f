//! The gate against CPython: the grpcio (`grpc.aio`) reference target
//! (`targets/python/leaktarget.py`) under the shipped `python-grpc-*` scenarios, through the
//! real `leakgate` binary. Leaky → exit 1 naming the signals; fixed and bounded → exit 0.
//!
//! The scenarios name the target `{python:leaktarget}` (the wrapper `target/python/leaktarget`),
//! which leakgate makes with `targets/python/build.sh` when it is missing or stale. The tests
//! never install anything: without the venv (`target/python/venv`, made by
//! `bash targets/python/build.sh`, which `./ci/test.sh` runs) they print SKIPPED, and fail when
//! `CI` is set. Runs one scenario at a time.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Instant;

use leakgate::scenario::placeholders::default_python_dir;

mod runs;

static SERIAL: Mutex<()> = Mutex::new(());

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"))
}

/// Whether the Python target can run here without a download: its venv is in place (leakgate
/// then makes the stubs and the wrapper offline). Panics when it cannot and `CI` is set.
fn python_target(test: &str) -> bool {
    let venv = default_python_dir().join("venv").join("bin").join("python");
    let runs = Command::new(&venv)
        .args(["-c", "import grpc, grpc_tools, google.protobuf"])
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: the Python target's venv {} is missing or lacks grpcio; ./ci/test.sh makes it \
         (bash targets/python/build.sh --check, which needs python3 with venv and pip)",
        venv.display()
    );
    eprintln!(
        "SKIPPED {test}: no venv with grpcio at {} (run bash targets/python/build.sh, or \
         ./ci/test.sh)",
        venv.display()
    );
    false
}

struct Run {
    code: i32,
    text: String,
    dir: PathBuf,
    summary: serde_json::Value,
    _results: tempfile::TempDir,
}

fn run(name: &str) -> Run {
    run_file(name, &scenario(name), &["--until-verdict=all"])
}

/// Runs a scenario file with extra flags, printing how long it took.
fn run_file(name: &str, path: &Path, extra: &[&str]) -> Run {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let results = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out: Output = Command::new(env!("CARGO_BIN_EXE_leakgate"))
        .env_remove("RUST_BACKTRACE")
        .arg("run")
        .arg(path)
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
    eprintln!(
        "{name}: exit {:?} after {:.1} s\n{text}",
        out.status.code(),
        started.elapsed().as_secs_f64()
    );
    let dir = std::fs::read_dir(results.path())
        .unwrap()
        .next()
        .unwrap_or_else(|| panic!("{name}: no run folder\n{text}"))
        .unwrap()
        .path();
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("summary.json"))
            .unwrap_or_else(|e| panic!("{name}: summary.json: {e}\n{text}")),
    )
    .unwrap();
    let errors: Vec<String> = runs::summary_validator()
        .iter_errors(&summary)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: summary.json: {errors:?}");
    Run {
        code: out.status.code().unwrap_or(-1),
        text,
        dir,
        summary,
        _results: results,
    }
}

fn gates_with(s: &serde_json::Value, outcome: &str) -> Vec<String> {
    s["verdict"]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["outcome"] == outcome)
        .filter_map(|g| g["signal"].as_str().map(String::from))
        .collect()
}

/// The scenario ran against the Python wrapper, its probes read the interpreter's metrics, and
/// the load held its planned rate (the target keeps up on one core).
fn check_python_run(name: &str, r: &Run) {
    let command = r.summary["plan"]["target"]["command"][0].as_str().unwrap();
    assert!(command.ends_with("python/leaktarget"), "{name}: {command}");
    let samples = std::fs::read_to_string(r.dir.join("samples.ndjson")).unwrap();
    for sig in [
        "\"python_tasks\"",
        "\"python_allocated_blocks\"",
        "\"python_gc_collections_total\"",
        "\"rss_bytes\"",
        "\"fd_count\"",
    ] {
        assert!(samples.contains(sig), "{name}: no {sig} in samples.ndjson");
    }
    let stderr = std::fs::read_to_string(r.dir.join("target.stderr.log")).unwrap_or_default();
    assert!(
        !stderr.contains("Traceback"),
        "{name}: the target raised:\n{stderr}"
    );
    assert!(
        r.text.contains("dropped 0"),
        "{name}: the load dropped requests (the target did not keep up):\n{}",
        r.text
    );
}

fn leaky(name: &str, signals: &[&str]) -> Option<Run> {
    if !python_target(name) {
        return None;
    }
    let r = run(name);
    assert_eq!(r.code, 1, "{name} should fail the gate:\n{}", r.text);
    check_python_run(name, &r);
    runs::check_diagnosis(name, &r.summary, &r.text);
    let failed = gates_with(&r.summary, "fail");
    for sig in signals {
        assert!(
            failed.iter().any(|f| f == sig),
            "{name}: {sig} not among failed {failed:?}\n{}",
            r.text
        );
        assert!(
            r.text.contains(&format!("FAIL  {sig}")),
            "{name}: output does not name {sig}:\n{}",
            r.text
        );
    }
    Some(r)
}

fn clean(name: &str) {
    if !python_target(name) {
        return;
    }
    // A cache still filling looks like a leak until it is full: bounded ones run their plan.
    let r = if name.contains("bounded-cache") {
        run_file(name, &scenario(name), &[])
    } else {
        run(name)
    };
    assert_eq!(r.code, 0, "{name} should pass:\n{}", r.text);
    check_python_run(name, &r);
    assert_eq!(r.summary["verdict"]["outcome"], "pass", "{}", r.text);
}

#[test]
fn python_unbounded_cache_leaks() {
    leaky(
        "python-grpc-unbounded-cache",
        &["rss_bytes", "cache_entries"],
    );
}

#[test]
fn python_bounded_cache_plateau_passes() {
    clean("python-grpc-bounded-cache");
}

#[test]
fn python_fixed_cache_passes() {
    clean("python-grpc-cache-fixed");
}

#[test]
fn python_unclosed_bodies_leak() {
    leaky(
        "python-grpc-unclosed-bodies",
        &["fd_count", "open_upstream_responses", "python_tasks"],
    );
}

#[test]
fn python_closed_bodies_pass() {
    clean("python-grpc-closed-bodies");
}

#[test]
fn python_leaked_tasks_leak() {
    leaky(
        "python-grpc-leaked-tasks",
        &["python_tasks", "open_streams", "rss_bytes"],
    );
}

#[test]
fn python_bounded_tasks_pass() {
    clean("python-grpc-bounded-tasks");
}
