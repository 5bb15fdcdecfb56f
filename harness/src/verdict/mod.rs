//! verdict: a leak, not a cache. Per-signal slopes on equal-work window floors, a trend test, a
//! plateau test, a drain check, latency limits; each gate explains itself.

pub mod format;
pub mod input;
pub mod slope;
pub mod stats;

use serde::{Deserialize, Serialize};

use crate::record::ProbeSample;
use crate::scenario::plan::{GatePlan, SignalGate, SignalUnit};
use format::{amount, per_request, per_second};
pub use slope::SlopeEstimate;

/// Pass, fail or not enough evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Within limits.
    Pass,
    /// A limit was broken.
    Fail,
    /// Not enough evidence either way (never a silent pass).
    Inconclusive,
}

/// What kind of gate a result is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    /// A signal's growth per second or per request.
    Slope,
    /// A signal's return to its baseline after the load.
    Drain,
    /// Corrected latency percentile or error rate.
    Latency,
    /// Projected time until the memory limit.
    TimeToLimit,
}

/// One gate's result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GateResult {
    /// Gate name, e.g. `rss_bytes slope per request`.
    pub name: String,
    /// The signal, for signal gates.
    pub signal: Option<String>,
    /// Kind.
    pub kind: GateKind,
    /// Outcome.
    pub outcome: Outcome,
    /// The value judged (slope, latency, rate...).
    pub observed: f64,
    /// The limit.
    pub limit: f64,
    /// Unit of `observed` and `limit`.
    pub unit: String,
    /// The slope evidence, for slope gates.
    pub slope: Option<SlopeEstimate>,
    /// Projected seconds until the memory limit.
    pub time_to_limit_s: Option<f64>,
    /// In words, for people.
    pub explanation: String,
}

/// The whole verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// Fail if any gate failed, else inconclusive if any was, else pass.
    pub outcome: Outcome,
    /// Every gate.
    pub gates: Vec<GateResult>,
    /// One line for people.
    pub summary: String,
}

/// Observed latency and errors over the steady phase.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct LatencyObserved {
    /// Corrected p95, ms.
    pub p95_ms: f64,
    /// Corrected p99, ms.
    pub p99_ms: f64,
    /// Failed share of completed requests.
    pub error_rate: f64,
}

/// Everything the verdict looks at.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerdictInput {
    /// Probe samples in time order.
    pub samples: Vec<ProbeSample>,
    /// Steady-phase spans, seconds since load start (empty: all samples).
    pub steady: Vec<(f64, f64)>,
    /// A sample taken before the load.
    pub baseline: Option<ProbeSample>,
    /// A sample taken after the load and the drain wait.
    pub drained: Option<ProbeSample>,
    /// Latency over the steady phase.
    pub latency: Option<LatencyObserved>,
    /// The target's memory limit, bytes.
    pub memory_limit: Option<u64>,
}

/// Judges every gate of `gates` on `input`.
pub fn judge(input: &VerdictInput, gates: &GatePlan) -> Verdict {
    let mut results = Vec::new();
    for g in &gates.signals {
        results.extend(judge_signal(input, gates, g));
    }
    results.extend(judge_latency(input, gates));
    let outcome = if results.iter().any(|r| r.outcome == Outcome::Fail) {
        Outcome::Fail
    } else if results.iter().any(|r| r.outcome == Outcome::Inconclusive) {
        Outcome::Inconclusive
    } else {
        Outcome::Pass
    };
    let summary = summarize(outcome, &results);
    Verdict {
        outcome,
        gates: results,
        summary,
    }
}

