//! Which charts a run gets, built from the run's files: one per probed signal (gated ones with
//! their fitted slope, interval band and limit line), achieved rate, and latency per window.

use super::run_data::RunData;
use super::svg::{Band, Chart, Marker, Series, YUnit};
use crate::scenario::plan::PhaseKind;
use crate::verdict::series::in_steady;
use crate::verdict::{GateKind, GateResult};

const SIGNAL: &str = "#1f77b4";
const FIT: &str = "#ff7f0e";
const LIMIT: &str = "#d62728";
const PLANNED: &str = "#7f7f7f";
const ERRORS: &str = "#d62728";
const P50: &str = "#2ca02c";
const P95: &str = "#ff7f0e";
const P99: &str = "#9467bd";

/// Every chart of the report, in page order (gated signals, rate, latency, other signals), all
/// on the run's time axis.
pub fn build(run: &RunData) -> Vec<Chart> {
    let x_range = run.time_range();
    let markers = markers(run);
    let gates: Vec<&GateResult> = run
        .summary
        .verdict
        .iter()
        .flat_map(|v| v.gates.iter())
        .collect();
    let mut names = run.signal_names();
    // Gated signals first, in gate order; then the rest alphabetically.
    let mut ordered: Vec<String> = Vec::new();
    for g in &gates {
        if let Some(s) = &g.signal
            && names.contains(s)
            && !ordered.contains(s)
        {
            ordered.push(s.clone());
        }
    }
    names.retain(|n| !ordered.contains(n));

    // What decided the verdict first, then the load that drove it, then every other signal.
    let mut charts: Vec<Chart> = ordered
        .iter()
        .map(|name| signal_chart(run, name, &gates, x_range, &markers))
        .collect();
    if !run.windows.is_empty() {
        charts.push(rate_chart(run, x_range, &markers));
        charts.push(latency_chart(run, &gates, x_range, &markers));
    }
    charts.extend(
        names
            .iter()
            .map(|name| signal_chart(run, name, &gates, x_range, &markers)),
    );
    charts
}

/// Whether a signal is a size in bytes (memory) or a count (tasks, fds, entries).
pub fn unit_of(name: &str, gates: &[&GateResult]) -> YUnit {
    let gated_bytes = gates
        .iter()
        .any(|g| g.signal.as_deref() == Some(name) && g.unit.starts_with("bytes"));
    if gated_bytes || name.ends_with("_bytes") || name.contains("memory") {
        YUnit::Bytes
    } else {
        YUnit::Count
    }
}

fn signal_chart(
    run: &RunData,
    name: &str,
    gates: &[&GateResult],
    x_range: (f64, f64),
    markers: &[Marker],
) -> Chart {
    let points = run.series(name);
    let mut chart = Chart {
        title: name.to_string(),
        id: format!("chart-signal-{}", slug(name)),
        unit: unit_of(name, gates),
        x_range,
        bands: Vec::new(),
        series: Vec::new(),
        markers: markers.to_vec(),
        from_zero: false,
    };
    let slope_gate = gates.iter().find(|g| {
        g.kind == GateKind::Slope && g.signal.as_deref() == Some(name) && g.slope.is_some()
    });
    // The fit and the limit are drawn over the signal, so they come after it.
    let mut over = Vec::new();
    if let Some(g) = slope_gate {
        let (fit, band, limit) = fit_lines(run, &points, g);
        chart.title = format!("{name}: {}", super::words::outcome(g.outcome));
        chart.bands.extend(band);
        over.extend(fit);
        over.extend(limit);
    }
    chart.series.push(Series {
        label: name.to_string(),
        color: SIGNAL,
        points,
        dashed: false,
        width: 2.0,
    });
    chart.series.extend(over);
    chart
}

/// The Theil–Sen line through the steady samples, its 95 % band, and the limit drawn from the
/// same pivot: where the signal would be if it grew exactly at the limit.
fn fit_lines(
    run: &RunData,
    points: &[(f64, f64)],
    g: &GateResult,
) -> (Option<Series>, Option<Band>, Option<Series>) {
    let Some(s) = g.slope else {
        return (None, None, None);
    };
    let spans = run.summary.plan.load.steady_spans();
    let steady: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|p| in_steady(&spans, p.0))
        .collect();
    let (Some(first), Some(last)) = (steady.first(), steady.last()) else {
        return (None, None, None);
    };
    let (t0, t1) = (first.0, last.0);
    // Pivot at the median time and the median of the residual intercepts.
    let tm = median(steady.iter().map(|p| p.0).collect());
    let a = median(steady.iter().map(|p| p.1 - s.per_second * p.0).collect());
    let ym = a + s.per_second * tm;
    let line = |slope: f64| move |t: f64| ym + slope * (t - tm);
    let fit = Series {
        label: "Theil–Sen fit".into(),
        color: FIT,
        points: vec![(t0, line(s.per_second)(t0)), (t1, line(s.per_second)(t1))],
        dashed: true,
        width: 2.0,
    };
    let band = Band {
        label: "95 % interval".into(),
        color: FIT,
        points: [t0, tm, t1]
            .iter()
            .map(|t| {
                let lo = line(s.ci_low_per_second)(*t);
                let hi = line(s.ci_high_per_second)(*t);
                (*t, lo.min(hi), lo.max(hi))
            })
            .collect(),
    };
    let limit_per_second = if g.unit.ends_with("/request") {
        // Requests per second from the estimate itself, else from the steady windows.
        match s.per_request {
            Some(pr) if pr != 0.0 && (s.per_second / pr).is_finite() => {
                Some(g.limit * s.per_second / pr)
            }
            _ => steady_rate(run, &spans).map(|r| g.limit * r),
        }
    } else if g.unit.ends_with("/s") {
        Some(g.limit)
    } else {
        None
    };
    let limit = limit_per_second.map(|l| Series {
        label: format!("limit {}", super::words::value(g.limit, &g.unit)),
        color: LIMIT,
        points: vec![(t0, line(l)(t0)), (t1, line(l)(t1))],
        dashed: true,
        width: 1.5,
    });
    (Some(fit), Some(band), limit)
}

