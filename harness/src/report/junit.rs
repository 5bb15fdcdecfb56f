//! `junit.xml`: one test case per gate, plus "the target survived" and "the driver held the
//! planned rate", in the JUnit dialect GitLab, Jenkins and GitHub test reporters read.
//!
//! A failing gate is a `<failure>` whose message says the number, the limit and the unit; an
//! inconclusive gate is an `<error>` (not a pass, not a proven leak).

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::run_data::RunData;
use super::words;
use crate::record::LoadReport;
use crate::verdict::{GateResult, Outcome};

/// Renders the JUnit XML of a run.
pub fn render(run: &RunData) -> String {
    let s = &run.summary;
    let classname = format!("leakgate.{}", run.name());
    let elapsed = s.load.as_ref().map_or(0.0, |l| l.elapsed);

    let mut suite = TestSuite::new(format!("leakgate {}", run.name()));
    if let Ok(ts) = chrono::DateTime::parse_from_rfc3339(&s.started_at) {
        suite.set_timestamp(ts);
    }
    suite.set_time(Duration::from_secs_f64(elapsed.max(0.0)));
    suite.add_properties([
        Property::new("scenario", run.name()),
        Property::new("leakgate_version", s.leakgate_version.as_str()),
        Property::new("exit_code", s.exit_code.to_string()),
        Property::new("exit_reason", s.exit_reason.as_str()),
    ]);

    let mut cases = vec![survived(run)];
    if let Some(l) = &s.load {
        cases.push(held_rate(l));
    }
    for g in s.verdict.iter().flat_map(|v| v.gates.iter()) {
        cases.push(gate_case(g));
    }
    for mut c in cases {
        c.set_classname(classname.as_str());
        suite.add_test_case(c);
    }
    if let Some(v) = &s.verdict {
        suite.set_system_out(v.summary.as_str());
    }

    let mut report = Report::new("leakgate");
    report.add_test_suite(suite);
    // Serialising our own in-memory report only fails on I/O, which a String never has.
    report.to_string().unwrap_or_default()
}

/// One gate as a test case.
fn gate_case(g: &GateResult) -> TestCase {
    let line = words::verdict_line(g);
    let status = match g.outcome {
        Outcome::Pass => TestCaseStatus::success(),
        Outcome::Fail => {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(line.as_str())
                .set_type("limit exceeded")
                .set_description(g.explanation.as_str());
            st
        }
        Outcome::Inconclusive => {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
            st.set_message(line.as_str())
                .set_type("inconclusive")
                .set_description(g.explanation.as_str());
            st
        }
    };
    let mut case = TestCase::new(g.name.as_str(), status);
    // The common schema has no per-case properties; the figures go in the text readers show.
    let slope = words::slope(g).map_or_else(String::new, |s| format!("; slope {s}"));
    case.set_system_out(format!(
        "{line}{slope}; observed={} limit={} unit={}",
        g.observed, g.limit, g.unit
    ));
    case
}

/// "the target survived": fails when the target died or never became ready.
fn survived(run: &RunData) -> TestCase {
    let status = match &run.summary.target_exit {
        None => TestCaseStatus::success(),
        Some(e) => {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(format!("the target died at {:.1} s: {}", e.t, e.cause))
                .set_type(if e.oom_killed {
                    "oom killed"
                } else {
                    "target died"
                });
            st
        }
    };
    TestCase::new("target survived", status)
}

/// "the driver held the planned rate": a run that fell behind measured less than it claims.
fn held_rate(l: &LoadReport) -> TestCase {
    let line = format!(
        "sent {:.1} req/s of {:.1} planned ({} dropped)",
        l.achieved_rate, l.planned_rate, l.dropped
    );
    let status = if l.fell_behind {
        let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
        st.set_message(line.as_str()).set_type("fell behind");
        st
    } else {
        TestCaseStatus::success()
    };
    let mut case = TestCase::new("driver held the planned rate", status);
    if !l.fell_behind {
        case.set_system_out(line.as_str());
    }
    case
}
