//! The run folder: created first with a provisional `summary.json`, so any later way out
//! leaves a folder `leakgate report` can judge; the target started and the load prepared
//! through it, so a run that ends before its load still writes its summary.

use std::path::PathBuf;
use std::sync::Arc;

use super::RunError;
use super::stages::{LOAD_START, write_reports};
use super::target::Target;
use crate::exit::ExitCode;
use crate::load::{self, Prepared};
use crate::record::{Event, Record};
use crate::report::summary::{Summary, TargetExit};
use crate::scenario::plan::Plan;
use crate::store::Writer as NdjsonWriter;

/// The run folder, its streamed samples, and the provisional summary.
pub struct Folder {
    pub(super) dir: PathBuf,
    pub(super) writer: Arc<NdjsonWriter>,
    started_at: String,
    /// When the load started (t = 0), ms since the Unix epoch.
    load_started: std::sync::OnceLock<u64>,
}

impl Folder {
    /// Creates the folder, opens `samples.ndjson` and writes a provisional `summary.json`
    /// (`finished: false`), so a run killed at any later moment leaves a folder that
    /// `leakgate report` can judge.
    pub fn open(plan: &Plan) -> Result<Self, RunError> {
        let started_at = super::now_rfc3339();
        let dir = super::create_run_dir(plan)?;
        let results_err = |path: PathBuf| move |source| RunError::Results { path, source };
        let samples_path = dir.join("samples.ndjson");
        let writer = Arc::new(
            NdjsonWriter::create(&samples_path).map_err(results_err(samples_path.clone()))?,
        );
        let folder = Self {
            dir,
            writer,
            started_at,
            load_started: std::sync::OnceLock::new(),
        };
        let mut provisional = folder.summary(plan, None, ExitCode::Inconclusive);
        provisional.finished = false;
        provisional.exit_reason = "the run has not finished (if leakgate is gone, it was \
                                   killed: `leakgate report` judges what was written)"
            .into();
        provisional
            .write(&folder.dir)
            .map_err(results_err(folder.dir.join("summary.json")))?;
        Ok(folder)
    }

    pub(super) fn summary(&self, plan: &Plan, pid: Option<u32>, exit: ExitCode) -> Summary {
        let mut s = Summary::new(plan, &self.started_at, pid, exit);
        s.load_started_unix_ms = self.load_started.get().copied();
        s
    }

    /// Notes the wall-clock instant of t = 0; a shard also records it in `samples.ndjson`
    /// (a `load_start` event), so `merge` can place even a shard that was cut off.
    pub(super) fn started(&self, plan: &Plan, unix_ms: u64) {
        let _ = self.load_started.set(unix_ms);
        if plan.load.shard.is_some() {
            self.writer.write(&Record::Event(Event {
                t: 0.0,
                kind: LOAD_START.into(),
                detail: unix_ms.to_string(),
            }));
        }
    }

    /// Starts or finds the target; a target that never came up still leaves a summary.
    pub fn start_target(&self, plan: &Plan) -> Result<Arc<Target>, RunError> {
        match Target::start(plan, &self.dir) {
            Ok(t) => Ok(Arc::new(t)),
            Err(e) => {
                // A watch names a service that must already run: not finding it is a usage
                // mistake, not a death.
                let err = match &e {
                    super::target::TargetError::Supervise(
                        crate::supervise::SuperviseError::Attach(m),
                    ) if plan.watch.is_some() => RunError::Input(format!("cannot attach: {m}")),
                    _ => RunError::Target(e),
                };
                let mut s = self.summary(plan, None, err.exit_code());
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
                self.abandon(s);
                Err(err)
            }
        }
    }

    /// Compiles the load (gRPC reflection asks the target); a watch drives none. A failure
    /// stops the target (dropped) before any load is sent and still leaves a summary.
    pub fn prepare_load(&self, plan: &Plan, target: &Target) -> Result<Option<Prepared>, RunError> {
        if plan.watch.is_some() {
            // The counter a watch is judged on must be there before the watch starts.
            if let Some(r) = &plan.probes.requests_from {
                let mut c =
                    crate::probe::requests::RequestCounter::new(r.url.clone(), r.metric.clone());
                if let Err(e) = c.read() {
                    let err = RunError::Input(format!("--requests-from: {e}"));
                    let mut s = self.summary(plan, target.pid(), err.exit_code());
                    s.error = Some(err.to_string());
                    self.abandon(s);
                    return Err(err);
                }
            }
            return Ok(None);
        }
        match load::prepare(&plan.load) {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                let err = RunError::from(e);
                let mut s = self.summary(plan, target.pid(), err.exit_code());
                s.error = Some(err.to_string());
                self.abandon(s);
                Err(err)
            }
        }
    }

    /// Writes the summary of a run that ended before its load, and the reports.
    fn abandon(&self, summary: Summary) {
        let _ = summary.write(&self.dir);
        write_reports(&self.dir);
    }
}
