//! `leakgate analyze`: the verdict on a recorded series, without running load.

use std::path::PathBuf;

use clap::Args;

use super::output;
use crate::exit::ExitCode;
use crate::scenario::plan::{GatePlan, LatencyGate, SignalGate, SignalUnit};
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
    #[arg(long, value_parser = parse_slope)]
    pub max_slope: Slope,
    /// Share of the work (or time) treated as warm-up.
    #[arg(long, default_value_t = 0.1)]
    pub warmup_share: f64,
    /// Equal-work windows.
    #[arg(long, default_value_t = 10)]
    pub windows: usize,
}

/// Runs the verdict on the file.
pub fn analyze(a: AnalyzeArgs) -> ExitCode {
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
        warmup_share: a.warmup_share.clamp(0.0, 0.9),
        windows: a.windows.clamp(4, 1000),
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
