//! The one validated `Plan` that both CLI flags and scenario files turn into.
//!
//! Everything downstream (supervise, load, probe, verdict, report) reads these plain types and
//! never raw flags or TOML. All defaults are resolved here, so `leakgate check` can print the
//! plan exactly as it will run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A whole run: what to drive, how hard, what to watch, and what decides pass or fail.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Plan {
    /// Short name used in the run folder and reports (the scenario file's stem, or `adhoc`).
    pub name: String,
    /// The scenario file this plan came from, if any.
    pub source: Option<PathBuf>,
    /// Free text shown in reports.
    pub description: String,
    /// The service under test.
    pub target: TargetPlan,
    /// The traffic.
    pub load: LoadPlan,
    /// What is sampled from the target.
    pub probes: ProbePlan,
    /// What decides the verdict.
    pub gates: GatePlan,
    /// Where results go.
    pub output: OutputPlan,
    /// How a long run judges itself while it goes: rolling verdict, early stop, live endpoints,
    /// compaction.
    #[serde(default)]
    pub soak: SoakPlan,
    /// Set for `leakgate watch`: no load is driven, the target's own traffic is judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<WatchPlan>,
}

/// How leakgate gets hold of the service under test.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetPlan {
    /// No process to watch: only the URL is driven (ad-hoc runs); process probes are absent.
    UrlOnly,
    /// Start the service as a child process, wait until it is ready, stop it at the end.
    Spawn(SpawnPlan),
    /// Watch a service that already runs.
    Attach(AttachPlan),
}

/// A command leakgate starts and supervises.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct SpawnPlan {
    /// Program and arguments, placeholders already filled in.
    pub command: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Working directory (defaults to the scenario file's folder).
    pub cwd: Option<PathBuf>,
    /// How readiness is decided.
    pub ready: Readiness,
    /// How long to wait for readiness before giving up (exit 3).
    pub start_timeout: Duration,
    /// Memory limit for the target, in bytes (own cgroup where possible, RLIMIT_AS otherwise).
    pub memory_limit: Option<u64>,
    /// How long to wait after SIGTERM before SIGKILL at the end.
    pub stop_timeout: Duration,
    /// Workspace binaries the command uses (`{bin:NAME}`), built with cargo when missing.
    pub build_bins: Vec<String>,
    /// Go targets of this workspace the command uses (`{go:NAME}`), built with
    /// `targets/go/build.sh` when missing or older than their sources.
    #[serde(default)]
    pub build_go: Vec<String>,
    /// Python targets of this workspace the command uses (`{python:NAME}`), made with
    /// `targets/python/build.sh` when missing or older than their sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_python: Vec<String>,
    /// Java targets of this workspace the command uses (`{java:NAME}`, class folders), built
    /// with `targets/java/build.sh` when missing or older than their sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_java: Vec<String>,
}

/// When a spawned target counts as ready.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Readiness {
    /// An HTTP GET on this URL answers 2xx.
    Url { url: String },
    /// A TCP connect to this address succeeds.
    Port { addr: String },
}

/// A service that already runs, found by pid, pid file, cgroup, systemd unit, container or
/// process name (see `supervise::find`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct AttachPlan {
    /// Process id.
    pub pid: Option<u32>,
    /// File holding the process id (read at start).
    pub pid_file: Option<PathBuf>,
    /// cgroup directory (v1 memory controller folder or v2 unified folder).
    pub cgroup: Option<PathBuf>,
    /// systemd unit whose cgroup holds the service (`api.service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// Docker or containerd container id (or its unique prefix), found in the host's cgroups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Process name (`comm` or the program's file name), for sidecars that share the pod's
    /// process namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_name: Option<String>,
    /// Root of the cgroup hierarchy searched for units and containers (default `/sys/fs/cgroup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_root: Option<PathBuf>,
}

/// Wire protocol of the load.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2 (h2c with prior knowledge over `http://`, ALPN over `https://`).
    Http2,
    /// gRPC over HTTP/2.
    Grpc,
}

