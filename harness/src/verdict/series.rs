//! From raw probe samples to the floors the trend tests run on: keep the steady phase, drop the
//! warm-up (a share of the work, then any early level shift), cut into equal-work windows and
//! take each window's minimum.

use crate::record::ProbeSample;

use super::changepoint::{self, LevelShift};

/// Fewest windows a trend is judged on; below this the gate is inconclusive.
pub const MIN_WINDOWS: usize = 5;

/// Garbage-collection counters the probes read (Go expvar and Prometheus, JVM, Python): where
/// one is sampled, a memory signal's window floor is taken only over windows that hold a
/// collection, so the floor is a post-GC value and not the top of a sawtooth.
pub const GC_COUNTERS: [&str; 5] = [
    "go_num_gc",
    "go_gc_cycles_total",
    "go_gc_duration_seconds_count",
    "jvm_gc_count",
    "python_gc_collections_total",
];

/// One signal's steady-phase series, warm-up removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Steady {
    /// Work axis: cumulative completed requests, or seconds when no request counts exist.
    pub x: Vec<f64>,
    /// Seconds since load start.
    pub t: Vec<f64>,
    /// Signal values.
    pub y: Vec<f64>,
    /// True when `x` counts requests (false: `x` is time).
    pub per_request: bool,
    /// Mean completed requests per second over the kept part (when `per_request`).
    pub rate: Option<f64>,
    /// Steady-phase samples carrying the signal, before warm-up removal.
    pub steady_samples: usize,
    /// Samples dropped as the warm-up share.
    pub dropped_share: usize,
    /// Early level shift dropped as warm-up, with its time.
    pub shift: Option<(LevelShift, f64)>,
    /// A garbage-collection counter sampled with every point, and its name.
    pub gc: Option<(String, Vec<f64>)>,
}

/// Why a series could not be prepared.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesError {
    /// No steady sample carries this signal.
    Absent {
        /// Steady-phase samples seen (none with the signal).
        samples: usize,
    },
    /// Too few points left to judge.
    TooFew {
        /// Points left after warm-up removal.
        points: usize,
    },
}

/// Whether `t` (seconds since load start) lies in the steady spans; an empty list means the
/// whole run (t ≥ 0).
pub fn in_steady(steady: &[(f64, f64)], t: f64) -> bool {
    if steady.is_empty() {
        t >= 0.0
    } else {
        steady.iter().any(|&(a, b)| t >= a && t <= b)
    }
}

