//! A JVM's heap by class: `jcmd <pid> GC.class_histogram` taken before and after the load
//! (`classes-start.txt`, `classes-end.txt`), compared into a [`HeapDiff`] whose sites are
//! classes, so the reports show which type grew.
//!
//! The histogram counts live objects only (jcmd runs a full collection first), every object,
//! not a sample: a class that grew by a few kilobytes did. Lines look like
//! `   1:         12978         986960  [B (java.base@17.0.15)` (rank, instances, bytes, the
//! class and, from JDK 9 on, its module); the last is `Total  <instances>  <bytes>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{HeapDiff, Site};

/// File name of the class histogram taken before the load.
pub const START_NAME: &str = "classes-start.txt";
/// File name of the class histogram taken after the load.
pub const END_NAME: &str = "classes-end.txt";
/// How long one `jcmd` may take (it attaches, then collects the whole heap).
const JCMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a class histogram could not be taken or compared.
#[derive(Debug, thiserror::Error)]
pub enum ClassesError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not a class histogram.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// `jcmd` could not be run, or failed.
    #[error("jcmd {pid} GC.class_histogram: {message}")]
    Jcmd {
        /// The JVM's pid.
        pid: u32,
        /// What happened.
        message: String,
    },
}

/// One class's live objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Count {
    /// Live instances.
    pub instances: i64,
    /// Their bytes (shallow sizes).
    pub bytes: i64,
}

/// A parsed histogram: every class by its Java name, and the total line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// Classes by name (`byte[]`, `java.util.HashMap$Node`).
    pub classes: BTreeMap<String, Count>,
    /// The `Total` line (the sum of the classes when it is missing).
    pub total: Count,
}

/// Parses `jcmd GC.class_histogram` (or `jmap -histo`) output.
pub fn parse(text: &str) -> Result<Histogram, String> {
    let mut h = Histogram::default();
    let mut total = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Total") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if let [i, b] = f[..] {
                total = Some(Count {
                    instances: number(i, n)?,
                    bytes: number(b, n)?,
                });
            }
            continue;
        }
        // "RANK: INSTANCES BYTES NAME [(MODULE)]"; headers and the pid line are skipped.
        let Some((rank, rest)) = line.split_once(':') else {
            continue;
        };
        if rank.is_empty() || !rank.bytes().all(|b| b.is_ascii_digit()) || rest.is_empty() {
            continue;
        }
        let mut f = rest.split_whitespace();
        let (Some(i), Some(b), Some(name)) = (f.next(), f.next(), f.next()) else {
            return Err(format!(
                "line {}: want rank, instances, bytes, class",
                n + 1
            ));
        };
        let c = Count {
            instances: number(i, n)?,
            bytes: number(b, n)?,
        };
        // One name can appear twice (two class loaders): add them up.
        let e = h.classes.entry(java_name(name)).or_default();
        e.instances = e.instances.saturating_add(c.instances);
        e.bytes = e.bytes.saturating_add(c.bytes);
    }
    if h.classes.is_empty() {
        return Err("no class lines (not a GC.class_histogram output)".into());
    }
    h.total = total.unwrap_or_else(|| {
        h.classes.values().fold(Count::default(), |t, c| Count {
            instances: t.instances.saturating_add(c.instances),
            bytes: t.bytes.saturating_add(c.bytes),
        })
    });
    Ok(h)
}

fn number(s: &str, line: usize) -> Result<i64, String> {
    s.parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| format!("line {}: {s:?} is not a count", line + 1))
}

/// The Java spelling of a JVM class name: `[B` is `byte[]`, `[[I` is `int[][]`,
/// `[Ljava.lang.String;` is `java.lang.String[]`; other names are left as they are.
pub fn java_name(jvm: &str) -> String {
    let dims = jvm.bytes().take_while(|b| *b == b'[').count();
    if dims == 0 {
        return jvm.to_string();
    }
    let elem = &jvm[dims..];
    let base = match elem {
        "B" => "byte",
        "C" => "char",
        "D" => "double",
        "F" => "float",
        "I" => "int",
        "J" => "long",
        "S" => "short",
        "Z" => "boolean",
        _ => match elem.strip_prefix('L').and_then(|e| e.strip_suffix(';')) {
            Some(class) => class,
            None => return jvm.to_string(),
        },
    };
    format!("{base}{}", "[]".repeat(dims))
}

