//! The verdict over synthetic memory series with random seeds: no false positives on any
//! no-leak shape, detection where the slope is at least twice the limit.
//!
//! Run with `cargo test -p leakgate --test verdict_synthetic -- --nocapture` for the table.

use std::collections::BTreeMap;
use std::time::Duration;

use leakgate::record::ProbeSample;
use leakgate::scenario::plan::{GatePlan, LatencyGate, SignalGate, SignalUnit};
use leakgate::verdict::{Outcome, VerdictInput, decisive, judge};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

const MIB: f64 = 1024.0 * 1024.0;
const KIB: f64 = 1024.0;
/// The gate's limit: bytes per completed request.
const LIMIT: f64 = 256.0;
/// Planned arrival rate.
const RATE: f64 = 2000.0;
/// Warm-up phase before the steady phase, seconds.
const WARMUP: f64 = 5.0;
const SEEDS: u64 = 200;
/// Range of the noise standard deviation, KiB.
const NOISE_KIB: (f64, f64) = (100.0, 400.0);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Flat,
    Linear,
    Plateau,
    Sawtooth,
    WarmupStep,
    JustBelow,
    JustAbove,
    TwiceLimit,
    /// Informational: a 4× leak under a GC sawtooth (floors of short windows cut it only
    /// partly).
    SawtoothLeak,
    /// A 2× leak that grows in steps (heap-goal or page steps), under a GC sawtooth with its
    /// collection counter sampled.
    Staircase,
    /// A 2× leak with a level shift in the middle of the steady phase.
    MidStepLeak,
    /// A 2–3× leak under a large GC sawtooth, its collection counter sampled.
    GcLeak,
    /// A bounded cache in a Go-like heap: a staircase in the first half, then flat, under a GC
    /// sawtooth.
    StaircaseStops,
    /// No leak: one step in the middle, flat on both sides (a one-time allocation).
    LateFlatStep,
    /// No leak: a large GC sawtooth with its counter.
    GcSawtooth,
}

impl Shape {
    fn leaks(self) -> bool {
        matches!(
            self,
            Shape::Linear
                | Shape::JustAbove
                | Shape::TwiceLimit
                | Shape::SawtoothLeak
                | Shape::Staircase
                | Shape::MidStepLeak
                | Shape::GcLeak
        )
    }
}

fn plan() -> GatePlan {
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
        extend_if_inconclusive: None,
    }
}

/// A realistic run: 5 s warm-up at half rate, then `steady_s` seconds at 2 000 req/s, one probe
/// sample a second (with jitter), RSS base 50 MiB, noise of a few hundred KiB.
fn synth(shape: Shape, seed: u64, steady_s: Option<f64>) -> VerdictInput {
    synth_noisy(shape, seed, steady_s, NOISE_KIB)
}

