//! The shard folders a merge reads, and the checks that they are shards of one run: the same
//! scenario, each index once, windows on one wall-clock grid.

use std::path::{Path, PathBuf};

use super::MergeError;
use crate::record::{Record, Window};
use crate::report::summary::Summary;

/// Window starts may differ from the common grid by this much (clock reads, sleeps).
const ALIGN_TOLERANCE_MS: u64 = 25;

/// One shard's folder, read.
#[derive(Debug)]
pub struct ShardRun {
    /// The folder.
    pub dir: PathBuf,
    /// Its `summary.json`.
    pub summary: Summary,
    /// Its `samples.ndjson`.
    pub records: Vec<Record>,
    /// Its load start, ms since the Unix epoch.
    pub t0_ms: u64,
}

impl ShardRun {
    /// Its shard index.
    pub fn index(&self) -> u32 {
        self.summary.plan.load.shard.map_or(0, |s| s.index)
    }

    /// Shards in its run.
    pub fn count(&self) -> u32 {
        self.summary.plan.load.shard.map_or(1, |s| s.count)
    }

    /// Its load windows.
    pub fn windows(&self) -> impl Iterator<Item = &Window> {
        self.records.iter().filter_map(|r| match r {
            Record::Window(w) => Some(w),
            _ => None,
        })
    }
}

/// Reads every folder (two or more).
pub fn read_all(dirs: &[PathBuf]) -> Result<Vec<ShardRun>, MergeError> {
    if dirs.len() < 2 {
        return Err(MergeError::Usage(format!(
            "merge needs the run folders of two or more shards; got {}",
            dirs.len()
        )));
    }
    dirs.iter().map(|d| read(d)).collect()
}

fn read(dir: &Path) -> Result<ShardRun, MergeError> {
    let bad = |what: String| MergeError::Input(format!("{}: {what}", dir.display()));
    let summary = crate::report::run_data::read_summary(dir).map_err(|e| bad(e.to_string()))?;
    if !summary.finished {
        return Err(bad(
            "the run has not finished (if it was killed, `leakgate report` on it judges what \
             it wrote; merge after that)"
                .into(),
        ));
    }
    if summary.plan.load.shard.is_none() {
        return Err(bad(
            "not a shard: the run was not started with --shard or --shards".into(),
        ));
    }
    let records = crate::report::run_data::read_samples(dir).map_err(|e| bad(e.to_string()))?;
    let t0_ms = summary
        .load_started_unix_ms
        .or_else(|| {
            records.iter().find_map(|r| match r {
                Record::Event(e) if e.kind == crate::run::LOAD_START => e.detail.parse().ok(),
                _ => None,
            })
        })
        .ok_or_else(|| bad("it does not say when its load started".into()))?;
    Ok(ShardRun {
        dir: dir.to_path_buf(),
        summary,
        records,
        t0_ms,
    })
}

/// The folders are the shards of one run: one scenario and load plan, each index of the same
/// count exactly once, and windows on one grid.
pub fn check(runs: &[ShardRun]) -> Result<(), MergeError> {
    let first = &runs[0];
    let name = |r: &ShardRun| r.dir.display().to_string();
    for r in &runs[1..] {
        let (a, b) = (&first.summary.plan, &r.summary.plan);
        if a.name != b.name {
            return Err(MergeError::Input(format!(
                "{} and {} are runs of different scenarios ({:?} and {:?})",
                name(first),
                name(r),
                a.name,
                b.name
            )));
        }
        let (mut la, mut lb) = (a.load.clone(), b.load.clone());
        (la.shard, lb.shard, la.seed, lb.seed) = (None, None, None, None);
        if la != lb {
            return Err(MergeError::Input(format!(
                "{} and {} ran scenario {:?} with different load plans (rates, phases, \
                 requests or target URL); shards of one run share one plan",
                name(first),
                name(r),
                a.name
            )));
        }
        if r.count() != first.count() {
            return Err(MergeError::Input(format!(
                "{} is shard {} of {}, but {} is shard {} of {}",
                name(first),
                first.index(),
                first.count(),
                name(r),
                r.index(),
                r.count()
            )));
        }
    }
    let n = first.count();
    let mut seen: Vec<Option<&ShardRun>> = vec![None; n as usize];
    for r in runs {
        let slot = &mut seen[r.index() as usize];
        if let Some(other) = slot {
            return Err(MergeError::Input(format!(
                "shard {}/{n} appears twice: {} and {}",
                r.index(),
                name(other),
                name(r)
            )));
        }
        *slot = Some(r);
    }
    let missing: Vec<String> = (0..n)
        .filter(|i| seen[*i as usize].is_none())
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Input(format!(
            "shard(s) {} of {n} missing: merge the folders of all {n} shards",
            missing.join(", ")
        )));
    }
    let window = first.summary.plan.load.window.as_millis().max(1) as u64;
    let t0 = runs.iter().map(|r| r.t0_ms).min().unwrap_or_default();
    for r in runs {
        let off = (r.t0_ms - t0) % window;
        if off.min(window - off) > ALIGN_TOLERANCE_MS {
            return Err(MergeError::Input(format!(
                "windows do not align: shard {} started {} ms after the first, not a whole \
                 number of {window} ms windows (shards start on whole seconds, or all at \
                 --start-at)",
                r.index(),
                r.t0_ms - t0
            )));
        }
    }
    Ok(())
}
