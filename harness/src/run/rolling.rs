//! The rolling verdict of a long run: every `evaluate_every`, the gates judged on the last
//! horizon, appended to `samples.ndjson` as an `evaluation` record, handed to the live view and
//! endpoints, and, with `until_verdict`, the run stopped once the evidence decides.
//!
//! It runs on a housekeeping thread of its own, which also takes the scheduled heap profiles
//! and compacts the samples file as it ages, so the load path and the sampler never wait.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::recent::Recent;
use super::signals::Stop;
use crate::record::{EvalOutcome, Evaluation, Record, SignalStatus};
use crate::scenario::plan::{GatePlan, Horizon};
use crate::store::Writer as NdjsonWriter;
use crate::verdict::{self, GateKind, LatencyObserved, Outcome, Verdict, VerdictInput};

/// What a rolling verdict judges against, fixed for the run.
#[derive(Debug, Clone)]
pub struct Judge {
    /// The plan's gates without drain checks (there is no drain in the middle of a run).
    pub gates: GatePlan,
    /// Steady spans of the plan (empty: the whole run, as in a watch).
    pub steady: Vec<(f64, f64)>,
    /// What each evaluation looks back over.
    pub horizon: Horizon,
    /// The target's memory limit, for the time to it.
    pub memory_limit: Option<u64>,
    /// An evaluation is decisive only when no gate is inconclusive (`--until-verdict=all`).
    pub every_gate: bool,
}

impl Judge {
    /// A judge for `gates`, dropping drain checks.
    pub fn new(
        gates: &GatePlan,
        steady: Vec<(f64, f64)>,
        horizon: Horizon,
        memory_limit: Option<u64>,
        every_gate: bool,
    ) -> Self {
        let mut gates = gates.clone();
        for g in &mut gates.signals {
            g.drain_to_baseline = None;
        }
        gates
            .signals
            .retain(|g| g.max_per_request.is_some() || g.max_per_second.is_some());
        Self {
            gates,
            steady,
            horizon,
            memory_limit,
            every_gate,
        }
    }

    /// The earliest time a horizon may reach back to: the start of the first steady span.
    fn earliest(&self) -> f64 {
        self.steady.first().map_or(0.0, |s| s.0)
    }

    /// Judges what `recent` holds at `now` (seconds since load start).
    pub fn evaluate(&self, recent: &Recent, now: f64, at: String, period: Period) -> Evaluation {
        let start = recent.horizon_start(self.horizon, now, self.earliest());
        let samples: Vec<_> = recent.samples().filter(|s| s.t >= start).cloned().collect();
        let steady = if self.steady.is_empty() {
            vec![(start, now)]
        } else {
            self.steady
                .iter()
                .filter(|(a, b)| *b >= start && *a <= now)
                .map(|(a, b)| (a.max(start), b.min(now)))
                .collect()
        };
        let latency = recent.latency_since(start).map(|(p95, p99)| {
            let (done, _) = recent.work_since(start);
            let failed = recent.failed_since(start);
            LatencyObserved {
                p95_ms: p95,
                p99_ms: p99,
                error_rate: if done == 0 {
                    0.0
                } else {
                    failed as f64 / done as f64
                },
            }
        });
        let requests = samples.last().map_or(0, |s| s.cumulative_completed);
        let input = VerdictInput {
            samples,
            steady,
            baseline: None,
            drained: None,
            latency,
            memory_limit: self.memory_limit,
        };
        let v = verdict::judge(&input, &self.gates);
        let mut e = to_evaluation(&v, &input, now, at, start, requests, period);
        if self.every_gate && v.gates.iter().any(|g| g.outcome == Outcome::Inconclusive) {
            e.decisive = false;
        }
        e
    }
}

/// Rate and latency of the period since the previous evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Period {
    /// Completed requests per second.
    pub rate: Option<f64>,
    /// Corrected p95, ms.
    pub p95_ms: Option<f64>,
    /// Corrected p99, ms.
    pub p99_ms: Option<f64>,
}

fn eval_outcome(o: Outcome) -> EvalOutcome {
    match o {
        Outcome::Pass => EvalOutcome::Pass,
        Outcome::Fail => EvalOutcome::Leak,
        Outcome::Inconclusive => EvalOutcome::Inconclusive,
    }
}

fn worse(a: EvalOutcome, b: EvalOutcome) -> EvalOutcome {
    use EvalOutcome::*;
    match (a, b) {
        (Leak, _) | (_, Leak) => Leak,
        (Inconclusive, _) | (_, Inconclusive) => Inconclusive,
        _ => Pass,
    }
}

