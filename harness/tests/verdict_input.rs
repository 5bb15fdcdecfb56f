//! `leakgate analyze` inputs: recorded samples.ndjson and two-column CSV files.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Serializer;
use leakgate::record::{Event, ProbeSample, Record, Window};
use leakgate::scenario::plan::{GatePlan, LatencyGate, PhaseKind, SignalGate, SignalUnit};
use leakgate::verdict::input::{self, InputError};
use leakgate::verdict::{GateKind, Outcome, judge};

fn hist_b64(values_us: &[u64]) -> String {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("hist");
    for v in values_us {
        h.record(*v).expect("record");
    }
    let mut buf = Vec::new();
    hdrhistogram::serialization::V2Serializer::new()
        .serialize(&h, &mut buf)
        .expect("serialize");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

fn probe(t: f64, cum: u64, rss: f64, fds: f64) -> Record {
    Record::Probe(ProbeSample {
        t,
        cumulative_completed: cum,
        signals: BTreeMap::from([("rss_bytes".into(), rss), ("fd_count".into(), fds)]),
        merged: None,
    })
}

fn recorded_run() -> String {
    let mut lines = Vec::new();
    lines.push(probe(-1.0, 0, 50e6, 10.0));
    for i in 0..40u64 {
        let phase = if i < 5 {
            PhaseKind::Warmup
        } else {
            PhaseKind::Steady
        };
        let latencies: Vec<u64> = (0..100).map(|k| 1000 + k * 100).collect();
        lines.push(Record::Window(Window {
            index: i,
            start: i as f64,
            end: i as f64 + 1.0,
            phase: Some(phase),
            completed: 2000,
            cumulative_completed: (i + 1) * 2000,
            status: BTreeMap::from([("2xx".into(), 1990), ("5xx".into(), 10)]),
            corrected_hist: hist_b64(&latencies),
            ..Default::default()
        }));
        let t = i as f64 + 1.0;
        let cum = (i + 1) * 2000;
        lines.push(probe(t, cum, 50e6 + 1024.0 * cum as f64, 10.0 + i as f64));
    }
    lines.push(Record::Event(Event {
        t: 41.0,
        kind: "drain".into(),
        detail: "load stopped, waited 5 s".into(),
    }));
    lines.push(probe(46.0, 80_000, 130e6, 11.0));
    let mut s: String = lines
        .iter()
        .map(|r| serde_json::to_string(r).expect("json") + "\n")
        .collect();
    s.push_str("{\"type\":\"probe\",\"t\":47"); // partial line of a killed run
    s
}

fn plan() -> GatePlan {
    GatePlan {
        signals: vec![
            SignalGate {
                signal: "rss_bytes".into(),
                max_per_second: None,
                max_per_request: Some(256.0),
                drain_to_baseline: None,
                unit: SignalUnit::Bytes,
            },
            SignalGate {
                signal: "fd_count".into(),
                max_per_second: None,
                max_per_request: None,
                drain_to_baseline: Some(2.0),
                unit: SignalUnit::Count,
            },
        ],
        latency: LatencyGate {
            p99: Some(std::time::Duration::from_millis(50)),
            error_rate: Some(0.001),
            ..Default::default()
        },
        warmup_share: 0.1,
        windows: 10,
        confidence: 0.95,
        min_time_to_limit: None,
        extend_if_inconclusive: None,
    }
}

#[test]
fn ndjson_gives_steady_spans_baseline_drain_and_latency() {
    let text = recorded_run();
    let input = input::parse_ndjson(&text, Path::new("samples.ndjson")).expect("parse");
    assert_eq!(input.steady, vec![(5.0, 40.0)]);
    assert_eq!(input.baseline.as_ref().map(|b| b.t), Some(-1.0));
    assert_eq!(input.drained.as_ref().map(|b| b.t), Some(46.0));
    assert_eq!(
        input.samples.len(),
        41,
        "drained probe is not part of the trend"
    );
    let lat = input.latency.expect("latency");
    assert!((lat.p99_ms - 10.9).abs() < 0.1, "{lat:?}");
    assert!((lat.error_rate - 0.005).abs() < 1e-9);

    let v = judge(&input, &plan());
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
    let kinds: Vec<(GateKind, Outcome)> = v.gates.iter().map(|g| (g.kind, g.outcome)).collect();
    assert_eq!(
        kinds,
        vec![
            (GateKind::Slope, Outcome::Fail),
            (GateKind::Drain, Outcome::Pass),
            (GateKind::Latency, Outcome::Pass),
            (GateKind::Latency, Outcome::Fail),
        ]
    );
    println!("{}", v.summary);
}

#[test]
fn ndjson_errors_name_file_and_line() {
    let text = "{\"type\":\"probe\",\"t\":0,\"cumulative_completed\":0,\"signals\":{}}\nnot json\n";
    let err = input::parse_ndjson(text, Path::new("run/samples.ndjson")).unwrap_err();
    assert!(matches!(err, InputError::Line { line: 2, .. }));
    assert!(
        err.to_string().starts_with("run/samples.ndjson:2: "),
        "{err}"
    );
    let err = input::parse_ndjson("\n", Path::new("x.ndjson")).unwrap_err();
    assert!(err.to_string().contains("no probe samples"), "{err}");
    let err = input::read_ndjson(Path::new("/nonexistent/samples.ndjson")).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/samples.ndjson"),
        "{err}"
    );
}