/// Keeps steady samples carrying `signal`, drops `warmup_share` of the work and an early level
/// shift. An empty `steady` list means the whole run (samples at t ≥ 0).
pub fn prepare(
    samples: &[ProbeSample],
    steady: &[(f64, f64)],
    signal: &str,
    warmup_share: f64,
) -> Result<Steady, SeriesError> {
    let mut seen = 0;
    let mut pts: Vec<(f64, u64, f64)> = Vec::new();
    let counter = GC_COUNTERS
        .iter()
        .find(|c| samples.iter().any(|s| s.signals.contains_key(**c)));
    let mut gcs: Vec<Option<f64>> = Vec::new();
    for s in samples
        .iter()
        .filter(|s| s.t.is_finite() && in_steady(steady, s.t))
    {
        seen += 1;
        if let Some(&v) = s.signals.get(signal)
            && v.is_finite()
        {
            pts.push((s.t, s.cumulative_completed, v));
            gcs.push(counter.and_then(|c| s.signals.get(*c).copied()));
        }
    }
    if pts.is_empty() {
        return Err(SeriesError::Absent { samples: seen });
    }
    let mut order: Vec<usize> = (0..pts.len()).collect();
    order.sort_by(|&a, &b| pts[a].0.total_cmp(&pts[b].0));
    let pts: Vec<(f64, u64, f64)> = order.iter().map(|&i| pts[i]).collect();
    let gcs: Vec<Option<f64>> = order.iter().map(|&i| gcs[i]).collect();
    let mut pts = pts;
    let steady_samples = pts.len();
    let per_request = pts.last().map(|p| p.1) > pts.first().map(|p| p.1);
    let axis = |p: &(f64, u64, f64)| if per_request { p.1 as f64 } else { p.0 };

    // Warm-up share of the work (or of the time when there are no request counts).
    let x0 = axis(&pts[0]);
    let x1 = axis(&pts[pts.len() - 1]);
    let cutoff = x0 + warmup_share.clamp(0.0, 0.9) * (x1 - x0);
    let before = pts.len();
    let keep: Vec<bool> = pts.iter().map(|p| axis(p) >= cutoff).collect();
    let mut gcs: Vec<Option<f64>> = gcs
        .into_iter()
        .zip(&keep)
        .filter_map(|(g, k)| k.then_some(g))
        .collect();
    pts.retain(|p| axis(p) >= cutoff);
    let dropped_share = before - pts.len();

    let mut x: Vec<f64> = pts.iter().map(axis).collect();
    let mut t: Vec<f64> = pts.iter().map(|p| p.0).collect();
    let mut y: Vec<f64> = pts.iter().map(|p| p.2).collect();
    let mut shift = None;
    if let Some(s) = changepoint::early_level_shift(&x, &y) {
        shift = Some((s, t[s.index]));
        x.drain(..s.index);
        t.drain(..s.index);
        y.drain(..s.index);
        gcs.drain(..s.index);
    }
    let gc = counter
        .zip(gcs.iter().copied().collect::<Option<Vec<f64>>>())
        .map(|(c, v)| (c.to_string(), v));
    if x.len() < 2 * MIN_WINDOWS {
        return Err(SeriesError::TooFew { points: x.len() });
    }
    let rate = if per_request {
        let dt = t[t.len() - 1] - t[0];
        (dt > 0.0).then(|| (x[x.len() - 1] - x[0]) / dt)
    } else {
        None
    };
    Ok(Steady {
        x,
        t,
        y,
        per_request,
        rate,
        steady_samples,
        dropped_share,
        shift,
        gc,
    })
}

/// Window floors of a memory signal in a garbage-collected process: windows are widened
/// until each holds a collection (the counter rose within it), so each floor is a post-GC
/// value. Plain [`floors`] when no counter was sampled or collections are too rare to give
/// [`MIN_WINDOWS`] windows.
pub fn gc_floors(x: &[f64], y: &[f64], gc: &[f64], k: usize) -> (Vec<f64>, Vec<f64>) {
    let n = x.len().min(y.len()).min(gc.len());
    let plain = || floors(x, y, k);
    if n < 2 {
        return plain();
    }
    let k = k.min(n / 2).max(1);
    let x0 = x[0];
    let width = (x[n - 1] - x0) / k as f64;
    let window = |i: usize| {
        if width > 0.0 {
            (((x[i] - x0) / width) as usize).min(k - 1)
        } else {
            0
        }
    };
    // Groups of whole windows, each closed once it holds a collection.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    let mut collected = false;
    for i in 1..n {
        collected |= gc[i] > gc[i - 1];
        let ends_window = i + 1 == n || window(i + 1) != window(i);
        if ends_window && collected {
            groups.push((start, i + 1));
            start = i + 1;
            collected = false;
        }
    }
    // A tail without a collection joins the group before it.
    if start < n {
        match groups.last_mut() {
            Some(last) => last.1 = n,
            None => return plain(),
        }
    }
    if groups.len() < MIN_WINDOWS {
        return plain();
    }
    groups
        .into_iter()
        .filter_map(|(a, b)| {
            (a..b)
                .min_by(|&i, &j| y[i].total_cmp(&y[j]))
                .map(|i| (x[i], y[i]))
        })
        .unzip()
}

