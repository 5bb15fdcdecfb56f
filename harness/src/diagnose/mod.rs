//! diagnose: under a failed verdict, the likely leak class, read from which signals grew
//! together (fds with connections, tasks alone, a cache with the heap, RSS without the runtime
//! heap, GC with p99), each claim citing the numbers it rests on. Sits between the verdict and
//! the reports; its result is plain data in `summary.json`.

pub mod families;
pub mod growth;
pub mod rules;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::heap::HeapDiff;
use crate::record::Window;
use crate::scenario::plan::GatePlan;
use crate::verdict::{GateKind, Outcome, Verdict, VerdictInput};

/// The classes of leak the rules know.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LeakClass {
    /// File descriptors and connections (and the tasks serving them) grow together.
    UnclosedBodies,
    /// Tasks or goroutines grow on their own.
    LeakedTasks,
    /// Entries of a cache or map, or the runtime heap with a map or cache site on top.
    UnboundedCache,
    /// The process's memory grows while the runtime's heap stays flat.
    NativeOrFragmentation,
    /// Collections per request and p99 latency rise together.
    GcSpiral,
    /// Something failed that no signature explains.
    Unexplained,
}

/// One likely cause with its evidence.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Finding {
    /// The class.
    pub class: LeakClass,
    /// The class in words.
    pub title: String,
    /// Each claim with its numbers.
    pub evidence: Vec<String>,
    /// Where to look next.
    pub next: String,
}

/// The diagnosis of a failed run: its findings, the likeliest first.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Diagnosis {
    /// What the signals that grew together point at.
    pub findings: Vec<Finding>,
}

/// What the diagnosis reads: the verdict's input and result, the load windows, and the
/// tables of what grew by site.
pub struct DiagnosisInput<'a> {
    /// The verdict's input (samples, steady spans).
    pub input: &'a VerdictInput,
    /// The verdict.
    pub verdict: &'a Verdict,
    /// The gates (windows, confidence, warm-up share).
    pub gates: &'a GatePlan,
    /// Load windows (p99 over time).
    pub windows: &'a [Window],
    /// Allocation sites that grew.
    pub heap: Option<&'a HeapDiff>,
    /// Goroutines that grew, by wait and creator (Go targets with `goroutine_url`).
    pub tasks: Option<&'a crate::heap::GoroutineDiff>,
}

/// The diagnosis of a failed verdict (None for any other outcome).
pub fn diagnose(d: &DiagnosisInput) -> Option<Diagnosis> {
    if d.verdict.outcome != Outcome::Fail {
        return None;
    }
    let growth = growth::measure(d.input, d.verdict, d.gates);
    let mut findings = rules::findings(&rules::Evidence {
        growth: &growth,
        heap: d.heap,
        tasks: d.tasks,
        samples: &d.input.samples,
        windows: d.windows,
        steady: &d.input.steady,
    });
    let leak_failed = d
        .verdict
        .gates
        .iter()
        .any(|g| g.outcome == Outcome::Fail && g.kind != GateKind::Latency);
    if findings.is_empty() && !leak_failed {
        // Latency alone failed and no signature (a GC spiral) explains it: not a leak to name.
        return None;
    }
    if findings.is_empty() {
        let grew: Vec<String> = growth.iter().filter(|g| g.grew).map(|g| g.cite()).collect();
        let failed = d.verdict.names_with(Outcome::Fail);
        findings.push(Finding {
            class: LeakClass::Unexplained,
            title: "no known leak signature".into(),
            evidence: vec![if grew.is_empty() {
                format!("failed: {failed}; no fd, task, cache or heap signal grew with it")
            } else {
                format!("failed: {failed}; grew: {}", grew.join(", "))
            }],
            next: "sample more of the target's runtime (Prometheus metrics, expvar, a heap \
                   profile URL) so the signals can tell the classes apart"
                .into(),
        });
    }
    Some(Diagnosis { findings })
}

impl Diagnosis {
    /// Lines for the terminal and `summary.md`: `Likely: leaked tasks`, then `  - claim` lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, f) in self.findings.iter().enumerate() {
            let head = if i == 0 { "Likely" } else { "Also" };
            out.push(format!("{head}: {}", f.title));
            out.extend(f.evidence.iter().map(|e| format!("  - {e}")));
            out.push(format!("  → {}", f.next));
        }
        out
    }
}
