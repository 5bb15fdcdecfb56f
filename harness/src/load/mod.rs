//! load: the open-loop engine. A schedule of intended send times, worker threads that own their
//! connections, per-window HdrHistograms (corrected and uncorrected) merged by a collector.

pub mod client;
pub mod conn;
pub mod dispatch;
pub mod engine;
pub mod grpc;
pub mod h1;
pub mod h2conn;
pub mod h2wire;
pub mod hpack;
pub mod local;
pub mod reflection;
pub mod request;
pub mod schedule;
pub mod stats;
pub mod template;
pub mod tls;

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::record::{LatencySummary, LoadReport, Window};
use crate::scenario::plan::{LoadPlan, PhaseKind, Protocol, Rate, Shard};
use engine::{Part, Shared};
use schedule::Schedule;
use stats::Stats;

/// Why the load could not run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The plan cannot be prepared (bad template, URL or header): a scenario mistake.
    #[error("{0}")]
    Plan(String),
    /// The target's address cannot be resolved.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// host:port.
        host: String,
        /// Why.
        reason: String,
    },
    /// A worker thread could not be started.
    #[error("cannot start a load worker thread: {0}")]
    Thread(std::io::Error),
    /// The target does not speak the planned protocol (gRPC reflection failed): not a
    /// mistake in the scenario file, the target is not what the plan says it is.
    #[error("{0}")]
    Target(String),
    /// A load worker panicked (a bug in leakgate): the load's results are incomplete.
    #[error("a load worker failed: {0} (a bug in leakgate: please report it)")]
    Panicked(String),
}

impl LoadError {
    /// True for mistakes in the plan itself (exit 65) rather than the environment.
    pub fn is_plan_error(&self) -> bool {
        matches!(self, LoadError::Plan(_))
    }
}

/// Checks a plan without a target: templates, URLs, and the gRPC methods and bodies when
/// they come from files. Methods found by server reflection can only be checked at run
/// time: the note returned says so.
pub fn check(plan: &LoadPlan) -> Result<Option<String>, LoadError> {
    let by_reflection = plan.protocol == Protocol::Grpc
        && plan
            .grpc
            .as_ref()
            .is_none_or(|g| g.protos.is_empty() && g.protoset.is_none());
    if by_reflection {
        request::Mix::new(plan, None)?;
        return Ok(Some(
            "the gRPC methods and message bodies are resolved by server reflection when the \
             run starts (give protos or a protoset to check them now)"
                .into(),
        ));
    }
    match prepare(plan) {
        Ok(_) => Ok(None),
        // A scenario for another network (a cluster's Service name) is checked here too: its
        // host is looked up when the run starts, where it resolves.
        Err(LoadError::Resolve { host, reason }) => Ok(Some(format!(
            "{host} does not resolve from here ({reason}); it is looked up when the run starts"
        ))),
        Err(e) => Err(e),
    }
}

/// Hooks into a running load.
pub struct LoadContext {
    /// Cancels the load (Ctrl-C, dead target); windows and totals are still reported.
    pub cancel: CancellationToken,
    /// Completed requests so far, read by the sampler thread.
    pub completed: Arc<AtomicU64>,
    /// Called for each closed window, in order, on the calling thread.
    pub on_window: Box<dyn FnMut(&Window) + Send>,
}

