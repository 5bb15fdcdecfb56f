//! `samples.ndjson`: records appended one line at a time and flushed, so a crash loses nothing.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use crate::record::Record;

/// An append-only NDJSON file shared by the load collector and the sampler thread.
#[derive(Debug)]
pub struct NdjsonWriter {
    out: Mutex<BufWriter<File>>,
}

impl NdjsonWriter {
    /// Creates the file (never truncates an existing one: appends).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            out: Mutex::new(BufWriter::new(f)),
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
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| eprintln!("leakgate: cannot write samples.ndjson: {e}"));
        }
    }
}

/// Reads every record of an NDJSON file; a bad line is an error naming its number.
pub fn read(path: &Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}
