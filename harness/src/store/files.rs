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
    bytes: u64,
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
        bytes: bytes.len() as u64,
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
/// A torn last line is dropped; a file that would not change is not rewritten. Meant for
/// sealed segments: a writer still appending to `path` would go on writing to the old file.
pub fn compact_file(path: &Path, cutoff: f64, bucket: f64) -> std::io::Result<CompactStats> {
    let file = read_file(path).map_err(|e| match e {
        ReadError::Io { source, .. } => {
            std::io::Error::new(source.kind(), format!("{}: {source}", path.display()))
        }
        parse @ ReadError::Parse { .. } => {
            std::io::Error::new(std::io::ErrorKind::InvalidData, parse.to_string())
        }
    })?;
    let unchanged = CompactStats {
        lines_before: file.lines,
        lines_after: file.lines,
        bytes_before: file.bytes,
        bytes_after: file.bytes,
    };
    let compacted = compact(file.records.clone(), cutoff, bucket);
    if compacted == file.records && !file.torn {
        return Ok(unchanged);
    }
    let tmp = tmp_path(path);
    let written = replace(path, &tmp, &compacted);
    if written.is_err() {
        // Best effort: the old file is still whole, only the partial copy goes.
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(CompactStats {
        lines_after: compacted.len(),
        bytes_after: written?,
        ..unchanged
    })
}

/// `<path>.tmp`, in the same folder (a rename is atomic only within one file system).
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes `records` to `tmp`, syncs it, renames it over `path` and syncs the folder; returns
/// the new size.
fn replace(path: &Path, tmp: &Path, records: &[Record]) -> std::io::Result<u64> {
    let mut out = BufWriter::new(File::create(tmp)?);
    for r in records {
        serde_json::to_writer(&mut out, r).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let size = file.metadata()?.len();
    drop(file);
    std::fs::rename(tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // The rename is durable once the folder is synced; not every system lets a folder be opened.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(size)
}

#[cfg(test)]
mod tests;