/// A verdict over the horizon as the record and the endpoints carry it.
fn to_evaluation(
    v: &Verdict,
    input: &VerdictInput,
    t: f64,
    at: String,
    horizon_start: f64,
    requests: u64,
    period: Period,
) -> Evaluation {
    let mut signals: BTreeMap<String, SignalStatus> = BTreeMap::new();
    for g in &v.gates {
        let Some(sig) = &g.signal else { continue };
        let e = signals.entry(sig.clone()).or_insert_with(|| SignalStatus {
            outcome: EvalOutcome::Pass,
            latest: input
                .samples
                .iter()
                .rev()
                .find_map(|s| s.signals.get(sig).copied()),
            ..Default::default()
        });
        e.outcome = worse(e.outcome, eval_outcome(g.outcome));
        if let (Some(s), None) = (&g.slope, e.per_second) {
            e.per_second = Some(s.per_second);
            e.ci_low_per_second = Some(s.ci_low_per_second);
            e.ci_high_per_second = Some(s.ci_high_per_second);
            e.per_request = s.per_request;
        }
        if g.kind == GateKind::TimeToLimit {
            e.time_to_limit_s = g.time_to_limit_s;
        }
    }
    let outcome = eval_outcome(v.outcome);
    let names = |o: Outcome| v.names_with(o);
    let summary = match outcome {
        EvalOutcome::Leak => format!("leak: {}", names(Outcome::Fail)),
        EvalOutcome::Inconclusive => format!("inconclusive: {}", names(Outcome::Inconclusive)),
        EvalOutcome::Pass if v.gates.is_empty() => "pass: no gates to judge".into(),
        EvalOutcome::Pass => format!("pass: {} gates held", v.gates.len()),
    };
    Evaluation {
        t,
        at,
        requests,
        horizon_start,
        outcome,
        decisive: verdict::decisive(v),
        signals,
        rate: period.rate,
        p95_ms: period.p95_ms,
        p99_ms: period.p99_ms,
        summary,
    }
}

/// Called with every evaluation (live progress, live endpoints).
pub type EvalHook = Box<dyn FnMut(&Evaluation) + Send>;
/// A periodic chore of the housekeeping thread, given the run clock (seconds since t0).
pub type Chore = Box<dyn FnMut(f64) + Send>;

/// Everything the housekeeping thread needs.
pub struct Housekeeping {
    /// How often to evaluate (None: never; chores still run).
    pub every: Option<Duration>,
    /// The judge.
    pub judge: Judge,
    /// Shared with the sampler and the load hooks.
    pub recent: Arc<Mutex<Recent>>,
    /// Where evaluation records go.
    pub writer: Arc<NdjsonWriter>,
    /// The run clock's origin.
    pub t0: Instant,
    /// Stops the run when the verdict is decided (with `until_verdict`).
    pub stop: Stop,
    /// End the run once the verdict is decided.
    pub until_verdict: bool,
    /// Past this many seconds of load, end the run once the verdict is decided.
    pub decide_after: Option<f64>,
    /// Called with each evaluation.
    pub on_eval: Vec<EvalHook>,
    /// Other chores and how often they run (heap profiles, compaction).
    pub chores: Vec<(Duration, Chore)>,
}

/// The running housekeeping thread; `finish` stops it and says when the verdict was decided.
pub struct Housekeeper {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<Option<Decided>>>,
}

/// The verdict that ended a run early.
#[derive(Debug, Clone)]
pub struct Decided {
    /// Seconds since load start.
    pub t: f64,
    /// The outcome that held on two evaluations in a row.
    pub outcome: EvalOutcome,
}

impl Housekeeper {
    /// Starts the thread.
    pub fn start(mut h: Housekeeping) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("leakgate-housekeeping".into())
            .spawn(move || {
                let first = Instant::now();
                let mut next_eval = h.every.map(|e| first + e);
                let mut next_chore: Vec<Instant> =
                    h.chores.iter().map(|(e, _)| first + *e).collect();
                let mut last: Option<EvalOutcome> = None;
                loop {
                    let next = next_chore.iter().copied().chain(next_eval).min()?;
                    match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return None,
                    }
                    let now = Instant::now();
                    let t = super::sampler_secs(h.t0);
                    for (i, (every, chore)) in h.chores.iter_mut().enumerate() {
                        if now >= next_chore[i] {
                            chore(t);
                            next_chore[i] = now + *every;
                        }
                    }
                    if next_eval.is_some_and(|n| now >= n) {
                        next_eval = h.every.map(|e| now + e);
                        let e = h.evaluate(t);
                        if let Some(d) = h.decide(&e, &mut last) {
                            return Some(d);
                        }
                    }
                }
            })
            .ok();
        Self { stop, thread }
    }

    /// Stops the thread; returns the verdict that stopped the run, if one did.
    pub fn finish(mut self) -> Option<Decided> {
        let _ = self.stop.send(());
        self.thread.take().and_then(|t| t.join().ok()).flatten()
    }
}