/// Window floors: the minimum of each of up to `k` equal-work windows, at the x where it
/// occurred. Empty windows (uneven sampling) are skipped; windows hold at least two samples.
pub fn floors(x: &[f64], y: &[f64], k: usize) -> (Vec<f64>, Vec<f64>) {
    let n = x.len().min(y.len());
    let k = k.min(n / 2).max(1);
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    let x0 = x[0];
    let width = (x[n - 1] - x0) / k as f64;
    let mut best: Vec<Option<(f64, f64)>> = vec![None; k];
    for i in 0..n {
        let w = if width > 0.0 {
            (((x[i] - x0) / width) as usize).min(k - 1)
        } else {
            0
        };
        if best[w].is_none_or(|(_, v)| y[i] < v) {
            best[w] = Some((x[i], y[i]));
        }
    }
    best.into_iter().flatten().unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample(t: f64, cum: u64, v: Option<f64>) -> ProbeSample {
        let mut signals = BTreeMap::new();
        if let Some(v) = v {
            signals.insert("rss_bytes".to_string(), v);
        }
        ProbeSample {
            t,
            cumulative_completed: cum,
            signals,
            merged: None,
        }
    }

    #[test]
    fn floors_take_window_minimum() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let y = [5.0, 3.0, 6.0, 4.0, 9.0, 8.0, 7.0, 9.0, 1.0, 2.0];
        let (fx, fy) = floors(&x, &y, 5);
        assert_eq!(fy, vec![3.0, 4.0, 8.0, 7.0, 1.0]);
        assert_eq!(fx, vec![1.0, 3.0, 5.0, 6.0, 8.0]);
    }

    #[test]
    fn gc_floors_are_post_collection_values() {
        // A sawtooth of period 7 sampled every step: each collection drops to the live level,
        // which grows by 1 a step. Windows of 4 samples often miss the drop.
        let x: Vec<f64> = (0..70).map(f64::from).collect();
        let gc: Vec<f64> = (0..70).map(|i| f64::from(i / 7)).collect();
        let y: Vec<f64> = (0..70)
            .map(|i| f64::from(i) + 20.0 * f64::from(i % 7))
            .collect();
        let (fx, fy) = gc_floors(&x, &y, &gc, 17);
        assert!(fx.len() >= MIN_WINDOWS);
        // Every floor is a post-GC point (i % 7 == 0): on the live line y = x.
        for (a, b) in fx.iter().zip(&fy) {
            assert_eq!(a, b, "floor {b} at {a} is not post-GC");
        }
        // Without a collection anywhere: the plain floors.
        let none = vec![0.0; 70];
        assert_eq!(gc_floors(&x, &y, &none, 10), floors(&x, &y, 10));
    }

    #[test]
    fn absent_signal_is_reported_not_zero() {
        let s: Vec<ProbeSample> = (0..20).map(|i| sample(f64::from(i), 0, None)).collect();
        assert_eq!(
            prepare(&s, &[], "rss_bytes", 0.1),
            Err(SeriesError::Absent { samples: 20 })
        );
    }

    #[test]
    fn steady_spans_and_share_are_applied() {
        let s: Vec<ProbeSample> = (0..60)
            .map(|i| sample(f64::from(i), i as u64 * 2000, Some(5e7 + f64::from(i))))
            .collect();
        let st = prepare(&s, &[(10.0, 49.0)], "rss_bytes", 0.1).unwrap();
        assert!(st.per_request);
        assert_eq!(st.steady_samples, 40);
        assert_eq!(st.dropped_share, 4);
        assert_eq!(st.t[0], 14.0);
        assert!((st.rate.unwrap() - 2000.0).abs() < 1e-9);
    }

    #[test]
    fn no_request_counts_fall_back_to_time() {
        let s: Vec<ProbeSample> = (0..20)
            .map(|i| sample(f64::from(i), 0, Some(f64::from(i))))
            .collect();
        let st = prepare(&s, &[], "rss_bytes", 0.0).unwrap();
        assert!(!st.per_request && st.rate.is_none());
        assert_eq!(st.x, st.t);
    }
}
