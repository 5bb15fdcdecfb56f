//! Numbers and outcomes in words, shared by the JUnit, Markdown, HTML and compare reports.

use crate::scenario::plan::SignalUnit;
use crate::verdict::{GateResult, Outcome, format};

/// `pass`, `FAIL`, `inconclusive`.
pub fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Inconclusive => "inconclusive",
    }
}

/// A gate's value in its unit (`bytes/request`, `count/s`, `ms`, `ratio`, `s`, `bytes`).
pub fn value(v: f64, unit: &str) -> String {
    let (base, per) = unit.split_once('/').unwrap_or((unit, ""));
    let signal_unit = match base {
        "bytes" => Some(SignalUnit::Bytes),
        "count" => Some(SignalUnit::Count),
        _ => None,
    };
    match (signal_unit, per) {
        (Some(u), "") => format::value(v, u),
        (Some(u), per) => format::rate(v, u, per),
        (None, _) => match unit {
            "ms" => format!("{} ms", format::sig3(v)),
            "ratio" => format!("{} %", format::sig3(v * 100.0)),
            "s" => format::duration(v),
            other => format!("{} {other}", format::sig3(v)),
        },
    }
}

/// How a run ended, as the reports headline it: the word, the HTML badge's CSS class and the
/// Markdown mark, by exit code.
pub fn headline(exit_code: i32) -> (&'static str, &'static str, &'static str) {
    match exit_code {
        0 => ("PASS", "pass", "✅"),
        1 => ("FAIL", "fail", "❌"),
        2 => ("INCONCLUSIVE", "inconclusive", "⚠️"),
        3 => ("TARGET DIED", "died", "💥"),
        4 => ("DRIVER FELL BEHIND", "behind", "🐢"),
        _ => ("ERROR", "fail", "⛔"),
    }
}

/// Bytes or a count: the unit of a signal gate's figures.
fn signal_unit(g: &GateResult) -> SignalUnit {
    if g.unit.starts_with("bytes") {
        SignalUnit::Bytes
    } else {
        SignalUnit::Count
    }
}

/// The slope of a gate per request (or per second when no request counts exist), with its
/// interval: `1.16 KiB/request (95 % CI 1.1–1.2 KiB/request)`; `None` for gates without a slope.
pub fn slope(g: &GateResult) -> Option<String> {
    let s = g.slope?;
    let unit = signal_unit(g);
    Some(
        match (s.per_request, s.ci_low_per_request, s.ci_high_per_request) {
            (Some(v), Some(lo), Some(hi)) => format::rate_ci(v, lo, hi, unit, "request", 0.95),
            _ => format::rate_ci(
                s.per_second,
                s.ci_low_per_second,
                s.ci_high_per_second,
                unit,
                "s",
                0.95,
            ),
        },
    )
}

/// The slope per minute, the figure people compare with dashboards: `+136 MiB/min`.
pub fn per_minute(g: &GateResult) -> Option<String> {
    let s = g.slope?;
    let unit = signal_unit(g);
    let sign = if s.per_minute >= 0.0 { "+" } else { "" };
    Some(format!("{sign}{}", format::rate(s.per_minute, unit, "min")))
}

/// One sentence for a failing or inconclusive gate: the number, the limit and the unit.
pub fn verdict_line(g: &GateResult) -> String {
    let rel = match g.outcome {
        Outcome::Fail => "over the limit",
        Outcome::Pass => "within the limit",
        Outcome::Inconclusive => "not judged against the limit",
    };
    format!(
        "{}: {} is {rel} {} ({})",
        g.name,
        value(g.observed, &g.unit),
        value(g.limit, &g.unit),
        g.unit
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_unit() {
        assert_eq!(value(1024.0, "bytes/request"), "1.00 KiB/request");
        assert_eq!(value(12.5, "ms"), "12.5 ms");
        assert_eq!(value(0.02, "ratio"), "2.00 %");
        assert!(value(0.001, "count/request").contains("10k requests"));
    }
}