impl Housekeeping {
    fn evaluate(&mut self, t: f64) -> Evaluation {
        let at = super::now_rfc3339();
        let e = match self.recent.lock() {
            Ok(mut r) => {
                let (rate, p95_ms, p99_ms) = r.close_period(t);
                let e = self.judge.evaluate(
                    &r,
                    t,
                    at,
                    Period {
                        rate,
                        p95_ms,
                        p99_ms,
                    },
                );
                // What no horizon will look at again is dropped.
                if !matches!(self.judge.horizon, Horizon::Whole) {
                    r.prune(e.horizon_start);
                }
                e
            }
            Err(_) => Evaluation {
                t,
                at,
                summary: "inconclusive: the samples could not be read".into(),
                ..Default::default()
            },
        };
        self.writer.write(&Record::Evaluation(e.clone()));
        for hook in &mut self.on_eval {
            hook(&e);
        }
        e
    }

    /// With `until_verdict`, stops the run once the same decided outcome holds on two
    /// evaluations in a row (one look can be a fluke of a short horizon).
    fn decide(&self, e: &Evaluation, last: &mut Option<EvalOutcome>) -> Option<Decided> {
        let firm = e.decisive.then_some(e.outcome);
        let decided = firm.is_some() && *last == firm;
        *last = firm;
        let may_stop = self.until_verdict || self.decide_after.is_some_and(|d| e.t >= d);
        if !(may_stop && decided) {
            return None;
        }
        let word = match e.outcome {
            EvalOutcome::Leak => "leak",
            _ => "pass",
        };
        self.writer.write(&Record::Event(crate::record::Event {
            t: e.t,
            kind: "verdict_decided".into(),
            detail: format!("{word} at t = {:.1} s: {}", e.t, e.summary),
        }));
        self.stop.stop(format!(
            "the verdict was decided ({word}) at t = {:.1} s",
            e.t
        ));
        Some(Decided {
            t: e.t,
            outcome: e.outcome,
        })
    }
}

/// The horizon a plan's rolling verdict judges, in words for the header.
pub fn horizon_words(h: Horizon) -> String {
    match h {
        Horizon::Whole => "the whole steady phase".into(),
        Horizon::Time { span } => format!(
            "the last {}",
            crate::verdict::format::duration(span.as_secs_f64())
        ),
        Horizon::Requests { count } => format!("the last {count} requests"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ProbeSample;
    use crate::scenario::plan::{LatencyGate, SignalGate, SignalUnit};

    /// A judge of two count signals with a limit of 1 per second each.
    fn judge(every_gate: bool) -> Judge {
        let gate = |signal: &str| SignalGate {
            signal: signal.into(),
            max_per_second: Some(1.0),
            max_per_request: None,
            drain_to_baseline: None,
            unit: SignalUnit::Count,
        };
        let gates = GatePlan {
            signals: vec![gate("leaking"), gate("late")],
            latency: LatencyGate::default(),
            warmup_share: 0.0,
            windows: 10,
            confidence: 0.95,
            min_time_to_limit: None,
            extend_if_inconclusive: None,
        };
        Judge::new(&gates, vec![(0.0, 60.0)], Horizon::Whole, None, every_gate)
    }

    #[test]
    fn every_gate_waits_for_the_inconclusive_ones() {
        // `leaking` climbs 100/s, far past its limit; `late` (a probe that came up late) has
        // too few samples for a verdict either way: the leak is decisive alone, not with
        // `every_gate`.
        let mut recent = Recent::new(Vec::new());
        for i in 0..60u32 {
            let t = f64::from(i);
            let mut signals = BTreeMap::from([("leaking".to_string(), 100.0 * t)]);
            if i >= 55 {
                signals.insert("late".to_string(), t);
            }
            recent.push_sample(&ProbeSample {
                t,
                cumulative_completed: u64::from(i) * 100,
                signals,
                merged: None,
            });
        }
        let first = judge(false).evaluate(&recent, 59.0, String::new(), Period::default());
        assert_eq!(first.outcome, EvalOutcome::Leak, "{}", first.summary);
        assert!(first.decisive, "a failed gate decides the run");
        let all = judge(true).evaluate(&recent, 59.0, String::new(), Period::default());
        assert_eq!(all.outcome, EvalOutcome::Leak);
        assert!(
            !all.decisive,
            "with every_gate the undecided gate keeps the run going: {:?}",
            all.signals
        );
    }
}
