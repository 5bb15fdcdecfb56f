//! `leakgate watch`: judge a service that already runs, on its own traffic, for hours: the
//! same probes, verdict, reports and exit codes as `run`, with a rolling verdict and live
//! endpoints for rollout controllers.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{overrides, parse_duration};
use crate::exit::ExitCode;
use crate::scenario::plan::*;
use crate::scenario::resolve::{MIN_EVALUATE_EVERY, MIN_PROBE_INTERVAL, check_probe_url};
use crate::scenario::units::{Slope, parse_slope};

/// `leakgate watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// A scenario file whose [target], [probes] and [gates] to use (a [load] is ignored).
    pub scenario: Option<PathBuf>,
    /// Override a scenario value: `--set gates.windows=20` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// The service's process id.
    #[arg(long, allow_negative_numbers = true)]
    pub pid: Option<u32>,
    /// A file holding the service's process id.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// The service's cgroup folder (v1 memory controller or v2 unified).
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    /// A systemd unit: its cgroup holds the service (`api` or `api.service`).
    #[arg(long)]
    pub systemd_unit: Option<String>,
    /// A docker or containerd container id (or a unique prefix of it).
    #[arg(long)]
    pub container: Option<String>,
    /// The process with this name (`comm` or program file name): for a Kubernetes sidecar
    /// with `shareProcessNamespace`.
    #[arg(long)]
    pub process_name: Option<String>,
    /// Where units and containers are looked up.
    #[arg(long, value_name = "DIR")]
    pub cgroup_root: Option<PathBuf>,
    /// The target's request counter: a Prometheus `/metrics` URL (see --requests-metric) or
    /// an nginx `stub_status` URL. Slopes are then per request; without it, per hour.
    #[arg(long, value_name = "URL")]
    pub requests_from: Option<String>,
    /// The counter's name in --requests-from, summed over its labels.
    #[arg(long, value_name = "NAME", requires = "requests_from")]
    pub requests_metric: Option<String>,
    /// A Prometheus endpoint to sample more signals from (see --metric).
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// A metric of --prometheus to sample as a signal (repeatable; gate it with --gate).
    #[arg(long = "metric", value_name = "NAME", requires = "prometheus")]
    pub metrics: Vec<String>,
    /// A slope limit: `rss_bytes=64 B/request`, `rss_bytes=20 MiB/h`, `fd_count=0.01/request`
    /// (repeatable). Default: rss_bytes at 256 B/request with a request counter, else 10 MiB/h.
    #[arg(long = "gate", value_name = "SIGNAL=LIMIT")]
    pub gates: Vec<String>,
    /// Fail when the memory limit (cgroup, unit or pod limit, RLIMIT_AS) is nearer than this
    /// at the current slope.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub min_time_to_limit: Option<Duration>,
    /// Sampling interval.
    #[arg(long, default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub interval: Duration,
    /// How long to watch (default: until SIGTERM or Ctrl-C, or the verdict with
    /// --until-verdict).
    #[arg(long, short = 'd', value_parser = parse_duration, allow_hyphen_values = true)]
    pub duration: Option<Duration>,
    /// Judge the last --horizon this often.
    #[arg(long, default_value = "1m", value_parser = parse_duration, allow_hyphen_values = true)]
    pub evaluate_every: Duration,
    /// What each rolling verdict judges: a time (`30m`) or a number of requests (`100000req`).
    #[arg(long, default_value = "30m", value_parser = parse_horizon, allow_hyphen_values = true)]
    pub horizon: Horizon,
    /// Stop as soon as the rolling verdict is decided (leak proven, or clean proven), two
    /// evaluations in a row; `--until-verdict=all` waits for every gate to be decided.
    #[arg(long, value_enum, value_name = "WHEN", num_args = 0..=1, require_equals = true,
          default_missing_value = "first")]
    pub until_verdict: Option<super::UntilVerdict>,
    /// Serve /metrics and /verdict (default address 127.0.0.1:9090).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:9090")]
    pub listen: Option<String>,
    /// Allow --listen on an address other hosts can reach.
    #[arg(long, requires = "listen")]
    pub listen_public: bool,
    /// Seal samples.ndjson into numbered segment files this often (copy them off while it goes).
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub segment: Option<Duration>,
    /// Merge samples older than this into one record per minute (windows exactly).
    #[arg(long, default_value = "10m", value_parser = parse_duration, allow_hyphen_values = true)]
    pub compact_after: Duration,
    /// Parent folder of the run folder.
    #[arg(long, default_value = "results")]
    pub results_dir: PathBuf,
    /// No live progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Print only the final summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `30m` → a time horizon; `100000req`, `100k requests` → a request horizon.