/// Compares two histograms: the `top` classes whose bytes grew most. Each site is a class;
/// its `at` holds the instance counts (`1204 → 51210 instances`).
pub fn diff(start: &Histogram, end: &Histogram, top: usize) -> HeapDiff {
    let mut grew: Vec<(Site, i64)> = end
        .classes
        .iter()
        .filter_map(|(name, e)| {
            let s = start.classes.get(name).copied().unwrap_or_default();
            (e.bytes > s.bytes).then(|| {
                let site = Site {
                    function: name.clone(),
                    at: Some(format!("{} → {} instances", s.instances, e.instances)),
                    callers: Vec::new(),
                    start: s.bytes,
                    end: e.bytes,
                };
                (site, e.bytes - s.bytes)
            })
        })
        .collect();
    // Name breaks ties, so the same histograms always give the same table.
    grew.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.function.cmp(&b.0.function)));
    HeapDiff {
        sample_type: "live objects by class".into(),
        unit: "bytes".into(),
        start_total: start.total.bytes,
        end_total: end.total.bytes,
        sites: grew.into_iter().take(top).map(|(s, _)| s).collect(),
    }
}

/// Reads and compares two histogram files.
pub fn diff_files(start: &Path, end: &Path, top: usize) -> Result<HeapDiff, ClassesError> {
    let read = |path: &Path| {
        let text = std::fs::read_to_string(path).map_err(|source| ClassesError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        parse(&text).map_err(|message| ClassesError::Parse {
            path: path.to_path_buf(),
            message,
        })
    };
    Ok(diff(&read(start)?, &read(end)?, top))
}

/// The class diff of a run folder: `None` unless it holds both histograms. An error names
/// the file by its name only, so reports read the same wherever the folder is.
pub fn diff_run(dir: &Path) -> Option<Result<HeapDiff, String>> {
    let (start, end) = (dir.join(START_NAME), dir.join(END_NAME));
    if !start.exists() || !end.exists() {
        return None;
    }
    Some(diff_files(&start, &end, super::TOP).map_err(|e| {
        let name = |p: &Path| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        };
        match e {
            ClassesError::Io { path, source } => format!("cannot read {}: {source}", name(&path)),
            ClassesError::Parse { path, message } => format!("{}: {message}", name(&path)),
            other => other.to_string(),
        }
    }))
}

/// For a run: when the process `pid` is a JVM (it has an hsperfdata file) and `jcmd` is on
/// PATH, takes its class histogram into `run_dir/name` and returns the event's detail (also
/// when it failed); None otherwise.
pub fn capture_for_run(pid: Option<u32>, run_dir: &Path, name: &str) -> Option<String> {
    let pid = pid?;
    crate::probe::hsperf::find(pid)?;
    let path = run_dir.join(name);
    match capture(pid, &path) {
        Ok(false) => None,
        Ok(true) => {
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            Some(format!(
                "{name}: {size} bytes from jcmd {pid} GC.class_histogram"
            ))
        }
        Err(e) => Some(format!("{name}: {e}")),
    }
}

/// Runs `jcmd <pid> GC.class_histogram` into `path`: `Ok(false)` when there is no `jcmd` on
/// PATH, an error when it fails, times out, or writes no histogram. Only for a JVM: to reach
/// one that has not started its attach listener yet, jcmd sends it SIGQUIT.
pub fn capture(pid: u32, path: &Path) -> Result<bool, ClassesError> {
    let io = |source| ClassesError::Io {
        path: path.to_path_buf(),
        source,
    };
    let jcmd = |message: String| ClassesError::Jcmd { pid, message };
    let file = std::fs::File::create(path).map_err(io)?;
    // Straight into the file: a large histogram never fills a pipe nobody reads.
    let child = Command::new("jcmd")
        .arg(pid.to_string())
        .arg("GC.class_histogram")
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let _ = std::fs::remove_file(path);
            return Ok(false);
        }
        Err(e) => return Err(jcmd(e.to_string())),
    };
    let deadline = Instant::now() + JCMD_TIMEOUT;
    let status = loop {
        match child.try_wait().map_err(|e| jcmd(e.to_string()))? {
            Some(s) => break s,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(jcmd(format!("no answer in {JCMD_TIMEOUT:?}")));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    if !status.success() || parse(&text).is_err() {
        // jcmd reports attach failures on stdout, with status 0 at times; no half file stays.
        let _ = std::fs::remove_file(path);
        let said = format!("{} {}", text.trim(), err.trim());
        return Err(jcmd(format!("{status}: {}", said.trim())));
    }
    Ok(true)
}

#[cfg(test)]
#[path = "classes/tests.rs"]
mod tests;
