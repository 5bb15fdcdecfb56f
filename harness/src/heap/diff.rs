//! What grew between two heap profiles, by allocation site: the first frame above the
//! allocator and the standard library, so the top rows name the code that holds the memory.

use std::borrow::Cow;
use std::collections::HashMap;

use super::pprof::Profile;

/// Entry points of the allocator: they and every frame below them (the allocator's own
/// internals, whatever their names in a debug build) are never a site.
pub(super) const ALLOCATOR: &[&str] = &[
    "_rjem_",
    "je_",
    "malloc",
    "calloc",
    "realloc",
    "posix_memalign",
    "aligned_alloc",
    // Exact shims: `__rust_try` (panic catching) is not an allocation.
    "__rust_alloc",
    "__rust_realloc",
    "__rdl_alloc",
    "__rdl_realloc",
    "__rg_alloc",
    "__rg_realloc",
    "tikv_jemallocator",
    "runtime.mallocgc",
    "runtime.newobject",
    "runtime.makeslice",
    "runtime.growslice",
];

/// Frames of the standard and foundation libraries: a site only when nothing else is on the
/// stack (they allocate on behalf of their caller).
const LIBRARY: &[&str] = &[
    "alloc::",
    "core::",
    "std::",
    "hashbrown::",
    "bytes::",
    "smallvec::",
    "indexmap::",
    // Go's runtime: `runtime.malg`, `runtime.newproc1`, `runtime.systemstack` allocate a
    // goroutine for the `go` statement above them; `runtime/pprof`, `internal/poll`.
    "runtime.",
    "runtime/",
    "internal/",
];

/// Frames of the profiler that serves the profile, symbolizing it inside the target
/// (jemalloc_pprof reads the binary's DWARF with gimli and keeps its caches): what they hold is
/// the measurement's own memory, not the service's, and is left out of the table. Seen in a
/// real run: +69 MiB in `gimli::read::abbrev::Abbreviations::insert` above the leak itself.
const PROFILER: &[&str] = &[
    "jemalloc_pprof::",
    "pprof_util::",
    "gimli::",
    "addr2line::",
    "object::",
    "runtime/pprof.",
];

/// How many frames above the site are shown as its callers.
pub(super) const CALLERS: usize = 3;

/// The growth between two profiles.
#[derive(Debug, Clone, PartialEq)]
pub struct HeapDiff {
    /// The sample type compared (`inuse_space`).
    pub sample_type: String,
    /// Its unit (`bytes`).
    pub unit: String,
    /// Total at the start.
    pub start_total: i64,
    /// Total at the end.
    pub end_total: i64,
    /// The sites that grew most, largest growth first.
    pub sites: Vec<Site>,
}

/// One allocation site and how much it held at each end.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// Function name.
    pub function: String,
    /// `file:line`, when the profile has it.
    pub at: Option<String>,
    /// The next frames up the stack (of its largest sample at the end), nearest first.
    pub callers: Vec<String>,
    /// Held at the start.
    pub start: i64,
    /// Held at the end.
    pub end: i64,
}

impl Site {
    /// End minus start.
    pub fn growth(&self) -> i64 {
        self.end.saturating_sub(self.start)
    }
}

