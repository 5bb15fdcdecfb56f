//! `leakgate compare BASE NEW`: two runs side by side, for a pull-request gate against the
//! main branch's stored run. A regression is a p99 that rose beyond a tolerance (and beyond a
//! small absolute floor, so sub-millisecond jitter on loopback is not a regression), a slope gate
//! that rose past its limit, or a target that died only in the new run.

use std::fmt::Write;

use super::markdown::cell;
use super::run_data::RunData;
use super::words;
use crate::verdict::{GateKind, GateResult};

/// How much worse the new run may be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Allowed relative p99 rise (0.10 = 10 %).
    pub p99_relative: f64,
    /// p99 rises smaller than this many milliseconds never count.
    pub p99_floor_ms: f64,
    /// Allowed relative rise of a slope that was already over its limit in the base run.
    pub slope_relative: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            p99_relative: 0.10,
            p99_floor_ms: 1.0,
            slope_relative: 0.10,
        }
    }
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What is compared.
    pub name: String,
    /// Base value in words.
    pub base: String,
    /// New value in words.
    pub new: String,
    /// Relative change in words (`+12.0 %`), or `–`.
    pub change: String,
    /// This row is a regression.
    pub regressed: bool,
}

/// The comparison of two runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Base run folder name and scenario.
    pub base_name: String,
    /// New run folder name and scenario.
    pub new_name: String,
    /// Figures side by side.
    pub rows: Vec<Row>,
    /// Why the new run regressed, one sentence each; empty: no regression.
    pub regressions: Vec<String>,
    /// Things worth knowing that are not regressions (different scenarios, missing data).
    pub notes: Vec<String>,
}

impl Comparison {
    /// The new run is worse than the base beyond the tolerance.
    pub fn regressed(&self) -> bool {
        !self.regressions.is_empty()
    }
}

/// Compares `new` against `base`.
pub fn compare(base: &RunData, new: &RunData, tol: Tolerance) -> Comparison {
    let mut c = Comparison {
        base_name: super::markdown::folder_name(base),
        new_name: super::markdown::folder_name(new),
        rows: Vec::new(),
        regressions: Vec::new(),
        notes: Vec::new(),
    };
    if base.name() != new.name() {
        c.notes.push(format!(
            "the runs are of different scenarios (\"{}\" and \"{}\")",
            base.name(),
            new.name()
        ));
    }
    c.rows.push(Row {
        name: "exit".into(),
        base: format!("{} ({})", base.summary.exit_code, base.summary.exit_reason),
        new: format!("{} ({})", new.summary.exit_code, new.summary.exit_reason),
        change: "–".into(),
        regressed: new.summary.target_exit.is_some() && base.summary.target_exit.is_none(),
    });
    if let Some(e) = &new.summary.target_exit
        && base.summary.target_exit.is_none()
    {
        c.regressions
            .push(format!("the target died in the new run: {}", e.cause));
    }
    latency_rows(&mut c, base, new, tol);
    slope_rows(&mut c, base, new, tol);
    c
}

fn latency_rows(c: &mut Comparison, base: &RunData, new: &RunData, tol: Tolerance) {
    let (Some(b), Some(n)) = (&base.summary.load, &new.summary.load) else {
        c.notes
            .push("one run has no load results; latency not compared".into());
        return;
    };
    let ms = |v: f64| format!("{v:.3} ms");
    let (bp99, np99) = (b.steady_corrected.p99, n.steady_corrected.p99);
    let p99_regressed = np99 > bp99 * (1.0 + tol.p99_relative) && np99 - bp99 > tol.p99_floor_ms;
    if p99_regressed {
        c.regressions.push(format!(
            "p99 latency rose from {} to {} ({}), more than the tolerance {:.0} % (and {} ms)",
            ms(bp99),
            ms(np99),
            change(bp99, np99),
            tol.p99_relative * 100.0,
            tol.p99_floor_ms
        ));
    }
    let rows = [
        (
            "p50 latency (steady, corrected)",
            b.steady_corrected.p50,
            n.steady_corrected.p50,
            false,
        ),
        (
            "p95 latency (steady, corrected)",
            b.steady_corrected.p95,
            n.steady_corrected.p95,
            false,
        ),
        ("p99 latency (steady, corrected)", bp99, np99, p99_regressed),
    ];
    for (name, bv, nv, regressed) in rows {
        c.rows.push(Row {
            name: name.into(),
            base: ms(bv),
            new: ms(nv),
            change: change(bv, nv),
            regressed,
        });
    }
    c.rows.push(Row {
        name: "achieved rate".into(),
        base: format!("{:.1}/s", b.achieved_rate),
        new: format!("{:.1}/s", n.achieved_rate),
        change: change(b.achieved_rate, n.achieved_rate),
        regressed: false,
    });
    c.rows.push(Row {
        name: "error rate".into(),
        base: words::value(b.error_rate(), "ratio"),
        new: words::value(n.error_rate(), "ratio"),
        change: "–".into(),
        regressed: false,
    });
}

