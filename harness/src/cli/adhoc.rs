//! Ad-hoc runs against a URL (`leakgate run http://...`), oha/vegeta style: flags into a Plan.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::scenario::plan::*;
use crate::scenario::resolve::*;
use crate::scenario::units::{parse_bytes, parse_duration};

/// Flags that shape an ad-hoc URL run (they override a scenario's values where they apply).
#[derive(Debug, Args, Default)]
pub struct AdhocArgs {
    /// TCP connections.
    #[arg(long, short = 'c', allow_negative_numbers = true)]
    pub connections: Option<usize>,
    /// Use HTTP/2 (h2c with prior knowledge over http://, ALPN over https://).
    #[arg(long)]
    pub http2: bool,
    /// Concurrent streams per HTTP/2 connection.
    #[arg(long, allow_negative_numbers = true)]
    pub streams: Option<usize>,
    /// HTTP method.
    #[arg(long, short = 'm', default_value = "GET")]
    pub method: String,
    /// Header `Name: value` (repeatable; values may use templates such as {{uuid}}).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Request body (templates allowed).
    #[arg(long)]
    pub body: Option<String>,
    /// Per-request timeout.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub timeout: Option<Duration>,
    /// Driver threads (default: one per available core).
    #[arg(long, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Poisson arrivals instead of evenly spaced ones.
    #[arg(long)]
    pub poisson: bool,
    /// Read only this much of each body, then drop the response (`4 KiB`).
    #[arg(long, value_parser = parse_size, allow_hyphen_values = true)]
    pub abandon_after: Option<u64>,
    /// Cancel each request after this delay.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub cancel_after: Option<Duration>,
    /// Open a new connection for each request (churn).
    #[arg(long)]
    pub new_connection: bool,
    /// Skip TLS certificate checks (self-signed test servers only).
    #[arg(long)]
    pub insecure: bool,
    /// Statistics window.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub window: Option<Duration>,
    /// Requests that may wait for a free connection before being dropped.
    #[arg(long, allow_negative_numbers = true)]
    pub max_queue: Option<usize>,
    /// Allowed shortfall of the achieved rate (0.01 = 1 %).
    #[arg(long, allow_negative_numbers = true)]
    pub tolerance: Option<f64>,
    /// Random seed for templates and Poisson arrivals.
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<u64>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    parse_bytes(s).map(|b| b as u64)
}

/// Builds the plan of an ad-hoc run against `url`.
pub fn plan(
    url: &str,
    rate: Option<f64>,
    duration: Option<Duration>,
    a: &AdhocArgs,
    results_dir: PathBuf,
) -> Result<Plan, String> {
    check_base_url(url).map_err(|e| e.replace("`base_url`", "the URL"))?;
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let protocol = if a.http2 {
        Protocol::Http2
    } else {
        Protocol::Http1
    };
    let streams = a.streams.unwrap_or(if a.http2 { 8 } else { 1 });
    check_flags(rate, duration, a, protocol, streams)?;
    let connections = a.connections.unwrap_or(50);
    check_connections("--connections", connections, streams)?;
    let base = format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map(|a| a.as_str()).unwrap_or_default()
    );
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let rate = match rate {
        Some(rps) => Rate::Constant { rps },
        None => Rate::Max,
    };
    let mut headers = Vec::new();
    for h in &a.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| format!("--header expects \"Name: value\", got \"{h}\""))?;
        let (k, v) = (k.trim(), v.trim());
        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            return Err(format!(
                "--header \"{h}\": \"{k}\" is not a valid HTTP header name"
            ));
        }
        check_template(&format!("--header \"{h}\""), v)?;
        headers.push((k.to_string(), v.to_string()));
    }
    let method = a.method.to_ascii_uppercase();
    if http::Method::from_bytes(method.as_bytes()).is_err() {
        return Err(format!("--method \"{}\" is not an HTTP method", a.method));
    }
    if let Some(b) = &a.body {
        check_template("--body", b)?;
    }
    Ok(Plan {
        name: "adhoc".into(),
        source: None,
        description: format!("ad-hoc run against {url}"),
        target: TargetPlan::UrlOnly,
        load: LoadPlan {
            protocol,
            base_url: base,
            connections,
            streams_per_connection: streams,
            threads: a.threads,
            phases: vec![Phase {
                kind: PhaseKind::Steady,
                duration: duration.unwrap_or(Duration::from_secs(10)),
                rate,
            }],
            arrivals: if a.poisson {
                Arrivals::Poisson
            } else {
                Arrivals::Uniform
            },
            requests: vec![RequestSpec {
                name: "adhoc".into(),
                weight: 1,
                method,
                path,
                headers,
                body: a.body.clone(),
                behaviour: Behaviour {
                    abandon_after: a.abandon_after,
                    cancel_after: a.cancel_after,
                    new_connection: a.new_connection,
                },
            }],
            max_queue: a.max_queue.unwrap_or(DEFAULT_MAX_QUEUE),
            timeout: a.timeout.unwrap_or(DEFAULT_TIMEOUT),
            rate_tolerance: a.tolerance.unwrap_or(0.01),
            window: a.window.unwrap_or(DEFAULT_WINDOW),
            insecure: a.insecure,
            grpc: None,
            seed: a.seed,
            shard: None,
        },
        probes: ProbePlan {
            interval: Duration::from_secs(1),
            process: false,
            smaps: false,
            tree: false,
            cgroup: false,
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
            signals: vec![],
            latency: LatencyGate::default(),
            warmup_share: 0.1,
            windows: 10,
            confidence: 0.95,
            min_time_to_limit: None,
            extend_if_inconclusive: None,
        },
        output: OutputPlan {
            results_dir,
            progress: true,
        },
        soak: SoakPlan::default(),
        watch: None,
    })
}

