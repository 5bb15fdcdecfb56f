//! What a run prints: live progress while it runs, then load totals and the verdict.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};

use crate::record::{Evaluation, LatencySummary, LoadReport, ProbeSample, Window};
use crate::run::{RunOptions, RunOutcome, Stop};
use crate::scenario::plan::{PhaseKind, Plan, Protocol, Rate, SignalUnit, TargetPlan};
use crate::verdict::{Outcome, Verdict, format};

/// Live progress: a bar on a terminal, a plain line every 5 windows otherwise.
#[derive(Clone)]
pub struct Live {
    bar: Option<ProgressBar>,
    state: Arc<Mutex<Memory>>,
    quiet: bool,
    total: f64,
}

/// The target's RSS as last sampled, and its trend so far.
#[derive(Debug, Default)]
struct Memory {
    rss: Option<f64>,
    per_second: Trend,
    per_request: Trend,
}

/// Least-squares slope, updated one point at a time (the live view's "slope so far"; the
/// verdict's robust Theil–Sen fit runs at the end on everything).
#[derive(Debug, Default, Clone, Copy)]
struct Trend {
    origin: Option<(f64, f64)>,
    n: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
}

impl Trend {
    fn push(&mut self, x: f64, y: f64) {
        // Centre on the first point: RSS in bytes squared would lose the slope to rounding.
        let (x0, y0) = *self.origin.get_or_insert((x, y));
        let (x, y) = (x - x0, y - y0);
        self.n += 1.0;
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.sxy += x * y;
    }

    fn slope(&self) -> Option<f64> {
        let den = self.n * self.sxx - self.sx * self.sx;
        (self.n >= 3.0 && den > 0.0).then(|| (self.n * self.sxy - self.sx * self.sy) / den)
    }
}

impl Live {
    /// Progress for `plan`; `enabled` false or `quiet` prints no bar.
    pub fn new(plan: &Plan, enabled: bool, quiet: bool) -> Self {
        let total = plan.load_duration().as_secs().max(1);
        let bar = (enabled && !quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise} / {eta} left] {bar:24} {pos}/{len}s {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        Self {
            bar,
            state: Arc::default(),
            quiet,
            total: plan.load_duration().as_secs_f64(),
        }
    }

    /// Hooks for the run.
    pub fn options(&self, stop: Stop) -> RunOptions {
        let (w, s, e) = (self.clone(), self.clone(), self.clone());
        RunOptions {
            stop,
            on_window: Some(Box::new(move |x| w.window(x))),
            on_sample: Some(Box::new(move |x| s.sample(x))),
            on_eval: vec![Box::new(move |x| e.evaluation(x))],
        }
    }

