//! Reports from stored run folders (`tests/data/runs/{clean,leaky,slow}`, real runs recorded by
//! `tests/data/runs/regen.sh`): byte-identical regeneration, the JUnit XSD and the summary.json
//! JSON Schema, `compare` exit codes, and the HTML rendered in headless Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;

mod runs;
use runs::{stored, summary_validator, tool_missing};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn leakgate(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_leakgate"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// Copies a stored run folder (summary, samples, logs; no reports) to `dest/<run>`.
fn copy_inputs(run: &str, dest: &Path) -> PathBuf {
    let to = dest.join(run);
    std::fs::create_dir_all(&to).unwrap();
    for name in ["summary.json", "samples.ndjson"] {
        std::fs::copy(stored(run).join(name), to.join(name)).unwrap();
    }
    to
}

const REPORTS: [&str; 3] = ["junit.xml", "summary.md", "report.html"];

#[test]
fn report_regenerates_the_stored_reports_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    for run in ["clean", "leaky", "slow"] {
        let dir = copy_inputs(run, tmp.path());
        let (code, text) = leakgate(&["report".as_ref(), dir.as_os_str()]);
        assert_eq!(code, 0, "{text}");
        for name in REPORTS {
            let want = std::fs::read(stored(run).join(name)).unwrap();
            let got = std::fs::read(dir.join(name)).unwrap();
            assert!(
                want == got,
                "{run}/{name} differs from the stored one (after a rendering change: \
                 bash harness/tests/data/runs/regen.sh reports)"
            );
        }
    }
}

#[test]
fn report_on_a_broken_folder_names_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_inputs("clean", tmp.path());
    let samples = dir.join("samples.ndjson");
    let mut text = std::fs::read_to_string(&samples).unwrap();
    text.insert_str(0, "{\"type\": \"window\", \"index\": \"x\"}\n");
    std::fs::write(&samples, text).unwrap();
    let (code, out) = leakgate(&["report".as_ref(), dir.as_os_str()]);
    assert_eq!(code, 65, "{out}");
    assert!(out.contains("samples.ndjson:1:"), "{out}");

    let (code, out) = leakgate(&["report".as_ref(), tmp.path().join("nope").as_os_str()]);
    assert_eq!(code, 65, "{out}");
    assert!(out.contains("summary.json"), "{out}");
}

#[test]
fn summary_schema_is_the_committed_one() {
    let (code, generated) = leakgate(&["schema".as_ref()]);
    assert_eq!(code, 0);
    let committed =
        std::fs::read_to_string(repo().join("harness/schema/summary.schema.json")).unwrap();
    assert!(
        generated == committed,
        "harness/schema/summary.schema.json is stale: \
         cargo run -p leakgate -- schema > harness/schema/summary.schema.json"
    );
}

#[test]
fn stored_summaries_validate_against_the_schema() {
    let v = summary_validator();
    for run in ["clean", "leaky", "slow"] {
        let s: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(stored(run).join("summary.json")).unwrap(),
        )
        .unwrap();
        let errors: Vec<String> = v.iter_errors(&s).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{run}: {errors:?}");
    }
    // The schema really constrains: a wrong version and a missing verdict outcome fail it.
    let mut bad: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(stored("leaky").join("summary.json")).unwrap(),
    )
    .unwrap();
    bad["schema_version"] = serde_json::json!(2);
    assert!(!v.is_valid(&bad));
    let mut bad2: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(stored("leaky").join("summary.json")).unwrap(),
    )
    .unwrap();
    bad2["verdict"]["gates"][0]
        .as_object_mut()
        .unwrap()
        .remove("outcome");
    assert!(!v.is_valid(&bad2));
}

