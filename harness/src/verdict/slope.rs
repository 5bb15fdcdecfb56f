//! The slope gate of one signal: trend evidence on the window floors, the decision, and an
//! explanation a newcomer can read. Also the time-to-limit projection that uses the slope.

use crate::scenario::plan::{GatePlan, SignalGate, SignalUnit};

use super::mann_kendall::{self, MannKendall};
use super::series::{self, MIN_WINDOWS, SeriesError, Steady};
use super::theil_sen::{self, TheilSen};
use super::{GateKind, GateResult, Outcome, SlopeEstimate, VerdictInput, format};

/// Share of window-to-window steps whose floor must rise for a leak ("nearly every window").
pub const RISING_SHARE: f64 = 0.7;
/// A second half growing at less than this share of the first half's rate is a plateau.
pub const PLATEAU_RATIO: f64 = 0.5;
/// Clamp of the half-rate ratio (keeps it finite in JSON).
const MAX_RATIO: f64 = 10.0;

/// Trend evidence on the window floors, independent of any limit. Slopes are in y per x unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloorStats {
    /// Mann–Kendall on the floors, Hamed–Rao corrected.
    pub mk: MannKendall,
    /// Theil–Sen slope and Sen's interval (from the corrected variance).
    pub ts: TheilSen,
    /// Steps whose floor rose.
    pub rising: usize,
    /// Window-to-window steps.
    pub steps: usize,
    /// Theil–Sen slope of the first half of the floors.
    pub first_half: f64,
    /// Theil–Sen slope of the second half of the floors.
    pub second_half: f64,
    /// Upper bound of Sen's interval on the second half alone.
    pub second_half_ci_high: f64,
    /// `second_half / first_half`, clamped to ±10 (1 when neither half grows).
    pub ratio: f64,
    /// Floor rise over the first half (y units).
    pub first_rise: f64,
}

/// Trend evidence on floors `(fx, fy)`; `None` when the slope is undefined (all x equal).
pub fn analyze(fx: &[f64], fy: &[f64], confidence: f64) -> Option<FloorStats> {
    let n = fx.len().min(fy.len());
    if n < 3 {
        return None;
    }
    let point = theil_sen::slope(fx, fy);
    if !point.is_finite() {
        return None;
    }
    let mk = mann_kendall::test_hamed_rao(fx, fy, point);
    let ts = theil_sen::estimate(fx, fy, mk.corrected_var(), confidence)?;
    let rising = fy.windows(2).filter(|w| w[1] > w[0]).count();
    // Halves share the middle floor so each has at least three points from five windows.
    let mid = n / 2;
    let first_half = theil_sen::slope(&fx[..=mid], &fy[..=mid]);
    let second_half = theil_sen::slope(&fx[mid..], &fy[mid..]);
    let (_, var2) = mann_kendall::s_and_var(&fy[mid..]);
    let second_half_ci_high = theil_sen::estimate(&fx[mid..], &fy[mid..], var2, confidence)
        .map_or(f64::INFINITY, |t| t.ci_high);
    let ratio = if first_half > 0.0 {
        (second_half / first_half).clamp(-MAX_RATIO, MAX_RATIO)
    } else if second_half > 0.0 {
        MAX_RATIO
    } else {
        1.0
    };
    Some(FloorStats {
        mk,
        ts,
        rising,
        steps: n - 1,
        first_half,
        second_half,
        second_half_ci_high,
        ratio,
        first_rise: fy[mid] - fy[0],
    })
}

/// What the evidence says against a limit `tau` (y per x unit).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Gate outcome.
    pub outcome: Outcome,
    /// Judged a plateau (grew, then flattened).
    pub plateau: bool,
    /// Evidence that did not agree with a leak, for the explanation.
    pub against: Vec<String>,
}

