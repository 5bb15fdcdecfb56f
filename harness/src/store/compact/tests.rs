use std::collections::BTreeMap;

use super::compact;
use crate::load::stats;
use crate::record::{Evaluation, LatencySummary, ProbeSample, Record, Window};
use crate::scenario::plan::PhaseKind;
use crate::store::test_support::{
    event, histogram, sample, samples, second, summed, window, windows,
};

fn two_minutes() -> Vec<Record> {
    (0..120).map(|i| Record::Window(second(i))).collect()
}

#[test]
fn merged_totals_equal_the_sums() {
    let input = two_minutes();
    let out = compact(input.clone(), 120.0, 60.0);
    let (ins, outs) = (windows(&input), windows(&out));
    assert_eq!(outs.len(), 2);
    for (m, parts) in outs.iter().zip(ins.chunks(60)) {
        let sum = |f: fn(&Window) -> u64| parts.iter().map(|w| f(w)).sum::<u64>();
        assert_eq!(m.planned, sum(|w| w.planned));
        assert_eq!(m.sent, sum(|w| w.sent));
        assert_eq!(m.completed, sum(|w| w.completed));
        assert_eq!(m.dropped, sum(|w| w.dropped));
        assert_eq!(m.bytes, sum(|w| w.bytes));
        assert_eq!(m.cumulative_completed, parts[59].cumulative_completed);
        let mut status: BTreeMap<String, u64> = BTreeMap::new();
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        for w in parts {
            w.status
                .iter()
                .for_each(|(k, v)| *status.entry(k.clone()).or_default() += v);
            w.errors
                .iter()
                .for_each(|(k, v)| *errors.entry(k.clone()).or_default() += v);
        }
        assert_eq!(m.status, status);
        assert_eq!(m.errors, errors);
        assert_eq!(m.errors.len(), 3);
        assert_eq!(
            (m.index, m.start, m.end),
            (parts[0].index, parts[0].start, parts[59].end)
        );
        assert_eq!(m.merged, Some(60));
    }
}

#[test]
fn merged_histogram_is_the_sum_of_the_windows() {
    let input = two_minutes();
    let out = compact(input.clone(), 120.0, 60.0);
    for (m, parts) in windows(&out).iter().zip(windows(&input).chunks(60)) {
        for corrected in [true, false] {
            let text = if corrected {
                &m.corrected_hist
            } else {
                &m.uncorrected_hist
            };
            let merged = stats::decode(text).unwrap();
            let sum = summed(parts, corrected);
            assert_eq!(merged, sum);
            let counts: u64 = parts.iter().map(|w| w.corrected.count).sum();
            assert_eq!(merged.len(), counts);
            assert_eq!(m.corrected.count, counts);
            assert_eq!(m.uncorrected.count, counts);
        }
    }
}

#[test]
fn merged_percentiles_match_the_summed_histogram() {
    let input = two_minutes();
    let out = compact(input.clone(), 120.0, 60.0);
    for (m, parts) in windows(&out).iter().zip(windows(&input).chunks(60)) {
        // Every latency of the minute recorded in one histogram, as if there were one window.
        let all: Vec<u64> = (parts[0].index..=parts[59].index)
            .flat_map(|i| [1000 + i * 7, 2000 + i * 13 % 5000, 150_000 + i])
            .collect();
        let whole = stats::summarize(&histogram(&all));
        assert_eq!(m.corrected, stats::summarize(&summed(parts, true)));
        assert_eq!((m.corrected.p50, m.corrected.p99), (whole.p50, whole.p99));
        assert_eq!(m.uncorrected, stats::summarize(&summed(parts, false)));
    }
}

fn mixed() -> Vec<Record> {
    let mut input = vec![
        Record::Probe(sample(-2.0, 0, &[("rss", 50.0)])),
        Record::Probe(sample(-1.0, 0, &[("rss", 40.0)])),
    ];
    for i in 0..150 {
        input.push(Record::Window(second(i)));
        if i % 40 == 0 {
            input.push(Record::Event(event(i as f64, "phase")));
        }
        if i % 5 == 0 {
            let rss = 100.0 - i as f64;
            input.push(Record::Probe(sample(
                i as f64 + 0.5,
                i * 3,
                &[("rss", rss)],
            )));
        }
    }
    input
}

#[test]
fn compaction_is_idempotent() {
    for (cutoff, bucket) in [(120.0, 60.0), (95.5, 60.0), (150.0, 7.0), (0.0, 60.0)] {
        let once = compact(mixed(), cutoff, bucket);
        assert_eq!(compact(once.clone(), cutoff, bucket), once);
    }
}

#[test]
fn baseline_and_records_after_the_cutoff_are_untouched() {
    let input = mixed();
    let out = compact(input.clone(), 60.0, 60.0);
    let late = |r: &&Record| match r {
        Record::Window(w) => w.end > 60.0,
        Record::Probe(p) => p.t < 0.0 || p.t >= 60.0,
        _ => true,
    };
    let kept: Vec<&Record> = out.iter().filter(late).collect();
    assert_eq!(kept, input.iter().filter(late).collect::<Vec<_>>());
    assert_eq!(samples(&out)[0], &sample(-2.0, 0, &[("rss", 50.0)]));
    assert_eq!(samples(&out)[1], &sample(-1.0, 0, &[("rss", 40.0)]));
    assert_eq!(windows(&out).len(), 1 + 90);
    assert_eq!(samples(&out).len(), 2 + 1 + 18);
}

