//! The sampler thread: drift-free ticks on its own interval, stopped promptly on request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::ProbeSet;
use crate::record::ProbeSample;

/// A running sampler; `stop` ends it and returns its probe set.
pub struct Sampler {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<ProbeSet>>,
}

/// Takes one sample now, timed against `t0`.
pub fn sample_once(set: &mut ProbeSet, t0: Instant, completed: &AtomicU64) -> ProbeSample {
    let signals = set.sample();
    // In a watch the target's own counter is the work done; the live view reads it too.
    let done = match set.work_done() {
        Some(n) => {
            completed.store(n, Ordering::Relaxed);
            n
        }
        None => completed.load(Ordering::Relaxed),
    };
    ProbeSample {
        t: signed_secs(t0),
        cumulative_completed: done,
        signals,
        merged: None,
    }
}

/// Seconds since `t0`, negative before it.
pub fn signed_secs(t0: Instant) -> f64 {
    let now = Instant::now();
    if now >= t0 {
        (now - t0).as_secs_f64()
    } else {
        -(t0 - now).as_secs_f64()
    }
}

impl Sampler {
    /// Starts sampling every `interval` on a thread of its own, handing each sample to `sink`.
    pub fn start(
        mut set: ProbeSet,
        interval: Duration,
        t0: Instant,
        completed: Arc<AtomicU64>,
        mut sink: impl FnMut(ProbeSample) + Send + 'static,
    ) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("leakgate-sampler".into())
            .spawn(move || {
                let first = Instant::now();
                let mut n = 0u32;
                loop {
                    n += 1;
                    // Ticks on a fixed grid from the first one: no drift however long a probe takes.
                    let next = first + interval * n;
                    let wait = next.saturating_duration_since(Instant::now());
                    match stopped.recv_timeout(wait) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return set,
                    }
                    sink(sample_once(&mut set, t0, &completed));
                }
            })
            .ok();
        Self { stop, thread }
    }

    /// Stops the thread (within one probe's duration) and returns the probe set.
    pub fn stop(mut self) -> Option<ProbeSet> {
        let _ = self.stop.send(());
        self.thread.take().and_then(|t| t.join().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::plan::ProbePlan;

    fn probe_plan(interval: Duration) -> ProbePlan {
        ProbePlan {
            interval,
            process: true,
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
        }
    }

    #[test]
    fn ticks_and_stops_promptly() {
        let plan = probe_plan(Duration::from_millis(20));
        let set = ProbeSet::new(&plan, Some(std::process::id()), None);
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let g = got.clone();
        let completed = Arc::new(AtomicU64::new(5));
        let started = Instant::now();
        let s = Sampler::start(set, plan.interval, started, completed, move |x| {
            g.lock().unwrap().push(x)
        });
        // Ticks: three samples come (however slowly this machine runs them).
        while got.lock().unwrap().len() < 3 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{} samples after 10 s",
                got.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        s.stop().unwrap();
        let ran = started.elapsed();
        let v = got.lock().unwrap();
        // ...on the grid, never faster: at most one per interval that has passed.
        let grid_points = (ran.as_secs_f64() / plan.interval.as_secs_f64()).floor() as usize;
        assert!(
            v.len() <= grid_points,
            "{} samples in {ran:?} at one per {:?}",
            v.len(),
            plan.interval
        );
        assert!(v.windows(2).all(|w| w[1].t > w[0].t));
        assert!(
            v.iter()
                .all(|x| x.signals["rss_bytes"] > 0.0 && x.cumulative_completed == 5)
        );

        // Stops promptly: a sampler whose next tick is 30 s away stops at once, without one
        // (the bound, half of that, is generous for a busy machine).
        let slow = probe_plan(Duration::from_secs(30));
        let set = ProbeSet::new(&slow, Some(std::process::id()), None);
        let ticks = Arc::new(AtomicU64::new(0));
        let t = ticks.clone();
        let s = Sampler::start(
            set,
            slow.interval,
            Instant::now(),
            Arc::new(AtomicU64::new(0)),
            move |_| {
                t.fetch_add(1, Ordering::SeqCst);
            },
        );
        let stopping = Instant::now();
        s.stop().unwrap();
        assert!(
            stopping.elapsed() < Duration::from_secs(15),
            "stop took {:?}",
            stopping.elapsed()
        );
        assert_eq!(ticks.load(Ordering::SeqCst), 0);
    }
}
