//! Turns a parsed scenario file into a validated [`Plan`]: defaults, placeholders, checks.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::error::ScenarioError;
use super::file::{GatesFile, LoadFile, ProbesFile, RateFile, ScenarioFile, TargetFile};
use super::placeholders::Placeholders;
use super::plan::*;
use super::units::{MAX_DURATION_SECS, Slope};

/// Default TCP connections.
pub const DEFAULT_CONNECTIONS: usize = 32;
/// Default statistics window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(1);
/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default depth of the queue of arrivals waiting for a connection.
pub const DEFAULT_MAX_QUEUE: usize = 10_000;

// Limits. A scenario key and the flag that means the same thing share each one (the `check_*`
// functions below take the name to show: `` `connections` `` or `--connections`).

/// Highest arrival rate a schedule may plan, per second: arrivals leave in 4 ms ticks, and
/// 40 000 requests a tick is far beyond what one machine can send.
pub const MAX_RATE: f64 = 10_000_000.0;
/// File descriptors kept for leakgate's own files, probes and listeners besides connections.
pub const RESERVED_FDS: u64 = 64;
/// Most concurrent streams on one HTTP/2 connection: servers allow 100–250
/// (SETTINGS_MAX_CONCURRENT_STREAMS); past that, requests only wait in the client.
pub const MAX_STREAMS_PER_CONNECTION: usize = 1000;
/// Most request slots (connections × streams): each is a task with ~1 KiB of buffers.
pub const MAX_IN_FLIGHT: usize = 1_000_000;
/// Most driver threads: more threads than cores only contend, and no machine has this many.
pub const MAX_THREADS: usize = 1024;
/// Shortest request timeout (and `cancel_after`): tokio's timers count whole milliseconds.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// Longest request timeout (and `cancel_after`): a request open for a day hangs, and the gRPC
/// `grpc-timeout` header tops out at 99 999 999 ms (27.8 h).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);
/// Shortest statistics window: a window spans many 4 ms dispatch ticks and probe samples.
pub const MIN_WINDOW: Duration = Duration::from_millis(100);
/// Longest statistics window: a window is one point of the charts and of the rolling verdict.
pub const MAX_WINDOW: Duration = Duration::from_secs(3600);
/// Deepest queue of arrivals waiting for a connection: a few dozen bytes each, under a GiB.
pub const MAX_QUEUE: usize = 10_000_000;
/// Longest load (all phases together): the driver lays the schedule out per window at start;
/// a longer soak is `leakgate watch`'s job, which judges a service for as long as it runs.
pub const MAX_LOAD_DURATION: Duration = Duration::from_secs(30 * 86_400);
/// Shortest probe interval: reading /proc and a /metrics page takes milliseconds.
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// Shortest period between rolling verdicts: each judges every sample of its horizon.
pub const MIN_EVALUATE_EVERY: Duration = Duration::from_millis(100);
/// Shortest period between scheduled heap profiles: each costs the target a walk of its heap.
pub const MIN_HEAP_PROFILE_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for a spawned target to become ready, to stop, or to drain after the load:
/// a target that needs more than an hour is hung, and the run would wait for nothing.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
/// `[gates] warmup_share` (and `analyze --warmup-share`): at least a tenth must be judged.
pub const WARMUP_SHARE: Range<f64> = 0.0..0.9;
/// `[gates] windows` (and `analyze --windows`): the trend test needs four points; more than a
/// thousand windows hold too few requests each for a floor.
pub const WINDOWS: std::ops::RangeInclusive<usize> = 4..=1000;

/// The open-files limit (RLIMIT_NOFILE, soft) less [`RESERVED_FDS`]: the most connections
/// this process can hold open.
pub fn max_connections() -> u64 {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    soft.saturating_sub(RESERVED_FDS).max(1)
}

