//! `leakgate report RUN_DIR`, `leakgate compare BASE NEW` and `leakgate heapdiff`: reports
//! rebuilt from a run folder's files, two runs side by side for a pull-request gate, and the
//! heap growth between two profiles.

use std::path::PathBuf;

use clap::Args;

use crate::exit::ExitCode;
use crate::report::compare::{self, Tolerance};
use crate::report::run_data::RunData;

/// `leakgate report RUN_DIR`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run folder (`results/<time>-<scenario>`).
    pub run_dir: PathBuf,
}

/// `leakgate compare BASE_RUN NEW_RUN`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The reference run folder (e.g. the main branch's stored run).
    pub base: PathBuf,
    /// The run folder to judge against it.
    pub new: PathBuf,
    /// Allowed p99 rise: `10%` or `0.1`.
    #[arg(long, default_value = "10%", value_parser = parse_share, allow_hyphen_values = true)]
    pub p99_tolerance: f64,
    /// p99 rises smaller than this never count (loopback jitter): `1ms`.
    #[arg(long, default_value = "1ms", value_parser = parse_ms, allow_hyphen_values = true)]
    pub p99_floor: f64,
    /// Allowed rise of a slope that was already over its limit in the base run (a known leak
    /// on main): `10%` or `0.1`. A slope that newly crosses its limit always regresses.
    #[arg(long, default_value = "10%", value_parser = parse_share, allow_hyphen_values = true)]
    pub slope_tolerance: f64,
}

/// `leakgate heapdiff START END`.
#[derive(Debug, Args)]
pub struct HeapdiffArgs {
    /// The profile taken first (`heap-start.pb.gz`), or a run folder holding both.
    pub start: PathBuf,
    /// The profile taken later (`heap-end.pb.gz`); omitted when START is a run folder.
    pub end: Option<PathBuf>,
    /// How many sites to list.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    pub top: usize,
}

/// Prints the heap growth by allocation site as Markdown; exit 65 when a profile is unreadable.
pub fn heapdiff(a: HeapdiffArgs) -> ExitCode {
    let (start, end) = match a.end {
        Some(end) => (a.start, end),
        None => (
            a.start.join(crate::heap::START_NAME),
            a.start.join(crate::heap::END_NAME),
        ),
    };
    let name = |p: &PathBuf| {
        p.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    match crate::heap::diff_files(&start, &end, a.top) {
        Ok(d) => {
            let text = crate::report::markdown::heap(&Ok(d), &name(&start), &name(&end));
            print!("{text}");
            ExitCode::Pass
        }
        Err(e) => {
            eprintln!("leakgate heapdiff: {e}");
            ExitCode::BadScenario
        }
    }
}

/// Rewrites `junit.xml`, `summary.md` and `report.html` from the folder's files; a run that
/// was cut off (leakgate killed) is judged first, on the samples it wrote.
pub fn report(a: ReportArgs) -> ExitCode {
    match crate::run::recover::recover(&a.run_dir) {
        Ok(Some(s)) => {
            eprintln!(
                "leakgate report: {} was cut off before its end; judged now on what it wrote",
                a.run_dir.display()
            );
            if let Some(v) = &s.verdict {
                eprintln!("{}", super::output::verdict(v));
            }
            eprintln!(
                "Exit {} (as the run would have ended): {}",
                s.exit_code, s.exit_reason
            );
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("leakgate report: {e}");
            return ExitCode::BadScenario;
        }
    }
    match crate::report::write_all(&a.run_dir) {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            ExitCode::Pass
        }
        Err(e) => {
            eprintln!("leakgate report: {e}");
            ExitCode::BadScenario
        }
    }
}

/// Prints the comparison; exit 1 when the new run regressed.
pub fn compare(a: CompareArgs) -> ExitCode {
    let load = |dir: &PathBuf| {
        RunData::load(dir).map_err(|e| {
            eprintln!("leakgate compare: {e}");
            ExitCode::BadScenario
        })
    };
    let (base, new) = match (load(&a.base), load(&a.new)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let tol = Tolerance {
        p99_relative: a.p99_tolerance,
        p99_floor_ms: a.p99_floor,
        slope_relative: a.slope_tolerance,
    };
    let c = compare::compare(&base, &new, tol);
    print!("{}", compare::render(&c));
    if c.regressed() {
        ExitCode::GateFailed
    } else {
        ExitCode::Pass
    }
}

/// `10%` → 0.1; `0.1` → 0.1.
fn parse_share(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("\"{s}\" is not a share: write 10% or 0.1"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("\"{s}\" must be zero or more"))
    }
}

/// `1ms`, `0.5ms`, `2s` → milliseconds.
fn parse_ms(s: &str) -> Result<f64, String> {
    crate::scenario::units::parse_duration(s).map(|d| d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_parse_both_ways() {
        assert_eq!(parse_share("10%").unwrap(), 0.1);
        assert_eq!(parse_share("0.25").unwrap(), 0.25);
        assert!(parse_share("-1").is_err());
        assert!(parse_share("ten").is_err());
    }
}

/// `leakgate merge DIR... --out DIR`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The run folders of every shard (`--shard I/N` runs of one scenario).
    pub dirs: Vec<PathBuf>,
    /// The merged run folder to write (new, or an empty folder).
    #[arg(long)]
    pub out: PathBuf,
}

/// Merges shard folders into one run, judged and reported as a single run; exits with its
/// verdict (4 when any shard fell behind), 64/65 when the folders are not shards of one run.
pub fn merge(a: MergeArgs) -> ExitCode {
    match crate::merge::merge(&a.dirs, &a.out) {
        Ok(o) => {
            print!("{}", super::output::outcome(&o));
            o.exit
        }
        Err(e) => {
            eprintln!("leakgate merge: {e}");
            e.exit_code()
        }
    }
}
