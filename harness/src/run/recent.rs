//! What a rolling verdict judges: the recent probe samples and latency, held in bounded memory
//! however long the run goes (a leak detector that leaks is worthless).

use std::collections::VecDeque;

use hdrhistogram::Histogram;

use crate::load::stats;
use crate::record::{ProbeSample, Window};
use crate::scenario::plan::Horizon;

/// Most samples kept; past this the older half is merged pairwise into floors (the minimum
/// of each signal), which is what the verdict judges anyway.
pub const MAX_SAMPLES: usize = 512;

/// Most evaluation periods kept; past this the two oldest are merged (their histograms add).
pub const MAX_PERIODS: usize = 64;

/// Latency and counts of one evaluation period, its histogram kept encoded (a few KB).
#[derive(Debug, Clone)]
struct Period {
    end: f64,
    completed: u64,
    failed: u64,
    duration: f64,
    corrected: String,
}

/// Recent samples and per-period latency of a run.
#[derive(Debug)]
pub struct Recent {
    /// The signals a rolling verdict judges (the rest of each sample is not kept).
    keep: Vec<String>,
    samples: VecDeque<ProbeSample>,
    periods: VecDeque<Period>,
    /// Corrected latency of the windows since the last evaluation.
    open: Option<Histogram<u64>>,
    open_completed: u64,
    open_failed: u64,
    open_duration: f64,
}

impl Default for Recent {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Recent {
    /// Empty; only the signals in `keep` are kept from each sample (all when it is empty).
    pub fn new(keep: Vec<String>) -> Self {
        Self {
            keep,
            samples: VecDeque::new(),
            periods: VecDeque::new(),
            open: None,
            open_completed: 0,
            open_failed: 0,
            open_duration: 0.0,
        }
    }

    /// Adds a probe sample (the baseline, t < 0, is not part of any trend and is skipped).
    pub fn push_sample(&mut self, s: &ProbeSample) {
        if s.t < 0.0 {
            return;
        }
        let mut s = s.clone();
        if !self.keep.is_empty() {
            s.signals.retain(|k, _| self.keep.iter().any(|w| w == k));
        }
        self.samples.push_back(s);
        if self.samples.len() > MAX_SAMPLES {
            self.thin();
        }
    }

    /// Adds a closed load window's latency to the open period.
    pub fn push_window(&mut self, w: &Window) {
        self.open_completed += w.completed;
        self.open_failed += w.failed();
        self.open_duration += (w.end - w.start).max(0.0);
        if let Some(h) = stats::decode(&w.corrected_hist) {
            match &mut self.open {
                Some(open) => {
                    let _ = open.add(&h);
                }
                None => self.open = Some(h),
            }
        }
    }

    /// Closes the open period at `t`: returns its completed-per-second rate and p95/p99 (ms).
    pub fn close_period(&mut self, t: f64) -> (Option<f64>, Option<f64>, Option<f64>) {
        let h = self.open.take();
        let q = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let (p95, p99) = match &h {
            Some(h) if !h.is_empty() => (Some(q(h, 0.95)), Some(q(h, 0.99))),
            _ => (None, None),
        };
        let rate =
            (self.open_duration > 0.0).then(|| self.open_completed as f64 / self.open_duration);
        if let Some(h) = h {
            self.periods.push_back(Period {
                end: t,
                completed: self.open_completed,
                failed: self.open_failed,
                duration: self.open_duration,
                corrected: stats::encode(&h),
            });
        }
        self.open_completed = 0;
        self.open_failed = 0;
        self.open_duration = 0.0;
        if self.periods.len() > MAX_PERIODS {
            self.merge_oldest_periods();
        }
        (rate, p95, p99)
    }

    /// Merges the two oldest periods into one: counts add, histograms add exactly.
    fn merge_oldest_periods(&mut self) {
        let (Some(a), Some(b)) = (self.periods.pop_front(), self.periods.pop_front()) else {
            return;
        };
        let merged = match (stats::decode(&a.corrected), stats::decode(&b.corrected)) {
            (Some(mut x), Some(y)) => {
                let _ = x.add(&y);
                stats::encode(&x)
            }
            (Some(_), None) => a.corrected.clone(),
            (None, _) => b.corrected.clone(),
        };
        self.periods.push_front(Period {
            end: b.end,
            completed: a.completed + b.completed,
            failed: a.failed + b.failed,
            duration: a.duration + b.duration,
            corrected: merged,
        });
    }

    /// Drops what lies before `start` (seconds since load start).
    pub fn prune(&mut self, start: f64) {
        while self.samples.front().is_some_and(|s| s.t < start) {
            self.samples.pop_front();
        }
        while self.periods.front().is_some_and(|p| p.end < start) {
            self.periods.pop_front();
        }
    }

    /// The samples kept, oldest first.
    pub fn samples(&self) -> impl Iterator<Item = &ProbeSample> {
        self.samples.iter()
    }

    /// Corrected latency over the periods that ended at or after `start`: p95, p99 (ms) and
    /// the share of requests, merged exactly from the periods' histograms.
    pub fn latency_since(&self, start: f64) -> Option<(f64, f64)> {
        let mut total: Option<Histogram<u64>> = None;
        for p in self.periods.iter().filter(|p| p.end >= start) {
            let Some(h) = stats::decode(&p.corrected) else {
                continue;
            };
            match &mut total {
                Some(t) => {
                    let _ = t.add(&h);
                }
                None => total = Some(h),
            }
        }
        let h = total.filter(|h| !h.is_empty())?;
        Some((
            h.value_at_quantile(0.95) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
        ))
    }

