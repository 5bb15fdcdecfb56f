//! Compaction of random runs: every invariant, over 200 seeds.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::compact;
use crate::record::{ProbeSample, Record, Window};
use crate::scenario::plan::PhaseKind;
use crate::store::test_support::{event, sample, samples, summed, window, windows};

const PHASES: [Option<PhaseKind>; 5] = [
    None,
    Some(PhaseKind::Warmup),
    Some(PhaseKind::Ramp),
    Some(PhaseKind::Steady),
    Some(PhaseKind::Spike),
];

/// Windows with real histograms to copy from: building histograms is slow in a debug build.
fn templates() -> Vec<Window> {
    let mut rng = StdRng::seed_from_u64(u64::MAX);
    (0..12)
        .map(|i| {
            let micros: Vec<u64> = (0..rng.random_range(0..5))
                .map(|_| rng.random_range(1..20_000_000))
                .collect();
            window(i, 0.0, 1.0, None, &micros)
        })
        .collect()
}

/// Random windows (some pre-merged, some with a broken histogram), samples and events.
fn random_records(rng: &mut StdRng, templates: &[Window]) -> Vec<Record> {
    let mut out = Vec::new();
    let (mut t, mut phase) = (0.0, PHASES[3]);
    for i in 0..rng.random_range(0..20u64) {
        let dur = [0.5, 1.0, 1.0, 2.0, 7.25][rng.random_range(0..5)];
        if rng.random_bool(0.15) {
            phase = PHASES[rng.random_range(0..PHASES.len())];
        }
        let mut w = templates[rng.random_range(0..templates.len())].clone();
        (w.index, w.start, w.end, w.phase) = (i, t, t + dur, phase);
        w.bytes = rng.random_range(0..1000);
        w.errors.insert(
            format!("e{}", rng.random_range(0..3)),
            rng.random_range(0..9),
        );
        if rng.random_bool(0.05) {
            w.corrected_hist = ["", "!!", "AAAA"][rng.random_range(0..3)].into();
        }
        if rng.random_bool(0.1) {
            w.merged = Some(rng.random_range(1..5));
        }
        if rng.random_bool(0.3) {
            w.messages_per_stream = Some(rng.random_range(0.0..4.0));
        }
        out.push(Record::Window(w));
        t += dur;
    }
    for _ in 0..rng.random_range(0..40) {
        let mut signals: Vec<(&str, f64)> = Vec::new();
        for name in ["rss", "heap", "fds"] {
            if rng.random_bool(0.7) {
                signals.push((name, rng.random_range(-5.0..100.0)));
            }
        }
        let t = rng.random_range(-30.0..200.0);
        out.push(Record::Probe(sample(
            t,
            rng.random_range(0..1000),
            &signals,
        )));
    }
    for _ in 0..rng.random_range(0..4) {
        out.push(Record::Event(event(rng.random_range(-5.0..200.0), "phase")));
    }
    if rng.random_bool(0.5) {
        out.shuffle(rng);
    }
    out
}

fn sum_by(ws: &[&Window], f: impl Fn(&Window) -> BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for w in ws {
        for (k, v) in f(w) {
            *out.entry(k).or_default() += v;
        }
    }
    out
}

/// Counters of all windows, by name: the totals compaction must keep.
fn totals(ws: &[&Window]) -> BTreeMap<String, u64> {
    let mut out = sum_by(ws, |w| {
        let fields = [
            ("planned", w.planned),
            ("sent", w.sent),
            ("completed", w.completed),
            ("dropped", w.dropped),
            ("bytes", w.bytes),
            ("windows", u64::from(w.merged.unwrap_or(1))),
            (
                &format!("windows {:?}", w.phase),
                u64::from(w.merged.unwrap_or(1)),
            ),
        ];
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    });
    out.extend(sum_by(ws, |w| {
        w.status
            .iter()
            .map(|(k, v)| (format!("status {k}"), *v))
            .collect()
    }));
    out.extend(sum_by(ws, |w| {
        w.errors
            .iter()
            .map(|(k, v)| (format!("error {k}"), *v))
            .collect()
    }));
    out
}

