//! Mann–Kendall trend test with tie correction and the Hamed–Rao (1998) autocorrelation
//! correction.
//!
//! Window floors of a memory series are autocorrelated (a GC cycle can span windows), which
//! makes the plain test overconfident. Hamed and Rao inflate the variance of S by n/n*, estimated
//! from the significant lags of the rank autocorrelation of the detrended series (detrended with
//! the Theil–Sen slope). We only ever inflate (factor ≥ 1): for a gate, under-stating the
//! variance means false failures, while over-stating it only costs a little power.

use super::normal;

/// Result of a Mann–Kendall test on one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannKendall {
    /// Number of points.
    pub n: usize,
    /// The statistic S: concordant minus discordant pairs.
    pub s: f64,
    /// Variance of S with tie correction (before the autocorrelation correction).
    pub var_s: f64,
    /// Hamed–Rao variance inflation n/n* applied (1 when no lag was significant).
    pub correction: f64,
    /// Standardised statistic (continuity corrected) using the corrected variance.
    pub z: f64,
    /// One-sided p-value for an upward trend, 1 − Φ(z).
    pub p_up: f64,
}

impl MannKendall {
    /// Variance of S after the autocorrelation correction.
    pub fn corrected_var(&self) -> f64 {
        self.var_s * self.correction
    }
}

/// S and its tie-corrected variance.
pub fn s_and_var(y: &[f64]) -> (f64, f64) {
    let n = y.len();
    let mut s = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            s += sign(y[j] - y[i]);
        }
    }
    let nf = n as f64;
    let mut var = nf * (nf - 1.0) * (2.0 * nf + 5.0);
    let mut sorted: Vec<f64> = y.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j] == sorted[i] {
            j += 1;
        }
        let t = (j - i) as f64;
        var -= t * (t - 1.0) * (2.0 * t + 5.0);
        i = j;
    }
    (s, var / 18.0)
}

/// Plain Mann–Kendall test (tie-corrected, no autocorrelation correction).
pub fn test(y: &[f64]) -> MannKendall {
    let (s, var_s) = s_and_var(y);
    finish(y.len(), s, var_s, 1.0)
}

/// Mann–Kendall with the Hamed–Rao correction; `x`/`slope` detrend the series first.
pub fn test_hamed_rao(x: &[f64], y: &[f64], slope: f64) -> MannKendall {
    let (s, var_s) = s_and_var(y);
    let correction = hamed_rao_factor(x, y, slope);
    finish(y.len(), s, var_s, correction)
}

fn finish(n: usize, s: f64, var_s: f64, correction: f64) -> MannKendall {
    let var = var_s * correction;
    let z = if var <= 0.0 {
        0.0
    } else if s > 0.0 {
        (s - 1.0) / var.sqrt()
    } else if s < 0.0 {
        (s + 1.0) / var.sqrt()
    } else {
        0.0
    };
    MannKendall {
        n,
        s,
        var_s,
        correction,
        z,
        p_up: 1.0 - normal::cdf(z),
    }
}

/// Hamed–Rao variance inflation n/n*, clamped to ≥ 1; lags significant at 5 % only.
pub fn hamed_rao_factor(x: &[f64], y: &[f64], slope: f64) -> f64 {
    let n = y.len();
    if n < 4 || x.len() != n {
        return 1.0;
    }
    let detrended: Vec<f64> = x.iter().zip(y).map(|(xi, yi)| yi - slope * xi).collect();
    let r = ranks(&detrended);
    let mean = r.iter().sum::<f64>() / n as f64;
    let denom: f64 = r.iter().map(|v| (v - mean).powi(2)).sum();
    if denom <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let bound = normal::quantile(0.975) / nf.sqrt();
    let mut sum = 0.0;
    for k in 1..n - 2 {
        let num: f64 = (0..n - k).map(|i| (r[i] - mean) * (r[i + k] - mean)).sum();
        let rho = num / denom;
        if rho.abs() > bound {
            let m = (n - k) as f64;
            sum += m * (m - 1.0) * (m - 2.0) * rho;
        }
    }
    let factor = 1.0 + 2.0 / (nf * (nf - 1.0) * (nf - 2.0)) * sum;
    factor.max(1.0)
}

/// Ranks from 1, ties given their average rank.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && v[idx[j]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0;
        for &k in &idx[i..j] {
            out[k] = avg;
        }
        i = j;
    }
    out
}

fn sign(d: f64) -> f64 {
    if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotone_series_of_five() {
        let mk = test(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(mk.s, 10.0);
        assert!((mk.var_s - 50.0 / 3.0).abs() < 1e-12);
        assert!((mk.z - 9.0 / (50.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((mk.p_up - 0.013_7).abs() < 1e-3);
    }

    #[test]
    fn ties_reduce_the_variance() {
        // Pairs: (1,1) tie, five increases → S = 5; one tie group of 2: var = (156 − 18)/18.
        let mk = test(&[1.0, 1.0, 2.0, 3.0]);
        assert_eq!(mk.s, 5.0);
        assert!((mk.var_s - 138.0 / 18.0).abs() < 1e-12);
    }

    #[test]
    fn textbook_series() {
        // Hipel & McLeod style check: S counted by hand.
        let y = [10.0, 12.0, 11.0, 14.0, 13.0, 15.0, 16.0, 14.0, 18.0, 17.0];
        let mk = test(&y);
        // 45 pairs; discordant: (12,11) (14,13) (15,14) (16,14) (18,17) = 5, ties: (14,14) = 1.
        assert_eq!(mk.s, 45.0 - 1.0 - 2.0 * 5.0);
        assert!(mk.p_up < 0.01);
        let flat = test(&[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0]);
        assert!(flat.p_up > 0.05);
    }

    #[test]
    fn decreasing_series_has_large_p_up() {
        let mk = test(&[5.0, 4.0, 3.0, 2.0, 1.0]);
        assert!(mk.z < 0.0 && mk.p_up > 0.95);
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn hamed_rao_inflates_for_autocorrelated_residuals() {
        // Slow oscillation around a line: strongly positively autocorrelated residuals.
        let x: Vec<f64> = (0..20).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| v + 5.0 * (v / 3.0).sin()).collect();
        assert!(hamed_rao_factor(&x, &y, 1.0) > 1.0);
        // Alternating residuals (negative lag-1) never shrink the variance.
        let alt: Vec<f64> = x
            .iter()
            .map(|v| if *v as i64 % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert_eq!(hamed_rao_factor(&x, &alt, 0.0), 1.0);
    }
}
