//! Run folders for the report tests: the stored real runs and the committed summary schema.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

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
