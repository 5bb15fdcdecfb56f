//! How a run's facts become one exit code, and the steady spans the verdict judges.

use crate::exit::ExitCode;
use crate::scenario::plan::{LoadPlan, PhaseKind};
use crate::verdict::{GateKind, Outcome, Verdict};

/// The facts that decide the exit code, in order of precedence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// The target died during the run or never became ready.
    pub target_died: bool,
    /// At least one gate failed (leak or latency).
    pub gate_failed: bool,
    /// The driver missed the planned rate by more than the tolerance, or dropped requests.
    pub fell_behind: bool,
    /// At least one gate could not decide.
    pub inconclusive: bool,
}

impl Facts {
    /// The facts of a run: whether its target died, its verdict (none when not judged), and
    /// whether its driver fell behind.
    pub fn of(target_died: bool, verdict: Option<&Verdict>, fell_behind: bool) -> Self {
        Facts {
            target_died,
            gate_failed: verdict.is_some_and(|v| gate_failed(v, fell_behind)),
            fell_behind,
            inconclusive: verdict.is_none_or(|v| v.outcome == Outcome::Inconclusive),
        }
    }
}

/// Whether the verdict's failures count for the exit code. Slopes per request stay valid when
/// the driver fell behind; latency does not: corrected latency then holds the driver's own
/// stall, so a latency gate failed by a starved driver is the driver's fault (exit 4), not the
/// target's.
pub fn gate_failed(v: &Verdict, fell_behind: bool) -> bool {
    v.gates
        .iter()
        .any(|g| g.outcome == Outcome::Fail && (g.kind != GateKind::Latency || !fell_behind))
}

/// The exit code for a run.
///
/// A dead target trumps everything (there is nothing left to judge); a failed gate comes next
/// because slopes per request stay valid even when the driver fell behind; a driver that fell
/// behind is never a pass; then inconclusive, then pass.
pub fn exit_code(f: Facts) -> ExitCode {
    if f.target_died {
        ExitCode::TargetDied
    } else if f.gate_failed {
        ExitCode::GateFailed
    } else if f.fell_behind {
        ExitCode::FellBehind
    } else if f.inconclusive {
        ExitCode::Inconclusive
    } else {
        ExitCode::Pass
    }
}

/// Time spans (seconds since load start) of the steady phases, merged where adjacent.
pub fn steady_spans(load: &LoadPlan) -> Vec<(f64, f64)> {
    let mut spans: Vec<(f64, f64)> = Vec::new();
    let mut t = 0.0;
    for p in &load.phases {
        let end = t + p.duration.as_secs_f64();
        if p.kind == PhaseKind::Steady {
            match spans.last_mut() {
                Some(last) if (last.1 - t).abs() < 1e-9 => last.1 = end,
                _ => spans.push((t, end)),
            }
        }
        t = end;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let all = Facts {
            target_died: true,
            gate_failed: true,
            fell_behind: true,
            inconclusive: true,
        };
        assert_eq!(exit_code(all), ExitCode::TargetDied);
        let f = Facts {
            target_died: false,
            ..all
        };
        assert_eq!(exit_code(f), ExitCode::GateFailed);
        let f = Facts {
            gate_failed: false,
            ..f
        };
        assert_eq!(exit_code(f), ExitCode::FellBehind);
        let f = Facts {
            fell_behind: false,
            ..f
        };
        assert_eq!(exit_code(f), ExitCode::Inconclusive);
        assert_eq!(exit_code(Facts::default()), ExitCode::Pass);
    }

    fn failed(kind: GateKind) -> Verdict {
        Verdict {
            outcome: Outcome::Fail,
            gates: vec![crate::verdict::GateResult {
                name: "g".into(),
                signal: None,
                kind,
                outcome: Outcome::Fail,
                observed: 2.0,
                limit: 1.0,
                unit: "ms".into(),
                slope: None,
                time_to_limit_s: None,
                explanation: String::new(),
            }],
            summary: String::new(),
        }
    }

    #[test]
    fn a_starved_driver_answers_for_latency_but_not_for_a_slope() {
        let latency = failed(GateKind::Latency);
        let slope = failed(GateKind::Slope);
        assert_eq!(
            exit_code(Facts::of(false, Some(&latency), true)),
            ExitCode::FellBehind
        );
        assert_eq!(
            exit_code(Facts::of(false, Some(&latency), false)),
            ExitCode::GateFailed
        );
        assert_eq!(
            exit_code(Facts::of(false, Some(&slope), true)),
            ExitCode::GateFailed
        );
        assert_eq!(
            exit_code(Facts::of(true, Some(&slope), false)),
            ExitCode::TargetDied
        );
    }
}
