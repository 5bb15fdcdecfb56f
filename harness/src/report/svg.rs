//! Line charts as inline SVG: no scripts, no fonts to fetch, the same bytes for the same data.
//!
//! Every chart of a report shares one time axis (`x_range`), so a step in RSS lines up with the
//! latency and rate charts below it.

use std::fmt::Write;

/// Width of every chart, in SVG user units (the page scales it).
const WIDTH: f64 = 960.0;
/// Height of every chart.
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 34.0;

/// How the y values are printed on the axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YUnit {
    /// Bytes, printed as B/KiB/MiB/GiB.
    Bytes,
    /// A plain number, printed with k/M suffixes.
    Count,
    /// Milliseconds.
    Millis,
    /// Per second.
    PerSecond,
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// CSS colour.
    pub color: &'static str,
    /// (t seconds, value) points in time order.
    pub points: Vec<(f64, f64)>,
    /// Dashed stroke (fits and limits), solid otherwise.
    pub dashed: bool,
    /// Stroke width.
    pub width: f64,
}

/// A shaded area between two lines sampled at the same x values (a confidence band).
#[derive(Debug, Clone)]
pub struct Band {
    /// Legend text.
    pub label: String,
    /// CSS colour (drawn translucent).
    pub color: &'static str,
    /// (t, low, high) in time order.
    pub points: Vec<(f64, f64, f64)>,
}

/// A vertical marker (phase boundary, target death).
#[derive(Debug, Clone)]
pub struct Marker {
    /// Where, seconds since load start.
    pub t: f64,
    /// Short label drawn at the top.
    pub label: String,
}

/// One chart: a title, an x range shared with the other charts, lines, bands and markers.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title drawn above the plot; also the `aria-label`.
    pub title: String,
    /// Stable id (used by tests and links).
    pub id: String,
    /// Axis unit.
    pub unit: YUnit,
    /// Shared time axis, seconds since load start.
    pub x_range: (f64, f64),
    /// Shaded bands, drawn first.
    pub bands: Vec<Band>,
    /// Lines, drawn in order.
    pub series: Vec<Series>,
    /// Vertical markers.
    pub markers: Vec<Marker>,
    /// Start y at zero even when the data does not (rates, latency).
    pub from_zero: bool,
}

/// Renders `chart` as an `<svg>` element.
pub fn render(chart: &Chart) -> String {
    let (x0, x1) = widen(chart.x_range);
    let (y0, y1) = y_range(chart);
    let ticks_y = y_ticks(y0, y1, chart.unit);
    let (y0, y1) = (
        ticks_y.first().copied().unwrap_or(y0).min(y0),
        ticks_y.last().copied().unwrap_or(y1).max(y1),
    );
    let (y0, y1) = widen((y0, y1));
    let sx = |t: f64| LEFT + (t - x0) / (x1 - x0) * (WIDTH - LEFT - RIGHT);
    let sy = |v: f64| HEIGHT - BOTTOM - (v - y0) / (y1 - y0) * (HEIGHT - TOP - BOTTOM);

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" id="{}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(&chart.id),
        esc(&chart.title)
    );
    let _ = write!(
        s,
        r#"<text class="title" x="{LEFT}" y="18">{}</text>"#,
        esc(&chart.title)
    );
    // Grid and axes.
    for v in &ticks_y {
        if *v < y0 || *v > y1 {
            continue;
        }
        let y = sy(*v);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            esc(&fmt_y(*v, chart.unit))
        );
    }
    for t in nice_ticks(x0, x1, 10) {
        if t < x0 || t > x1 {
            continue;
        }
        let x = sx(t);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}s</text>"#,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 16.0,
            fmt_num(t)
        );
    }
    let _ = write!(
        s,
        r#"<rect class="frame" x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}"/>"#,
        WIDTH - LEFT - RIGHT,
        HEIGHT - TOP - BOTTOM
    );
    for m in &chart.markers {
        if m.t < x0 || m.t > x1 {
            continue;
        }
        let x = sx(m.t);
        let _ = write!(
            s,
            r#"<line class="marker" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/><text class="marker-label" x="{:.1}" y="{:.1}">{}</text>"#,
            HEIGHT - BOTTOM,
            x + 3.0,
            TOP + 11.0,
            esc(&m.label)
        );
    }
    for b in &chart.bands {
        if b.points.is_empty() {
            continue;
        }
        let mut pts = String::new();
        for (t, _, hi) in &b.points {
            let _ = write!(pts, "{:.1},{:.1} ", sx(*t), sy(*hi));
        }
        for (t, lo, _) in b.points.iter().rev() {
            let _ = write!(pts, "{:.1},{:.1} ", sx(*t), sy(*lo));
        }
        let _ = write!(
            s,
            r#"<polygon class="band" fill="{}" fill-opacity="0.18" stroke="none" points="{}"/>"#,
            b.color,
            pts.trim_end()
        );
    }
    for line in &chart.series {
        if line.points.is_empty() {
            continue;
        }
        let mut pts = String::new();
        for (t, v) in &line.points {
            let _ = write!(pts, "{:.1},{:.1} ", sx(*t), sy(*v));
        }
        let dash = if line.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<polyline class="series" data-label="{}" fill="none" stroke="{}" stroke-width="{}"{dash} points="{}"/>"#,
            esc(&line.label),
            line.color,
            line.width,
            pts.trim_end()
        );
    }
    legend(&mut s, chart);
    s.push_str("</svg>");
    s
}

