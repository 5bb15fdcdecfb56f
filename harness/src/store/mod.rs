//! Keeping a long run's `samples.ndjson` small: old records merged per minute, segment files.
//!
//! A soak run appends a window a second and a probe sample a tick. [`compact`] merges the
//! records older than a cutoff into one per bucket (windows exactly: their HdrHistograms add
//! losslessly), and [`files`] reads a run folder's segments in order and rewrites a file
//! atomically.

pub mod compact;
pub mod files;
pub mod writer;

#[cfg(test)]
mod test_support;

pub use compact::compact;
pub use files::{
    CompactStats, LIVE, ReadError, compact_file, next_segment_path, read_dir_records, segment_paths,
};
pub use writer::Writer;
