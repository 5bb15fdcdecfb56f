//! Judging a run folder from its files: at the end of every run, and afterwards for a run that
//! was cut off (`kill -9`, a lost node), where `leakgate report` finishes what the run could not.
//! Both read the same records through the same code, so they reach the same verdict.

use std::path::Path;

use super::outcome::{Facts, exit_code};
use crate::diagnose::{Diagnosis, DiagnosisInput};
use crate::record::{LoadReport, ProbeSample, Record, Window};
use crate::report::ReportError;
use crate::report::summary::{self, Summary, TargetExit};
use crate::scenario::plan::{GatePlan, Plan, TargetPlan};
use crate::verdict::{self, LatencyObserved, Verdict};

/// The gates a plan is judged on at the end: a watch drives no load, so it has no latency to
/// limit and no drain to check.
pub fn judged_gates(plan: &Plan) -> GatePlan {
    let mut gates = plan.gates.clone();
    if plan.watch.is_some() {
        gates.latency = Default::default();
        for g in &mut gates.signals {
            g.drain_to_baseline = None;
        }
        gates
            .signals
            .retain(|g| g.max_per_request.is_some() || g.max_per_second.is_some());
    }
    gates
}

/// The memory limit the time-to-limit gate projects to: the spawned target's own, else the
/// cgroup limit the probes read.
fn memory_limit(plan: &Plan, samples: &[ProbeSample], known: Option<u64>) -> Option<u64> {
    if let TargetPlan::Spawn(s) = &plan.target
        && s.memory_limit.is_some()
    {
        return s.memory_limit;
    }
    known.or_else(|| {
        samples
            .iter()
            .rev()
            .find_map(|s| s.signals.get("cgroup_limit_bytes").copied())
            .filter(|v| v.is_finite() && *v > 0.0)
            .map(|v| v as u64)
    })
}

/// What judging a run folder gives.
#[derive(Debug, Clone, Default)]
pub struct Judged {
    /// The verdict (none when the target died).
    pub verdict: Option<Verdict>,
    /// The last five samples.
    pub last_samples: Vec<ProbeSample>,
    /// The likely leak class of a failed verdict.
    pub diagnosis: Option<Diagnosis>,
}

/// Judges the folder's samples against the plan: the verdict, the last samples, and for a
/// failed verdict the diagnosis (with the folder's heap profiles, when it has them).
pub fn judge_folder(
    dir: &Path,
    plan: &Plan,
    load: Option<&LoadReport>,
    known_limit: Option<u64>,
    died: bool,
) -> Result<Judged, ReportError> {
    let records = crate::report::run_data::read_samples(dir)?;
    Ok(judge_records(dir, &records, plan, load, known_limit, died))
}

fn judge_records(
    dir: &Path,
    records: &[Record],
    plan: &Plan,
    load: Option<&LoadReport>,
    known_limit: Option<u64>,
    died: bool,
) -> Judged {
    let mut input = verdict::input::from_records(records);
    input.memory_limit = memory_limit(plan, &input.samples, known_limit);
    if let Some(r) = load {
        input.latency = Some(LatencyObserved {
            p95_ms: r.steady_corrected.p95,
            p99_ms: r.steady_corrected.p99,
            error_rate: r.error_rate(),
        });
    }
    let last_samples = input.samples.iter().rev().take(5).rev().cloned().collect();
    let gates = judged_gates(plan);
    let verdict = (!died).then(|| verdict::judge(&input, &gates));
    let diagnosis = verdict.as_ref().and_then(|v| {
        let windows: Vec<Window> = records
            .iter()
            .filter_map(|r| match r {
                Record::Window(w) => Some(w.clone()),
                _ => None,
            })
            .collect();
        let heap = crate::heap::diff_run(dir).and_then(Result::ok);
        let goroutines = crate::heap::goroutines::diff_run(dir).and_then(Result::ok);
        crate::diagnose::diagnose(&DiagnosisInput {
            input: &input,
            verdict: v,
            gates: &gates,
            windows: &windows,
            heap: heap.as_ref(),
            tasks: goroutines.as_ref(),
        })
    });
    Judged {
        verdict,
        last_samples,
        diagnosis,
    }
}

/// Finishes the summary of a run that was cut off (its `summary.json` says
/// `finished: false`): load totals from its windows, the verdict from its samples, exit code
/// as the run would have given it. Returns the new summary, or None when the run had
/// finished (nothing to do).
pub fn recover(dir: &Path) -> Result<Option<Summary>, ReportError> {
    let path = dir.join("summary.json");
    // A folder another version wrote is not judged (and not rewritten) by this one.
    let mut s = crate::report::run_data::read_summary(dir)?;
    if s.finished {
        return Ok(None);
    }
    let records = crate::report::run_data::read_samples(dir)?;
    let windows: Vec<&Window> = records
        .iter()
        .filter_map(|r| match r {
            Record::Window(w) => Some(w),
            _ => None,
        })
        .collect();
    let load =
        (!windows.is_empty()).then(|| crate::load::report_from_windows(&windows, &s.plan.load));
    let died = records.iter().find_map(|r| match r {
        Record::Event(e) if e.kind == "target_exit" => Some(TargetExit {
            t: e.t,
            cause: e.detail.clone(),
            code: None,
            signal: None,
            oom_killed: e.detail.contains("OOM"),
        }),
        _ => None,
    });
    let judged = judge_records(dir, &records, &s.plan, load.as_ref(), None, died.is_some());
    let verdict = judged.verdict;
    let last_t = records
        .iter()
        .map(|r| match r {
            Record::Window(w) => w.end,
            Record::Probe(p) => p.t,
            Record::Event(e) => e.t,
            Record::Evaluation(e) => e.t,
        })
        .fold(0.0, f64::max);
    let facts = Facts::of(
        died.is_some(),
        verdict.as_ref(),
        s.plan.watch.is_none() && load.as_ref().is_none_or(|r| r.fell_behind),
    );
    let exit = exit_code(facts);
    s.exit_code = exit.code();
    s.exit_reason = summary::exit_reason(exit).into();
    s.target_exit = died;
    s.load = load;
    s.verdict = verdict;
    s.last_samples = judged.last_samples;
    s.diagnosis = judged.diagnosis;
    s.finished = true;
    s.recovered = true;
    s.stopped = Some(summary::Stopped {
        t: last_t,
        reason: format!(
            "leakgate stopped at t = {last_t:.1} s without finishing (killed?); judged \
             afterwards by `leakgate report` on the samples written until then"
        ),
        verdict_decided: false,
    });
    s.write(dir).map_err(|source| ReportError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(Some(s))
}
