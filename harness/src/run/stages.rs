//! The stages of one run, each a function over plain data (see the module doc of `run`).

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::folder::Folder;
use super::profiles::{self, Moment};
use super::recent::Recent;
use super::rolling::{Decided, Housekeeper, Housekeeping, Judge};
use super::signals::Stop;
use super::target::Target;
use super::{Facts, sampler_secs};
use super::{RunError, RunOptions, RunOutcome, exit_code};
use crate::exit::ExitCode;
use crate::load::{self, Prepared};
use crate::probe::{self, ProbeSet, sampler, sampler::Sampler};
use crate::record::{Event, LoadReport, ProbeSample, Record};
use crate::report::summary::{self, TargetExit};
use crate::scenario::plan::{Horizon, Plan};

/// Aged records are merged into one per minute.
const COMPACT_BUCKET: f64 = 60.0;

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

/// The state after warming: the run clock, the probes and the request count.
pub struct Warm {
    t0: Instant,
    probes: ProbeSet,
    completed: Arc<AtomicU64>,
}

/// Takes the baseline sample and the first heap profile, then starts the run clock: the
/// baseline lies just before t = 0.
pub fn warm(plan: &Plan, folder: &Folder, target: &Target, stop: &Stop) -> Warm {
    let completed = Arc::new(AtomicU64::new(0));
    let mut probes = target.probes(&plan.probes, plan.watch.is_some());
    let taken = Instant::now();
    let mut baseline = sampler::sample_once(&mut probes, taken, &completed);
    let events = profiles::capture(plan, &folder.dir, Moment::Start, target.pid());
    if let Some(shard) = plan.load.shard {
        wait_for_start(shard, stop);
    }
    let t0 = Instant::now();
    folder.started(plan, unix_ms(std::time::SystemTime::now()));
    let before = -(t0 - taken).as_secs_f64();
    if !baseline.signals.is_empty() {
        baseline.t = before;
        folder.writer.write(&Record::Probe(baseline));
    }
    for e in events {
        folder
            .writer
            .write(&Record::Event(Event { t: before, ..e }));
    }
    Warm {
        t0,
        probes,
        completed,
    }
}

/// The event that records a shard's load start (ms since the Unix epoch in its detail).
pub const LOAD_START: &str = "load_start";

/// Milliseconds since the Unix epoch.
fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Waits for a shard's start: its `start_at`, else the next whole second of the wall clock
/// (a start already past begins at once). A stopped run stops waiting.
fn wait_for_start(shard: crate::scenario::plan::Shard, stop: &Stop) {
    let now = unix_ms(std::time::SystemTime::now());
    let at = shard.start_at_unix_ms.unwrap_or((now / 1000 + 1) * 1000);
    let until = Instant::now() + Duration::from_millis(at.saturating_sub(now));
    while !stop.is_stopped() && Instant::now() < until {
        std::thread::sleep(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50)),
        );
    }
}

/// What the drive stage leaves behind.
pub struct Driven {
    t0: Instant,
    load: Option<Result<LoadReport, load::LoadError>>,
    died: Option<TargetExit>,
    decided: Option<Decided>,
    probes: Option<ProbeSet>,
    completed: Arc<AtomicU64>,
    memory_limit: Option<u64>,
    /// When the load or the watch ended, seconds since t0.
    stopped_at: Option<f64>,
}

