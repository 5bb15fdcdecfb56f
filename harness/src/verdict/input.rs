//! Readers for `leakgate analyze`: a recorded `samples.ndjson`, or a two-column CSV
//! (`time,value`) exported from another tool, turned into a [`VerdictInput`].
//!
//! NDJSON: `probe` records are the samples; steady spans come from `window` records whose
//! phase is `steady` (all of the run when there are no windows or none is steady); the baseline
//! is the last probe before the load (t < 0); a `drain` event marks the drain check, and the
//! first probe at or after it is the drained sample (later probes are not part of the trend).
//! Latency comes from the steady windows: their HdrHistograms merged exactly, or, when any
//! histogram is missing, the worst window's percentiles (an upper bound).
//!
//! CSV: one signal, named by the caller. Time is seconds, a Unix timestamp (seconds, or
//! milliseconds when above 1e11) or RFC 3339; it is shifted so the first row is t = 0. There is
//! no request count, so the verdict judges per second only.

use std::path::{Path, PathBuf};

use base64::Engine;
use hdrhistogram::Histogram;

use crate::record::{ProbeSample, Record, Window};
use crate::scenario::plan::PhaseKind;

use super::{LatencyObserved, VerdictInput};

/// Why an input file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read at all.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// One line is malformed.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        /// File.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What was wrong and what was expected.
        message: String,
    },
    /// The file has no usable data.
    #[error("{}: {message}", path.display())]
    Empty {
        /// File.
        path: PathBuf,
        /// What was missing.
        message: String,
    },
}

/// Reads `path` by its extension: `.csv` as a `time,value` CSV of signal `csv_signal`,
/// anything else as a recorded `samples.ndjson`.
pub fn read_auto(path: &Path, csv_signal: &str) -> Result<VerdictInput, InputError> {
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        read_csv(path, csv_signal)
    } else {
        read_ndjson(path)
    }
}

/// Reads a recorded `samples.ndjson`.
pub fn read_ndjson(path: &Path) -> Result<VerdictInput, InputError> {
    parse_ndjson(&read(path)?, path)
}

/// Reads a two-column CSV `time,value` as the signal `signal`.
pub fn read_csv(path: &Path, signal: &str) -> Result<VerdictInput, InputError> {
    parse_csv(&read(path)?, path, signal)
}

fn read(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|source| InputError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses `samples.ndjson` text; `path` only names the file in errors.
pub fn parse_ndjson(text: &str, path: &Path) -> Result<VerdictInput, InputError> {
    let mut records = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => records.push(r),
            // A run killed mid-write leaves a partial last line: keep what was recorded.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => {
                return Err(InputError::Line {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: format!(
                        "not a samples.ndjson record ({e}); expected one JSON object a line with \
                         \"type\": \"window\", \"probe\" or \"event\""
                    ),
                });
            }
        }
    }
    let input = from_records(&records);
    if input.samples.is_empty() {
        return Err(InputError::Empty {
            path: path.to_path_buf(),
            message: "no probe samples (lines with \"type\": \"probe\"); nothing to judge"
                .to_string(),
        });
    }
    Ok(input)
}

/// The verdict's input from a run's records: the probes up to the drain check are the
/// samples, the last probe before the load (t < 0) the baseline, the first at or after the
/// `drain` event the drained sample; steady spans and latency come from the steady windows.
pub fn from_records(records: &[Record]) -> VerdictInput {
    let mut probes = Vec::new();
    let mut windows = Vec::new();
    let mut drain_at: Option<f64> = None;
    for r in records {
        match r {
            Record::Probe(p) => probes.push(p.clone()),
            Record::Window(w) => windows.push(w),
            Record::Evaluation(_) => {}
            Record::Event(e) => {
                if e.kind == "drain" && drain_at.is_none() {
                    drain_at = Some(e.t);
                }
            }
        }
    }
    probes.sort_by(|a, b| a.t.total_cmp(&b.t));
    let baseline = probes.iter().rev().find(|p| p.t < 0.0).cloned();
    let drained = drain_at.and_then(|d| probes.iter().find(|p| p.t >= d).cloned());
    if let Some(d) = drain_at {
        probes.retain(|p| p.t < d);
    }
    let steady_windows: Vec<&Window> = windows
        .iter()
        .copied()
        .filter(|w| w.phase == Some(PhaseKind::Steady))
        .collect();
    let judged: Vec<&Window> = if steady_windows.is_empty() {
        windows.clone()
    } else {
        steady_windows.clone()
    };
    VerdictInput {
        samples: probes,
        steady: spans(&steady_windows),
        baseline,
        drained,
        latency: latency(&judged),
        memory_limit: None,
    }
}

