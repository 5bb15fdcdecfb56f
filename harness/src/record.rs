//! Plain records that flow between stages and into `samples.ndjson`, one JSON object a line.
//!
//! The load engine emits a [`Window`] each time a statistics window closes; the sampler emits a
//! [`ProbeSample`] each tick. Both carry the run clock (`t`, seconds since load start) and the
//! cumulative completed request count, so the verdict can put work done on the x-axis.
//! A finished load's totals ([`LoadReport`]) go into `summary.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scenario::plan::PhaseKind;

/// One line of `samples.ndjson`.
// Records are built, written and dropped one at a time; boxing the big variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// A closed load statistics window.
    Window(Window),
    /// One probe tick.
    Probe(ProbeSample),
    /// A free-form event (phase change, target exit, drain check).
    Event(Event),
    /// A rolling verdict over the recent horizon (long runs, `--until-verdict`).
    Evaluation(Evaluation),
}

/// Statistics of one closed window of load (default 1 s).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Window {
    /// Window number, from 0.
    pub index: u64,
    /// Start of the window, seconds since load start.
    pub start: f64,
    /// End of the window, seconds since load start.
    pub end: f64,
    /// Phase the window started in.
    pub phase: Option<PhaseKind>,
    /// Requests the schedule planned in this window.
    pub planned: u64,
    /// Requests actually sent.
    pub sent: u64,
    /// Requests that finished (any outcome).
    pub completed: u64,
    /// Requests dropped because the queue was full (the driver fell behind).
    pub dropped: u64,
    /// Completed requests since load start, at the end of the window.
    pub cumulative_completed: u64,
    /// Response bytes read (bodies).
    pub bytes: u64,
    /// Responses by status class (`"2xx"`) or gRPC code name (`"OK"`, `"UNAVAILABLE"`).
    pub status: BTreeMap<String, u64>,
    /// Errors by kind: `connect`, `timeout`, `reset`, `protocol`, `cancelled`, `other`.
    pub errors: BTreeMap<String, u64>,
    /// Latency from the intended send time (corrected for coordinated omission).
    pub corrected: LatencySummary,
    /// Latency from the actual send time.
    pub uncorrected: LatencySummary,
    /// gRPC: latency to the first response message (corrected); empty for HTTP.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub first_message: LatencySummary,
    /// gRPC: response messages received per call in this window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_per_stream: Option<f64>,
    /// Lossless HdrHistogram V2 (base64) of corrected latency in microseconds.
    pub corrected_hist: String,
    /// Lossless HdrHistogram V2 (base64) of uncorrected latency in microseconds.
    pub uncorrected_hist: String,
    /// Number of original windows merged into this one by compaction (absent: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<u32>,
}

impl Window {
    /// Requests of this window that failed (see [`failed_count`]).
    pub fn failed(&self) -> u64 {
        failed_count(&self.status, &self.errors)
    }
}

/// Requests that failed: errors other than deliberate cancels, plus HTTP 5xx and gRPC codes
/// other than OK (the `other` status class, a 1xx or unknown code, is no failure).
pub fn failed_count(status: &BTreeMap<String, u64>, errors: &BTreeMap<String, u64>) -> u64 {
    let errors: u64 = errors
        .iter()
        .filter(|(k, _)| k.as_str() != "cancelled")
        .map(|(_, v)| v)
        .sum();
    let bad_status: u64 = status
        .iter()
        .filter(|(k, _)| {
            k.as_str() == "5xx"
                || (!k.ends_with("xx") && k.as_str() != "OK" && k.as_str() != "other")
        })
        .map(|(_, v)| v)
        .sum();
    errors + bad_status
}

fn is_empty(l: &LatencySummary) -> bool {
    l.count == 0
}

/// Percentiles of one latency histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct LatencySummary {
    /// Number of recorded values.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// 50th percentile.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
}

