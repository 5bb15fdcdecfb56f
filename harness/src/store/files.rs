//! A run folder's samples on disk: sealed segment files, the live file, and compaction in place.
//!
//! A long run seals `samples.ndjson` now and then into `samples.00001.ndjson`,
//! `samples.00002.ndjson`, ... and starts a fresh live file; reading the folder means reading
//! the segments in number order, then the live file. A file is compacted by writing its new
//! content next to it and renaming it over the old one, so a kill at any moment leaves one of
//! the two whole.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::compact::compact;
use crate::record::Record;

/// The file a run appends to.
pub const LIVE: &str = "samples.ndjson";

/// Why a run folder's records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A line that is not a record (and not a torn last line).
    #[error("{}:{line}: not a samples.ndjson record: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What the parser said.
        message: String,
    },
}

/// What [`compact_file`] did to a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Non-blank lines before (a torn last line included).
    pub lines_before: usize,
    /// Lines after.
    pub lines_after: usize,
    /// File size before.
    pub bytes_before: u64,
    /// File size after.
    pub bytes_after: u64,
}

/// The number of a sealed segment's file name (`samples.00042.ndjson` → 42).
fn segment_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("samples.")?.strip_suffix(".ndjson")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Sealed segments of `dir` with their numbers, in number order.
fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((segment_number(e.file_name().to_str()?)?, e.path())))
        .collect();
    out.sort();
    out
}

/// The sealed segments of `dir` in order, then `samples.ndjson` if it exists.
pub fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = segments(dir).into_iter().map(|(_, p)| p).collect();
    let live = dir.join(LIVE);
    if live.is_file() {
        out.push(live);
    }
    out
}

/// The next free segment name of `dir`: one past the highest number there.
pub fn next_segment_path(dir: &Path) -> PathBuf {
    let next = segments(dir).last().map_or(1, |(n, _)| n.saturating_add(1));
    dir.join(format!("samples.{next:05}.ndjson"))
}

/// Every record of every segment of `dir`, in file order; a torn last line of a file (killed
/// mid-write: no final newline and not a record) is skipped.
pub fn read_dir_records(dir: &Path) -> Result<Vec<Record>, ReadError> {
    let mut out = Vec::new();
    for path in segment_paths(dir) {
        out.extend(read_file(&path)?.records);
    }
    Ok(out)
}

/// One file read back.
struct FileRecords {
    records: Vec<Record>,
    /// Non-blank lines, the torn one included.
    lines: usize,
    /// Whether a torn last line was skipped.
    torn: bool,
}

/// Reads one NDJSON file (as bytes: a torn line may end inside a UTF-8 sequence).
fn read_file(path: &Path) -> Result<FileRecords, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let ends_with_newline = bytes.last() == Some(&b'\n');
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if ends_with_newline {
        lines.pop();
    }
    let last = lines.len();
    let mut file = FileRecords {
        records: Vec::with_capacity(last),
        lines: 0,
        torn: false,
    };
    for (i, line) in lines.iter().enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        file.lines += 1;
        match serde_json::from_slice(line) {
            Ok(r) => file.records.push(r),
            Err(_) if i + 1 == last && !ends_with_newline => file.torn = true,
            Err(e) => {
                return Err(ReadError::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(file)
}

/// Compacts one file in place (see [`compact`]): the new content goes to `<path>.tmp`, is
/// synced, and renamed over `path`, so a kill at any moment leaves the old or the new file.
/// A torn last line is dropped; a file that would not change is not replaced. The file is
/// streamed: records newer than the cutoff are copied as they are, older ones merged a few
/// buckets at a time, so memory stays small however long the run (a soak's own RSS must not
/// step up at each compaction). Meant for a file no one appends to meanwhile (the writer holds
/// its lock).
pub fn compact_file(path: &Path, cutoff: f64, bucket: f64) -> std::io::Result<CompactStats> {
    let io = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let bytes_before = std::fs::metadata(path).map_err(io)?.len();
    let mut input = std::io::BufReader::new(File::open(path).map_err(io)?);
    let tmp = tmp_path(path);
    let result = (|| {
        let mut out = BufWriter::new(File::create(&tmp)?);
        let mut stream = Stream {
            cutoff,
            bucket,
            pending: Vec::new(),
            lines_before: 0,
            lines_after: 0,
            changed: false,
        };
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            if std::io::BufRead::read_until(&mut input, b'\n', &mut line)? == 0 {
                break;
            }
            number += 1;
            let whole = line.last() == Some(&b'\n');
            let text = if whole {
                &line[..line.len() - 1]
            } else {
                &line[..]
            };
            if text.trim_ascii().is_empty() {
                continue;
            }
            stream.lines_before += 1;
            match stamp(text) {
                Some(s) => stream.push(text, s, &mut out)?,
                // A torn last line (killed mid-write) is dropped; any other is an error.
                None if !whole => stream.changed = true,
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}:{number}: not a samples.ndjson record", path.display()),
                    ));
                }
            }
        }
        stream.flush_all(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        Ok((stream, file))
    })();
    let (stream, file) = match result {
        Ok(x) => x,
        Err(e) => {
            // Best effort: the old file is still whole, only the partial copy goes.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let unchanged = CompactStats {
        lines_before: stream.lines_before,
        lines_after: stream.lines_before,
        bytes_before,
        bytes_after: bytes_before,
    };
    if !stream.changed {
        drop(file);
        let _ = std::fs::remove_file(&tmp);
        return Ok(unchanged);
    }
    let installed = (|| {
        file.sync_all()?;
        let size = file.metadata()?.len();
        drop(file);
        std::fs::rename(&tmp, path)?;
        sync_dir(path);
        Ok::<u64, std::io::Error>(size)
    })();
    match installed {
        Ok(size) => Ok(CompactStats {
            lines_after: stream.lines_after,
            bytes_after: size,
            ..unchanged
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io(e))
        }
    }
}

