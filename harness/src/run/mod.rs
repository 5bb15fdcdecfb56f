//! One run, from a validated plan to an exit code: target, probes, load, drain, verdict, files.
//!
//! Everything is streamed to the run folder as it happens (`samples.ndjson`), and
//! `summary.json` is written on every path out, including a dead target and Ctrl-C, so nothing
//! is lost when anything dies.

pub mod outcome;
pub mod target;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::exit::ExitCode;
use crate::load;
use crate::probe::{self, sampler, sampler::Sampler};
use crate::record::{Event, ProbeSample, Record};
use crate::report::ndjson::NdjsonWriter;
use crate::report::summary::{self, Summary, TargetExit};
use crate::scenario::plan::{Plan, TargetPlan};
use crate::verdict;

pub use outcome::{Facts, exit_code, steady_spans};
use target::Target;

/// Errors that end a run before a verdict is possible.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The run folder could not be created or written.
    #[error("cannot write results to {}: {source}", path.display())]
    Results {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The target could not be started, found or reached (exit 3).
    #[error(transparent)]
    Target(#[from] target::TargetError),
    /// The load plan could not be prepared (bad template, bad gRPC method: exit 65).
    #[error(transparent)]
    Load(#[from] load::LoadError),
}

impl RunError {
    /// The exit code this error maps to.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RunError::Results { .. } => ExitCode::Usage,
            RunError::Target(_) => ExitCode::TargetDied,
            RunError::Load(e) if e.is_plan_error() => ExitCode::BadScenario,
            RunError::Load(_) => ExitCode::FellBehind,
        }
    }
}

/// What a finished run hands back to the CLI.
#[derive(Debug)]
pub struct RunOutcome {
    /// The process exit code.
    pub exit: ExitCode,
    /// The run folder.
    pub run_dir: PathBuf,
    /// The summary as written: with the load report and the verdict, when there were any.
    pub summary: Summary,
    /// What grew between the heap profiles, as the reports show it, when the run took them.
    pub heap: Option<Result<crate::heap::HeapDiff, String>>,
}

/// Called for every closed load window.
pub type WindowHook = Box<dyn FnMut(&crate::record::Window) + Send>;
/// Called for every probe sample.
pub type SampleHook = Box<dyn FnMut(&ProbeSample) + Send>;

/// Options that are not part of the plan (how this invocation behaves).
#[derive(Default)]
pub struct RunOptions {
    /// Cancelled by Ctrl-C: the run stops early but still judges and writes everything.
    pub cancel: CancellationToken,
    /// Called for every closed load window (live progress).
    pub on_window: Option<WindowHook>,
    /// Called for every probe sample (live progress).
    pub on_sample: Option<SampleHook>,
}

