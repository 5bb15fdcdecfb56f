//! The verdict: per-signal slope with confidence, plateau test, drain check, time to the memory
//! limit and latency limits, each as a [`GateResult`] that explains itself.
//!
//! Method (README, "How the verdict tells a leak from a cache"): work done on the x-axis; warm-up dropped
//! (steady-phase spans, a share of the work, an early level shift); the rest cut into equal-work
//! windows whose floors remove the GC sawtooth; Mann–Kendall (Hamed–Rao corrected) and
//! Theil–Sen with Sen's interval on the floors; fail only when trend, slope bound, rising floors
//! and a still-growing second half all agree. Too little evidence is `Inconclusive`, not a pass.

pub mod changepoint;
pub mod format;
pub mod gates;
pub mod input;
pub mod mann_kendall;
pub mod normal;
pub mod series;
pub mod slope;
pub mod theil_sen;

use serde::{Deserialize, Serialize};

use crate::record::ProbeSample;
use crate::scenario::plan::GatePlan;

/// Everything the verdict looks at: plain data, so `leakgate analyze` can build it from files.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct VerdictInput {
    /// Probe samples of the run, any order.
    pub samples: Vec<ProbeSample>,
    /// Steady-phase time spans, seconds since load start; empty means the whole run (t ≥ 0).
    pub steady: Vec<(f64, f64)>,
    /// Sample taken before the load started.
    pub baseline: Option<ProbeSample>,
    /// Sample taken after the load stopped and the target drained.
    pub drained: Option<ProbeSample>,
    /// Latency and errors over the steady phase.
    pub latency: Option<LatencyObserved>,
    /// Memory limit of the target in bytes, when known.
    pub memory_limit: Option<u64>,
}

/// Observed latency (corrected for coordinated omission) and error share.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct LatencyObserved {
    /// 95th percentile, milliseconds.
    pub p95_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Failed requests over completed requests, 0..1.
    pub error_rate: f64,
}

/// Result of one gate or of the whole run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Within limits.
    Pass,
    /// A limit was broken.
    Fail,
    /// Not enough evidence either way; not a pass.
    Inconclusive,
}

/// What a gate checks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    /// Growth of a signal through the steady phase.
    Slope,
    /// Return to the pre-load baseline after the load.
    Drain,
    /// Latency percentile or error share.
    Latency,
    /// Projected time until the memory limit is reached.
    TimeToLimit,
}

/// The run's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Verdict {
    /// Any Fail → Fail, else any Inconclusive → Inconclusive, else Pass.
    pub outcome: Outcome,
    /// One entry per gate checked.
    pub gates: Vec<GateResult>,
    /// One paragraph for people: what decided the outcome.
    pub summary: String,
}

/// One gate's result.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct GateResult {
    /// Short name, e.g. `rss_bytes per request`, `p99`.
    pub name: String,
    /// Signal judged, for signal gates.
    pub signal: Option<String>,
    /// What was checked.
    pub kind: GateKind,
    /// Result.
    pub outcome: Outcome,
    /// Observed value in `unit` (NaN-free: 0 when nothing was observed, see `explanation`).
    pub observed: f64,
    /// Limit in `unit`.
    pub limit: f64,
    /// Unit of `observed` and `limit`, e.g. `bytes/request`, `bytes/s`, `ms`, `s`.
    pub unit: String,
    /// Slope details, for slope gates that got far enough to estimate one.
    pub slope: Option<SlopeEstimate>,
    /// Projected seconds to the memory limit, when known.
    pub time_to_limit_s: Option<f64>,
    /// Why: which signal, how steep, per request, and what decided.
    pub explanation: String,
}

