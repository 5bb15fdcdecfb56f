//! The scenario file as written (TOML), before defaults and placeholders are resolved.
//!
//! Every table denies unknown keys, and values with units parse while deserializing, so the TOML
//! deserializer can point at the exact line and column of any mistake.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::plan::{Arrivals, PhaseKind, Protocol, SignalUnit};
use super::units::{HumanAmount, HumanBytes, HumanDuration, HumanSlope};

/// A whole scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Name (defaults to the file stem).
    pub name: Option<String>,
    /// Free text for reports.
    #[serde(default)]
    pub description: String,
    /// The service under test.
    pub target: Option<Spanned<TargetFile>>,
    /// The traffic (`leakgate run` needs it; `leakgate watch` drives none).
    pub load: Option<Spanned<LoadFile>>,
    /// What is sampled.
    pub probes: Option<Spanned<ProbesFile>>,
    /// What decides the verdict.
    pub gates: Option<Spanned<GatesFile>>,
}

/// `[target]`: spawn a command or attach to a running service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// Program and arguments (spawn mode).
    pub command: Option<Vec<String>>,
    /// Extra environment for the command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (relative to the scenario file).
    pub cwd: Option<String>,
    /// Readiness: an HTTP URL that must answer 2xx.
    pub ready_url: Option<String>,
    /// Readiness: a TCP address that must accept.
    pub ready_port: Option<String>,
    /// How long readiness may take.
    pub start_timeout: Option<Spanned<HumanDuration>>,
    /// Grace period between SIGTERM and SIGKILL at the end.
    pub stop_timeout: Option<Spanned<HumanDuration>>,
    /// Memory limit for the spawned target.
    pub memory_limit: Option<HumanBytes>,
    /// Attach: process id.
    pub pid: Option<u32>,
    /// Attach: file holding the process id.
    pub pid_file: Option<String>,
    /// Attach: cgroup folder.
    pub cgroup: Option<String>,
    /// Attach: the systemd unit's cgroup.
    pub systemd_unit: Option<String>,
    /// Attach: a docker/containerd container's cgroup.
    pub container: Option<String>,
    /// Attach: the process with this name.
    pub process_name: Option<String>,
    /// Where units and containers are looked up (default `/sys/fs/cgroup`).
    pub cgroup_root: Option<String>,
    /// Base URL that request paths are resolved against.
    pub base_url: Option<Spanned<String>>,
}

/// `[load]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadFile {
    /// `http1` (default), `http2` or `grpc`.
    pub protocol: Option<Protocol>,
    /// Base URL (overrides `target.base_url`).
    pub base_url: Option<Spanned<String>>,
    /// TCP connections.
    pub connections: Option<Spanned<usize>>,
    /// Concurrent streams per connection (HTTP/2, gRPC).
    pub streams_per_connection: Option<Spanned<usize>>,
    /// Driver threads.
    pub threads: Option<Spanned<usize>>,
    /// `uniform` (default) or `poisson`.
    pub arrivals: Option<Arrivals>,
    /// Per-request timeout.
    pub timeout: Option<Spanned<HumanDuration>>,
    /// Statistics window.
    pub window: Option<Spanned<HumanDuration>>,
    /// Allowed shortfall of the achieved rate (0.01 = 1 %).
    pub tolerance: Option<Spanned<f64>>,
    /// Requests that may wait for a connection before being dropped.
    pub max_queue: Option<Spanned<usize>>,
    /// Skip TLS certificate checks.
    #[serde(default)]
    pub insecure: bool,
    /// Random seed.
    pub seed: Option<u64>,
    /// The schedule, in order.
    pub phases: Spanned<Vec<Spanned<PhaseFile>>>,
    /// The weighted request mix.
    pub requests: Spanned<Vec<Spanned<RequestFile>>>,
    /// gRPC method resolution.
    pub grpc: Option<GrpcFile>,
}

/// One `[[load.phases]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseFile {
    /// `warmup`, `ramp`, `steady` (default) or `spike`.
    pub kind: Option<PhaseKind>,
    /// How long.
    pub duration: Spanned<HumanDuration>,
    /// `2000`, `"max"`, or `{ from = 100, to = 2000 }`.
    pub rate: Spanned<RateFile>,
}

/// A phase's rate as written: `2000`, `"max"`, or `{ from = 100, to = 2000 }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateFile {
    /// Requests per second.
    Constant(f64),
    /// As fast as the connections allow.
    Max,
    /// A linear ramp.
    Ramp {
        /// Start rate.
        from: f64,
        /// End rate.
        to: f64,
    },
}

