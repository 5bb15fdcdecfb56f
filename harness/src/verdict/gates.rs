//! The gates that need no trend: drain back to baseline and latency/error limits.

use crate::scenario::plan::{LatencyGate, SignalGate, SignalUnit};

use super::{GateKind, GateResult, LatencyObserved, Outcome, VerdictInput, format};

/// Drain check: after the load, the signal must be within `tolerance` of its baseline.
pub fn drain(input: &VerdictInput, gate: &SignalGate, tolerance: f64) -> GateResult {
    let sig = &gate.signal;
    let u = gate.unit;
    let value = |s: &Option<crate::record::ProbeSample>| {
        s.as_ref()
            .map(|s| s.signals.get(sig).copied().filter(|v| v.is_finite()))
    };
    let base = value(&input.baseline);
    let drained = value(&input.drained);
    let mut result = GateResult {
        name: format!("{sig} drain"),
        signal: Some(sig.clone()),
        kind: GateKind::Drain,
        outcome: Outcome::Inconclusive,
        observed: 0.0,
        limit: tolerance,
        unit: match u {
            SignalUnit::Bytes => "bytes".to_string(),
            SignalUnit::Count => "count".to_string(),
        },
        slope: None,
        time_to_limit_s: None,
        explanation: String::new(),
    };
    let missing = match (base, drained) {
        (None, _) => Some("no pre-load baseline sample was taken".to_string()),
        (_, None) => Some("no post-load (drained) sample was taken".to_string()),
        (Some(None), _) => Some(format!("{sig} was absent from the baseline sample")),
        (_, Some(None)) => Some(format!("{sig} was absent from the drained sample")),
        (Some(Some(b)), Some(Some(d))) => {
            let excess = d - b;
            result.observed = excess;
            let head = format!(
                "{sig} was {} after the load drained, {} at the pre-load baseline: {}{} (allowed \
                 {})",
                format::value(d, u),
                format::value(b, u),
                if excess >= 0.0 { "+" } else { "" },
                format::value(excess, u),
                format::value(tolerance, u)
            );
            if excess <= tolerance {
                result.outcome = Outcome::Pass;
                result.explanation = format!("{head} → drained back to baseline");
            } else {
                result.outcome = Outcome::Fail;
                result.explanation = format!("{head} → retained after the load: leak of {sig}");
            }
            None
        }
    };
    if let Some(why) = missing {
        result.explanation = format!("drain check of {sig}: {why} → inconclusive");
    }
    result
}

/// Latency and error limits; a configured limit with no observation is inconclusive.
pub fn latency(observed: Option<&LatencyObserved>, gate: &LatencyGate) -> Vec<GateResult> {
    let mut out = Vec::new();
    let mut push =
        |name: &str, value: Option<f64>, limit: f64, unit: &str, pretty: &dyn Fn(f64) -> String| {
            let (outcome, explanation) = match value {
                None => (
                    Outcome::Inconclusive,
                    format!("{name}: no latency was recorded for the steady phase → inconclusive"),
                ),
                Some(v) if !v.is_finite() => (
                    Outcome::Inconclusive,
                    format!("{name}: the recorded value is not a number → inconclusive"),
                ),
                Some(v) if v <= limit => (
                    Outcome::Pass,
                    format!(
                        "{name} was {}, within the limit {}",
                        pretty(v),
                        pretty(limit)
                    ),
                ),
                Some(v) => (
                    Outcome::Fail,
                    format!(
                        "{name} was {}, over the limit {} → fail",
                        pretty(v),
                        pretty(limit)
                    ),
                ),
            };
            out.push(GateResult {
                name: name.to_string(),
                signal: None,
                kind: GateKind::Latency,
                outcome,
                observed: value.filter(|v| v.is_finite()).unwrap_or(0.0),
                limit,
                unit: unit.to_string(),
                slope: None,
                time_to_limit_s: None,
                explanation,
            });
        };
    let ms = |v: f64| format!("{} ms", format::sig3(v));
    let pct = |v: f64| format!("{} %", format::sig3(v * 100.0));
    if let Some(d) = gate.p95 {
        push(
            "p95",
            observed.map(|o| o.p95_ms),
            d.as_secs_f64() * 1000.0,
            "ms",
            &ms,
        );
    }
    if let Some(d) = gate.p99 {
        push(
            "p99",
            observed.map(|o| o.p99_ms),
            d.as_secs_f64() * 1000.0,
            "ms",
            &ms,
        );
    }
    if let Some(r) = gate.error_rate {
        push(
            "error rate",
            observed.map(|o| o.error_rate),
            r,
            "ratio",
            &pct,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ProbeSample;
    use std::time::Duration;

    fn fd(v: Option<f64>) -> Option<ProbeSample> {
        let mut s = ProbeSample::default();
        if let Some(v) = v {
            s.signals.insert("fd_count".into(), v);
        }
        Some(s)
    }

    fn gate() -> SignalGate {
        SignalGate {
            signal: "fd_count".into(),
            max_per_second: None,
            max_per_request: None,
            drain_to_baseline: Some(2.0),
            unit: SignalUnit::Count,
        }
    }

    #[test]
    fn drain_pass_fail_and_missing() {
        let mut input = VerdictInput {
            baseline: fd(Some(10.0)),
            drained: fd(Some(12.0)),
            ..Default::default()
        };
        assert_eq!(drain(&input, &gate(), 2.0).outcome, Outcome::Pass);
        input.drained = fd(Some(160.0));
        let r = drain(&input, &gate(), 2.0);
        assert_eq!(r.outcome, Outcome::Fail);
        assert_eq!(r.observed, 150.0);
        assert!(r.explanation.contains("retained"), "{}", r.explanation);
        input.drained = fd(None);
        let r = drain(&input, &gate(), 2.0);
        assert_eq!(r.outcome, Outcome::Inconclusive);
        assert!(r.explanation.contains("absent"), "{}", r.explanation);
        input.baseline = None;
        assert_eq!(drain(&input, &gate(), 2.0).outcome, Outcome::Inconclusive);
    }

    #[test]
    fn latency_limits() {
        let g = LatencyGate {
            p95: Some(Duration::from_millis(50)),
            p99: Some(Duration::from_millis(100)),
            error_rate: Some(0.01),
        };
        let o = LatencyObserved {
            p95_ms: 20.0,
            p99_ms: 150.0,
            error_rate: 0.0,
        };
        let r = latency(Some(&o), &g);
        let outcomes: Vec<Outcome> = r.iter().map(|g| g.outcome).collect();
        assert_eq!(outcomes, vec![Outcome::Pass, Outcome::Fail, Outcome::Pass]);
        assert!(r[1].explanation.contains("150 ms"), "{}", r[1].explanation);
        let none = latency(None, &g);
        assert!(none.iter().all(|g| g.outcome == Outcome::Inconclusive));
        assert!(latency(None, &LatencyGate::default()).is_empty());
    }
}
