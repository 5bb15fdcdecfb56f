//! What grew between two goroutine dumps of a Go target (`goroutines-start.txt`,
//! `goroutines-end.txt`), by where the goroutines wait and which code started them.
//!
//! The dumps are `/debug/pprof/goroutine?debug=2`: one block per goroutine with its wait
//! state (`[chan receive]`), its stack and a `created by F` line. That is the only form that
//! names the creator: `debug=1` and the protobuf profile group goroutines by their current
//! stack, which for a leaked goroutine ends at its own function (`main.watchItem`) and never
//! says which code ran the `go` statement. `debug=2` costs the target more per request (it
//! formats every goroutine), so it is fetched only at the start, at the end and on the
//! `goroutine_profile_every` schedule, never on each sampling tick.

use std::collections::HashMap;
use std::path::Path;

use super::{HeapDiff, HeapError};

/// File name of the goroutine dump taken before the load.
pub const START_NAME: &str = "goroutines-start.txt";
/// File name of the goroutine dump taken after the load.
pub const END_NAME: &str = "goroutines-end.txt";
/// File name of the latest scheduled dump (`goroutine_profile_every`), replaced each time.
pub const LATEST_NAME: &str = "goroutines-latest.txt";

/// Frames that are the Go runtime's own: a goroutine is "blocked in" the first frame after
/// them (`runtime.gopark`, `internal/poll.runtime_pollWait` say nothing about the code).
const RUNTIME: &[&str] = &["runtime.", "runtime/internal/", "internal/"];

/// Heap sites that are goroutines themselves (their `g` structs), allocated on the system
/// stack, so a heap profile cuts their stack before the code that ran `go`.
const GOROUTINE_ALLOC: &[&str] = &["runtime.malg", "runtime.newproc1", "runtime.allgadd"];

/// One goroutine of a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goroutine {
    /// Wait state without its duration: `select`, `chan receive`, `IO wait`, `running`.
    pub state: String,
    /// Function names of its stack, innermost first.
    pub frames: Vec<String>,
    /// The function whose `go` statement started it (`created by`), if the dump says.
    pub created_by: Option<String>,
    /// Where that `go` statement is (`file:line`).
    pub created_at: Option<String>,
}

/// Goroutines alike: same wait, same function, same creator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoroutineGroup {
    /// Wait state (`select`).
    pub state: String,
    /// The first frame outside the runtime: where they wait (`main.watchItem`).
    pub blocked_in: String,
    /// The goroutine's own function (its outermost frame) when it is not `blocked_in`.
    pub entry: Option<String>,
    /// The function that started them (`main.item`).
    pub created_by: Option<String>,
    /// Where it started them (`file:line`).
    pub created_at: Option<String>,
    /// How many at the start.
    pub start: i64,
    /// How many at the end.
    pub end: i64,
}

impl GoroutineGroup {
    /// End minus start.
    pub fn growth(&self) -> i64 {
        self.end - self.start
    }

    /// In words: `main.watchItem (select), created by main.item`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} ({})", self.blocked_in, self.state);
        if let Some(e) = &self.entry {
            s.push_str(&format!(" in {e}"));
        }
        if let Some(c) = &self.created_by {
            s.push_str(&format!(", created by {c}"));
        }
        s
    }
}

/// The goroutines that grew between two dumps.
#[derive(Debug, Clone, PartialEq)]
pub struct GoroutineDiff {
    /// Goroutines at the start.
    pub start_total: i64,
    /// Goroutines at the end.
    pub end_total: i64,
    /// The groups that grew most, largest growth first.
    pub groups: Vec<GoroutineGroup>,
}

/// Parses a `debug=2` dump; an error when the text is none (a `debug=1` page, HTML).
pub fn parse(text: &str) -> Result<Vec<Goroutine>, String> {
    let mut out: Vec<Goroutine> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(state) = header_state(line) {
            out.push(Goroutine {
                state,
                frames: Vec::new(),
                created_by: None,
                created_at: None,
            });
            continue;
        }
        let Some(g) = out.last_mut() else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!(
                "not a goroutine dump (debug=2): it starts with {:?}",
                line.chars().take(60).collect::<String>()
            ));
        };
        if line.is_empty() || line.starts_with('\t') || line.starts_with("...") {
            continue; // a frame's file:line (read below), elided frames, the gap between blocks
        }
        if let Some(c) = line.strip_prefix("created by ") {
            // Go 1.21 and later add " in goroutine N".
            let f = c.split(" in goroutine ").next().unwrap_or(c);
            g.created_by = Some(f.trim().to_string());
            g.created_at = lines
                .peek()
                .and_then(|l| l.strip_prefix('\t'))
                .map(|l| l.split(" +0x").next().unwrap_or(l).to_string());
        } else {
            g.frames.push(function_of(line).to_string());
        }
    }
    if out.is_empty() && !text.trim().is_empty() {
        return Err("not a goroutine dump (debug=2): no \"goroutine N [state]:\" line".into());
    }
    Ok(out)
}

