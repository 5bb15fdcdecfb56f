//! `summary.md`: the verdict first, then a small table of gates, for `$GITHUB_STEP_SUMMARY`
//! and pull-request comments.

use std::fmt::Write;

use super::run_data::RunData;
use super::words;
use crate::heap::HeapDiff;
use crate::verdict::Outcome;

/// Renders the Markdown summary of a run; `html_name` is the HTML report's file name, linked
/// relative to the run folder.
pub fn render(run: &RunData, html_name: &str) -> String {
    let s = &run.summary;
    let mut out = String::new();
    let (word, _, mark) = words::headline(s.exit_code);
    let _ = writeln!(
        out,
        "### {mark} leakgate `{}`: {word} (exit {})\n",
        run.name(),
        s.exit_code
    );
    if let Some(v) = &s.verdict {
        let _ = writeln!(out, "{}\n", one_line(&v.summary));
    } else {
        let _ = writeln!(out, "{}\n", one_line(&s.exit_reason));
    }
    if let Some(e) = &s.target_exit {
        let _ = writeln!(
            out,
            "**The target died** at {:.1} s: {}\n",
            e.t,
            one_line(&e.cause)
        );
    }
    if let Some(v) = &s.verdict
        && !v.gates.is_empty()
    {
        out.push_str("| gate | result | observed | limit | slope | per minute |\n");
        out.push_str("| --- | --- | --- | --- | --- | --- |\n");
        for g in &v.gates {
            let mark = match g.outcome {
                Outcome::Pass => "✅ pass",
                Outcome::Fail => "❌ **fail**",
                Outcome::Inconclusive => "⚠️ inconclusive",
            };
            let _ = writeln!(
                out,
                "| {} | {mark} | {} | {} | {} | {} |",
                cell(&g.name),
                cell(&words::value(g.observed, &g.unit)),
                cell(&words::value(g.limit, &g.unit)),
                cell(&words::slope(g).unwrap_or_else(|| "–".into())),
                cell(&words::per_minute(g).unwrap_or_else(|| "–".into())),
            );
        }
        out.push('\n');
    }
    if let Some(d) = &s.diagnosis {
        out.push_str("**Diagnosis**\n\n");
        for f in &d.findings {
            let _ = writeln!(out, "- {}", one_line(&f.title));
            for e in &f.evidence {
                let _ = writeln!(out, "  - {}", one_line(e));
            }
            let _ = writeln!(out, "  - next: {}", one_line(&f.next));
        }
        out.push('\n');
    }
    if let Some(l) = &s.load {
        let planned = if l.planned_rate > 0.0 {
            format!("{:.0} req/s planned, ", l.planned_rate)
        } else {
            "max throughput, ".into()
        };
        let _ = writeln!(
            out,
            "**Load:** {planned}{:.1} req/s achieved over {:.1} s ({} completed, {} failed, {} dropped). \
             **Latency** (steady, corrected for coordinated omission): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms.\n",
            l.achieved_rate,
            l.elapsed,
            l.completed,
            l.failed,
            l.dropped,
            l.steady_corrected.p50,
            l.steady_corrected.p95,
            l.steady_corrected.p99,
        );
    }
    if let Some(h) = &run.heap {
        out.push_str(&heap(h, crate::heap::START_NAME, crate::heap::END_NAME));
    }
    if let Some(n) = super::native::section(run) {
        out.push_str(&super::native::markdown(&n));
    }
    if let Some(g) = &run.goroutines {
        out.push_str(&super::goroutines::markdown(g));
    }
    if let Some(c) = &run.classes {
        out.push_str(&classes(c));
    }
    let _ = writeln!(
        out,
        "Run folder `{}`: HTML report [`{html_name}`]({html_name}), `summary.json`, `samples.ndjson`, `junit.xml`.",
        folder_name(run)
    );
    out
}

/// The heap growth paragraph and table, between profiles `from` and `to` (also what
/// `leakgate heapdiff` prints).
pub fn heap(h: &Result<HeapDiff, String>, from: &str, to: &str) -> String {
    let d = match h {
        Ok(d) => d,
        Err(e) => {
            return format!(
                "**Heap growth:** the profiles could not be compared: {}\n\n",
                one_line(e)
            );
        }
    };
    let v = |x: i64| heap_value(x, &d.unit);
    let mut out = format!(
        "**Heap growth** (`{}` from `{}` to `{}`): {} before the load, {} after ({}).",
        d.sample_type,
        cell(from),
        cell(to),
        v(d.start_total),
        v(d.end_total),
        signed(d.end_total - d.start_total, &d.unit),
    );
    if d.sites.is_empty() {
        out.push_str(" No allocation site grew.\n\n");
        return out;
    }
    out.push_str(
        " The sites that grew most, each the first frame above the allocator and the standard library:\n\n",
    );
    out.push_str(
        "| site | before | after | growth | called from |\n| --- | --- | --- | --- | --- |\n",
    );
    for s in &d.sites {
        let at =
            s.at.as_deref()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default();
        let callers: Vec<String> = s.callers.iter().map(|c| format!("`{}`", cell(c))).collect();
        let _ = writeln!(
            out,
            "| `{}`{} | {} | {} | {} | {} |",
            cell(&s.function),
            at,
            v(s.start),
            v(s.end),
            signed(s.growth(), &d.unit),
            if callers.is_empty() {
                "–".into()
            } else {
                callers.join(" ← ")
            },
        );
    }
    out.push('\n');
    out
}

/// The JVM's heap by class: the classes whose live bytes grew most between the histograms.
pub fn classes(h: &Result<HeapDiff, String>) -> String {
    use crate::heap::classes::{END_NAME, START_NAME};
    let d = match h {
        Ok(d) => d,
        Err(e) => {
            return format!(
                "**Heap by class:** the class histograms could not be compared: {}\n\n",
                one_line(e)
            );
        }
    };
    let v = |x: i64| heap_value(x, &d.unit);
    let mut out = format!(
        "**Heap by class** (JVM live objects, `jcmd GC.class_histogram` from `{START_NAME}` to \
         `{END_NAME}`): {} before the load, {} after ({}).",
        v(d.start_total),
        v(d.end_total),
        signed(d.end_total - d.start_total, &d.unit),
    );
    if d.sites.is_empty() {
        out.push_str(" No class grew.\n\n");
        return out;
    }
    out.push_str(" The classes that grew most:\n\n");
    out.push_str(
        "| class | before | after | growth | instances |\n| --- | --- | --- | --- | --- |\n",
    );
    for s in &d.sites {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            cell(&s.function),
            v(s.start),
            v(s.end),
            signed(s.growth(), &d.unit),
            cell(s.at.as_deref().unwrap_or("–")),
        );
    }
    out.push('\n');
    out
}

/// A heap figure in its unit (bytes when the profile says so, else a count).
pub fn heap_value(x: i64, unit: &str) -> String {
    let unit = if unit == "bytes" { "bytes" } else { "count" };
    words::value(x as f64, unit)
}

fn signed(x: i64, unit: &str) -> String {
    let sign = if x < 0 { "−" } else { "+" };
    format!("{sign}{}", heap_value(x.abs(), unit))
}

/// The run folder's own name: the same text however the folder was named on the command line.
pub fn folder_name(run: &RunData) -> String {
    run.dir
        .canonicalize()
        .unwrap_or_else(|_| run.dir.clone())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Newlines would break a Markdown paragraph or table row.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A table cell: one line, pipes escaped.
pub fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}
