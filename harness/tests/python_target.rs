//! The gate against CPython: the grpcio (`grpc.aio`) reference target
//! (`targets/python/leaktarget.py`) under the shipped `python-grpc-*` scenarios, through the
//! real `leakgate` binary. Leaky → exit 1 naming the signals; fixed and bounded → exit 0.
//!
//! The scenarios name the target `{python:leaktarget}` (the wrapper `target/python/leaktarget`),
//! which leakgate makes with `targets/python/build.sh` when it is missing or stale. The tests
//! never install anything: without the venv (`target/python/venv`, made by
//! `bash targets/python/build.sh`, which `./ci/test.sh` runs) they print SKIPPED, and fail when
//! `CI` is set. Runs one scenario at a time.

use std::process::Command;

use leakgate::scenario::placeholders::default_python_dir;

mod runs;

use runs::scenario::{Run, expect_leak, expect_pass, shipped};

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
    let r = runs::scenario::run(name, &shipped(name), &["--until-verdict=all"]);
    check_python_run(name, &r);
    expect_leak(name, &r, signals);
    Some(r)
}

fn clean(name: &str) {
    if !python_target(name) {
        return;
    }
    let r = runs::scenario::run(name, &shipped(name), runs::scenario::clean_flags(name));
    check_python_run(name, &r);
    expect_pass(name, &r);
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
