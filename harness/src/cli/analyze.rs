//! `leakgate analyze`: the verdict on a recorded series, without running load.

use std::path::PathBuf;

use clap::Args;

use super::output;
use crate::exit::ExitCode;
use crate::scenario::plan::{GatePlan, LatencyGate, SignalGate, SignalUnit};
use crate::scenario::resolve::{check_warmup_share, check_windows};
use crate::scenario::units::{Slope, parse_slope};
use crate::verdict::{self, Outcome, input};

/// `leakgate analyze FILE`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// A `samples.ndjson` from a run, or a two-column CSV `time,value`.
    pub file: PathBuf,
    /// Signal to judge (for a CSV: the name given to its values).
    #[arg(long, default_value = "rss_bytes")]
    pub signal: String,
    /// Slope limit: `1 MiB/min`, `0.5/s`, `256 B/request`.
    #[arg(long, value_parser = parse_slope, allow_hyphen_values = true)]
    pub max_slope: Slope,
    /// Share of the work (or time) treated as warm-up.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub warmup_share: f64,
    /// Equal-work windows.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    pub windows: usize,
}

/// Runs the verdict on the file.
pub fn analyze(a: AnalyzeArgs) -> ExitCode {
    // The same limits as a scenario's [gates].
    if let Err(e) = check_warmup_share("--warmup-share", a.warmup_share)
        .and_then(|_| check_windows("--windows", a.windows))
    {
        eprintln!("leakgate: {e}");
        return ExitCode::Usage;
    }
    let data = match input::read_auto(&a.file, &a.signal) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("leakgate: {e}");
            return ExitCode::BadScenario;
        }
    };
    let (per_s, per_r) = match a.max_slope {
        Slope::PerSecond(v) => (Some(v), None),
        Slope::PerRequest(v) => (None, Some(v)),
    };
    let gates = GatePlan {
        signals: vec![SignalGate {
            signal: a.signal.clone(),
            max_per_second: per_s,
            max_per_request: per_r,
            drain_to_baseline: None,
            unit: if a.signal.ends_with("_bytes") {
                SignalUnit::Bytes
            } else {
                SignalUnit::Count
            },
        }],
        latency: LatencyGate::default(),
        warmup_share: a.warmup_share,
        windows: a.windows,
        confidence: 0.95,
        min_time_to_limit: None,
        extend_if_inconclusive: None,
    };
    let v = verdict::judge(&data, &gates);
    println!("{}", output::verdict(&v));
    match v.outcome {
        Outcome::Pass => ExitCode::Pass,
        Outcome::Fail => ExitCode::GateFailed,
        Outcome::Inconclusive => ExitCode::Inconclusive,
    }
}
