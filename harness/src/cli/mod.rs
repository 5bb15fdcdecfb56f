//! cli: the `leakgate` command line. Parses flags into a `Plan` and hands it to the run.

mod adhoc;
mod analyze;
mod output;
mod report;
mod run;
mod shard;
mod watch;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit::{self, ExitCode};

/// leakgate: open-loop load with a memory-leak verdict.
#[derive(Debug, Parser)]
#[command(name = "leakgate", version, about, after_help = exit::TABLE)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario file (spawn or attach, load, probes, verdict), or drive a URL ad hoc.
    Run(Box<RunArgs>),
    /// Judge a service that already runs (by pid, cgroup, systemd unit, container or process
    /// name) on its own traffic: rolling verdict, live /metrics and /verdict, same exit codes.
    Watch(Box<watch::WatchArgs>),
    /// Validate a scenario file and print the resolved plan (exit 65 on any mistake).
    Check(CheckArgs),
    /// Judge a recorded samples.ndjson or a two-column CSV (time,value) without running load.
    Analyze(analyze::AnalyzeArgs),
    /// Rebuild junit.xml, summary.md and report.html of a run folder from its files.
    Report(report::ReportArgs),
    /// Compare two run folders; exit 1 when the new one regressed (p99, slopes, target death).
    Compare(report::CompareArgs),
    /// Merge the run folders of a sharded load (`run --shard I/N`) into one run, judged and
    /// reported as a single run; exits with its verdict.
    Merge(report::MergeArgs),
    /// Print the JSON Schema of summary.json.
    Schema,
    /// Show what grew between two pprof heap profiles, by allocation site (a run folder's
    /// heap-start.pb.gz and heap-end.pb.gz, or any two).
    Heapdiff(report::HeapdiffArgs),
}

/// `leakgate run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A scenario file (`.toml`) or a URL to drive ad hoc (`http://127.0.0.1:8080/x`).
    pub target: String,
    /// Override a scenario value: `--set load.connections=64` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Arrival rate in requests per second; without it a URL run goes as fast as it can.
    #[arg(long, short = 'r', allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// How long to drive (a URL run), or the length of the steady phase (a scenario).
    #[arg(long, short = 'd', value_parser = parse_duration, allow_hyphen_values = true)]
    pub duration: Option<std::time::Duration>,
    #[command(flatten)]
    pub adhoc: adhoc::AdhocArgs,
    #[command(flatten)]
    pub shard: shard::ShardArgs,
    /// Stop as soon as the verdict is decided (leak proven, or clean proven: two rolling
    /// evaluations in a row), and print the time to verdict. `--until-verdict=all` waits for
    /// every gate to be decided, so a leak names all the signals that show it.
    #[arg(long, value_enum, value_name = "WHEN", num_args = 0..=1, require_equals = true,
          default_missing_value = "first")]
    pub until_verdict: Option<UntilVerdict>,
    /// When the verdict is still inconclusive at the planned end, go on (the last steady
    /// phase) for up to this long and stop as soon as it is decided.
    #[arg(long, value_parser = parse_duration)]
    pub extend_if_inconclusive: Option<std::time::Duration>,
    /// Judge the run so far this often (default with --until-verdict: a twentieth of the
    /// planned load, 1 s to 1 min).
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub evaluate_every: Option<std::time::Duration>,
    /// Serve /metrics and /verdict while the run goes (default address 127.0.0.1:9090).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:9090")]
    pub listen: Option<String>,
    /// Allow --listen on an address other hosts can reach.
    #[arg(long, requires = "listen")]
    pub listen_public: bool,
    /// Merge samples older than this into one record per minute (windows exactly).
    #[arg(long, default_value = "10m", value_parser = parse_duration, allow_hyphen_values = true)]
    pub compact_after: std::time::Duration,
    /// Seal samples.ndjson into numbered segment files this often (copy them off while it goes).
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub segment: Option<std::time::Duration>,
    /// Parent folder of the run folder.
    #[arg(long, default_value = "results")]
    pub results_dir: PathBuf,
    /// No live progress bar (plain lines every few seconds instead).
    #[arg(long)]
    pub no_progress: bool,
    /// Print only the final summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `leakgate check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The scenario file.
    pub file: PathBuf,
    /// Override a value: `--set load.connections=64` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::scenario::units::parse_duration(s)
}

/// Keeps leakgate's own RSS flat over a day-long soak with glibc's allocator: buffers of 64 KiB
/// and more (every decoded HdrHistogram is ~240 KiB) are mapped and unmapped on their own
/// instead of being carved from, and fragmenting, the heap, which glibc's dynamic threshold
/// would otherwise do after the first one is freed; and at most two arenas, not one per
/// thread.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called first thing in main, before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Parses the process arguments, runs, and returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    0
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    print!("{}", e.render());
                    eprintln!("leakgate: no command given: see the commands above");
                    ExitCode::Usage.code()
                }
                _ => {
                    eprintln!("leakgate: {}", clap_line(&e));
                    ExitCode::Usage.code()
                }
            };
        }
    };
    dispatch(cli).code()
}

/// A clap error on one line: the message and its tips, without the usage and the pointer to
/// `--help`.
fn clap_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut out = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("Usage:") || line.starts_with("For more information")
        {
            continue;
        }
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line.strip_prefix("error: ").unwrap_or(line));
    }
    out
}

/// Runs a parsed command line.
pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Watch(args) => watch::watch(*args),
        Command::Check(args) => run::check(args),
        Command::Analyze(args) => analyze::analyze(args),
        Command::Report(args) => report::report(args),
        Command::Compare(args) => report::compare(args),
        Command::Heapdiff(args) => report::heapdiff(args),
        Command::Merge(args) => report::merge(args),
        Command::Schema => {
            println!("{}", crate::report::summary::schema_json());
            ExitCode::Pass
        }
    }
}

/// Splits `KEY=VALUE` overrides.
fn overrides(set: &[String]) -> Result<Vec<(String, String)>, String> {
    set.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("--set expects KEY=VALUE, got \"{kv}\""))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn overrides_split() {
        assert_eq!(
            overrides(&["a.b=1".into()]).unwrap(),
            vec![("a.b".to_string(), "1".to_string())]
        );
        assert!(overrides(&["nokey".into()]).is_err());
        assert!(overrides(&["=1".into()]).is_err());
    }
}

/// When `--until-verdict` may end a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UntilVerdict {
    /// At the first decided outcome: a gate fails, or every gate passes.
    First,
    /// Once every gate is decided (passed or failed): the whole evidence of a leak.
    All,
}

impl UntilVerdict {
    /// Sets `soak` to stop as `when` says (None: leaves it as the scenario has it).
    pub fn apply(when: Option<Self>, soak: &mut crate::scenario::plan::SoakPlan) {
        if let Some(w) = when {
            soak.until_verdict = true;
            soak.every_gate |= w == Self::All;
        }
    }
}