/// A load's totals rebuilt from recorded windows (a run folder read back): histograms merged
/// exactly, counts summed; `fell_behind` compares what was sent with what the windows
/// planned. The gRPC first-message latency has no stored histogram: its percentiles are
/// the worst window's (an upper bound).
pub fn report_from_windows(windows: &[&Window], plan: &LoadPlan) -> LoadReport {
    let mut total = Stats::new();
    let mut steady = Stats::new();
    let mut first = LatencySummary::default();
    let mut elapsed: f64 = 0.0;
    for w in windows {
        let mut s = Stats::new();
        s.planned = w.planned;
        s.sent = w.sent;
        s.completed = w.completed;
        s.dropped = w.dropped;
        s.bytes = w.bytes;
        s.status = w.status.clone();
        s.errors = w.errors.clone();
        if let Some(h) = stats::decode(&w.corrected_hist) {
            let _ = s.corrected.add(&h);
        }
        if let Some(h) = stats::decode(&w.uncorrected_hist) {
            let _ = s.uncorrected.add(&h);
        }
        if let Some(m) = w.messages_per_stream {
            s.streams = w.completed;
            s.messages = (m * w.completed as f64).round() as u64;
        }
        let f = &w.first_message;
        if f.count > 0 {
            first.mean = (first.mean * first.count as f64 + f.mean * f.count as f64)
                / (first.count + f.count) as f64;
            first.count += f.count;
            first.p50 = first.p50.max(f.p50);
            first.p90 = first.p90.max(f.p90);
            first.p95 = first.p95.max(f.p95);
            first.p99 = first.p99.max(f.p99);
            first.p999 = first.p999.max(f.p999);
            first.max = first.max.max(f.max);
        }
        elapsed = elapsed.max(w.end);
        if w.phase == Some(PhaseKind::Steady) {
            steady.merge(&s);
        }
        total.merge(&s);
    }
    let duration = elapsed.max(1e-9);
    let closed_loop = plan.phases.iter().any(|p| p.rate == Rate::Max);
    LoadReport {
        elapsed,
        planned: total.planned,
        sent: total.sent,
        completed: total.completed,
        dropped: total.dropped,
        bytes: total.bytes,
        planned_rate: if closed_loop {
            0.0
        } else {
            total.planned as f64 / duration
        },
        achieved_rate: total.sent as f64 / duration,
        completed_rate: total.completed as f64 / duration,
        fell_behind: !closed_loop
            && (total.sent as f64) < total.planned as f64 * (1.0 - plan.rate_tolerance),
        status: total.status.clone(),
        errors: total.errors.clone(),
        failed: total.failed(),
        corrected: stats::summarize(&total.corrected),
        uncorrected: stats::summarize(&total.uncorrected),
        steady_corrected: stats::summarize(&steady.corrected),
        steady_uncorrected: stats::summarize(&steady.uncorrected),
        first_message: first,
        messages_per_stream: (total.streams > 0)
            .then(|| total.messages as f64 / total.streams as f64),
        corrected_hist: stats::encode(&total.corrected),
        uncorrected_hist: stats::encode(&total.uncorrected),
        threads: 0,
    }
}

/// A plan compiled and resolved, ready to run.
pub struct Prepared {
    shared: Arc<Shared>,
    connections: usize,
}

/// Checks what can be checked without the target: templates, methods and headers, and gRPC
/// methods against `.proto` files or a protoset (server reflection needs the target).
pub fn validate(plan: &LoadPlan) -> Result<(), LoadError> {
    let offline = plan
        .grpc
        .as_ref()
        .is_some_and(|g| !g.protos.is_empty() || g.protoset.is_some());
    let pool = match plan.protocol {
        Protocol::Grpc if offline => Some(grpc::pool(plan)?),
        _ => None,
    };
    request::Mix::new(plan, pool.as_ref()).map(|_| ())
}