/// Compares `end` with `start` and keeps the `top` sites that grew most.
pub fn diff(start: &Profile, end: &Profile, top: usize) -> Result<HeapDiff, String> {
    let (index, sample_type, unit) = value_index(end)?;
    let start_index = (0..start.sample_type.len())
        .find(|&i| start.string(start.sample_type[i].r#type) == sample_type)
        .ok_or_else(|| format!("the start profile has no {sample_type} samples"))?;
    let before = sites(start, start_index).map_err(|e| format!("the start profile's {e}"))?;
    let mut merged = sites(end, index)?;
    for (name, s) in before {
        merged
            .entry(name)
            .and_modify(|m| m.start = s.end)
            .or_insert(Site {
                start: s.end,
                end: 0,
                ..s
            });
    }
    let total = |f: fn(&Site) -> i64| {
        merged
            .values()
            .try_fold(0i64, |t, s| t.checked_add(f(s)))
            .ok_or_else(|| format!("{sample_type} values add up past 2^63: not a heap profile"))
    };
    let (start_total, end_total) = (total(|s| s.start)?, total(|s| s.end)?);
    let mut grew: Vec<Site> = merged.into_values().filter(|s| s.growth() > 0).collect();
    // Name breaks ties, so the same profiles always give the same table.
    grew.sort_by(|a, b| {
        b.growth()
            .cmp(&a.growth())
            .then_with(|| a.function.cmp(&b.function))
    });
    grew.truncate(top);
    Ok(HeapDiff {
        sample_type,
        unit,
        start_total,
        end_total,
        sites: grew,
    })
}

/// The value to compare: `inuse_space`, else the default type, else the last one in bytes.
fn value_index(p: &Profile) -> Result<(usize, String, String), String> {
    let named = |i: usize| {
        (
            i,
            p.string(p.sample_type[i].r#type).to_string(),
            p.string(p.sample_type[i].unit).to_string(),
        )
    };
    let n = p.sample_type.len();
    if n == 0 {
        return Err("the profile has no sample types".into());
    }
    let by_name = |want: &str| (0..n).find(|&i| p.string(p.sample_type[i].r#type) == want);
    let i = by_name("inuse_space")
        .or_else(|| {
            (p.default_sample_type != 0)
                .then(|| by_name(p.string(p.default_sample_type)))
                .flatten()
        })
        .or_else(|| {
            (0..n)
                .rev()
                .find(|&i| p.string(p.sample_type[i].unit) == "bytes")
        })
        .unwrap_or(n - 1);
    Ok(named(i))
}

/// Held value per site in one profile (in `Site::end`), keyed by function name; an error when
/// the values overflow (a corrupt profile).
fn sites(p: &Profile, index: usize) -> Result<HashMap<String, Site>, String> {
    let functions: HashMap<u64, (&str, &str)> = p
        .function
        .iter()
        .map(|f| (f.id, (p.string(f.name), p.string(f.filename))))
        .collect();
    let locations: HashMap<u64, usize> = p
        .location
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id, i))
        .collect();
    let mut out: HashMap<String, (Site, i64)> = HashMap::new();
    for s in &p.sample {
        let Some(&v) = s.value.get(index) else {
            continue;
        };
        // Frames leaf first; inlined functions innermost first within a location; a location
        // without symbols is its address.
        let frames: Vec<(Cow<str>, &str, i64)> = s
            .location_id
            .iter()
            .filter_map(|id| locations.get(id).map(|&i| &p.location[i]))
            .flat_map(|l| {
                let named = l.line.iter().filter_map(|line| {
                    let (name, file) = functions.get(&line.function_id)?;
                    Some((Cow::Borrowed(*name), *file, line.line))
                });
                let bare = l
                    .line
                    .is_empty()
                    .then(|| (Cow::Owned(format!("{:#x}", l.address)), "", 0));
                named.chain(bare)
            })
            .collect();
        let above = frames
            .iter()
            .rposition(|(name, _, _)| matches_any(name, ALLOCATOR))
            .map_or(0, |i| i + 1);
        let frames = &frames[above..];
        if frames.iter().any(|(n, _, _)| matches_any(n, PROFILER)) {
            continue;
        }
        let Some(at) = frames
            .iter()
            .position(|(n, _, _)| !is_library(n))
            .or_else(|| (!frames.is_empty()).then_some(0))
        else {
            continue;
        };
        let (name, file, line) = (&frames[at].0, frames[at].1, frames[at].2);
        let (site, largest) = out.entry(name.to_string()).or_insert_with(|| {
            let site = Site {
                function: name.to_string(),
                at: None,
                callers: Vec::new(),
                start: 0,
                end: 0,
            };
            (site, i64::MIN)
        });
        site.end = site
            .end
            .checked_add(v)
            .ok_or_else(|| format!("samples of {name} add up past 2^63: not a heap profile"))?;
        // The place and callers shown are those of the site's largest sample.
        if v > *largest {
            *largest = v;
            site.at = (!file.is_empty()).then(|| match line {
                0 => file.to_string(),
                l => format!("{file}:{l}"),
            });
            // A stack of library frames only (Go cuts a goroutine's allocation at the
            // system stack: `runtime.malg ← runtime.newproc1 ← runtime.systemstack`) shows
            // those, so the row still says what the library was doing.
            let all = is_library(name);
            site.callers = frames[at + 1..]
                .iter()
                .filter(|(n, _, _)| all || !is_library(n))
                .take(CALLERS)
                .map(|(n, _, _)| n.to_string())
                .collect();
        }
    }
    Ok(out.into_iter().map(|(k, (s, _))| (k, s)).collect())
}

/// A library frame. A trait method `<A as B>::m` belongs to A's crate, or to B's when A is a
/// built-in type (`<u8 as alloc::vec::SpecFromElem>::from_elem` is the standard library's,
/// `<app::Buf as std::io::Write>::write` the application's).
pub(super) fn is_library(name: &str) -> bool {
    let bare = name.strip_prefix("__rustc::").unwrap_or(name);
    if let Some((a, b)) = bare.strip_prefix('<').and_then(|r| r.split_once(" as ")) {
        let builtin = !a.contains("::");
        return matches_any(a, LIBRARY) || (builtin && matches_any(b, LIBRARY));
    }
    matches_any(bare, LIBRARY)
}

pub(super) fn matches_any(name: &str, prefixes: &[&str]) -> bool {
    let bare = name.trim_start_matches(['<', '&', '*', '(']);
    // Rust 1.9x names its allocator shims `__rustc::__rust_alloc`.
    let bare = bare.strip_prefix("__rustc::").unwrap_or(bare);
    prefixes.iter().any(|p| bare.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::pprof::{Function, Line, Location, Sample, ValueType};

    /// A profile over named functions; each sample is a stack (leaf first) and a value.
    fn profile(types: &[(&str, &str)], samples: &[(&[&str], Vec<i64>)]) -> Profile {
        let mut p = Profile {
            string_table: vec![String::new()],
            ..Default::default()
        };
        let intern = |p: &mut Profile, s: &str| -> i64 {
            if let Some(i) = p.string_table.iter().position(|x| x == s) {
                return i as i64;
            }
            p.string_table.push(s.to_string());
            (p.string_table.len() - 1) as i64
        };
        for (t, u) in types {
            let (t, u) = (intern(&mut p, t), intern(&mut p, u));
            p.sample_type.push(ValueType { r#type: t, unit: u });
        }
        for (stack, value) in samples {
            let mut ids = Vec::new();
            for f in *stack {
                let name = intern(&mut p, f);
                let file = intern(&mut p, "src/lib.rs");
                let id = match p.function.iter().find(|x| x.name == name) {
                    Some(x) => x.id,
                    None => {
                        let id = p.function.len() as u64 + 1;
                        p.function.push(Function {
                            id,
                            name,
                            filename: file,
                        });
                        p.location.push(Location {
                            id,
                            address: 0,
                            line: vec![Line {
                                function_id: id,
                                line: 7,
                            }],
                        });
                        id
                    }
                };
                ids.push(id);
            }
            p.sample.push(Sample {
                location_id: ids,
                value: value.clone(),
            });
        }
        p
    }

    const LEAK: &[&str] = &[
        "_rjem_je_malloc_default",
        "alloc::raw_vec::grow",
        "app::leak",
        "app::handler",
        "tokio::run",
        "main",
    ];
    const STEADY: &[&str] = &["malloc", "app::steady", "main"];
    /// A debug build's stack: jemalloc's internals by their own names, then Rust's shim.
    const DEBUG_LEAK: &[&str] = &[
        "imalloc_body",
        "imalloc",
        "imalloc_fastpath",
        "__rustc::__rust_alloc",
        "alloc::alloc::alloc",
        "<u8 as alloc::vec::spec_from_elem::SpecFromElem>::from_elem",
        "app::leak",
        "__rust_try",
        "main",
    ];

    #[test]
    fn the_site_that_grew_is_named_with_its_callers() {
        let types = [("inuse_objects", "count"), ("inuse_space", "bytes")];
        let start = profile(&types, &[(LEAK, vec![1, 100]), (STEADY, vec![1, 50])]);
        let end = profile(&types, &[(LEAK, vec![9, 1100]), (STEADY, vec![1, 50])]);
        let d = diff(&start, &end, 10).unwrap();
        assert_eq!(
            (d.sample_type.as_str(), d.unit.as_str()),
            ("inuse_space", "bytes")
        );
        assert_eq!((d.start_total, d.end_total), (150, 1150));
        assert_eq!(d.sites.len(), 1, "only the leak grew: {d:?}");
        let s = &d.sites[0];
        assert_eq!(s.function, "app::leak");
        assert_eq!(s.at.as_deref(), Some("src/lib.rs:7"));
        assert_eq!(s.callers, ["app::handler", "tokio::run", "main"]);
        assert_eq!((s.start, s.end, s.growth()), (100, 1100, 1000));
    }

    #[test]
    fn everything_below_the_allocator_entry_is_skipped() {
        let types = [("inuse_space", "bytes")];
        let end = profile(&types, &[(DEBUG_LEAK, vec![512])]);
        let d = diff(&profile(&types, &[]), &end, 5).unwrap();
        assert_eq!(d.sites[0].function, "app::leak");
        assert_eq!(d.sites[0].callers, ["__rust_try", "main"]);
        assert!(!is_library("<app::Buf as std::io::Write>::write"));
        assert!(is_library(
            "<alloc::vec::Vec<u8> as core::clone::Clone>::clone"
        ));
    }

    #[test]
    fn the_profilers_own_symbol_caches_are_not_the_service_growing() {
        // jemalloc_pprof symbolizing the first profile inside the target: its DWARF caches stay.
        const GIMLI: &[&str] = &[
            "malloc",
            "alloc::raw_vec::grow",
            "gimli::read::abbrev::Abbreviations::insert",
            "gimli::read::abbrev::Abbreviations::parse",
            "jemalloc_pprof::JemallocProfCtl::dump_pprof",
            "leakgate_targets::admin::heap",
            "main",
        ];
        let t = [("inuse_space", "bytes")];
        let start = profile(&t, &[(LEAK, vec![10])]);
        let end = profile(&t, &[(LEAK, vec![500]), (GIMLI, vec![70_000])]);
        let d = diff(&start, &end, 10).unwrap();
        let names: Vec<&str> = d.sites.iter().map(|s| s.function.as_str()).collect();
        assert_eq!(names, ["app::leak"], "{d:?}");
    }

    #[test]
    fn library_only_stacks_and_other_sample_types_still_give_a_site() {
        // No inuse_space: the last type in bytes is compared.
        let types = [("space", "bytes"), ("objects", "count")];
        let lib: &[&str] = &[
            "je_prof_backtrace",
            "alloc::vec::Vec<T>::push",
            "std::rt::lang_start",
        ];
        let start = profile(&types, &[]);
        let end = profile(&types, &[(lib, vec![4096, 1])]);
        let d = diff(&start, &end, 10).unwrap();
        assert_eq!(d.sample_type, "space");
        assert_eq!(d.sites[0].function, "alloc::vec::Vec<T>::push");
        assert_eq!(d.sites[0].growth(), 4096);
    }

    #[test]
    fn go_runtime_frames_give_way_to_the_code_that_started_the_goroutine() {
        let types = [("inuse_space", "bytes")];
        // A goroutine's g, allocated for a `go` statement in main.item, the stack unwound
        // through the system stack switch (as newer Go versions record it).
        let through: &[&str] = &[
            "runtime.mallocgc",
            "runtime.newobject",
            "runtime.malg",
            "runtime.newproc1",
            "runtime.newproc.func1",
            "runtime.systemstack",
            "runtime.systemstack_switch",
            "runtime.newproc",
            "main.item",
            "main.(*service).watch",
            "net/http.HandlerFunc.ServeHTTP",
            "runtime.goexit",
        ];
        // The same allocation as Go 1.19 records it: cut at the system stack.
        let cut: &[&str] = &[
            "runtime.malg",
            "runtime.newproc1",
            "runtime.newproc.func1",
            "runtime.systemstack",
        ];
        let d = diff(
            &profile(&types, &[]),
            &profile(&types, &[(through, vec![4160])]),
            5,
        )
        .unwrap();
        assert_eq!(d.sites[0].function, "main.item");
        assert_eq!(
            d.sites[0].callers,
            ["main.(*service).watch", "net/http.HandlerFunc.ServeHTTP"]
        );
        let d = diff(
            &profile(&types, &[]),
            &profile(&types, &[(cut, vec![4160])]),
            5,
        )
        .unwrap();
        assert_eq!(d.sites[0].function, "runtime.malg");
        assert_eq!(
            d.sites[0].callers,
            [
                "runtime.newproc1",
                "runtime.newproc.func1",
                "runtime.systemstack"
            ]
        );
        assert!(is_library("runtime/pprof.(*profMap).lookup"));
        assert!(is_library("internal/poll.(*FD).Init"));
    }

    #[test]
    fn unsymbolized_locations_are_named_by_address() {
        let types = [("inuse_space", "bytes")];
        let mut end = profile(&types, &[(STEADY, vec![64])]);
        // Strip the site's symbols: only its address is left.
        let site = end.location.iter_mut().find(|l| l.id == 2).unwrap();
        site.line.clear();
        site.address = 0x1234;
        let d = diff(&profile(&types, &[]), &end, 5).unwrap();
        assert_eq!(d.sites[0].function, "0x1234");
        assert_eq!(d.sites[0].callers, ["main"]);
    }

    #[test]
    fn top_keeps_the_largest_and_ties_sort_by_name() {
        let types = [("inuse_space", "bytes")];
        let a: &[&str] = &["malloc", "app::a"];
        let b: &[&str] = &["malloc", "app::b"];
        let c: &[&str] = &["malloc", "app::c"];
        let end = profile(&types, &[(a, vec![10]), (b, vec![30]), (c, vec![10])]);
        let d = diff(&profile(&types, &[]), &end, 2).unwrap();
        let names: Vec<&str> = d.sites.iter().map(|s| s.function.as_str()).collect();
        assert_eq!(names, ["app::b", "app::a"]);
    }

    #[test]
    fn profiles_round_trip_through_gzip_and_garbage_is_refused() {
        use prost::Message;
        use std::io::Write;
        let p = profile(&[("inuse_space", "bytes")], &[(STEADY, vec![5])]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&p.encode_to_vec()).unwrap();
        let bytes = gz.finish().unwrap();
        assert_eq!(Profile::decode_bytes(&bytes).unwrap(), p);
        assert!(
            Profile::decode_bytes(&[0x1f, 0x8b, 1, 2, 3])
                .unwrap_err()
                .contains("gzip")
        );
        let empty = Profile::default();
        assert!(
            diff(&empty, &empty, 5)
                .unwrap_err()
                .contains("no sample types")
        );
    }
}
