//! HotSpot performance counters (what `jstat` shows), read from the JVM's `hsperfdata` file
//! without an agent.
//!
//! The JVM keeps the counters in a memory-mapped file `hsperfdata_<user>/<pid>` in its temp
//! folder and updates it in place, so a read may be torn: every length and offset is checked
//! and a bad file is an error, never a panic.
//!
//! Layout (version 2): a 32-byte prologue (4 magic bytes `ca fe c0 c0`, byte order 0 = big /
//! 1 = little endian, major and minor version, an accessible flag, then 32-bit `used` and
//! `overflow`, a 64-bit modification time stamp, the 32-bit offset of the first entry and the
//! number of entries). Each entry starts with a 20-byte header (32-bit entry length, name
//! offset and vector length, then one byte each for the data type, flags, units and
//! variability, and a 32-bit data offset; offsets count from the entry's start). Names are
//! NUL-terminated; type `J` is a 64-bit integer (vector length 0), `B` a byte array (a string).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The four bytes every hsperfdata file starts with.
pub const MAGIC: [u8; 4] = [0xca, 0xfe, 0xc0, 0xc0];
/// Size of the prologue.
pub const PROLOGUE_LEN: usize = 32;
/// Size of an entry's fixed header.
pub const ENTRY_HEADER_LEN: usize = 20;

/// The file's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prologue {
    /// Byte order of every multi-byte field after the magic.
    pub big_endian: bool,
    /// Major format version (2 for every current JVM).
    pub major: u8,
    /// Minor format version.
    pub minor: u8,
    /// The JVM has finished creating the counters.
    pub accessible: bool,
    /// Bytes of the region in use.
    pub used: i32,
    /// Bytes that did not fit in the region.
    pub overflow: i32,
    /// Time stamp of the last change to the entry table.
    pub mod_time_stamp: i64,
    /// Offset of the first entry.
    pub entry_offset: i32,
    /// Number of entries.
    pub num_entries: i32,
}

/// A counter's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Type `J`: a 64-bit integer.
    Long(i64),
    /// Type `B`: a byte array, decoded as UTF-8 up to the first NUL.
    Text(String),
}

/// One counter with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The value.
    pub value: Value,
    /// Flags byte (1: supported, i.e. a stable name).
    pub flags: u8,
    /// Units (1 none, 2 bytes, 3 ticks, 4 events, 5 string, 6 hertz).
    pub units: u8,
    /// Variability (1 constant, 2 monotonic, 3 variable).
    pub variability: u8,
}

impl Counter {
    /// The value when it is an integer.
    pub fn long(&self) -> Option<i64> {
        match self.value {
            Value::Long(v) => Some(v),
            Value::Text(_) => None,
        }
    }

    /// The value when it is a string.
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            Value::Text(s) => Some(s),
            Value::Long(_) => None,
        }
    }
}

/// Bounds-checked fixed-size reads in one byte order.
struct Bytes<'a> {
    buf: &'a [u8],
    big: bool,
}

impl Bytes<'_> {
    fn take<const N: usize>(&self, at: usize, what: &str) -> Result<[u8; N], String> {
        at.checked_add(N)
            .and_then(|end| self.buf.get(at..end))
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| {
                format!(
                    "truncated at {what} (offset {at}, {} bytes)",
                    self.buf.len()
                )
            })
    }

    fn i32(&self, at: usize, what: &str) -> Result<i32, String> {
        let b = self.take::<4>(at, what)?;
        Ok(if self.big {
            i32::from_be_bytes(b)
        } else {
            i32::from_le_bytes(b)
        })
    }

    fn i64(&self, at: usize, what: &str) -> Result<i64, String> {
        let b = self.take::<8>(at, what)?;
        Ok(if self.big {
            i64::from_be_bytes(b)
        } else {
            i64::from_le_bytes(b)
        })
    }

    fn offset(&self, at: usize, what: &str) -> Result<usize, String> {
        let v = self.i32(at, what)?;
        usize::try_from(v).map_err(|_| format!("negative {what} {v}"))
    }
}

/// Parses the prologue.
pub fn parse_prologue(buf: &[u8]) -> Result<Prologue, String> {
    if buf.len() < PROLOGUE_LEN {
        return Err(format!("truncated prologue ({} bytes)", buf.len()));
    }
    if buf[..4] != MAGIC {
        return Err(format!("bad magic {:02x?}", &buf[..4]));
    }
    let big_endian = match buf[4] {
        0 => true,
        1 => false,
        b => return Err(format!("bad byte order {b}")),
    };
    let r = Bytes {
        buf,
        big: big_endian,
    };
    Ok(Prologue {
        big_endian,
        major: buf[5],
        minor: buf[6],
        accessible: buf[7] != 0,
        used: r.i32(8, "used")?,
        overflow: r.i32(12, "overflow")?,
        mod_time_stamp: r.i64(16, "time stamp")?,
        entry_offset: r.i32(24, "entry offset")?,
        num_entries: r.i32(28, "entry count")?,
    })
}

