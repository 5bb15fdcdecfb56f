//! heap: what grew in the target's heap between the profile taken before the load and the one
//! taken after it (`heap-start.pb.gz`, `heap-end.pb.gz`), by allocation site; and what the C
//! library's allocator still held when a target run under heaptrack stopped (`heaptrack`); for a JVM, what
//! grew by class between two class histograms (`classes`).

pub mod classes;
pub mod diff;
pub mod goroutines;
pub mod heaptrack;
pub mod pprof;

use std::path::{Path, PathBuf};

pub use diff::{HeapDiff, Site};
pub use goroutines::{GoroutineDiff, GoroutineGroup};

/// File name of the heap profile taken before the load.
pub const START_NAME: &str = "heap-start.pb.gz";
/// File name of the heap profile taken after the load.
pub const END_NAME: &str = "heap-end.pb.gz";
/// Sites a report lists.
pub const TOP: usize = 10;

/// Why a heap diff could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HeapError {
    /// A profile could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not a pprof profile, or the two cannot be compared.
    #[error("{path}: {message}")]
    Profile {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

/// Reads and compares two profile files, keeping the `top` sites that grew most.
pub fn diff_files(start: &Path, end: &Path, top: usize) -> Result<HeapDiff, HeapError> {
    let read = |path: &Path| {
        let bytes = std::fs::read(path).map_err(|source| HeapError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        pprof::Profile::decode_bytes(&bytes).map_err(|message| HeapError::Profile {
            path: path.to_path_buf(),
            message,
        })
    };
    let (a, b) = (read(start)?, read(end)?);
    diff::diff(&a, &b, top).map_err(|message| HeapError::Profile {
        path: end.to_path_buf(),
        message,
    })
}

/// The diff of a run folder's two profiles: `None` when the run took none. An error names the
/// file by its name only, so reports read the same wherever the folder is.
pub fn diff_run(dir: &Path) -> Option<Result<HeapDiff, String>> {
    let start = dir.join(START_NAME);
    // The end profile, or for a run cut off before its end the latest scheduled one.
    let end = Some(dir.join(END_NAME))
        .filter(|p| p.exists())
        .or_else(|| scheduled(dir).pop())?;
    if !start.exists() {
        return None;
    }
    Some(diff_files(&start, &end, TOP).map_err(|e| e.brief()))
}

impl HeapError {
    /// The error with files named by their name only, so reports read the same wherever the
    /// folder is.
    pub fn brief(&self) -> String {
        match self {
            HeapError::Read { path, source } => format!("cannot read {}: {source}", name(path)),
            HeapError::Profile { path, message } => format!("{}: {message}", name(path)),
        }
    }
}

/// File name of the `n`-th scheduled heap profile (`heap_profile_every`).
pub fn scheduled_name(n: u32) -> String {
    format!("heap-{n:05}.pb.gz")
}

/// The scheduled heap profiles of a run folder, oldest first.
pub fn scheduled(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.len() == "heap-00000.pb.gz".len()
                            && n.starts_with("heap-")
                            && n[5..10].bytes().all(|b| b.is_ascii_digit())
                            && n.ends_with(".pb.gz")
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Deletes all but the latest `keep` scheduled profiles (`heap-start.pb.gz` always stays).
pub fn prune_scheduled(dir: &Path, keep: usize) {
    let all = scheduled(dir);
    for p in &all[..all.len().saturating_sub(keep.max(1))] {
        let _ = std::fs::remove_file(p);
    }
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_profiles_keep_the_latest_and_stand_in_for_a_missing_end() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join(START_NAME), b"not a profile").unwrap();
        assert!(
            diff_run(d).is_none(),
            "no end and nothing scheduled: no diff"
        );
        for n in 1..=5 {
            std::fs::write(d.join(scheduled_name(n)), b"x").unwrap();
        }
        std::fs::write(d.join("heap-notes.txt"), b"x").unwrap();
        prune_scheduled(d, 2);
        let left: Vec<String> = scheduled(d)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["heap-00004.pb.gz", "heap-00005.pb.gz"]);
        assert!(d.join(START_NAME).exists() && d.join("heap-notes.txt").exists());
        // A run cut off before its end profile is compared with its latest scheduled one.
        let err = diff_run(d).expect("a diff is attempted").unwrap_err();
        assert!(
            err.contains(START_NAME) || err.contains("heap-00005.pb.gz"),
            "{err}"
        );
    }
}