/// Creates `results/<UTC time>-<name>/`.
pub fn create_run_dir(plan: &Plan) -> Result<PathBuf, RunError> {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "run".into());
    let safe: String = plan
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = plan.output.results_dir.join(format!("{stamp}-{safe}"));
    let mut dir = base.clone();
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = PathBuf::from(format!("{}-{n}", base.display()));
    }
    std::fs::create_dir_all(&dir).map_err(|source| RunError::Results {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// Runs `plan` to the end and returns its outcome; the run folder is complete on return.
pub fn execute(plan: &Plan, mut opts: RunOptions) -> Result<RunOutcome, RunError> {
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let run_dir = create_run_dir(plan)?;
    let results_err = |path: PathBuf| move |source| RunError::Results { path, source };
    let samples_path = run_dir.join("samples.ndjson");
    let writer =
        Arc::new(NdjsonWriter::create(&samples_path).map_err(results_err(samples_path.clone()))?);

    let target = match Target::start(plan, &run_dir) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            // Even a target that never came up leaves a summary behind.
            let summary = base_summary(plan, &started_at, None, ExitCode::TargetDied);
            let _ = Summary {
                target_exit: Some(TargetExit {
                    t: 0.0,
                    cause: e.to_string(),
                    code: None,
                    signal: None,
                    oom_killed: false,
                }),
                ..summary
            }
            .write(&run_dir);
            write_reports(&run_dir);
            return Err(e.into());
        }
    };
    // Prepared once the target is up (gRPC reflection asks it); a plan mistake stops the
    // target (dropped) and exits 65 before any load is sent.
    let prepared = load::prepare(&plan.load)?;
    let t0 = Instant::now();
    let completed = Arc::new(AtomicU64::new(0));
    let samples: Arc<Mutex<Vec<ProbeSample>>> = Arc::default();

    let mut probes = target.probes(&plan.probes);
    let baseline = sampler::sample_once(&mut probes, t0, &completed);
    let baseline = (!baseline.signals.is_empty()).then_some(baseline);
    if let Some(b) = &baseline {
        writer.write(&Record::Probe(b.clone()));
    }
    capture_heap(plan, &run_dir, "heap-start.pb.gz", t0, &writer);

    // The sampler runs on its own thread; the load path never waits for it.
    let sampler = {
        let writer = writer.clone();
        let samples = samples.clone();
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
                if let Ok(mut v) = samples.lock() {
                    v.push(s);
                }
            },
        )
    };

    // A target that dies cancels the load at once.
    let load_cancel = opts.cancel.child_token();
    let watch = death_watch(target.clone(), load_cancel.clone(), t0);

    let load_result = {
        let writer = writer.clone();
        let mut on_window = opts.on_window.take();
        let ctx = load::LoadContext {
            cancel: load_cancel.clone(),
            completed: completed.clone(),
            on_window: Box::new(move |w| {
                writer.write(&Record::Window(w.clone()));
                if let Some(f) = on_window.as_mut() {
                    f(w);
                }
            }),
        };
        load::run_prepared(&prepared, ctx)
    };
    // Give a target that is dying a moment to be seen dead (a kill during the last window).
    std::thread::sleep(Duration::from_millis(100));
    let died = watch.finish();

    let mut probes = sampler.stop();
    if died.is_none() {
        capture_heap(plan, &run_dir, "heap-end.pb.gz", t0, &writer);
    }
    // Drain check: load stopped; wait, force a GC where offered, sample again.
    let mut drained = None;
    if died.is_none() && !opts.cancel.is_cancelled() && probes.is_some() {
        writer.write(&Record::Event(Event {
            t: t0.elapsed().as_secs_f64(),
            kind: "drain".into(),
            detail: format!(
                "load stopped; waiting {:?} before the drain re-sample",
                plan.probes.drain_wait
            ),
        }));
        if let Some(url) = &plan.probes.force_gc_url {
            let _ = probe::http_get(url, Duration::from_secs(10));
        }
        sleep_unless_cancelled(plan.probes.drain_wait, &opts.cancel);
        if let Some(p) = probes.as_mut() {
            let d = sampler::sample_once(p, t0, &completed);
            writer.write(&Record::Probe(d.clone()));
            drained = Some(d);
        }
    }
    let died = died.or_else(|| target.exit().map(|e| exit_record(e, t0)));
    if let Some(exit) = &died {
        writer.write(&Record::Event(Event {
            t: exit.t,
            kind: "target_exit".into(),
            detail: exit.cause.clone(),
        }));
    }
    target.stop();
    let samples_vec = samples.lock().map(|v| v.clone()).unwrap_or_default();

    let load_report = load_result.ok();
    let verdict = died.is_none().then(|| {
        let input = verdict::VerdictInput {
            samples: samples_vec.clone(),
            steady: steady_spans(&plan.load),
            baseline: baseline.clone(),
            drained: drained.clone(),
            latency: load_report.as_ref().map(|r| verdict::LatencyObserved {
                p95_ms: r.steady_corrected.p95,
                p99_ms: r.steady_corrected.p99,
                error_rate: r.error_rate(),
            }),
            memory_limit: match &plan.target {
                TargetPlan::Spawn(s) => s.memory_limit,
                _ => None,
            },
        };
        verdict::judge(&input, &plan.gates)
    });

    let facts = Facts {
        target_died: died.is_some(),
        gate_failed: verdict
            .as_ref()
            .is_some_and(|v| v.outcome == verdict::Outcome::Fail),
        fell_behind: load_report.as_ref().is_none_or(|r| r.fell_behind),
        inconclusive: verdict
            .as_ref()
            .is_none_or(|v| v.outcome == verdict::Outcome::Inconclusive),
    };
    let exit = exit_code(facts);
    let mut summary = base_summary(plan, &started_at, target.pid(), exit);
    summary.target_exit = died;
    summary.load = load_report;
    summary.verdict = verdict;
    summary.last_samples = samples_vec.iter().rev().take(5).rev().cloned().collect();
    summary
        .write(&run_dir)
        .map_err(results_err(run_dir.join("summary.json")))?;
    let heap = write_reports(&run_dir);
    Ok(RunOutcome {
        exit,
        run_dir,
        summary,
        heap,
    })
}

/// Writes the reports from the files just written and hands back their heap diff; a report
/// that cannot be written costs the report, never the run's result (summary.json and
/// samples.ndjson are already on disk).
fn write_reports(run_dir: &Path) -> Option<Result<crate::heap::HeapDiff, String>> {
    let written = crate::report::run_data::RunData::load(run_dir)
        .and_then(|run| crate::report::write_run(&run).map(|_| run.heap));
    match written {
        Ok(heap) => heap,
        Err(e) => {
            eprintln!(
                "leakgate: warning: reports not written: {e} (retry: leakgate report {})",
                run_dir.display()
            );
            None
        }
    }
}

/// Saves a heap profile (pprof, as Go and jemalloc_pprof serve it) into the run folder, so
/// `go tool pprof -diff_base heap-start.pb.gz heap-end.pb.gz` shows what grew.
fn capture_heap(
    plan: &Plan,
    run_dir: &std::path::Path,
    name: &str,
    t0: Instant,
    writer: &NdjsonWriter,
) {
    let Some(url) = &plan.probes.heap_profile_url else {
        return;
    };
    let detail = match probe::http_get(url, Duration::from_secs(30)) {
        Ok(body) => match std::fs::write(run_dir.join(name), &body) {
            Ok(()) => format!("{name}: {} bytes from {url}", body.len()),
            Err(e) => format!("{name}: cannot write: {e}"),
        },
        Err(e) => format!("{name}: {e}"),
    };
    writer.write(&Record::Event(Event {
        t: sampler::signed_secs(t0),
        kind: "heap_profile".into(),
        detail,
    }));
}

fn base_summary(plan: &Plan, started_at: &str, pid: Option<u32>, exit: ExitCode) -> Summary {
    Summary {
        schema_version: summary::SCHEMA_VERSION,
        leakgate_version: env!("CARGO_PKG_VERSION").into(),
        started_at: started_at.into(),
        plan: plan.clone(),
        target_pid: pid,
        target_exit: None,
        load: None,
        verdict: None,
        exit_code: exit.code(),
        exit_reason: summary::exit_reason(exit).into(),
        last_samples: Vec::new(),
    }
}

fn exit_record(e: crate::supervise::ExitInfo, t0: Instant) -> TargetExit {
    TargetExit {
        t: sampler::signed_secs(t0),
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

fn sleep_unless_cancelled(d: Duration, cancel: &CancellationToken) {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() && !cancel.is_cancelled() {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
}
