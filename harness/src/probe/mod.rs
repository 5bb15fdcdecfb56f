//! probe: sampling the target's memory and runtime signals on a thread of its own.
//!
//! Each source adds the signals it can read to one map per tick; a signal the target does not
//! offer is absent, never zero.

pub mod cgroup;
pub mod goroutines;
pub mod hsperf;
pub mod httpget;
pub mod proc;
pub mod prometheus;
pub mod requests;
pub mod runtime;
pub mod sampler;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::scenario::plan::ProbePlan;

/// Timeout of one HTTP probe.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

/// GETs a URL the way probes do (blocking, short timeouts, loopback).
pub fn http_get(url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    httpget::get(url, timeout)
}

/// [`http_get`] for a body up to `max` bytes (goroutine dumps, heap profiles).
pub fn http_get_up_to(url: &str, timeout: Duration, max: usize) -> Result<Vec<u8>, String> {
    httpget::get_up_to(url, timeout, max)
}

/// Every source of one target.
#[derive(Debug)]
pub struct ProbeSet {
    proc: Option<proc::ProcProbe>,
    cgroup: Option<cgroup::CgroupProbe>,
    prometheus: Option<(String, Vec<(String, String)>)>,
    expvar: Option<String>,
    /// The goroutine count, from the cheapest source the target offers.
    goroutine: Option<goroutines::GoroutineProbe>,
    /// Go's live heap, from the heap right after each collection.
    go_gc: runtime::GoGc,
    /// A JVM's hsperfdata counters (heap per generation, GC counts), found by pid.
    jvm: Option<hsperf::HsperfProbe>,
    /// The target's request counter.
    requests: Option<requests::RequestCounter>,
    /// The counter is the run's count of work done (a watch); otherwise it is a signal.
    requests_are_work: bool,
    /// Sources that failed, reported once each.
    warned: BTreeSet<String>,
    /// Problems seen, for the summary.
    pub problems: Vec<String>,
}

impl ProbeSet {
    /// The sources `plan` asks for, for a target with this pid and cgroup.
    pub fn new(plan: &ProbePlan, pid: Option<u32>, cgroup_dir: Option<PathBuf>) -> Self {
        let cgroup_dir = cgroup_dir.or_else(|| pid.and_then(cgroup::of_pid));
        Self {
            proc: pid
                .filter(|_| plan.process)
                .map(|p| proc::ProcProbe::new(p, plan.smaps, plan.tree)),
            cgroup: cgroup_dir
                .filter(|_| plan.cgroup)
                .map(|d| cgroup::CgroupProbe::new(&d)),
            prometheus: plan.prometheus.as_ref().map(|p| {
                let wanted = p
                    .metrics
                    .iter()
                    .map(|m| (prometheus::normalise(m), m.clone()))
                    .collect();
                (p.url.clone(), wanted)
            }),
            expvar: plan.expvar_url.clone(),
            goroutine: plan
                .goroutine_url
                .as_deref()
                .map(|u| goroutines::GoroutineProbe::new(u, plan.goroutine_profile_every)),
            go_gc: runtime::GoGc::default(),
            // A JVM publishes jstat's counters in a file: read it when the process has one.
            jvm: pid
                .filter(|_| plan.process)
                .and_then(hsperf::HsperfProbe::of_pid),
            requests: plan
                .requests_from
                .as_ref()
                .map(|r| requests::RequestCounter::new(r.url.clone(), r.metric.clone())),
            requests_are_work: false,
            warned: BTreeSet::new(),
            problems: Vec::new(),
        }
    }

    /// Makes the target's request counter the count of work done (`leakgate watch`).
    pub fn counting_requests(mut self, yes: bool) -> Self {
        self.requests_are_work = yes;
        self
    }

    /// Reads the request counter when it is the count of work done: requests since the first
    /// read. None when there is no counter, it is a plain signal, or it could not be read.
    pub fn work_done(&mut self) -> Option<u64> {
        if !self.requests_are_work {
            return None;
        }
        let r = self.requests.as_mut()?.read();
        match r {
            Ok(n) => Some(n),
            Err(e) => {
                self.note("requests", Err(e));
                None
            }
        }
    }

    /// The cgroup this set reads, if any.
    pub fn cgroup(&self) -> Option<&cgroup::CgroupProbe> {
        self.cgroup.as_ref()
    }

    /// One tick: every signal available now.
    pub fn sample(&mut self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        if let Some(p) = &self.proc {
            let r = p.sample(&mut out);
            self.note("process", r);
        }
        if let Some(c) = &self.cgroup {
            let r = c.sample(&mut out);
            self.note("cgroup", r);
        }
        if let Some(j) = self.jvm.as_mut() {
            let r = j.sample(&mut out);
            self.note("jvm", r);
        }
        // Go's runtime signals from the page, for when there is no expvar.
        let mut go = BTreeMap::new();
        if let Some((url, wanted)) = &self.prometheus {
            let r = http_get(url, HTTP_TIMEOUT).map(|body| {
                let all = prometheus::parse(&String::from_utf8_lossy(&body));
                for (key, name) in wanted {
                    if let Some(v) = all.get(key).filter(|v| v.is_finite()) {
                        out.insert(name.clone(), *v);
                    }
                }
                if let Some(n) = all.get("go_goroutines") {
                    go.insert("go_goroutines".to_string(), *n);
                }
                runtime::go_from_prometheus(&all, &mut go);
            });
            self.note("prometheus", r);
        }
        if let Some(url) = &self.expvar {
            let r = http_get(url, HTTP_TIMEOUT).and_then(|b| runtime::parse_expvar(&b, &mut out));
            self.note("expvar", r);
        }
        let known_goroutines = out
            .get("go_goroutines")
            .or(go.get("go_goroutines"))
            .copied();
        if self.expvar.is_none() {
            go.remove("go_goroutines");
            for (k, v) in go {
                out.entry(k).or_insert(v);
            }
        }
        self.go_gc.observe(&mut out);
        if !self.requests_are_work
            && let Some(c) = self.requests.as_mut()
        {
            let r = c.read().map(|n| {
                out.insert("target_requests".into(), n as f64);
            });
            self.note("requests", r);
        }
        if let Some(g) = self.goroutine.as_mut() {
            let r = g.count(known_goroutines).map(|n| {
                if let Some(n) = n {
                    out.insert("goroutines".into(), n);
                }
            });
            self.note("goroutine", r);
        }
        out
    }

    fn note(&mut self, source: &str, r: Result<(), String>) {
        if let Err(e) = r
            && self.warned.insert(source.to_string())
        {
            let problem = format!("{source} probe: {e}");
            eprintln!("leakgate: {problem} (its signals are absent from now on)");
            self.problems.push(problem);
        }
    }
}
