//! Intended send times from the rate schedule: the open loop's single source of timing.
//!
//! The cumulative number of arrivals planned by time `t` is `N(t)`, the integral of the rate.
//! The k-th arrival is sent when `N(t)` reaches `k` (uniform) or the k-th partial sum of
//! exponential(1) draws (Poisson), so both use one inversion of `N` per arrival and the same
//! code serves constant, ramp and step schedules.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::scenario::plan::{Arrivals, Phase, PhaseKind, Rate};

/// One planned arrival.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// Global arrival number, from 0 (unique across workers).
    pub seq: u64,
    /// Intended send time, since load start.
    pub at: Duration,
    /// Phase index.
    pub phase: usize,
}

/// Iterates over the planned arrivals of a schedule; a worker takes every `stride`-th one.
#[derive(Debug)]
pub struct Schedule {
    phases: Vec<(f64, f64, Rate, PhaseKind)>,
    phase: usize,
    /// Arrivals planned before the current phase.
    base: f64,
    /// The next arrival's target in arrival units within the whole schedule.
    next_mark: f64,
    seq: u64,
    poisson: Option<SmallRng>,
    offset: u64,
    stride: u64,
    /// Share of the rate this iterator draws (Poisson workers each draw `1/stride`).
    rate_scale: f64,
    /// Number of Poisson workers, to keep sequence numbers unique across them.
    poisson_stride: u64,
}

impl Schedule {
    /// A schedule over `phases`. Each of `stride` workers takes arrivals `offset`,
    /// `offset + stride`, ... For Poisson arrivals each worker draws its own process at
    /// `1/stride` of the rate (the sum of independent Poisson processes is Poisson).
    pub fn new(phases: &[Phase], arrivals: Arrivals, seed: u64, offset: u64, stride: u64) -> Self {
        let mut t = 0.0;
        let phases = phases
            .iter()
            .map(|p| {
                let start = t;
                t += p.duration.as_secs_f64();
                (start, t, p.rate, p.kind)
            })
            .collect();
        let stride = stride.max(1);
        let (poisson, offset, stride_eff, rate_scale) = match arrivals {
            Arrivals::Uniform => (None, offset, stride, 1.0),
            Arrivals::Poisson => (
                Some(SmallRng::seed_from_u64(
                    seed ^ offset.wrapping_mul(0x9E37_79B9),
                )),
                offset,
                1,
                1.0 / stride as f64,
            ),
        };
        let mut s = Self {
            phases,
            phase: 0,
            base: 0.0,
            next_mark: 0.0,
            seq: 0,
            poisson,
            offset,
            stride: stride_eff,
            rate_scale,
            poisson_stride: stride,
        };
        s.next_mark = s.first_mark();
        s
    }

    fn first_mark(&mut self) -> f64 {
        match self.poisson.as_mut() {
            Some(rng) => exp1(rng),
            None => self.offset as f64,
        }
    }

    /// Total planned duration.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.phases.last().map_or(0.0, |p| p.1))
    }

    /// Phase kind at time `t` since start.
    pub fn phase_kind_at(&self, t: Duration) -> Option<PhaseKind> {
        let t = t.as_secs_f64();
        self.phases
            .iter()
            .find(|p| t >= p.0 && t < p.1)
            .or(self.phases.last())
            .map(|p| p.3)
    }

    /// Arrivals the whole schedule plans (all workers together) between 0 and `t`.
    pub fn planned_until(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        self.phases
            .iter()
            .map(|&(s, e, rate, _)| cumulative(rate, e - s, (t.min(e) - s).max(0.0)))
            .sum()
    }

    /// Planned rate at time `t` (all workers together; 0 for closed-loop phases).
    pub fn rate_at(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        self.phases
            .iter()
            .find(|p| t >= p.0 && t < p.1)
            .map_or(0.0, |&(s, e, rate, _)| rate_value(rate, e - s, t - s))
    }
}

impl Iterator for Schedule {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        loop {
            let &(start, end, rate, _) = self.phases.get(self.phase)?;
            let len = end - start;
            let total = cumulative(rate, len, len) * self.rate_scale;
            let local = self.next_mark - self.base;
            if local < total && !matches!(rate, Rate::Max) {
                let at = start + invert(rate, len, local / self.rate_scale);
                let seq = self.seq;
                let arrival = Arrival {
                    seq: if self.poisson.is_some() {
                        seq * self.poisson_stride + self.offset
                    } else {
                        self.next_mark as u64
                    },
                    at: Duration::from_secs_f64(at.min(end)),
                    phase: self.phase,
                };
                self.seq += 1;
                self.next_mark += match self.poisson.as_mut() {
                    Some(rng) => exp1(rng),
                    None => self.stride as f64,
                };
                return Some(arrival);
            }
            self.base += total;
            self.phase += 1;
        }
    }
}

fn exp1(rng: &mut SmallRng) -> f64 {
    let u: f64 = rng.random::<f64>();
    -(1.0 - u).ln()
}

/// Rate at `x` seconds into a phase of length `len`.
fn rate_value(rate: Rate, len: f64, x: f64) -> f64 {
    match rate {
        Rate::Constant { rps } => rps,
        Rate::Ramp { from, to } => from + (to - from) * (x / len),
        Rate::Max => 0.0,
    }
}