/// The traffic: protocol, connections, rate schedule and the weighted request mix.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct LoadPlan {
    /// Wire protocol.
    pub protocol: Protocol,
    /// Base URL that request paths are resolved against (`http://127.0.0.1:8080`).
    pub base_url: String,
    /// Number of TCP connections.
    pub connections: usize,
    /// Concurrent streams per connection (HTTP/2 and gRPC only; 1 for HTTP/1.1).
    pub streams_per_connection: usize,
    /// Worker threads for the driver (None: one per available core).
    pub threads: Option<usize>,
    /// Phases run in order.
    pub phases: Vec<Phase>,
    /// Evenly spaced arrivals, or Poisson.
    pub arrivals: Arrivals,
    /// Weighted request mix (at least one).
    pub requests: Vec<RequestSpec>,
    /// Requests that may wait for a free connection; past this they are dropped.
    pub max_queue: usize,
    /// Per-request timeout (counted as a `timeout` error).
    pub timeout: Duration,
    /// Allowed relative shortfall of the achieved rate before the run is "behind" (0.01 = 1 %).
    pub rate_tolerance: f64,
    /// Length of a statistics window.
    pub window: Duration,
    /// Skip TLS certificate checks (self-signed test servers only).
    pub insecure: bool,
    /// gRPC method resolution (protocol = grpc only).
    pub grpc: Option<GrpcPlan>,
    /// Random seed for templates and Poisson arrivals (None: from entropy).
    pub seed: Option<u64>,
    /// This process drives one shard of the load (`--shard I/N`), None: all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

/// One of `count` processes that drive a load together: it takes arrivals `index`,
/// `index + count`, ... of the planned schedule, so the union is the schedule itself.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u32,
    /// Shards in all.
    pub count: u32,
    /// When the load starts, in ms since the Unix epoch (`--start-at`): shards started at one
    /// instant interleave their arrivals exactly. None: at the next whole second, so every
    /// shard's windows lie on whole seconds of the wall clock and merge window by window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at_unix_ms: Option<u64>,
}

impl Shard {
    /// Share of the planned arrivals this shard drives.
    pub fn share(shard: Option<Self>) -> f64 {
        shard.map_or(1.0, |s| 1.0 / f64::from(s.count.max(1)))
    }

    /// The arrivals of worker `id` of `workers`: (first, stride) in the planned schedule.
    pub fn arrivals(shard: Option<Self>, id: u64, workers: u64) -> (u64, u64) {
        let (i, n) = shard.map_or((0, 1), |s| (u64::from(s.index), u64::from(s.count.max(1))));
        (i + n * id, n * workers.max(1))
    }
}

/// What a phase is for; the verdict judges the `Steady` phases only.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum PhaseKind {
    /// Excluded from the verdict.
    Warmup,
    /// A change of rate; excluded from the verdict.
    Ramp,
    /// Judged by the verdict.
    Steady,
    /// A short burst; excluded from the verdict.
    Spike,
}

/// One stretch of the schedule.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Phase {
    /// What the phase is for.
    pub kind: PhaseKind,
    /// How long it lasts.
    pub duration: Duration,
    /// The arrival rate over the phase.
    pub rate: Rate,
}

/// The arrival rate over a phase.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rate {
    /// Constant requests per second.
    Constant { rps: f64 },
    /// Linear change from `from` to `to` requests per second over the phase.
    Ramp { from: f64, to: f64 },
    /// No schedule: as fast as the connections allow (closed loop; no correction needed).
    Max,
}

/// How arrivals are spaced within the rate.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// Evenly spaced (wrk2, vegeta's constant pacer).
    Uniform,
    /// Exponential gaps with the same mean rate.
    Poisson,
}

/// One kind of request in the mix.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct RequestSpec {
    /// Label used in reports.
    pub name: String,
    /// Relative weight in the mix (> 0).
    pub weight: u32,
    /// HTTP method (ignored for gRPC: always POST).
    pub method: String,
    /// Path and query (template), resolved against the base URL; for gRPC `/pkg.Service/Method`.
    pub path: String,
    /// Header (or gRPC metadata) name and value template.
    pub headers: Vec<(String, String)>,
    /// Body template (for gRPC: the request message as JSON).
    pub body: Option<String>,
    /// What the client does with the response.
    pub behaviour: Behaviour,
}

/// Client behaviours that trigger leaks on the server side.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Default)]
pub struct Behaviour {
    /// Stop reading the response body after this many bytes and drop it (None: read it all).
    /// For gRPC streams: the number of messages after which the stream is abandoned.
    pub abandon_after: Option<u64>,
    /// Cancel the request after this delay (reset the stream or close the connection).
    pub cancel_after: Option<Duration>,
    /// Open a new connection for each request and close it afterwards (churn).
    pub new_connection: bool,
}

/// How gRPC methods are resolved at run time.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct GrpcPlan {
    /// `.proto` files to compile in-process.
    pub protos: Vec<PathBuf>,
    /// Import paths for the `.proto` files.
    pub import_paths: Vec<PathBuf>,
    /// A compiled FileDescriptorSet.
    pub protoset: Option<PathBuf>,
    /// Ask the server's reflection service (when neither protos nor protoset are given).
    pub reflection: bool,
    /// Call kind.
    pub streaming: bool,
}

