//! The signatures of the classic leaks, each a rule over which signals grew together. A rule
//! that matches gives a finding whose every claim cites the numbers it rests on.

use crate::heap::{GoroutineDiff, HeapDiff};
use crate::record::{ProbeSample, Window};
use crate::scenario::plan::PhaseKind;
use crate::verdict::format;

use super::families::Family;
use super::growth::Growth;
use super::{Finding, LeakClass};

/// The runtime heap grew at under this share of the process memory's rate: the growth is
/// outside the runtime's heap.
const NATIVE_SHARE: f64 = 0.25;
/// GC per request and p99 must each rise at least this much from the first to the last third.
const SPIRAL_RATIO: f64 = 1.5;
/// ... and p99 by at least this many milliseconds (a rise from 0.2 to 0.4 ms is no spiral).
const SPIRAL_MIN_MS: f64 = 1.0;

/// Words in an allocation site that name a map or cache.
const CACHE_WORDS: [&str; 8] = [
    "cache", "map", "insert", "dict", "lru", "memo", "store", "intern",
];

/// What the rules look at.
pub struct Evidence<'a> {
    /// How each signal moved.
    pub growth: &'a [Growth],
    /// Allocation sites that grew (pprof heap, JVM class histogram, heaptrack).
    pub heap: Option<&'a HeapDiff>,
    /// Goroutines that grew, by wait and creator.
    pub tasks: Option<&'a GoroutineDiff>,
    /// Probe samples (GC counters).
    pub samples: &'a [ProbeSample],
    /// Load windows (p99 over time).
    pub windows: &'a [Window],
    /// Steady spans, seconds since load start.
    pub steady: &'a [(f64, f64)],
}

impl Evidence<'_> {
    fn grew(&self, f: Family) -> Vec<&Growth> {
        self.growth
            .iter()
            .filter(|g| g.family == f && g.grew)
            .collect()
    }

    fn has(&self, f: Family) -> Vec<&Growth> {
        self.growth.iter().filter(|g| g.family == f).collect()
    }
}

/// Every finding the evidence supports, the likeliest first.
pub fn findings(e: &Evidence) -> Vec<Finding> {
    let fds = e.grew(Family::Fds);
    let conns = e.grew(Family::Connections);
    let tasks = e.grew(Family::Tasks);
    let mut out = Vec::new();
    if !fds.is_empty() || !conns.is_empty() {
        out.push(unclosed(&fds, &conns, &tasks));
    } else if !tasks.is_empty() {
        out.push(leaked_tasks(&tasks, e.tasks));
    }
    if let Some(f) = cache(e) {
        out.push(f);
    }
    // Stacks, socket buffers and task state are outside the runtime heap: only with none of
    // those growing does a flat runtime heap point at native memory.
    if fds.is_empty()
        && conns.is_empty()
        && tasks.is_empty()
        && let Some(f) = native(e)
    {
        out.push(f);
    }
    if let Some(f) = gc_spiral(e) {
        out.push(f);
    }
    out
}

/// How many signals of one family a claim cites.
const CITED: usize = 2;

/// The strongest few of `gs` (gated ones first, then bytes), cited.
fn cites(gs: &[&Growth]) -> String {
    let mut gs = gs.to_vec();
    gs.sort_by_key(|g| {
        (
            !g.gate_failed,
            g.unit != crate::scenario::plan::SignalUnit::Bytes,
        )
    });
    let mut out: Vec<String> = gs.iter().take(CITED).map(|g| g.cite()).collect();
    if gs.len() > CITED {
        out.push(format!("and {} more", gs.len() - CITED));
    }
    out.join(", ")
}

fn unclosed(fds: &[&Growth], conns: &[&Growth], tasks: &[&Growth]) -> Finding {
    let mut evidence = Vec::new();
    let together: Vec<&Growth> = fds.iter().chain(conns).copied().collect();
    evidence.push(format!("grew together: {}", cites(&together)));
    if let (Some(fd), Some(c)) = (
        fds.iter().find_map(|g| g.per_request),
        conns.iter().find_map(|g| g.per_request),
    ) && c > 0.0
    {
        evidence.push(format!(
            "{} file descriptors per open connection or response",
            format::sig3(fd / c)
        ));
    }
    if !tasks.is_empty() {
        evidence.push(format!(
            "with them the tasks that serve or read each connection: {}",
            cites(tasks)
        ));
    }
    Finding {
        class: LeakClass::UnclosedBodies,
        title: "unclosed response bodies or connections".into(),
        evidence,
        next: "look for response bodies that are neither read to the end nor closed (Go \
               resp.Body.Close, Java InputStream.close, Python response.close) and clients \
               created per request"
            .into(),
    }
}

fn leaked_tasks(tasks: &[&Growth], sites: Option<&GoroutineDiff>) -> Finding {
    let mut evidence = vec![format!(
        "tasks grew with no file descriptors or connections growing: {}",
        cites(tasks)
    )];
    let mut next = "look for tasks started per request whose end depends on an event that \
                    never comes (a context that is never cancelled, a channel nobody sends on)"
        .to_string();
    if let Some(g) = sites
        .and_then(|d| d.groups.first())
        .filter(|g| g.growth() > 0)
    {
        evidence.push(format!(
            "{:+} goroutines blocked in {}",
            g.growth(),
            g.describe()
        ));
        next = match &g.created_by {
            Some(c) => format!(
                "start at {c}, which starts them, and at what {} waits for",
                g.blocked_in
            ),
            None => format!("start at {}, where they wait", g.blocked_in),
        };
    }
    Finding {
        class: LeakClass::LeakedTasks,
        title: "leaked tasks".into(),
        evidence,
        next,
    }
}