/// Checks a connection count (`name` as the message shows it) against 1 and the open-files
/// limit, and connections × streams against [`MAX_IN_FLIGHT`].
pub fn check_connections(name: &str, connections: usize, streams: usize) -> Result<(), String> {
    if connections == 0 {
        return Err(format!("{name} must be at least 1, got 0"));
    }
    let max = max_connections();
    if connections as u64 > max {
        return Err(format!(
            "{name} = {connections} is more than this process may open: the open-files limit \
             (RLIMIT_NOFILE) allows {max} connections ({} less {RESERVED_FDS} for leakgate's own \
             files); raise it with `ulimit -n` or use fewer",
            max + RESERVED_FDS
        ));
    }
    if connections.saturating_mul(streams) > MAX_IN_FLIGHT {
        return Err(format!(
            "{name} = {connections} with {streams} streams each is more than {MAX_IN_FLIGHT} \
             requests in flight (each holds a task and its buffers)"
        ));
    }
    Ok(())
}

/// Checks concurrent streams per connection: 1 for HTTP/1.1, 1..=[`MAX_STREAMS_PER_CONNECTION`].
pub fn check_streams(name: &str, streams: usize, protocol: Protocol) -> Result<(), String> {
    if protocol == Protocol::Http1 && streams != 1 {
        return Err(format!(
            "{name} = {streams}: HTTP/1.1 carries one request at a time per connection (no \
             pipelining); streams are for http2 and grpc"
        ));
    }
    if !(1..=MAX_STREAMS_PER_CONNECTION).contains(&streams) {
        return Err(format!(
            "{name} must be from 1 to {MAX_STREAMS_PER_CONNECTION} (servers allow 100-250 \
             concurrent streams), got {streams}"
        ));
    }
    Ok(())
}

/// Checks a number of driver threads: 1..=[`MAX_THREADS`].
pub fn check_threads(name: &str, threads: usize) -> Result<(), String> {
    if (1..=MAX_THREADS).contains(&threads) {
        Ok(())
    } else {
        Err(format!(
            "{name} must be from 1 to {MAX_THREADS}, got {threads}"
        ))
    }
}

/// Checks a constant rate or a ramp's end: finite, above 0 (`zero_ok` for a ramp's end), at
/// most [`MAX_RATE`].
pub fn check_rate(name: &str, rps: f64, zero_ok: bool) -> Result<(), String> {
    let low_ok = if zero_ok { rps >= 0.0 } else { rps > 0.0 };
    if !low_ok || rps.is_nan() {
        return Err(format!("{name} must be > 0 requests per second, got {rps}"));
    }
    if rps > MAX_RATE {
        return Err(format!(
            "{name} = {rps} is more than the scheduler can plan: at most {MAX_RATE:.0} requests \
             per second"
        ));
    }
    Ok(())
}

/// Checks a duration against `min..=max` (a `min` of 1 ns reads "longer than 0s").
pub fn check_duration(name: &str, d: Duration, min: Duration, max: Duration) -> Result<(), String> {
    if d < min {
        if min.is_zero() || min == Duration::from_nanos(1) {
            return Err(format!("{name} must be longer than 0s, got {d:?}"));
        }
        return Err(format!("{name} must be at least {min:?}, got {d:?}"));
    }
    if d > max {
        return Err(format!("{name} must be at most {max:?}, got {d:?}"));
    }
    Ok(())
}

/// Checks the shortfall of the achieved rate that still counts as holding it: 0..1.
pub fn check_tolerance(name: &str, tolerance: f64) -> Result<(), String> {
    if (0.0..1.0).contains(&tolerance) {
        Ok(())
    } else {
        Err(format!(
            "{name} must be in 0..1 (0.01 = 1 %), got {tolerance}"
        ))
    }
}

/// Checks the depth of the queue of arrivals waiting for a connection: 1..=[`MAX_QUEUE`].
pub fn check_max_queue(name: &str, max_queue: usize) -> Result<(), String> {
    if (1..=MAX_QUEUE).contains(&max_queue) {
        Ok(())
    } else {
        Err(format!(
            "{name} must be from 1 to {MAX_QUEUE} (0 would drop every request that finds the \
             connections busy), got {max_queue}"
        ))
    }
}

/// Checks `[gates] warmup_share` / `--warmup-share`.
pub fn check_warmup_share(name: &str, share: f64) -> Result<(), String> {
    if WARMUP_SHARE.contains(&share) {
        Ok(())
    } else {
        Err(format!("{name} must be in 0..0.9, got {share}"))
    }
}