/// `goroutine 35 [select, 5 minutes]:` → `select`.
fn header_state(line: &str) -> Option<String> {
    let rest = line.strip_prefix("goroutine ")?.strip_suffix("]:")?;
    let (_, state) = rest.rsplit_once('[')?;
    let state = state.split(", ").next().unwrap_or(state);
    // Durations and thread locks follow the reason; the reason itself may hold a comma-free
    // parenthesis (`chan receive (nil chan)`).
    Some(state.trim().to_string())
}

/// `net/http.(*conn).serve(0xc0, {0x7c, 0xc0})` → `net/http.(*conn).serve`.
fn function_of(line: &str) -> &str {
    let line = line.trim_end();
    if !line.ends_with(')') {
        return line;
    }
    let mut depth = 0i32;
    for (i, c) in line.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return &line[..i];
                }
            }
            _ => {}
        }
    }
    line
}

fn is_runtime(f: &str) -> bool {
    RUNTIME.iter().any(|p| f.starts_with(p))
}

/// The group key of one goroutine.
fn group_of(g: &Goroutine) -> GoroutineGroup {
    let blocked_in = g
        .frames
        .iter()
        .find(|f| !is_runtime(f))
        .or(g.frames.first())
        .cloned()
        .unwrap_or_else(|| "?".into());
    let entry = g
        .frames
        .iter()
        .rev()
        .find(|f| f.as_str() != "runtime.goexit")
        .filter(|e| **e != blocked_in)
        .cloned();
    GoroutineGroup {
        state: g.state.clone(),
        blocked_in,
        entry,
        created_by: g.created_by.clone(),
        created_at: g.created_at.clone(),
        start: 0,
        end: 0,
    }
}

type Key = (String, String, Option<String>, Option<String>);

fn key(g: &GoroutineGroup) -> Key {
    (
        g.blocked_in.clone(),
        g.state.clone(),
        g.entry.clone(),
        g.created_by.clone(),
    )
}

/// Compares two dumps and keeps the `top` groups that grew most.
pub fn diff(start: &[Goroutine], end: &[Goroutine], top: usize) -> GoroutineDiff {
    let mut groups: HashMap<Key, GoroutineGroup> = HashMap::new();
    for (gs, at_end) in [(start, false), (end, true)] {
        for g in gs {
            let k = group_of(g);
            let e = groups.entry(key(&k)).or_insert(k);
            if at_end {
                e.end += 1;
            } else {
                e.start += 1;
            }
        }
    }
    let mut grew: Vec<GoroutineGroup> = groups.into_values().filter(|g| g.growth() > 0).collect();
    // Names break ties, so the same dumps always give the same table.
    grew.sort_by(|a, b| {
        b.growth()
            .cmp(&a.growth())
            .then_with(|| key(a).cmp(&key(b)))
    });
    grew.truncate(top);
    GoroutineDiff {
        start_total: start.len() as i64,
        end_total: end.len() as i64,
        groups: grew,
    }
}

/// Reads and compares two dump files.
pub fn diff_files(start: &Path, end: &Path, top: usize) -> Result<GoroutineDiff, HeapError> {
    let read = |path: &Path| {
        let text = std::fs::read(path).map_err(|source| HeapError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        parse(&String::from_utf8_lossy(&text)).map_err(|message| HeapError::Profile {
            path: path.to_path_buf(),
            message,
        })
    };
    Ok(diff(&read(start)?, &read(end)?, top))
}

/// The diff of a run folder's dumps: `None` when the run took none; the end dump, or for a
/// run cut off before its end the latest scheduled one. Errors name files by name only.
pub fn diff_run(dir: &Path) -> Option<Result<GoroutineDiff, String>> {
    let start = dir.join(START_NAME);
    let end = [END_NAME, LATEST_NAME]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())?;
    if !start.exists() {
        return None;
    }
    Some(diff_files(&start, &end, super::TOP).map_err(|e| e.brief()))
}

/// Names the code behind heap sites that are goroutines themselves (`runtime.malg`: a heap
/// profile's stack of them stops at the system stack, before the `go` statement): their
/// caller is the creator of the goroutines that grew most.
pub fn attribute(heap: &mut HeapDiff, goroutines: &GoroutineDiff) {
    let Some(creator) = goroutines
        .groups
        .iter()
        .find_map(|g| g.created_by.as_ref().map(|c| (c, g.growth())))
    else {
        return;
    };
    for site in &mut heap.sites {
        let user_caller = site.callers.iter().any(|c| !is_runtime(c));
        if GOROUTINE_ALLOC.contains(&site.function.as_str()) && !user_caller {
            site.callers = vec![format!(
                "{} (go statement; +{} goroutines it created)",
                creator.0, creator.1
            )];
        }
    }
}

#[cfg(test)]
#[path = "goroutines/tests.rs"]
mod tests;