/// `xmllint --schema`; `None` when xmllint is not installed (./ci/test.sh installs it; under CI
/// a missing xmllint fails the test).
fn xmllint(file: &Path) -> Option<(bool, String)> {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(repo().join("harness/schema/junit.xsd"))
        .arg(file)
        .output()
        .ok()?;
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn junit_validates_against_the_xsd() {
    for run in ["clean", "leaky", "slow"] {
        let file = stored(run).join("junit.xml");
        let Some((ok, text)) = xmllint(&file) else {
            tool_missing(
                "junit_validates_against_the_xsd",
                "xmllint",
                "libxml2-utils",
            );
            return;
        };
        assert!(ok, "{run}/junit.xml: {text}");
    }
    // The XSD really constrains: a test case without a name is refused.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("junit.xml");
    let text = std::fs::read_to_string(stored("leaky").join("junit.xml")).unwrap();
    std::fs::write(
        &bad,
        text.replacen("<testcase name=", "<testcase title=", 1),
    )
    .unwrap();
    let (ok, _) = xmllint(&bad).unwrap();
    assert!(!ok, "a nameless test case passed the XSD");
}

#[test]
fn junit_has_one_case_per_gate_with_number_limit_and_unit() {
    let xml = std::fs::read_to_string(stored("leaky").join("junit.xml")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(stored("leaky").join("summary.json")).unwrap(),
    )
    .unwrap();
    for g in summary["verdict"]["gates"].as_array().unwrap() {
        let name = g["name"].as_str().unwrap();
        assert!(
            xml.contains(&format!("<testcase name=\"{name}\"")),
            "{name}"
        );
    }
    assert!(
        xml.contains("rss_bytes per request: ") && xml.contains("is over the limit 256 B/request"),
        "{xml}"
    );
    assert!(xml.contains("<failure message=\"rss_bytes per request"));
}

fn compare(base: &str, new: &str) -> (i32, String) {
    leakgate(&[
        "compare".as_ref(),
        stored(base).as_os_str(),
        stored(new).as_os_str(),
    ])
}

#[test]
fn compare_fails_only_on_a_regression() {
    let (code, text) = compare("clean", "slow");
    assert_eq!(code, 1, "p99 regressed:\n{text}");
    assert!(text.contains("p99 latency rose"), "{text}");

    let (code, text) = compare("clean", "leaky");
    assert_eq!(code, 1, "slopes rose past their limits:\n{text}");
    assert!(text.contains("rss_bytes per request rose"), "{text}");

    for (base, new) in [("clean", "clean"), ("slow", "clean"), ("leaky", "leaky")] {
        let (code, text) = compare(base, new);
        assert_eq!(code, 0, "{base} → {new} is no regression:\n{text}");
    }
    // A tolerance wide enough for the slow run's p99 lets it through.
    let (code, text) = leakgate(&[
        "compare".as_ref(),
        stored("clean").as_os_str(),
        stored("slow").as_os_str(),
        "--p99-tolerance".as_ref(),
        "100000%".as_ref(),
    ]);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn a_known_leak_regresses_only_past_the_slope_tolerance() {
    // The leaky run again, its slopes half as steep again: still the same known leak on main,
    // grown by 50 %.
    let dir = tempfile::tempdir().unwrap();
    let grown = copy_inputs("leaky", dir.path());
    let path = grown.join("summary.json");
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for g in s["verdict"]["gates"].as_array_mut().unwrap() {
        if g["kind"] == "slope" {
            let v = g["observed"].as_f64().unwrap();
            g["observed"] = (v * 1.5).into();
        }
    }
    std::fs::write(&path, serde_json::to_string_pretty(&s).unwrap()).unwrap();
    let run = |extra: &[&str]| {
        let base = stored("leaky");
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["compare".as_ref(), base.as_os_str(), grown.as_os_str()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        leakgate(&args)
    };
    // Default 10 %: a 50 % rise regresses, whatever the p99 tolerance says.
    let (code, text) = run(&["--p99-tolerance", "100000%"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("rss_bytes per request rose"), "{text}");
    let (code, text) = run(&["--slope-tolerance", "60%"]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = run(&["--slope-tolerance=-1%"]);
    assert_eq!(code, 64, "a negative tolerance is a usage error: {text}");
    assert!(text.contains("must be zero or more"), "{text}");
}
