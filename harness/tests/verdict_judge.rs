//! `judge` on hand-made inputs: absent signals, thin evidence, per-second limits, JSON shape.

use std::collections::BTreeMap;

use leakgate::record::ProbeSample;
use leakgate::scenario::plan::{GatePlan, LatencyGate, SignalGate, SignalUnit};
use leakgate::verdict::{GateKind, Outcome, Verdict, VerdictInput, judge};

fn gate(signal: &str, per_request: Option<f64>, per_second: Option<f64>) -> SignalGate {
    SignalGate {
        signal: signal.into(),
        max_per_second: per_second,
        max_per_request: per_request,
        drain_to_baseline: None,
        unit: SignalUnit::Bytes,
    }
}

fn plan(signals: Vec<SignalGate>) -> GatePlan {
    GatePlan {
        signals,
        latency: LatencyGate::default(),
        warmup_share: 0.1,
        windows: 10,
        confidence: 0.95,
        min_time_to_limit: None,
        extend_if_inconclusive: None,
    }
}

/// `n` samples a second at 2 000 req/s with `f(t)` as rss_bytes.
fn run(n: usize, f: impl Fn(f64) -> f64) -> VerdictInput {
    let samples = (0..n)
        .map(|i| {
            let t = i as f64;
            // Deterministic small wiggle so values are not exactly collinear.
            let wiggle = 1e5 * ((t * 12.9898).sin() * 43_758.545_3).fract();
            ProbeSample {
                t,
                cumulative_completed: (t * 2000.0) as u64,
                signals: BTreeMap::from([("rss_bytes".to_string(), f(t) + wiggle)]),
                merged: None,
            }
        })
        .collect();
    VerdictInput {
        samples,
        ..Default::default()
    }
}

#[test]
fn absent_signal_is_inconclusive_and_says_so() {
    let v = judge(
        &run(40, |_| 5e7),
        &plan(vec![gate("go_goroutines", None, Some(1.0))]),
    );
    assert_eq!(v.outcome, Outcome::Inconclusive);
    let g = &v.gates[0];
    assert!(g.explanation.contains("absent"), "{}", g.explanation);
    assert!(g.explanation.contains("go_goroutines"), "{}", g.explanation);
    assert!(v.summary.starts_with("INCONCLUSIVE"), "{}", v.summary);
}

#[test]
fn too_few_samples_is_inconclusive_never_a_pass() {
    let v = judge(
        &run(8, |_| 5e7),
        &plan(vec![gate("rss_bytes", Some(256.0), None)]),
    );
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert!(
        v.gates[0].explanation.contains("at least"),
        "{}",
        v.gates[0].explanation
    );
}

#[test]
fn per_second_limit_uses_the_run_rate() {
    // 512 B/request at 2 000 req/s = 1 000 KiB/s against a 256 KiB/s limit.
    let leak = run(40, |t| 5e7 + 512.0 * 2000.0 * t);
    let v = judge(
        &leak,
        &plan(vec![gate("rss_bytes", None, Some(256.0 * 1024.0))]),
    );
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
    let g = &v.gates[0];
    assert_eq!(g.kind, GateKind::Slope);
    assert_eq!(g.unit, "bytes/s");
    assert!(
        (g.observed - 1_024_000.0).abs() < 20_000.0,
        "{}",
        g.observed
    );
    let est = g.slope.expect("estimate");
    assert!((est.per_request.expect("per request") - 512.0).abs() < 10.0);
    assert!((est.per_minute - 60.0 * est.per_second).abs() < 1e-6);
    assert_eq!(est.windows_total, 10);
    assert!(est.windows_rising >= 8);
    assert!(!est.plateau);
    // The same limit on a flat run passes.
    let v = judge(
        &run(40, |_| 5e7),
        &plan(vec![gate("rss_bytes", None, Some(256.0 * 1024.0))]),
    );
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
}

#[test]
fn bounded_cache_passes_and_says_why() {
    // 40 MiB filled by exponential saturation (time constant 4 s), then flat.
    let mib = 1024.0 * 1024.0;
    let cache = run(60, |t| 5e7 + 40.0 * mib * (1.0 - (-t / 4.0).exp()));
    let v = judge(&cache, &plan(vec![gate("rss_bytes", Some(256.0), None)]));
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
    let why = &v.gates[0].explanation;
    assert!(
        why.contains("plateau") || why.contains("skipped as warm-up"),
        "{why}"
    );
    println!("{why}");
}

#[test]
fn no_gates_is_a_pass_that_says_nothing_was_judged() {
    let v = judge(&run(40, |_| 5e7), &plan(vec![]));
    assert_eq!(v.outcome, Outcome::Pass);
    assert!(v.summary.contains("nothing was judged"));
}

#[test]
fn verdict_round_trips_through_json() {
    let leak = run(40, |t| 5e7 + 1024.0 * 2000.0 * t);
    let mut input = leak;
    input.memory_limit = Some(1 << 30);
    let v = judge(&input, &plan(vec![gate("rss_bytes", Some(256.0), None)]));
    let json = serde_json::to_string(&v).expect("serialize");
    let back: Verdict = serde_json::from_str(&json).expect("deserialize");
    // serde_json may lose the last bit of a float: compare text fields exactly, floats closely.
    assert_eq!(back.outcome, v.outcome);
    assert_eq!(back.summary, v.summary);
    for (a, b) in back.gates.iter().zip(&v.gates) {
        assert_eq!(
            (a.kind, a.outcome, &a.explanation),
            (b.kind, b.outcome, &b.explanation)
        );
        assert!((a.observed - b.observed).abs() <= 1e-9 * b.observed.abs().max(1.0));
    }
    assert_eq!(back.gates.len(), v.gates.len());
    assert!(json.contains("\"outcome\":\"fail\""), "{json}");
    assert!(json.contains("\"kind\":\"time_to_limit\""), "{json}");
}

#[test]
fn leaked_fds_are_counted_per_10k_requests() {
    // One fd leaked every 100 requests (integer steps), limit 1 per 10k requests.
    let samples = (0..40)
        .map(|i| {
            let cum = i as u64 * 2000;
            ProbeSample {
                t: f64::from(i),
                cumulative_completed: cum,
                signals: BTreeMap::from([("fd_count".to_string(), 12.0 + (cum / 100) as f64)]),
                merged: None,
            }
        })
        .collect();
    let input = VerdictInput {
        samples,
        ..Default::default()
    };
    let mut g = gate("fd_count", Some(1e-4), None);
    g.unit = SignalUnit::Count;
    let v = judge(&input, &plan(vec![g]));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
    assert!(
        v.gates[0].explanation.contains("100 /10k requests"),
        "{}",
        v.gates[0].explanation
    );
}