/// Compiles templates and resolves the target address (fails fast on plan mistakes).
pub fn prepare(plan: &LoadPlan) -> Result<Prepared, LoadError> {
    let pool = match plan.protocol {
        Protocol::Grpc => Some(grpc::pool(plan)?),
        _ => None,
    };
    let mix = request::Mix::new(plan, pool.as_ref())?;
    let uri: ::http::Uri = plan
        .base_url
        .parse()
        .map_err(|e| LoadError::Plan(format!("base URL \"{}\": {e}", plan.base_url)))?;
    let https = uri.scheme_str() == Some("https");
    let host = uri
        .host()
        .unwrap_or("127.0.0.1")
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addr: SocketAddr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| LoadError::Resolve {
            host: format!("{host}:{port}"),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| LoadError::Resolve {
            host: format!("{host}:{port}"),
            reason: "no address".into(),
        })?;
    let connector = client::Connector::new(plan, addr, &host, https)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // A scheduled load needs a thread per ~20 000 req/s at most; fewer threads wake less often.
    let peak = plan
        .phases
        .iter()
        .map(|p| match p.rate {
            Rate::Constant { rps } => rps,
            Rate::Ramp { from, to } => from.max(to),
            Rate::Max => f64::INFINITY,
        })
        .fold(0.0, f64::max);
    let by_rate = (peak / 20_000.0).ceil().min(cores as f64) as usize;
    let workers = plan
        .threads
        .unwrap_or(by_rate.max(1))
        .clamp(1, plan.connections.max(1));
    // Each shard draws its own stream: the same scenario seed gives shards different keys.
    let seed = plan.seed.unwrap_or_else(rand::random)
        ^ plan.shard.map_or(0, |s| {
            u64::from(s.index).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        });
    Ok(Prepared {
        shared: Arc::new(Shared {
            plan: plan.clone(),
            mix,
            connector,
            workers,
            seed,
        }),
        connections: plan.connections.max(1),
    })
}

/// Prepares and runs `plan`, blocking until it ends; windows stream through `ctx.on_window`.
pub fn run(plan: &LoadPlan, ctx: LoadContext) -> Result<LoadReport, LoadError> {
    let prepared = prepare(plan)?;
    run_prepared(&prepared, ctx)
}

/// Runs a prepared plan (see [`run`]).
pub fn run_prepared(prepared: &Prepared, mut ctx: LoadContext) -> Result<LoadReport, LoadError> {
    let shared = &prepared.shared;
    let plan = &shared.plan;
    let n = shared.workers;
    let (tx, rx) = mpsc::channel::<Part>();
    let start = std::time::Instant::now();
    let mut threads = Vec::with_capacity(n);
    for id in 0..n {
        let conns = prepared.connections / n + usize::from(id < prepared.connections % n);
        let (shared, cancel, completed) =
            (shared.clone(), ctx.cancel.clone(), ctx.completed.clone());
        let tx = tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("leakgate-load-{id}"))
            .spawn(move || engine::run_worker(shared, id, conns, start, cancel, completed, tx))
            .map_err(LoadError::Thread)?;
        threads.push(handle);
    }
    drop(tx);

    let schedule = Schedule::new(&plan.phases, plan.arrivals, 0, 0, 1);
    let mut collector = Collector::new(n, plan.window, &schedule);
    for part in rx {
        collector.add(part, &mut ctx.on_window);
    }
    // A worker that panicked took its share of the statistics with it: say so, never judge
    // on what is left as if it were whole.
    let mut panicked = None;
    for t in threads {
        if let Err(p) = t.join() {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            panicked = Some(msg);
        }
    }
    collector.flush(&mut ctx.on_window);
    if let Some(msg) = panicked {
        return Err(LoadError::Panicked(msg));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cut = ctx.cancel.is_cancelled();
    Ok(collector.report(plan, &schedule, elapsed, n, cut))
}

/// Merges worker parts into windows, in order, and keeps run totals.
struct Collector {
    workers: usize,
    window: Duration,
    phases: Vec<PhaseKind>,
    pending: BTreeMap<u64, (usize, Stats)>,
    next: u64,
    cumulative: u64,
    total: Stats,
    steady: Stats,
}

impl Collector {
    fn new(workers: usize, window: Duration, schedule: &Schedule) -> Self {
        // The phase each window starts in, on the same grid the workers close windows on.
        let mut phases = Vec::new();
        let mut t = Duration::ZERO;
        while t < schedule.duration() {
            phases.push(schedule.phase_kind_at(t).unwrap_or(PhaseKind::Steady));
            t += window;
        }
        Self {
            workers,
            window,
            phases,
            pending: BTreeMap::new(),
            next: 0,
            cumulative: 0,
            total: Stats::new(),
            steady: Stats::new(),
        }
    }