fn slope_rows(c: &mut Comparison, base: &RunData, new: &RunData, tol: Tolerance) {
    let slope_gates = |r: &RunData| -> Vec<GateResult> {
        r.summary
            .verdict
            .iter()
            .flat_map(|v| v.gates.iter())
            .filter(|g| g.kind == GateKind::Slope)
            .cloned()
            .collect()
    };
    let base_gates = slope_gates(base);
    for g in slope_gates(new) {
        let b = base_gates.iter().find(|b| b.name == g.name);
        let over = g.observed > g.limit;
        let was_over = b.is_some_and(|b| b.observed > b.limit);
        // Crossing the limit is a regression; a run already over it regresses only when the
        // slope grew beyond its tolerance, so a known leak on main does not block every PR.
        let worse = match b {
            Some(b) if was_over => g.observed > b.observed * (1.0 + tol.slope_relative),
            _ => true,
        };
        let regressed = over && worse;
        if regressed {
            c.regressions.push(match b {
                Some(b) => format!(
                    "{} rose from {} to {}, past its limit {}",
                    g.name,
                    words::value(b.observed, &b.unit),
                    words::value(g.observed, &g.unit),
                    words::value(g.limit, &g.unit)
                ),
                None => format!(
                    "{} is {}, past its limit {} (the base run has no such gate)",
                    g.name,
                    words::value(g.observed, &g.unit),
                    words::value(g.limit, &g.unit)
                ),
            });
        }
        c.rows.push(Row {
            name: format!("{} (limit {})", g.name, words::value(g.limit, &g.unit)),
            base: b.map_or_else(|| "–".into(), |b| words::value(b.observed, &b.unit)),
            new: words::value(g.observed, &g.unit),
            // A difference, not a ratio: slopes of clean runs sit near zero, where percentages
            // of noise mean nothing.
            change: b.map_or_else(
                || "–".into(),
                |b| {
                    let d = g.observed - b.observed;
                    let sign = if d >= 0.0 { "+" } else { "-" };
                    format!("{sign}{}", words::value(d.abs(), &g.unit))
                },
            ),
            regressed,
        });
    }
}

/// Relative change in words; `–` when the base is zero.
fn change(base: f64, new: f64) -> String {
    if base.abs() < f64::EPSILON {
        return "–".into();
    }
    format!("{:+.1} %", (new - base) / base.abs() * 100.0)
}

/// The comparison as a Markdown table (fit for a terminal and a pull-request comment).
pub fn render(c: &Comparison) -> String {
    let mut out = String::new();
    let head = if c.regressed() {
        "❌ REGRESSED"
    } else {
        "✅ no regression"
    };
    let _ = writeln!(
        out,
        "### leakgate compare: {head}\n\nbase `{}` → new `{}`\n",
        c.base_name, c.new_name
    );
    out.push_str("| figure | base | new | change | |\n| --- | --- | --- | --- | --- |\n");
    for r in &c.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(&r.name),
            cell(&r.base),
            cell(&r.new),
            r.change,
            if r.regressed { "❌" } else { "" }
        );
    }
    if !c.regressions.is_empty() || !c.notes.is_empty() {
        out.push('\n');
    }
    for why in &c.regressions {
        let _ = writeln!(out, "- regression: {why}");
    }
    for n in &c.notes {
        let _ = writeln!(out, "- note: {n}");
    }
    out
}
