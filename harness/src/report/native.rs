//! The native heap section: heaptrack's table of what the C library's allocator still held when
//! the target stopped; or, for a run without heaptrack whose RSS grew while its runtime heap did
//! not, a line that says where to look.

use std::fmt::Write;

use super::markdown::{cell, heap_value};
use super::run_data::RunData;
use super::svg::esc;
use crate::heap::HeapDiff;
use crate::heap::heaptrack::{LEAKS_NAME, STACKS_NAME};
use crate::scenario::plan::PhaseKind;
use crate::verdict::Outcome;

/// What RSS growing alone means, as the reports say it.
pub const HINT: &str = "RSS grows but the runtime heap does not: native or fragmentation: \
                        look at heaptrack";

/// Signals of a runtime's own heap (what its allocator or collector holds), first found used.
pub const RUNTIME_HEAP: &[&str] = &[
    "jemalloc_allocated_bytes",
    "go_heap_alloc_bytes",
    "jvm_heap_used_bytes",
];

/// Below this share of RSS's growth, the runtime heap "does not grow".
const FLAT_SHARE: f64 = 0.25;

/// What the native heap section shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Section {
    /// heaptrack's table (`start` 0, `end` the bytes never freed).
    Table(HeapDiff),
    /// heaptrack was asked for and gave no table: why.
    Failed(String),
    /// No heaptrack; RSS grew and the runtime heap did not: [`HINT`] with the figures.
    Hint(String),
}

/// The section of a run, if it has one.
pub fn section(run: &RunData) -> Option<Section> {
    match &run.native {
        Some(Ok(d)) => Some(Section::Table(d.clone())),
        Some(Err(e)) => Some(Section::Failed(e.clone())),
        None => rss_without_heap(run).map(Section::Hint),
    }
}

/// [`HINT`] with its evidence, when the rss_bytes gate failed and a runtime heap signal (or the
/// heap profiles) grew by less than a quarter as much over the steady phase.
pub fn rss_without_heap(run: &RunData) -> Option<String> {
    let verdict = run.summary.verdict.as_ref()?;
    let rss_failed = verdict
        .gates
        .iter()
        .any(|g| g.signal.as_deref() == Some("rss_bytes") && g.outcome == Outcome::Fail);
    if !rss_failed {
        return None;
    }
    let from: f64 = (run.summary.plan.load.phases.iter())
        .take_while(|p| p.kind != PhaseKind::Steady)
        .map(|p| p.duration.as_secs_f64())
        .sum();
    let to = (run.events.iter())
        .find(|e| e.kind == "drain")
        .map_or(f64::INFINITY, |e| e.t);
    let growth = |name: &str| growth(&run.series(name), from, to);
    let rss = growth("rss_bytes").filter(|g| *g > 0.0)?;
    let (name, heap) = RUNTIME_HEAP
        .iter()
        .find_map(|n| growth(n).map(|g| (n.to_string(), g)))
        .or_else(|| match &run.heap {
            Some(Ok(d)) => Some((
                "the heap profiles".into(),
                (d.end_total - d.start_total) as f64,
            )),
            _ => None,
        })?;
    (heap < FLAT_SHARE * rss).then(|| {
        format!(
            "{HINT} ([probes] native = \"heaptrack\"): rss_bytes {} over the steady phase, {name} {}",
            signed(rss),
            signed(heap)
        )
    })
}

/// Last minus first of a series over `[from, to)`, each end the median of three samples.
fn growth(points: &[(f64, f64)], from: f64, to: f64) -> Option<f64> {
    let v: Vec<f64> = (points.iter())
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(_, v)| *v)
        .collect();
    if v.len() < 6 {
        return None;
    }
    let median3 = |s: &[f64]| {
        let mut s = s.to_vec();
        s.sort_by(f64::total_cmp);
        s[1]
    };
    Some(median3(&v[v.len() - 3..]) - median3(&v[..3]))
}

fn signed(x: f64) -> String {
    let sign = if x < 0.0 { "−" } else { "+" };
    format!("{sign}{}", heap_value(x.abs() as i64, "bytes"))
}

const TABLE_WORDS: &str = "bytes the C library's allocator still held when the target stopped";
const FILES_WORDS: &str = "heaptrack's own report";