/// Fail only when trend, lower bound, rising floors and a still-growing second half agree;
/// pass on a plateau whose second half is within the limit and whose interval excludes twice
/// the limit (noise in a short half can fake a slowdown), or when the slope is within the
/// limit and the interval excludes twice the limit; otherwise inconclusive.
pub fn decide(st: &FloorStats, tau: f64, alpha: f64) -> Decision {
    let plateau = st.first_half > tau && st.ratio < PLATEAU_RATIO;
    let mut against = Vec::new();
    if st.mk.p_up >= alpha {
        against.push(format!(
            "no significant trend (Mann–Kendall p = {})",
            format::sig3(st.mk.p_up)
        ));
    }
    if st.ts.ci_low <= tau {
        against.push("the interval's lower bound is not above the limit".to_string());
    }
    if (st.rising as f64) < RISING_SHARE * st.steps as f64 {
        against.push(format!(
            "floors rose in only {} of {} steps",
            st.rising, st.steps
        ));
    }
    if st.ratio < PLATEAU_RATIO {
        against.push(format!(
            "the second half grew at {:.0} % of the first half's rate",
            st.ratio * 100.0
        ));
    }
    let outcome = if plateau {
        if st.second_half <= tau && st.second_half_ci_high <= 2.0 * tau.max(0.0) {
            Outcome::Pass
        } else {
            Outcome::Inconclusive
        }
    } else if against.is_empty() {
        Outcome::Fail
    } else if st.ts.slope <= tau && st.ts.ci_high <= 2.0 * tau.max(0.0) {
        Outcome::Pass
    } else {
        Outcome::Inconclusive
    };
    Decision {
        outcome,
        plateau,
        against,
    }
}

/// Slope gates (per request and/or per second) and time to limit for one signal.
pub fn judge_signal(input: &VerdictInput, gate: &SignalGate, plan: &GatePlan) -> Vec<GateResult> {
    let limits = limits_of(gate);
    let wants_ttl = input.memory_limit.is_some() && gate.unit == SignalUnit::Bytes;
    if limits.is_empty() && !wants_ttl {
        return Vec::new();
    }
    let steady = match series::prepare(
        &input.samples,
        &input.steady,
        &gate.signal,
        plan.warmup_share,
    ) {
        Ok(s) => s,
        Err(e) => {
            let why = match e {
                SeriesError::Absent { samples } => format!(
                    "{} was absent from all {samples} steady-phase samples (the target does not \
                     offer it, or the probe could not read it); absent is not zero",
                    gate.signal
                ),
                SeriesError::TooFew { points } => format!(
                    "{} has only {points} steady samples after the warm-up was removed; at least \
                     {} are needed (run longer or sample more often)",
                    gate.signal,
                    2 * MIN_WINDOWS
                ),
            };
            return inconclusive_all(gate, &limits, wants_ttl, &why);
        }
    };
    let (fx, fy) = series::floors(&steady.x, &steady.y, plan.windows.max(1));
    let confidence = plan.confidence.clamp(0.5, 0.9999);
    let alpha = 1.0 - confidence;
    let stats = if fx.len() < MIN_WINDOWS {
        None
    } else {
        analyze(&fx, &fy, confidence)
    };
    let Some(stats) = stats else {
        let why = format!(
            "{} left only {} usable windows; at least {MIN_WINDOWS} are needed (run longer or \
             sample more often)",
            gate.signal,
            fx.len()
        );
        return inconclusive_all(gate, &limits, wants_ttl, &why);
    };
    let ctx = Ctx {
        gate,
        steady: &steady,
        stats: &stats,
        confidence,
    };
    let mut out = Vec::new();
    for limit in &limits {
        out.push(ctx.slope_gate(*limit, alpha));
    }
    if let Some(mem) = input.memory_limit.filter(|_| wants_ttl) {
        out.push(ctx.time_to_limit(mem, plan, alpha));
    }
    out
}

/// A configured limit: per request or per second.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Limit {
    PerRequest(f64),
    PerSecond(f64),
}

fn limits_of(gate: &SignalGate) -> Vec<Limit> {
    let mut v = Vec::new();
    if let Some(l) = gate.max_per_request {
        v.push(Limit::PerRequest(l));
    }
    if let Some(l) = gate.max_per_second {
        v.push(Limit::PerSecond(l));
    }
    v
}

fn unit_word(unit: SignalUnit) -> &'static str {
    match unit {
        SignalUnit::Bytes => "bytes",
        SignalUnit::Count => "count",
    }
}

fn gate_name(gate: &SignalGate, limit: Limit) -> (String, String, f64) {
    let u = unit_word(gate.unit);
    match limit {
        Limit::PerRequest(l) => (
            format!("{} per request", gate.signal),
            format!("{u}/request"),
            l,
        ),
        Limit::PerSecond(l) => (format!("{} per second", gate.signal), format!("{u}/s"), l),
    }
}

