//! How each sampled signal moved through the steady phase, judged with the verdict's own
//! evidence (window floors, Mann–Kendall, Theil–Sen, a still-growing second half) against a
//! limit of zero: "it grew" means what a leak verdict means, without a limit of its own.

use crate::scenario::plan::{GatePlan, SignalGate, SignalUnit};
use crate::verdict::{self, GateKind, Outcome, Verdict, VerdictInput};

use super::families::{self, Family};

/// One signal's movement.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    /// The signal.
    pub signal: String,
    /// What it measures.
    pub family: Family,
    /// How it is printed.
    pub unit: SignalUnit,
    /// A gate on it failed (its limit was broken).
    pub gate_failed: bool,
    /// It grew through the steady phase (the leak evidence against a zero limit).
    pub grew: bool,
    /// Theil–Sen slope per completed request, when the run counted requests.
    pub per_request: Option<f64>,
    /// Theil–Sen slope per second.
    pub per_second: f64,
}

impl Growth {
    /// `fd_count +2.00/request`, `go_heap_inuse_bytes +1.02 KiB/request` (or per second).
    pub fn cite(&self) -> String {
        let (v, per) = match self.per_request {
            Some(r) => (r, "request"),
            None => (self.per_second, "s"),
        };
        let sign = if v < 0.0 { "−" } else { "+" };
        let v = v.abs();
        let amount = match self.unit {
            SignalUnit::Bytes => format!("{}/{per}", verdict::format::bytes(v)),
            SignalUnit::Count if per == "request" && v < 0.01 => {
                format!("{} per 10k requests", verdict::format::sig3(v * 1e4))
            }
            SignalUnit::Count => format!("{}/{per}", verdict::format::sig3(v)),
        };
        format!("{} {sign}{amount}", self.signal)
    }
}

/// Every signal of the steady phase whose family the rules use, with how it moved.
pub fn measure(input: &VerdictInput, verdict: &Verdict, gates: &GatePlan) -> Vec<Growth> {
    let mut names: Vec<&String> = input
        .samples
        .iter()
        .filter(|s| verdict::series::in_steady(&input.steady, s.t))
        .flat_map(|s| s.signals.keys())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter(|n| !matches!(families::family(n), Family::Other | Family::GcCount))
        .filter_map(|n| one(input, verdict, gates, n))
        .collect()
}

fn one(input: &VerdictInput, verdict: &Verdict, gates: &GatePlan, signal: &str) -> Option<Growth> {
    let unit = families::unit(signal);
    let zero = SignalGate {
        signal: signal.to_string(),
        max_per_second: Some(0.0),
        max_per_request: Some(0.0),
        drain_to_baseline: None,
        unit,
    };
    let results = verdict::slope::judge_signal(input, &zero, gates);
    let slopes: Vec<_> = results
        .iter()
        .filter(|g| g.kind == GateKind::Slope)
        .collect();
    let estimate = slopes.iter().find_map(|g| g.slope)?;
    let gate_failed = verdict.gates.iter().any(|g| {
        g.kind == GateKind::Slope
            && g.outcome == Outcome::Fail
            && g.signal.as_deref() == Some(signal)
    });
    Some(Growth {
        signal: signal.to_string(),
        family: families::family(signal),
        unit,
        gate_failed,
        grew: gate_failed || slopes.iter().any(|g| g.outcome == Outcome::Fail),
        per_request: estimate.per_request,
        per_second: estimate.per_second,
    })
}
