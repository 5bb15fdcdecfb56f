//! The stages of one run, in the order `run::execute` calls them (the first, open, is
//! `Folder::open`); each hands plain data to the next. A stage that ends the run early writes
//! the summary first (the folder promises one on every way out).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use super::folder::Folder;
use super::profiles::{self, Moment};
use super::recover;
use super::rolling::Decided;
use super::signals::Stop;
use super::target::{Target, TargetError};
use super::threads::{self, DeathWatch};
use super::{Facts, exit_code, sampler_secs};
use super::{RunError, RunOptions, RunOutcome};
use crate::exit::ExitCode;
use crate::load::{self, Prepared};
use crate::probe::{self, ProbeSet, sampler};
use crate::record::{Event, LoadReport, Record};
use crate::report::summary::{self, Summary, TargetExit};
use crate::scenario::plan::Plan;

/// Starts or finds the target and hands it to prepare; one that never came up still leaves
/// a summary.
pub fn start(plan: &Plan, folder: &Folder) -> Result<Arc<Target>, RunError> {
    let e = match Target::start(plan, &folder.dir) {
        Ok(t) => return Ok(Arc::new(t)),
        Err(e) => e,
    };
    // A watch names a service that must already run: not finding it is a usage mistake, not
    // a death.
    let err = match &e {
        TargetError::Supervise(crate::supervise::SuperviseError::Attach(m))
            if plan.watch.is_some() =>
        {
            RunError::Input(format!("cannot attach: {m}"))
        }
        _ => RunError::Target(e),
    };
    let mut s = folder.summary(plan, None, err.exit_code());
    // A missing profiler is the plan's problem (exit 65), not the target's.
    if err.exit_code() == ExitCode::TargetDied {
        s.target_exit = Some(TargetExit {
            t: 0.0,
            cause: err.to_string(),
            code: None,
            signal: None,
            oom_killed: false,
        });
    } else {
        s.error = Some(err.to_string());
    }
    folder.abandon(s);
    Err(err)
}

/// Compiles the load (gRPC reflection asks the target) and hands it to drive; a watch drives
/// none. A failure stops the target (dropped) before any load is sent and leaves a summary.
pub fn prepare(
    plan: &Plan,
    folder: &Folder,
    target: &Target,
) -> Result<Option<Prepared>, RunError> {
    let failed = |err: RunError| {
        let mut s = folder.summary(plan, target.pid(), err.exit_code());
        s.error = Some(err.to_string());
        folder.abandon(s);
        Err(err)
    };
    if plan.watch.is_none() {
        return load::prepare(&plan.load)
            .map(Some)
            .or_else(|e| failed(e.into()));
    }
    // The counter a watch is judged on must be there before the watch starts.
    if let Some(r) = &plan.probes.requests_from {
        let mut c = crate::probe::requests::RequestCounter::new(r.url.clone(), r.metric.clone());
        if let Err(e) = c.read() {
            return failed(RunError::Input(format!("--requests-from: {e}")));
        }
    }
    Ok(None)
}

/// The state after warming: the run clock, the probes and the request count.
pub struct Warm {
    t0: Instant,
    probes: ProbeSet,
    completed: Arc<AtomicU64>,
}

/// Takes the baseline sample and the first heap profile, starts the run clock (the baseline
/// lies just before t = 0) and hands clock and probes to drive.
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

/// Samples, evaluates and drives the load (a watch only waits) until the plan ends, the
/// target dies, the verdict is decided or the run is stopped; hands what happened to drain.
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
    let recent = threads::recent(plan);
    let on_sample = opts.on_sample.take();
    let sampler = threads::sampler(plan, folder, probes, t0, &completed, &recent, on_sample);
    let memory_limit = target.memory_limit().map(|(bytes, _)| bytes);
    let on_eval = std::mem::take(&mut opts.on_eval);
    let housekeeper =
        threads::housekeeper(plan, folder, t0, &recent, memory_limit, &opts.stop, on_eval);

    // A target that dies, and any stop, cancel the load at once.
    let load_cancel = opts.stop.token().child_token();
    let watch = DeathWatch::start(target.clone(), load_cancel.clone(), t0);
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
        threads::wait(until, &load_cancel);
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

/// Drain check, written to the folder for judge: the load stopped; wait, force a GC where
/// offered, sample again. Skipped for a watch (it stops no load), a dead target and a run
/// stopped by a signal.
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
    threads::sleep_unless(plan.probes.drain_wait, stop.token(), target);
    let d = sampler::sample_once(probes, driven.t0, &driven.completed);
    folder.writer.write(&Record::Probe(d));
}

/// What judge hands to write: the exit code and the final summary.
pub struct Judged {
    exit: ExitCode,
    summary: Summary,
}

/// Stops the target, judges everything the folder holds and hands the exit code and the
/// final summary to write.
pub fn judge(
    plan: &Plan,
    folder: &Folder,
    target: &Target,
    mut driven: Driven,
    stop: &Stop,
) -> Judged {
    let died = stop_target(folder, target, &driven);
    let (load, load_error) = match driven.load.take() {
        Some(Ok(r)) => (Some(r), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    if let Some(e) = &load_error {
        eprintln!("leakgate: the load failed: {e}");
    }
    let write_error = folder.writer.error().map(str::to_string);
    let judged = recover::judge_folder(
        &folder.dir,
        plan,
        load.as_ref(),
        driven.memory_limit,
        died.is_some(),
    );
    let recover::Judged {
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
    summary.stopped = stopped(plan, &driven, stop);
    Judged { exit, summary }
}

/// Records how the target ended, if it did, then stops it and turns a native heap recording
/// into its table (both must be in the folder before it is judged).
fn stop_target(folder: &Folder, target: &Target, driven: &Driven) -> Option<TargetExit> {
    let died = driven
        .died
        .clone()
        .or_else(|| target.exit().map(|e| threads::exit_record(e, driven.t0)));
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
    died
}

/// Why the run ended before its plan did, if it did: a decided verdict, or a stop.
fn stopped(plan: &Plan, driven: &Driven, stop: &Stop) -> Option<summary::Stopped> {
    match &driven.decided {
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
    }
}

/// Writes the final `summary.json` and the reports, and hands the outcome to the caller.
pub fn write(folder: Folder, judged: Judged) -> Result<RunOutcome, RunError> {
    let Judged { exit, summary } = judged;
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
