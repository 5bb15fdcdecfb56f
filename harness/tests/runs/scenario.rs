//! One `leakgate run` of a scenario file through the real binary, read back, and the checks
//! every runtime's end-to-end tests share: a leak fails naming its signals and its diagnosis,
//! a clean run passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Instant;

/// Under `cargo test` the scenarios of one binary run one at a time (nextest runs each test in
/// a process of its own and caps them with its `load` group).
static SERIAL: Mutex<()> = Mutex::new(());

/// A shipped scenario, `scenarios/NAME.toml`.
pub fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"))
}

/// A finished run: exit code, terminal text, folder and summary.
pub struct Run {
    pub code: i32,
    pub text: String,
    pub dir: PathBuf,
    pub summary: serde_json::Value,
    pub secs: f64,
    _results: tempfile::TempDir,
}

/// Runs the scenario file `path` with `extra` flags; its `summary.json` must match the schema.
pub fn run(name: &str, path: &Path, extra: &[&str]) -> Run {
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
    let secs = started.elapsed().as_secs_f64();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{name}: exit {:?} after {secs:.1} s", out.status.code());
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
    let errors: Vec<String> = super::summary_validator()
        .iter_errors(&summary)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: summary.json: {errors:?}");
    Run {
        code: out.status.code().unwrap_or(-1),
        text,
        dir,
        summary,
        secs,
        _results: results,
    }
}

/// The signals whose gates ended with `outcome`.
pub fn gates_with(s: &serde_json::Value, outcome: &str) -> Vec<String> {
    s["verdict"]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["outcome"] == outcome)
        .filter_map(|g| g["signal"].as_str().map(String::from))
        .collect()
}

/// The run failed the gate (exit 1) on every one of `signals`, named in the output, with the
/// scenario's leak class first in the diagnosis.
pub fn expect_leak(name: &str, r: &Run, signals: &[&str]) {
    assert_eq!(r.code, 1, "{name} should fail the gate:\n{}", r.text);
    super::check_diagnosis(name, &r.summary, &r.text);
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
}

/// The run passed (exit 0, verdict pass).
pub fn expect_pass(name: &str, r: &Run) {
    assert_eq!(r.code, 0, "{name} should pass:\n{}", r.text);
    assert_eq!(r.summary["verdict"]["outcome"], "pass", "{}", r.text);
}

/// The flags a clean scenario runs with: a bounded cache or pool still filling looks like a
/// leak until it is full, so bounded ones run their plan; the others stop once two evaluations
/// pass.
pub fn clean_flags(name: &str) -> &'static [&'static str] {
    if name.contains("bounded") {
        &[]
    } else {
        &["--until-verdict"]
    }
}
