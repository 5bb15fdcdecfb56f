//! How a run's facts become one exit code.

use crate::exit::ExitCode;
use crate::verdict::{Outcome, Verdict};

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
            gate_failed: verdict.is_some_and(|v| v.outcome == Outcome::Fail),
            fell_behind,
            inconclusive: verdict.is_none_or(|v| v.outcome == Outcome::Inconclusive),
        }
    }
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
}
