//! The threads the drive stage starts around the load (see "Threads of one run" in
//! ARCHITECTURE.md): the sampler, the housekeeping thread (rolling verdict, compaction,
//! segments, scheduled profiles) and the death watch; and the waits that end with a stop.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::folder::Folder;
use super::profiles;
use super::recent::Recent;
use super::rolling::{Chore, EvalHook, Housekeeper, Housekeeping, Judge};
use super::signals::Stop;
use super::target::Target;
use super::{SampleHook, sampler_secs};
use crate::probe::ProbeSet;
use crate::probe::sampler::Sampler;
use crate::record::{ProbeSample, Record};
use crate::report::summary::TargetExit;
use crate::scenario::plan::Plan;

/// Aged records are merged into one per minute.
const COMPACT_BUCKET: f64 = 60.0;

/// The recent records the rolling verdict keeps: only the gated signals and a collection
/// counter, so it stays bounded however long the run goes.
pub(super) fn recent(plan: &Plan) -> Arc<Mutex<Recent>> {
    let keep = plan
        .gates
        .signals
        .iter()
        .map(|g| g.signal.clone())
        .chain(
            crate::verdict::series::GC_COUNTERS
                .iter()
                .map(|c| c.to_string()),
        )
        .collect();
    Arc::new(Mutex::new(Recent::new(keep)))
}

/// Starts the sampler: each sample goes to `samples.ndjson`, the live hook and `recent`.
pub(super) fn sampler(
    plan: &Plan,
    folder: &Folder,
    probes: ProbeSet,
    t0: Instant,
    completed: &Arc<AtomicU64>,
    recent: &Arc<Mutex<Recent>>,
    mut on_sample: Option<SampleHook>,
) -> Sampler {
    let (writer, recent) = (folder.writer.clone(), recent.clone());
    Sampler::start(
        probes,
        plan.probes.interval,
        t0,
        completed.clone(),
        move |s: ProbeSample| {
            writer.write(&Record::Probe(s.clone()));
            if let Some(f) = on_sample.as_mut() {
                f(&s);
            }
            if let Ok(mut r) = recent.lock() {
                r.push_sample(&s);
            }
        },
    )
}

/// Starts the housekeeping thread: rolling evaluations (when asked for) and the chores.
pub(super) fn housekeeper(
    plan: &Plan,
    folder: &Folder,
    t0: Instant,
    recent: &Arc<Mutex<Recent>>,
    memory_limit: Option<u64>,
    stop: &Stop,
    on_eval: Vec<EvalHook>,
) -> Housekeeper {
    Housekeeper::start(Housekeeping {
        every: plan.soak.evaluate_every.or_else(|| {
            (plan.soak.until_verdict || plan.soak.decide_after.is_some())
                .then(|| default_every(plan))
        }),
        judge: Judge::new(
            &plan.gates,
            plan.load.steady_spans(),
            plan.soak.horizon,
            memory_limit,
            plan.soak.every_gate,
        ),
        recent: recent.clone(),
        writer: folder.writer.clone(),
        t0,
        stop: stop.clone(),
        until_verdict: plan.soak.until_verdict,
        decide_after: plan.soak.decide_after.map(|d| d.as_secs_f64()),
        on_eval,
        chores: chores(plan, folder, t0),
    })
}

/// Default pace of rolling evaluations when `--until-verdict` is asked without one: a
/// twentieth of the planned load, between 1 s and 1 min.
fn default_every(plan: &Plan) -> Duration {
    let total = plan.load_duration().as_secs_f64();
    let total = if total > 0.0 {
        total
    } else {
        plan.watch
            .as_ref()
            .and_then(|w| w.duration)
            .map_or(1200.0, |d| d.as_secs_f64())
    };
    Duration::from_secs_f64((total / 20.0).clamp(1.0, 60.0))
}

/// Compaction of records as they age, sealed segments, and heap profiles on a schedule.
fn chores(plan: &Plan, folder: &Folder, t0: Instant) -> Vec<(Duration, Chore)> {
    let mut out: Vec<(Duration, Chore)> = Vec::new();
    let age = plan.soak.compact_after;
    // Checked six times per age (at most every 10 min): the live file holds at most about
    // 1.2 ages of full-resolution records.
    let every = (age / 6).clamp(Duration::from_secs(1), Duration::from_secs(600));
    let writer = folder.writer.clone();
    out.push((
        every,
        Box::new(move |t| {
            // Two tiers: one record a minute after `age`, one per ten minutes after six ages,
            // so a day at 5 000 req/s stays a few MB.
            let age = age.as_secs_f64();
            for (cutoff, bucket) in [
                (t - 6.0 * age, 10.0 * COMPACT_BUCKET),
                (t - age, COMPACT_BUCKET),
            ] {
                if cutoff > 0.0
                    && let Err(e) = writer.compact(cutoff, bucket)
                {
                    eprintln!("leakgate: warning: samples not compacted: {e}");
                }
            }
        }),
    ));
    if let Some(period) = plan.soak.segment {
        let writer = folder.writer.clone();
        out.push((
            period,
            Box::new(move |_| {
                if let Err(e) = writer.seal() {
                    eprintln!("leakgate: warning: segment not sealed: {e}");
                }
            }),
        ));
    }
    out.extend(profiles::chores(plan, &folder.dir, &folder.writer, t0));
    out
}

/// Waits until `until` (None: until cancelled) or the token is cancelled.
pub(super) fn wait(until: Option<Instant>, cancel: &CancellationToken) {
    while !cancel.is_cancelled() && until.is_none_or(|u| Instant::now() < u) {
        let left = until.map_or(Duration::from_millis(50), |u| {
            u.saturating_duration_since(Instant::now())
        });
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Sleeps `d` in small steps, ending early when stopped or when the target dies.
pub(super) fn sleep_unless(d: Duration, cancel: &CancellationToken, target: &Target) {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() && !cancel.is_cancelled() && target.exit().is_none() {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
}

/// How the target ended, on the run clock.
pub(super) fn exit_record(e: crate::supervise::ExitInfo, t0: Instant) -> TargetExit {
    TargetExit {
        t: sampler_secs(t0),
        cause: e.cause,
        code: e.code,
        signal: e.signal,
        oom_killed: e.oom_killed,
    }
}

/// Polls the target every 50 ms and cancels the load the moment it is gone.
pub(super) struct DeathWatch {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<Option<TargetExit>>,
}

impl DeathWatch {
    /// Starts watching `target`; its death cancels `cancel`.
    pub(super) fn start(target: Arc<Target>, cancel: CancellationToken, t0: Instant) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            loop {
                if let Some(e) = target.exit() {
                    cancel.cancel();
                    return Some(exit_record(e, t0));
                }
                match stopped.recv_timeout(Duration::from_millis(50)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return None,
                }
            }
        });
        DeathWatch { stop, thread }
    }

    /// Stops watching; returns how the target ended, if it did while watched.
    pub(super) fn finish(self) -> Option<TargetExit> {
        let _ = self.stop.send(());
        self.thread.join().ok().flatten()
    }
}
