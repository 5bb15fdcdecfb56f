//! Heap profiles and goroutine dumps saved into the run folder: before the load, after it,
//! and on their schedules in between.

use std::path::Path;
use std::time::{Duration, Instant};

use super::rolling::Chore;
use super::sampler_secs;
use crate::probe::{self, goroutines};
use crate::record::{Event, Record};
use crate::scenario::plan::Plan;
use crate::store::Writer as NdjsonWriter;

/// Largest heap profile kept (gzipped pprof).
const MAX_HEAP_PROFILE: usize = 256 << 20;

/// What is taken at a moment of the run.
#[derive(Debug, Clone, Copy)]
pub enum Moment {
    /// Before the load.
    Start,
    /// After the load.
    End,
}

/// Takes the heap profile and the goroutine dump the plan asks for at `moment`, and a JVM
/// target's class histogram (`pid`): the events to record (their `t` is set by the caller).
pub fn capture(plan: &Plan, dir: &Path, moment: Moment, pid: Option<u32>) -> Vec<Event> {
    use crate::heap::{classes, goroutines};
    let (heap, dump, histogram) = match moment {
        Moment::Start => (
            crate::heap::START_NAME,
            goroutines::START_NAME,
            classes::START_NAME,
        ),
        Moment::End => (
            crate::heap::END_NAME,
            goroutines::END_NAME,
            classes::END_NAME,
        ),
    };
    [
        ("heap_profile", capture_heap(plan, dir, heap)),
        ("goroutine_dump", capture_goroutines(plan, dir, dump)),
        // jcmd collects the heap first: at the start, before the clock starts.
        (
            "heap_profile",
            classes::capture_for_run(pid, dir, histogram),
        ),
    ]
    .into_iter()
    .filter_map(|(kind, detail)| {
        Some(Event {
            t: 0.0,
            kind: kind.into(),
            detail: detail?,
        })
    })
    .collect()
}

/// Saves a heap profile (pprof, as Go and jemalloc_pprof serve it) into the run folder, so
/// `go tool pprof -diff_base heap-start.pb.gz heap-end.pb.gz` shows what grew; returns the
/// event's detail, or None when the plan takes no profiles.
pub fn capture_heap(plan: &Plan, run_dir: &Path, name: &str) -> Option<String> {
    let url = plan.probes.heap_profile_url.as_ref()?;
    let got = probe::http_get_up_to(url, Duration::from_secs(30), MAX_HEAP_PROFILE);
    Some(save(run_dir, name, url, got))
}

/// Saves a goroutine dump (`debug=2`) into the run folder; the event's detail, or None when
/// the plan has no goroutine URL.
pub fn capture_goroutines(plan: &Plan, run_dir: &Path, name: &str) -> Option<String> {
    let url = goroutines::dump_url(plan.probes.goroutine_url.as_ref()?);
    let got = probe::http_get_up_to(&url, goroutines::DUMP_TIMEOUT, goroutines::MAX_DUMP);
    Some(save(run_dir, name, &url, got))
}

/// Writes through a temporary file and a rename, so a reader never sees half a file (the
/// latest dump is replaced while a report may read it).
fn save(run_dir: &Path, name: &str, url: &str, got: Result<Vec<u8>, String>) -> String {
    let body = match got {
        Ok(b) => b,
        Err(e) => return format!("{name}: {e}"),
    };
    let tmp = run_dir.join(format!(".{name}.tmp"));
    match std::fs::write(&tmp, &body).and_then(|()| std::fs::rename(&tmp, run_dir.join(name))) {
        Ok(()) => format!("{name}: {} bytes from {url}", body.len()),
        Err(e) => format!("{name}: cannot write: {e}"),
    }
}

/// The scheduled heap profiles and goroutine dumps, as housekeeping chores.
pub fn chores(
    plan: &Plan,
    dir: &Path,
    writer: &std::sync::Arc<NdjsonWriter>,
    t0: Instant,
) -> Vec<(Duration, Chore)> {
    let mut out: Vec<(Duration, Chore)> = Vec::new();
    if let (Some(every), Some(_)) = (
        plan.probes.heap_profile_every,
        &plan.probes.heap_profile_url,
    ) {
        let (plan, dir, writer) = (plan.clone(), dir.to_path_buf(), writer.clone());
        let mut n = 0u32;
        out.push((
            every,
            Box::new(move |_t| {
                n += 1;
                let name = crate::heap::scheduled_name(n);
                if let Some(detail) = capture_heap(&plan, &dir, &name) {
                    writer.write(&Record::Event(Event {
                        t: sampler_secs(t0),
                        kind: "heap_profile".into(),
                        detail,
                    }));
                }
                crate::heap::prune_scheduled(&dir, plan.probes.heap_profiles_kept);
            }),
        ));
    }
    if plan.probes.goroutine_url.is_some() {
        let (plan, dir, writer) = (plan.clone(), dir.to_path_buf(), writer.clone());
        out.push((
            plan.probes.goroutine_profile_every,
            Box::new(move |_t| {
                let name = crate::heap::goroutines::LATEST_NAME;
                if let Some(detail) = capture_goroutines(&plan, &dir, name) {
                    writer.write(&Record::Event(Event {
                        t: sampler_secs(t0),
                        kind: "goroutine_dump".into(),
                        detail,
                    }));
                }
            }),
        ));
    }
    out
}