#[test]
fn csv_with_header_and_rfc3339_is_judged_per_second() {
    let mut text = String::from("time,value\n");
    for i in 0..60 {
        let v = 50.0 * 1048576.0 + 2.0 * 1048576.0 * f64::from(i);
        text.push_str(&format!("2026-11-25T04:{:02}:00Z,{v}\n", i));
    }
    let input = input::parse_csv(&text, Path::new("prom.csv"), "rss_bytes").expect("csv");
    assert_eq!(input.samples.len(), 60);
    assert_eq!(input.samples[1].t, 60.0);
    let mut p = plan();
    p.latency = LatencyGate::default();
    p.signals.truncate(1);
    p.signals[0].max_per_second = Some(1024.0 * 1024.0 / 60.0); // 1 MiB/min
    let v = judge(&input, &p);
    let by_name: BTreeMap<&str, Outcome> = v
        .gates
        .iter()
        .map(|g| (g.name.as_str(), g.outcome))
        .collect();
    assert_eq!(by_name["rss_bytes per request"], Outcome::Inconclusive);
    assert_eq!(by_name["rss_bytes per second"], Outcome::Fail);
    let per_s = v
        .gates
        .iter()
        .find(|g| g.name == "rss_bytes per second")
        .expect("gate");
    let est = per_s.slope.expect("slope");
    assert!(est.per_request.is_none());
    assert!((est.per_minute - 2.0 * 1048576.0).abs() < 1.0, "{est:?}");
    assert!(
        per_s.explanation.contains("2.00 MiB/min"),
        "{}",
        per_s.explanation
    );
    assert!(v.gates[0].explanation.contains("no request counts"));
}

#[test]
fn csv_numbers_and_errors() {
    let input = input::parse_csv("1700000000,5\n1700000001,6\n", Path::new("a.csv"), "x")
        .expect("unix seconds");
    assert_eq!(input.samples[1].t, 1.0);
    let input = input::parse_csv(
        "1700000000000,5\n1700000000500,6\n",
        Path::new("a.csv"),
        "x",
    )
    .expect("unix ms");
    assert_eq!(input.samples[1].t, 0.5);
    let err = input::parse_csv("0,1\n1,abc\n", Path::new("m.csv"), "x").unwrap_err();
    assert!(err.to_string().starts_with("m.csv:2: value `abc`"), "{err}");
    let err = input::parse_csv("t,v\nnoon,1\n", Path::new("m.csv"), "x").unwrap_err();
    assert!(err.to_string().starts_with("m.csv:2: time `noon`"), "{err}");
    let err = input::parse_csv("0,1,2\n", Path::new("m.csv"), "x").unwrap_err();
    assert!(err.to_string().contains("two columns"), "{err}");
    let err = input::parse_csv("time,value\n", Path::new("m.csv"), "x").unwrap_err();
    assert!(matches!(err, InputError::Empty { .. }));
}
