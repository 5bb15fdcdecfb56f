//! A native leak, which a runtime's heap profile cannot see: rest-target `--leak native` mallocs
//! a buffer through the C library per request and never frees it. The shipped
//! `rest-native-leak` scenario runs it under heaptrack (`[probes] native = "heaptrack"`) through
//! the real `leakgate` binary: rss_bytes fails (exit 1), jemalloc's own count passes, and the
//! heaptrack table names the leaking function on top with exactly the bytes the target leaked.
//! Without heaptrack the test prints SKIPPED (and fails when `CI` is set: `./ci/test.sh` installs
//! Debian's heaptrack).

use std::path::{Path, PathBuf};
use std::process::Command;

mod runs;

const HINT: &str = "RSS grows but the runtime heap does not: native or fragmentation: look at \
                    heaptrack";

fn leakgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_leakgate"));
    c.env_remove("RUST_BACKTRACE");
    c
}

fn scenario() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/rest-native-leak.toml")
}

fn heaptrack_installed() -> bool {
    ["heaptrack", "heaptrack_print"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The last value of a signal in samples.ndjson (the drain sample, after the load stopped).
fn last_value(dir: &Path, signal: &str) -> f64 {
    let text = std::fs::read_to_string(dir.join("samples.ndjson")).unwrap();
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["signals"][signal].as_f64())
        .unwrap_or_else(|| panic!("no {signal} in samples.ndjson"))
}

#[test]
fn native_leak_fails_on_rss_and_heaptrack_names_the_function() {
    if !heaptrack_installed() {
        runs::tool_missing(
            "native_leak_fails_on_rss_and_heaptrack_names_the_function",
            "heaptrack",
            "heaptrack",
        );
        return;
    }
    let results = tempfile::tempdir().unwrap();
    let out = leakgate()
        .arg("run")
        .arg(scenario())
        .args(["--no-progress", "--until-verdict=all", "--results-dir"])
        .arg(results.path())
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  rss_bytes"), "{text}");
    assert!(text.contains("PASS  jemalloc_allocated_bytes"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("Native heap (heaptrack): "))
        .unwrap_or_else(|| panic!("no native heap line:\n{text}"));
    assert!(line.contains("most by leak_native_buffer"), "{line}");

    let dir = std::fs::read_dir(results.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["plan"]["probes"]["native"], "heaptrack");
    let errors: Vec<String> = runs::summary_validator()
        .iter_errors(&summary)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "summary.json: {errors:?}");
    // RSS grew, jemalloc's heap did not: the diagnosis says native memory.
    runs::check_diagnosis("rest-native-leak", &summary, &text);

    // The table, as the reports read it back from the folder: the leaking function on top, with
    // every byte of every buffer the target says it leaked (4 KiB each).
    let table = leakgate::heap::heaptrack::read_run(&dir)
        .expect("heaptrack.stacks.txt is written")
        .unwrap();
    let top = &table.sites[0];
    assert_eq!(top.function, "leak_native_buffer", "{table:?}");
    assert_eq!(
        top.callers[0],
        "leakgate_targets::rest::Service::handle::{{closure}}"
    );
    let buffers = last_value(&dir, "native_buffers");
    assert!(buffers > 1000.0, "{buffers} buffers");
    assert_eq!(top.end, buffers as i64 * 4096, "{table:?}");
    eprintln!(
        "heaptrack: {} bytes never freed by leak_native_buffer, {buffers} buffers of 4096 \
         bytes leaked; all sites {} bytes",
        top.end, table.end_total
    );
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        md.contains("| `leak_native_buffer` (native.rs) |"),
        "summary.md:\n{md}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("<table id=\"native\"") && html.contains("<code>leak_native_buffer</code>"),
        "report.html has no native table"
    );
    assert!(
        !md.contains(HINT),
        "with heaptrack on there is a table, not the hint"
    );

    // The same run without heaptrack: RSS grew and jemalloc did not, so the report says where
    // to look.
    std::fs::remove_file(dir.join(leakgate::heap::heaptrack::STACKS_NAME)).unwrap();
    let mut plain = summary.clone();
    plain["plan"]["probes"]
        .as_object_mut()
        .unwrap()
        .remove("native");
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&plain).unwrap(),
    )
    .unwrap();
    let out = leakgate().arg("report").arg(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    let hint = md
        .lines()
        .find(|l| l.contains(HINT))
        .unwrap_or_else(|| panic!("no hint in summary.md:\n{md}"));
    assert!(
        hint.contains("rss_bytes +") && hint.contains("jemalloc_allocated_bytes"),
        "{hint}"
    );
    eprintln!("{hint}");
}

#[test]
fn missing_heaptrack_is_one_line_and_exit_65() {
    // A PATH without heaptrack, with everything else leakgate needs before it starts a target.
    let empty = tempfile::tempdir().unwrap();
    let results = tempfile::tempdir().unwrap();
    let out = leakgate()
        .env("PATH", empty.path())
        .arg("run")
        .arg(scenario())
        .args(["--no-progress", "--results-dir"])
        .arg(results.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("needs heaptrack, which is not installed here")
            && stderr.contains("apt-get install heaptrack"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(results.path()).unwrap().count(),
        0,
        "nothing was started"
    );
}
