//! Runtime signals over HTTP: Prometheus metrics, Go expvar memstats and GC, goroutine totals.

use std::collections::BTreeMap;

/// Go `/debug/vars` memstats → `go_*` signals.
pub fn parse_expvar(body: &[u8], out: &mut BTreeMap<String, f64>) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("expvar is not JSON: {e}"))?;
    let ms = v
        .get("memstats")
        .ok_or("expvar has no \"memstats\" (is it a Go /debug/vars?)")?;
    for (field, name) in [
        ("HeapAlloc", "go_heap_alloc_bytes"),
        ("HeapInuse", "go_heap_inuse_bytes"),
        ("Sys", "go_sys_bytes"),
        ("NumGC", "go_num_gc"),
        ("HeapObjects", "go_heap_objects"),
        ("GCCPUFraction", "go_gc_cpu_fraction"),
    ] {
        if let Some(x) = ms.get(field).and_then(|x| x.as_f64()) {
            out.insert(name.into(), x);
        }
    }
    if let Some(ns) = ms.get("PauseTotalNs").and_then(|x| x.as_f64()) {
        out.insert("go_gc_pause_seconds_total".into(), ns / 1e9);
    }
    // Not standard: a target may publish its goroutine count (expvar.Func over
    // runtime.NumGoroutine) under one of these names.
    if let Some(n) = EXPVAR_GOROUTINES
        .iter()
        .find_map(|k| v.get(*k).and_then(|x| x.as_f64()))
    {
        out.insert("go_goroutines".into(), n);
    }
    Ok(())
}

/// Top-level expvar names read as the goroutine count.
const EXPVAR_GOROUTINES: &[&str] = &["goroutines", "Goroutines", "num_goroutine", "NumGoroutine"];

/// The `go_*` GC signals from a Prometheus page (client_golang's names), for a target that
/// offers no expvar: `go_gc_cpu_fraction`, `go_gc_pause_seconds_total`, and the collection
/// count and heap that [`GoGc`] reads.
pub fn go_from_prometheus(page: &BTreeMap<String, f64>, out: &mut BTreeMap<String, f64>) {
    let first = |names: &[&str]| names.iter().find_map(|n| page.get(*n).copied());
    for (names, signal) in [
        (&["go_memstats_gc_cpu_fraction"][..], "go_gc_cpu_fraction"),
        (
            &["go_gc_duration_seconds_sum"][..],
            "go_gc_pause_seconds_total",
        ),
        (
            &["go_gc_duration_seconds_count", "go_gc_cycles_total"][..],
            "go_num_gc",
        ),
        (&["go_memstats_heap_alloc_bytes"][..], "go_heap_alloc_bytes"),
    ] {
        if let Some(v) = first(names).filter(|v| v.is_finite()) {
            out.entry(signal.into()).or_insert(v);
        }
    }
}

/// Go's live heap: the heap sampled on the first tick after each collection.
///
/// `HeapAlloc` saws up between collections and drops at each; its value right after a
/// collection is the floor of the saw, the live heap plus what was allocated since that
/// collection ended (at most one tick's allocation). A leak raises the floor; the saw's
/// height, the garbage between collections, does not move it.
#[derive(Debug, Clone, Default)]
pub struct GoGc {
    /// `NumGC` at the last tick.
    last_num_gc: Option<f64>,
    /// The heap on the first tick after the last collection seen.
    live: Option<f64>,
}

impl GoGc {
    /// Adds `go_heap_live_bytes` from this tick's `go_num_gc` and `go_heap_alloc_bytes`,
    /// once a collection has been seen between two ticks.
    pub fn observe(&mut self, out: &mut BTreeMap<String, f64>) {
        let (gc, heap) = (
            out.get("go_num_gc").copied(),
            out.get("go_heap_alloc_bytes").copied(),
        );
        if let (Some(prev), Some(n)) = (self.last_num_gc, gc)
            && n != prev
        {
            self.live = heap;
        }
        if gc.is_some() {
            self.last_num_gc = gc;
        }
        if let Some(v) = self.live {
            out.insert("go_heap_live_bytes".into(), v);
        }
    }
}

/// `/debug/pprof/goroutine?debug=1` (or `debug=2`'s blocks): the first line is
/// `goroutine profile: total N`.
pub fn parse_goroutines(body: &[u8]) -> Result<f64, String> {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("goroutine profile: total "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| "not a goroutine profile (expected \"goroutine profile: total N\")".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expvar_and_goroutines() {
        let mut m = BTreeMap::new();
        parse_expvar(br#"{"cmdline":[],"memstats":{"HeapAlloc":10,"HeapInuse":20,"Sys":30,"NumGC":4,"HeapObjects":5}}"#, &mut m).unwrap();
        assert_eq!(m["go_heap_inuse_bytes"], 20.0);
        assert_eq!(m["go_num_gc"], 4.0);
        assert!(parse_expvar(b"<html>", &mut m).is_err());
        assert!(parse_expvar(b"{}", &mut m).is_err());
        assert_eq!(
            parse_goroutines(b"goroutine profile: total 42\n1 @ 0x1\n").unwrap(),
            42.0
        );
        assert!(parse_goroutines(b"nope").is_err());
    }

    #[test]
    fn go_gc_signals_and_the_live_heap_after_each_collection() {
        let vars = |gc: u32, heap: u64, pause: u64| {
            format!(
                r#"{{"goroutines": 1207, "memstats": {{"HeapAlloc": {heap}, "NumGC": {gc},
                "PauseTotalNs": {pause}, "GCCPUFraction": 0.0125}}}}"#
            )
        };
        let mut gc = GoGc::default();
        let mut tick = |gc_n: u32, heap: u64| {
            let mut m = BTreeMap::new();
            parse_expvar(vars(gc_n, heap, 1_500_000_000).as_bytes(), &mut m).unwrap();
            gc.observe(&mut m);
            m
        };
        let m = tick(3, 900);
        assert_eq!(m["go_goroutines"], 1207.0);
        assert_eq!(m["go_gc_cpu_fraction"], 0.0125);
        assert_eq!(m["go_gc_pause_seconds_total"], 1.5);
        assert!(
            !m.contains_key("go_heap_live_bytes"),
            "no collection seen yet"
        );
        // A collection between two ticks: the heap then is the floor; the saw rising after it
        // does not move it, the next collection does.
        assert_eq!(tick(4, 100)["go_heap_live_bytes"], 100.0);
        assert_eq!(tick(4, 700)["go_heap_live_bytes"], 100.0);
        assert_eq!(tick(6, 160)["go_heap_live_bytes"], 160.0);

        // The same from a Prometheus page (client_golang's names).
        let page = super::super::prometheus::parse(
            "go_gc_duration_seconds_sum 0.25\ngo_gc_duration_seconds_count 9\n\
             go_memstats_heap_alloc_bytes 4096\ngo_memstats_gc_cpu_fraction 0.5\n",
        );
        let mut m = BTreeMap::new();
        go_from_prometheus(&page, &mut m);
        assert_eq!((m["go_num_gc"], m["go_heap_alloc_bytes"]), (9.0, 4096.0));
        assert_eq!(m["go_gc_pause_seconds_total"], 0.25);
        assert_eq!(m["go_gc_cpu_fraction"], 0.5);
    }
}