/// Legend entries along the top right, one per series and band.
fn legend(s: &mut String, chart: &Chart) {
    let entries: Vec<(&str, &str, bool)> = chart
        .series
        .iter()
        .filter(|l| !l.points.is_empty())
        .map(|l| (l.label.as_str(), l.color, l.dashed))
        .chain(
            chart
                .bands
                .iter()
                .filter(|b| !b.points.is_empty())
                .map(|b| (b.label.as_str(), b.color, false)),
        )
        .collect();
    // Right-aligned: lay out from the right edge leftwards with a rough text width.
    let mut x = WIDTH - RIGHT;
    for (label, color, dashed) in entries.iter().rev() {
        let w = 26.0 + 6.2 * label.chars().count() as f64;
        x -= w;
        let dash = if *dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" y1="14" x2="{:.1}" y2="14" stroke="{color}" stroke-width="3"{dash}/><text class="legend" x="{:.1}" y="18">{}</text>"#,
            x + 16.0,
            x + 20.0,
            esc(label)
        );
    }
}

fn y_range(chart: &Chart) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    let mut see = |v: f64| {
        if v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    };
    for l in &chart.series {
        l.points.iter().for_each(|p| see(p.1));
    }
    for b in &chart.bands {
        b.points.iter().for_each(|p| {
            see(p.1);
            see(p.2);
        });
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if chart.from_zero {
        lo = lo.min(0.0);
    }
    (lo, hi)
}

/// A range with room: never empty, 4 % padding on a flat line.
fn widen((lo, hi): (f64, f64)) -> (f64, f64) {
    if hi > lo {
        (lo, hi)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.04 };
        (lo - pad, hi + pad)
    }
}

/// Y ticks: round in the unit people read, so a byte axis steps 20 MiB, not 20,971,520 B
/// printed as 19.073 MiB.
fn y_ticks(lo: f64, hi: f64, unit: YUnit) -> Vec<f64> {
    if unit != YUnit::Bytes {
        return nice_ticks(lo, hi, 5);
    }
    let top = lo.abs().max(hi.abs());
    let mut scale = 1.0;
    while top / scale >= 1024.0 && scale < 1024f64.powi(4) {
        scale *= 1024.0;
    }
    nice_ticks(lo / scale, hi / scale, 5)
        .into_iter()
        .map(|v| v * scale)
        .collect()
}

/// Round tick values (1, 2, 5 × 10ⁿ) covering `lo..=hi`, about `n` of them.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo || n == 0 {
        return Vec::new();
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).floor() * step;
    let mut out = Vec::new();
    let mut i = 0.0;
    loop {
        let v = first + i * step;
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        if v >= hi || out.len() > 4 * n + 2 {
            break;
        }
        i += 1.0;
    }
    out
}