/// Like [`synth`] with a noise standard deviation drawn from `noise_kib` (KiB).
fn synth_noisy(
    shape: Shape,
    seed: u64,
    steady_s: Option<f64>,
    noise_kib: (f64, f64),
) -> VerdictInput {
    let mut rng = StdRng::seed_from_u64(seed);
    let dur = steady_s.unwrap_or_else(|| f64::from(rng.random_range(30..=60u32)));
    let noise =
        Normal::new(0.0, rng.random_range(noise_kib.0..noise_kib.1) * KIB).expect("valid sd");
    // Shape parameters.
    let slope = match shape {
        Shape::Linear => rng.random_range(2.0..8.0) * LIMIT,
        Shape::JustBelow => rng.random_range(0.6..0.85) * LIMIT,
        Shape::JustAbove => rng.random_range(1.15..1.4) * LIMIT,
        Shape::TwiceLimit | Shape::Staircase | Shape::MidStepLeak => 2.0 * LIMIT,
        Shape::GcLeak => rng.random_range(2.0..3.0) * LIMIT,
        Shape::SawtoothLeak => 4.0 * LIMIT,
        _ => 0.0,
    };
    // Go-like heaps: steps of a few MiB, a GC every few seconds dropping a few to 20 MiB.
    let stair = rng.random_range(3.0..8.0) * MIB;
    let gc_amp = rng.random_range(2.0..8.0) * MIB;
    // Under load a collection comes every fraction of a second to a few seconds.
    let gc_period = rng.random_range(0.3..2.0);
    let stops_at = rng.random_range(0.25..0.45) * dur;
    let cache_steps = f64::from(rng.random_range(3..=5u32));
    let mid_step = rng.random_range(5.0..15.0) * MIB;
    let mid_at = rng.random_range(0.25..0.6) * dur;
    let late_at = rng.random_range(0.3..0.7) * dur;
    let gc_shape = matches!(
        shape,
        Shape::Staircase | Shape::GcLeak | Shape::StaircaseStops | Shape::GcSawtooth
    );
    let amp = rng.random_range(20.0..60.0) * MIB;
    let mid = rng.random_range(0.1..0.35) * dur;
    let width = rng.random_range(0.03..0.1) * dur;
    let logistic = rng.random_bool(0.5);
    let fill = rng.random_range(0.05..0.2) * dur;
    let saw_amp = rng.random_range(3.0..8.0) * MIB;
    let period = rng.random_range(5.0..15.0);
    let phase = rng.random_range(0.0..period);
    let step = rng.random_range(10.0..30.0) * MIB;
    let step_at = rng.random_range(0.15..0.4) * dur;

    let mut samples = Vec::new();
    let steps = (WARMUP + dur) as usize;
    for i in 0..=steps {
        let t = i as f64 + rng.random_range(0.0..0.05);
        let cum = if t < WARMUP {
            RATE / 2.0 * t
        } else {
            RATE / 2.0 * WARMUP + RATE * (t - WARMUP) * rng.random_range(0.98..1.02)
        };
        let s = (t - WARMUP).max(0.0); // seconds into the steady phase
        let steady_cum = (cum - RATE / 2.0 * WARMUP).max(0.0);
        let warm = 8.0 * MIB * (t / WARMUP).min(1.0); // growth during warm-up, excluded
        let shape_v = match shape {
            Shape::Flat => 0.0,
            Shape::Linear | Shape::JustBelow | Shape::JustAbove | Shape::TwiceLimit => {
                slope * steady_cum
            }
            // A bounded cache: logistic fill, or exponential saturation from the start.
            Shape::Plateau if logistic => amp / (1.0 + (-(s - mid) / width).exp()),
            Shape::Plateau => amp * (1.0 - (-s / fill).exp()),
            Shape::SawtoothLeak => slope * steady_cum + saw_amp * ((s + phase) / period).fract(),
            Shape::Sawtooth => saw_amp * ((s + phase) / period).fract(),
            Shape::WarmupStep => {
                if s >= step_at {
                    step
                } else {
                    0.0
                }
            }
            Shape::Staircase => (slope * steady_cum / stair).floor() * stair,
            Shape::MidStepLeak => slope * steady_cum + if s >= mid_at { mid_step } else { 0.0 },
            Shape::GcLeak | Shape::GcSawtooth => slope * steady_cum,
            Shape::StaircaseStops => {
                let each = stops_at / cache_steps;
                (s / each).floor().min(cache_steps) * stair
            }
            Shape::LateFlatStep => {
                if s >= late_at {
                    step
                } else {
                    0.0
                }
            }
        };
        // Garbage piles up between collections and drops at each: a sawtooth on top.
        let collections = (t / gc_period).floor();
        let garbage = if gc_shape {
            gc_amp * (t / gc_period).fract()
        } else {
            0.0
        };
        let v = 50.0 * MIB + warm + shape_v + garbage + noise.sample(&mut rng);
        let mut signals = BTreeMap::from([("rss_bytes".to_string(), v)]);
        if gc_shape {
            signals.insert("go_num_gc".to_string(), collections);
        }
        samples.push(ProbeSample {
            t,
            cumulative_completed: cum as u64,
            signals,
            merged: None,
        });
    }
    VerdictInput {
        samples,
        steady: vec![(WARMUP, WARMUP + dur + 1.0)],
        ..Default::default()
    }
}

#[derive(Default, Debug)]
struct Tally {
    pass: usize,
    fail: usize,
    inconclusive: usize,
}

fn run(shape: Shape, noise_kib: (f64, f64)) -> (Tally, Vec<String>) {
    let mut tally = Tally::default();
    let mut examples = Vec::new();
    for seed in 0..SEEDS {
        let v = judge(&synth_noisy(shape, seed, None, noise_kib), &plan());
        match v.outcome {
            Outcome::Pass => tally.pass += 1,
            Outcome::Fail => tally.fail += 1,
            Outcome::Inconclusive => tally.inconclusive += 1,
        }
        let wrong = if shape.leaks() {
            v.outcome != Outcome::Fail
        } else {
            v.outcome == Outcome::Fail
        };
        if seed == 0
            || (wrong
                && !examples
                    .iter()
                    .any(|e: &String| e.starts_with("UNEXPECTED")))
        {
            let tag = if wrong { "UNEXPECTED" } else { "example" };
            examples.push(format!(
                "{tag} seed {seed}: {:?}: {}",
                v.outcome, v.gates[0].explanation
            ));
        }
    }
    (tally, examples)
}