/// What is sampled from the target, and how often.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct ProbePlan {
    /// Sampling interval.
    pub interval: Duration,
    /// `/proc/<pid>` stat, status and fd count.
    pub process: bool,
    /// `/proc/<pid>/smaps_rollup` (PSS); costs more.
    pub smaps: bool,
    /// Sum over the process tree.
    pub tree: bool,
    /// cgroup memory (v1 or v2).
    pub cgroup: bool,
    /// Prometheus text endpoint and the metric names to keep (empty: none).
    pub prometheus: Option<PrometheusProbe>,
    /// Go expvar `/debug/vars` URL.
    pub expvar_url: Option<String>,
    /// Go `/debug/pprof/goroutine` URL (its query is set per use): a `goroutines` count each
    /// tick from the cheapest source the target offers, dumps (`debug=2`) at the start, the
    /// end and every `goroutine_profile_every`.
    pub goroutine_url: Option<String>,
    /// How often, at most, the goroutine profile itself is fetched during the run.
    #[serde(default = "default_goroutine_every")]
    pub goroutine_profile_every: Duration,
    /// jemalloc/Go heap profile URL captured at start and end of the steady phase.
    pub heap_profile_url: Option<String>,
    /// How long to wait after the load stops before the drain re-sample.
    pub drain_wait: Duration,
    /// URL to hit to force a GC before the drain re-sample (Go: `/debug/pprof/heap?gc=1`).
    pub force_gc_url: Option<String>,
    /// Take a heap profile this often during the run, besides start and end (None: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_profile_every: Option<Duration>,
    /// How many of the latest scheduled heap profiles to keep (the first is always kept).
    #[serde(default = "default_heap_kept")]
    pub heap_profiles_kept: usize,
    /// The target's request counter (the x-axis of a watch; a `target_requests` signal in a run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_from: Option<RequestCounter>,
    /// Native heap profiler the spawned target runs under (its table is read after it stops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<NativeProfiler>,
}

/// A profiler of the C library's allocator (what runtime heap profiles do not see).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NativeProfiler {
    /// heaptrack's preload library records every malloc and free; `heaptrack_print` lists
    /// what was never freed, by stack.
    Heaptrack,
}

impl NativeProfiler {
    /// The names `[probes] native` accepts.
    pub const NAMES: &[&str] = &["heaptrack"];

    /// The profiler named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "heaptrack" => Some(Self::Heaptrack),
            _ => None,
        }
    }
}

fn default_heap_kept() -> usize {
    3
}

/// Default of `goroutine_profile_every`.
pub const DEFAULT_GOROUTINE_PROFILE_EVERY: Duration = Duration::from_secs(60);

fn default_goroutine_every() -> Duration {
    DEFAULT_GOROUTINE_PROFILE_EVERY
}

/// A Prometheus text endpoint and the metrics to sample from it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct PrometheusProbe {
    /// The `/metrics` URL.
    pub url: String,
    /// Full sample names (with labels where needed, e.g. `x{kind="a"}`), kept under the same name.
    pub metrics: Vec<String>,
}

/// Everything that decides the verdict.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct GatePlan {
    /// Per-signal slope limits.
    pub signals: Vec<SignalGate>,
    /// Latency and error limits (k6-threshold style), judged on corrected latency.
    pub latency: LatencyGate,
    /// Share of completed requests excluded as warm-up, on top of warm-up phases (0..1).
    pub warmup_share: f64,
    /// Number of equal-work windows the steady phase is cut into.
    pub windows: usize,
    /// Confidence level of the slope interval (e.g. 0.95).
    pub confidence: f64,
    /// Fail when the projected time to the memory limit is shorter than this.
    pub min_time_to_limit: Option<Duration>,
    /// A run still inconclusive at its planned end goes on (its last steady phase) for up to
    /// this long, and stops as soon as the evidence decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extend_if_inconclusive: Option<Duration>,
}

/// A slope limit on one sampled signal.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct SignalGate {
    /// Signal name as in `samples.ndjson` (e.g. `rss_bytes`, `fd_count`, `cache_entries`).
    pub signal: String,
    /// Maximum slope in units per second.
    pub max_per_second: Option<f64>,
    /// Maximum slope in units per completed request.
    pub max_per_request: Option<f64>,
    /// After the load, the signal must come back within this of its baseline (tasks, fds).
    pub drain_to_baseline: Option<f64>,
    /// Unit for messages: `bytes` or a plain count.
    pub unit: SignalUnit,
}

/// How a signal's values are printed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SignalUnit {
    /// Bytes (printed as KiB/MiB).
    Bytes,
    /// A plain count (tasks, fds, entries).
    Count,
}

/// k6-style limits on latency (corrected for coordinated omission) and errors.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct LatencyGate {
    /// Maximum p95 over the steady phase.
    pub p95: Option<Duration>,
    /// Maximum p99 over the steady phase.
    pub p99: Option<Duration>,
    /// Maximum share of failed requests (errors and 5xx), 0..1.
    pub error_rate: Option<f64>,
}

