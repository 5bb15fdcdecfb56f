//! Unit tests of the slope gate's decision.

use super::*;

fn stats(slope: f64, lo: f64, hi: f64, p: f64, rising: usize, h1: f64, h2: f64) -> FloorStats {
    FloorStats {
        mk: MannKendall {
            n: 10,
            s: 0.0,
            var_s: 125.0,
            correction: 1.0,
            z: 0.0,
            p_up: p,
        },
        ts: TheilSen {
            slope,
            ci_low: lo,
            ci_high: hi,
            pairs: 45,
        },
        rising,
        non_falling: rising,
        // Growth stopped where the second half is much slower (a cache that filled).
        stopped: h2 < PLATEAU_RATIO * h1,
        steps: 9,
        first_half: h1,
        second_half: h2,
        second_half_ci_high: h2 * 1.5,
        ratio: if h1 > 0.0 { h2 / h1 } else { 1.0 },
        first_rise: h1 * 5.0,
    }
}

#[test]
fn fail_needs_every_piece_of_evidence() {
    let leak = stats(500.0, 450.0, 550.0, 1e-4, 9, 500.0, 500.0);
    assert_eq!(decide(&leak, 256.0, 0.05).outcome, Outcome::Fail);
    // Not significant.
    let d = decide(
        &stats(500.0, 450.0, 550.0, 0.2, 9, 500.0, 500.0),
        256.0,
        0.05,
    );
    assert_eq!(d.outcome, Outcome::Inconclusive);
    assert!(d.against[0].contains("Mann–Kendall"));
    // Lower bound under the limit.
    let d = decide(
        &stats(500.0, 200.0, 800.0, 1e-4, 9, 500.0, 500.0),
        256.0,
        0.05,
    );
    assert_eq!(d.outcome, Outcome::Inconclusive);
    // Floors rose in too few windows.
    let d = decide(
        &stats(500.0, 450.0, 550.0, 1e-4, 5, 500.0, 500.0),
        256.0,
        0.05,
    );
    assert_eq!(d.outcome, Outcome::Inconclusive);
}

#[test]
fn plateau_passes_only_when_the_second_half_is_flat() {
    let cache = stats(400.0, 300.0, 600.0, 1e-3, 7, 2000.0, 10.0);
    let d = decide(&cache, 256.0, 0.05);
    assert!(d.plateau);
    assert_eq!(d.outcome, Outcome::Pass);
    let still_growing = stats(900.0, 800.0, 1000.0, 1e-4, 9, 2000.0, 600.0);
    let d = decide(&still_growing, 256.0, 0.05);
    assert!(d.plateau);
    assert_eq!(d.outcome, Outcome::Inconclusive);
}

#[test]
fn pass_needs_the_interval_to_rule_out_twice_the_limit() {
    let flat = stats(5.0, -20.0, 30.0, 0.4, 4, 5.0, 5.0);
    assert_eq!(decide(&flat, 256.0, 0.05).outcome, Outcome::Pass);
    let noisy = stats(100.0, -400.0, 900.0, 0.3, 5, 100.0, 100.0);
    assert_eq!(decide(&noisy, 256.0, 0.05).outcome, Outcome::Inconclusive);
}

#[test]
fn a_staircase_that_keeps_climbing_has_not_stopped() {
    // Three steps spread over the run, flat floors between them.
    let climbing = [0.0, 0.0, 8.0, 8.0, 8.0, 16.0, 16.0, 16.0, 24.0, 24.0];
    assert!(!growth_stopped(&climbing));
    // The same rise over the first four windows, then flat: a cache that filled.
    let filled = [0.0, 8.0, 16.0, 24.0, 24.0, 24.0, 24.0, 24.0, 24.0, 24.0];
    assert!(growth_stopped(&filled));
    // A straight line never stops.
    let line: Vec<f64> = (0..10).map(f64::from).collect();
    assert!(!growth_stopped(&line));
    // With the steps in the first half, the half ratio reads a slowdown: not a plateau.
    let x: Vec<f64> = (0..10).map(|i| f64::from(i) * 1000.0).collect();
    let staircase = [0.0, 8e3, 8e3, 16e3, 16e3, 16e3, 16e3, 24e3, 24e3, 24e3];
    let st = analyze(&x, &staircase, 0.95).unwrap();
    assert!(!st.stopped, "{st:?}");
    assert_eq!(st.non_falling, 9);
    assert!(!decide(&st, 1.0, 0.05).plateau);
}
