//! heaptrack: what the C library's allocator still held when a spawned target stopped
//! (`[probes] native = "heaptrack"`), by the function that allocated it.
//!
//! The target starts with heaptrack's preload library in `LD_PRELOAD`, which records every
//! malloc and free into `heaptrack.<program>.<pid>.raw` in the run folder. (The `heaptrack`
//! script is not the spawned command: it runs the program as a child of a shell, so the
//! supervised pid and every `/proc` signal would be the shell's, and the SIGTERM that ends a
//! run would stop the shell and leave the target running, its recording cut off.) Once the
//! target has stopped, `heaptrack_interpret` turns the recording into heaptrack's data file
//! (`heaptrack.<program>.<pid>.gz`, for heaptrack_gui) and `heaptrack_print` writes its leak
//! report (`heaptrack.leaks.txt`) and the bytes never freed by stack (`heaptrack.stacks.txt`),
//! which [`parse_stacks`] turns into the growth-by-site table.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::diff::{ALLOCATOR, CALLERS, is_library, matches_any};
use super::{HeapDiff, Site};

/// heaptrack_print's leak report, one per recording, in the run folder.
pub const LEAKS_NAME: &str = "heaptrack.leaks.txt";
/// Bytes never freed by stack (heaptrack_print's flame-graph file, leaked cost): the table.
pub const STACKS_NAME: &str = "heaptrack.stacks.txt";
/// The `HeapDiff::sample_type` of a heaptrack table.
pub const SAMPLE_TYPE: &str = "leaked";

/// Allocation functions of C and C++ besides those of [`ALLOCATOR`]: never a site.
const NATIVE_ALLOCATOR: &[&str] = &["operator new", "strdup", "strndup", "__strdup"];

/// Why heaptrack could not be used or read.
#[derive(Debug, thiserror::Error)]
pub enum HeaptrackError {
    /// heaptrack is not installed (or not where its script expects its libraries).
    #[error(
        "[probes] native = \"heaptrack\" needs heaptrack, which is not installed here ({what}): \
         install it (Debian: apt-get install heaptrack) or remove the key"
    )]
    Missing {
        /// What is missing.
        what: String,
    },
    /// A file of the recording could not be read or written.
    #[error("heaptrack: {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The target left no recording.
    #[error(
        "heaptrack: the target left no recording in the run folder (a static binary, or one \
         that clears LD_PRELOAD, is not traced)"
    )]
    NoRecording,
    /// heaptrack_interpret or heaptrack_print failed.
    #[error("heaptrack: {tool} failed on {file}: {message}")]
    Tool {
        /// The program.
        tool: &'static str,
        /// The recording.
        file: String,
        /// Its status and last words.
        message: String,
    },
}

/// Where heaptrack's parts are: found the way the `heaptrack` script finds them.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `libheaptrack_preload.so`.
    pub preload: PathBuf,
    /// `heaptrack_interpret`.
    pub interpret: PathBuf,
    /// `heaptrack_print`.
    pub print: PathBuf,
}

impl Tools {
    /// Finds `heaptrack` and `heaptrack_print` on PATH, and the library and interpreter in
    /// `../lib/heaptrack/` from the script's real location.
    pub fn find() -> Result<Self, HeaptrackError> {
        let missing = |what: String| HeaptrackError::Missing { what };
        let script = which("heaptrack").ok_or_else(|| missing("no `heaptrack` on PATH".into()))?;
        let print = which("heaptrack_print")
            .ok_or_else(|| missing("no `heaptrack_print` on PATH".into()))?;
        let real = script.canonicalize().unwrap_or(script);
        let lib = real
            .parent()
            .unwrap_or(Path::new("/"))
            .join("../lib/heaptrack");
        let preload = lib.join("libheaptrack_preload.so");
        let interpret = lib.join("libexec/heaptrack_interpret");
        for p in [&preload, &interpret] {
            if !p.is_file() {
                return Err(missing(format!("no {}", p.display())));
            }
        }
        Ok(Self {
            preload,
            interpret,
            print,
        })
    }

