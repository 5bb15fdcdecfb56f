//! Old records merged into one per bucket (a minute): windows exactly, probe samples by floor.
//!
//! Windows merge losslessly: counters add, and the corrected and uncorrected HdrHistograms
//! add bucket by bucket, so counts and percentiles over a merged window are those of the
//! originals. Probe samples keep each signal's minimum (the floor the verdict judges).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::load::stats;
use crate::record::{LatencySummary, ProbeSample, Record, Window};

/// Merges the windows ending at or before `cutoff` into one per `bucket` seconds and unbroken
/// stretch of one phase, and the probe samples with `0 <= t < cutoff` into one per `bucket`;
/// everything else passes through (all of it when `bucket` is not positive). The output is
/// sorted by time (stable) and compacting it again changes nothing.
pub fn compact(records: Vec<Record>, cutoff: f64, bucket: f64) -> Vec<Record> {
    let mut slots: Vec<Option<Record>> = records.into_iter().map(Some).collect();
    if bucket > 0.0 && bucket.is_finite() {
        let window_runs = runs(&slots, |r| match r {
            Record::Window(w) if w.end <= cutoff => {
                Some((w.start, ((w.start / bucket).floor(), w.phase)))
            }
            _ => None,
        });
        for run in window_runs {
            let parts: Vec<Window> = take(&mut slots, &run, |r| match r {
                Record::Window(w) => Some(w),
                _ => None,
            });
            put(&mut slots, &run, Record::Window(merge_windows(&parts)));
        }
        let sample_runs = runs(&slots, |r| match r {
            Record::Probe(p) if p.t >= 0.0 && p.t < cutoff => {
                Some((p.t, ((p.t / bucket).floor(), None)))
            }
            _ => None,
        });
        for run in sample_runs {
            let parts: Vec<ProbeSample> = take(&mut slots, &run, |r| match r {
                Record::Probe(p) => Some(p),
                _ => None,
            });
            put(&mut slots, &run, Record::Probe(merge_samples(&parts)));
        }
    }
    let mut out: Vec<Record> = slots.into_iter().flatten().collect();
    out.sort_by(|a, b| time(a).total_cmp(&time(b)));
    out
}

/// The time a record is ordered by: a window's start, every other record's `t`.
fn time(r: &Record) -> f64 {
    match r {
        Record::Window(w) => w.start,
        Record::Probe(p) => p.t,
        Record::Event(e) => e.t,
        Record::Evaluation(e) => e.t,
    }
}

/// What groups records: the bucket number, and the phase (samples have none).
type Key = (f64, Option<crate::scenario::plan::PhaseKind>);

/// Slot numbers of the records `pick` selects, in time order, cut into maximal runs of one key;
/// only the runs of two or more. A run never spans a change of key, so a phase that comes back
/// after another one within the same bucket starts a new run.
fn runs(slots: &[Option<Record>], pick: impl Fn(&Record) -> Option<(f64, Key)>) -> Vec<Vec<usize>> {
    let mut picked: Vec<(usize, f64, Key)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().and_then(&pick).map(|(t, k)| (i, t, k)))
        .collect();
    picked.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut prev: Option<Key> = None;
    for (i, _, key) in picked {
        match out.last_mut() {
            Some(run) if prev == Some(key) => run.push(i),
            _ => out.push(vec![i]),
        }
        prev = Some(key);
    }
    out.retain(|run| run.len() > 1);
    out
}

/// Takes the records of a run out of their slots.
fn take<T>(
    slots: &mut [Option<Record>],
    run: &[usize],
    get: impl Fn(Record) -> Option<T>,
) -> Vec<T> {
    run.iter()
        .filter_map(|&i| slots.get_mut(i).and_then(Option::take).and_then(&get))
        .collect()
}

/// Puts a run's merged record in the slot of the run's earliest record, so that the final
/// stable sort keeps runs in the order they were found (what makes compaction idempotent).
fn put(slots: &mut [Option<Record>], run: &[usize], merged: Record) {
    if let Some(slot) = run.first().and_then(|&i| slots.get_mut(i)) {
        *slot = Some(merged);
    }
}

/// One window standing for `parts` (two or more, in time order, one phase).
pub(crate) fn merge_windows(parts: &[Window]) -> Window {
    let sum = |f: fn(&Window) -> u64| parts.iter().map(f).fold(0, u64::saturating_add);
    let corrected = merge_histograms(parts.iter().map(|w| w.corrected_hist.as_str()));
    let uncorrected = merge_histograms(parts.iter().map(|w| w.uncorrected_hist.as_str()));
    Window {
        index: parts.iter().map(|w| w.index).min().unwrap_or_default(),
        start: parts.iter().map(|w| w.start).fold(f64::INFINITY, f64::min),
        end: parts
            .iter()
            .map(|w| w.end)
            .fold(f64::NEG_INFINITY, f64::max),
        phase: parts.first().and_then(|w| w.phase),
        planned: sum(|w| w.planned),
        sent: sum(|w| w.sent),
        completed: sum(|w| w.completed),
        dropped: sum(|w| w.dropped),
        cumulative_completed: parts
            .iter()
            .map(|w| w.cumulative_completed)
            .max()
            .unwrap_or_default(),
        bytes: sum(|w| w.bytes),
        status: sum_maps(parts.iter().map(|w| &w.status)),
        errors: sum_maps(parts.iter().map(|w| &w.errors)),
        corrected: summary(corrected.as_ref(), parts.iter().map(|w| &w.corrected)),
        uncorrected: summary(uncorrected.as_ref(), parts.iter().map(|w| &w.uncorrected)),
        first_message: bound(parts.iter().map(|w| &w.first_message)),
        messages_per_stream: messages_per_stream(parts),
        corrected_hist: corrected.as_ref().map(stats::encode).unwrap_or_default(),
        uncorrected_hist: uncorrected.as_ref().map(stats::encode).unwrap_or_default(),
        merged: Some(merged_count(parts.iter().map(|w| w.merged))),
    }
}