/// A number with at most three significant decimals and no trailing zeros.
fn fmt_num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Axis label for `v` in `unit`.
pub fn fmt_y(v: f64, unit: YUnit) -> String {
    match unit {
        YUnit::Bytes => {
            let a = v.abs();
            let (d, u) = if a >= 1024.0 * 1024.0 * 1024.0 {
                (1024.0 * 1024.0 * 1024.0, "GiB")
            } else if a >= 1024.0 * 1024.0 {
                (1024.0 * 1024.0, "MiB")
            } else if a >= 1024.0 {
                (1024.0, "KiB")
            } else {
                (1.0, "B")
            };
            format!("{} {u}", fmt_num(v / d))
        }
        YUnit::Count | YUnit::PerSecond => {
            let a = v.abs();
            let base = if a >= 1e6 {
                format!("{}M", fmt_num(v / 1e6))
            } else if a >= 1e4 {
                format!("{}k", fmt_num(v / 1e3))
            } else {
                fmt_num(v)
            };
            if unit == YUnit::PerSecond {
                format!("{base}/s")
            } else {
                base
            }
        }
        YUnit::Millis => format!("{} ms", fmt_num(v)),
    }
}

/// Escapes text for XML content and attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ticks_are_round_in_binary_units() {
        let mib = 1024.0 * 1024.0;
        let t = y_ticks(0.0, 114.0 * mib, YUnit::Bytes);
        assert_eq!(t.first(), Some(&0.0));
        assert!(t.len() >= 4, "{t:?}");
        for v in &t {
            assert_eq!(v % mib, 0.0, "{v} is not a whole number of MiB: {t:?}");
        }
        assert_eq!(fmt_y(25.0 * mib, YUnit::Bytes), "25 MiB");
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        let t = nice_ticks(-5.0, 37.0, 10);
        assert!(t.first().unwrap() <= &-5.0 && t.last().unwrap() >= &37.0);
        assert!(nice_ticks(1.0, 1.0, 5).is_empty());
    }

    #[test]
    fn axis_labels_use_units() {
        assert_eq!(fmt_y(3.0 * 1024.0 * 1024.0, YUnit::Bytes), "3 MiB");
        assert_eq!(fmt_y(1536.0, YUnit::Bytes), "1.5 KiB");
        assert_eq!(fmt_y(20000.0, YUnit::Count), "20k");
        assert_eq!(fmt_y(2.5, YUnit::Millis), "2.5 ms");
        assert_eq!(fmt_y(2000.0, YUnit::PerSecond), "2000/s");
    }

    #[test]
    fn render_draws_every_part_and_escapes_text() {
        let chart = Chart {
            title: "rss <bytes>".into(),
            id: "rss".into(),
            unit: YUnit::Bytes,
            x_range: (-1.0, 10.0),
            bands: vec![Band {
                label: "interval".into(),
                color: "#1f77b4",
                points: vec![(0.0, 1.0, 2.0), (10.0, 5.0, 8.0)],
            }],
            series: vec![
                Series {
                    label: "rss".into(),
                    color: "#1f77b4",
                    points: vec![(0.0, 1.0), (5.0, 4.0), (10.0, 6.0)],
                    dashed: false,
                    width: 2.0,
                },
                Series {
                    label: "limit".into(),
                    color: "#d62728",
                    points: vec![(0.0, 1.0), (10.0, 3.0)],
                    dashed: true,
                    width: 1.5,
                },
            ],
            markers: vec![Marker {
                t: 2.0,
                label: "steady".into(),
            }],
            from_zero: false,
        };
        let svg = render(&chart);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<polygon").count(), 1);
        assert!(svg.contains("stroke-dasharray"));
        assert!(svg.contains("rss &lt;bytes&gt;"));
        assert!(svg.contains(">steady<"));
        // Same input, same bytes.
        assert_eq!(svg, render(&chart));
    }

    #[test]
    fn empty_and_flat_charts_do_not_divide_by_zero() {
        let mut chart = Chart {
            title: "flat".into(),
            id: "flat".into(),
            unit: YUnit::Count,
            x_range: (0.0, 0.0),
            bands: vec![],
            series: vec![Series {
                label: "x".into(),
                color: "#000",
                points: vec![(0.0, 5.0), (0.0, 5.0)],
                dashed: false,
                width: 1.0,
            }],
            markers: vec![],
            from_zero: false,
        };
        let svg = render(&chart);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        chart.series.clear();
        assert!(!render(&chart).contains("NaN"));
    }
}
