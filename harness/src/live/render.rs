//! The live pages, rendered once per published snapshot: Prometheus text and a JSON verdict.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::record::Evaluation;
use crate::record::{EvalOutcome, SignalStatus};
use crate::verdict::input::parse_rfc3339;

/// What the live endpoints show: the run and its latest rolling evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Run name.
    pub run: String,
    /// When the run started, RFC 3339.
    pub started_at: String,
    /// The latest rolling evaluation (None before the first).
    pub evaluation: Option<Evaluation>,
    /// RFC 3339 time the current outcome first held.
    pub since: Option<String>,
    /// Completed requests since load start.
    pub requests_total: u64,
    /// Memory limit in bytes and where it came from (`cgroup memory.max`).
    pub memory_limit: Option<(u64, String)>,
    /// Rolling evaluations made so far (the run counts them as it publishes).
    pub evaluations_total: u64,
}

/// The outcome in the words rollout controllers match on: `pass`, `leak`, `inconclusive`.
pub fn outcome_word(o: EvalOutcome) -> &'static str {
    match o {
        EvalOutcome::Pass => "pass",
        EvalOutcome::Leak => "leak",
        EvalOutcome::Inconclusive => "inconclusive",
    }
}

/// The outcome as a gauge value: 0 pass, 1 leak, 2 inconclusive.
fn outcome_code(o: EvalOutcome) -> f64 {
    match o {
        EvalOutcome::Pass => 0.0,
        EvalOutcome::Leak => 1.0,
        EvalOutcome::Inconclusive => 2.0,
    }
}

/// The verdict a snapshot shows: its evaluation's outcome, inconclusive before the first.
pub fn verdict(s: &Snapshot) -> EvalOutcome {
    s.evaluation
        .as_ref()
        .map_or(EvalOutcome::Inconclusive, |e| e.outcome)
}

/// One sample of a family: an optional single label and the value.
type Sample<'a> = (Option<(&'a str, &'a str)>, f64);

/// Writes one family with `# HELP` and `# TYPE`; non-finite samples are skipped, and a family
/// left without samples is not written at all.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[Sample<'_>]) {
    if !samples.iter().any(|(_, v)| v.is_finite()) {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (label, v) in samples.iter().filter(|(_, v)| v.is_finite()) {
        out.push_str(name);
        if let Some((k, val)) = label {
            let _ = write!(out, "{{{k}=\"{}\"}}", escape_label(val));
        }
        let _ = writeln!(out, " {}", number(*v));
    }
}

/// A label value escaped per the text format: backslash, double quote and line feed.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A finite value as text: integers without a fraction, others in the shortest exact form.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:?}")
    }
}

/// The per-signal families: metric name, help, and how to read the value off a signal.
type SignalField = (&'static str, &'static str, fn(&SignalStatus) -> Option<f64>);

const SIGNAL_FIELDS: [SignalField; 7] = [
    (
        "leakgate_signal_slope_per_second",
        "Theil-Sen slope of the signal over the horizon, units per second.",
        |s| s.per_second,
    ),
    (
        "leakgate_signal_slope_ci_low_per_second",
        "Lower confidence bound of the slope, units per second.",
        |s| s.ci_low_per_second,
    ),
    (
        "leakgate_signal_slope_ci_high_per_second",
        "Upper confidence bound of the slope, units per second.",
        |s| s.ci_high_per_second,
    ),
    (
        "leakgate_signal_growth_per_request",
        "Growth of the signal per completed request.",
        |s| s.per_request,
    ),
    (
        "leakgate_signal_latest",
        "Latest sampled value of the signal.",
        |s| s.latest,
    ),
    (
        "leakgate_signal_time_to_limit_seconds",
        "Projected seconds until the memory limit at the current slope.",
        |s| s.time_to_limit_s,
    ),
    (
        "leakgate_signal_outcome",
        "Outcome of the signal's gates: 0 pass, 1 leak, 2 inconclusive.",
        |s| Some(outcome_code(s.outcome)),
    ),
];

/// The `/metrics` page: Prometheus text exposition format 0.0.4.
pub fn metrics(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let v = verdict(s);
    family(
        &mut out,
        "leakgate_verdict",
        "gauge",
        "Rolling verdict: 0 pass, 1 leak, 2 inconclusive (2 before the first evaluation).",
        &[(None, outcome_code(v))],
    );
    family(
        &mut out,
        "leakgate_verdict_info",
        "gauge",
        "Rolling verdict as a label; always 1.",
        &[(Some(("verdict", outcome_word(v))), 1.0)],
    );
    if let Some(e) = &s.evaluation {
        for (name, help, get) in SIGNAL_FIELDS {
            let samples: Vec<Sample<'_>> = e
                .signals
                .iter()
                .filter_map(|(signal, st)| Some((Some(("signal", signal.as_str())), get(st)?)))
                .collect();
            family(&mut out, name, "gauge", help, &samples);
        }
    }
    family(
        &mut out,
        "leakgate_requests_total",
        "counter",
        "Completed requests since load start.",
        &[(None, s.requests_total as f64)],
    );
    let e = s.evaluation.as_ref();
    if let Some(rate) = e.and_then(|e| e.rate) {
        family(
            &mut out,
            "leakgate_achieved_rate_per_second",
            "gauge",
            "Completed requests per second since the previous evaluation.",
            &[(None, rate)],
        );
    }
    let quantiles: Vec<Sample<'_>> = [
        ("0.95", e.and_then(|e| e.p95_ms)),
        ("0.99", e.and_then(|e| e.p99_ms)),
    ]
    .into_iter()
    .filter_map(|(q, ms)| Some((Some(("quantile", q)), ms? / 1000.0)))
    .collect();
    family(
        &mut out,
        "leakgate_latency_seconds",
        "gauge",
        "Corrected latency quantiles since the previous evaluation, seconds.",
        &quantiles,
    );
    if let Some((bytes, source)) = &s.memory_limit {
        family(
            &mut out,
            "leakgate_memory_limit_bytes",
            "gauge",
            "Memory limit of the target, bytes, labelled with where it came from.",
            &[(Some(("source", source.as_str())), *bytes as f64)],
        );
    }
    if let Some(at) = e.and_then(|e| parse_rfc3339(&e.at)) {
        family(
            &mut out,
            "leakgate_last_evaluation_timestamp_seconds",
            "gauge",
            "Unix time of the latest rolling evaluation.",
            &[(None, at)],
        );
    }
    family(
        &mut out,
        "leakgate_evaluations_total",
        "counter",
        "Rolling evaluations made so far.",
        &[(None, s.evaluations_total as f64)],
    );
    out
}