fn inconclusive_all(gate: &SignalGate, limits: &[Limit], ttl: bool, why: &str) -> Vec<GateResult> {
    let mut out: Vec<GateResult> = limits
        .iter()
        .map(|&l| {
            let (name, unit, limit) = gate_name(gate, l);
            GateResult {
                name,
                signal: Some(gate.signal.clone()),
                kind: GateKind::Slope,
                outcome: Outcome::Inconclusive,
                observed: 0.0,
                limit,
                unit,
                slope: None,
                time_to_limit_s: None,
                explanation: format!("{why} → inconclusive"),
            }
        })
        .collect();
    if ttl {
        out.push(GateResult {
            name: format!("{} time to limit", gate.signal),
            signal: Some(gate.signal.clone()),
            kind: GateKind::TimeToLimit,
            outcome: Outcome::Inconclusive,
            observed: 0.0,
            limit: 0.0,
            unit: "s".to_string(),
            slope: None,
            time_to_limit_s: None,
            explanation: format!("{why} → time to the memory limit unknown"),
        });
    }
    out
}

/// Shared context of one signal's gates.
struct Ctx<'a> {
    gate: &'a SignalGate,
    steady: &'a Steady,
    stats: &'a FloorStats,
    confidence: f64,
}

impl Ctx<'_> {
    /// Factor from x units to seconds: requests per second, or 1 when x is time.
    fn per_second_factor(&self) -> f64 {
        if self.steady.per_request {
            self.steady.rate.unwrap_or(0.0)
        } else {
            1.0
        }
    }

    fn estimate(&self, plateau: bool) -> SlopeEstimate {
        let f = self.per_second_factor();
        let ts = &self.stats.ts;
        let pr = |v: f64| self.steady.per_request.then_some(v);
        SlopeEstimate {
            per_second: ts.slope * f,
            per_minute: ts.slope * f * 60.0,
            per_request: pr(ts.slope),
            ci_low_per_second: ts.ci_low * f,
            ci_high_per_second: ts.ci_high * f,
            ci_low_per_request: pr(ts.ci_low),
            ci_high_per_request: pr(ts.ci_high),
            mk_z: self.stats.mk.z,
            mk_p: self.stats.mk.p_up,
            windows_rising: self.stats.rising,
            windows_total: self.stats.steps + 1,
            second_half_ratio: self.stats.ratio,
            plateau,
        }
    }

    fn slope_gate(&self, limit: Limit, alpha: f64) -> GateResult {
        let (name, unit, limit_value) = gate_name(self.gate, limit);
        let f = self.per_second_factor();
        let signal = Some(self.gate.signal.clone());
        // The limit in x units (per request, or per second when x is time).
        let tau = match limit {
            Limit::PerRequest(l) if self.steady.per_request => l,
            Limit::PerSecond(l) if f > 0.0 => l / f,
            Limit::PerRequest(_) | Limit::PerSecond(_) => {
                let why = if matches!(limit, Limit::PerRequest(_)) {
                    "the input has no request counts, so the per-request limit cannot be judged \
                     (give a per-second limit, or record completed requests)"
                } else {
                    "the steady phase has no measurable duration, so no per-second rate exists"
                };
                return GateResult {
                    name,
                    signal,
                    kind: GateKind::Slope,
                    outcome: Outcome::Inconclusive,
                    observed: 0.0,
                    limit: limit_value,
                    unit,
                    slope: Some(self.estimate(false)),
                    time_to_limit_s: None,
                    explanation: format!("{}; {why} → inconclusive", self.growth_phrase(false)),
                };
            }
        };
        let d = decide(self.stats, tau, alpha);
        let est = self.estimate(d.plateau);
        let observed = match limit {
            Limit::PerRequest(_) => self.stats.ts.slope,
            Limit::PerSecond(_) => self.stats.ts.slope * f,
        };
        let per = match limit {
            Limit::PerRequest(_) => "request",
            Limit::PerSecond(_) => "s",
        };
        let lim = format::rate(limit_value, self.gate.unit, per);
        let explanation = self.explain(&d, &lim, matches!(limit, Limit::PerSecond(_)));
        GateResult {
            name,
            signal,
            kind: GateKind::Slope,
            outcome: d.outcome,
            observed,
            limit: limit_value,
            unit,
            slope: Some(est),
            time_to_limit_s: None,
            explanation,
        }
    }

    /// "rss_bytes grew 1.02 KiB/request (95 % CI 0.98–1.05 KiB/request), 2.00 MiB/s; floors
    /// rose in 9 of 9 steps".
    fn growth_phrase(&self, with_second_ci: bool) -> String {
        let u = self.gate.unit;
        let ts = &self.stats.ts;
        let f = self.per_second_factor();
        let c = self.confidence;
        let grew = if ts.slope > 0.0 { "grew" } else { "changed by" };
        let main = if self.steady.per_request {
            let mut s = format!(
                "{} {grew} {}, {}",
                self.gate.signal,
                format::rate_ci(ts.slope, ts.ci_low, ts.ci_high, u, "request", c),
                format::rate(ts.slope * f, u, "s"),
            );
            if with_second_ci {
                s = format!(
                    "{} {grew} {}, i.e. {}",
                    self.gate.signal,
                    format::rate(ts.slope, u, "request"),
                    format::rate_ci(ts.slope * f, ts.ci_low * f, ts.ci_high * f, u, "s", c),
                );
            }
            s
        } else {
            format!(
                "{} {grew} {}, {}",
                self.gate.signal,
                format::rate_ci(ts.slope, ts.ci_low, ts.ci_high, u, "s", c),
                format::rate(ts.slope * 60.0, u, "min"),
            )
        };
        let mut s = format!(
            "{main}; floors rose in {} of {} windows",
            self.stats.rising,
            self.stats.steps + 1
        );
        if let Some((shift, t)) = self.steady.shift {
            s.push_str(&format!(
                " (a level shift of {} at t = {} s was skipped as warm-up)",
                format::value(shift.step, u),
                format::sig3(t)
            ));
        }
        s
    }

    fn explain(&self, d: &Decision, limit: &str, per_second: bool) -> String {
        let u = self.gate.unit;
        if d.plateau {
            let head = format!(
                "{} grew {} then flattened: the second half grew at {:.0} % of the first half's \
                 rate",
                self.gate.signal,
                format::value(self.stats.first_rise, u),
                self.stats.ratio.max(0.0) * 100.0
            );
            return match d.outcome {
                Outcome::Pass => {
                    format!("{head} → plateau (bounded cache filled), not a leak (limit {limit})")
                }
                _ => format!(
                    "{head}, but the second half alone cannot rule out growth above the limit \
                     {limit} → inconclusive (run longer to see whether it levels off)"
                ),
            };
        }
        let growth = self.growth_phrase(per_second);
        match d.outcome {
            Outcome::Fail => format!(
                "{growth}, Mann–Kendall p = {}, second half at {:.0} % of the first half's rate → \
                 leak (limit {limit})",
                format::sig3(self.stats.mk.p_up),
                self.stats.ratio * 100.0
            ),
            Outcome::Pass => format!(
                "{growth}; within the limit {limit} and the interval rules out twice the limit → \
                 no leak"
            ),
            Outcome::Inconclusive => format!(
                "{growth}; limit {limit}, but the evidence does not agree ({}) → inconclusive \
                 (too noisy or too short: run longer)",
                d.against.join("; ")
            ),
        }
    }

    fn time_to_limit(&self, mem: u64, plan: &GatePlan, alpha: f64) -> GateResult {
        let u = self.gate.unit;
        let f = self.per_second_factor();
        let st = self.stats;
        let plateau = st.first_half > 0.0 && st.ratio < PLATEAU_RATIO;
        // After a plateau only the recent growth matters.
        let slope_ps = if plateau { st.second_half } else { st.ts.slope } * f;
        let current = self.steady.y.last().copied().unwrap_or(0.0);
        let mem = mem as f64;
        let ttl = if current >= mem {
            Some(0.0)
        } else if slope_ps > 0.0 {
            Some((mem - current) / slope_ps)
        } else {
            None
        };
        let horizon = plan.min_time_to_limit.map(|d| d.as_secs_f64());
        let convincing = st.mk.p_up < alpha && st.ts.ci_low > 0.0;
        let head = format!(
            "{} at {} of a {} limit, growing {}",
            self.gate.signal,
            format::value(current, u),
            format::value(mem, u),
            format::rate(slope_ps, u, "s")
        );
        let (outcome, explanation) = match (ttl, horizon) {
            (None, _) => (
                Outcome::Pass,
                format!("{head}: not growing, the limit is never reached"),
            ),
            (Some(t), Some(h)) if t < h && convincing => (
                Outcome::Fail,
                format!(
                    "{head}: reaches the limit in {}, sooner than the required {} → fail",
                    format::duration(t),
                    format::duration(h)
                ),
            ),
            (Some(t), Some(h)) if t < h => (
                Outcome::Inconclusive,
                format!(
                    "{head}: would reach the limit in {} (required ≥ {}), but the trend is not \
                     significant → inconclusive",
                    format::duration(t),
                    format::duration(h)
                ),
            ),
            (Some(t), _) => (
                Outcome::Pass,
                format!(
                    "{head}: reaches the limit in {} at this rate",
                    format::duration(t)
                ),
            ),
        };
        GateResult {
            name: format!("{} time to limit", self.gate.signal),
            signal: Some(self.gate.signal.clone()),
            kind: GateKind::TimeToLimit,
            outcome,
            // f64::MAX stands for "never" (JSON has no infinity).
            observed: ttl.unwrap_or(f64::MAX),
            limit: horizon.unwrap_or(0.0),
            unit: "s".to_string(),
            slope: Some(self.estimate(plateau)),
            time_to_limit_s: ttl,
            explanation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(slope: f64, lo: f64, hi: f64, p: f64, rising: usize, h1: f64, h2: f64) -> FloorStats {
        FloorStats {
            mk: MannKendall {
                n: 10,
                s: 0.0,
                var_s: 125.0,
                correction: 1.0,
                z: 0.0,
                p_up: p,
            },
            ts: TheilSen {
                slope,
                ci_low: lo,
                ci_high: hi,
                pairs: 45,
            },
            rising,
            steps: 9,
            first_half: h1,
            second_half: h2,
            second_half_ci_high: h2 * 1.5,
            ratio: if h1 > 0.0 { h2 / h1 } else { 1.0 },
            first_rise: h1 * 5.0,
        }
    }

    #[test]
    fn fail_needs_every_piece_of_evidence() {
        let leak = stats(500.0, 450.0, 550.0, 1e-4, 9, 500.0, 500.0);
        assert_eq!(decide(&leak, 256.0, 0.05).outcome, Outcome::Fail);
        // Not significant.
        let d = decide(
            &stats(500.0, 450.0, 550.0, 0.2, 9, 500.0, 500.0),
            256.0,
            0.05,
        );
        assert_eq!(d.outcome, Outcome::Inconclusive);
        assert!(d.against[0].contains("Mann–Kendall"));
        // Lower bound under the limit.
        let d = decide(
            &stats(500.0, 200.0, 800.0, 1e-4, 9, 500.0, 500.0),
            256.0,
            0.05,
        );
        assert_eq!(d.outcome, Outcome::Inconclusive);
        // Floors rose in too few windows.
        let d = decide(
            &stats(500.0, 450.0, 550.0, 1e-4, 5, 500.0, 500.0),
            256.0,
            0.05,
        );
        assert_eq!(d.outcome, Outcome::Inconclusive);
    }

    #[test]
    fn plateau_passes_only_when_the_second_half_is_flat() {
        let cache = stats(400.0, 300.0, 600.0, 1e-3, 7, 2000.0, 10.0);
        let d = decide(&cache, 256.0, 0.05);
        assert!(d.plateau);
        assert_eq!(d.outcome, Outcome::Pass);
        let still_growing = stats(900.0, 800.0, 1000.0, 1e-4, 9, 2000.0, 600.0);
        let d = decide(&still_growing, 256.0, 0.05);
        assert!(d.plateau);
        assert_eq!(d.outcome, Outcome::Inconclusive);
    }

    #[test]
    fn pass_needs_the_interval_to_rule_out_twice_the_limit() {
        let flat = stats(5.0, -20.0, 30.0, 0.4, 4, 5.0, 5.0);
        assert_eq!(decide(&flat, 256.0, 0.05).outcome, Outcome::Pass);
        let noisy = stats(100.0, -400.0, 900.0, 0.3, 5, 100.0, 100.0);
        assert_eq!(decide(&noisy, 256.0, 0.05).outcome, Outcome::Inconclusive);
    }
}
