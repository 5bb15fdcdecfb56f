//! `--shard I/N`, `--shards N` (with a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`) and
//! `--start-at`: one process's part of a load driven by several, merged by `leakgate merge`.

use clap::Args;

use crate::scenario::plan::{Plan, Shard, TargetPlan};

/// The environment variable a Kubernetes Indexed Job sets to the pod's index.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// Flags of a sharded run.
#[derive(Debug, Clone, Args)]
pub struct ShardArgs {
    /// Drive shard I of N (from 0): every N-th arrival of the plan, offset by I, so the N
    /// shards together drive the planned schedule. Shard 0 samples the target; the others
    /// only drive load. `leakgate merge` makes one run of their folders.
    #[arg(long, value_name = "I/N", value_parser = parse_shard, conflicts_with = "shards")]
    pub shard: Option<(u32, u32)>,
    /// Drive one of N shards, the index taken from JOB_COMPLETION_INDEX (a Kubernetes
    /// Indexed Job sets it).
    #[arg(long, value_name = "N")]
    pub shards: Option<u32>,
    /// Start the load at this instant (RFC 3339, or seconds since the Unix epoch) so shards
    /// interleave exactly; without it each shard starts at its next whole second.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<u64>,
}

fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?}: give the shard as I/N, e.g. 0/4 (I from 0 to N-1)");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    check(i, n).map(|()| (i, n))
}

fn check(i: u32, n: u32) -> Result<(), String> {
    if n == 0 {
        return Err("the shard count must be at least 1".into());
    }
    if i >= n {
        return Err(format!(
            "shard index {i} is out of range for {n} shards (0 to {})",
            n - 1
        ));
    }
    Ok(())
}

/// Milliseconds since the Unix epoch of `s`: RFC 3339 or (fractional) epoch seconds.
fn parse_start_at(s: &str) -> Result<u64, String> {
    if let Ok(secs) = s.trim().parse::<f64>() {
        if (0.0..1e11).contains(&secs) {
            return Ok((secs * 1000.0).round() as u64);
        }
        return Err(format!("{s:?}: not a time (seconds since the Unix epoch)"));
    }
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
        format!("{s:?}: not a time ({e}); give RFC 3339 (2026-11-30T18:00:00Z) or epoch seconds")
    })?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("{s:?}: before the Unix epoch"))
}

impl ShardArgs {
    /// The shard these flags name (None: the whole load); `index` is `JOB_COMPLETION_INDEX`.
    pub fn resolve(&self, index: Option<&str>) -> Result<Option<Shard>, String> {
        let (i, n) = match (self.shard, self.shards) {
            (Some(s), _) => s,
            (None, Some(n)) => {
                let raw = index.ok_or_else(|| {
                    format!("--shards {n} takes the shard index from {INDEX_ENV}, which is not set (or give --shard I/{n})")
                })?;
                let i = raw
                    .trim()
                    .parse()
                    .map_err(|_| format!("{INDEX_ENV}={raw:?} is not a shard index"))?;
                check(i, n)?;
                (i, n)
            }
            (None, None) if self.start_at.is_some() => {
                return Err("--start-at is for sharded runs: add --shard I/N".into());
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Shard {
            index: i,
            count: n,
            start_at_unix_ms: self.start_at,
        }))
    }

    /// Makes `plan` this shard's: its share of the arrivals; past shard 0, no target process,
    /// no probes and no signal gates (one process samples the target, shard 0).
    pub fn apply(&self, plan: &mut Plan) -> Result<(), String> {
        let index = std::env::var(INDEX_ENV).ok();
        let Some(shard) = self.resolve(index.as_deref())? else {
            return Ok(());
        };
        if shard.count > 1 && matches!(plan.target, TargetPlan::Spawn(_)) {
            return Err(format!(
                "a load of {} shards drives a target that already runs, which this scenario \
                 starts itself; start it first and attach ([target] pid, process_name, \
                 systemd_unit, container or cgroup, with its base_url)",
                shard.count
            ));
        }
        plan.load.shard = Some(shard);
        if shard.index > 0 {
            plan.target = TargetPlan::UrlOnly;
            let p = &mut plan.probes;
            (p.process, p.smaps, p.tree, p.cgroup) = (false, false, false, false);
            p.prometheus = None;
            p.expvar_url = None;
            p.goroutine_url = None;
            p.heap_profile_url = None;
            p.heap_profile_every = None;
            p.force_gc_url = None;
            p.requests_from = None;
            plan.gates.signals.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(shard: Option<(u32, u32)>, shards: Option<u32>) -> ShardArgs {
        ShardArgs {
            shard,
            shards,
            start_at: None,
        }
    }

    #[test]
    fn flags_and_the_job_index() {
        assert_eq!(parse_shard("2/4"), Ok((2, 4)));
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        let s = args(None, Some(3)).resolve(Some("2")).unwrap().unwrap();
        assert_eq!((s.index, s.count), (2, 3));
        assert!(args(None, Some(3)).resolve(Some("3")).is_err());
        let e = args(None, Some(3)).resolve(None).unwrap_err();
        assert!(e.contains(INDEX_ENV), "{e}");
        assert_eq!(args(None, None).resolve(Some("1")), Ok(None));
        assert_eq!(parse_start_at("1700000000.5"), Ok(1_700_000_000_500));
        assert_eq!(
            parse_start_at("2023-11-14T22:13:20Z"),
            Ok(1_700_000_000_000)
        );
        assert!(parse_start_at("tomorrow").is_err());
    }
}