fn cache(e: &Evidence) -> Option<Finding> {
    let entries = e.grew(Family::Cache);
    let heap = e.grew(Family::RuntimeHeap);
    let top = e
        .heap
        .and_then(|d| d.sites.first())
        .filter(|s| s.growth() > 0);
    let cache_site = top.filter(|s| {
        let text = format!("{} {}", s.function, s.callers.join(" ")).to_ascii_lowercase();
        CACHE_WORDS.iter().any(|w| text.contains(w))
    });
    if entries.is_empty() && (heap.is_empty() || cache_site.is_none()) {
        return None;
    }
    let mut evidence = Vec::new();
    if !entries.is_empty() {
        evidence.push(format!(
            "entries grew with the requests: {}",
            cites(&entries)
        ));
    }
    if !heap.is_empty() {
        evidence.push(format!("the runtime heap grew: {}", cites(&heap)));
    }
    if let (Some(d), Some(s)) = (e.heap, cache_site.or(top)) {
        let unit = if d.unit == "bytes" {
            format::bytes(s.growth() as f64)
        } else {
            format!("{} {}", s.growth(), d.unit)
        };
        let caller = s
            .callers
            .first()
            .map(|c| format!(", called from {c}"))
            .unwrap_or_default();
        evidence.push(format!(
            "the heap grew most in {} (+{unit}{caller})",
            s.function
        ));
    }
    Some(Finding {
        class: LeakClass::UnboundedCache,
        title: "an unbounded cache or map".into(),
        evidence,
        next: "bound it (capacity with eviction, a TTL) or key it by something that repeats".into(),
    })
}

fn native(e: &Evidence) -> Option<Finding> {
    let mem = e.grew(Family::ProcessMemory);
    let rss = mem
        .iter()
        .find(|g| g.signal == "rss_bytes")
        .or(mem.first())?;
    let heaps = e.has(Family::RuntimeHeap);
    // Without a runtime heap signal there is nothing to tell the two apart.
    let heap = heaps.iter().max_by(|a, b| rate(a).total_cmp(&rate(b)))?;
    let share = rate(heap) / rate(rss);
    if rate(rss) <= 0.0 || share >= NATIVE_SHARE {
        return None;
    }
    Some(Finding {
        class: LeakClass::NativeOrFragmentation,
        title: "native memory or fragmentation".into(),
        evidence: vec![format!(
            "process memory grows but the runtime heap does not: {} while {} ({:.0} % of it)",
            rss.cite(),
            heap.cite(),
            share.max(0.0) * 100.0
        )],
        next: "look at memory the runtime does not manage: C libraries and FFI, \
               direct buffers, allocator fragmentation (`[probes] native = \"heaptrack\"` for a \
               spawned target)"
            .into(),
    })
}

/// A growth's rate on the run's axis (per request when counted).
fn rate(g: &Growth) -> f64 {
    g.per_request.unwrap_or(g.per_second)
}

fn gc_spiral(e: &Evidence) -> Option<Finding> {
    let counter = crate::verdict::series::GC_COUNTERS
        .iter()
        .find(|c| e.samples.iter().any(|s| s.signals.contains_key(**c)))?;
    let steady: Vec<(f64, u64, f64)> = e
        .samples
        .iter()
        .filter(|s| crate::verdict::series::in_steady(e.steady, s.t))
        .filter_map(|s| Some((s.t, s.cumulative_completed, *s.signals.get(*counter)?)))
        .collect();
    if steady.len() < 6 {
        return None;
    }
    let third = steady.len() / 3;
    let per_k = |part: &[(f64, u64, f64)]| {
        let (a, b) = (part.first()?, part.last()?);
        let req = b.1.checked_sub(a.1).filter(|r| *r > 0)? as f64;
        Some((b.2 - a.2) / req * 1000.0)
    };
    let gc_first = per_k(&steady[..third])?;
    let gc_last = per_k(&steady[steady.len() - third..])?;
    let p99: Vec<f64> = e
        .windows
        .iter()
        .filter(|w| w.phase == Some(PhaseKind::Steady) && w.corrected.count > 0)
        .map(|w| w.corrected.p99)
        .collect();
    if p99.len() < 6 {
        return None;
    }
    let t = p99.len() / 3;
    let (p_first, p_last) = (median(&p99[..t]), median(&p99[p99.len() - t..]));
    let rising = gc_first > 0.0
        && gc_last >= SPIRAL_RATIO * gc_first
        && p_last >= SPIRAL_RATIO * p_first
        && p_last - p_first >= SPIRAL_MIN_MS;
    rising.then(|| Finding {
        class: LeakClass::GcSpiral,
        title: "a garbage-collection death spiral".into(),
        evidence: vec![
            format!(
                "{counter}: {} → {} collections per 1 000 requests ({:.1}×) from the first to \
                 the last third of the steady phase",
                format::sig3(gc_first),
                format::sig3(gc_last),
                gc_last / gc_first
            ),
            format!(
                "p99 rose with it: {} → {} ms ({:.1}×)",
                format::sig3(p_first),
                format::sig3(p_last),
                p_last / p_first
            ),
        ],
        next: "the live heap is nearing the heap limit, so each collection frees less; find \
               what keeps the heap growing (the other findings), or give the heap room"
            .into(),
    })
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
