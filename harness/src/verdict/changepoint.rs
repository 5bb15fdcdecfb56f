//! Warm-up level-shift detection: does a step early in the series explain it much better than a
//! straight line?
//!
//! Model A is a line y = a + b·x; model B adds a step at sample c: y = a + b·x + d·[i ≥ c].
//! A leak (a line) gains nothing from the step; a warm-up jump or a cache that filled early
//! does. We search c over the first half (never drop more than half the steady phase) and
//! accept the shift when the F statistic of B over A exceeds [`F_CRITICAL`], a deliberately high
//! bar because residuals of memory series are autocorrelated (GC cycles) and inflate F.
//!
//! Warm-up is at the start: a shift counts as warm-up only within the first
//! [`WARMUP_SHARE`] of the work, or when the signal is flat on both sides of it (one step, then
//! nothing). A later step in a growing signal is how a Go heap or a JVM's committed heap grows:
//! it is evidence, and stays in the series.

/// F statistic a step must exceed to count as a warm-up level shift.
pub const F_CRITICAL: f64 = 25.0;

/// Share of the work (from the start of the judged series) in which a level shift counts as
/// warm-up whatever surrounds it.
pub const WARMUP_SHARE: f64 = 0.2;

/// Each side of a later shift may rise by at most this share of the step to count as flat.
const FLAT_SHARE: f64 = 0.25;

/// Minimum number of points for the search to run.
const MIN_POINTS: usize = 10;

/// A detected level shift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelShift {
    /// Index of the first point after the shift.
    pub index: usize,
    /// Size of the step (in y units).
    pub step: f64,
    /// F statistic of step-plus-line over line.
    pub f: f64,
}

/// The strongest early level shift, if one passes the F test.
pub fn early_level_shift(x: &[f64], y: &[f64]) -> Option<LevelShift> {
    let n = x.len().min(y.len());
    if n < MIN_POINTS {
        return None;
    }
    // Centre and scale for numerical stability (x can be millions of requests, y gigabytes).
    let (mx, sx) = centre_scale(&x[..n]);
    let (my, sy) = centre_scale(&y[..n]);
    let xs: Vec<f64> = x[..n].iter().map(|v| (v - mx) / sx).collect();
    let ys: Vec<f64> = y[..n].iter().map(|v| (v - my) / sy).collect();
    let rss_line = line_rss(&xs, &ys)?;
    let totals = Sums::of(&xs, &ys);
    // Suffix sums of x and y from index c on, so each candidate costs O(1).
    let mut best: Option<(usize, f64, f64)> = None;
    let mut sx_s: f64 = xs.iter().sum();
    let mut sy_s: f64 = ys.iter().sum();
    for c in 0..=n / 2 {
        if c >= 2
            && let Some((rss, step)) = step_line_rss(&totals, n - c, sx_s, sy_s)
            && best.is_none_or(|(_, r, _)| rss < r)
        {
            best = Some((c, rss, step));
        }
        sx_s -= xs[c];
        sy_s -= ys[c];
    }
    let (index, rss_step, step) = best?;
    let dof = (n - 3) as f64;
    let f = if rss_step <= f64::EPSILON * rss_line.max(1.0) {
        if rss_line > 1e-12 { f64::MAX } else { 0.0 }
    } else {
        (rss_line - rss_step) / (rss_step / dof)
    };
    if f <= F_CRITICAL {
        return None;
    }
    let early = x[index] - x[0] <= WARMUP_SHARE * (x[n - 1] - x[0]);
    let shift = LevelShift {
        index,
        step: step * sy,
        f,
    };
    (early || flat_both_sides(&x[..n], &y[..n], shift)).then_some(shift)
}

/// One step and nothing else: each side rises by less than [`FLAT_SHARE`] of the step.
fn flat_both_sides(x: &[f64], y: &[f64], shift: LevelShift) -> bool {
    let flat = |xs: &[f64], ys: &[f64]| {
        if xs.len() < 3 {
            return false;
        }
        let slope = super::theil_sen::slope(xs, ys);
        let span = xs[xs.len() - 1] - xs[0];
        slope.is_finite() && (slope * span).abs() < FLAT_SHARE * shift.step.abs()
    };
    let c = shift.index;
    flat(&x[..c], &y[..c]) && flat(&x[c..], &y[c..])
}

fn centre_scale(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n).sqrt();
    (mean, if sd > 0.0 { sd } else { 1.0 })
}

