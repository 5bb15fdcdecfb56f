//! `summary.json`: the versioned result of one run, written once at the end.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::exit::ExitCode;
use crate::record::LoadReport;
use crate::scenario::plan::Plan;
use crate::verdict::Verdict;

/// Version of the `summary.json` schema; bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// How the target ended, when it ended before leakgate stopped it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct TargetExit {
    /// Seconds since load start (negative: before the load started).
    pub t: f64,
    /// Why it ended, in words (`exited with status 1`, `killed by SIGKILL (OOM kill)`).
    pub cause: String,
    /// Exit status, when it exited normally.
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
    /// The kernel's OOM killer ended it.
    pub oom_killed: bool,
}

/// Everything `summary.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    /// [`SCHEMA_VERSION`]: readers refuse a version they do not know.
    #[schemars(extend("const" = 1))]
    pub schema_version: u32,
    /// leakgate's version.
    pub leakgate_version: String,
    /// UTC start time, RFC 3339.
    pub started_at: String,
    /// The resolved plan.
    pub plan: Plan,
    /// Process id of the watched target, if any.
    pub target_pid: Option<u32>,
    /// Set when the target died during the run.
    pub target_exit: Option<TargetExit>,
    /// Load totals and latency (the engine's report).
    pub load: Option<LoadReport>,
    /// Gate results and the overall outcome.
    pub verdict: Option<Verdict>,
    /// The process exit code of the run.
    pub exit_code: i32,
    /// What the exit code means.
    pub exit_reason: String,
    /// Last probe samples before the end (kept here so a crash report is self-contained).
    pub last_samples: Vec<crate::record::ProbeSample>,
    /// False while the run goes on; a folder left with `false` was cut off (leakgate was
    /// killed) and `leakgate report` judges the samples it holds.
    #[serde(default = "finished_default")]
    pub finished: bool,
    /// True when `leakgate report` judged a cut-off run after the fact.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
    /// Why the run ended before its plan did (a signal, a decided verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
    /// The error that ended the run or its load, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Probes that failed during the run (a metrics URL that stopped answering), once each:
    /// their signals are absent from the samples after that.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probe_problems: Vec<String>,
    /// For a run merged from shards (`leakgate merge`): where its parts came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<Merged>,
    /// When the load started (t = 0 of every record), ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_started_unix_ms: Option<u64>,
    /// For a failed verdict: the likely leak class, from which signals grew together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<crate::diagnose::Diagnosis>,
}

fn finished_default() -> bool {
    true
}

/// The shards a merged run was made of.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Merged {
    /// Shards in all.
    pub shards: u32,
    /// The shard folders, as given to `leakgate merge`.
    pub folders: Vec<String>,
    /// The shards whose driver fell behind its share of the plan.
    pub fell_behind: Vec<u32>,
}

/// A run that ended before its plan did.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Stopped {
    /// Seconds since load start.
    pub t: f64,
    /// Why, in words (`stopped by SIGTERM`, `the verdict was decided (leak) ...`).
    pub reason: String,
    /// True when `--until-verdict` ended it: the time to verdict is `t`.
    pub verdict_decided: bool,
}

impl Summary {
    /// A summary of `plan` with no load, verdict or samples yet.
    pub fn new(plan: &Plan, started_at: &str, pid: Option<u32>, exit: ExitCode) -> Self {
        Summary {
            schema_version: SCHEMA_VERSION,
            leakgate_version: env!("CARGO_PKG_VERSION").into(),
            started_at: started_at.into(),
            plan: plan.clone(),
            target_pid: pid,
            target_exit: None,
            load: None,
            verdict: None,
            exit_code: exit.code(),
            exit_reason: exit_reason(exit).into(),
            last_samples: Vec::new(),
            finished: true,
            recovered: false,
            stopped: None,
            error: None,
            probe_problems: Vec::new(),
            diagnosis: None,
            load_started_unix_ms: None,
            merged: None,
        }
    }

    /// Writes the summary atomically: a temporary file renamed into place, so a reader never
    /// sees a half-written `summary.json`.
    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        let tmp = run_dir.join(".summary.json.tmp");
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(tmp, run_dir.join("summary.json"))
    }
}

/// Words for an exit code, as printed and stored.
pub fn exit_reason(code: ExitCode) -> &'static str {
    match code {
        ExitCode::Pass => "pass",
        ExitCode::GateFailed => "a gate failed",
        ExitCode::Inconclusive => "inconclusive: not enough evidence either way",
        ExitCode::TargetDied => "the target died or never became ready",
        ExitCode::FellBehind => "the driver could not hold the planned rate",
        ExitCode::Usage => "usage error",
        ExitCode::BadScenario => "bad scenario file",
        ExitCode::Internal => "internal error: a bug in leakgate; the results are incomplete",
        ExitCode::Io => "the results could not be written",
    }
}

/// The JSON Schema of `summary.json`, as committed in `harness/schema/summary.schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Summary);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_pins_the_current_version() {
        let schema: serde_json::Value = serde_json::from_str(&schema_json()).unwrap();
        assert_eq!(
            schema["properties"]["schema_version"]["const"],
            serde_json::json!(SCHEMA_VERSION)
        );
    }
}