fn parse_horizon(s: &str) -> Result<Horizon, String> {
    let t = s.trim();
    let words = ["requests", "request", "reqs", "req"];
    if let Some(n) = words.iter().find_map(|w| t.strip_suffix(w)) {
        let n = n.trim();
        let (n, f) = match n.strip_suffix(['k', 'K']) {
            Some(k) => (k, 1e3),
            None => match n.strip_suffix(['m', 'M']) {
                Some(m) => (m, 1e6),
                None => (n, 1.0),
            },
        };
        let count = n
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 1.0)
            .map(|v| (v * f) as u64)
            .ok_or_else(|| format!("\"{s}\" is not a request count like \"100000req\""))?;
        return Ok(Horizon::Requests { count });
    }
    let span = crate::scenario::units::parse_duration(t)?;
    if span.is_zero() {
        return Err("the horizon must be longer than 0s".into());
    }
    Ok(Horizon::Time { span })
}

/// `SIGNAL=LIMIT` into a gate.
fn parse_gate(s: &str) -> Result<SignalGate, String> {
    let (name, limit) = s
        .split_once('=')
        .map(|(n, l)| (n.trim(), l.trim()))
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| {
            format!("--gate expects SIGNAL=LIMIT (e.g. 'rss_bytes=64 B/request'), got \"{s}\"")
        })?;
    let slope = parse_slope(limit).map_err(|e| format!("--gate {name}: {e}"))?;
    let (per_s, per_r) = match slope {
        Slope::PerSecond(v) => (Some(v), None),
        Slope::PerRequest(v) => (None, Some(v)),
    };
    Ok(SignalGate {
        signal: name.to_string(),
        max_per_second: per_s,
        max_per_request: per_r,
        drain_to_baseline: None,
        unit: if name.ends_with("_bytes") {
            SignalUnit::Bytes
        } else {
            SignalUnit::Count
        },
    })
}

/// The attach keys given as flags, if any.
fn attach_of(a: &WatchArgs) -> Option<AttachPlan> {
    let given = a.pid.is_some()
        || a.pid_file.is_some()
        || a.cgroup.is_some()
        || a.systemd_unit.is_some()
        || a.container.is_some()
        || a.process_name.is_some();
    given.then(|| AttachPlan {
        pid: a.pid,
        pid_file: a.pid_file.clone(),
        cgroup: a.cgroup.clone(),
        systemd_unit: a.systemd_unit.clone(),
        container: a.container.clone(),
        process_name: a.process_name.clone(),
        cgroup_root: a.cgroup_root.clone(),
    })
}

fn base_plan() -> Plan {
    Plan {
        name: "watch".into(),
        source: None,
        description: String::new(),
        target: TargetPlan::UrlOnly,
        load: LoadPlan::none(String::new()),
        probes: ProbePlan {
            interval: Duration::from_secs(5),
            process: true,
            smaps: false,
            tree: false,
            cgroup: true,
            prometheus: None,
            expvar_url: None,
            goroutine_url: None,
            goroutine_profile_every: crate::scenario::plan::DEFAULT_GOROUTINE_PROFILE_EVERY,
            heap_profile_url: None,
            drain_wait: Duration::ZERO,
            force_gc_url: None,
            heap_profile_every: None,
            heap_profiles_kept: 3,
            native: None,
            requests_from: None,
        },
        gates: GatePlan {
            signals: Vec::new(),
            latency: LatencyGate::default(),
            // A service already running has no warm-up to drop.
            warmup_share: 0.0,
            windows: 10,
            confidence: 0.95,
            min_time_to_limit: None,
            extend_if_inconclusive: None,
        },
        output: OutputPlan {
            results_dir: PathBuf::from("results"),
            progress: true,
        },
        soak: SoakPlan::default(),
        watch: None,
    }
}

/// Why the watch's plan could not be made.
#[derive(Debug)]
pub enum PlanError {
    /// A flag is wrong or missing (exit 64).
    Usage(String),
    /// The scenario file is wrong (exit 65).
    Scenario(String),
}

impl From<String> for PlanError {
    fn from(s: String) -> Self {
        PlanError::Usage(s)
    }
}