#[test]
fn synthetic_shapes_have_no_false_positives_and_detect_leaks() {
    let shapes = [
        Shape::Flat,
        Shape::Plateau,
        Shape::Sawtooth,
        Shape::WarmupStep,
        Shape::JustBelow,
        Shape::JustAbove,
        Shape::Linear,
        Shape::TwiceLimit,
        Shape::SawtoothLeak,
        Shape::Staircase,
        Shape::MidStepLeak,
        Shape::GcLeak,
        Shape::StaircaseStops,
        Shape::LateFlatStep,
        Shape::GcSawtooth,
    ];
    println!("limit {LIMIT} B/request at {RATE} req/s; {SEEDS} seeds per shape");
    println!(
        "{:<12} {:>5} {:>5} {:>13}",
        "shape", "pass", "fail", "inconclusive"
    );
    let mut results = Vec::new();
    for shape in shapes {
        let (t, examples) = run(shape, NOISE_KIB);
        println!(
            "{:<12} {:>5} {:>5} {:>13}",
            format!("{shape:?}"),
            t.pass,
            t.fail,
            t.inconclusive
        );
        for e in examples {
            println!("    {e}");
        }
        results.push((shape, t));
    }
    for (shape, t) in &results {
        match shape {
            Shape::Linear
            | Shape::TwiceLimit
            | Shape::Staircase
            | Shape::MidStepLeak
            | Shape::GcLeak => assert!(
                t.fail as f64 >= 0.99 * SEEDS as f64,
                "{shape:?}: detected {} of {SEEDS}",
                t.fail
            ),
            Shape::JustAbove | Shape::SawtoothLeak => {}
            _ => assert_eq!(t.fail, 0, "{shape:?}: false positives"),
        }
    }
}

#[test]
fn ten_times_the_noise_still_has_no_false_positives() {
    // Noise of 1–4 MiB (10× the realistic level): evidence thins, so more inconclusives, but a
    // clean shape never fails and a leak at twice the limit never passes.
    println!("noise 1–4 MiB; {SEEDS} seeds per shape");
    println!(
        "{:<12} {:>5} {:>5} {:>13}",
        "shape", "pass", "fail", "inconclusive"
    );
    for shape in [
        Shape::Flat,
        Shape::Plateau,
        Shape::Sawtooth,
        Shape::WarmupStep,
        Shape::JustBelow,
        Shape::JustAbove,
        Shape::TwiceLimit,
    ] {
        let (t, _) = run(shape, (1000.0, 4000.0));
        println!(
            "{:<12} {:>5} {:>5} {:>13}",
            format!("{shape:?}"),
            t.pass,
            t.fail,
            t.inconclusive
        );
        match shape {
            Shape::TwiceLimit => {
                assert_eq!(t.pass, 0, "a 2× leak passed");
                assert!(t.fail as f64 >= 0.9 * SEEDS as f64, "detected {}", t.fail);
            }
            Shape::JustAbove => {}
            _ => assert_eq!(t.fail, 0, "{shape:?}: false positives"),
        }
    }
}

#[test]
fn one_kib_per_request_is_detected_within_30_s_of_steady_load() {
    // 1 KiB/request at 2 000 req/s = 2 MiB/s; 30 s of steady samples at 1 s, plus a GC
    // sawtooth of 2 MiB on top.
    for seed in 0..50 {
        let mut input = synth(Shape::Flat, 1000 + seed, Some(30.0));
        for s in &mut input.samples {
            let steady_cum = (s.cumulative_completed as f64 - RATE / 2.0 * WARMUP).max(0.0);
            let saw = 2.0 * MIB * ((s.t / 7.0).fract());
            if let Some(v) = s.signals.get_mut("rss_bytes") {
                *v += 1024.0 * steady_cum + saw;
            }
        }
        let last = input.steady[0].1;
        assert!(last - input.steady[0].0 <= 31.0);
        let v = judge(&input, &plan());
        assert_eq!(v.outcome, Outcome::Fail, "seed {seed}: {}", v.summary);
        let est = v.gates[0].slope.expect("slope estimate");
        let pr = est.per_request.expect("per request");
        assert!((pr - 1024.0).abs() < 200.0, "seed {seed}: {pr}");
        assert!(
            (est.per_second - 2.0 * MIB).abs() < 0.4 * MIB,
            "{}",
            est.per_second
        );
        if seed == 0 {
            println!("{}", v.gates[0].explanation);
        }
    }
}

