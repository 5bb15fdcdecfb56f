//! A run folder read back: `summary.json` and `samples.ndjson`, the only inputs of every report.
//!
//! Reports are pure functions of these files, so `leakgate report RUN_DIR` rebuilds exactly the
//! bytes the run wrote.

use std::path::{Path, PathBuf};

use super::ReportError;
use super::summary::{SCHEMA_VERSION, Summary};
use crate::record::{Evaluation, Event, ProbeSample, Record, Window};

/// Everything the reports are made from.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The run folder.
    pub dir: PathBuf,
    /// `summary.json`.
    pub summary: Summary,
    /// Load windows in order.
    pub windows: Vec<Window>,
    /// Probe samples in time order (baseline first, drain sample last).
    pub samples: Vec<ProbeSample>,
    /// Events in time order.
    pub events: Vec<Event>,
    /// Rolling verdicts in time order.
    pub evaluations: Vec<Evaluation>,
    /// What grew between the heap profiles, when the run took them.
    pub heap: Option<Result<crate::heap::HeapDiff, String>>,
    /// heaptrack's table, when the target ran under it (or why there is none).
    pub native: Option<Result<crate::heap::HeapDiff, String>>,
    /// What grew between the goroutine dumps of a Go target, when the run took them.
    pub goroutines: Option<Result<crate::heap::GoroutineDiff, String>>,
    /// A JVM's live objects by class that grew between the class histograms, when taken.
    pub classes: Option<Result<crate::heap::HeapDiff, String>>,
}

impl RunData {
    /// Reads `dir/summary.json` and `dir/samples.ndjson` (a missing samples file is empty: a
    /// target that never came up leaves only the summary).
    pub fn load(dir: &Path) -> Result<Self, ReportError> {
        let summary = read_summary(dir)?;
        let records = read_samples(dir)?;
        Ok(Self::from_parts(dir, summary, records))
    }

    /// Builds the data from a summary and records already in memory (and the folder's heap
    /// profiles, when there are any).
    pub fn from_parts(dir: &Path, summary: Summary, records: Vec<Record>) -> Self {
        let mut windows = Vec::new();
        let mut samples = Vec::new();
        let mut events = Vec::new();
        let mut evaluations = Vec::new();
        for r in records {
            match r {
                Record::Window(w) => windows.push(w),
                Record::Probe(p) => samples.push(p),
                Record::Event(e) => events.push(e),
                Record::Evaluation(e) => evaluations.push(e),
            }
        }
        // Two threads append to the file; order by time so lines draw left to right.
        windows.sort_by_key(|w| w.index);
        samples.sort_by(|a, b| a.t.total_cmp(&b.t));
        events.sort_by(|a, b| a.t.total_cmp(&b.t));
        evaluations.sort_by(|a, b| a.t.total_cmp(&b.t));
        let mut heap = crate::heap::diff_run(dir);
        let goroutines = crate::heap::goroutines::diff_run(dir);
        // A heap site that is goroutines (runtime.malg) is called from the code starting them.
        if let (Some(Ok(h)), Some(Ok(g))) = (heap.as_mut(), goroutines.as_ref()) {
            crate::heap::goroutines::attribute(h, g);
        }
        let native = crate::heap::heaptrack::read_run(dir).or_else(|| {
            let why = events
                .iter()
                .rev()
                .find(|e| e.kind == "heaptrack")
                .map_or_else(
                    || "the run ended before its target was stopped and traced".to_string(),
                    |e| e.detail.clone(),
                );
            summary.plan.probes.native.map(|_| Err(why))
        });
        Self {
            dir: dir.to_path_buf(),
            summary,
            windows,
            samples,
            events,
            evaluations,
            heap,
            native,
            goroutines,
            classes: crate::heap::classes::diff_run(dir),
        }
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.summary.plan.name
    }

    /// Every signal name seen in any sample, sorted.
    pub fn signal_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .samples
            .iter()
            .flat_map(|s| s.signals.keys().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// (t, value) of one signal, in time order.
    pub fn series(&self, signal: &str) -> Vec<(f64, f64)> {
        self.samples
            .iter()
            .filter_map(|s| {
                s.signals
                    .get(signal)
                    .filter(|v| v.is_finite())
                    .map(|v| (s.t, *v))
            })
            .collect()
    }

    /// Time span of everything recorded: (first, last) seconds since load start.
    pub fn time_range(&self) -> (f64, f64) {
        let ts = self
            .samples
            .iter()
            .map(|s| s.t)
            .chain(self.windows.iter().flat_map(|w| [w.start, w.end]));
        let (lo, hi) = ts.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), t| {
            (lo.min(t), hi.max(t))
        });
        if lo.is_finite() { (lo, hi) } else { (0.0, 0.0) }
    }
}

/// A run folder's `summary.json`, refused when another schema version wrote it.
pub fn read_summary(dir: &Path) -> Result<Summary, ReportError> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Read {
        path: path.clone(),
        source,
    })?;
    let summary: Summary = serde_json::from_str(&text).map_err(|e| ReportError::Parse {
        path: path.clone(),
        line: e.line(),
        message: e.to_string(),
    })?;
    if summary.schema_version != SCHEMA_VERSION {
        return Err(ReportError::Version {
            path,
            found: summary.schema_version,
        });
    }
    Ok(summary)
}

/// Every record of a run folder's samples: its sealed segments in order, then
/// `samples.ndjson` (none when there are none: a target that never came up leaves only the
/// summary). A torn last line of a file (a killed run) is skipped.
pub fn read_samples(dir: &Path) -> Result<Vec<Record>, ReportError> {
    crate::store::read_dir_records(dir).map_err(|e| match e {
        crate::store::ReadError::Io { path, source } => ReportError::Read { path, source },
        crate::store::ReadError::Parse {
            path,
            line,
            message,
        } => ReportError::Parse {
            path,
            line,
            message,
        },
    })
}