/// Checks the load flags against the limits a scenario's keys have (the connections, which
/// need the streams, are checked by the caller).
fn check_flags(
    rate: Option<f64>,
    duration: Option<Duration>,
    a: &AdhocArgs,
    protocol: Protocol,
    streams: usize,
) -> Result<(), String> {
    if let Some(r) = rate {
        check_rate("--rate", r, false)?;
    }
    if let Some(d) = duration {
        check_duration("--duration", d, Duration::from_nanos(1), MAX_LOAD_DURATION)?;
    }
    check_streams("--streams", streams, protocol).map_err(|e| match protocol {
        Protocol::Http1 => format!("{e} (add --http2 for streams)"),
        _ => e,
    })?;
    if let Some(t) = a.threads {
        check_threads("--threads", t)?;
    }
    if let Some(t) = a.timeout {
        check_duration("--timeout", t, MIN_TIMEOUT, MAX_TIMEOUT)?;
    }
    if let Some(t) = a.cancel_after {
        check_duration("--cancel-after", t, MIN_TIMEOUT, MAX_TIMEOUT)?;
    }
    if let Some(w) = a.window {
        check_duration("--window", w, MIN_WINDOW, MAX_WINDOW)?;
    }
    if let Some(q) = a.max_queue {
        check_max_queue("--max-queue", q)?;
    }
    if let Some(t) = a.tolerance {
        check_tolerance("--tolerance", t)?;
    }
    Ok(())
}

/// Applies flags that override a scenario's load (`--rate`, `--duration`, and the ad-hoc flags
/// that were given explicitly), after checking them as for a URL run.
pub fn override_scenario(
    plan: &mut Plan,
    rate: Option<f64>,
    duration: Option<Duration>,
    a: &AdhocArgs,
) -> Result<(), String> {
    let (protocol, streams) = (plan.load.protocol, plan.load.streams_per_connection);
    check_flags(rate, duration, a, protocol, streams)?;
    if let Some(c) = a.connections {
        check_connections("--connections", c, streams)?;
    }
    for p in plan
        .load
        .phases
        .iter_mut()
        .filter(|p| p.kind == PhaseKind::Steady)
    {
        if let Some(r) = rate {
            p.rate = Rate::Constant { rps: r };
        }
        if let Some(d) = duration {
            p.duration = d;
        }
    }
    let l = &mut plan.load;
    if let Some(c) = a.connections {
        l.connections = c;
    }
    if let Some(t) = a.threads {
        l.threads = Some(t);
    }
    if let Some(t) = a.timeout {
        l.timeout = t;
    }
    if a.insecure {
        l.insecure = true;
    }
    if let Some(s) = a.seed {
        l.seed = Some(s);
    }
    let total: Duration = plan.load.phases.iter().map(|p| p.duration).sum();
    if total > MAX_LOAD_DURATION {
        return Err(format!(
            "--duration: the phases would add up to {total:?}, more than {MAX_LOAD_DURATION:?} \
             (30 days); a longer soak is `leakgate watch`'s job"
        ));
    }
    Ok(())
}