/// Totals of a finished load.
// Plain data (summary.json, reports): the load engine builds it, or
// `load::report_from_windows` from a folder's windows. Its doc is the schema's description.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct LoadReport {
    /// Seconds the load ran.
    pub elapsed: f64,
    /// Planned arrivals.
    pub planned: u64,
    /// Sent requests.
    pub sent: u64,
    /// Finished requests.
    pub completed: u64,
    /// Dropped (queue full, or still queued at the end).
    pub dropped: u64,
    /// Body bytes read.
    pub bytes: u64,
    /// Planned rate over the schedule (0 for max-throughput runs).
    pub planned_rate: f64,
    /// Sent requests per second.
    pub achieved_rate: f64,
    /// Completed requests per second.
    pub completed_rate: f64,
    /// The driver missed the planned rate by more than the tolerance.
    pub fell_behind: bool,
    /// Responses by status class or gRPC code.
    pub status: BTreeMap<String, u64>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Failed requests (errors except deliberate cancels, 5xx, non-OK gRPC).
    pub failed: u64,
    /// Whole-run latency from the intended send time.
    pub corrected: LatencySummary,
    /// Whole-run latency from the actual send time.
    pub uncorrected: LatencySummary,
    /// Steady-phase latency from the intended send time (what latency gates judge).
    pub steady_corrected: LatencySummary,
    /// Steady-phase latency from the actual send time.
    pub steady_uncorrected: LatencySummary,
    /// gRPC: latency to the first response message, whole run (corrected).
    #[serde(default)]
    pub first_message: LatencySummary,
    /// gRPC: response messages per call.
    #[serde(default)]
    pub messages_per_stream: Option<f64>,
    /// Whole-run corrected histogram, HdrHistogram V2 base64, µs.
    pub corrected_hist: String,
    /// Whole-run uncorrected histogram, HdrHistogram V2 base64, µs.
    pub uncorrected_hist: String,
    /// Worker threads used.
    pub threads: usize,
}

impl LoadReport {
    /// Share of completed requests that failed.
    pub fn error_rate(&self) -> f64 {
        if self.completed == 0 {
            0.0
        } else {
            self.failed as f64 / self.completed as f64
        }
    }
}

/// One probe tick: every signal the target offered at that moment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct ProbeSample {
    /// Seconds since load start (negative before the load starts: the baseline).
    pub t: f64,
    /// Completed requests since load start at the time of the sample.
    pub cumulative_completed: u64,
    /// Signal name → value. A signal the target does not offer is absent, never zero.
    pub signals: BTreeMap<String, f64>,
    /// Number of original samples merged into this one by compaction (absent: 1); each
    /// signal is then the minimum (the floor) over the merged samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<u32>,
}

/// Something that happened during the run, kept next to the samples.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Event {
    /// Seconds since load start.
    pub t: f64,
    /// What happened (`phase`, `target_exit`, `drain`, `heap_profile`, ...).
    pub kind: String,
    /// Human-readable detail.
    pub detail: String,
}

/// A rolling verdict: the gates judged on the last horizon of the run, appended to
/// `samples.ndjson` every `evaluate_every` and served by the live endpoints.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Evaluation {
    /// Seconds since load start.
    pub t: f64,
    /// Wall-clock time of the evaluation, RFC 3339 UTC.
    pub at: String,
    /// Completed requests since load start (or counted by the target) at the evaluation.
    pub requests: u64,
    /// Start of the judged horizon, seconds since load start.
    pub horizon_start: f64,
    /// The verdict over the horizon.
    pub outcome: EvalOutcome,
    /// The outcome is firm enough to end a run early: a leak, or a pass whose intervals rule
    /// out the limits themselves.
    #[serde(default)]
    pub decisive: bool,
    /// Per gated signal: its latest value, slope and outcome.
    pub signals: BTreeMap<String, SignalStatus>,
    /// Completed requests per second since the previous evaluation (absent without a count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Corrected p95 latency since the previous evaluation, ms (absent without load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    /// Corrected p99 latency since the previous evaluation, ms (absent without load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// One line for people: the outcome and the signals that decided it.
    pub summary: String,
}

/// A rolling verdict's outcome, in the words rollout controllers match on.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq,
)]
#[serde(rename_all = "snake_case")]
pub enum EvalOutcome {
    /// Every gate held over the horizon.
    Pass,
    /// A gate failed: a leak (or a latency limit) over the horizon.
    Leak,
    /// Not enough evidence either way yet.
    #[default]
    Inconclusive,
}

/// One gated signal in a rolling verdict.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct SignalStatus {
    /// The worst outcome of this signal's gates.
    pub outcome: EvalOutcome,
    /// The latest sampled value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<f64>,
    /// Theil–Sen slope per second over the horizon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<f64>,
    /// Lower confidence bound per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_low_per_second: Option<f64>,
    /// Upper confidence bound per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_high_per_second: Option<f64>,
    /// Growth per completed request (absent without a request count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_request: Option<f64>,
    /// Projected seconds until the memory limit at the current slope (absent: no limit known
    /// or not growing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_limit_s: Option<f64>,
}
