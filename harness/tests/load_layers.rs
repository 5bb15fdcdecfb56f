//! The load layer's module graph, read from its `use` lines: no cycles, and no client module
//! depends on the dispatcher (`client`) or the engine above it (ARCHITECTURE.md, "The load
//! layer").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module of `harness/src/load` (child files fold into their parent) and the sibling
/// modules it names through `super::` or `crate::load::`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/load");
    let mut names = BTreeSet::new();
    let mut files = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            names.insert(name.clone());
            files.push((name, p));
        } else if p.is_dir() {
            let parent = p.file_name().unwrap().to_string_lossy().to_string();
            for c in std::fs::read_dir(&p).unwrap() {
                files.push((parent.clone(), c.unwrap().path()));
            }
        }
    }
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in files {
        let text = std::fs::read_to_string(&path).unwrap();
        // Test modules may reach anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let deps = g.entry(module.clone()).or_default();
        for needle in ["super::", "crate::load::", "super::super::"] {
            for (at, _) in code.match_indices(needle) {
                let rest = &code[at + needle.len()..];
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                // Also `use super::{a, b}` lists.
                let listed: Vec<String> = if rest.starts_with('{') {
                    rest[1..rest.find('}').unwrap_or(1)]
                        .split(',')
                        .map(|w| w.trim().split("::").next().unwrap_or("").to_string())
                        .collect()
                } else {
                    vec![word]
                };
                for w in listed {
                    if w != module && names.contains(&w) {
                        deps.insert(w);
                    }
                }
            }
        }
    }
    g
}

fn reaches(g: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(m) = stack.pop() {
        for d in g.get(&m).into_iter().flatten() {
            if d == to {
                return true;
            }
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    false
}

#[test]
fn the_load_layer_has_no_import_cycle() {
    let g = graph();
    assert!(g.len() > 10, "found only {g:?}");
    for m in g.keys() {
        assert!(
            !reaches(&g, m, m),
            "load::{m} imports itself through {g:#?}"
        );
    }
}

#[test]
fn clients_depend_on_shared_helpers_not_on_the_dispatcher() {
    let g = graph();
    for client in ["h1", "h2conn", "conn"] {
        for above in ["client", "engine", "mod"] {
            assert!(
                !reaches(&g, client, above),
                "load::{client} depends on load::{above}: {:?}",
                g[client]
            );
        }
    }
    // The dispatcher does route to every client.
    for client in ["h1", "h2conn"] {
        assert!(g["client"].contains(client), "{:?}", g["client"]);
    }
}