/// Contiguous steady windows merged into time spans.
fn spans(windows: &[&Window]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<(f64, f64)> = windows.iter().map(|w| (w.start, w.end)).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (s, e) in sorted {
        match out.last_mut() {
            Some(last) if s <= last.1 + 1e-6 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Latency over the windows: merged histograms where every window has one, else the worst
/// window's percentiles. `None` when nothing completed.
fn latency(windows: &[&Window]) -> Option<LatencyObserved> {
    let completed: u64 = windows.iter().map(|w| w.completed).sum();
    if completed == 0 {
        return None;
    }
    let failed: u64 = windows.iter().map(|w| w.failed()).sum();
    let error_rate = failed as f64 / completed as f64;
    if let Some(h) = merged(windows) {
        return Some(LatencyObserved {
            p95_ms: h.value_at_quantile(0.95) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            error_rate,
        });
    }
    let worst = |f: fn(&Window) -> f64| windows.iter().map(|w| f(w)).fold(0.0, f64::max);
    Some(LatencyObserved {
        p95_ms: worst(|w| w.corrected.p95),
        p99_ms: worst(|w| w.corrected.p99),
        error_rate,
    })
}

fn merged(windows: &[&Window]) -> Option<Histogram<u64>> {
    let mut total = Histogram::<u64>::new(3).ok()?;
    let mut de = hdrhistogram::serialization::Deserializer::new();
    for w in windows {
        if w.completed == 0 {
            continue;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(w.corrected_hist.as_bytes())
            .ok()?;
        let h = crate::load::stats::decode_bytes(&mut de, &bytes)?;
        total.add(&h).ok()?;
    }
    (!total.is_empty()).then_some(total)
}

/// Parses CSV text `time,value` as signal `signal`; `path` only names the file in errors.
pub fn parse_csv(text: &str, path: &Path, signal: &str) -> Result<VerdictInput, InputError> {
    let mut rows: Vec<(f64, f64)> = Vec::new();
    let mut first_data = true;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |message: String| InputError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let fields: Vec<&str> = line
            .split(',')
            .map(|f| f.trim().trim_matches('"'))
            .collect();
        if fields.len() != 2 {
            return Err(err(format!(
                "expected two columns `time,value`, found {}",
                fields.len()
            )));
        }
        let time = parse_time(fields[0]);
        let value = fields[1].parse::<f64>().ok().filter(|v| v.is_finite());
        match (time, value) {
            (Some(t), Some(v)) => rows.push((t, v)),
            // The first row may be a header such as `time,value`.
            _ if first_data && time.is_none() && value.is_none() => {}
            (None, _) => {
                return Err(err(format!(
                    "time `{}` is neither seconds, a Unix timestamp nor RFC 3339 \
                     (e.g. 2026-11-25T04:21:02Z)",
                    fields[0]
                )));
            }
            (_, None) => {
                return Err(err(format!("value `{}` is not a finite number", fields[1])));
            }
        }
        first_data = false;
    }
    if rows.is_empty() {
        return Err(InputError::Empty {
            path: path.to_path_buf(),
            message: "no data rows; expected lines `time,value`".to_string(),
        });
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let t0 = rows[0].0;
    let samples = rows
        .into_iter()
        .map(|(t, v)| ProbeSample {
            t: t - t0,
            cumulative_completed: 0,
            signals: [(signal.to_string(), v)].into_iter().collect(),
            merged: None,
        })
        .collect();
    Ok(VerdictInput {
        samples,
        ..Default::default()
    })
}

/// Seconds from a number (Unix milliseconds when above 1e11) or an RFC 3339 timestamp.
fn parse_time(s: &str) -> Option<f64> {
    if let Ok(v) = s.parse::<f64>() {
        if !v.is_finite() {
            return None;
        }
        return Some(if v.abs() > 1e11 { v / 1000.0 } else { v });
    }
    parse_rfc3339(s)
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.frac](Z|±HH:MM)` → Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        if end == 0 {
            return None;
        }
        frac = format!("0.{}", &r[..end]).parse::<f64>().ok()?;
        rest = &r[end..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = rest[1..].split_once(':')?;
            if oh.len() != 2 || om.len() != 2 {
                return None;
            }
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(secs as f64 + frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339("2026-11-25T04:21:02Z"), Some(1_795_580_462.0));
        assert_eq!(
            parse_rfc3339("2026-11-25T05:21:02.5+01:00"),
            Some(1_795_580_462.5)
        );
        assert_eq!(parse_rfc3339("2000-02-29 00:00:00Z"), Some(951_782_400.0));
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
