//! One signal's growth over the steady phase: equal-work windows, their floors, trend and slope.

use serde::{Deserialize, Serialize};

use super::stats::{mann_kendall, sen_interval, theil_sen};
use crate::record::ProbeSample;

/// A signal's slope over the steady phase, with the evidence behind it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SlopeEstimate {
    /// Units per second (Theil–Sen over the floors against time).
    pub per_second: f64,
    /// Units per minute.
    pub per_minute: f64,
    /// Units per completed request (None without request counts, e.g. a CSV).
    pub per_request: Option<f64>,
    /// Confidence interval of the per-second slope.
    pub ci_per_second: (f64, f64),
    /// Confidence interval of the per-request slope.
    pub ci_per_request: Option<(f64, f64)>,
    /// Mann–Kendall z on the floors.
    pub mk_z: f64,
    /// One-sided p-value of an increasing trend.
    pub mk_p: f64,
    /// Windows whose floor rose above the previous one.
    pub windows_rising: usize,
    /// Windows compared.
    pub windows_total: usize,
    /// Growth rate of the second half of the floors relative to the first half.
    pub second_half_ratio: f64,
    /// The second half's per-second slope interval (plateau evidence).
    pub ci_second_half_per_second: (f64, f64),
    /// Per-request slope interval of the second half.
    pub ci_second_half_per_request: Option<(f64, f64)>,
    /// Floor values, one per window (for reports).
    pub floors: Vec<f64>,
    /// Samples used (after warm-up was dropped).
    pub samples: usize,
    /// First and last value used.
    pub first_last: (f64, f64),
}

/// Why a slope could not be estimated.
#[derive(Debug, Clone, PartialEq)]
pub enum NoSlope {
    /// The signal never appeared in the samples.
    Absent,
    /// Too few samples in the steady phase.
    TooFew(usize),
}

/// A point of one signal.
#[derive(Debug, Clone, Copy)]
struct Point {
    t: f64,
    work: f64,
    v: f64,
}

/// Estimates the slope of `signal` over `steady` spans, dropping `warmup_share` of the steady
/// work first, using `windows` equal-work windows.
pub fn estimate(
    samples: &[ProbeSample],
    signal: &str,
    steady: &[(f64, f64)],
    warmup_share: f64,
    windows: usize,
    confidence: f64,
) -> Result<SlopeEstimate, NoSlope> {
    let in_steady =
        |t: f64| steady.is_empty() || steady.iter().any(|(a, b)| t >= *a && t <= *b + 1e-9);
    let mut pts: Vec<Point> = samples
        .iter()
        .filter(|s| in_steady(s.t))
        .filter_map(|s| {
            s.signals
                .get(signal)
                .filter(|v| v.is_finite())
                .map(|v| Point {
                    t: s.t,
                    work: s.cumulative_completed as f64,
                    v: *v,
                })
        })
        .collect();
    if pts.is_empty() {
        return Err(if samples.iter().any(|s| s.signals.contains_key(signal)) {
            NoSlope::TooFew(0)
        } else {
            NoSlope::Absent
        });
    }
    let has_work = pts.last().map(|p| p.work).unwrap_or(0.0) > pts[0].work;
    // Work done is the x-axis when there is any; time otherwise (a CSV from elsewhere).
    let x = |p: &Point| if has_work { p.work } else { p.t };
    let (x0, x1) = (x(&pts[0]), x(&pts[pts.len() - 1]));
    let cut = x0 + (x1 - x0) * warmup_share;
    pts.retain(|p| x(p) >= cut);
    if pts.len() < 8 {
        return Err(NoSlope::TooFew(pts.len()));
    }
    let k = windows.min(pts.len() / 2).max(4);
    let (lo, hi) = (x(&pts[0]), x(&pts[pts.len() - 1]));
    let width = ((hi - lo) / k as f64).max(f64::MIN_POSITIVE);
    // Each window's floor (its minimum) at the window's mean time and work.
    let mut floors: Vec<(f64, f64, f64)> = Vec::with_capacity(k);
    for w in 0..k {
        let (a, b) = (lo + width * w as f64, lo + width * (w + 1) as f64);
        let in_w: Vec<&Point> = pts
            .iter()
            .filter(|p| x(p) >= a && (x(p) < b || (w + 1 == k && x(p) <= b)))
            .collect();
        if in_w.is_empty() {
            continue;
        }
        let floor = in_w.iter().map(|p| p.v).fold(f64::INFINITY, f64::min);
        let n = in_w.len() as f64;
        let t = in_w.iter().map(|p| p.t).sum::<f64>() / n;
        let work = in_w.iter().map(|p| p.work).sum::<f64>() / n;
        floors.push((t, work, floor));
    }
    if floors.len() < 4 {
        return Err(NoSlope::TooFew(pts.len()));
    }
    let ts: Vec<f64> = floors.iter().map(|f| f.0).collect();
    let ws: Vec<f64> = floors.iter().map(|f| f.1).collect();
    let vs: Vec<f64> = floors.iter().map(|f| f.2).collect();
    let mk = mann_kendall(&vs);
    let (per_second, _) = theil_sen(&ts, &vs);
    let ci_per_second = sen_interval(&ts, &vs, confidence, mk.var_s);
    let (per_request, ci_per_request) = if has_work {
        let (m, _) = theil_sen(&ws, &vs);
        (Some(m), Some(sen_interval(&ws, &vs, confidence, mk.var_s)))
    } else {
        (None, None)
    };
    let rising = vs.windows(2).filter(|w| w[1] > w[0]).count();
    // Second half against first half: a filled cache stops growing, a leak does not.
    let h = vs.len() / 2;
    let half = |r: std::ops::Range<usize>, xs: &[f64]| theil_sen(&xs[r.clone()], &vs[r]);
    let (first_slope, _) = half(0..h, &ts);
    let (second_slope, _) = half(h..vs.len(), &ts);
    // The second half's interval comes from its raw samples: five floors are too few for a
    // finite 95 % interval, and the plateau call needs a bounded one.
    let mid = (lo + hi) / 2.0;
    let late: Vec<&Point> = pts.iter().filter(|p| x(p) >= mid).collect();
    let late_v: Vec<f64> = late.iter().map(|p| p.v).collect();
    let late_t: Vec<f64> = late.iter().map(|p| p.t).collect();
    let late_w: Vec<f64> = late.iter().map(|p| p.work).collect();
    let late_mk = mann_kendall(&late_v);
    let ci_second = sen_interval(&late_t, &late_v, confidence, late_mk.var_s);
    let ci_second_req = has_work.then(|| sen_interval(&late_w, &late_v, confidence, late_mk.var_s));
    let second_half_ratio = if first_slope > 0.0 {
        second_slope / first_slope
    } else if second_slope > 0.0 {
        1.0
    } else {
        0.0
    };
    Ok(SlopeEstimate {
        per_second,
        per_minute: per_second * 60.0,
        per_request,
        ci_per_second,
        ci_per_request,
        mk_z: mk.z,
        mk_p: mk.p_increasing,
        windows_rising: rising,
        windows_total: vs.len() - 1,
        second_half_ratio,
        ci_second_half_per_second: ci_second,
        ci_second_half_per_request: ci_second_req,
        floors: vs,
        samples: pts.len(),
        first_last: (pts[0].v, pts[pts.len() - 1].v),
    })
}