/// Checks `[gates] windows` / `--windows`.
pub fn check_windows(name: &str, windows: usize) -> Result<(), String> {
    if WINDOWS.contains(&windows) {
        Ok(())
    } else {
        Err(format!("{name} must be in 4..=1000, got {windows}"))
    }
}

/// A URL with the byte span it was written at.
type SpannedUrl = (String, Range<usize>);

/// Context for resolving one file: where it is and its text (for positions).
pub struct Resolver<'a> {
    path: &'a Path,
    text: &'a str,
    placeholders: &'a mut Placeholders,
}

impl<'a> Resolver<'a> {
    /// A resolver for `text` read from `path`.
    pub fn new(path: &'a Path, text: &'a str, placeholders: &'a mut Placeholders) -> Self {
        Self {
            path,
            text,
            placeholders,
        }
    }

    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        ScenarioError::at(self.path, self.text, span, message)
    }

    fn fill(&mut self, span: Range<usize>, value: &str) -> Result<String, ScenarioError> {
        self.placeholders
            .fill(value)
            .map_err(|m| ScenarioError::at(self.path, self.text, span, m))
    }

    /// The value of an optional key, checked by `check`: an error points at the value.
    fn value<T: Clone>(
        &self,
        v: &Option<Spanned<T>>,
        check: impl FnOnce(&T) -> Result<(), String>,
    ) -> Result<Option<T>, ScenarioError> {
        match v {
            Some(v) => {
                check(v.get_ref()).map_err(|m| self.err(v.span(), m))?;
                Ok(Some(v.get_ref().clone()))
            }
            None => Ok(None),
        }
    }

    fn relative(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            self.placeholders.scenario_dir().join(p)
        }
    }

    /// Resolves the whole file.
    pub fn plan(&mut self, file: ScenarioFile) -> Result<Plan, ScenarioError> {
        let name = file.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map_or("scenario".into(), |s| s.to_string_lossy().into_owned())
        });
        let (target, target_base) = match &file.target {
            Some(t) => self.target(t)?,
            None => (TargetPlan::UrlOnly, None),
        };
        let load = match &file.load {
            Some(l) => self.load(l, target_base, file.target.is_some())?,
            None => LoadPlan::none(target_base.map(|b| b.0).unwrap_or_default()),
        };
        let has_process = !matches!(target, TargetPlan::UrlOnly);
        let probes = self.probes(&file, has_process)?;
        self.check_native(&file, &target)?;
        let gates = self.gates(&file)?;
        Ok(Plan {
            name,
            source: Some(self.path.to_path_buf()),
            description: file.description,
            target,
            load,
            probes,
            gates,
            output: OutputPlan {
                results_dir: PathBuf::from("results"),
                progress: true,
            },
            soak: SoakPlan::default(),
            watch: None,
        })
    }

    fn target(
        &mut self,
        t: &Spanned<TargetFile>,
    ) -> Result<(TargetPlan, Option<SpannedUrl>), ScenarioError> {
        let span = t.span();
        let t = t.get_ref();
        let base = match &t.base_url {
            Some(b) => Some((self.fill(b.span(), b.get_ref())?, b.span())),
            None => None,
        };
        let start_timeout = self.value(&t.start_timeout, |d| {
            check_duration("`start_timeout`", d.0, Duration::from_nanos(1), MAX_WAIT)
        })?;
        let stop_timeout = self.value(&t.stop_timeout, |d| {
            check_duration("`stop_timeout`", d.0, Duration::ZERO, MAX_WAIT)
        })?;
        let attach = t.pid.is_some()
            || t.pid_file.is_some()
            || t.cgroup.is_some()
            || t.systemd_unit.is_some()
            || t.container.is_some()
            || t.process_name.is_some();
        let plan = match (&t.command, attach) {
            (Some(_), true) => {
                return Err(self.err(
                    span,
                    "[target] has both `command` (spawn) and an attach key (`pid`, `pid_file`, \
                     `cgroup`, `systemd_unit`, `container`, `process_name`); keep one",
                ));
            }
            (Some(cmd), false) => {
                if cmd.is_empty() {
                    return Err(self.err(
                        span,
                        "`command` is empty: give the program and its arguments",
                    ));
                }
                let mut command = Vec::with_capacity(cmd.len());
                for arg in cmd {
                    command.push(self.fill(span.clone(), arg)?);
                }
                let mut env = BTreeMap::new();
                for (k, v) in &t.env {
                    env.insert(k.clone(), self.fill(span.clone(), v)?);
                }
                let ready = match (&t.ready_url, &t.ready_port) {
                    (Some(_), Some(_)) => {
                        return Err(
                            self.err(span, "give either `ready_url` or `ready_port`, not both")
                        );
                    }
                    (Some(u), None) => Readiness::Url {
                        url: self.fill(span.clone(), u)?,
                    },
                    (None, Some(p)) => Readiness::Port {
                        addr: self.fill(span.clone(), p)?,
                    },
                    (None, None) => {
                        return Err(self.err(
                            span,
                            "a spawned target needs `ready_url` (HTTP 2xx) or `ready_port` \
                             (TCP accept) so leakgate knows when to start the load",
                        ));
                    }
                };
                TargetPlan::Spawn(SpawnPlan {
                    command,
                    env,
                    cwd: Some(match &t.cwd {
                        Some(c) => self.relative(c),
                        None => self.placeholders.scenario_dir().to_path_buf(),
                    }),
                    ready,
                    start_timeout: start_timeout.map_or(Duration::from_secs(60), |d| d.0),
                    memory_limit: t.memory_limit.map(|b| b.0),
                    stop_timeout: stop_timeout.map_or(Duration::from_secs(5), |d| d.0),
                    build_bins: self.placeholders.bins_used(),
                    build_go: self.placeholders.go_bins_used(),
                    build_python: self.placeholders.python_bins_used(),
                    build_java: self.placeholders.java_bins_used(),
                })
            }
            (None, true) => TargetPlan::Attach(AttachPlan {
                pid: t.pid,
                pid_file: t.pid_file.as_deref().map(|p| self.relative(p)),
                cgroup: t.cgroup.as_deref().map(|p| self.relative(p)),
                systemd_unit: t.systemd_unit.clone(),
                container: t.container.clone(),
                process_name: t.process_name.clone(),
                cgroup_root: t.cgroup_root.as_deref().map(|p| self.relative(p)),
            }),
            (None, false) => {
                if base.is_none() {
                    return Err(self.err(
                        span,
                        "[target] needs `command` (spawn), `pid`/`pid_file`/`cgroup` (attach) \
                         or `base_url` (drive a URL without watching a process)",
                    ));
                }
                TargetPlan::UrlOnly
            }
        };
        Ok((plan, base))
    }

    fn load(
        &mut self,
        l: &Spanned<LoadFile>,
        target_base: Option<SpannedUrl>,
        has_target_table: bool,
    ) -> Result<LoadPlan, ScenarioError> {
        let span = l.span();
        let l = l.get_ref();
        let (base_url, base_span) = match &l.base_url {
            Some(b) => (self.fill(b.span(), b.get_ref())?, b.span()),
            None => match target_base {
                Some(b) => b,
                None if has_target_table => {
                    return Err(self.err(span, "no base URL: set `base_url` in [target] or [load]"));
                }
                None => {
                    return Err(self.err(
                        span,
                        "no target: add a [target] table (command = [...] to spawn, pid = ... \
                         to attach) or `base_url` in [load]",
                    ));
                }
            },
        };
        check_base_url(&base_url).map_err(|m| self.err(base_span, m))?;
        let protocol = l.protocol.unwrap_or(Protocol::Http1);
        let streams = self.value(&l.streams_per_connection, |&s| {
            check_streams("`streams_per_connection`", s, protocol)
        })?;
        let streams = streams.unwrap_or(match protocol {
            Protocol::Http1 => 1,
            Protocol::Http2 | Protocol::Grpc => 8,
        });
        let connections = self.value(&l.connections, |&c| {
            check_connections("`connections`", c, streams)
        })?;
        let connections = connections.unwrap_or(DEFAULT_CONNECTIONS);
        let threads = self.value(&l.threads, |&t| check_threads("`threads`", t))?;
        let tolerance = self.value(&l.tolerance, |&t| check_tolerance("`tolerance`", t))?;
        let tolerance = tolerance.unwrap_or(0.01);
        let timeout = self.value(&l.timeout, |t| {
            check_duration("`timeout`", t.0, MIN_TIMEOUT, MAX_TIMEOUT)
        })?;
        let window = self.value(&l.window, |w| {
            check_duration("`window`", w.0, MIN_WINDOW, MAX_WINDOW)
        })?;
        let max_queue = self.value(&l.max_queue, |&q| check_max_queue("`max_queue`", q))?;
        let phases = self.phases(l)?;
        let requests = self.requests(l, protocol)?;
        // Placeholders work in paths too (`{scenario_dir}/../proto/x.proto`).
        let path = |r: &mut Self, p: &str| r.fill(span.clone(), p).map(|p| r.relative(&p));
        let grpc = match (&l.grpc, protocol) {
            (Some(g), Protocol::Grpc) => Some(GrpcPlan {
                protos: g
                    .protos
                    .iter()
                    .map(|p| path(self, p))
                    .collect::<Result<_, _>>()?,
                import_paths: g
                    .import_paths
                    .iter()
                    .map(|p| path(self, p))
                    .collect::<Result<_, _>>()?,
                protoset: g.protoset.as_deref().map(|p| path(self, p)).transpose()?,
                reflection: g
                    .reflection
                    .unwrap_or(g.protos.is_empty() && g.protoset.is_none()),
                streaming: g.streaming,
            }),
            (None, Protocol::Grpc) => Some(GrpcPlan {
                protos: vec![],
                import_paths: vec![],
                protoset: None,
                reflection: true,
                streaming: false,
            }),
            (Some(_), _) => {
                return Err(self.err(span, "[load.grpc] is only valid with protocol = \"grpc\""));
            }
            (None, _) => None,
        };
        Ok(LoadPlan {
            protocol,
            base_url,
            connections,
            streams_per_connection: streams,
            threads,
            phases,
            arrivals: l.arrivals.unwrap_or(Arrivals::Uniform),
            requests,
            max_queue: max_queue.unwrap_or(DEFAULT_MAX_QUEUE),
            timeout: timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
            rate_tolerance: tolerance,
            window: window.map_or(DEFAULT_WINDOW, |d| d.0),
            insecure: l.insecure,
            grpc,
            seed: l.seed,
            shard: None,
        })
    }

    fn phases(&mut self, l: &LoadFile) -> Result<Vec<Phase>, ScenarioError> {
        if l.phases.get_ref().is_empty() {
            return Err(self.err(
                l.phases.span(),
                "`phases` is empty: add at least one [[load.phases]]",
            ));
        }
        let mut out = Vec::new();
        let mut total = Duration::ZERO;
        for p in l.phases.get_ref() {
            let p = p.get_ref();
            let duration = p.duration.get_ref().0;
            let at = p.duration.span();
            check_duration(
                "a phase's `duration`",
                duration,
                Duration::from_nanos(1),
                MAX_LOAD_DURATION,
            )
            .map_err(|m| self.err(at.clone(), m))?;
            total = total.saturating_add(duration);
            if total > MAX_LOAD_DURATION {
                return Err(self.err(
                    at,
                    format!(
                        "the phases add up to {total:?}, more than {MAX_LOAD_DURATION:?} (30 days); \
                         a longer soak is `leakgate watch`'s job"
                    ),
                ));
            }
            let rate_err = |m| self.err(p.rate.span(), m);
            let rate = match *p.rate.get_ref() {
                RateFile::Constant(rps) => {
                    check_rate("`rate`", rps, false).map_err(rate_err)?;
                    Rate::Constant { rps }
                }
                RateFile::Max => Rate::Max,
                RateFile::Ramp { from, to } => {
                    check_rate("a ramp's `from`", from, true).map_err(rate_err)?;
                    check_rate("a ramp's `to`", to, true).map_err(rate_err)?;
                    Rate::Ramp { from, to }
                }
            };
            out.push(Phase {
                kind: p.kind.unwrap_or(PhaseKind::Steady),
                duration,
                rate,
            });
        }
        let has_max = out.iter().any(|p| p.rate == Rate::Max);
        if has_max && out.len() > 1 {
            return Err(self.err(
                l.phases.span(),
                "rate = \"max\" (closed loop) cannot be mixed with scheduled phases",
            ));
        }
        Ok(out)
    }

    fn requests(
        &mut self,
        l: &LoadFile,
        protocol: Protocol,
    ) -> Result<Vec<RequestSpec>, ScenarioError> {
        if l.requests.get_ref().is_empty() {
            return Err(self.err(
                l.requests.span(),
                "`requests` is empty: add at least one [[load.requests]]",
            ));
        }
        let mut out = Vec::new();
        for (i, r) in l.requests.get_ref().iter().enumerate() {
            let span = r.span();
            let r = r.get_ref();
            let path = r.path.get_ref().clone();
            if protocol == Protocol::Grpc {
                let m = path.trim_start_matches('/');
                if !m.contains('/') || m.starts_with('/') || m.ends_with('/') {
                    return Err(self.err(
                        r.path.span(),
                        format!("a gRPC path is `package.Service/Method`, got \"{path}\""),
                    ));
                }
            } else if !(path.starts_with('/')
                || path.starts_with("http://")
                || path.starts_with("https://"))
            {
                return Err(self.err(
                    r.path.span(),
                    format!(
                        "`path` must start with `/` (or be a full http:// URL of the base \
                         URL's origin), got \"{path}\""
                    ),
                ));
            }
            check_template("`path`", &path).map_err(|m| self.err(r.path.span(), m))?;
            let weight = self.value(&r.weight, |&w| {
                if w == 0 {
                    Err("`weight` must be at least 1".to_string())
                } else {
                    Ok(())
                }
            })?;
            let weight = weight.unwrap_or(1);
            let method_span = r.method.as_ref().map_or(span.clone(), |m| m.span());
            let method = r
                .method
                .as_ref()
                .map(|m| m.get_ref().clone())
                .unwrap_or_else(|| if r.body.is_some() { "POST" } else { "GET" }.into())
                .to_ascii_uppercase();
            if http::Method::from_bytes(method.as_bytes()).is_err() {
                return Err(self.err(
                    method_span,
                    format!("`method` \"{method}\" is not an HTTP method"),
                ));
            }
            for (name, value) in &r.headers {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(self.err(
                        value.span(),
                        format!("header name \"{name}\" is not a valid HTTP header name"),
                    ));
                }
                check_template(&format!("header `{name}`"), value.get_ref())
                    .map_err(|m| self.err(value.span(), m))?;
            }
            if let Some(body) = &r.body {
                check_template("`body`", body.get_ref()).map_err(|m| self.err(body.span(), m))?;
            }
            let cancel_after = self.value(&r.cancel_after, |d| {
                check_duration("`cancel_after`", d.0, MIN_TIMEOUT, MAX_TIMEOUT)
            })?;
            let abandon_after = match (r.abandon_after, r.abandon_after_messages, protocol) {
                (Some(_), Some(_), _) => {
                    return Err(self.err(
                        span,
                        "give `abandon_after` (bytes) or `abandon_after_messages`, not both",
                    ));
                }
                (_, Some(n), Protocol::Grpc) => Some(n),
                (_, Some(_), _) => {
                    return Err(self.err(
                        span,
                        "`abandon_after_messages` is for gRPC streams; use `abandon_after` (bytes)",
                    ));
                }
                (Some(b), None, _) => Some(b.0),
                (None, None, _) => None,
            };
            out.push(RequestSpec {
                name: r
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("request{}", i + 1)),
                weight,
                method,
                path,
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                    .collect(),
                body: r.body.as_ref().map(|b| b.get_ref().clone()),
                behaviour: Behaviour {
                    abandon_after,
                    cancel_after: cancel_after.map(|d| d.0),
                    new_connection: r.new_connection,
                },
            });
        }
        Ok(out)
    }

    fn probes(&mut self, f: &ScenarioFile, has_process: bool) -> Result<ProbePlan, ScenarioError> {
        let default = ProbesFile::default();
        let (p, span) = f
            .probes
            .as_ref()
            .map_or((&default, 0..0), |p| (p.get_ref(), p.span()));
        let interval = self.value(&p.interval, |d| {
            check_duration(
                "[probes] `interval`",
                d.0,
                MIN_PROBE_INTERVAL,
                Duration::from_secs_f64(MAX_DURATION_SECS),
            )
        })?;
        let interval = interval.map_or(Duration::from_secs(1), |d| d.0);
        let drain_wait = self.value(&p.drain_wait, |d| {
            check_duration("[probes] `drain_wait`", d.0, Duration::ZERO, MAX_WAIT)
        })?;
        let heap_profile_every = self.value(&p.heap_profile_every, |d| {
            check_duration(
                "[probes] `heap_profile_every`",
                d.0,
                MIN_HEAP_PROFILE_EVERY,
                Duration::from_secs_f64(MAX_DURATION_SECS),
            )
        })?;
        let goroutine_profile_every = self.value(&p.goroutine_profile_every, |d| {
            check_duration(
                "[probes] `goroutine_profile_every`",
                d.0,
                MIN_HEAP_PROFILE_EVERY,
                Duration::from_secs_f64(MAX_DURATION_SECS),
            )
        })?;
        let probe_url = |r: &mut Self, name: &str, u: &str| -> Result<String, ScenarioError> {
            let u = r.fill(span.clone(), u)?;
            check_probe_url(&format!("[probes] `{name}`"), &u)
                .map_err(|m| r.err(span.clone(), m))?;
            Ok(u)
        };
        let url = |r: &mut Self, name: &str, u: &Option<String>| {
            u.as_deref().map(|u| probe_url(r, name, u)).transpose()
        };
        let prometheus = match &p.prometheus {
            Some(pr) => Some(PrometheusProbe {
                url: probe_url(self, "prometheus.url", &pr.url)?,
                metrics: pr.metrics.clone(),
            }),
            None => None,
        };
        Ok(ProbePlan {
            interval,
            process: p.process.unwrap_or(has_process),
            smaps: p.smaps,
            tree: p.tree,
            cgroup: p.cgroup.unwrap_or(has_process),
            prometheus,
            expvar_url: url(self, "expvar_url", &p.expvar_url)?,
            goroutine_url: url(self, "goroutine_url", &p.goroutine_url)?,
            goroutine_profile_every: goroutine_profile_every.map_or(
                crate::scenario::plan::DEFAULT_GOROUTINE_PROFILE_EVERY,
                |d| d.0,
            ),
            heap_profile_url: url(self, "heap_profile_url", &p.heap_profile_url)?,
            drain_wait: drain_wait.map_or(Duration::from_secs(2), |d| d.0),
            force_gc_url: url(self, "force_gc_url", &p.force_gc_url)?,
            heap_profile_every: heap_profile_every.map(|d| d.0),
            heap_profiles_kept: p.heap_profiles_kept.unwrap_or(3).max(1),
            native: match &p.native {
                Some(n) => Some(NativeProfiler::from_name(n.get_ref()).ok_or_else(|| {
                    self.err(
                        n.span(),
                        format!(
                            "[probes] `native` = \"{}\" is not a native heap profiler leakgate \
                             runs; known: {}",
                            n.get_ref(),
                            NativeProfiler::NAMES.join(", ")
                        ),
                    )
                })?),
                None => None,
            },
            requests_from: match &p.requests_from {
                Some(r) => Some(RequestCounter {
                    url: probe_url(self, "requests_from.url", &r.url)?,
                    metric: r.metric.clone(),
                }),
                None => None,
            },
        })
    }

    /// A native profiler is preloaded into a process as it starts: only a spawned target has one.
    fn check_native(&self, f: &ScenarioFile, target: &TargetPlan) -> Result<(), ScenarioError> {
        let Some(n) = f.probes.as_ref().and_then(|p| p.get_ref().native.as_ref()) else {
            return Ok(());
        };
        let why = match target {
            TargetPlan::Spawn(_) => return Ok(()),
            TargetPlan::Attach(_) => {
                "the target is attached: heaptrack's library is preloaded into a process as \
                 leakgate starts it, and this one already runs (give [target] a `command`, or see \
                 the README for bcc's memleak on a running process)"
            }
            TargetPlan::UrlOnly => {
                "there is no target process, only a URL (give [target] a `command`)"
            }
        };
        Err(self.err(
            n.span(),
            format!(
                "[probes] `native` = \"{}\" needs a spawned target: {why}",
                n.get_ref()
            ),
        ))
    }

    fn gates(&mut self, f: &ScenarioFile) -> Result<GatePlan, ScenarioError> {
        let default = GatesFile::default();
        let g = f.gates.as_ref().map_or(&default, |g| g.get_ref());
        let warmup_share = self.value(&g.warmup_share, |&w| {
            check_warmup_share("[gates] `warmup_share`", w)
        })?;
        let warmup_share = warmup_share.unwrap_or(0.1);
        let windows = self.value(&g.windows, |&w| check_windows("[gates] `windows`", w))?;
        let windows = windows.unwrap_or(10);
        let confidence = self.value(&g.confidence, |&c| {
            if (0.5..1.0).contains(&c) {
                Ok(())
            } else {
                Err(format!("[gates] `confidence` must be in 0.5..1, got {c}"))
            }
        })?;
        let confidence = confidence.unwrap_or(0.95);
        let mut signals = Vec::new();
        for (name, s) in &g.signals {
            let gate_span = s.span();
            let s = s.get_ref();
            let (mut per_s, mut per_req) = (None, s.max_per_request.map(|a| a.0));
            match s.max_slope.map(|s| s.0) {
                Some(Slope::PerSecond(v)) => per_s = Some(v),
                Some(Slope::PerRequest(v)) if per_req.is_none() => per_req = Some(v),
                Some(Slope::PerRequest(_)) => {
                    return Err(self.err(gate_span, "per-request limit given twice (`max_slope` .../request and `max_per_request`)"));
                }
                None => {}
            }
            let drain = s.drain_to_baseline.map(|a| a.0);
            if per_s.is_none() && per_req.is_none() && drain.is_none() {
                return Err(self.err(
                    gate_span,
                    format!("gate `{name}` has no limit: set `max_slope` (\"1 MiB/min\"), `max_per_request` or `drain_to_baseline`"),
                ));
            }
            signals.push(SignalGate {
                signal: name.clone(),
                max_per_second: per_s,
                max_per_request: per_req,
                drain_to_baseline: drain,
                unit: s.unit.unwrap_or(if name.ends_with("_bytes") {
                    SignalUnit::Bytes
                } else {
                    SignalUnit::Count
                }),
            });
        }
        let l = &g.latency;
        let error_rate = self.value(&l.error_rate, |&e| {
            if (0.0..=1.0).contains(&e) {
                Ok(())
            } else {
                Err(format!(
                    "[gates.latency] `error_rate` must be in 0..1, got {e}"
                ))
            }
        })?;
        Ok(GatePlan {
            signals,
            latency: LatencyGate {
                p95: l.p95.map(|d| d.0),
                p99: l.p99.map(|d| d.0),
                error_rate,
            },
            warmup_share,
            windows,
            confidence,
            min_time_to_limit: g.min_time_to_limit.map(|d| d.0),
            extend_if_inconclusive: g.extend_if_inconclusive.map(|d| d.0),
        })
    }
}