#[test]
fn a_phase_boundary_is_not_crossed() {
    let phase = |i: u64| match i {
        20..30 => Some(PhaseKind::Spike),
        _ => Some(PhaseKind::Steady),
    };
    let input: Vec<Record> = (0..60)
        .map(|i| Record::Window(window(i, i as f64, i as f64 + 1.0, phase(i), &[500 + i])))
        .collect();
    let out = compact(input, 60.0, 60.0);
    let ws = windows(&out);
    let spans: Vec<_> = ws
        .iter()
        .map(|w| (w.phase, w.start, w.end, w.merged))
        .collect();
    assert_eq!(
        spans,
        [
            (Some(PhaseKind::Steady), 0.0, 20.0, Some(20)),
            (Some(PhaseKind::Spike), 20.0, 30.0, Some(10)),
            (Some(PhaseKind::Steady), 30.0, 60.0, Some(30)),
        ]
    );
    assert_eq!(compact(out.clone(), 60.0, 60.0), out);
}

#[test]
fn merged_samples_keep_each_signal_minimum() {
    let input = vec![
        Record::Probe(sample(1.0, 10, &[("rss", 300.0), ("fds", 12.0)])),
        Record::Probe(sample(20.0, 20, &[("rss", 200.0)])),
        Record::Probe(sample(
            40.0,
            30,
            &[("rss", 250.0), ("fds", 9.0), ("heap", 5.0)],
        )),
        Record::Probe(sample(59.0, 40, &[("rss", 260.0), ("fds", 11.0)])),
        Record::Probe(sample(61.0, 50, &[("rss", 1.0)])),
    ];
    let out = compact(input, 120.0, 60.0);
    let expected = ProbeSample {
        merged: Some(4),
        ..sample(59.0, 40, &[("rss", 200.0), ("fds", 9.0), ("heap", 5.0)])
    };
    assert_eq!(
        samples(&out),
        [&expected, &sample(61.0, 50, &[("rss", 1.0)])]
    );
}

#[test]
fn a_group_of_one_is_left_as_it_was() {
    let input = vec![
        Record::Window(second(5)),
        Record::Probe(sample(5.5, 1, &[("rss", 3.0)])),
        Record::Window(second(70)),
    ];
    assert_eq!(compact(input.clone(), 1000.0, 60.0), input);
}

#[test]
fn an_undecodable_histogram_costs_the_others_nothing() {
    let mut input: Vec<Record> = (0..4).map(|i| Record::Window(second(i))).collect();
    if let Some(Record::Window(w)) = input.get_mut(1) {
        w.corrected_hist = String::new();
        w.uncorrected_hist = "not base64 at all!".into();
    }
    let good: Vec<&Window> = windows(&input)
        .into_iter()
        .filter(|w| w.index != 1)
        .collect();
    let out = compact(input.clone(), 60.0, 60.0);
    let m = windows(&out)[0];
    assert_eq!(
        stats::decode(&m.corrected_hist).unwrap(),
        summed(&good, true)
    );
    assert_eq!(
        stats::decode(&m.uncorrected_hist).unwrap(),
        summed(&good, false)
    );
    assert_eq!(m.completed, 12);
    assert_eq!(m.corrected.count, 9);

    // Nothing decodes: counts and the mean still add up; the percentiles are bounds.
    for r in &mut input {
        if let Record::Window(w) = r {
            w.corrected_hist = "?".into();
        }
    }
    let m = windows(&compact(input.clone(), 60.0, 60.0))[0].clone();
    assert_eq!(m.corrected_hist, "");
    assert_eq!(m.corrected.count, 12);
    let max = windows(&input)
        .iter()
        .map(|w| w.corrected.p99)
        .fold(0.0, f64::max);
    assert_eq!(m.corrected.p99, max);
}

#[test]
fn first_message_and_messages_per_stream_are_weighted() {
    let fm = |count, mean, p99| LatencySummary {
        count,
        mean,
        p50: mean,
        p90: p99,
        p95: p99,
        p99,
        p999: p99,
        max: p99,
    };
    let mut a = second(0);
    a.first_message = fm(1, 2.0, 3.0);
    a.messages_per_stream = Some(1.0);
    a.completed = 1;
    let mut b = second(1);
    b.first_message = fm(3, 6.0, 9.0);
    b.messages_per_stream = Some(5.0);
    b.completed = 3;
    let out = compact(vec![Record::Window(a), Record::Window(b)], 60.0, 60.0);
    let m = windows(&out)[0];
    assert_eq!(
        m.first_message,
        LatencySummary {
            count: 4,
            mean: 5.0,
            p50: 6.0,
            ..fm(4, 5.0, 9.0)
        }
    );
    assert_eq!(m.messages_per_stream, Some(4.0));
}

#[test]
fn events_and_evaluations_pass_through() {
    let eval = Evaluation {
        t: 30.0,
        summary: "pass".into(),
        ..Default::default()
    };
    let input = vec![
        Record::Event(event(10.0, "phase")),
        Record::Window(second(20)),
        Record::Evaluation(eval),
        Record::Window(second(40)),
        Record::Event(event(45.0, "drain")),
    ];
    let out = compact(input.clone(), 60.0, 60.0);
    let others = |rs: &[Record]| -> Vec<Record> {
        rs.iter()
            .filter(|r| matches!(r, Record::Event(_) | Record::Evaluation(_)))
            .cloned()
            .collect()
    };
    assert_eq!(others(&out), others(&input));
    assert_eq!(out.len(), 4);
}
