//! Theil–Sen slope with Sen's (1968) confidence interval.
//!
//! The slope is the median of all pairwise slopes. The interval comes from the variance of the
//! Mann–Kendall statistic (Gilbert 1987, §16.5): with N ordered pairwise slopes and
//! C = z₁₋α/₂·√Var(S), the bounds are the M₁-th and (M₂+1)-th slopes, M₁ = (N − C)/2 and
//! M₂ = (N + C)/2, interpolated between ranks. Passing the autocorrelation-corrected variance
//! widens the interval accordingly.

use super::normal;

/// A robust slope with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TheilSen {
    /// Median pairwise slope.
    pub slope: f64,
    /// Lower confidence bound.
    pub ci_low: f64,
    /// Upper confidence bound.
    pub ci_high: f64,
    /// Number of pairwise slopes used.
    pub pairs: usize,
}

/// Sorted slopes of all pairs with distinct x.
pub fn pairwise_slopes(x: &[f64], y: &[f64]) -> Vec<f64> {
    let n = x.len().min(y.len());
    let mut out = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[j] - x[i];
            if dx != 0.0 {
                out.push((y[j] - y[i]) / dx);
            }
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

/// Median pairwise slope only (NaN when no pair has distinct x).
pub fn slope(x: &[f64], y: &[f64]) -> f64 {
    let s = pairwise_slopes(x, y);
    if s.is_empty() {
        return f64::NAN;
    }
    at_rank(&s, (s.len() as f64 + 1.0) / 2.0)
}

/// Theil–Sen slope and Sen's interval at `confidence` (two-sided), given Var(S) of the
/// Mann–Kendall statistic. `None` when no pair has distinct x.
pub fn estimate(x: &[f64], y: &[f64], var_s: f64, confidence: f64) -> Option<TheilSen> {
    let s = pairwise_slopes(x, y);
    if s.is_empty() {
        return None;
    }
    let n = s.len() as f64;
    let z = normal::quantile(1.0 - (1.0 - confidence) / 2.0);
    let c = z * var_s.max(0.0).sqrt();
    let m1 = (n - c) / 2.0;
    let m2 = (n + c) / 2.0;
    Some(TheilSen {
        slope: at_rank(&s, (n + 1.0) / 2.0),
        ci_low: at_rank(&s, m1),
        ci_high: at_rank(&s, m2 + 1.0),
        pairs: s.len(),
    })
}

/// Value at a 1-based fractional rank, interpolated, clamped to the ends.
fn at_rank(sorted: &[f64], rank: f64) -> f64 {
    let last = sorted.len() - 1;
    let pos = (rank - 1.0).clamp(0.0, last as f64);
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::mann_kendall;

    #[test]
    fn exact_line_gives_exact_slope_and_zero_width() {
        let x: Vec<f64> = (0..10).map(|i| f64::from(i) * 2000.0).collect();
        let y: Vec<f64> = x.iter().map(|v| 5.0e7 + 1024.0 * v).collect();
        let (_, var) = mann_kendall::s_and_var(&y);
        let ts = estimate(&x, &y, var, 0.95).unwrap();
        assert!((ts.slope - 1024.0).abs() < 1e-9);
        assert!((ts.ci_low - 1024.0).abs() < 1e-9);
        assert!((ts.ci_high - 1024.0).abs() < 1e-9);
        assert_eq!(ts.pairs, 45);
    }

    #[test]
    fn outlier_does_not_move_the_slope() {
        let x: Vec<f64> = (0..11).map(f64::from).collect();
        let mut y: Vec<f64> = x.iter().map(|v| 3.0 * v + 1.0).collect();
        y[5] = 1000.0;
        assert!((slope(&x, &y) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn interval_brackets_the_slope_on_noisy_data() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let noise = [0.3, -0.2, 0.5, -0.4, 0.1, 0.0, -0.3, 0.4, -0.1, 0.2];
        let y: Vec<f64> = x.iter().zip(noise).map(|(v, e)| 2.0 * v + e).collect();
        let (_, var) = mann_kendall::s_and_var(&y);
        let ts = estimate(&x, &y, var, 0.95).unwrap();
        assert!(ts.ci_low < ts.slope && ts.slope < ts.ci_high);
        assert!(ts.ci_low > 1.7 && ts.ci_high < 2.3, "{ts:?}");
        // A wider variance widens the interval.
        let wide = estimate(&x, &y, var * 4.0, 0.95).unwrap();
        assert!(wide.ci_low <= ts.ci_low && wide.ci_high >= ts.ci_high);
    }

    #[test]
    fn no_distinct_x_is_none() {
        assert!(estimate(&[1.0, 1.0], &[2.0, 3.0], 1.0, 0.95).is_none());
        assert!(slope(&[1.0], &[1.0]).is_nan());
    }
}