/// Samples, evaluates and drives the load (or, for a watch, waits) until the plan ends, the
/// target dies, the verdict is decided or the run is stopped.
pub fn drive(
    plan: &Plan,
    folder: &Folder,
    target: &Arc<Target>,
    prepared: Option<&Prepared>,
    warm: Warm,
    opts: &mut RunOptions,
) -> Driven {
    let Warm {
        t0,
        probes,
        completed,
    } = warm;
    // The rolling verdict needs only the gated signals and a collection counter.
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
    let recent = Arc::new(Mutex::new(Recent::new(keep)));
    let sampler = {
        let (writer, recent) = (folder.writer.clone(), recent.clone());
        let mut on_sample = opts.on_sample.take();
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
    };
    let memory_limit = target.memory_limit().map(|(bytes, _)| bytes);
    let housekeeper = Housekeeper::start(Housekeeping {
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
        stop: opts.stop.clone(),
        until_verdict: plan.soak.until_verdict,
        decide_after: plan.soak.decide_after.map(|d| d.as_secs_f64()),
        on_eval: std::mem::take(&mut opts.on_eval),
        chores: chores(plan, folder, t0),
    });

    // A target that dies, and any stop, cancel the load at once.
    let load_cancel = opts.stop.token().child_token();
    let watch = death_watch(target.clone(), load_cancel.clone(), t0);
    let load = prepared.map(|prepared| {
        let writer = folder.writer.clone();
        let mut on_window = opts.on_window.take();
        let ctx = load::LoadContext {
            cancel: load_cancel.clone(),
            completed: completed.clone(),
            on_window: Box::new(move |w| {
                writer.write(&Record::Window(w.clone()));
                if let Ok(mut r) = recent.lock() {
                    r.push_window(w);
                }
                if let Some(f) = on_window.as_mut() {
                    f(w);
                }
            }),
        };
        load::run_prepared(prepared, ctx)
    });
    if load.is_none() {
        let until = plan.watch.as_ref().and_then(|w| w.duration).map(|d| t0 + d);
        wait(until, &load_cancel);
    }
    let stopped_at = Some(sampler_secs(t0));
    // Give a target that is dying a moment to be seen dead (a kill during the last window).
    std::thread::sleep(Duration::from_millis(100));
    let died = watch.finish();
    let decided = housekeeper.finish();
    let probes = sampler.stop();
    Driven {
        t0,
        load,
        died,
        decided,
        probes,
        completed,
        memory_limit,
        stopped_at,
    }
}

