//! The run folder: created first with a provisional `summary.json`, so any later way out
//! leaves a folder `leakgate report` can judge; a stage that ends the run before its load
//! writes the final summary through it (`abandon`).

use std::path::PathBuf;
use std::sync::Arc;

use super::RunError;
use super::stages::write_reports;
use crate::exit::ExitCode;
use crate::record::{Event, Record};
use crate::report::summary::Summary;
use crate::scenario::plan::Plan;
use crate::store::Writer as NdjsonWriter;

/// The event that records a shard's load start (ms since the Unix epoch in its detail).
pub const LOAD_START: &str = "load_start";

/// The run folder, its streamed samples, and the provisional summary.
pub struct Folder {
    pub(super) dir: PathBuf,
    pub(super) writer: Arc<NdjsonWriter>,
    started_at: String,
    /// When the load started (t = 0), ms since the Unix epoch.
    load_started: std::sync::OnceLock<u64>,
}

impl Folder {
    /// The open stage: creates the folder, opens `samples.ndjson`, writes a provisional
    /// `summary.json` (`finished: false`) and hands the folder to start; a run killed at any
    /// later moment leaves a folder that `leakgate report` can judge.
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

    /// Writes the summary of a run that ended before its load, and the reports.
    pub(super) fn abandon(&self, summary: Summary) {
        let _ = summary.write(&self.dir);
        write_reports(&self.dir);
    }
}
