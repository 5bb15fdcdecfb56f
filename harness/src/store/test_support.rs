//! Records for the store's tests: windows with real HdrHistograms, samples, events.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::load::stats;
use crate::record::{Event, ProbeSample, Record, Window};
use crate::scenario::plan::PhaseKind;

/// A histogram with the load engine's bounds holding `micros`.
pub fn histogram(micros: &[u64]) -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for &v in micros {
        h.saturating_record(v);
    }
    h
}

/// A window over `[start, end)` whose requests took `micros` (corrected; uncorrected is half).
pub fn window(
    index: u64,
    start: f64,
    end: f64,
    phase: Option<PhaseKind>,
    micros: &[u64],
) -> Window {
    let corrected = histogram(micros);
    let half: Vec<u64> = micros.iter().map(|v| v / 2 + 1).collect();
    let uncorrected = histogram(&half);
    let n = micros.len() as u64;
    let mut status = BTreeMap::from([("2xx".to_string(), n)]);
    if index % 2 == 1 {
        status.insert("5xx".into(), index);
    }
    let errors = BTreeMap::from([(format!("kind{}", index % 3), index + 1)]);
    Window {
        index,
        start,
        end,
        phase,
        planned: n + 2,
        sent: n + 1,
        completed: n,
        dropped: index % 4,
        cumulative_completed: 1000 + index * 10,
        bytes: 100 * n + index,
        status,
        errors,
        corrected: stats::summarize(&corrected),
        uncorrected: stats::summarize(&uncorrected),
        first_message: Default::default(),
        messages_per_stream: None,
        corrected_hist: stats::encode(&corrected),
        uncorrected_hist: stats::encode(&uncorrected),
        merged: None,
    }
}

/// A one-second steady window numbered `i`, with a few latencies derived from `i`.
pub fn second(i: u64) -> Window {
    let micros = [1000 + i * 7, 2000 + i * 13 % 5000, 150_000 + i];
    window(
        i,
        i as f64,
        i as f64 + 1.0,
        Some(PhaseKind::Steady),
        &micros,
    )
}

/// A probe sample.
pub fn sample(t: f64, cumulative_completed: u64, signals: &[(&str, f64)]) -> ProbeSample {
    ProbeSample {
        t,
        cumulative_completed,
        signals: signals.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        merged: None,
    }
}

/// An event.
pub fn event(t: f64, kind: &str) -> Event {
    Event {
        t,
        kind: kind.into(),
        detail: format!("{kind} at {t}"),
    }
}

/// The windows among `records`.
pub fn windows(records: &[Record]) -> Vec<&Window> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Window(w) => Some(w),
            _ => None,
        })
        .collect()
}

/// The probe samples among `records`.
pub fn samples(records: &[Record]) -> Vec<&ProbeSample> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Probe(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// The sum of the windows' decodable corrected (or uncorrected) histograms.
pub fn summed(ws: &[&Window], corrected: bool) -> Histogram<u64> {
    let mut total = histogram(&[]);
    for w in ws {
        let text = if corrected {
            &w.corrected_hist
        } else {
            &w.uncorrected_hist
        };
        if let Some(h) = stats::decode(text) {
            total.add(&h).unwrap();
        }
    }
    total
}