/// Parses a whole file: the prologue and every `J` and `B` counter by name (other types are
/// skipped). An error on a bad magic, an unknown version or a table that runs past the end.
pub fn parse(buf: &[u8]) -> Result<(Prologue, BTreeMap<String, Counter>), String> {
    let p = parse_prologue(buf)?;
    if p.major != 2 {
        return Err(format!("unsupported version {}.{}", p.major, p.minor));
    }
    if !p.accessible {
        return Err("not yet accessible (the JVM is starting)".into());
    }
    let r = Bytes {
        buf,
        big: p.big_endian,
    };
    let count = usize::try_from(p.num_entries)
        .map_err(|_| format!("negative entry count {}", p.num_entries))?;
    let mut at = r.offset(24, "entry offset")?;
    let mut out = BTreeMap::new();
    for i in 0..count {
        let len = r.offset(at, "entry length")?;
        let end = at
            .checked_add(len)
            .filter(|&e| len >= ENTRY_HEADER_LEN && e <= buf.len())
            .ok_or_else(|| format!("entry {i} at {at}: bad length {len}"))?;
        let entry = Bytes {
            buf: &buf[at..end],
            big: p.big_endian,
        };
        let name_at = entry.offset(4, "name offset")?;
        let vector = entry.offset(8, "vector length")?;
        let [kind, flags, units, variability] = entry.take::<4>(12, "entry type")?;
        let data_at = entry.offset(16, "data offset")?;
        let name = entry
            .buf
            .get(name_at..)
            .and_then(|s| s.split(|b| *b == 0).next().filter(|_| s.contains(&0)))
            .ok_or_else(|| format!("entry {i} at {at}: name outside the entry"))?;
        let name = String::from_utf8_lossy(name).into_owned();
        let value = match (kind, vector) {
            (b'J', 0) => Value::Long(entry.i64(data_at, "long value")?),
            (b'B', n) => {
                let bytes = data_at
                    .checked_add(n)
                    .and_then(|e| entry.buf.get(data_at..e))
                    .ok_or_else(|| format!("entry {name}: data outside the entry"))?;
                let text = bytes.split(|b| *b == 0).next().unwrap_or_default();
                Value::Text(String::from_utf8_lossy(text).into_owned())
            }
            _ => {
                at = end;
                continue;
            }
        };
        let c = Counter {
            value,
            flags,
            units,
            variability,
        };
        out.insert(name, c);
        at = end;
    }
    Ok((p, out))
}

/// Reads and parses the file at `path`; errors name the file.
pub fn read(path: &Path) -> Result<BTreeMap<String, Counter>, String> {
    let buf = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&buf)
        .map(|(_, c)| c)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn long(c: &BTreeMap<String, Counter>, name: &str) -> Option<i64> {
    c.get(name).and_then(Counter::long)
}

/// Bytes used and committed.
type Sizes = (f64, f64);

/// Heap and old-generation (used, capacity) sums; None when no generation is listed.
fn generations(c: &BTreeMap<String, Counter>) -> Option<(Sizes, Option<Sizes>)> {
    let mut heap: Option<(f64, f64)> = None;
    let mut old: Option<(f64, f64)> = None;
    for g in 0..8 {
        let gen_name = format!("sun.gc.generation.{g}.name");
        let Some(name) = c.get(&gen_name).and_then(Counter::text) else {
            continue;
        };
        // Pre-8 JVMs list the permanent generation here; it is not heap.
        if name.contains("perm") {
            continue;
        }
        let spaces = long(c, &format!("sun.gc.generation.{g}.spaces")).unwrap_or(8);
        let mut sum: Option<(f64, f64)> = None;
        for s in 0..spaces.clamp(0, 16) {
            let key = |f: &str| format!("sun.gc.generation.{g}.space.{s}.{f}");
            if let (Some(u), Some(cap)) = (long(c, &key("used")), long(c, &key("capacity"))) {
                let t = sum.get_or_insert((0.0, 0.0));
                t.0 += u as f64;
                t.1 += cap as f64;
            }
        }
        let Some((u, cap)) = sum else { continue };
        let h = heap.get_or_insert((0.0, 0.0));
        h.0 += u;
        h.1 += cap;
        if name == "old" || name.contains("tenured") {
            old = Some((u, cap));
        }
    }
    heap.map(|h| (h, old))
}

