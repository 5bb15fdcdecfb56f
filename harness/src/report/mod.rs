//! report: the run's files and what people read.
//!
//! Every report is a pure function of `summary.json` and `samples.ndjson`, so the run and
//! `leakgate report RUN_DIR` write the same bytes.

pub mod charts;
pub mod compare;
pub mod goroutines;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod native;
pub mod run_data;
pub mod summary;
pub mod svg;
pub mod words;

use std::path::{Path, PathBuf};

use run_data::RunData;

/// File name of the HTML report inside a run folder.
pub const HTML_NAME: &str = "report.html";
/// File name of the Markdown summary inside a run folder.
pub const MARKDOWN_NAME: &str = "summary.md";
/// File name of the JUnit XML inside a run folder.
pub const JUNIT_NAME: &str = "junit.xml";

/// Why a report could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A run file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A run file is not what leakgate writes.
    #[error("{path}:{line}: not a leakgate run file: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// `summary.json` has a schema version this build does not read.
    #[error(
        "{path}: schema_version {found} is not {expected}, the version this leakgate reads; \
         use the leakgate that wrote the run",
        expected = summary::SCHEMA_VERSION
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// A report could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Reads the run folder and writes `junit.xml`, `summary.md` and `report.html` into it;
/// returns the paths written.
pub fn write_all(run_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    write_run(&RunData::load(run_dir)?)
}

/// Writes the reports of a run folder already read; returns the paths written.
pub fn write_run(run: &RunData) -> Result<Vec<PathBuf>, ReportError> {
    let run_dir = &run.dir;
    let files = [
        (JUNIT_NAME, junit::render(run)),
        (MARKDOWN_NAME, markdown::render(run, HTML_NAME)),
        (HTML_NAME, html::render(run)),
    ];
    let mut written = Vec::with_capacity(files.len());
    for (name, text) in files {
        let path = run_dir.join(name);
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// Temporary file renamed into place: a reader (a CI uploader) never sees half a report.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let err = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
