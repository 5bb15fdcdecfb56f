//! Inputs for `leakgate analyze`: a recorded `samples.ndjson`, or a two-column CSV.

use std::collections::BTreeMap;
use std::path::Path;

use super::VerdictInput;
use crate::record::{ProbeSample, Record};
use crate::scenario::plan::PhaseKind;

/// Reads a run's `samples.ndjson`: probe samples, steady spans from the windows' phases, and
/// the baseline/drain samples (before the load / after the last window).
pub fn from_ndjson(path: &Path) -> Result<VerdictInput, String> {
    let records = crate::report::ndjson::read(path)?;
    let mut samples = Vec::new();
    let mut steady: Vec<(f64, f64)> = Vec::new();
    let mut last_window_end = f64::NEG_INFINITY;
    for r in records {
        match r {
            Record::Probe(p) => samples.push(p),
            Record::Window(w) => {
                last_window_end = last_window_end.max(w.end);
                if w.phase == Some(PhaseKind::Steady) {
                    match steady.last_mut() {
                        Some(s) if (s.1 - w.start).abs() < 1e-6 => s.1 = w.end,
                        _ => steady.push((w.start, w.end)),
                    }
                }
            }
            Record::Event(_) => {}
        }
    }
    if samples.is_empty() {
        return Err(format!("{}: no probe samples in this file", path.display()));
    }
    let baseline = samples.first().filter(|s| s.t < 0.0).cloned();
    let drained = samples
        .last()
        .filter(|s| last_window_end.is_finite() && s.t > last_window_end + 0.5)
        .cloned();
    let run: Vec<ProbeSample> = samples
        .into_iter()
        .filter(|s| s.t >= 0.0 && (!last_window_end.is_finite() || s.t <= last_window_end + 0.5))
        .collect();
    Ok(VerdictInput {
        samples: run,
        steady,
        baseline,
        drained,
        latency: None,
        memory_limit: None,
    })
}

/// Reads a `time,value` CSV (optional header; time in seconds, a unix timestamp or RFC 3339)
/// into samples of one signal named `signal`.
pub fn from_csv(path: &Path, signal: &str) -> Result<VerdictInput, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut samples = Vec::new();
    let mut t0 = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |m: String| format!("{}:{}: {m}", path.display(), i + 1);
        let mut cols = line
            .split([',', ';', '\t'])
            .map(|c| c.trim().trim_matches('"'));
        let (Some(tc), Some(vc)) = (cols.next(), cols.next()) else {
            return Err(at(format!(
                "expected two columns `time,value`, got \"{line}\""
            )));
        };
        let t = match parse_time(tc) {
            Some(t) => t,
            None if samples.is_empty() && t0.is_none() => continue, // a header line
            None => {
                return Err(at(format!(
                    "\"{tc}\" is not a time (seconds, unix time or RFC 3339)"
                )));
            }
        };
        let v: f64 = vc
            .parse()
            .map_err(|_| at(format!("\"{vc}\" is not a number")))?;
        let t0 = *t0.get_or_insert(t);
        samples.push(ProbeSample {
            t: t - t0,
            cumulative_completed: 0,
            signals: BTreeMap::from([(signal.to_string(), v)]),
        });
    }
    if samples.is_empty() {
        return Err(format!("{}: no rows", path.display()));
    }
    Ok(VerdictInput {
        samples,
        ..VerdictInput::default()
    })
}

fn parse_time(s: &str) -> Option<f64> {
    if let Ok(v) = s.parse::<f64>() {
        return Some(v);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|d| d.unix_timestamp_nanos() as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_header_and_rfc3339() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.csv");
        std::fs::write(
            &p,
            "time,value\n2026-01-01T00:00:00Z,10\n2026-01-01T00:00:30Z,12\n",
        )
        .unwrap();
        let i = from_csv(&p, "rss_bytes").unwrap();
        assert_eq!(i.samples.len(), 2);
        assert_eq!(i.samples[1].t, 30.0);
        std::fs::write(&p, "1,2\n2,oops\n").unwrap();
        let e = from_csv(&p, "x").unwrap_err();
        assert!(e.ends_with("x.csv:2: \"oops\" is not a number"), "{e}");
    }
}