/// Maps counters to leakgate signals (`jvm_heap_used_bytes`, `jvm_gc_count`, ...); a counter the
/// JVM does not publish leaves its signal absent.
pub fn signals(c: &BTreeMap<String, Counter>, out: &mut BTreeMap<String, f64>) {
    if let Some(((used, cap), old)) = generations(c) {
        out.insert("jvm_heap_used_bytes".into(), used);
        out.insert("jvm_heap_committed_bytes".into(), cap);
        if let Some((u, cap)) = old {
            out.insert("jvm_old_used_bytes".into(), u);
            out.insert("jvm_old_committed_bytes".into(), cap);
        }
    }
    if let Some(v) = long(c, "sun.gc.metaspace.used") {
        out.insert("jvm_metaspace_used_bytes".into(), v as f64);
    }
    if let Some(v) = long(c, "sun.gc.metaspace.capacity") {
        out.insert("jvm_metaspace_committed_bytes".into(), v as f64);
    }
    let (mut count, mut ticks, mut any) = (0.0, 0.0, false);
    for n in 0..8 {
        let Some(inv) = long(c, &format!("sun.gc.collector.{n}.invocations")) else {
            continue;
        };
        any = true;
        count += inv as f64;
        ticks += long(c, &format!("sun.gc.collector.{n}.time")).unwrap_or(0) as f64;
        match n {
            0 => out.insert("jvm_young_gc_count".into(), inv as f64),
            1 => out.insert("jvm_full_gc_count".into(), inv as f64),
            _ => None,
        };
    }
    if any {
        out.insert("jvm_gc_count".into(), count);
        if let Some(hz) = long(c, "sun.os.hrt.frequency").filter(|f| *f > 0) {
            out.insert("jvm_gc_seconds".into(), ticks / hz as f64);
        }
    }
}

/// Samples one JVM's hsperfdata file and remembers the old generation after full collections.
#[derive(Debug, Clone)]
pub struct HsperfProbe {
    /// The hsperfdata file.
    pub path: PathBuf,
    /// Full-collection count at the last tick.
    pub last_full_gc: Option<i64>,
    /// Old generation's used bytes sampled right after the last full collection seen.
    pub old_after_gc: Option<f64>,
}

impl HsperfProbe {
    /// A probe of the file at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            last_full_gc: None,
            old_after_gc: None,
        }
    }

    /// A probe of the JVM with this pid, if its file can be found.
    pub fn of_pid(pid: u32) -> Option<Self> {
        find(pid).map(Self::new)
    }

    /// Adds this tick's signals, `jvm_old_used_after_gc_bytes` included once a full collection
    /// has been seen between two ticks; `Err` (naming the file) when it cannot be read.
    pub fn sample(&mut self, out: &mut BTreeMap<String, f64>) -> Result<(), String> {
        let c = read(&self.path)?;
        self.observe(&c, out);
        Ok(())
    }

    /// [`sample`](Self::sample) on counters already read.
    pub fn observe(&mut self, c: &BTreeMap<String, Counter>, out: &mut BTreeMap<String, f64>) {
        let mut now = BTreeMap::new();
        signals(c, &mut now);
        let full = long(c, "sun.gc.collector.1.invocations");
        if let (Some(prev), Some(f)) = (self.last_full_gc, full)
            && f != prev
        {
            self.old_after_gc = now.get("jvm_old_used_bytes").copied();
        }
        if full.is_some() {
            self.last_full_gc = full;
        }
        if let Some(v) = self.old_after_gc {
            now.insert("jvm_old_used_after_gc_bytes".into(), v);
        }
        out.extend(now);
    }
}

/// The innermost pid of `pid` (its pid in its own pid namespace), from `NSpid` in `status`.
fn ns_pid(proc_root: &Path, pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(proc_root.join(pid.to_string()).join("status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().last())
        .and_then(|p| p.parse().ok())
}

/// The files `tmp/hsperfdata_*/<name>` under `root`, newest first.
fn candidates(root: &Path, name: u32) -> Vec<PathBuf> {
    let Ok(dirs) = std::fs::read_dir(root.join("tmp")) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = dirs
        .flatten()
        .filter(|d| d.file_name().to_string_lossy().starts_with("hsperfdata_"))
        .map(|d| d.path().join(name.to_string()))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// Finds the hsperfdata file of the process `pid`: in its own root's `/tmp` under its
/// namespace pid, then in this namespace's `/tmp`.
pub fn find(pid: u32) -> Option<PathBuf> {
    find_in(Path::new("/proc"), Path::new("/"), pid)
}

/// [`find`] with another `/proc` and `/` (tests use fixture folders).
pub fn find_in(proc_root: &Path, root: &Path, pid: u32) -> Option<PathBuf> {
    let inner = ns_pid(proc_root, pid).unwrap_or(pid);
    let own_root = proc_root.join(pid.to_string()).join("root");
    candidates(&own_root, inner)
        .into_iter()
        .chain(candidates(root, pid))
        .next()
}

#[cfg(test)]
#[path = "hsperf/tests.rs"]
mod tests;