/// Checks that a probe URL is one the probes can read: `http://host[:port]/...`.
pub fn check_probe_url(name: &str, url: &str) -> Result<(), String> {
    if !url.starts_with("http://") {
        return Err(format!("{name} \"{url}\": only http:// URLs can be probed"));
    }
    check_base_url(url).map_err(|e| e.replace("`base_url`", name))
}

/// Checks that `text` compiles as a request template (`{{seq}}`, ...).
pub fn check_template(name: &str, text: &str) -> Result<(), String> {
    crate::load::template::Template::compile(text)
        .map(|_| ())
        .map_err(|e| format!("{name}: {e}"))
}

/// Checks that a base URL is `http(s)://host[:port][/path]`.
pub fn check_base_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("`base_url` \"{url}\" is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(format!(
                "`base_url` \"{url}\" must start with http:// or https://"
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`base_url` \"{url}\" has no host"));
    }
    // `http::Uri` takes any digits as a port (and reads a port past 65535 as none at all).
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let after_host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(_, rest)| rest),
        None => host_port.find(':').map_or("", |i| &host_port[i..]),
    };
    if let Some(port) = after_host.strip_prefix(':').filter(|p| !p.is_empty())
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(format!(
            "`base_url` \"{url}\": port {port} is not a TCP port (1 to 65535)"
        ));
    }
    Ok(())
}
