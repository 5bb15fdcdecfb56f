//! The open-loop dispatcher: each worker's arrivals pushed into its queue at their intended
//! times, in ticks, never late.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::local::{Job, Local};
use super::schedule::Schedule;

/// The dispatcher wakes at most once per tick and hands out every arrival due before the next
/// wake. Each wake-up (and the idle wait of the core before it) costs more than the calls it
/// hands out: at 5 000 calls/s, 2 ms cut the driver's CPU by a sixth against 1 ms, and 4 ms
/// by another tenth against 2 ms (HTTP/2, nginx, `harness/benches/h2.sh`). Bursts of 20 calls
/// at 5 000/s are what h2load's `--rps` timers send too (about 16 a wake-up), and far below
/// any latency or leak the run measures.
pub const TICK: Duration = Duration::from_millis(4);

/// How early a job may be handed out: a tick, plus tokio's timer resolution (1 ms, and it
/// always wakes late). Handing out early keeps the driver's own wake-up delay out of the
/// corrected latency: a job sent early is timed from its actual send.
pub const EARLY: Duration = Duration::from_millis(5);

/// Pushes this worker's arrivals into the queue at their intended times; counts drops.
pub(crate) async fn dispatch(
    local: &Local,
    schedule: Schedule,
    start: Instant,
    max_queue: usize,
    cancel: &CancellationToken,
) {
    let sleep = tokio::time::sleep_until(start);
    tokio::pin!(sleep);
    // When the current batch began: the first hand-out, then each wake-up.
    let mut woke: Option<Instant> = None;
    // Jobs queued since the last wake of slots: woken together before the dispatcher sleeps.
    let mut queued = 0;
    for a in schedule {
        let intended = start + a.at;
        let due = intended.checked_sub(EARLY).unwrap_or(intended);
        if due > Instant::now() {
            local.wake(std::mem::take(&mut queued));
            // Never late: the last batch handed out everything up to `woke + EARLY`, so this
            // job is due after `woke + TICK` plus the timer's worst lateness.
            sleep
                .as_mut()
                .reset(woke.map_or(due, |w| due.max(w + TICK)));
            tokio::select! {
                _ = &mut sleep => {}
                _ = cancel.cancelled() => break,
            }
            woke = Some(Instant::now());
        } else if woke.is_none() {
            woke = Some(Instant::now());
        }
        let mut stats = local.stats.borrow_mut();
        stats.planned += 1;
        let mut q = local.queue.borrow_mut();
        if q.len() >= max_queue {
            stats.dropped += 1;
        } else {
            q.push_back(Job {
                seq: a.seq,
                intended,
            });
            queued += 1;
        }
    }
    local.wake(queued);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use crate::scenario::plan::{Arrivals, Phase, PhaseKind, Rate};

    /// Dispatches `phases` under tokio's paused clock and returns (intended, taken) offsets.
    async fn dispatched(phases: &[Phase]) -> Vec<(Duration, Duration)> {
        let local = Local::new(Arc::new(AtomicU64::new(0)), 1, 1);
        let start = Instant::now();
        let schedule = Schedule::new(phases, Arrivals::Uniform, 0, 0, 1);
        let consumer = {
            let local = local.clone();
            tokio::task::spawn_local(async move {
                let mut seen = Vec::new();
                while let Some(job) = local.next_job(0).await {
                    seen.push((job.intended - start, Instant::now() - start));
                }
                seen
            })
        };
        dispatch(
            &local,
            schedule,
            start,
            usize::MAX,
            &CancellationToken::new(),
        )
        .await;
        local.close();
        consumer.await.unwrap()
    }

    fn phase(kind: PhaseKind, secs: u64, rate: Rate) -> Phase {
        Phase {
            kind,
            duration: Duration::from_secs(secs),
            rate,
        }
    }

    fn check(phases: &[Phase], expected: usize, at: impl Fn(usize) -> f64) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let seen = tokio::task::LocalSet::new().block_on(&rt, dispatched(phases));
        assert_eq!(seen.len(), expected);
        for (i, (intended, taken)) in seen.iter().enumerate() {
            let want = Duration::from_secs_f64(at(i));
            assert!(
                intended.abs_diff(want) < Duration::from_micros(1),
                "#{i}: {intended:?} vs {want:?}"
            );
            // Never late, and never more than EARLY ahead of the intended time.
            assert!(
                taken <= intended && *intended - *taken <= EARLY,
                "#{i}: taken {taken:?}, intended {intended:?}"
            );
        }
        // One wake-up per tick at most: hand-out times are TICK apart or the same.
        for pair in seen.windows(2) {
            let gap = pair[1].1 - pair[0].1;
            assert!(
                gap.is_zero() || gap >= TICK,
                "two wake-ups {gap:?} apart: {pair:?}"
            );
        }
    }

    #[test]
    fn constant_rate_under_paused_clock() {
        check(
            &[phase(PhaseKind::Steady, 3, Rate::Constant { rps: 100.0 })],
            300,
            |i| i as f64 / 100.0,
        );
    }

    #[test]
    fn ramp_under_paused_clock() {
        // 0 → 100 req/s over 4 s: N(t) = 12.5 t², 200 arrivals, the i-th at sqrt(i / 12.5).
        check(
            &[phase(
                PhaseKind::Ramp,
                4,
                Rate::Ramp {
                    from: 0.0,
                    to: 100.0,
                },
            )],
            200,
            |i| (i as f64 / 12.5).sqrt(),
        );
    }

    #[test]
    fn steps_under_paused_clock() {
        let p = [
            phase(PhaseKind::Warmup, 1, Rate::Constant { rps: 10.0 }),
            phase(PhaseKind::Steady, 1, Rate::Constant { rps: 50.0 }),
            phase(PhaseKind::Spike, 1, Rate::Constant { rps: 200.0 }),
        ];
        check(&p, 260, |i| match i {
            0..10 => i as f64 / 10.0,
            10..60 => 1.0 + (i - 10) as f64 / 50.0,
            _ => 2.0 + (i - 60) as f64 / 200.0,
        });
    }

    #[test]
    fn high_rate_wakes_once_per_tick() {
        // 5 000/s: arrivals every 0.2 ms, handed out in ticks, never late.
        check(
            &[phase(PhaseKind::Steady, 1, Rate::Constant { rps: 5000.0 })],
            5000,
            |i| i as f64 / 5000.0,
        );
    }
}