#[test]
fn time_to_limit_fails_a_leak_close_to_its_memory_limit() {
    let mut p = plan();
    p.min_time_to_limit = Some(Duration::from_secs(3600));
    let mut input = synth(Shape::TwiceLimit, 7, Some(40.0));
    input.memory_limit = Some(512 * 1024 * 1024);
    let v = judge(&input, &p);
    let ttl = v
        .gates
        .iter()
        .find(|g| g.name.ends_with("time to limit"))
        .expect("ttl gate");
    assert_eq!(ttl.outcome, Outcome::Fail, "{}", ttl.explanation);
    // 1 MiB/s from ~90 MiB to 512 MiB: roughly 7 minutes.
    let t = ttl.time_to_limit_s.expect("finite");
    assert!((300.0..600.0).contains(&t), "{t}");
    // A flat series never reaches it.
    let mut flat = synth(Shape::Flat, 7, Some(40.0));
    flat.memory_limit = Some(512 * 1024 * 1024);
    let v = judge(&flat, &p);
    let ttl = v
        .gates
        .iter()
        .find(|g| g.name.ends_with("time to limit"))
        .expect("ttl");
    assert_ne!(ttl.outcome, Outcome::Fail, "{}", ttl.explanation);
}

/// Seconds of steady load until the verdict is decided, as `--until-verdict` evaluates: every
/// second on everything so far, decided when two evaluations in a row agree. None when it was
/// not decided within the series.
fn time_to_verdict(input: &VerdictInput, plan: &GatePlan) -> Option<(f64, Outcome)> {
    let (start, end) = input.steady[0];
    let mut last = None;
    let mut t = start + 5.0;
    while t <= end {
        let prefix = VerdictInput {
            samples: input.samples.iter().filter(|s| s.t <= t).cloned().collect(),
            steady: vec![(start, t)],
            ..Default::default()
        };
        let v = judge(&prefix, plan);
        let firm = decisive(&v).then_some(v.outcome);
        if firm.is_some() && last == firm {
            return Some((t - start, v.outcome));
        }
        last = firm;
        t += 1.0;
    }
    None
}

#[test]
fn time_to_verdict_by_leak_size() {
    // A Go-like heap (GC sawtooth with its counter) leaking 1×, 2× and 4× the limit at
    // 2 000 req/s, 90 s of steady load, 40 seeds each.
    println!("time to a decided verdict (s of steady load), GC sawtooth, 40 seeds");
    println!(
        "{:<6} {:>8} {:>8} {:>10} {:>12}",
        "leak", "median", "p90", "undecided", "called clean"
    );
    for multiple in [1.0, 2.0, 4.0] {
        let mut times = Vec::new();
        let (mut undecided, mut wrong) = (0, 0);
        for seed in 0..40 {
            let mut input = synth(Shape::GcSawtooth, 5000 + seed, Some(90.0));
            for s in &mut input.samples {
                let steady_cum = (s.cumulative_completed as f64 - RATE / 2.0 * WARMUP).max(0.0);
                if let Some(v) = s.signals.get_mut("rss_bytes") {
                    *v += multiple * LIMIT * steady_cum;
                }
            }
            match time_to_verdict(&input, &plan()) {
                Some((t, Outcome::Fail)) => times.push(t),
                Some(_) => wrong += 1,
                None => undecided += 1,
            }
        }
        times.sort_by(f64::total_cmp);
        let q = |p: f64| {
            times
                .get(((times.len() as f64 - 1.0) * p).round() as usize)
                .map_or("-".to_string(), |t| format!("{t:.0}"))
        };
        println!(
            "{:<6} {:>8} {:>8} {:>10} {:>12}",
            format!("{multiple}×"),
            q(0.5),
            q(0.9),
            undecided,
            wrong
        );
        if multiple >= 2.0 {
            // Decided within a minute of steady load, and never called clean.
            assert_eq!(wrong, 0, "{multiple}×: a leak was decided as a pass");
            assert!(
                times.len() >= 38,
                "{multiple}×: decided {} of 40",
                times.len()
            );
            let median = times[times.len() / 2];
            assert!(median <= 60.0, "{multiple}×: median {median} s");
        }
    }
}