/// Per bucket of merged samples: (latest t, count, minimum of each signal).
fn sample_buckets(
    ss: &[&ProbeSample],
    cutoff: f64,
    bucket: f64,
) -> BTreeMap<i64, (f64, u32, BTreeMap<String, f64>)> {
    let mut out: BTreeMap<i64, (f64, u32, BTreeMap<String, f64>)> = BTreeMap::new();
    for s in ss.iter().filter(|s| s.t >= 0.0 && s.t < cutoff) {
        let e = out
            .entry((s.t / bucket).floor() as i64)
            .or_insert((f64::MIN, 0, BTreeMap::new()));
        e.0 = e.0.max(s.t);
        e.1 += s.merged.unwrap_or(1);
        for (k, v) in &s.signals {
            let m = e.2.entry(k.clone()).or_insert(*v);
            *m = m.min(*v);
        }
    }
    out
}

#[test]
fn random_runs_keep_every_invariant() {
    let templates = templates();
    for seed in 0..200 {
        let mut rng = StdRng::seed_from_u64(seed);
        let input = random_records(&mut rng, &templates);
        let cutoff = rng.random_range(-10.0..250.0);
        let bucket = [60.0, 10.0, 7.5][rng.random_range(0..3)];
        let out = compact(input.clone(), cutoff, bucket);
        let (wi, wo) = (windows(&input), windows(&out));
        assert_eq!(totals(&wi), totals(&wo), "seed {seed}");
        assert_eq!(summed(&wi, true), summed(&wo, true), "seed {seed}");
        // Windows past the cutoff, the baseline and late samples are kept as they were.
        let late_in: Vec<&&Window> = wi.iter().filter(|w| w.end > cutoff).collect();
        let late_out: Vec<&&Window> = wo.iter().filter(|w| w.end > cutoff).collect();
        assert_eq!(late_in.len(), late_out.len(), "seed {seed}");
        assert!(late_out.iter().all(|w| late_in.contains(w)), "seed {seed}");
        let (si, so) = (samples(&input), samples(&out));
        let kept = |s: &&&ProbeSample| s.t < 0.0 || s.t >= cutoff;
        let kept_in: Vec<&&ProbeSample> = si.iter().filter(kept).collect();
        let kept_out: Vec<&&ProbeSample> = so.iter().filter(kept).collect();
        assert_eq!(kept_in.len(), kept_out.len(), "seed {seed}");
        assert!(kept_out.iter().all(|s| kept_in.contains(s)), "seed {seed}");
        // One sample per bucket, at its latest time, with each signal's floor.
        let buckets = sample_buckets(&si, cutoff, bucket);
        assert_eq!(sample_buckets(&so, cutoff, bucket), buckets, "seed {seed}");
        let merged_out = so.iter().filter(|s| s.t >= 0.0 && s.t < cutoff).count();
        assert_eq!(merged_out, buckets.len(), "seed {seed}");
        // Old windows: no two neighbours share a bucket and a phase.
        let mut old: Vec<&&Window> = wo.iter().filter(|w| w.end <= cutoff).collect();
        old.sort_by(|a, b| a.start.total_cmp(&b.start));
        for pair in old.windows(2) {
            let key = |w: &Window| ((w.start / bucket).floor(), w.phase);
            assert_ne!(key(pair[0]), key(pair[1]), "seed {seed}");
        }
        let events = |rs: &[Record]| rs.iter().filter(|r| matches!(r, Record::Event(_))).count();
        assert_eq!(events(&input), events(&out), "seed {seed}");
        let times: Vec<f64> = out.iter().map(super::time).collect();
        assert!(times.is_sorted_by(|a, b| a <= b), "seed {seed}");
        assert_eq!(compact(out.clone(), cutoff, bucket), out, "seed {seed}");
    }
}
