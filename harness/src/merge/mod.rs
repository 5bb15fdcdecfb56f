//! merge: one run folder from the folders of a sharded load (`leakgate merge`). Windows that
//! cover the same wall-clock span are added (HdrHistograms add exactly), the target's samples
//! come from the shard that sampled it (shard 0) with the merged request count on their
//! x-axis, and the verdict and every report are made as for a single run.

pub mod shards;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::exit::ExitCode;
use crate::record::{Event, ProbeSample, Record, Window};
use crate::report::summary::{self, Summary};
use crate::run::RunOutcome;
use crate::run::outcome::{Facts, exit_code};
use shards::ShardRun;

/// Why folders could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The command was given the wrong things (one folder, an output folder in use).
    #[error("{0}")]
    Usage(String),
    /// A folder is not a shard of the same run as the others.
    #[error("{0}")]
    Input(String),
    /// The merged folder could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl MergeError {
    /// The exit code: 64 for usage, 65 for folders that do not fit together, 74 for I/O.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            MergeError::Usage(_) => ExitCode::Usage,
            MergeError::Input(_) => ExitCode::BadScenario,
            MergeError::Write { .. } => ExitCode::Io,
        }
    }
}

/// Merges the shard folders `dirs` into `out` (created; it must not exist or be empty) and
/// judges the result.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<RunOutcome, MergeError> {
    let runs = shards::read_all(dirs)?;
    shards::check(&runs)?;
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MergeError::Write { path, source }
    };
    prepare_out(out)?;
    let t0 = runs.iter().map(|r| r.t0_ms).min().unwrap_or_default();
    let windows = merged_windows(&runs, t0)?;
    let sampler = runs.iter().find(|r| r.index() == 0).unwrap_or(&runs[0]);
    let shift = (sampler.t0_ms - t0) as f64 / 1000.0;
    let writer = crate::store::Writer::create(&out.join("samples.ndjson"))
        .map_err(write_err(&out.join("samples.ndjson")))?;
    for w in &windows {
        writer.write(&Record::Window(w.clone()));
    }
    for r in &sampler.records {
        match r {
            Record::Probe(p) => writer.write(&Record::Probe(ProbeSample {
                t: p.t + shift,
                cumulative_completed: completed_at(&windows, p.t + shift),
                ..p.clone()
            })),
            Record::Event(e) if e.kind != crate::run::LOAD_START => {
                writer.write(&Record::Event(Event {
                    t: e.t + shift,
                    ..e.clone()
                }))
            }
            _ => {}
        }
    }
    if let Some(e) = writer.error() {
        return Err(MergeError::Write {
            path: out.join("samples.ndjson"),
            source: std::io::Error::other(e.to_string()),
        });
    }
    drop(writer);
    copy_heap_profiles(&sampler.dir, out).map_err(write_err(out))?;

    let mut plan = sampler.summary.plan.clone();
    plan.load.shard = None;
    plan.output.results_dir = out.parent().map(Path::to_path_buf).unwrap_or_default();
    let refs: Vec<&Window> = windows.iter().collect();
    let mut load = crate::load::report_from_windows(&refs, &plan.load);
    let behind: Vec<u32> = runs
        .iter()
        .filter(|r| r.summary.load.as_ref().is_none_or(|l| l.fell_behind))
        .map(ShardRun::index)
        .collect();
    load.fell_behind = !behind.is_empty();
    // Rates over the span the shards drove (each its own duration from its start), not over
    // the windows' ends: a shard's closing window reaches past its planned end.
    let span = runs
        .iter()
        .filter_map(|r| {
            let l = r.summary.load.as_ref()?;
            let own = if l.completed_rate > 0.0 {
                l.completed as f64 / l.completed_rate
            } else {
                l.elapsed
            };
            Some((r.t0_ms - t0) as f64 / 1000.0 + own)
        })
        .fold(0.0, f64::max);
    if span > 0.0 {
        if load.planned_rate > 0.0 {
            load.planned_rate = load.planned as f64 / span;
        }
        load.achieved_rate = load.sent as f64 / span;
        load.completed_rate = load.completed as f64 / span;
    }
    load.threads = runs
        .iter()
        .filter_map(|r| r.summary.load.as_ref().map(|l| l.threads))
        .sum();
    let died = sampler.summary.target_exit.clone();
    let judged = crate::run::recover::judge_folder(out, &plan, Some(&load), None, died.is_some())
        .map_err(|e| MergeError::Input(e.to_string()))?;
    let exit = exit_code(Facts::of(
        died.is_some(),
        judged.verdict.as_ref(),
        load.fell_behind,
    ));
    let mut s = Summary::new(
        &plan,
        &sampler.summary.started_at,
        sampler.summary.target_pid,
        exit,
    );
    s.target_exit = died;
    s.load = Some(load);
    s.verdict = judged.verdict;
    s.last_samples = judged.last_samples;
    s.diagnosis = judged.diagnosis;
    s.load_started_unix_ms = Some(t0);
    s.probe_problems = sampler.summary.probe_problems.clone();
    s.merged = Some(summary::Merged {
        shards: sampler.count(),
        folders: runs.iter().map(|r| r.dir.display().to_string()).collect(),
        fell_behind: behind,
    });
    s.write(out).map_err(write_err(&out.join("summary.json")))?;
    let run = crate::run::write_reports(out);
    Ok(RunOutcome {
        exit,
        run_dir: out.to_path_buf(),
        summary: s,
        heap: run.as_ref().and_then(|r| r.heap.clone()),
        native: run.as_ref().and_then(crate::report::native::section),
        goroutines: run.as_ref().and_then(|r| r.goroutines.clone()),
    })
}

