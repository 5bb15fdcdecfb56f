//! The slope gate of one signal: trend evidence on the window floors, the decision, and an
//! explanation a newcomer can read. Also the time-to-limit projection that uses the slope.

use crate::scenario::plan::{GatePlan, SignalGate, SignalUnit};

use super::mann_kendall::{self, MannKendall};
use super::series::{self, MIN_WINDOWS, SeriesError, Steady};
use super::theil_sen::{self, TheilSen};
use super::{GateKind, GateResult, Outcome, SlopeEstimate, VerdictInput, format};

/// Share of window-to-window steps whose floor must not fall for a leak ("nearly every
/// window"). A floor that stays level counts: a staircase (allocator or heap-goal steps, JVM
/// heap commits) climbs in steps with flat floors between them.
pub const RISING_SHARE: f64 = 0.7;
/// A floor lower than the previous one by at most this share of the total rise has not fallen.
const FALL_TOLERANCE: f64 = 0.02;
/// A rise between windows stands out of the noise above this many noise deviations.
const STEP_SIGMAS: f64 = 4.0;
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
    /// Steps whose floor did not fall (level or higher).
    pub non_falling: usize,
    /// The growth has stopped: no significant rise in the last third of the windows (a cache
    /// that filled; a staircase that keeps climbing has not stopped, however its steps fall
    /// between the halves).
    pub stopped: bool,
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
    let total_rise = (fy[n - 1] - fy[0]).max(0.0);
    // A fall within one noise deviation is no fall: the floors of a staircase's level wander.
    let tolerance = (FALL_TOLERANCE * total_rise).max(change_sigma(&fy[..n]));
    let non_falling = fy.windows(2).filter(|w| w[1] >= w[0] - tolerance).count();
    let stopped = growth_stopped(&fy[..n]);
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
        non_falling,
        stopped,
        steps: n - 1,
        first_half,
        second_half,
        second_half_ci_high,
        ratio,
        first_rise: fy[mid] - fy[0],
    })
}

/// Whether the floors stopped growing: no rise in the last third of the windows stands out
/// of the noise (more than a twentieth of the total rise, and [`STEP_SIGMAS`] deviations of a
/// change that is noise).
/// A staircase that keeps climbing rises late; a cache that filled does not.
fn growth_stopped(fy: &[f64]) -> bool {
    let d: Vec<f64> = fy.windows(2).map(|w| w[1] - w[0]).collect();
    if d.len() < 3 {
        return false;
    }
    let total = (fy[fy.len() - 1] - fy[0]).max(0.0);
    let threshold = (0.05 * total).max(STEP_SIGMAS * change_sigma(fy));
    let late = d.len() - (d.len() / 3).max(2);
    !d[late..].iter().any(|&x| x > threshold && x > 0.0)
}

/// The spread of window-to-window changes around their typical change: 1.4826 times their
/// median absolute deviation (a standard deviation where most changes are trend plus noise).
/// A staircase's flat stretches and its steps hardly move it; a steady trend does not at all.
fn change_sigma(fy: &[f64]) -> f64 {
    let d: Vec<f64> = fy.windows(2).map(|w| w[1] - w[0]).collect();
    let med = median(&d);
    1.4826 * median(&d.iter().map(|x| (x - med).abs()).collect::<Vec<_>>())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
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
    // A slower second half is a plateau only when the growth really stopped: steps that
    // happen to fall in the first half are no slowdown.
    let slowed = st.ratio < PLATEAU_RATIO && st.stopped;
    let plateau = st.first_half > tau && slowed;
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
    if (st.non_falling as f64) < RISING_SHARE * st.steps as f64 {
        against.push(format!(
            "floors fell in {} of {} steps",
            st.steps - st.non_falling,
            st.steps
        ));
    }
    if slowed {
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
    let (fx, fy) = match &steady.gc {
        // Memory in a garbage-collected process: floors from windows that hold a collection.
        Some((_, gc)) if gate.unit == SignalUnit::Bytes => {
            series::gc_floors(&steady.x, &steady.y, gc, plan.windows.max(1))
        }
        _ => series::floors(&steady.x, &steady.y, plan.windows.max(1)),
    };
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
        let plateau = st.first_half > 0.0 && st.ratio < PLATEAU_RATIO && st.stopped;
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
#[path = "slope_tests.rs"]
mod tests;