    fn add(&mut self, part: Part, on_window: &mut dyn FnMut(&Window)) {
        let Part::Window { index, stats } = part else {
            return;
        };
        let e = self
            .pending
            .entry(index)
            .or_insert_with(|| (0, Stats::new()));
        e.0 += 1;
        e.1.merge(&stats);
        // Emit every window all workers have reported, in order.
        while let Some((count, _)) = self.pending.get(&self.next) {
            if *count < self.workers {
                break;
            }
            let (_, stats) = self.pending.remove(&self.next).unwrap_or_default();
            self.emit(self.next, stats, on_window);
            self.next += 1;
        }
    }

    fn flush(&mut self, on_window: &mut dyn FnMut(&Window)) {
        for (index, (_, stats)) in std::mem::take(&mut self.pending) {
            self.emit(index, stats, on_window);
        }
    }

    fn emit(&mut self, index: u64, mut stats: Stats, on_window: &mut dyn FnMut(&Window)) {
        stats.settle();
        self.cumulative += stats.completed;
        let start = index as f64 * self.window.as_secs_f64();
        let phase = self
            .phases
            .get(index as usize)
            .or(self.phases.last())
            .copied();
        let w = Window {
            index,
            start,
            end: start + self.window.as_secs_f64(),
            phase,
            planned: stats.planned,
            sent: stats.sent,
            completed: stats.completed,
            dropped: stats.dropped,
            cumulative_completed: self.cumulative,
            bytes: stats.bytes,
            status: stats.status.clone(),
            errors: stats.errors.clone(),
            corrected: stats::summarize(&stats.corrected),
            uncorrected: stats::summarize(&stats.uncorrected),
            first_message: stats::summarize(&stats.first_message),
            messages_per_stream: (stats.streams > 0)
                .then(|| stats.messages as f64 / stats.streams as f64),
            corrected_hist: stats::encode(&stats.corrected),
            uncorrected_hist: stats::encode(&stats.uncorrected),
            merged: None,
        };
        on_window(&w);
        if phase == Some(PhaseKind::Steady) {
            self.steady.merge(&stats);
        }
        self.total.merge(&stats);
    }

    fn report(
        &self,
        plan: &LoadPlan,
        schedule: &Schedule,
        elapsed: f64,
        threads: usize,
        cut: bool,
    ) -> LoadReport {
        let t = &self.total;
        // A load stopped early (Ctrl-C, a dead target, a decided verdict) is judged on what
        // was due before the stop: the arrivals the dispatchers handed out.
        let (duration, planned_total) = if cut {
            (
                elapsed.min(schedule.duration().as_secs_f64()).max(1e-9),
                t.planned as f64,
            )
        } else {
            (
                schedule.duration().as_secs_f64().max(1e-9),
                schedule.planned_until(schedule.duration()) * Shard::share(plan.shard),
            )
        };
        let closed_loop = plan.phases.iter().any(|p| p.rate == Rate::Max);
        let planned_rate = if closed_loop {
            0.0
        } else {
            planned_total / duration
        };
        let achieved_rate = t.sent as f64 / duration;
        let fell_behind =
            !closed_loop && (t.sent as f64) < planned_total * (1.0 - plan.rate_tolerance);
        LoadReport {
            elapsed,
            planned: t.planned,
            sent: t.sent,
            completed: t.completed,
            dropped: t.dropped,
            bytes: t.bytes,
            planned_rate,
            achieved_rate,
            completed_rate: t.completed as f64 / duration,
            fell_behind,
            status: t.status.clone(),
            errors: t.errors.clone(),
            failed: t.failed(),
            corrected: stats::summarize(&t.corrected),
            uncorrected: stats::summarize(&t.uncorrected),
            steady_corrected: stats::summarize(&self.steady.corrected),
            steady_uncorrected: stats::summarize(&self.steady.uncorrected),
            first_message: stats::summarize(&t.first_message),
            messages_per_stream: (t.streams > 0).then(|| t.messages as f64 / t.streams as f64),
            corrected_hist: stats::encode(&t.corrected),
            uncorrected_hist: stats::encode(&t.uncorrected),
            threads,
        }
    }
}
