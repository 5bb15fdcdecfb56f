//! One `leakgate run` through the real binary (an ad-hoc URL run or a scenario file) and what
//! its summary.json says about the load, in a form a case compares with what it expects.

use std::collections::BTreeMap;
use std::path::Path;

use crate::runs::scenario::{self, Run};

/// Every run: one driver thread (the machine is shared) and a 2 s request timeout, so a
/// client that waits for bytes that never come ends the run within seconds, not a hang.
const COMMON: &[&str] = &["--threads", "1", "--timeout", "2s"];

/// What a run did, as summary.json tells it.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    /// leakgate's exit code (0: the load ran as planned; 4: it fell behind).
    pub exit: i32,
    pub planned: u64,
    pub completed: u64,
    pub dropped: u64,
    /// Responses by HTTP status class (`2xx`) or gRPC code name (`OK`, `NOT_FOUND`).
    pub status: BTreeMap<String, u64>,
    /// Requests that got no response, by kind (`reset`, `protocol`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Body bytes read (gRPC: the length-prefixed messages).
    pub bytes: u64,
    /// gRPC: response messages per call.
    pub messages_per_call: Option<f64>,
}

impl Outcome {
    /// `n` requests, all answered with `status` and `bytes_each` body bytes, nothing dropped.
    pub fn all(n: u64, status: &str, bytes_each: u64) -> Self {
        Self {
            exit: 0,
            planned: n,
            completed: n,
            dropped: 0,
            status: BTreeMap::from([(status.to_string(), n)]),
            errors: BTreeMap::new(),
            bytes: n * bytes_each,
            messages_per_call: None,
        }
    }

    /// `n` requests, each ended by an error of `kind` after `bytes_each` body bytes.
    pub fn all_failed(n: u64, kind: &str, bytes_each: u64) -> Self {
        Self {
            status: BTreeMap::new(),
            errors: BTreeMap::from([(kind.to_string(), n)]),
            ..Self::all(n, "", bytes_each)
        }
    }

    /// The same with `messages` response messages per gRPC call.
    pub fn messages(self, messages: f64) -> Self {
        Self {
            messages_per_call: Some(messages),
            ..self
        }
    }

    /// Read from a finished run.
    pub fn of(run: &Run) -> Self {
        let load = &run.summary["load"];
        let n = |k: &str| {
            load[k]
                .as_u64()
                .unwrap_or_else(|| panic!("load.{k}: {load}"))
        };
        let map = |k: &str| -> BTreeMap<String, u64> {
            load[k]
                .as_object()
                .unwrap_or_else(|| panic!("load.{k}: {load}"))
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                .collect()
        };
        Self {
            exit: run.code,
            planned: n("planned"),
            completed: n("completed"),
            dropped: n("dropped"),
            status: map("status"),
            errors: map("errors"),
            bytes: n("bytes"),
            messages_per_call: load["messages_per_stream"].as_f64(),
        }
    }
}

/// `leakgate run URL` with the ad-hoc flags `args` (rate, duration, connections, ...).
pub fn adhoc(case: &str, url: &str, args: &[&str]) -> Run {
    let mut extra = args.to_vec();
    extra.extend_from_slice(COMMON);
    scenario::run(case, Path::new(url), &extra)
}

/// `leakgate run SCENARIO.toml`.
pub fn scenario_file(case: &str, path: &Path) -> Run {
    scenario::run(case, path, &[])
}

/// The load part of a run's terminal output, for failure messages.
pub fn report(run: &Run) -> String {
    run.text
        .lines()
        .skip_while(|l| !l.starts_with("Load ("))
        .take_while(|l| !l.starts_with("Results:"))
        .collect::<Vec<_>>()
        .join("\n")
}