/// The section in Markdown.
pub fn markdown(s: &Section) -> String {
    let d = match s {
        Section::Table(d) => d,
        Section::Failed(e) => {
            return format!("**Native heap:** no heaptrack table: {}\n\n", cell(e));
        }
        Section::Hint(h) => return format!("**Native heap:** {}\n\n", cell(h)),
    };
    let mut out = format!(
        "**Native heap** (heaptrack: {TABLE_WORDS}): {} in total.",
        heap_value(d.end_total, &d.unit)
    );
    if d.sites.is_empty() {
        out.push_str(" Nothing was left unfreed.\n\n");
    } else {
        out.push_str(
            " The functions holding most, each the first frame above the allocator and the \
             standard library:\n\n| function | never freed | called from |\n| --- | --- | --- |\n",
        );
        for site in &d.sites {
            let at = (site.at.as_deref())
                .map(|a| format!(" ({})", cell(a)))
                .unwrap_or_default();
            let callers: Vec<String> = site
                .callers
                .iter()
                .map(|c| format!("`{}`", cell(c)))
                .collect();
            let _ = writeln!(
                out,
                "| `{}`{at} | {} | {} |",
                cell(&site.function),
                heap_value(site.end, &d.unit),
                if callers.is_empty() {
                    "–".into()
                } else {
                    callers.join(" ← ")
                }
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{FILES_WORDS}: `{LEAKS_NAME}`; by stack: `{STACKS_NAME}`; the recording opens in heaptrack_gui (`heaptrack.*.gz`).\n"
    );
    out
}

/// The section in HTML.
pub fn html(s: &Section) -> String {
    let mut h = String::from("<h2>Native heap</h2>\n");
    let d = match s {
        Section::Table(d) => d,
        Section::Failed(e) => {
            let _ = writeln!(h, "<p class=\"alert\">No heaptrack table: {}</p>", esc(e));
            return h;
        }
        Section::Hint(t) => {
            let _ = writeln!(h, "<p class=\"alert\">{}</p>", esc(t));
            return h;
        }
    };
    let _ = writeln!(
        h,
        "<p>heaptrack: {TABLE_WORDS}: {} in total. Each function is the first frame above the \
         allocator and the standard library. {FILES_WORDS}: <code>{LEAKS_NAME}</code>; by stack: \
         <code>{STACKS_NAME}</code>.</p>",
        esc(&heap_value(d.end_total, &d.unit))
    );
    if d.sites.is_empty() {
        h.push_str("<p>Nothing was left unfreed.</p>\n");
        return h;
    }
    h.push_str(
        "<table id=\"native\" style=\"table-layout:fixed;overflow-wrap:anywhere\">\
         <colgroup><col style=\"width:40%\"><col style=\"width:12%\"><col></colgroup>\
         <tr><th>function</th><th>never freed</th><th>called from</th></tr>\n",
    );
    for site in &d.sites {
        let at = (site.at.as_deref())
            .map(|a| format!(" <span class=\"why\">{}</span>", esc(a)))
            .unwrap_or_default();
        let callers: Vec<String> = site
            .callers
            .iter()
            .map(|c| format!("<code>{}</code>", esc(c)))
            .collect();
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code>{at}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&site.function),
            esc(&heap_value(site.end, &d.unit)),
            if callers.is_empty() {
                "–".into()
            } else {
                callers.join(" ← ")
            }
        );
    }
    h.push_str("</table>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_compares_medians_of_the_ends_within_the_span() {
        let pts: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, (i * 10) as f64)).collect();
        // 5..15: first three 50, 60, 70; last three 120, 130, 140.
        assert_eq!(growth(&pts, 5.0, 15.0), Some(70.0));
        assert_eq!(growth(&pts, 5.0, 9.0), None, "too few samples");
        let mut spiky = pts.clone();
        spiky[5].1 = 1e9;
        // One outlier moves an end to its neighbour's value, not to its own.
        assert_eq!(growth(&spiky, 5.0, 15.0), Some(60.0));
    }

    #[test]
    fn a_table_renders_in_markdown_and_html() {
        let d = crate::heap::heaptrack::parse_stacks(
            "main (m.c);handler (m.c);leak_native_buffer (native.rs); 4096000\n",
            10,
        )
        .unwrap();
        let md = markdown(&Section::Table(d.clone()));
        assert!(
            md.contains("| `leak_native_buffer` (native.rs) | 3.91 MiB | `handler` ← `main` |"),
            "{md}"
        );
        let html = html(&Section::Table(d));
        assert!(html.contains("<code>leak_native_buffer</code>"), "{html}");
        let hint = markdown(&Section::Hint(HINT.into()));
        assert!(hint.contains(HINT));
    }
}
