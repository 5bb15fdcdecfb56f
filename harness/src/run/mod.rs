//! One run, from a validated plan to an exit code, in stages that read top-down (`stages.rs`):
//! open the folder, start the target, prepare the load, warm (baseline, first heap profile),
//! drive (the load, or only a watch), drain, judge, write.
//!
//! Everything is streamed to the run folder as it happens (`samples.ndjson`). A provisional
//! `summary.json` (`finished: false`) is written first and the final one on every way out, so
//! a run cut off by `kill -9` is still judged later by `leakgate report` (see [`recover`]).

pub mod outcome;
mod profiles;
pub mod recent;
pub mod recover;
pub mod rolling;
pub mod signals;
pub mod target;

mod folder;
mod stages;
mod threads;

use std::path::PathBuf;

use crate::exit::ExitCode;
use crate::load;
use crate::record::ProbeSample;
use crate::report::summary::Summary;
use crate::scenario::plan::Plan;

pub use folder::LOAD_START;
pub use outcome::{Facts, exit_code};
pub use rolling::{EvalHook, horizon_words};
pub use signals::Stop;
pub use stages::write_reports;

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
    /// What the user named is not there: no such process or cgroup, no such counter (a
    /// watch: exit 64).
    #[error("{0}")]
    Input(String),
}

impl RunError {
    /// The exit code this error maps to.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RunError::Input(_) => ExitCode::Usage,
            RunError::Results { .. } => ExitCode::Io,
            RunError::Target(target::TargetError::Native(_)) => ExitCode::BadScenario,
            RunError::Target(_) | RunError::Load(load::LoadError::Target(_)) => {
                ExitCode::TargetDied
            }
            RunError::Load(load::LoadError::Panicked(_)) => ExitCode::Internal,
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
    /// The native heap section of the reports (heaptrack's table, or why RSS alone grew).
    pub native: Option<crate::report::native::Section>,
    /// What grew between the goroutine dumps, when the run took them.
    pub goroutines: Option<Result<crate::heap::GoroutineDiff, String>>,
}

/// Called for every closed load window.
pub type WindowHook = Box<dyn FnMut(&crate::record::Window) + Send>;
/// Called for every probe sample.
pub type SampleHook = Box<dyn FnMut(&ProbeSample) + Send>;

/// Options that are not part of the plan (how this invocation behaves).
#[derive(Default)]
pub struct RunOptions {
    /// Pulled by Ctrl-C, SIGTERM or a decided verdict: the run stops early but still judges
    /// and writes everything.
    pub stop: Stop,
    /// Called for every closed load window (live progress).
    pub on_window: Option<WindowHook>,
    /// Called for every probe sample (live progress).
    pub on_sample: Option<SampleHook>,
    /// Called for every rolling evaluation (live progress, live endpoints).
    pub on_eval: Vec<EvalHook>,
}

/// Creates `results/<UTC time>-<name>/`.
pub fn create_run_dir(plan: &Plan) -> Result<PathBuf, RunError> {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "run".into());
    let safe = file_safe(&plan.name);
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
    let folder = folder::Folder::open(plan)?;
    let target = stages::start(plan, &folder)?;
    let prepared = stages::prepare(plan, &folder, &target)?;
    let warm = stages::warm(plan, &folder, &target, &opts.stop);
    let mut driven = stages::drive(plan, &folder, &target, prepared.as_ref(), warm, &mut opts);
    stages::drain(plan, &folder, &target, &mut driven, &opts.stop);
    let judged = stages::judge(plan, &folder, &target, driven, &opts.stop);
    stages::write(folder, judged)
}

/// Seconds since `t0`, negative before it.
pub(crate) fn sampler_secs(t0: std::time::Instant) -> f64 {
    crate::probe::sampler::signed_secs(t0)
}

/// The current UTC time, RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `name` as a file name part: letters, digits, `-` and `_` kept, anything else `_`.
pub(crate) fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