    /// Completed requests and seconds over the periods that ended at or after `start`.
    pub fn work_since(&self, start: f64) -> (u64, f64) {
        self.periods
            .iter()
            .filter(|p| p.end >= start)
            .fold((0, 0.0), |(c, d), p| (c + p.completed, d + p.duration))
    }

    /// Failed requests over the periods that ended at or after `start`.
    pub fn failed_since(&self, start: f64) -> u64 {
        self.periods
            .iter()
            .filter(|p| p.end >= start)
            .map(|p| p.failed)
            .sum()
    }

    /// Where `horizon` starts, given the earliest time it may reach back to.
    pub fn horizon_start(&self, horizon: Horizon, now: f64, earliest: f64) -> f64 {
        match horizon {
            Horizon::Whole => earliest,
            Horizon::Time { span } => (now - span.as_secs_f64()).max(earliest),
            Horizon::Requests { count } => {
                let latest = self.samples.back().map_or(0, |s| s.cumulative_completed);
                let from = latest.saturating_sub(count);
                self.samples
                    .iter()
                    .find(|s| s.cumulative_completed >= from)
                    .map_or(earliest, |s| s.t.max(earliest))
            }
        }
    }

    /// Merges the older half pairwise: each pair becomes one sample at the later time with
    /// each signal's minimum.
    fn thin(&mut self) {
        let half = self.samples.len() / 2;
        let older: Vec<ProbeSample> = self.samples.drain(..half).collect();
        let mut merged = Vec::with_capacity(half / 2 + 1);
        for pair in older.chunks(2) {
            let mut m = pair[pair.len() - 1].clone();
            for s in &pair[..pair.len() - 1] {
                for (k, v) in &s.signals {
                    let e = m.signals.entry(k.clone()).or_insert(*v);
                    if *v < *e {
                        *e = *v;
                    }
                }
            }
            let n: u32 = pair.iter().map(|s| s.merged.unwrap_or(1)).sum();
            m.merged = Some(n);
            merged.push(m);
        }
        for m in merged.into_iter().rev() {
            self.samples.push_front(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample(t: f64, v: f64) -> ProbeSample {
        ProbeSample {
            t,
            cumulative_completed: (t * 100.0) as u64,
            signals: BTreeMap::from([("rss_bytes".to_string(), v)]),
            merged: None,
        }
    }

    #[test]
    fn memory_stays_bounded_and_floors_survive() {
        let mut r = Recent::new(Vec::new());
        for i in 0..50_000 {
            // A sawtooth whose floor is 100 everywhere.
            r.push_sample(&sample(f64::from(i), 100.0 + f64::from(i % 7)));
        }
        assert!(r.samples.len() <= MAX_SAMPLES);
        assert!(r.samples().all(|s| s.signals["rss_bytes"] >= 100.0));
        let covered: u32 = r.samples().map(|s| s.merged.unwrap_or(1)).sum();
        assert_eq!(covered, 50_000, "every sample is accounted for");
        assert!(r.samples().zip(r.samples().skip(1)).all(|(a, b)| a.t < b.t));
    }

    #[test]
    fn horizons() {
        let mut r = Recent::new(vec!["rss_bytes".into()]);
        for i in 0..100 {
            r.push_sample(&sample(f64::from(i), 1.0));
        }
        assert_eq!(r.horizon_start(Horizon::Whole, 99.0, 5.0), 5.0);
        let span = std::time::Duration::from_secs(30);
        assert_eq!(r.horizon_start(Horizon::Time { span }, 99.0, 5.0), 69.0);
        assert_eq!(
            r.horizon_start(Horizon::Requests { count: 1000 }, 99.0, 0.0),
            89.0
        );
        r.prune(50.0);
        assert_eq!(r.samples().next().unwrap().t, 50.0);
    }

    #[test]
    fn periods_merge_latency_exactly() {
        let mut r = Recent::new(Vec::new());
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in 1..=100u64 {
            h.record(v * 1000).unwrap();
        }
        let w = Window {
            start: 0.0,
            end: 1.0,
            completed: 100,
            corrected_hist: stats::encode(&h),
            ..Default::default()
        };
        r.push_window(&w);
        let (rate, p95, p99) = r.close_period(1.0);
        assert_eq!(rate, Some(100.0));
        assert!((p95.unwrap() - 95.0).abs() < 0.1 && (p99.unwrap() - 99.0).abs() < 0.1);
        r.push_window(&w);
        r.close_period(2.0);
        assert_eq!(r.work_since(0.0), (200, 2.0));
        let (p95, _) = r.latency_since(0.0).unwrap();
        assert!((p95 - 95.0).abs() < 0.1);
        assert!(r.latency_since(5.0).is_none());
        // However many periods pass, they stay few, and their counts add up.
        for i in 3..200 {
            r.push_window(&w);
            r.close_period(f64::from(i));
        }
        assert!(r.periods.len() <= MAX_PERIODS + 1);
        assert_eq!(r.work_since(0.0).0, 199 * 100);
    }
}