/// Completed requests per second over the steady windows.
fn steady_rate(run: &RunData, spans: &[(f64, f64)]) -> Option<f64> {
    let (mut n, mut secs) = (0u64, 0.0);
    for w in &run.windows {
        // Windows start at the load's start, so their midpoints are never before it.
        if in_steady(spans, (w.start + w.end) / 2.0) {
            n += w.completed;
            secs += w.end - w.start;
        }
    }
    (secs > 0.0).then(|| n as f64 / secs)
}

fn rate_chart(run: &RunData, x_range: (f64, f64), markers: &[Marker]) -> Chart {
    let per_s = |n: u64, w: &crate::record::Window| n as f64 / (w.end - w.start).max(1e-9);
    let mid = |w: &crate::record::Window| (w.start + w.end) / 2.0;
    // Windows that start after the schedule ended only drain stragglers: a drop to zero there
    // is the end of the run, not a stall.
    let load_end = run.summary.plan.load_duration().as_secs_f64();
    let during: Vec<&crate::record::Window> = run
        .windows
        .iter()
        .filter(|w| w.start < load_end - 1e-6)
        .collect();
    let planned: Vec<(f64, f64)> = during
        .iter()
        .filter(|w| w.planned > 0)
        .map(|w| (mid(w), per_s(w.planned, w)))
        .collect();
    let errors: Vec<(f64, f64)> = during
        .iter()
        .map(|w| (mid(w), per_s(w.errors.values().sum(), w)))
        .collect();
    let mut series = vec![Series {
        label: "completed".into(),
        color: SIGNAL,
        points: during
            .iter()
            .map(|w| (mid(w), per_s(w.completed, w)))
            .collect(),
        dashed: false,
        width: 2.0,
    }];
    if !planned.is_empty() {
        series.insert(
            0,
            Series {
                label: "planned".into(),
                color: PLANNED,
                points: planned,
                dashed: true,
                width: 1.5,
            },
        );
    }
    if errors.iter().any(|e| e.1 > 0.0) {
        series.push(Series {
            label: "errors".into(),
            color: ERRORS,
            points: errors,
            dashed: false,
            width: 1.5,
        });
    }
    Chart {
        title: "achieved rate per window".into(),
        id: "chart-rate".into(),
        unit: YUnit::PerSecond,
        x_range,
        bands: Vec::new(),
        series,
        markers: markers.to_vec(),
        from_zero: true,
    }
}

fn latency_chart(
    run: &RunData,
    gates: &[&GateResult],
    x_range: (f64, f64),
    markers: &[Marker],
) -> Chart {
    let pick = |f: fn(&crate::record::LatencySummary) -> f64| -> Vec<(f64, f64)> {
        run.windows
            .iter()
            .filter(|w| w.corrected.count > 0)
            .map(|w| ((w.start + w.end) / 2.0, f(&w.corrected)))
            .collect()
    };
    let mut series = vec![
        Series {
            label: "p50".into(),
            color: P50,
            points: pick(|l| l.p50),
            dashed: false,
            width: 1.5,
        },
        Series {
            label: "p95".into(),
            color: P95,
            points: pick(|l| l.p95),
            dashed: false,
            width: 1.5,
        },
        Series {
            label: "p99".into(),
            color: P99,
            points: pick(|l| l.p99),
            dashed: false,
            width: 2.0,
        },
    ];
    let mut title = "latency per window (corrected for coordinated omission)".to_string();
    if let Some(g) = gates
        .iter()
        .find(|g| g.kind == GateKind::Latency && g.name == "p99")
    {
        let label = format!("p99 limit {}", super::words::value(g.limit, "ms"));
        let top = series[2].points.iter().map(|p| p.1).fold(0.0, f64::max);
        // A limit far above the data would flatten every line onto the axis; name it instead.
        if g.limit <= 4.0 * top {
            series.push(Series {
                label,
                color: LIMIT,
                points: vec![(x_range.0, g.limit), (x_range.1, g.limit)],
                dashed: true,
                width: 1.5,
            });
        } else {
            title = format!("{title}; {label}, far above");
        }
    }
    Chart {
        title,
        id: "chart-latency".into(),
        unit: YUnit::Millis,
        x_range,
        bands: Vec::new(),
        series,
        markers: markers.to_vec(),
        from_zero: true,
    }
}

/// Phase starts and the target's death.
fn markers(run: &RunData) -> Vec<Marker> {
    let mut out = Vec::new();
    let mut t = 0.0;
    for p in &run.summary.plan.load.phases {
        out.push(Marker {
            t,
            label: match p.kind {
                PhaseKind::Warmup => "warm-up",
                PhaseKind::Ramp => "ramp",
                PhaseKind::Steady => "steady",
                PhaseKind::Spike => "spike",
            }
            .into(),
        });
        t += p.duration.as_secs_f64();
    }
    // Consecutive phases of one kind need one marker.
    out.dedup_by(|b, a| a.label == b.label);
    if let Some(e) = &run.summary.target_exit {
        out.push(Marker {
            t: e.t,
            label: "target died".into(),
        });
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Lower-case letters, digits and dashes: safe in an HTML id.
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}
