//! The verdict on synthetic series, ≥ 200 random seeds per shape: no false positive on any
//! no-leak shape, ≥ 99 % detection at twice the threshold. Run with `--nocapture` for the table.

use std::collections::BTreeMap;
use std::time::Duration;

use leakgate::record::ProbeSample;
use leakgate::scenario::plan::{GatePlan, LatencyGate, SignalGate, SignalUnit};
use leakgate::verdict::{Outcome, VerdictInput, judge};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SEEDS: u64 = 200;
const RATE: f64 = 2000.0; // requests per second
const STEP: f64 = 0.5; // sample interval, s
const WARMUP: f64 = 5.0;
const END: f64 = 30.0;
const MIB: f64 = 1024.0 * 1024.0;
const LIMIT: f64 = 256.0; // bytes per request

fn gates() -> GatePlan {
    GatePlan {
        signals: vec![SignalGate {
            signal: "rss_bytes".into(),
            max_per_second: None,
            max_per_request: Some(LIMIT),
            drain_to_baseline: None,
            unit: SignalUnit::Bytes,
        }],
        latency: LatencyGate::default(),
        warmup_share: 0.1,
        windows: 10,
        confidence: 0.95,
        min_time_to_limit: None,
    }
}

/// Normal noise by Box–Muller.
fn noise(rng: &mut StdRng, sd: f64) -> f64 {
    let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
    sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn series(seed: u64, shape: &dyn Fn(f64, &mut StdRng) -> f64) -> VerdictInput {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut samples = Vec::new();
    let mut t = 0.0;
    while t <= END + 1e-9 {
        let v = 50.0 * MIB + shape(t, &mut rng) + noise(&mut rng, 300.0 * 1024.0);
        samples.push(ProbeSample {
            t,
            cumulative_completed: (t * RATE) as u64,
            signals: BTreeMap::from([("rss_bytes".to_string(), v)]),
        });
        t += STEP;
    }
    VerdictInput {
        samples,
        steady: vec![(WARMUP, END)],
        ..VerdictInput::default()
    }
}

fn linear(bytes_per_request: f64) -> impl Fn(f64, &mut StdRng) -> f64 {
    move |t, _| bytes_per_request * RATE * t
}

fn run(name: &str, shape: &dyn Fn(f64, &mut StdRng) -> f64) -> [u64; 3] {
    let mut counts = [0u64; 3];
    for seed in 0..SEEDS {
        let v = judge(&series(seed, shape), &gates());
        counts[match v.outcome {
            Outcome::Pass => 0,
            Outcome::Fail => 1,
            Outcome::Inconclusive => 2,
        }] += 1;
    }
    println!(
        "| {name:<34} | {:>4} | {:>4} | {:>12} |",
        counts[0], counts[1], counts[2]
    );
    counts
}

#[test]
fn synthetic_series() {
    println!(
        "\nthreshold {LIMIT} B/request, {RATE} req/s, sample every {STEP} s, steady {WARMUP}-{END} s, {SEEDS} seeds"
    );
    println!("| shape                              | pass | fail | inconclusive |");
    println!("|------------------------------------|------|------|--------------|");
    let flat = run("flat + noise", &|_, _| 0.0);
    let sawtooth = run("GC sawtooth (8 MiB, 3.7 s period)", &|t, _| {
        8.0 * MIB * ((t / 3.7).fract())
    });
    let plateau = run("logistic plateau (+30 MiB)", &|t, _| {
        30.0 * MIB / (1.0 + (-(t - 10.0) / 1.2).exp())
    });
    let step = run("warm-up step (+20 MiB at 6 s), flat", &|t, _| {
        if t >= 6.0 { 20.0 * MIB } else { 0.0 }
    });
    let below = run("slope 0.9 x threshold", &linear(0.9 * LIMIT));
    let above = run("slope 1.1 x threshold", &linear(1.1 * LIMIT));
    let double = run("slope 2 x threshold", &linear(2.0 * LIMIT));
    let leak = run("1 KiB/request leak (4 x)", &linear(1024.0));
    let leak_saw = run("2 x threshold + GC sawtooth", &|t, r| {
        linear(2.0 * LIMIT)(t, r) + 8.0 * MIB * ((t / 3.7).fract())
    });
    for (name, c) in [
        ("flat", flat),
        ("sawtooth", sawtooth),
        ("plateau", plateau),
        ("step", step),
        ("below", below),
    ] {
        assert_eq!(c[1], 0, "false positives on {name}: {c:?}");
    }
    for (name, c) in [("2x", double), ("leak", leak), ("2x+sawtooth", leak_saw)] {
        assert!(
            c[1] as f64 >= 0.99 * SEEDS as f64,
            "detection on {name}: {c:?}"
        );
    }
    // Clean shapes should mostly pass outright, not hide behind "inconclusive".
    for (name, c) in [("flat", flat), ("plateau", plateau), ("step", step)] {
        assert!(
            c[0] as f64 >= 0.95 * SEEDS as f64,
            "{name} not passing: {c:?}"
        );
    }
    let _ = above;
}

#[test]
fn a_1kib_per_request_leak_is_found_within_30_s() {
    // 2 000 req/s, 1 KiB/request, 5 s warm-up and 25 s steady at 1 s samples: 30 s of load.
    let mut input = series(7, &linear(1024.0));
    input.samples.retain(|s| (s.t.fract()).abs() < 1e-9);
    let v = judge(&input, &gates());
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
    let g = &v.gates[0];
    assert!(g.explanation.contains("leak"), "{}", g.explanation);
    let per_req = g.slope.as_ref().unwrap().per_request.unwrap();
    assert!((per_req - 1024.0).abs() < 100.0, "{per_req}");
    println!("{}", g.explanation);
}

#[test]
fn absent_signal_is_inconclusive_not_zero() {
    let mut g = gates();
    g.signals[0].signal = "go_goroutines".into();
    let v = judge(&series(1, &|_, _| 0.0), &g);
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert!(
        v.gates[0].explanation.contains("absent"),
        "{}",
        v.gates[0].explanation
    );
}

#[test]
fn too_few_samples_is_inconclusive() {
    let mut input = series(1, &linear(1024.0));
    input.samples.truncate(14);
    let v = judge(&input, &gates());
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.summary);
    let _ = Duration::ZERO;
}