    /// The environment that makes `program` record into `run_dir`: heaptrack's library first
    /// in `LD_PRELOAD` (before any the command or leakgate already has), and the recording's
    /// path (heaptrack puts the pid in place of `$$`).
    pub fn env(
        &self,
        env: &BTreeMap<String, String>,
        run_dir: &Path,
        program: &str,
    ) -> Vec<(String, String)> {
        let dir = std::path::absolute(run_dir).unwrap_or_else(|_| run_dir.to_path_buf());
        let name = crate::run::file_safe(
            &Path::new(program)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let earlier = env
            .get("LD_PRELOAD")
            .cloned()
            .or_else(|| std::env::var("LD_PRELOAD").ok())
            .filter(|p| !p.is_empty());
        let preload = match earlier {
            Some(p) => format!("{}:{p}", self.preload.display()),
            None => self.preload.display().to_string(),
        };
        let out = dir.join(format!("heaptrack.{name}.$$.raw"));
        vec![
            ("LD_PRELOAD".into(), preload),
            ("DUMP_HEAPTRACK_OUTPUT".into(), out.display().to_string()),
        ]
    }

    /// Turns every recording in `run_dir` into heaptrack's data file, its leak report and the
    /// stacks table (run once the target has stopped); returns a line saying what was found.
    pub fn finish(&self, run_dir: &Path) -> Result<String, HeaptrackError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| HeaptrackError::Io { path, source }
        };
        let mut raws: Vec<PathBuf> = std::fs::read_dir(run_dir)
            .map_err(io(run_dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("heaptrack.") && n.ends_with(".raw"))
            })
            .collect();
        raws.sort();
        if raws.is_empty() {
            return Err(HeaptrackError::NoRecording);
        }
        let (mut leaks, mut stacks, mut data) = (String::new(), String::new(), Vec::new());
        for raw in &raws {
            let gz = raw.with_extension("gz");
            let gz_name = super::name(&gz);
            self.interpret(raw, &gz)?;
            let _ = std::fs::remove_file(raw);
            let table = run_dir.join(format!("{gz_name}.stacks"));
            let out = Command::new(&self.print)
                .arg("--file")
                .arg(&gz)
                .args([
                    "--print-peaks=0",
                    "--print-allocators=0",
                    "--print-temporary=0",
                    "--print-leaks=1",
                    "--peak-limit=10",
                    "--sub-peak-limit=3",
                    "--flamegraph-cost-type=leaked",
                    "--print-flamegraph",
                ])
                .arg(&table)
                .stdin(Stdio::null())
                .output()
                .map_err(io(&self.print))?;
            if !out.status.success() {
                let _ = std::fs::remove_file(&table);
                return Err(tool_error(
                    "heaptrack_print",
                    &gz_name,
                    out.status,
                    &out.stderr,
                ));
            }
            let text = std::fs::read_to_string(&table).map_err(io(&table))?;
            let _ = std::fs::remove_file(&table);
            leaks.push_str(&format!(
                "# {gz_name}\n{}\n",
                String::from_utf8_lossy(&out.stdout)
            ));
            stacks.push_str(&format!("# {gz_name}\n{}\n", text.trim_end()));
            data.push(gz_name);
        }
        let write = |name: &str, text: &str| {
            let path = run_dir.join(name);
            std::fs::write(&path, text).map_err(io(&path))
        };
        write(LEAKS_NAME, &leaks)?;
        write(STACKS_NAME, &stacks)?;
        let d = parse_stacks(&stacks, super::TOP).map_err(|message| HeaptrackError::Tool {
            tool: "heaptrack_print",
            file: STACKS_NAME.into(),
            message,
        })?;
        let top = d
            .sites
            .first()
            .map(|s| format!(", most by {} ({} bytes)", s.function, s.end))
            .unwrap_or_default();
        Ok(format!(
            "{}: {} bytes never freed{top}; {STACKS_NAME}, {LEAKS_NAME}",
            data.join(", "),
            d.end_total
        ))
    }

    /// `heaptrack_interpret < raw | gzip > gz`.
    fn interpret(&self, raw: &Path, gz: &Path) -> Result<(), HeaptrackError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| HeaptrackError::Io { path, source }
        };
        let input = std::fs::File::open(raw).map_err(io(raw))?;
        let mut child = Command::new(&self.interpret)
            .stdin(input)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io(&self.interpret))?;
        // Its stderr is read on the side, so neither pipe can fill up and stall it.
        let mut err = child.stderr.take();
        let errors = std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut v);
            }
            v
        });
        let file = std::fs::File::create(gz).map_err(io(gz))?;
        let mut enc = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::fast(),
        );
        let copied = match child.stdout.take() {
            Some(mut out) => std::io::copy(&mut out, &mut enc).map(|_| ()),
            None => Ok(()),
        };
        let finished = enc.finish().and_then(|mut w| w.flush());
        let status = child.wait().map_err(io(&self.interpret))?;
        let stderr = errors.join().unwrap_or_default();
        copied.and(finished).map_err(io(gz))?;
        if !status.success() {
            return Err(tool_error(
                "heaptrack_interpret",
                &super::name(raw),
                status,
                &stderr,
            ));
        }
        Ok(())
    }
}