    /// One line per rolling evaluation (a watch has no load windows to report progress on).
    fn evaluation(&self, e: &Evaluation) {
        if self.quiet {
            return;
        }
        let mut line = format!("[{:>6.0}s] rolling verdict {}", e.t, e.summary);
        for (name, s) in &e.signals {
            if let Some(ps) = s.per_second {
                let unit = if name.ends_with("_bytes") {
                    SignalUnit::Bytes
                } else {
                    SignalUnit::Count
                };
                let per = match s.per_request {
                    Some(pr) => format!(", {}", format::rate(pr, unit, "request")),
                    None => String::new(),
                };
                line.push_str(&format!(
                    "; {name} {}{per}",
                    format::rate(ps * 3600.0, unit, "h")
                ));
            }
        }
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn sample(&self, s: &ProbeSample) {
        let Some(rss) = s.signals.get("rss_bytes").copied() else {
            return;
        };
        if let Ok(mut m) = self.state.lock() {
            m.rss = Some(rss);
            // The baseline (t < 0) is before any load: it has no slope to tell.
            if s.t >= 0.0 {
                m.per_second.push(s.t, rss);
                m.per_request.push(s.cumulative_completed as f64, rss);
            }
        }
    }

    fn window(&self, w: &Window) {
        let memory = self
            .state
            .lock()
            .map(|m| self.memory(&m))
            .unwrap_or_default();
        let secs = (w.end - w.start).max(1e-9);
        let line = format!(
            "{:>7.0} req/s  p99 {:>8.2} ms  errors {:>5}  {memory}",
            w.completed as f64 / secs,
            w.corrected.p99,
            w.errors.values().sum::<u64>(),
        );
        match &self.bar {
            Some(b) => {
                b.set_position(w.end as u64);
                b.set_message(line);
            }
            None if !self.quiet && w.index % 5 == 4 => eprintln!(
                "[{:>5.0}s, {:.0}s left] {line}",
                w.end,
                (self.total - w.end).max(0.0)
            ),
            None => {}
        }
    }

    /// `rss 95.2 MiB, +2.10 MiB/s, 1.08 KiB/request so far`.
    fn memory(&self, m: &Memory) -> String {
        let Some(rss) = m.rss else {
            return "rss -".into();
        };
        let mut out = format!("rss {}", format::bytes(rss));
        if let Some(s) = m.per_second.slope() {
            let sign = if s >= 0.0 { "+" } else { "-" };
            out += &format!(", {sign}{}/s", format::bytes(s.abs()));
        }
        if let Some(s) = m.per_request.slope() {
            let sign = if s >= 0.0 { "" } else { "-" };
            out += &format!(", {sign}{}/request so far", format::bytes(s.abs()));
        }
        out
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Publishes every evaluation to the live endpoints, with the time its outcome began.
pub fn publisher(plan: &Plan, server: Arc<crate::live::LiveServer>) -> crate::run::EvalHook {
    let run = plan.name.clone();
    let started_at = crate::run::now_rfc3339();
    let mut since: Option<(crate::record::EvalOutcome, String)> = None;
    let mut count = 0u64;
    server.publish(&crate::live::Snapshot {
        run: run.clone(),
        started_at: started_at.clone(),
        ..Default::default()
    });
    Box::new(move |e: &Evaluation| {
        if since.as_ref().is_none_or(|(o, _)| *o != e.outcome) {
            since = Some((e.outcome, e.at.clone()));
        }
        count += 1;
        server.publish(&crate::live::Snapshot {
            run: run.clone(),
            started_at: started_at.clone(),
            evaluation: Some(e.clone()),
            since: since.as_ref().map(|(_, t)| t.clone()),
            requests_total: e.requests,
            memory_limit: None,
            evaluations_total: count,
        });
    })
}

/// How the target is found, in words.
fn attach_words(a: &crate::scenario::plan::AttachPlan) -> String {
    let mut parts = Vec::new();
    if let Some(p) = a.pid {
        parts.push(format!("pid {p}"));
    }
    if let Some(p) = &a.pid_file {
        parts.push(format!("pid file {}", p.display()));
    }
    if let Some(c) = &a.cgroup {
        parts.push(format!("cgroup {}", c.display()));
    }
    if let Some(u) = &a.systemd_unit {
        parts.push(format!("systemd unit {u}"));
    }
    if let Some(c) = &a.container {
        parts.push(format!("container {c}"));
    }
    if let Some(n) = &a.process_name {
        parts.push(format!("process named {n}"));
    }
    parts.join(", ")
}

/// The header printed before the load starts.
pub fn header(plan: &Plan) -> String {
    let target = match &plan.target {
        TargetPlan::Spawn(s) => format!("spawn {}", s.command.join(" ")),
        TargetPlan::Attach(a) => format!("attach to {}", attach_words(a)),
        TargetPlan::UrlOnly => "URL only (no process to watch)".into(),
    };
    if let Some(w) = &plan.watch {
        let gates: Vec<String> = plan
            .gates
            .signals
            .iter()
            .map(|g| {
                let per_r = g
                    .max_per_request
                    .map(|l| format::rate(l, g.unit, "request"));
                let per_s = g
                    .max_per_second
                    .map(|l| format::rate(l * 3600.0, g.unit, "h"));
                format!(
                    "{} ≤ {}",
                    g.signal,
                    per_r
                        .into_iter()
                        .chain(per_s)
                        .collect::<Vec<_>>()
                        .join(" and ")
                )
            })
            .collect();
        let x = match &plan.probes.requests_from {
            Some(r) => format!("per request, counted from {}", r.url),
            None => {
                "per hour (no request counter: give --requests-from for per-request slopes)".into()
            }
        };
        let about = if plan.description.is_empty() {
            String::new()
        } else {
            format!(": {}", plan.description)
        };
        return format!(
            "leakgate watch {}{about}\n  target  {target}\n  for     {}; a rolling verdict every {} over {}\n  gates   {}\n  slopes  {x}",
            plan.name,
            w.duration
                .map_or("until stopped".into(), |d| format::duration(
                    d.as_secs_f64()
                )),
            plan.soak
                .evaluate_every
                .map_or("-".into(), |d| format::duration(d.as_secs_f64())),
            crate::run::horizon_words(plan.soak.horizon),
            gates.join(", "),
        );
    }
    let phases: Vec<String> = plan
        .load
        .phases
        .iter()
        .map(|p| {
            let rate = match p.rate {
                Rate::Constant { rps } => format!("{rps}/s"),
                Rate::Ramp { from, to } => format!("{from}->{to}/s"),
                Rate::Max => "max".into(),
            };
            let kind = match p.kind {
                PhaseKind::Warmup => "warmup",
                PhaseKind::Ramp => "ramp",
                PhaseKind::Steady => "steady",
                PhaseKind::Spike => "spike",
            };
            format!(
                "{kind} {} @ {rate}",
                crate::scenario::units::format_duration(p.duration)
            )
        })
        .collect();
    let protocol = match plan.load.protocol {
        Protocol::Http1 => "HTTP/1.1",
        Protocol::Http2 => "HTTP/2",
        Protocol::Grpc => "gRPC",
    };
    format!(
        "leakgate {}: {}\n  target  {target}\n  load    {} {} x{} conns, {}",
        plan.name,
        plan.description,
        protocol,
        plan.load.base_url,
        plan.load.connections,
        phases.join(", ")
    )
}

fn lat(l: &LatencySummary) -> String {
    format!(
        "p50 {:.3}  p90 {:.3}  p95 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3} ms",
        l.p50, l.p90, l.p95, l.p99, l.p999, l.max
    )
}

/// Load totals, oha/wrk2 style.
pub fn load_report(r: &LoadReport) -> String {
    let status: Vec<String> = r.status.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let planned = if r.planned_rate > 0.0 {
        format!("planned {:.1}/s, ", r.planned_rate)
    } else {
        "max throughput, ".into()
    };
    format!(
        "Load ({:.1} s, {} threads)\n  requests   planned {}  sent {}  completed {}  dropped {}\n  rate       {planned}sent {:.1}/s, completed {:.1}/s{}\n  status     {}\n  errors     {}\n  transfer   {}\n  latency    corrected    {}\n             uncorrected  {}",
        r.elapsed,
        r.threads,
        r.planned,
        r.sent,
        r.completed,
        r.dropped,
        r.achieved_rate,
        r.completed_rate,
        if r.fell_behind {
            "  ← the driver fell behind the plan"
        } else {
            ""
        },
        if status.is_empty() {
            "-".into()
        } else {
            status.join(", ")
        },
        if errors.is_empty() {
            "none".into()
        } else {
            errors.join(", ")
        },
        format::bytes(r.bytes as f64),
        lat(&r.corrected),
        lat(&r.uncorrected),
    ) + &match r.messages_per_stream {
        Some(m) => format!(
            "\n             first message {}\n  messages   {m:.2} per call",
            lat(&r.first_message)
        ),
        None => String::new(),
    }
}

/// The verdict's headline: the outcome and the signals (or limits) that decided it, e.g.
/// `FAIL: cache_entries, rss_bytes`; each gate's explanation follows on its own line.
pub fn headline(v: &Verdict) -> String {
    let names = |o: Outcome| v.names_with(o);
    match v.outcome {
        Outcome::Fail => format!("FAIL: {}", names(Outcome::Fail)),
        Outcome::Inconclusive => format!(
            "INCONCLUSIVE (not a pass): {}",
            names(Outcome::Inconclusive)
        ),
        Outcome::Pass if v.gates.is_empty() => "PASS (no gates were configured)".into(),
        Outcome::Pass => format!("PASS: all {} gates held", v.gates.len()),
    }
}

/// The verdict, one line per gate.
pub fn verdict(v: &Verdict) -> String {
    let mut out = format!("Verdict: {}", headline(v));
    for g in &v.gates {
        let mark = match g.outcome {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Inconclusive => "INCONCLUSIVE",
        };
        out.push_str(&format!("\n  {mark}  {}: {}", g.name, g.explanation));
    }
    out
}

/// The heap growth in one line: the total and the site that grew most, with its caller.
pub fn heap_line(h: &Result<crate::heap::HeapDiff, String>) -> String {
    use crate::report::markdown::heap_value;
    let d = match h {
        Ok(d) => d,
        Err(e) => return format!("Heap: the profiles could not be compared: {e}"),
    };
    let mut line = format!(
        "Heap: {} → {} {} between heap-start.pb.gz and heap-end.pb.gz",
        heap_value(d.start_total, &d.unit),
        heap_value(d.end_total, &d.unit),
        d.sample_type
    );
    if let Some(s) = d.sites.first() {
        line.push_str(&format!(
            "; grew most in {} (+{}",
            s.function,
            heap_value(s.growth(), &d.unit)
        ));
        if let Some(c) = s.callers.first() {
            line.push_str(&format!(", called from {c}"));
        }
        line.push_str("); all sites: summary.md");
    }
    line
}

/// The native heap in one line: heaptrack's total and the function holding most, or why RSS
/// alone grew.
pub fn native_line(s: &crate::report::native::Section) -> String {
    use crate::report::markdown::heap_value;
    use crate::report::native::Section;
    let d = match s {
        Section::Table(d) => d,
        Section::Failed(e) => return format!("Native heap: no heaptrack table: {e}"),
        Section::Hint(h) => return format!("Native heap: {h}"),
    };
    let mut line = format!(
        "Native heap (heaptrack): {} never freed when the target stopped",
        heap_value(d.end_total, &d.unit)
    );
    if let Some(s) = d.sites.first() {
        line.push_str(&format!(
            "; most by {} ({}",
            s.function,
            heap_value(s.end, &d.unit)
        ));
        if let Some(c) = s.callers.first() {
            line.push_str(&format!(", called from {c}"));
        }
        line.push_str("); all sites: summary.md");
    }
    line
}

/// Everything after the run, including the bench script's `key=value` line.
pub fn outcome(o: &RunOutcome) -> String {
    let mut out = String::new();
    if let Some(e) = &o.summary.target_exit {
        out.push_str(&format!("Target died at {:.1} s: {}\n", e.t, e.cause));
    }
    if let Some(r) = &o.summary.load {
        out.push_str(&load_report(r));
        out.push('\n');
    }
    if let Some(v) = &o.summary.verdict {
        out.push_str(&verdict(v));
        out.push('\n');
    }
    if let Some(d) = &o.summary.diagnosis {
        for line in d.lines() {
            out.push_str(&line);
            out.push('\n');
        }
    }
    for p in &o.summary.probe_problems {
        out.push_str(&format!("Probe problem: {p}\n"));
    }
    if let Some(e) = &o.summary.error {
        out.push_str(&format!("Error: {e}\n"));
    }
    if let Some(h) = &o.heap {
        out.push_str(&heap_line(h));
        out.push('\n');
    }
    if let Some(n) = &o.native {
        out.push_str(&native_line(n));
        out.push('\n');
    }
    if let Some(g) = &o.goroutines {
        out.push_str(&crate::report::goroutines::line(g));
        out.push('\n');
    }
    if let Some(st) = &o.summary.stopped {
        if st.verdict_decided {
            let planned = o.summary.plan.load_duration().as_secs_f64();
            let of = if planned > 0.0 {
                format!(" (planned {})", format::duration(planned))
            } else {
                String::new()
            };
            out.push_str(&format!(
                "Time to verdict: {}{of}: {}\n",
                format::duration(st.t),
                st.reason
            ));
        } else {
            out.push_str(&format!("Stopped at {:.1} s: {}\n", st.t, st.reason));
        }
    }
    out.push_str(&format!(
        "Exit {}: {}\nResults: {}\n",
        o.exit.code(),
        o.summary.exit_reason,
        o.run_dir.display()
    ));
    if let Some(r) = &o.summary.load {
        out.push_str(&format!(
            "rps={:.1} p50_ms={:.3} p99_ms={:.3} errors={} total={} secs={:.3}\n",
            r.completed as f64 / r.elapsed.max(1e-9),
            r.corrected.p50,
            r.corrected.p99,
            r.failed,
            r.completed,
            r.elapsed
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_finds_the_slope_of_big_values() {
        let mut t = Trend::default();
        assert_eq!(t.slope(), None);
        for i in 0..50 {
            // 4 GiB plus 1 KiB per step: the centring keeps the slope exact.
            t.push(
                f64::from(i),
                4.0 * 1024.0 * 1024.0 * 1024.0 + 1024.0 * f64::from(i),
            );
        }
        assert!((t.slope().unwrap() - 1024.0).abs() < 1e-6);
        let mut flat = Trend::default();
        for _ in 0..5 {
            flat.push(3.0, 7.0);
        }
        assert_eq!(flat.slope(), None, "no spread in x: no slope");
    }

    #[test]
    fn heap_line_names_the_total_and_the_top_site() {
        let d = crate::heap::HeapDiff {
            sample_type: "inuse_space".into(),
            unit: "bytes".into(),
            start_total: 0,
            end_total: 3 << 20,
            sites: vec![crate::heap::Site {
                function: "app::leak".into(),
                at: None,
                callers: vec!["app::handler".into()],
                start: 0,
                end: 2 << 20,
            }],
        };
        let line = heap_line(&Ok(d));
        assert!(
            line.starts_with("Heap: 0 B → 3.00 MiB inuse_space"),
            "{line}"
        );
        assert!(
            line.contains("grew most in app::leak (+2.00 MiB, called from app::handler)"),
            "{line}"
        );
        let bad = heap_line(&Err("heap-end.pb.gz: not a pprof profile".into()));
        assert!(
            bad.contains("could not be compared: heap-end.pb.gz"),
            "{bad}"
        );
    }
}