/// A signal's slope with its evidence.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct SlopeEstimate {
    /// Theil–Sen slope per second.
    pub per_second: f64,
    /// Per minute (per second × 60).
    pub per_minute: f64,
    /// Per completed request; `None` when the input had no request counts.
    pub per_request: Option<f64>,
    /// Lower confidence bound per second.
    pub ci_low_per_second: f64,
    /// Upper confidence bound per second.
    pub ci_high_per_second: f64,
    /// Lower confidence bound per request.
    pub ci_low_per_request: Option<f64>,
    /// Upper confidence bound per request.
    pub ci_high_per_request: Option<f64>,
    /// Mann–Kendall z on the window floors (Hamed–Rao corrected).
    pub mk_z: f64,
    /// One-sided Mann–Kendall p-value for an upward trend.
    pub mk_p: f64,
    /// Windows whose floor rose above the previous window's floor (at most windows − 1).
    pub windows_rising: usize,
    /// Windows judged (after warm-up removal).
    pub windows_total: usize,
    /// Second-half slope over first-half slope of the floors (clamped to ±10).
    pub second_half_ratio: f64,
    /// Growth that flattened: judged a filled cache, not a leak.
    pub plateau: bool,
}

/// Judges a run: every signal gate, drain check, time to limit and latency limit in `gates`.
pub fn judge(input: &VerdictInput, gates: &GatePlan) -> Verdict {
    let mut results = Vec::new();
    for gate in &gates.signals {
        results.extend(slope::judge_signal(input, gate, gates));
        if let Some(tolerance) = gate.drain_to_baseline {
            results.push(gates::drain(input, gate, tolerance));
        }
    }
    results.extend(gates::latency(input.latency.as_ref(), &gates.latency));
    let outcome = aggregate(results.iter().map(|g| g.outcome));
    let summary = summarize(outcome, &results);
    Verdict {
        outcome,
        gates: results,
        summary,
    }
}

impl Verdict {
    /// The signals (or, for latency gates, the gate names) whose gates ended with `o`, sorted,
    /// each once: `cache_entries, rss_bytes`.
    pub fn names_with(&self, o: Outcome) -> String {
        let mut n: Vec<&str> = self
            .gates
            .iter()
            .filter(|g| g.outcome == o)
            .map(|g| g.signal.as_deref().unwrap_or(&g.name))
            .collect();
        n.sort_unstable();
        n.dedup();
        n.join(", ")
    }
}

/// Whether a verdict may end a run early (`--until-verdict`): a fail always; a pass only when
/// every slope's interval also rules out the limit itself (the final verdict's pass asks
/// twice the limit). An early look at a short series must not call a leak clean.
pub fn decisive(v: &Verdict) -> bool {
    match v.outcome {
        Outcome::Fail => true,
        Outcome::Inconclusive => false,
        Outcome::Pass => v.gates.iter().all(|g| {
            g.kind != GateKind::Slope
                || g.slope.is_some_and(|s| {
                    let high = if g.unit.ends_with("/request") {
                        s.ci_high_per_request.unwrap_or(f64::INFINITY)
                    } else {
                        s.ci_high_per_second
                    };
                    // A plateau is no early pass: the next look may show it climbing again.
                    high <= g.limit && !s.plateau
                })
        }),
    }
}

/// Any Fail → Fail, else any Inconclusive → Inconclusive, else Pass (also for no gates).
pub fn aggregate(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
    let mut out = Outcome::Pass;
    for o in outcomes {
        match o {
            Outcome::Fail => return Outcome::Fail,
            Outcome::Inconclusive => out = Outcome::Inconclusive,
            Outcome::Pass => {}
        }
    }
    out
}

fn summarize(outcome: Outcome, results: &[GateResult]) -> String {
    if results.is_empty() {
        return "pass: no gates were configured, nothing was judged".to_string();
    }
    let pick = |o: Outcome| {
        results
            .iter()
            .filter(|g| g.outcome == o)
            .map(|g| g.explanation.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    match outcome {
        Outcome::Fail => format!("FAIL: {}", pick(Outcome::Fail)),
        Outcome::Inconclusive => {
            format!("INCONCLUSIVE (not a pass): {}", pick(Outcome::Inconclusive))
        }
        Outcome::Pass => format!(
            "pass: all {} gates held: {}",
            results.len(),
            pick(Outcome::Pass)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregation_order() {
        use Outcome::*;
        assert_eq!(aggregate([Pass, Inconclusive, Fail]), Fail);
        assert_eq!(aggregate([Pass, Inconclusive]), Inconclusive);
        assert_eq!(aggregate([Pass, Pass]), Pass);
        assert_eq!(aggregate([]), Pass);
    }
}