/// Builds the watch's plan from the scenario (if any) and the flags.
pub fn plan(a: &WatchArgs) -> Result<Plan, PlanError> {
    let mut plan = match &a.scenario {
        Some(path) => {
            let sets = overrides(&a.set)?;
            let mut p = crate::scenario::load(path, &sets).map_err(|e| match e {
                crate::scenario::ScenarioError::Override { .. } => PlanError::Usage(e.to_string()),
                _ => PlanError::Scenario(e.to_string()),
            })?;
            if matches!(p.target, TargetPlan::Spawn(_)) && attach_of(a).is_none() {
                return Err(PlanError::Scenario(format!(
                    "{}: the scenario starts its own target; `leakgate watch` attaches to one \
                     that runs: give --pid, --cgroup, --systemd-unit, --container or \
                     --process-name (or use `leakgate run`)",
                    path.display()
                )));
            }
            p.description = format!("watching: {}", p.description);
            p
        }
        None if !a.set.is_empty() => {
            return Err(PlanError::Usage(
                "--set applies to a scenario file; give one, or use flags".into(),
            ));
        }
        None => base_plan(),
    };
    if let Some(t) = attach_of(a) {
        plan.target = TargetPlan::Attach(t);
    }
    if !matches!(plan.target, TargetPlan::Attach(_)) {
        return Err(PlanError::Usage(
            "say which service to watch: --pid, --pid-file, --cgroup, --systemd-unit, \
             --container or --process-name"
                .into(),
        ));
    }
    if let Some(url) = &a.requests_from {
        check_probe_url("--requests-from", url)?;
        plan.probes.requests_from = Some(RequestCounter {
            url: url.clone(),
            metric: a.requests_metric.clone(),
        });
    }
    if let Some(url) = &a.prometheus {
        check_probe_url("--prometheus", url)?;
        plan.probes.prometheus = Some(PrometheusProbe {
            url: url.clone(),
            metrics: a.metrics.clone(),
        });
    }
    if a.scenario.is_none() || a.interval != Duration::from_secs(5) {
        plan.probes.interval = a.interval;
    }
    for g in &a.gates {
        let gate = parse_gate(g)?;
        plan.gates.signals.retain(|s| s.signal != gate.signal);
        plan.gates.signals.push(gate);
    }
    if plan.gates.signals.is_empty() {
        plan.gates
            .signals
            .push(parse_gate(if plan.probes.requests_from.is_some() {
                "rss_bytes=256 B/request"
            } else {
                "rss_bytes=10 MiB/h"
            })?);
    }
    if a.min_time_to_limit.is_some() {
        plan.gates.min_time_to_limit = a.min_time_to_limit;
    }
    if a.interval < MIN_PROBE_INTERVAL {
        return Err(PlanError::Usage(format!(
            "--interval must be at least {MIN_PROBE_INTERVAL:?}, got {:?}",
            a.interval
        )));
    }
    if a.duration.is_some_and(|d| d.is_zero()) {
        return Err(PlanError::Usage("--duration must be longer than 0s".into()));
    }
    if a.evaluate_every < MIN_EVALUATE_EVERY {
        return Err(PlanError::Usage(format!(
            "--evaluate-every must be at least {MIN_EVALUATE_EVERY:?}, got {:?}",
            a.evaluate_every
        )));
    }
    plan.soak = SoakPlan {
        evaluate_every: Some(a.evaluate_every),
        horizon: a.horizon,
        until_verdict: false,
        every_gate: false,
        listen: a.listen.clone(),
        segment: a.segment.map(|s| s.max(Duration::from_secs(1))),
        compact_after: a.compact_after.max(Duration::from_secs(60)),
        decide_after: None,
    };
    super::UntilVerdict::apply(a.until_verdict, &mut plan.soak);
    plan.watch = Some(WatchPlan {
        duration: a.duration,
    });
    plan.output.results_dir = a.results_dir.clone();
    Ok(plan)
}

/// `leakgate watch`.
pub fn watch(a: WatchArgs) -> ExitCode {
    match plan(&a) {
        Ok(p) => super::run::launch(&p, a.no_progress, a.quiet, a.listen_public),
        Err(PlanError::Usage(m)) => {
            eprintln!("leakgate watch: {m}");
            ExitCode::Usage
        }
        Err(PlanError::Scenario(m)) => {
            eprintln!("leakgate watch: {m}");
            ExitCode::BadScenario
        }
    }
}
