//! The rules on hand-made evidence: each signature alone, the guards between them, and the
//! numbers every claim carries.

use std::collections::BTreeMap;

use super::growth::Growth;
use super::rules::{Evidence, findings};
use super::{LeakClass, families};
use crate::heap::{GoroutineDiff, GoroutineGroup, HeapDiff, Site};
use crate::record::{LatencySummary, ProbeSample, Window};
use crate::scenario::plan::PhaseKind;

fn g(signal: &str, grew: bool, per_request: f64) -> Growth {
    Growth {
        signal: signal.into(),
        family: families::family(signal),
        unit: families::unit(signal),
        gate_failed: grew,
        grew,
        per_request: Some(per_request),
        per_second: per_request * 1000.0,
    }
}

fn classes(growth: &[Growth], heap: Option<&HeapDiff>) -> Vec<LeakClass> {
    findings(&Evidence {
        growth,
        heap,
        tasks: None,
        samples: &[],
        windows: &[],
        steady: &[],
    })
    .iter()
    .map(|f| f.class)
    .collect()
}

fn table(function: &str, caller: &str, growth: i64, unit: &str) -> HeapDiff {
    HeapDiff {
        sample_type: "inuse_space".into(),
        unit: unit.into(),
        start_total: 0,
        end_total: growth,
        sites: vec![Site {
            function: function.into(),
            at: None,
            callers: vec![caller.into()],
            start: 0,
            end: growth,
        }],
    }
}

#[test]
fn fds_with_connections_and_their_tasks_are_unclosed_bodies_not_leaked_tasks() {
    let growth = [
        g("fd_count", true, 2.0),
        g("open_upstream_responses", true, 1.0),
        g("go_goroutines", true, 2.8),
        g("rss_bytes", true, 30_000.0),
    ];
    let f = findings(&Evidence {
        growth: &growth,
        heap: None,
        tasks: None,
        samples: &[],
        windows: &[],
        steady: &[],
    });
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].class, LeakClass::UnclosedBodies);
    let text = f[0].evidence.join("\n");
    assert!(text.contains("fd_count +2.00/request"), "{text}");
    assert!(text.contains("2.00 file descriptors per open"), "{text}");
    assert!(text.contains("go_goroutines +2.80/request"), "{text}");
}

#[test]
fn tasks_alone_are_leaked_tasks_named_by_their_creator() {
    let growth = [g("go_goroutines", true, 1.0), g("fd_count", false, 0.0)];
    let sites = GoroutineDiff {
        start_total: 7,
        end_total: 25_007,
        groups: vec![GoroutineGroup {
            state: "select".into(),
            blocked_in: "main.watchItem".into(),
            entry: None,
            created_by: Some("main.item".into()),
            created_at: None,
            start: 0,
            end: 25_000,
        }],
    };
    let f = findings(&Evidence {
        growth: &growth,
        heap: None,
        tasks: Some(&sites),
        samples: &[],
        windows: &[],
        steady: &[],
    });
    assert_eq!(f[0].class, LeakClass::LeakedTasks);
    let text = f[0].evidence.join("\n");
    assert!(
        text.contains("+25000 goroutines blocked in main.watchItem (select), created by main.item"),
        "{text}"
    );
    assert!(f[0].next.starts_with("start at main.item"), "{}", f[0].next);
}

#[test]
fn a_cache_needs_entries_or_a_map_site_on_top_of_a_growing_heap() {
    let cache_site = table(
        "main.makeValue",
        "main.(*cache).getOrInsert",
        5 << 20,
        "bytes",
    );
    let other_site = table("main.render", "main.handler", 5 << 20, "bytes");
    let heap = [g("go_heap_inuse_bytes", true, 250.0)];
    assert_eq!(
        classes(&heap, Some(&cache_site)),
        [LeakClass::UnboundedCache]
    );
    assert!(
        classes(&heap, Some(&other_site)).is_empty(),
        "a heap growing elsewhere is not called a cache"
    );
    let entries = [g("cache_entries", true, 1.0), g("rss_bytes", true, 1200.0)];
    assert_eq!(classes(&entries, None), [LeakClass::UnboundedCache]);
}

#[test]
fn rss_without_the_runtime_heap_is_native_unless_tasks_or_fds_explain_it() {
    let native = [
        g("rss_bytes", true, 1000.0),
        g("go_heap_inuse_bytes", false, 20.0),
    ];
    let f = findings(&Evidence {
        growth: &native,
        heap: None,
        tasks: None,
        samples: &[],
        windows: &[],
        steady: &[],
    });
    assert_eq!(f[0].class, LeakClass::NativeOrFragmentation);
    assert!(
        f[0].evidence[0].contains("(2 % of it)"),
        "{:?}",
        f[0].evidence
    );
    // The runtime heap keeps pace: not native.
    let managed = [
        g("rss_bytes", true, 1000.0),
        g("go_heap_inuse_bytes", true, 900.0),
    ];
    assert!(!classes(&managed, None).contains(&LeakClass::NativeOrFragmentation));
    // Goroutine stacks are outside the heap: leaked tasks explain the RSS.
    let stacks = [
        g("rss_bytes", true, 3000.0),
        g("go_heap_inuse_bytes", false, 200.0),
        g("go_goroutines", true, 1.0),
    ];
    assert_eq!(classes(&stacks, None), [LeakClass::LeakedTasks]);
    // No runtime heap signal: nothing to tell the two apart.
    assert!(classes(&[g("rss_bytes", true, 1000.0)], None).is_empty());
}

fn window(i: u64, p99: f64) -> Window {
    Window {
        index: i,
        start: i as f64,
        end: i as f64 + 1.0,
        phase: Some(PhaseKind::Steady),
        corrected: LatencySummary {
            count: 1000,
            p99,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn gc_sample(t: f64, requests: u64, gcs: f64) -> ProbeSample {
    ProbeSample {
        t,
        cumulative_completed: requests,
        signals: BTreeMap::from([("jvm_gc_count".to_string(), gcs)]),
        merged: None,
    }
}

#[test]
fn gc_and_p99_rising_together_is_a_spiral_and_either_alone_is_not() {
    // Collections per 1 000 requests grow 1, 2, 4, 8 ...; p99 climbs from 2 to 40 ms.
    let mut gcs = 0.0;
    let samples: Vec<ProbeSample> = (0..30)
        .map(|i| {
            gcs += 2f64.powf(f64::from(i) / 6.0);
            gc_sample(f64::from(i), u64::from(i as u32) * 1000, gcs)
        })
        .collect();
    let rising: Vec<Window> = (0..30).map(|i| window(i, 2.0 + i as f64 * 1.3)).collect();
    let flat: Vec<Window> = (0..30).map(|i| window(i, 2.0)).collect();
    let spiral = |windows: &[Window]| {
        findings(&Evidence {
            growth: &[],
            heap: None,
            tasks: None,
            samples: &samples,
            windows,
            steady: &[],
        })
    };
    let f = spiral(&rising);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].class, LeakClass::GcSpiral);
    assert!(
        f[0].evidence[0].contains("jvm_gc_count"),
        "{:?}",
        f[0].evidence
    );
    assert!(
        f[0].evidence[1].starts_with("p99 rose with it"),
        "{:?}",
        f[0].evidence
    );
    assert!(spiral(&flat).is_empty(), "GC alone is no spiral");
}