impl LatencyGate {
    /// True when any latency or error limit is set.
    pub fn has_any(&self) -> bool {
        self.p95.is_some() || self.p99.is_some() || self.error_rate.is_some()
    }
}

/// Where the run's files go.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct OutputPlan {
    /// Parent folder of run folders (default `results/`).
    pub results_dir: PathBuf,
    /// Print a live progress bar on a terminal.
    pub progress: bool,
}

/// How a long run judges itself while it goes.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct SoakPlan {
    /// Judge the last `horizon` this often, appending an `evaluation` record (None: only at the
    /// end of the run).
    pub evaluate_every: Option<Duration>,
    /// What a rolling verdict judges.
    pub horizon: Horizon,
    /// End the run as soon as the rolling verdict is decided (leak proven, or clean proven).
    pub until_verdict: bool,
    /// A leak ends the run early only once every gate is decided (`--until-verdict=all`): the
    /// whole evidence, not just the first gate that fails.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub every_gate: bool,
    /// Address of the live endpoints `/metrics` and `/verdict` (None: not served).
    pub listen: Option<String>,
    /// Records older than this are merged into one record per minute (windows exactly).
    pub compact_after: Duration,
    /// Seal `samples.ndjson` into a numbered segment file this often (None: one file).
    pub segment: Option<Duration>,
    /// Past this much load, stop as soon as the rolling verdict is decided (the planned end of
    /// a run extended by `extend_if_inconclusive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decide_after: Option<Duration>,
}

impl Default for SoakPlan {
    fn default() -> Self {
        Self {
            evaluate_every: None,
            horizon: Horizon::Whole,
            until_verdict: false,
            every_gate: false,
            listen: None,
            compact_after: Duration::from_secs(600),
            segment: None,
            decide_after: None,
        }
    }
}

/// The span of the run a rolling verdict judges.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Horizon {
    /// Everything judged so far (the steady phase of a run).
    Whole,
    /// The last span of time.
    Time {
        /// How far back.
        span: Duration,
    },
    /// The last N completed requests.
    Requests {
        /// How many.
        count: u64,
    },
}

/// `leakgate watch`: how long to watch, and where the target's own request count comes from.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct WatchPlan {
    /// How long to watch (None: until stopped, or until the verdict with `until_verdict`).
    pub duration: Option<Duration>,
}

/// A request counter read from the target: the x-axis of a watch (work done).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct RequestCounter {
    /// A Prometheus text endpoint or an nginx `stub_status` page.
    pub url: String,
    /// The counter's name, summed over its labels (Prometheus only; nginx needs none).
    pub metric: Option<String>,
}

impl LoadPlan {
    /// No load at all (a scenario without `[load]`, or `leakgate watch`).
    pub fn none(base_url: String) -> Self {
        Self {
            protocol: Protocol::Http1,
            base_url,
            connections: 1,
            streams_per_connection: 1,
            threads: None,
            phases: Vec::new(),
            arrivals: Arrivals::Uniform,
            requests: Vec::new(),
            max_queue: 0,
            timeout: Duration::from_secs(10),
            rate_tolerance: 0.01,
            window: Duration::from_secs(1),
            insecure: false,
            grpc: None,
            seed: None,
            shard: None,
        }
    }

    /// Time spans (seconds since load start) of the steady phases, merged where adjacent.
    pub fn steady_spans(&self) -> Vec<(f64, f64)> {
        let mut spans: Vec<(f64, f64)> = Vec::new();
        let mut t = 0.0;
        for p in &self.phases {
            let end = t + p.duration.as_secs_f64();
            if p.kind == PhaseKind::Steady {
                match spans.last_mut() {
                    Some(last) if (last.1 - t).abs() < 1e-9 => last.1 = end,
                    _ => spans.push((t, end)),
                }
            }
            t = end;
        }
        spans
    }
}

impl Plan {
    /// Applies `extend_if_inconclusive`: the last steady phase is planned longer by it, and
    /// past the original end the run stops as soon as the verdict is decided.
    pub fn apply_extension(&mut self) {
        let Some(extra) = self.gates.extend_if_inconclusive else {
            return;
        };
        let planned = self.load_duration();
        if let Some(p) = self
            .load
            .phases
            .iter_mut()
            .rev()
            .find(|p| p.kind == PhaseKind::Steady)
        {
            p.duration += extra;
            self.soak.decide_after = Some(planned);
        }
    }

    /// Total planned duration of the load phases.
    pub fn load_duration(&self) -> Duration {
        self.load.phases.iter().map(|p| p.duration).sum()
    }
}
