//! The append-only writer of a run's samples: one record a line, flushed as it is written, so a
//! crash loses nothing; compaction and sealing happen under its lock, so no line is lost either.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::files::{CompactStats, compact_file, next_segment_path, segment_paths};
use crate::record::Record;

/// An append-only NDJSON file shared by the load collector, the sampler and the housekeeping
/// thread.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    out: Mutex<BufWriter<File>>,
    /// The first write error: the file then misses records, and the run must say so.
    failed: std::sync::OnceLock<String>,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Writer {
    /// Opens `path` for appending (never truncates).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            out: Mutex::new(BufWriter::new(open_append(path)?)),
            failed: std::sync::OnceLock::new(),
        })
    }

    /// Appends one record and flushes it. Write errors are reported once on stderr and the run
    /// goes on: losing a sample must not stop the load.
    pub fn write(&self, record: &Record) {
        let Ok(mut out) = self.out.lock() else {
            return;
        };
        let res = serde_json::to_writer(&mut *out, record)
            .map_err(std::io::Error::other)
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush());
        if let Err(e) = res {
            let first = format!("cannot write {}: {e}", self.path.display());
            if self.failed.set(first.clone()).is_ok() {
                eprintln!("leakgate: {first}; the run goes on, but its results will be incomplete");
            }
        }
    }

    /// The first write error, if any record could not be written.
    pub fn error(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }

    /// Merges the records older than `cutoff` (seconds since load start) into one per `bucket`
    /// seconds, in the live file and in every sealed segment. Appends wait meanwhile and then
    /// go to the rewritten file.
    pub fn compact(&self, cutoff: f64, bucket: f64) -> std::io::Result<CompactStats> {
        let mut out = self
            .out
            .lock()
            .map_err(|_| std::io::Error::other("the samples writer is poisoned"))?;
        out.flush()?;
        let mut total = CompactStats::default();
        let dir = self.path.parent().unwrap_or(Path::new("."));
        for p in segment_paths(dir) {
            let s = compact_file(&p, cutoff, bucket)?;
            total.lines_before += s.lines_before;
            total.lines_after += s.lines_after;
            total.bytes_before += s.bytes_before;
            total.bytes_after += s.bytes_after;
        }
        *out = BufWriter::new(open_append(&self.path)?);
        release_freed_memory();
        Ok(total)
    }

    /// Seals the live file as the next numbered segment (`samples.00001.ndjson`, ...), which
    /// is never written again and can be copied off, and starts a new live file.
    pub fn seal(&self) -> std::io::Result<PathBuf> {
        let mut out = self
            .out
            .lock()
            .map_err(|_| std::io::Error::other("the samples writer is poisoned"))?;
        out.flush()?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let segment = next_segment_path(dir);
        std::fs::rename(&self.path, &segment)?;
        *out = BufWriter::new(open_append(&self.path)?);
        Ok(segment)
    }
}

/// Hands the memory a compaction freed back to the system: reading and merging an hour of
/// records allocates several MB at once, which glibc would otherwise keep, and leakgate's own
/// RSS must stay flat over a day-long soak.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ProbeSample, Window};
    use std::collections::BTreeMap;

    fn probe(t: f64) -> Record {
        Record::Probe(ProbeSample {
            t,
            cumulative_completed: (t * 10.0) as u64,
            signals: BTreeMap::from([("rss_bytes".to_string(), 100.0 + t)]),
            merged: None,
        })
    }

    #[test]
    fn seal_and_compact_lose_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let w = Writer::create(&dir.path().join(super::super::LIVE)).unwrap();
        for i in 0..180 {
            w.write(&probe(f64::from(i)));
            w.write(&Record::Window(Window {
                index: i as u64,
                start: f64::from(i),
                end: f64::from(i + 1),
                completed: 10,
                ..Default::default()
            }));
            if i == 89 {
                let seg = w.seal().unwrap();
                assert!(seg.ends_with("samples.00001.ndjson"), "{seg:?}");
            }
        }
        let stats = w.compact(120.0, 60.0).unwrap();
        assert!(stats.lines_after < stats.lines_before, "{stats:?}");
        // Written after the compaction: still lands in the live file.
        w.write(&probe(500.0));
        let records = super::super::read_dir_records(dir.path()).unwrap();
        let completed: u64 = records
            .iter()
            .filter_map(|r| match r {
                Record::Window(w) => Some(w.completed),
                _ => None,
            })
            .sum();
        assert_eq!(completed, 1800, "every window's count survives");
        let merged: u32 = records
            .iter()
            .filter_map(|r| match r {
                Record::Probe(p) if p.t < 500.0 => Some(p.merged.unwrap_or(1)),
                _ => None,
            })
            .sum();
        assert_eq!(merged, 180, "every sample is accounted for");
        assert!(
            records
                .iter()
                .any(|r| matches!(r, Record::Probe(p) if p.t == 500.0))
        );
        assert_eq!(segment_paths(dir.path()).len(), 2);
    }
}