/// One sample standing for `parts`: the latest one's time and request count, and each signal's
/// minimum over the samples that carry it.
fn merge_samples(parts: &[ProbeSample]) -> ProbeSample {
    let latest = parts
        .iter()
        .fold(None::<&ProbeSample>, |best, p| match best {
            Some(b) if b.t > p.t => Some(b),
            _ => Some(p),
        });
    let mut signals: BTreeMap<String, f64> = BTreeMap::new();
    for p in parts {
        for (name, &v) in &p.signals {
            signals
                .entry(name.clone())
                .and_modify(|m| *m = m.min(v))
                .or_insert(v);
        }
    }
    ProbeSample {
        t: latest.map(|p| p.t).unwrap_or_default(),
        cumulative_completed: latest.map(|p| p.cumulative_completed).unwrap_or_default(),
        signals,
        merged: Some(merged_count(parts.iter().map(|p| p.merged))),
    }
}

/// How many original records the parts stand for (an absent count is one record).
fn merged_count(parts: impl Iterator<Item = Option<u32>>) -> u32 {
    parts.map(|m| m.unwrap_or(1)).fold(0, u32::saturating_add)
}

/// Key-wise sums of counter maps.
fn sum_maps<'a>(maps: impl Iterator<Item = &'a BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for m in maps {
        for (k, v) in m {
            let e = out.entry(k.clone()).or_default();
            *e = e.saturating_add(*v);
        }
    }
    out
}

/// The sum of the histograms that decode. An empty or undecodable one counts as empty, so it
/// never costs the others their data; `None` when none decodes.
fn merge_histograms<'a>(encoded: impl Iterator<Item = &'a str>) -> Option<Histogram<u64>> {
    let mut total: Option<Histogram<u64>> = None;
    for h in encoded.filter_map(stats::decode) {
        match total.as_mut() {
            // Grows if a part was recorded with a wider range; the only failure left is a
            // range past `usize`, which no decoded histogram has.
            Some(t) => {
                let _ = t.add(&h);
            }
            None => {
                let mut first = h;
                first.auto(true);
                total = Some(first);
            }
        }
    }
    total
}

/// The summary of a merged histogram; without one (no part decoded), the parts' summaries
/// combined by [`bound`].
fn summary<'a>(
    merged: Option<&Histogram<u64>>,
    parts: impl Iterator<Item = &'a LatencySummary>,
) -> LatencySummary {
    match merged {
        Some(h) => stats::summarize(h),
        None => bound(parts),
    }
}

/// Summaries combined without their histograms: counts add and the mean is count-weighted,
/// exactly; each percentile and the max is the largest over the parts, which is an upper bound
/// of the merged percentile, not its value.
fn bound<'a>(parts: impl Iterator<Item = &'a LatencySummary>) -> LatencySummary {
    let mut out = LatencySummary::default();
    let mut weighted = 0.0;
    for s in parts {
        out.count = out.count.saturating_add(s.count);
        weighted += s.mean * s.count as f64;
        out.p50 = out.p50.max(s.p50);
        out.p90 = out.p90.max(s.p90);
        out.p95 = out.p95.max(s.p95);
        out.p99 = out.p99.max(s.p99);
        out.p999 = out.p999.max(s.p999);
        out.max = out.max.max(s.max);
    }
    if out.count > 0 {
        out.mean = weighted / out.count as f64;
    }
    out
}

/// Messages per stream over the windows that report it, weighted by their completed requests
/// (a plain mean when none completed anything); `None` when no window reports it.
fn messages_per_stream(parts: &[Window]) -> Option<f64> {
    let reported: Vec<(f64, u64)> = parts
        .iter()
        .filter_map(|w| w.messages_per_stream.map(|m| (m, w.completed)))
        .collect();
    if reported.is_empty() {
        return None;
    }
    let weight: u64 = reported.iter().map(|&(_, c)| c).sum();
    if weight == 0 {
        let plain: f64 = reported.iter().map(|&(m, _)| m).sum();
        return Some(plain / reported.len() as f64);
    }
    let total: f64 = reported.iter().map(|&(m, c)| m * c as f64).sum();
    Some(total / weight as f64)
}

#[cfg(test)]
mod random;
#[cfg(test)]
mod tests;