/// Compaction of records as they age, sealed segments, and heap profiles on a schedule.
fn chores(plan: &Plan, folder: &Folder, t0: Instant) -> Vec<(Duration, super::rolling::Chore)> {
    let mut out: Vec<(Duration, super::rolling::Chore)> = Vec::new();
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
fn wait(until: Option<Instant>, cancel: &CancellationToken) {
    while !cancel.is_cancelled() && until.is_none_or(|u| Instant::now() < u) {
        let left = until.map_or(Duration::from_millis(50), |u| {
            u.saturating_duration_since(Instant::now())
        });
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Drain check: the load stopped; wait, force a GC where offered, sample again. Skipped for
/// a watch (it stops no load), a dead target and a run stopped by a signal.
pub fn drain(plan: &Plan, folder: &Folder, target: &Target, driven: &mut Driven, stop: &Stop) {
    let stopped_by_signal = stop.is_stopped() && driven.decided.is_none();
    if plan.watch.is_some() || driven.died.is_some() || stopped_by_signal {
        return;
    }
    let t = sampler_secs(driven.t0);
    for e in profiles::capture(plan, &folder.dir, Moment::End, target.pid()) {
        folder.writer.write(&Record::Event(Event { t, ..e }));
    }
    let Some(probes) = driven.probes.as_mut() else {
        return;
    };
    folder.writer.write(&Record::Event(Event {
        t: sampler_secs(driven.t0),
        kind: "drain".into(),
        detail: format!(
            "load stopped; waiting {:?} before the drain re-sample",
            plan.probes.drain_wait
        ),
    }));
    if let Some(url) = &plan.probes.force_gc_url {
        let _ = probe::http_get(url, Duration::from_secs(10));
    }
    sleep_unless(plan.probes.drain_wait, stop.token(), target);
    let d = sampler::sample_once(probes, driven.t0, &driven.completed);
    folder.writer.write(&Record::Probe(d));
}

/// Judges everything the folder holds and writes the summary and the reports.
pub fn judge_and_write(
    plan: &Plan,
    folder: Folder,
    target: &Target,
    driven: Driven,
    stop: &Stop,
) -> Result<RunOutcome, RunError> {
    let died = driven
        .died
        .clone()
        .or_else(|| target.exit().map(|e| exit_record(e, driven.t0)));
    if let Some(exit) = &died {
        folder.writer.write(&Record::Event(Event {
            t: exit.t,
            kind: "target_exit".into(),
            detail: exit.cause.clone(),
        }));
    }
    target.stop();
    if let Some(detail) = target.finish_native(&folder.dir) {
        let t = sampler_secs(driven.t0);
        let kind = "heaptrack".into();
        folder
            .writer
            .write(&Record::Event(Event { t, kind, detail }));
    }
    let (load, load_error) = match driven.load {
        Some(Ok(r)) => (Some(r), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    if let Some(e) = &load_error {
        eprintln!("leakgate: the load failed: {e}");
    }
    let write_error = folder.writer.error().map(str::to_string);
    let judged = super::recover::judge_folder(
        &folder.dir,
        plan,
        load.as_ref(),
        driven.memory_limit,
        died.is_some(),
    );
    let super::recover::Judged {
        verdict,
        last_samples,
        diagnosis,
    } = judged.unwrap_or_else(|e| {
        eprintln!("leakgate: cannot read back samples.ndjson: {e}");
        Default::default()
    });
    let facts = Facts::of(
        died.is_some(),
        verdict.as_ref(),
        plan.watch.is_none() && load.as_ref().is_none_or(|r| r.fell_behind),
    );
    // Incomplete results are never judged as if whole: a lost sample file, a panicked worker.
    let exit = match (&load_error, &write_error) {
        _ if facts.target_died => ExitCode::TargetDied,
        (_, Some(_)) => ExitCode::Io,
        (Some(load::LoadError::Panicked(_)), _) => ExitCode::Internal,
        _ => exit_code(facts),
    };
    let mut summary = folder.summary(plan, target.pid(), exit);
    summary.target_exit = died;
    summary.load = load;
    summary.verdict = verdict;
    summary.last_samples = last_samples;
    summary.diagnosis = diagnosis;
    summary.error = write_error.or(load_error.map(|e| e.to_string()));
    summary.probe_problems = driven
        .probes
        .as_ref()
        .map(|p| p.problems.clone())
        .unwrap_or_default();
    summary.stopped = match &driven.decided {
        Some(d) => Some(summary::Stopped {
            t: d.t,
            reason: format!(
                "the verdict was decided ({}){}",
                match d.outcome {
                    crate::record::EvalOutcome::Leak => "leak",
                    _ => "pass",
                },
                if plan.soak.until_verdict {
                    " with --until-verdict"
                } else {
                    " in the extension after the planned end"
                }
            ),
            verdict_decided: true,
        }),
        None => stop.reason().map(|reason| summary::Stopped {
            t: driven.stopped_at.unwrap_or_else(|| sampler_secs(driven.t0)),
            reason,
            verdict_decided: false,
        }),
    };
    summary
        .write(&folder.dir)
        .map_err(|source| RunError::Results {
            path: folder.dir.join("summary.json"),
            source,
        })?;
    let run = write_reports(&folder.dir);
    Ok(RunOutcome {
        exit,
        run_dir: folder.dir,
        summary,
        heap: run.as_ref().and_then(|r| r.heap.clone()),
        native: run.as_ref().and_then(crate::report::native::section),
        goroutines: run.as_ref().and_then(|r| r.goroutines.clone()),
    })
}

/// Writes the reports from the files just written and hands back what they were made from; a
/// report that cannot be written costs the report, never the run's result (summary.json and
/// samples.ndjson are already on disk).
pub fn write_reports(run_dir: &Path) -> Option<crate::report::run_data::RunData> {
    let written = crate::report::run_data::RunData::load(run_dir)
        .and_then(|run| crate::report::write_run(&run).map(|_| run));
    match written {
        Ok(run) => Some(run),
        Err(e) => {
            eprintln!(
                "leakgate: warning: reports not written: {e} (retry: leakgate report {})",
                run_dir.display()
            );
            None
        }
    }
}

fn exit_record(e: crate::supervise::ExitInfo, t0: Instant) -> TargetExit {
    TargetExit {
        t: sampler_secs(t0),
        cause: e.cause,
        code: e.code,
        signal: e.signal,
        oom_killed: e.oom_killed,
    }
}

/// Polls the target every 50 ms and cancels the load the moment it is gone.
struct DeathWatch {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<Option<TargetExit>>,
}

fn death_watch(target: Arc<Target>, cancel: CancellationToken, t0: Instant) -> DeathWatch {
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

impl DeathWatch {
    fn finish(self) -> Option<TargetExit> {
        let _ = self.stop.send(());
        self.thread.join().ok().flatten()
    }
}

/// Sleeps `d` in small steps, ending early when stopped or when the target dies.
fn sleep_unless(d: Duration, cancel: &CancellationToken, target: &Target) {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() && !cancel.is_cancelled() && target.exit().is_none() {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
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