fn summarize(outcome: Outcome, results: &[GateResult]) -> String {
    let names = |o: Outcome| {
        results
            .iter()
            .filter(|r| r.outcome == o)
            .map(|r| r.signal.clone().unwrap_or_else(|| r.name.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    };
    match outcome {
        Outcome::Fail => format!("FAIL: {}", names(Outcome::Fail)),
        Outcome::Inconclusive => format!("INCONCLUSIVE: {}", names(Outcome::Inconclusive)),
        Outcome::Pass if results.is_empty() => "PASS (no gates)".into(),
        Outcome::Pass => format!("PASS: {} gate(s) within limits", results.len()),
    }
}

/// Share of window-to-window floor rises that counts as "rising in nearly every window".
const RISING_SHARE: f64 = 0.6;
/// A second half growing slower than this share of the first half's rate has levelled off.
const PLATEAU_RATIO: f64 = 0.25;
/// One-sided significance of the trend test.
const ALPHA: f64 = 0.05;

fn judge_signal(input: &VerdictInput, gates: &GatePlan, g: &SignalGate) -> Vec<GateResult> {
    let mut out = Vec::new();
    let unit = g.unit;
    let base = |name: String, kind, outcome, observed, limit, unit_s: &str, explanation: String| {
        GateResult {
            name,
            signal: Some(g.signal.clone()),
            kind,
            outcome,
            observed,
            limit,
            unit: unit_s.to_string(),
            slope: None,
            time_to_limit_s: None,
            explanation,
        }
    };
    let limits: Vec<(bool, f64)> = g
        .max_per_request
        .map(|l| (true, l))
        .into_iter()
        .chain(g.max_per_second.map(|l| (false, l)))
        .collect();
    if !limits.is_empty() {
        let est = slope::estimate(
            &input.samples,
            &g.signal,
            &input.steady,
            gates.warmup_share,
            gates.windows,
            gates.confidence,
        );
        for (per_req, limit) in limits {
            let (name, unit_s) = if per_req {
                (
                    format!("{} slope per request", g.signal),
                    unit_name(unit, "/request"),
                )
            } else {
                (
                    format!("{} slope per second", g.signal),
                    unit_name(unit, "/s"),
                )
            };
            let mut r = match &est {
                Err(slope::NoSlope::Absent) => base(
                    name,
                    GateKind::Slope,
                    Outcome::Inconclusive,
                    f64::NAN,
                    limit,
                    &unit_s,
                    format!(
                        "{} was absent: the target never offered it (absent is not zero); check the probe settings",
                        g.signal
                    ),
                ),
                Err(slope::NoSlope::TooFew(n)) => base(
                    name,
                    GateKind::Slope,
                    Outcome::Inconclusive,
                    f64::NAN,
                    limit,
                    &unit_s,
                    format!(
                        "{}: only {n} samples in the steady phase after warm-up; need at least 8 (run longer or sample more often)",
                        g.signal
                    ),
                ),
                Ok(e) => slope_gate(&g.signal, unit, e, per_req, limit, gates.confidence)
                    .map(|(outcome, observed, explanation)| {
                        let mut r = base(
                            name.clone(),
                            GateKind::Slope,
                            outcome,
                            observed,
                            limit,
                            &unit_s,
                            explanation,
                        );
                        r.slope = Some(e.clone());
                        r
                    })
                    .unwrap_or_else(|| {
                        base(
                            name.clone(),
                            GateKind::Slope,
                            Outcome::Inconclusive,
                            f64::NAN,
                            limit,
                            &unit_s,
                            format!(
                                "{}: no request counts to judge a per-request slope on",
                                g.signal
                            ),
                        )
                    }),
            };
            if r.outcome != Outcome::Inconclusive && !per_req {
                r.time_to_limit_s = None;
            }
            out.push(r);
        }
        if let (Ok(e), Some(lim), true) = (&est, input.memory_limit, unit == SignalUnit::Bytes) {
            out.extend(time_to_limit(&g.signal, e, lim as f64, gates));
        }
    }
    if let Some(tol) = g.drain_to_baseline {
        out.push(drain_gate(input, g, tol));
    }
    out
}

fn unit_name(u: SignalUnit, per: &str) -> String {
    match u {
        SignalUnit::Bytes => format!("bytes{per}"),
        SignalUnit::Count => format!("count{per}"),
    }
}

/// Decides one slope limit. Returns (outcome, observed slope, explanation), or None when a
/// per-request limit meets samples without request counts.
fn slope_gate(
    signal: &str,
    unit: SignalUnit,
    e: &SlopeEstimate,
    per_req: bool,
    limit: f64,
    confidence: f64,
) -> Option<(Outcome, f64, String)> {
    let (m, (lo, hi), second_ci) = if per_req {
        (
            e.per_request?,
            e.ci_per_request?,
            e.ci_second_half_per_request?,
        )
    } else {
        (e.per_second, e.ci_per_second, e.ci_second_half_per_second)
    };
    let fmt = |v: f64| {
        if per_req {
            per_request(v, unit)
        } else {
            per_second(v, unit)
        }
    };
    let pct = (confidence * 100.0).round();
    let rising = format!(
        "floors rose in {} of {} windows",
        e.windows_rising, e.windows_total
    );
    let both = match (e.per_request, per_req) {
        (Some(r), false) => format!(" ({})", per_request(r, unit)),
        (_, true) => format!(" ({})", per_second(e.per_second, unit)),
        _ => String::new(),
    };
    let head = format!(
        "{signal} grew {}{both}, {pct} % CI {} to {}; {rising}",
        fmt(m),
        fmt(lo),
        fmt(hi)
    );
    let limit_s = fmt(limit);
    let rising_share = e.windows_rising as f64 / e.windows_total.max(1) as f64;
    let trend = e.mk_p < ALPHA;
    // Levelled off: the second half's slope is within the limit, or far slower than the first.
    let second_flat = second_ci.1 <= limit;
    let levelled = second_flat || e.second_half_ratio < PLATEAU_RATIO;
    Some(
        if lo > limit && trend && rising_share >= RISING_SHARE && !levelled {
            (
                Outcome::Fail,
                m,
                format!(
                    "{head}; still growing in the second half ({:.0} % of the first half's rate) → leak: the slope's lower bound is above the limit {limit_s}",
                    e.second_half_ratio * 100.0
                ),
            )
        } else if hi <= limit {
            (
                Outcome::Pass,
                m,
                format!("{head} → within the limit {limit_s}"),
            )
        } else if second_flat {
            (
                Outcome::Pass,
                m,
                format!(
                    "{signal} grew from {} to {} then levelled off: the second half grew at {:.0} % of the first half's rate (its slope at most {}, limit {limit_s}) → plateau (a bounded cache or pool filled up), not a leak",
                    amount(e.first_last.0, unit),
                    amount(e.first_last.1, unit),
                    e.second_half_ratio.max(0.0) * 100.0,
                    fmt(second_ci.1)
                ),
            )
        } else if lo > limit {
            (
                Outcome::Inconclusive,
                m,
                format!(
                    "{head}; above the limit {limit_s}, but the trend is not consistent enough (trend p = {:.3}, second half at {:.0} % of the first half's rate) to call it a leak: run longer",
                    e.mk_p,
                    e.second_half_ratio * 100.0
                ),
            )
        } else {
            (
                Outcome::Inconclusive,
                m,
                format!(
                    "{head}; the interval straddles the limit {limit_s}: not enough evidence either way (run longer or sample more often)"
                ),
            )
        },
    )
}

fn time_to_limit(
    signal: &str,
    e: &SlopeEstimate,
    limit: f64,
    gates: &GatePlan,
) -> Option<GateResult> {
    let horizon = gates.min_time_to_limit?.as_secs_f64();
    let slope = e.ci_per_second.0.max(0.0);
    let left = (limit - e.first_last.1).max(0.0);
    let ttl = if slope > 0.0 {
        left / slope
    } else {
        f64::INFINITY
    };
    let outcome = if ttl < horizon {
        Outcome::Fail
    } else {
        Outcome::Pass
    };
    Some(GateResult {
        name: format!("{signal} time to memory limit"),
        signal: Some(signal.into()),
        kind: GateKind::TimeToLimit,
        outcome,
        observed: ttl,
        limit: horizon,
        unit: "s".into(),
        slope: None,
        time_to_limit_s: Some(ttl),
        explanation: format!(
            "{signal} at {} of a {} limit, growing at least {}: the limit is {} away (must be ≥ {})",
            amount(e.first_last.1, SignalUnit::Bytes),
            amount(limit, SignalUnit::Bytes),
            per_second(slope, SignalUnit::Bytes),
            format::duration(ttl),
            format::duration(horizon)
        ),
    })
}

fn drain_gate(input: &VerdictInput, g: &SignalGate, tol: f64) -> GateResult {
    let v = |s: &Option<ProbeSample>| s.as_ref().and_then(|s| s.signals.get(&g.signal)).copied();
    let (outcome, observed, explanation) = match (v(&input.baseline), v(&input.drained)) {
        (Some(b), Some(d)) => {
            let excess = d - b;
            if excess <= tol {
                (
                    Outcome::Pass,
                    excess,
                    format!(
                        "{} came back to {} after the load (baseline {}, allowed +{})",
                        g.signal,
                        amount(d, g.unit),
                        amount(b, g.unit),
                        amount(tol, g.unit)
                    ),
                )
            } else {
                (
                    Outcome::Fail,
                    excess,
                    format!(
                        "{} did not come back: {} after the load and the drain wait, baseline {} (+{}, allowed +{}) → retained",
                        g.signal,
                        amount(d, g.unit),
                        amount(b, g.unit),
                        amount(excess, g.unit),
                        amount(tol, g.unit)
                    ),
                )
            }
        }
        _ => (
            Outcome::Inconclusive,
            f64::NAN,
            format!(
                "{}: no baseline or no sample after the load, so the drain check could not run",
                g.signal
            ),
        ),
    };
    GateResult {
        name: format!("{} drain to baseline", g.signal),
        signal: Some(g.signal.clone()),
        kind: GateKind::Drain,
        outcome,
        observed,
        limit: tol,
        unit: unit_name(g.unit, ""),
        slope: None,
        time_to_limit_s: None,
        explanation,
    }
}

fn judge_latency(input: &VerdictInput, gates: &GatePlan) -> Vec<GateResult> {
    let l = &gates.latency;
    let mut out = Vec::new();
    let obs = input.latency;
    let mut push =
        |name: &str, observed: Option<f64>, limit: f64, unit: &str, fmt: &dyn Fn(f64) -> String| {
            let (outcome, explanation) = match observed {
                Some(v) if v <= limit => (
                    Outcome::Pass,
                    format!("{name} {} within the limit {}", fmt(v), fmt(limit)),
                ),
                Some(v) => (
                    Outcome::Fail,
                    format!("{name} {} is over the limit {}", fmt(v), fmt(limit)),
                ),
                None => (
                    Outcome::Inconclusive,
                    format!("{name}: no latency was measured"),
                ),
            };
            out.push(GateResult {
                name: name.into(),
                signal: None,
                kind: GateKind::Latency,
                outcome,
                observed: observed.unwrap_or(f64::NAN),
                limit,
                unit: unit.into(),
                slope: None,
                time_to_limit_s: None,
                explanation,
            });
        };
    let ms = |v: f64| format!("{v:.1} ms");
    let pct = |v: f64| format!("{:.2} %", v * 100.0);
    if let Some(p) = l.p95 {
        push(
            "p95 latency",
            obs.map(|o| o.p95_ms),
            p.as_secs_f64() * 1000.0,
            "ms",
            &ms,
        );
    }
    if let Some(p) = l.p99 {
        push(
            "p99 latency",
            obs.map(|o| o.p99_ms),
            p.as_secs_f64() * 1000.0,
            "ms",
            &ms,
        );
    }
    if let Some(e) = l.error_rate {
        push("error rate", obs.map(|o| o.error_rate), e, "ratio", &pct);
    }
    out
}