/// What compaction needs to know of a line before parsing it whole.
#[derive(serde::Deserialize)]
struct Stamp {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    t: Option<f64>,
    #[serde(default)]
    start: Option<f64>,
    #[serde(default)]
    end: Option<f64>,
}

/// The line's kind and times, read without keeping its histograms; None when it is no record.
fn stamp(line: &[u8]) -> Option<Stamp> {
    serde_json::from_slice::<Stamp>(line).ok()
}

/// The streaming state of one compaction.
struct Stream {
    cutoff: f64,
    bucket: f64,
    /// Records old enough to merge (and the events among them), a few buckets' worth.
    pending: Vec<Record>,
    lines_before: usize,
    lines_after: usize,
    changed: bool,
}

/// Buckets gathered before merging; records arrive in time order give or take a second (two
/// threads write), so the last bucket gathered is kept for the next round.
const CHUNK_BUCKETS: f64 = 2.0;

impl Stream {
    /// The time a record is merged by, when it is old enough to be merged at all.
    fn old(&self, s: &Stamp) -> Option<f64> {
        match s.kind.as_str() {
            "window" => s.start.filter(|_| s.end.is_some_and(|e| e <= self.cutoff)),
            "probe" => s.t.filter(|t| *t >= 0.0 && *t < self.cutoff),
            _ => s.t.filter(|t| *t < self.cutoff),
        }
    }

    fn push(&mut self, text: &[u8], s: Stamp, out: &mut impl Write) -> std::io::Result<()> {
        let Some(t) = self.old(&s) else {
            // Newer than the cutoff: copied as it is, after what was gathered before it.
            self.flush_all(out)?;
            out.write_all(text)?;
            out.write_all(b"\n")?;
            self.lines_after += 1;
            return Ok(());
        };
        let b = (t / self.bucket).floor();
        let first = self
            .pending
            .first()
            .map(|r| (time_of(r) / self.bucket).floor());
        if first.is_some_and(|f| b >= f + CHUNK_BUCKETS) {
            self.flush_before((b - 1.0) * self.bucket, out)?;
        }
        let record: Record = serde_json::from_slice(text)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.pending.push(record);
        Ok(())
    }

    /// Merges and writes the gathered records older than `before`.
    fn flush_before(&mut self, before: f64, out: &mut impl Write) -> std::io::Result<()> {
        let (now, later): (Vec<Record>, Vec<Record>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|r| time_of(r) < before);
        self.pending = later;
        self.write_merged(now, out)
    }

    fn flush_all(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let all = std::mem::take(&mut self.pending);
        self.write_merged(all, out)
    }

    fn write_merged(&mut self, records: Vec<Record>, out: &mut impl Write) -> std::io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let n = records.len();
        let merged = compact(records, self.cutoff, self.bucket);
        self.changed |= merged.len() != n;
        for r in &merged {
            serde_json::to_writer(&mut *out, r).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
        }
        self.lines_after += merged.len();
        Ok(())
    }
}

/// The time a record is ordered by: a window's start, the others' t.
fn time_of(r: &Record) -> f64 {
    match r {
        Record::Window(w) => w.start,
        Record::Probe(p) => p.t,
        Record::Event(e) => e.t,
        Record::Evaluation(e) => e.t,
    }
}

/// Makes a rename in `path`'s folder durable (not every system lets a folder be opened).
fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `<path>.tmp`, in the same folder (a rename is atomic only within one file system).
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests;