fn tool_error(
    tool: &'static str,
    file: &str,
    status: std::process::ExitStatus,
    stderr: &[u8],
) -> HeaptrackError {
    let text = String::from_utf8_lossy(stderr);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    HeaptrackError::Tool {
        tool,
        file: file.into(),
        message: format!("{status}: {}", last.trim()),
    }
}

/// `name` on PATH, if it is there.
fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The run folder's heaptrack table, when the run wrote one.
pub fn read_run(dir: &Path) -> Option<Result<HeapDiff, String>> {
    let text = std::fs::read_to_string(dir.join(STACKS_NAME)).ok()?;
    Some(parse_stacks(&text, super::TOP).map_err(|e| format!("{STACKS_NAME}: {e}")))
}

/// Reads heaptrack_print's flame-graph file of leaked bytes (`frame;frame;...; bytes` per
/// line, outermost frame first, each `function (file)`; `#` lines are leakgate's comments) and
/// keeps the `top` sites that hold most: the first frame above the allocator and the standard
/// library, as in the pprof table.
pub fn parse_stacks(text: &str, top: usize) -> Result<HeapDiff, String> {
    let mut out: HashMap<String, (Site, i64)> = HashMap::new();
    let mut total = 0i64;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || format!("line {}: not `frames bytes`: {line:.80}", i + 1);
        let (stack, bytes) = line.rsplit_once(' ').ok_or_else(bad)?;
        let bytes: i64 = bytes.parse().map_err(|_| bad())?;
        if bytes <= 0 {
            continue;
        }
        total = total
            .checked_add(bytes)
            .ok_or_else(|| format!("line {}: bytes add up past 2^63", i + 1))?;
        // Innermost first.
        let frames: Vec<(String, Option<&str>)> = stack
            .split(';')
            .filter(|f| !f.trim().is_empty())
            .rev()
            .map(frame)
            .collect();
        let allocator = |n: &str| matches_any(n, ALLOCATOR) || matches_any(n, NATIVE_ALLOCATOR);
        let above = frames
            .iter()
            .rposition(|(n, _)| allocator(n))
            .map_or(0, |i| i + 1);
        let frames = &frames[above..];
        let Some(at) = frames
            .iter()
            .position(|(n, _)| !is_library(n))
            .or_else(|| (!frames.is_empty()).then_some(0))
        else {
            continue;
        };
        let (name, file) = &frames[at];
        let (site, largest) = out.entry(name.clone()).or_insert_with(|| {
            let site = Site {
                function: name.clone(),
                at: None,
                callers: Vec::new(),
                start: 0,
                end: 0,
            };
            (site, i64::MIN)
        });
        site.end = site.end.saturating_add(bytes);
        if bytes > *largest {
            *largest = bytes;
            site.at = file.map(str::to_string);
            site.callers = frames[at + 1..]
                .iter()
                .filter(|(n, _)| !is_library(n))
                .take(CALLERS)
                .map(|(n, _)| n.clone())
                .collect();
        }
    }
    let mut sites: Vec<Site> = out.into_values().map(|(s, _)| s).collect();
    sites.sort_by(|a, b| b.end.cmp(&a.end).then_with(|| a.function.cmp(&b.function)));
    sites.truncate(top);
    Ok(HeapDiff {
        sample_type: SAMPLE_TYPE.into(),
        unit: "bytes".into(),
        start_total: 0,
        end_total: total,
        sites,
    })
}

/// One frame: `function (file)`, `function`, or an address.
fn frame(raw: &str) -> (String, Option<&str>) {
    let raw = raw.trim();
    let (name, file) = match raw.rfind(" (") {
        Some(i) if raw.ends_with(')') => (&raw[..i], Some(&raw[i + 2..raw.len() - 1])),
        _ => (raw, None),
    };
    (demangle(name).into_owned(), file)
}