/// One signal of `/verdict`: every field, `null` when absent or not finite.
fn signal_json(st: &SignalStatus) -> Value {
    json!({
        "outcome": outcome_word(st.outcome),
        "latest": st.latest,
        "per_second": st.per_second,
        "ci_low_per_second": st.ci_low_per_second,
        "ci_high_per_second": st.ci_high_per_second,
        "per_request": st.per_request,
        "time_to_limit_s": st.time_to_limit_s,
    })
}

/// The `/verdict` page: the verdict, its signals and when it was judged, as one JSON object.
pub fn verdict_json(s: &Snapshot) -> String {
    let e = s.evaluation.as_ref();
    let signals: Map<String, Value> = e
        .map(|e| {
            e.signals
                .iter()
                .map(|(name, st)| (name.clone(), signal_json(st)))
                .collect()
        })
        .unwrap_or_default();
    let page = json!({
        "verdict": outcome_word(verdict(s)),
        "signals": signals,
        "since": s.since,
        "evaluated_at": e.map(|e| e.at.as_str()),
        "requests": s.requests_total,
        "run": s.run,
        "started_at": s.started_at,
        "summary": e.map_or("no evaluation yet", |e| e.summary.as_str()),
    });
    format!("{page}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaking() -> Snapshot {
        let mut e = Evaluation {
            at: "2026-01-02T03:04:05Z".into(),
            outcome: EvalOutcome::Leak,
            p95_ms: Some(12.5),
            summary: "leak: rss grows".into(),
            ..Evaluation::default()
        };
        let rss = SignalStatus {
            outcome: EvalOutcome::Leak,
            latest: Some(1e8),
            per_second: Some(2.5e-7),
            ci_low_per_second: Some(f64::NAN),
            ..SignalStatus::default()
        };
        e.signals.insert("we\"ird\\na\nme".into(), rss);
        Snapshot {
            run: "r".into(),
            evaluation: Some(e),
            requests_total: 42,
            ..Snapshot::default()
        }
    }

    #[test]
    fn live_metrics_escape_skip_and_omit() {
        let m = metrics(&leaking());
        assert!(m.contains("leakgate_verdict 1\n"), "{m}");
        assert!(m.contains("leakgate_verdict_info{verdict=\"leak\"} 1\n"));
        let label = r#"{signal="we\"ird\\na\nme"}"#;
        assert!(m.contains(&format!("leakgate_signal_slope_per_second{label} 2.5e-7\n")));
        assert!(m.contains(&format!("leakgate_signal_latest{label} 100000000\n")));
        // NaN skipped, and a family left empty has no HELP either; absent is absent.
        assert!(!m.contains("ci_low"), "{m}");
        assert!(!m.contains("growth_per_request"));
        assert!(!m.contains("achieved_rate"));
        assert!(!m.contains("memory_limit"));
        assert!(m.contains("leakgate_latency_seconds{quantile=\"0.95\"} 0.0125\n"));
        assert!(!m.contains("quantile=\"0.99\""));
        assert!(m.contains("leakgate_last_evaluation_timestamp_seconds 1767323045\n"));
        assert!(m.contains("# TYPE leakgate_requests_total counter\nleakgate_requests_total 42\n"));
        for line in m.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(m.contains(&format!("# HELP {name} ")), "{name} has no HELP");
            assert!(m.contains(&format!("# TYPE {name} ")), "{name} has no TYPE");
        }
    }

    #[test]
    fn live_pages_before_the_first_evaluation() {
        let s = Snapshot::default();
        let m = metrics(&s);
        assert!(m.contains("leakgate_verdict 2\n"));
        assert!(m.contains("leakgate_verdict_info{verdict=\"inconclusive\"} 1\n"));
        assert!(m.contains("leakgate_evaluations_total 0\n"));
        assert!(!m.contains("leakgate_signal_"));
        let v: Value = serde_json::from_str(&verdict_json(&s)).expect("json");
        assert_eq!(v["verdict"], "inconclusive");
        assert_eq!(v["summary"], "no evaluation yet");
        assert!(v["evaluated_at"].is_null());
        assert_eq!(v["signals"], json!({}));
    }

    #[test]
    fn live_verdict_json_nulls_what_is_absent() {
        let v: Value = serde_json::from_str(&verdict_json(&leaking())).expect("json");
        assert_eq!(v["verdict"], "leak");
        let sig = &v["signals"]["we\"ird\\na\nme"];
        assert_eq!(sig["outcome"], "leak");
        assert_eq!(sig["per_second"], 2.5e-7);
        assert!(sig["ci_low_per_second"].is_null());
        assert!(sig["per_request"].is_null());
        assert_eq!(v["requests"], 42);
        assert_eq!(v["evaluated_at"], "2026-01-02T03:04:05Z");
    }
}
