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
use super::units::Slope;

/// Default TCP connections.
pub const DEFAULT_CONNECTIONS: usize = 32;
/// Default statistics window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(1);
/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

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
                    start_timeout: t.start_timeout.map_or(Duration::from_secs(60), |d| d.0),
                    memory_limit: t.memory_limit.map(|b| b.0),
                    stop_timeout: t.stop_timeout.map_or(Duration::from_secs(5), |d| d.0),
                    build_bins: self.placeholders.bins_used(),
                    build_go: self.placeholders.go_bins_used(),
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
        let connections = l.connections.unwrap_or(DEFAULT_CONNECTIONS);
        if connections == 0 {
            return Err(self.err(span, "`connections` must be at least 1"));
        }
        let streams = l.streams_per_connection.unwrap_or(match protocol {
            Protocol::Http1 => 1,
            Protocol::Http2 | Protocol::Grpc => 8,
        });
        if streams == 0 || (protocol == Protocol::Http1 && streams != 1) {
            return Err(self.err(
                span,
                "`streams_per_connection` must be >= 1, and 1 for http1 (no pipelining)",
            ));
        }
        let tolerance = l.tolerance.unwrap_or(0.01);
        if !(0.0..1.0).contains(&tolerance) {
            return Err(self.err(
                span,
                format!("`tolerance` must be in 0..1 (0.01 = 1 %), got {tolerance}"),
            ));
        }
        let phases = self.phases(l)?;
        let requests = self.requests(l, protocol)?;
        let grpc = match (&l.grpc, protocol) {
            (Some(g), Protocol::Grpc) => Some(GrpcPlan {
                protos: g.protos.iter().map(|p| self.relative(p)).collect(),
                import_paths: g.import_paths.iter().map(|p| self.relative(p)).collect(),
                protoset: g.protoset.as_deref().map(|p| self.relative(p)),
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
        let window = l.window.map_or(DEFAULT_WINDOW, |d| d.0);
        if window < Duration::from_millis(100) {
            return Err(self.err(span, "`window` must be at least 100ms"));
        }
        Ok(LoadPlan {
            protocol,
            base_url,
            connections,
            streams_per_connection: streams,
            threads: l.threads,
            phases,
            arrivals: l.arrivals.unwrap_or(Arrivals::Uniform),
            requests,
            max_queue: l.max_queue.unwrap_or(10_000),
            timeout: l.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
            rate_tolerance: tolerance,
            window,
            insecure: l.insecure,
            grpc,
            seed: l.seed,
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
        for p in l.phases.get_ref() {
            let span = p.span();
            let p = p.get_ref();
            if p.duration.0.is_zero() {
                return Err(self.err(span, "a phase's `duration` must be > 0"));
            }
            let rate = match *p.rate.get_ref() {
                RateFile::Constant(rps) => Rate::Constant { rps },
                RateFile::Max => Rate::Max,
                RateFile::Ramp { from, to } => Rate::Ramp { from, to },
            };
            out.push(Phase {
                kind: p.kind.unwrap_or(PhaseKind::Steady),
                duration: p.duration.0,
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
                        "`path` must start with `/` (or be a full http:// URL), got \"{path}\""
                    ),
                ));
            }
            let weight = r.weight.unwrap_or(1);
            if weight == 0 {
                return Err(self.err(span, "`weight` must be at least 1"));
            }
            let method = r
                .method
                .clone()
                .unwrap_or_else(|| if r.body.is_some() { "POST" } else { "GET" }.into())
                .to_ascii_uppercase();
            if http::Method::from_bytes(method.as_bytes()).is_err() {
                return Err(self.err(span, format!("`method` \"{method}\" is not an HTTP method")));
            }
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
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                body: r.body.clone(),
                behaviour: Behaviour {
                    abandon_after,
                    cancel_after: r.cancel_after.map(|d| d.0),
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
        let interval = p.interval.map_or(Duration::from_secs(1), |d| d.0);
        if interval < Duration::from_millis(50) {
            return Err(self.err(span.clone(), "[probes] `interval` must be at least 50ms"));
        }
        let url = |r: &mut Self, u: &Option<String>| -> Result<Option<String>, ScenarioError> {
            u.as_deref().map(|u| r.fill(span.clone(), u)).transpose()
        };
        let prometheus = match &p.prometheus {
            Some(pr) => Some(PrometheusProbe {
                url: self.fill(span.clone(), &pr.url)?,
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
            expvar_url: url(self, &p.expvar_url)?,
            goroutine_url: url(self, &p.goroutine_url)?,
            heap_profile_url: url(self, &p.heap_profile_url)?,
            drain_wait: p.drain_wait.map_or(Duration::from_secs(2), |d| d.0),
            force_gc_url: url(self, &p.force_gc_url)?,
            heap_profile_every: p.heap_profile_every.map(|d| d.0),
            heap_profiles_kept: p.heap_profiles_kept.unwrap_or(3).max(1),
            requests_from: match &p.requests_from {
                Some(r) => Some(RequestCounter {
                    url: self.fill(span.clone(), &r.url)?,
                    metric: r.metric.clone(),
                }),
                None => None,
            },
        })
    }

    fn gates(&mut self, f: &ScenarioFile) -> Result<GatePlan, ScenarioError> {
        let default = GatesFile::default();
        let (g, span) = f
            .gates
            .as_ref()
            .map_or((&default, 0..0), |g| (g.get_ref(), g.span()));
        let warmup_share = g.warmup_share.unwrap_or(0.1);
        if !(0.0..0.9).contains(&warmup_share) {
            return Err(self.err(
                span.clone(),
                format!("[gates] `warmup_share` must be in 0..0.9, got {warmup_share}"),
            ));
        }
        let windows = g.windows.unwrap_or(10);
        if !(4..=1000).contains(&windows) {
            return Err(self.err(
                span.clone(),
                format!("[gates] `windows` must be in 4..=1000, got {windows}"),
            ));
        }
        let confidence = g.confidence.unwrap_or(0.95);
        if !(0.5..1.0).contains(&confidence) {
            return Err(self.err(
                span.clone(),
                format!("[gates] `confidence` must be in 0.5..1, got {confidence}"),
            ));
        }
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
        if let Some(e) = l.error_rate
            && !(0.0..=1.0).contains(&e)
        {
            return Err(self.err(
                span,
                format!("[gates.latency] `error_rate` must be in 0..1, got {e}"),
            ));
        }
        Ok(GatePlan {
            signals,
            latency: LatencyGate {
                p95: l.p95.map(|d| d.0),
                p99: l.p99.map(|d| d.0),
                error_rate: l.error_rate,
            },
            warmup_share,
            windows,
            confidence,
            min_time_to_limit: g.min_time_to_limit.map(|d| d.0),
        })
    }
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
    Ok(())
}
