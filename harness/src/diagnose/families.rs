//! What a sampled signal measures, read from its name: the vocabulary the diagnosis rules
//! speak (fds, connections, tasks, runtime heap, cache, process memory, GC).

use crate::scenario::plan::SignalUnit;

/// The kind of thing a signal counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// Open file descriptors (sockets among them).
    Fds,
    /// Connections, upstream responses or sockets the service holds open.
    Connections,
    /// Tasks, goroutines, threads, server streams still running.
    Tasks,
    /// The runtime's own heap (Go heap in use, JVM old generation, allocator's allocated bytes).
    RuntimeHeap,
    /// Entries of a cache or map.
    Cache,
    /// The process's memory as the kernel sees it (RSS, PSS, cgroup memory).
    ProcessMemory,
    /// Garbage collections counted.
    GcCount,
    /// Anything else.
    Other,
}

/// The family of `signal`.
pub fn family(signal: &str) -> Family {
    let s = signal.to_ascii_lowercase();
    let has = |w: &str| s.contains(w);
    if crate::verdict::series::GC_COUNTERS.contains(&signal)
        || (has("gc") && (has("count") || has("cycles") || has("collections")))
    {
        Family::GcCount
    } else if has("fd_count") || has("open_fds") || s.ends_with("_fds") {
        Family::Fds
    } else if has("upstream") || has("connection") || has("socket") || s.ends_with("_conns") {
        Family::Connections
    } else if has("goroutine")
        || has("task")
        || has("thread")
        || s == "open_streams"
        || s.ends_with("_streams")
    {
        Family::Tasks
    } else if has("cache") || s.ends_with("_entries") || s.ends_with("_items") {
        Family::Cache
    } else if (has("heap") && !has("committed") && !has("next_gc") && !has("sys"))
        || has("old_used")
        || s.starts_with("jemalloc_allocated")
    {
        Family::RuntimeHeap
    } else if matches!(
        s.as_str(),
        "rss_bytes" | "rss_anon_bytes" | "pss_bytes" | "pss_anon_bytes" | "tree_rss_bytes"
    ) || s == "cgroup_memory_bytes"
        || s == "cgroup_anon_bytes"
    {
        Family::ProcessMemory
    } else {
        Family::Other
    }
}

/// The unit a signal is printed in: bytes when its name says so.
pub fn unit(signal: &str) -> SignalUnit {
    if signal.ends_with("_bytes") {
        SignalUnit::Bytes
    } else {
        SignalUnit::Count
    }
}

/// What a family is called in a sentence.
pub fn noun(f: Family) -> &'static str {
    match f {
        Family::Fds => "file descriptors",
        Family::Connections => "connections",
        Family::Tasks => "tasks",
        Family::RuntimeHeap => "runtime heap",
        Family::Cache => "cache entries",
        Family::ProcessMemory => "process memory",
        Family::GcCount => "garbage collections",
        Family::Other => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signals_the_probes_and_targets_offer() {
        for (name, f) in [
            ("fd_count", Family::Fds),
            ("process_open_fds", Family::Fds),
            ("open_upstream_responses", Family::Connections),
            ("go_goroutines", Family::Tasks),
            ("tokio_alive_tasks", Family::Tasks),
            ("open_streams", Family::Tasks),
            ("threads", Family::Tasks),
            ("jvm_live_threads", Family::Tasks),
            ("cache_entries", Family::Cache),
            ("go_heap_inuse_bytes", Family::RuntimeHeap),
            ("go_heap_live_bytes", Family::RuntimeHeap),
            ("jvm_old_used_after_gc_bytes", Family::RuntimeHeap),
            ("jvm_heap_committed_bytes", Family::Other),
            ("rss_bytes", Family::ProcessMemory),
            ("cgroup_memory_bytes", Family::ProcessMemory),
            ("go_gc_cycles_total", Family::GcCount),
            ("jvm_gc_count", Family::GcCount),
            ("python_gc_collections_total", Family::GcCount),
            ("cpu_seconds", Family::Other),
        ] {
            assert_eq!(family(name), f, "{name}");
        }
        assert_eq!(unit("rss_bytes"), SignalUnit::Bytes);
        assert_eq!(unit("fd_count"), SignalUnit::Count);
    }
}