impl<'de> Deserialize<'de> for RateFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};
        struct V;
        const EXPECTED: &str =
            "a rate: requests per second (2000), \"max\", or a ramp { from = 100, to = 2000 }";
        impl<'de> Visitor<'de> for V {
            type Value = RateFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RateFile, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RateFile, E> {
                if v > 0.0 && v.is_finite() {
                    Ok(RateFile::Constant(v))
                } else {
                    Err(E::custom(format!(
                        "expected {EXPECTED}; a rate must be > 0, got {v}"
                    )))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RateFile, E> {
                match v {
                    "max" => Ok(RateFile::Max),
                    _ => Err(E::custom(format!("expected {EXPECTED}, got \"{v}\""))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RateFile, A::Error> {
                let (mut from, mut to) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "from" => from = Some(map.next_value::<f64>()?),
                        "to" => to = Some(map.next_value::<f64>()?),
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown key `{other}` in a ramp, expected `from` and `to`"
                            )));
                        }
                    }
                }
                match (from, to) {
                    (Some(from), Some(to)) if from >= 0.0 && to >= 0.0 && from.max(to) > 0.0 => {
                        Ok(RateFile::Ramp { from, to })
                    }
                    (Some(_), Some(_)) => Err(de::Error::custom(
                        "a ramp needs rates >= 0 and at least one of them > 0",
                    )),
                    _ => Err(de::Error::custom("a ramp needs both `from` and `to`")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One `[[load.requests]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFile {
    /// Label.
    pub name: Option<String>,
    /// Relative weight (default 1).
    pub weight: Option<Spanned<u32>>,
    /// HTTP method (default GET, or POST with a body).
    pub method: Option<Spanned<String>>,
    /// Path template (or gRPC `pkg.Service/Method`).
    pub path: Spanned<String>,
    /// Header templates.
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    /// Body template (gRPC: the message as JSON).
    pub body: Option<Spanned<String>>,
    /// Read only this much of the body, then drop the response.
    pub abandon_after: Option<HumanBytes>,
    /// gRPC streams: drop the stream after this many messages.
    pub abandon_after_messages: Option<u64>,
    /// Cancel the request after this delay.
    pub cancel_after: Option<Spanned<HumanDuration>>,
    /// One new connection per request.
    #[serde(default)]
    pub new_connection: bool,
}

/// `[load.grpc]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcFile {
    /// `.proto` files (relative to the scenario file).
    #[serde(default)]
    pub protos: Vec<String>,
    /// Import paths (relative to the scenario file).
    #[serde(default)]
    pub import_paths: Vec<String>,
    /// A FileDescriptorSet file.
    pub protoset: Option<String>,
    /// Use server reflection (default when no protos or protoset are given).
    pub reflection: Option<bool>,
    /// Server-streaming calls.
    #[serde(default)]
    pub streaming: bool,
}

/// `[probes]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesFile {
    /// Sampling interval (default 1s).
    pub interval: Option<Spanned<HumanDuration>>,
    /// `/proc/<pid>` signals (default on when there is a process).
    pub process: Option<bool>,
    /// smaps_rollup (PSS).
    #[serde(default)]
    pub smaps: bool,
    /// Sum over the process tree.
    #[serde(default)]
    pub tree: bool,
    /// cgroup memory (default on when there is a process).
    pub cgroup: Option<bool>,
    /// Prometheus endpoint.
    pub prometheus: Option<PrometheusFile>,
    /// Go expvar URL.
    pub expvar_url: Option<String>,
    /// Go goroutine profile URL (`/debug/pprof/goroutine`).
    pub goroutine_url: Option<String>,
    /// Take a goroutine dump at most this often during the run (default 60s).
    pub goroutine_profile_every: Option<Spanned<HumanDuration>>,
    /// Heap profile URL.
    pub heap_profile_url: Option<String>,
    /// Wait after the load before the drain re-sample (default 2s).
    pub drain_wait: Option<Spanned<HumanDuration>>,
    /// URL that forces a GC before the drain re-sample.
    pub force_gc_url: Option<String>,
    /// Take a heap profile this often during the run (`"1h"`).
    pub heap_profile_every: Option<Spanned<HumanDuration>>,
    /// How many of the latest scheduled heap profiles to keep (default 3).
    pub heap_profiles_kept: Option<usize>,
    /// The target's request counter: `{ url = ".../metrics", metric = "http_requests_total" }`
    /// or an nginx stub_status URL.
    pub requests_from: Option<RequestsFromFile>,
    /// Native heap profiler for a spawned target: `"heaptrack"`.
    pub native: Option<Spanned<String>>,
}

/// `[probes] requests_from`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsFromFile {
    /// Prometheus `/metrics` or nginx `stub_status` URL.
    pub url: String,
    /// Counter name, summed over labels (Prometheus only).
    pub metric: Option<String>,
}

/// `[probes.prometheus]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusFile {
    /// `/metrics` URL.
    pub url: String,
    /// Sample names to keep.
    pub metrics: Vec<String>,
}

/// `[gates]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatesFile {
    /// Share of steady requests treated as warm-up (default 0.1).
    pub warmup_share: Option<Spanned<f64>>,
    /// Equal-work windows (default 10).
    pub windows: Option<Spanned<usize>>,
    /// Confidence level (default 0.95).
    pub confidence: Option<Spanned<f64>>,
    /// Fail when the projected time to the memory limit is shorter.
    pub min_time_to_limit: Option<HumanDuration>,
    /// Go on for up to this long when inconclusive at the planned end.
    pub extend_if_inconclusive: Option<HumanDuration>,
    /// Per-signal slope limits, keyed by signal name.
    #[serde(default)]
    pub signals: BTreeMap<String, Spanned<SignalGateFile>>,
    /// Latency limits.
    #[serde(default)]
    pub latency: LatencyFile,
}

/// `[gates.signals.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalGateFile {
    /// Slope limit per time (`"1 MiB/min"`) or per request (`"64 B/request"`).
    pub max_slope: Option<HumanSlope>,
    /// Slope limit per request (`"64 B"` or a count).
    pub max_per_request: Option<HumanAmount>,
    /// After the load, must come back within this of the baseline.
    pub drain_to_baseline: Option<HumanAmount>,
    /// `bytes` or `count` (default: bytes when the name ends in `_bytes`).
    pub unit: Option<SignalUnit>,
}

/// `[gates.latency]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyFile {
    /// p95 limit.
    pub p95: Option<HumanDuration>,
    /// p99 limit.
    pub p99: Option<HumanDuration>,
    /// Error-rate limit, 0..1.
    pub error_rate: Option<Spanned<f64>>,
}
