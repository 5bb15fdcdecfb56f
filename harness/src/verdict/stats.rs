//! The statistics behind the verdict: Mann–Kendall trend test, Theil–Sen slope with Sen's
//! confidence interval, and the normal distribution they lean on.

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 via erf; |error| < 1.5e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs() / std::f64::consts::SQRT_2);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-(z * z) / 2.0).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

#[allow(clippy::excessive_precision)] // the published coefficients, kept as published
/// Standard normal quantile (Acklam's rational approximation; relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.383577518672690e+02,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Result of a Mann–Kendall test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannKendall {
    /// The S statistic (concordant minus discordant pairs).
    pub s: f64,
    /// Variance of S, tie- and autocorrelation-corrected.
    pub var_s: f64,
    /// Continuity-corrected z score.
    pub z: f64,
    /// One-sided p-value for an increasing trend.
    pub p_increasing: f64,
}

/// Mann–Kendall test on `y` in order, with the tie correction and the Yue–Wang variance
/// correction for serial correlation (lag autocorrelations of the detrended ranks that are
/// significant at 5 % inflate the variance).
pub fn mann_kendall(y: &[f64]) -> MannKendall {
    let n = y.len();
    let mut s = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            s += (y[j] - y[i]).signum() * f64::from(u8::from(y[j] != y[i]));
        }
    }
    let nf = n as f64;
    let mut var = nf * (nf - 1.0) * (2.0 * nf + 5.0);
    let mut sorted = y.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && sorted[j + 1] == sorted[i] {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        var -= t * (t - 1.0) * (2.0 * t + 5.0);
        i = j + 1;
    }
    var /= 18.0;
    var *= autocorrelation_factor(y);
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
        s,
        var_s: var,
        z,
        p_increasing: 1.0 - normal_cdf(z),
    }
}

/// Yue–Wang factor n/n*: 1 + 2 Σ (1 - k/n) r_k over significant lag autocorrelations of the
/// series detrended with its Theil–Sen slope.
fn autocorrelation_factor(y: &[f64]) -> f64 {
    let n = y.len();
    if n < 8 {
        return 1.0;
    }
    let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let (slope, _) = theil_sen(&x, y);
    let d: Vec<f64> = y
        .iter()
        .enumerate()
        .map(|(i, v)| v - slope * i as f64)
        .collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    let c0: f64 = d.iter().map(|v| (v - mean).powi(2)).sum();
    if c0 <= 0.0 {
        return 1.0;
    }
    let bound = 1.96 / (n as f64).sqrt();
    let mut f = 1.0;
    for k in 1..n / 3 {
        let ck: f64 = (0..n - k).map(|i| (d[i] - mean) * (d[i + k] - mean)).sum();
        let r = ck / c0;
        if r.abs() > bound {
            f += 2.0 * (1.0 - k as f64 / n as f64) * r;
        }
    }
    // Negative correlation would shrink the variance and overstate significance: never below 1.
    f.max(1.0)
}

/// Theil–Sen slope and intercept (median of pairwise slopes; median of residual intercepts).
pub fn theil_sen(x: &[f64], y: &[f64]) -> (f64, f64) {
    let slopes = pairwise_slopes(x, y);
    let m = median(&slopes).unwrap_or(0.0);
    let intercepts: Vec<f64> = x.iter().zip(y).map(|(a, b)| b - m * a).collect();
    (m, median(&intercepts).unwrap_or(0.0))
}

/// Sorted slopes of every pair with distinct x.
pub fn pairwise_slopes(x: &[f64], y: &[f64]) -> Vec<f64> {
    let n = x.len().min(y.len());
    let mut v = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[j] - x[i];
            if dx.abs() > 0.0 {
                v.push((y[j] - y[i]) / dx);
            }
        }
    }
    v.sort_by(f64::total_cmp);
    v
}

/// Sen's confidence interval for the Theil–Sen slope at `confidence` (e.g. 0.95), from the
/// Mann–Kendall variance: the slopes ranked (N - C)/2 and (N + C)/2, C = z·sqrt(Var S).
pub fn sen_interval(x: &[f64], y: &[f64], confidence: f64, var_s: f64) -> (f64, f64) {
    let slopes = pairwise_slopes(x, y);
    let n = slopes.len();
    if n == 0 {
        return (f64::NEG_INFINITY, f64::INFINITY);
    }
    let c = normal_quantile(1.0 - (1.0 - confidence) / 2.0) * var_s.max(0.0).sqrt();
    let lo = ((n as f64 - c) / 2.0).floor();
    let hi = ((n as f64 + c) / 2.0).ceil();
    let lo = if lo < 1.0 {
        f64::NEG_INFINITY
    } else {
        slopes[lo as usize - 1]
    };
    let hi = if hi as usize >= n {
        f64::INFINITY
    } else {
        slopes[hi as usize]
    };
    (lo, hi)
}

/// Median of a slice (sorted copy).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len().is_multiple_of(2) {
        (s[m - 1] + s[m]) / 2.0
    } else {
        s[m]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_functions() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!((normal_quantile(0.975) - 1.959964).abs() < 1e-5);
        assert!((normal_quantile(0.05) + 1.644854).abs() < 1e-5);
        for p in [0.001, 0.2, 0.5, 0.9, 0.999] {
            assert!((normal_cdf(normal_quantile(p)) - p).abs() < 1e-6, "{p}");
        }
    }

    #[test]
    fn mann_kendall_textbook() {
        // Strictly increasing, n = 10: S = 45, Var = 10·9·25/18 = 125.
        let y: Vec<f64> = (0..10).map(f64::from).collect();
        let mk = mann_kendall(&y);
        assert_eq!(mk.s, 45.0);
        assert!(mk.var_s >= 125.0 - 1e-9);
        assert!(mk.p_increasing < 0.001);
        // Ties reduce the variance: [1,1,2,2] has S = 4, Var = (4·3·13 - 2·(2·1·9))/18 = 6.667.
        let mk = mann_kendall(&[1.0, 1.0, 2.0, 2.0]);
        assert_eq!(mk.s, 4.0);
        assert!((mk.var_s - 120.0 / 18.0).abs() < 1e-9);
        // No trend.
        let mk = mann_kendall(&[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0]);
        assert!(mk.p_increasing > 0.05);
    }

    #[test]
    fn theil_sen_exact_and_robust() {
        let x: Vec<f64> = (0..20).map(f64::from).collect();
        let mut y: Vec<f64> = x.iter().map(|v| 3.0 * v + 7.0).collect();
        assert_eq!(theil_sen(&x, &y), (3.0, 7.0));
        y[5] = 1e9; // one wild outlier barely moves it
        let (m, _) = theil_sen(&x, &y);
        assert!((m - 3.0).abs() < 0.5);
        let mk = mann_kendall(&y);
        let (lo, hi) = sen_interval(&x, &y, 0.95, mk.var_s);
        assert!(lo <= 3.0 && 3.0 <= hi, "{lo} {hi}");
    }
}