/// Arrivals planned in the first `x` seconds of a phase of length `len`.
fn cumulative(rate: Rate, len: f64, x: f64) -> f64 {
    match rate {
        Rate::Constant { rps } => rps * x,
        Rate::Ramp { from, to } => from * x + (to - from) * x * x / (2.0 * len),
        Rate::Max => 0.0,
    }
}

/// Time into the phase at which `k` arrivals have been planned (inverse of [`cumulative`]).
fn invert(rate: Rate, len: f64, k: f64) -> f64 {
    match rate {
        Rate::Constant { rps } => k / rps,
        Rate::Ramp { from, to } => {
            let a = (to - from) / (2.0 * len);
            if k <= 0.0 {
                0.0
            } else if a.abs() < 1e-12 {
                k / from
            } else {
                // a x² + from x - k = 0, the root in [0, len]; this form avoids cancellation.
                2.0 * k / (from + (from * from + 4.0 * a * k).max(0.0).sqrt())
            }
        }
        Rate::Max => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(kind: PhaseKind, secs: u64, rate: Rate) -> Phase {
        Phase {
            kind,
            duration: Duration::from_secs(secs),
            rate,
        }
    }

    #[test]
    fn shards_and_their_workers_together_are_the_schedule() {
        use crate::scenario::plan::Shard;
        let phases = [
            phase(
                PhaseKind::Warmup,
                2,
                Rate::Ramp {
                    from: 10.0,
                    to: 300.0,
                },
            ),
            phase(PhaseKind::Steady, 3, Rate::Constant { rps: 500.0 }),
        ];
        let whole: Vec<Arrival> = Schedule::new(&phases, Arrivals::Uniform, 0, 0, 1).collect();
        let mut union: Vec<Arrival> = Vec::new();
        for index in 0..3 {
            let shard = Some(Shard {
                index,
                count: 3,
                start_at_unix_ms: None,
            });
            for worker in 0..2 {
                let (first, stride) = Shard::arrivals(shard, worker, 2);
                union.extend(Schedule::new(&phases, Arrivals::Uniform, 0, first, stride));
            }
        }
        union.sort_by_key(|a| a.seq);
        assert_eq!(
            union, whole,
            "each arrival once, at its planned time, with its seq"
        );
    }

    #[test]
    fn constant_is_exact() {
        let p = [phase(PhaseKind::Steady, 2, Rate::Constant { rps: 1000.0 })];
        let v: Vec<_> = Schedule::new(&p, Arrivals::Uniform, 0, 0, 1).collect();
        assert_eq!(v.len(), 2000);
        for (i, a) in v.iter().enumerate() {
            assert_eq!(a.seq, i as u64);
            assert!((a.at.as_secs_f64() - i as f64 / 1000.0).abs() < 1e-9);
        }
    }

    #[test]
    fn workers_partition_the_schedule() {
        let p = [phase(PhaseKind::Steady, 1, Rate::Constant { rps: 999.0 })];
        let mut all: Vec<u64> = (0..3)
            .flat_map(|w| Schedule::new(&p, Arrivals::Uniform, 0, w, 3).map(|a| a.seq))
            .collect();
        all.sort();
        assert_eq!(all, (0..999).collect::<Vec<_>>());
    }

    #[test]
    fn ramp_follows_the_integral() {
        let p = [phase(
            PhaseKind::Ramp,
            10,
            Rate::Ramp {
                from: 0.0,
                to: 200.0,
            },
        )];
        let s = Schedule::new(&p, Arrivals::Uniform, 0, 0, 1);
        assert!((s.planned_until(Duration::from_secs(10)) - 1000.0).abs() < 1e-9);
        let v: Vec<_> = s.collect();
        assert_eq!(v.len(), 1000);
        // k arrivals by t = sqrt(k / 10): N(t) = 10 t².
        for a in &v {
            let expect = (a.seq as f64 / 10.0).sqrt();
            assert!((a.at.as_secs_f64() - expect).abs() < 1e-9, "{a:?}");
        }
    }

    #[test]
    fn steps_chain_phases() {
        let p = [
            phase(PhaseKind::Warmup, 1, Rate::Constant { rps: 100.0 }),
            phase(PhaseKind::Steady, 1, Rate::Constant { rps: 300.0 }),
        ];
        let v: Vec<_> = Schedule::new(&p, Arrivals::Uniform, 0, 0, 1).collect();
        assert_eq!(v.len(), 400);
        assert_eq!(v[100].phase, 1);
        assert!((v[100].at.as_secs_f64() - 1.0).abs() < 1e-9);
        assert!((v[103].at.as_secs_f64() - 1.01).abs() < 1e-9);
    }

    #[test]
    fn poisson_has_the_planned_mean() {
        let p = [phase(PhaseKind::Steady, 100, Rate::Constant { rps: 100.0 })];
        let n = Schedule::new(&p, Arrivals::Poisson, 7, 0, 1).count() as f64;
        // 10 000 expected; a Poisson count has sd 100.
        assert!((n - 10_000.0).abs() < 500.0, "{n}");
        let mut last = Duration::ZERO;
        for a in Schedule::new(&p, Arrivals::Poisson, 7, 0, 1) {
            assert!(a.at >= last);
            last = a.at;
        }
    }
}