/// heaptrack names Rust functions by their legacy symbol only half demangled
/// (`_$LT$a..B$u20$as$u20$c..D$GT$::f::h0123456789abcdef`): rebuilt into the symbol and
/// demangled whole (`<a::B as c::D>::f`), hash dropped. Other names are kept.
fn demangle(name: &str) -> Cow<'_, str> {
    let parts: Vec<&str> = name.split("::").collect();
    let is_hash = |p: &str| {
        p.len() == 17 && p.starts_with('h') && p[1..].bytes().all(|b| b.is_ascii_hexdigit())
    };
    if parts.len() < 2 || !parts.last().is_some_and(|p| is_hash(p)) {
        return Cow::Borrowed(name);
    }
    let symbol: String = parts.iter().fold("_ZN".to_string(), |mut s, p| {
        s.push_str(&p.len().to_string());
        s.push_str(p);
        s
    }) + "E";
    match rustc_demangle::try_demangle(&symbol) {
        Ok(d) => Cow::Owned(format!("{d:#}")),
        Err(_) => Cow::Owned(parts[..parts.len() - 1].join("::")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// heaptrack_print --flamegraph-cost-type=leaked of rest-target --leak native, recorded by
    /// leakgate (rest-native-leak).
    const REST: &str = include_str!("heaptrack/rest-native-leak.stacks.txt");
    /// The same for a small C program (`heaptrack/leak.c`): C names, an unsymbolized frame,
    /// stacks that freed everything (0 bytes).
    const C: &str = include_str!("heaptrack/leak-c.stacks.txt");

    #[test]
    fn the_leaking_function_of_the_rust_target_is_on_top() {
        let d = parse_stacks(REST, 10).unwrap();
        assert_eq!(
            (d.sample_type.as_str(), d.unit.as_str()),
            ("leaked", "bytes")
        );
        let s = &d.sites[0];
        assert_eq!(s.function, "leak_native_buffer");
        assert_eq!(s.at.as_deref(), Some("native.rs"));
        assert_eq!(
            s.callers[0],
            "leakgate_targets::rest::Service::handle::{{closure}}"
        );
        assert!(s.end > 0 && s.start == 0 && s.growth() == s.end);
        assert!(d.end_total >= s.end);
    }

    #[test]
    fn c_stacks_sum_by_function_and_skip_what_was_freed() {
        let d = parse_stacks(C, 10).unwrap();
        let names: Vec<&str> = d.sites.iter().map(|s| s.function.as_str()).collect();
        assert_eq!(names[0], "leak_native_buffer", "{names:?}");
        let s = &d.sites[0];
        assert_eq!(s.end, 4096 * 1000);
        assert_eq!(s.at.as_deref(), Some("leak.c"));
        assert_eq!(s.callers, ["handler", "main"]);
        // main's own 100-byte buffer was freed: its zero line is no site.
        assert!(!names.contains(&"main"), "{names:?}");
        assert_eq!(d.end_total, d.sites.iter().map(|s| s.end).sum::<i64>());
    }

    #[test]
    fn rust_names_are_demangled_and_others_kept() {
        assert_eq!(
            demangle(
                "_$LT$hyper..proto..h1..dispatch..Server$LT$S$C$hyper..body..incoming..Incoming$GT$$u20$as$u20$hyper..proto..h1..dispatch..Dispatch$GT$::poll_msg::h14a1fc9a340ab514"
            ),
            "<hyper::proto::h1::dispatch::Server<S,hyper::body::incoming::Incoming> as hyper::proto::h1::dispatch::Dispatch>::poll_msg"
        );
        assert_eq!(
            demangle("std::panicking::catch_unwind::do_call::h889effa008bc59e1"),
            "std::panicking::catch_unwind::do_call"
        );
        for kept in [
            "leak_native_buffer",
            "0x7fd8704a57b9",
            "std::vector<int>::push_back(int&&)",
        ] {
            assert_eq!(demangle(kept), kept);
        }
        assert_eq!(frame("main (leak.c)"), ("main".to_string(), Some("leak.c")));
        assert_eq!(
            frame("0x7fd8704a57b9"),
            ("0x7fd8704a57b9".to_string(), None)
        );
    }

    #[test]
    fn garbage_is_refused_with_its_line_and_empty_input_is_no_leak() {
        let e = parse_stacks("# x\nmain;f; 12\nnot a stack\n", 5).unwrap_err();
        assert!(e.starts_with("line 3:"), "{e}");
        let d = parse_stacks("", 5).unwrap();
        assert!(d.sites.is_empty() && d.end_total == 0);
        // Allocator frames on top are skipped; a stack of library frames only still names one.
        let d = parse_stacks(
            "main;app::f;operator new(unsigned long); 8\nstd::rt::x; 4\n",
            5,
        )
        .unwrap();
        assert_eq!(d.sites[0].function, "app::f");
        assert_eq!(d.sites[1].function, "std::rt::x");
    }
}
