//! Run folders for the report tests: the stored real runs and the committed summary schema.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub mod scenario;

/// A stored run folder under `tests/data/runs/` (`clean`, `leaky`, `slow`).
pub fn stored(run: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/runs")
        .join(run)
}

/// A validator for the committed `harness/schema/summary.schema.json`.
pub fn summary_validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/summary.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    jsonschema::validator_for(&schema).expect("the committed schema is a valid JSON Schema")
}

/// What a test does when a program it drives is not installed: under CI (`CI` set to any
/// value) it fails, naming the program and that `ci/test.sh` installs it, so a CI job without
/// it cannot pass by skipping; elsewhere it prints SKIPPED and the caller returns.
pub fn tool_missing(test: &str, tool: &str, package: &str) {
    let why = format!(
        "{test}: {tool} is not installed (ci/test.sh installs it: apt-get install {package})"
    );
    if std::env::var_os("CI").is_some() {
        panic!("{why}; CI is set, so a missing {tool} fails this test instead of skipping it");
    }
    eprintln!("SKIPPED {why}");
}

/// The leak class a shipped leaky scenario's diagnosis must name first, from its name.
pub fn expected_class(scenario: &str) -> Option<&'static str> {
    [
        ("unbounded-cache", "unbounded_cache"),
        ("quickstart", "unbounded_cache"),
        ("slow-leak", "unbounded_cache"),
        ("unclosed-bodies", "unclosed_bodies"),
        ("leaked-", "leaked_tasks"),
        ("native", "native_or_fragmentation"),
    ]
    .iter()
    .find(|(k, _)| scenario.contains(k))
    .map(|(_, c)| *c)
}

/// A failed run's diagnosis names the scenario's leak class first, every claim carries a
/// number, and the terminal output shows it (`Likely: ...`).
pub fn check_diagnosis(scenario: &str, summary: &serde_json::Value, text: &str) {
    let Some(class) = expected_class(scenario) else {
        return;
    };
    let findings = summary["diagnosis"]["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("{scenario}: no diagnosis in summary.json:\n{text}"));
    assert_eq!(
        findings[0]["class"], class,
        "{scenario}: {findings:#?}\n{text}"
    );
    for f in findings {
        for e in f["evidence"].as_array().unwrap() {
            let e = e.as_str().unwrap();
            assert!(
                e.bytes().any(|b| b.is_ascii_digit()),
                "{scenario}: no number in {e:?}"
            );
        }
    }
    let title = findings[0]["title"].as_str().unwrap();
    assert!(
        text.contains(&format!("Likely: {title}")),
        "{scenario}:\n{text}"
    );
}