/// Residual sum of squares of the least-squares line.
fn line_rss(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let sxx: f64 = x.iter().map(|v| (v - mx).powi(2)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let syy: f64 = y.iter().map(|v| (v - my).powi(2)).sum();
    if sxx <= 0.0 {
        return Some(syy);
    }
    Some((syy - sxy * sxy / sxx).max(0.0))
}

/// Sums over the whole series used by the normal equations.
struct Sums {
    n: f64,
    sx: f64,
    sxx: f64,
    sy: f64,
    sxy: f64,
    syy: f64,
}

impl Sums {
    fn of(x: &[f64], y: &[f64]) -> Self {
        Sums {
            n: x.len() as f64,
            sx: x.iter().sum(),
            sxx: x.iter().map(|v| v * v).sum(),
            sy: y.iter().sum(),
            sxy: x.iter().zip(y).map(|(a, b)| a * b).sum(),
            syy: y.iter().map(|v| v * v).sum(),
        }
    }
}

/// RSS and step size of line plus a step covering the last `m` points (suffix sums given).
fn step_line_rss(t: &Sums, m: usize, sx_s: f64, sy_s: f64) -> Option<(f64, f64)> {
    // Columns: 1, x, s (s = 1 on the last m points). For least squares RSS = y'y − β'X'y.
    let m = m as f64;
    let a = [[t.n, t.sx, m], [t.sx, t.sxx, sx_s], [m, sx_s, m]];
    let b = [t.sy, t.sxy, sy_s];
    let beta = solve3(a, b)?;
    let rss = t.syy - (beta[0] * b[0] + beta[1] * b[1] + beta[2] * b[2]);
    Some((rss.max(0.0), beta[2]))
}

/// Cramer's rule; `None` when the system is singular.
fn solve3(a: [[f64; 3]; 3], b: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(a);
    if d.abs() < 1e-12 {
        return None;
    }
    let mut out = [0.0; 3];
    for (k, slot) in out.iter_mut().enumerate() {
        let mut m = a;
        for row in 0..3 {
            m[row][k] = b[row];
        }
        *slot = det(m) / d;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(i: usize) -> f64 {
        // Deterministic pseudo-noise in [-0.5, 0.5).
        ((i as f64 * 12.9898).sin() * 43_758.545_3).fract()
    }

    #[test]
    fn finds_an_early_step() {
        let x: Vec<f64> = (0..40).map(|i| i as f64 * 2000.0).collect();
        let y: Vec<f64> = (0..40)
            .map(|i| 50e6 + if i >= 8 { 20e6 } else { 0.0 } + 3e5 * noise(i))
            .collect();
        let shift = early_level_shift(&x, &y).expect("step found");
        assert_eq!(shift.index, 8);
        assert!((shift.step - 20e6).abs() < 1e6);
    }

    #[test]
    fn a_line_has_no_step() {
        let x: Vec<f64> = (0..40).map(|i| i as f64 * 2000.0).collect();
        let y: Vec<f64> = (0..40)
            .map(|i| 50e6 + 1024.0 * x[i] + 3e5 * noise(i))
            .collect();
        assert!(early_level_shift(&x, &y).is_none());
    }

    #[test]
    fn a_late_step_is_warm_up_only_when_flat_on_both_sides() {
        let x: Vec<f64> = (0..40).map(|i| i as f64 * 2000.0).collect();
        // A step at 40 % of the work, flat before and after: one-time growth, warm-up.
        let flat_step: Vec<f64> = (0..40)
            .map(|i| 50e6 + if i >= 16 { 20e6 } else { 0.0 } + 3e5 * noise(i))
            .collect();
        assert_eq!(early_level_shift(&x, &flat_step).map(|s| s.index), Some(16));
        // The same step inside a leak (a Go heap-goal step): evidence, not warm-up.
        let leak_step: Vec<f64> = (0..40)
            .map(|i| 50e6 + 400.0 * x[i] + if i >= 16 { 20e6 } else { 0.0 } + 3e5 * noise(i))
            .collect();
        assert!(early_level_shift(&x, &leak_step).is_none());
        // Within the first fifth of the work, a step in a leak is still warm-up.
        let early_step: Vec<f64> = (0..40)
            .map(|i| 50e6 + 400.0 * x[i] + if i >= 5 { 20e6 } else { 0.0 } + 3e5 * noise(i))
            .collect();
        assert_eq!(early_level_shift(&x, &early_step).map(|s| s.index), Some(5));
    }

    #[test]
    fn too_short_is_none() {
        assert!(early_level_shift(&[0.0, 1.0], &[0.0, 5.0]).is_none());
    }
}
