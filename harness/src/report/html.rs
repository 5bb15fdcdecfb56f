//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, nothing fetched) that
//! a browser opens straight from a CI artifact: verdict, gates, load, heap growth, charts on
//! one time axis, events and the resolved plan.

use std::fmt::Write;

use super::charts;
use super::markdown;
use super::run_data::RunData;
use super::svg::{self, esc};
use super::words;
use crate::record::LatencySummary;
use crate::verdict::Outcome;

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1000px;padding:16px 20px;color:#1b1f23;background:#fff}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #e1e4e8;padding-bottom:4px}
.meta{color:#586069;font-size:12px}
.badge{display:inline-block;padding:3px 10px;border-radius:12px;color:#fff;font-weight:600;font-size:13px;vertical-align:middle}
.pass{background:#2da44e}.fail{background:#cf222e}.inconclusive{background:#bf8700}.died{background:#6e40c9}.behind{background:#57606a}
.summary{background:#f6f8fa;border-left:4px solid #d0d7de;padding:8px 12px;margin:12px 0}
.alert{background:#ffebe9;border-left:4px solid #cf222e;padding:8px 12px;margin:12px 0}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border:1px solid #d0d7de;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.g-fail td:first-child{border-left:4px solid #cf222e}tr.g-inconclusive td:first-child{border-left:4px solid #bf8700}tr.g-pass td:first-child{border-left:4px solid #2da44e}
.why{color:#444;font-size:12px}
figure{margin:10px 0 18px}svg.chart{width:100%;height:auto;display:block}
svg .title{font-size:14px;font-weight:600;fill:#1b1f23}svg .tick{font-size:11px;fill:#586069}
svg .grid{stroke:#eaecef;stroke-width:1}svg .frame{fill:none;stroke:#d0d7de}
svg .marker{stroke:#8c959f;stroke-dasharray:3 3}svg .marker-label{font-size:11px;fill:#57606a}
svg .legend{font-size:11px;fill:#1b1f23}
pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:12px}details{margin:8px 0}
"#;

/// Renders the HTML report of a run.
pub fn render(run: &RunData) -> String {
    let s = &run.summary;
    let mut h = String::with_capacity(64 * 1024);
    let (word, class, _) = words::headline(s.exit_code);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>leakgate {name}: {word}</title><style>{STYLE}</style></head><body>\n\
         <h1>leakgate <code>{name}</code> <span class=\"badge {class}\" id=\"verdict\">{word}</span></h1>\n\
         <div class=\"meta\">started {started} · leakgate {version} · exit {code}: {reason}</div>\n",
        name = esc(run.name()),
        started = esc(&s.started_at),
        version = esc(&s.leakgate_version),
        code = s.exit_code,
        reason = esc(&s.exit_reason),
    );
    if let Some(v) = &s.verdict {
        let _ = writeln!(h, "<p class=\"summary\">{}</p>", esc(&v.summary));
    }
    if let Some(e) = &s.target_exit {
        let _ = writeln!(
            h,
            "<p class=\"alert\"><b>The target died</b> at {:.1} s: {}</p>",
            e.t,
            esc(&e.cause)
        );
    }
    gates(&mut h, run);
    diagnosis(&mut h, run);
    load(&mut h, run);
    heap(&mut h, run);
    if let Some(n) = super::native::section(run) {
        h.push_str(&super::native::html(&n));
    }
    if let Some(g) = &run.goroutines {
        super::goroutines::html(&mut h, g);
    }
    classes(&mut h, run);
    let charts = charts::build(run);
    if !charts.is_empty() {
        h.push_str(
            "<h2>Charts</h2>\n<p class=\"meta\">All charts share one time axis: seconds since \
             the load started (negative: the baseline before it).</p>\n",
        );
        for c in &charts {
            let _ = writeln!(h, "<figure>{}</figure>", svg::render(c));
        }
    }
    events(&mut h, run);
    let plan = serde_json::to_string_pretty(&s.plan).unwrap_or_default();
    let _ = writeln!(
        h,
        "<h2>Plan</h2>\n<details><summary>The resolved scenario</summary><pre>{}</pre></details>",
        esc(&plan)
    );
    h.push_str("</body></html>\n");
    h
}

fn gates(h: &mut String, run: &RunData) {
    let Some(v) = &run.summary.verdict else {
        return;
    };
    if v.gates.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Gates</h2>\n<table id=\"gates\"><tr><th>gate</th><th>result</th><th>observed</th>\
         <th>limit</th><th>slope (95 % CI)</th><th>per minute</th></tr>\n",
    );
    for g in &v.gates {
        let class = match g.outcome {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
        };
        let _ = writeln!(
            h,
            "<tr class=\"g-{class}\"><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\
             <tr class=\"g-{class}\"><td colspan=\"6\" class=\"why\">{}</td></tr>",
            esc(&g.name),
            words::outcome(g.outcome),
            esc(&words::value(g.observed, &g.unit)),
            esc(&words::value(g.limit, &g.unit)),
            esc(&words::slope(g).unwrap_or_else(|| "–".into())),
            esc(&words::per_minute(g).unwrap_or_else(|| "–".into())),
            esc(&g.explanation),
        );
    }
    h.push_str("</table>\n");
}

fn load(h: &mut String, run: &RunData) {
    let Some(l) = &run.summary.load else {
        return;
    };
    let planned = if l.planned_rate > 0.0 {
        format!("{:.1}/s", l.planned_rate)
    } else {
        "max".into()
    };
    let counts = |m: &std::collections::BTreeMap<String, u64>| {
        if m.is_empty() {
            "–".to_string()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let _ = writeln!(
        h,
        "<h2>Load</h2>\n<table id=\"load\">\
         <tr><th>elapsed</th><td class=\"num\">{:.1} s</td><th>threads</th><td class=\"num\">{}</td></tr>\
         <tr><th>rate planned</th><td class=\"num\">{planned}</td><th>rate sent</th><td class=\"num\">{:.1}/s</td></tr>\
         <tr><th>planned</th><td class=\"num\">{}</td><th>sent</th><td class=\"num\">{}</td></tr>\
         <tr><th>completed</th><td class=\"num\">{}</td><th>dropped</th><td class=\"num\">{}</td></tr>\
         <tr><th>failed</th><td class=\"num\">{}</td><th>fell behind</th><td>{}</td></tr>\
         <tr><th>status</th><td colspan=\"3\">{}</td></tr><tr><th>errors</th><td colspan=\"3\">{}</td></tr></table>",
        l.elapsed,
        l.threads,
        l.achieved_rate,
        l.planned,
        l.sent,
        l.completed,
        l.dropped,
        l.failed,
        if l.fell_behind { "yes" } else { "no" },
        esc(&counts(&l.status)),
        esc(&counts(&l.errors)),
    );
    h.push_str(
        "<h3>Latency, ms</h3>\n<table id=\"latency\"><tr><th></th><th>p50</th><th>p90</th>\
         <th>p95</th><th>p99</th><th>p99.9</th><th>max</th><th>count</th></tr>\n",
    );
    let rows = [
        ("steady, corrected", &l.steady_corrected),
        ("steady, uncorrected", &l.steady_uncorrected),
        ("whole run, corrected", &l.corrected),
        ("whole run, uncorrected", &l.uncorrected),
        ("first message (gRPC)", &l.first_message),
    ];
    for (name, lat) in rows {
        if lat.count > 0 {
            latency_row(h, name, lat);
        }
    }
    h.push_str(
        "</table>\n<p class=\"meta\">Corrected: from the intended send time, so a stalled \
         target cannot hide its queueing (coordinated omission).</p>\n",
    );
}

fn latency_row(h: &mut String, name: &str, l: &LatencySummary) {
    let _ = writeln!(
        h,
        "<tr><th>{name}</th><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td>\
         <td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td>\
         <td class=\"num\">{:.3}</td><td class=\"num\">{}</td></tr>",
        l.p50, l.p90, l.p95, l.p99, l.p999, l.max, l.count
    );
}

/// The likely leak class of a failed run, each claim with its numbers.
fn diagnosis(h: &mut String, run: &RunData) {
    let Some(d) = &run.summary.diagnosis else {
        return;
    };
    h.push_str("<h2>Diagnosis</h2>\n<ul id=\"diagnosis\">\n");
    for (i, f) in d.findings.iter().enumerate() {
        let head = if i == 0 { "Likely" } else { "Also" };
        let _ = write!(h, "<li><b>{head}: {}</b><ul>", esc(&f.title));
        for e in &f.evidence {
            let _ = write!(h, "<li>{}</li>", esc(e));
        }
        let _ = writeln!(h, "<li class=\"why\">next: {}</li></ul></li>", esc(&f.next));
    }
    h.push_str("</ul>\n");
}

/// What grew between the heap profiles, by allocation site.
fn heap(h: &mut String, run: &RunData) {
    let Some(diff) = &run.heap else {
        return;
    };
    h.push_str("<h2>Heap growth</h2>\n");
    let d = match diff {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(
                h,
                "<p class=\"alert\">The heap profiles could not be compared: {}</p>",
                esc(e)
            );
            return;
        }
    };
    let v = |x: i64| esc(&markdown::heap_value(x, &d.unit));
    let _ = writeln!(
        h,
        "<p><code>{}</code> from <code>{}</code> to <code>{}</code>: {} before the load, {} after. \
         Each site is the first frame above the allocator and the standard library.</p>",
        esc(&d.sample_type),
        crate::heap::START_NAME,
        crate::heap::END_NAME,
        v(d.start_total),
        v(d.end_total),
    );
    if d.sites.is_empty() {
        h.push_str("<p>No allocation site grew.</p>\n");
        return;
    }
    h.push_str(
        // Long Rust paths wrap anywhere instead of widening the page (styled here, not in STYLE, so
        // reports without a heap section keep their bytes).
        "<table id=\"heap\" style=\"table-layout:fixed;overflow-wrap:anywhere\">\
         <colgroup><col style=\"width:33%\"><col style=\"width:9%\"><col style=\"width:9%\">\
         <col style=\"width:9%\"><col></colgroup>\
         <tr><th>site</th><th>before</th><th>after</th><th>growth</th><th>called from</th></tr>\n",
    );
    for s in &d.sites {
        let at =
            s.at.as_deref()
                .map(|a| format!(" <span class=\"why\">{}</span>", esc(a)));
        let callers: Vec<String> = s
            .callers
            .iter()
            .map(|c| format!("<code>{}</code>", esc(c)))
            .collect();
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">+{}</td><td>{}</td></tr>",
            esc(&s.function),
            at.unwrap_or_default(),
            v(s.start),
            v(s.end),
            v(s.growth()),
            if callers.is_empty() {
                "–".into()
            } else {
                callers.join(" ← ")
            },
        );
    }
    h.push_str("</table>\n");
}

/// A JVM's live objects by class that grew between the class histograms.
fn classes(h: &mut String, run: &RunData) {
    let Some(diff) = &run.classes else {
        return;
    };
    h.push_str("<h2>Heap by class</h2>\n");
    let d = match diff {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(
                h,
                "<p class=\"alert\">The class histograms could not be compared: {}</p>",
                esc(e)
            );
            return;
        }
    };
    let v = |x: i64| esc(&markdown::heap_value(x, &d.unit));
    let _ = writeln!(
        h,
        "<p>JVM live objects, <code>jcmd GC.class_histogram</code> from <code>{}</code> to \
         <code>{}</code>: {} before the load, {} after.</p>",
        crate::heap::classes::START_NAME,
        crate::heap::classes::END_NAME,
        v(d.start_total),
        v(d.end_total),
    );
    if d.sites.is_empty() {
        h.push_str("<p>No class grew.</p>\n");
        return;
    }
    h.push_str(
        "<table id=\"classes\" style=\"table-layout:fixed;overflow-wrap:anywhere\">\
         <tr><th>class</th><th>before</th><th>after</th><th>growth</th><th>instances</th></tr>\n",
    );
    for s in &d.sites {
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">+{}</td><td class=\"num\">{}</td></tr>",
            esc(&s.function),
            v(s.start),
            v(s.end),
            v(s.growth()),
            esc(s.at.as_deref().unwrap_or("–")),
        );
    }
    h.push_str("</table>\n");
}

fn events(h: &mut String, run: &RunData) {
    if run.events.is_empty() {
        return;
    }
    h.push_str("<h2>Events</h2>\n<table id=\"events\"><tr><th>t (s)</th><th>kind</th><th>detail</th></tr>\n");
    for e in &run.events {
        let _ = writeln!(
            h,
            "<tr><td class=\"num\">{:.1}</td><td>{}</td><td>{}</td></tr>",
            e.t,
            esc(&e.kind),
            esc(&e.detail)
        );
    }
    h.push_str("</table>\n");
}