/// Creates `out`, which must not exist or be an empty folder (a merge never mixes runs).
fn prepare_out(out: &Path) -> Result<(), MergeError> {
    if out.exists() && std::fs::read_dir(out).map_or(true, |mut d| d.next().is_some()) {
        return Err(MergeError::Usage(format!(
            "--out {}: the folder exists and is not empty; give a new folder",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|source| MergeError::Write {
        path: out.to_path_buf(),
        source,
    })
}

/// The shards' windows added per wall-clock span, renumbered from the earliest start.
fn merged_windows(runs: &[ShardRun], t0: u64) -> Result<Vec<Window>, MergeError> {
    let mut groups: BTreeMap<(i64, i64), Vec<Window>> = BTreeMap::new();
    let window = runs[0].summary.plan.load.window.as_secs_f64().max(1e-3);
    for r in runs {
        // Onto the common grid: the shards' starts differ by whole windows and a few ms
        // (checked), which are dropped.
        let shift = ((r.t0_ms - t0) as f64 / 1000.0 / window).round() * window;
        for w in r.windows() {
            let key = ((w.start + shift) * 1000.0).round() as i64;
            let end = ((w.end + shift) * 1000.0).round() as i64;
            groups.entry((key, end)).or_default().push(Window {
                start: w.start + shift,
                end: w.end + shift,
                ..w.clone()
            });
        }
    }
    // Spans that overlap without being equal cannot be added (compacted differently).
    let spans: Vec<(i64, i64)> = groups.keys().copied().collect();
    if let Some(pair) = spans.windows(2).find(|p| p[1].0 < p[0].1) {
        return Err(MergeError::Input(format!(
            "windows do not align: {:.3}–{:.3} s and {:.3}–{:.3} s overlap (were the shards \
             compacted at different ages?)",
            pair[0].0 as f64 / 1e3,
            pair[0].1 as f64 / 1e3,
            pair[1].0 as f64 / 1e3,
            pair[1].1 as f64 / 1e3
        )));
    }
    let mut cumulative = 0u64;
    Ok(groups
        .into_values()
        .enumerate()
        .map(|(i, parts)| {
            let mut w = if parts.len() == 1 {
                parts[0].clone()
            } else {
                crate::store::compact::merge_windows(&parts)
            };
            // Parts lie side by side, not one after another: the merged window stands for
            // as many time slots as one of them.
            w.merged = parts[0].merged;
            w.index = i as u64;
            cumulative += w.completed;
            w.cumulative_completed = cumulative;
            w
        })
        .collect())
}

/// Requests the merged load had completed by `t` (seconds since the merged t0), interpolated
/// within the window holding `t`.
fn completed_at(windows: &[Window], t: f64) -> u64 {
    let mut done = 0u64;
    for w in windows {
        if t >= w.end {
            done = w.cumulative_completed;
        } else if t > w.start {
            let share = (t - w.start) / (w.end - w.start).max(1e-9);
            return done + (w.completed as f64 * share).round() as u64;
        } else {
            break;
        }
    }
    done
}

/// Copies the sampling shard's heap profiles (`heap-*.pb.gz`) so the heap table is made too.
fn copy_heap_profiles(from: &Path, to: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(from)?.flatten() {
        let name = e.file_name();
        let n = name.to_string_lossy();
        if n.starts_with("heap-") && n.ends_with(".pb.gz") {
            std::fs::copy(e.path(), to.join(&name))?;
        }
    }
    Ok(())
}
