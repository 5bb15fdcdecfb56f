//! The process exit codes, in one place (documented in the README and `--help`).

/// Exit codes of the `leakgate` binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitCode {
    /// Every gate passed.
    Pass = 0,
    /// A gate failed: a leak or a latency limit.
    GateFailed = 1,
    /// Not enough evidence either way.
    Inconclusive = 2,
    /// The target died (crash, OOM kill) or never became ready.
    TargetDied = 3,
    /// The driver could not hold the planned rate.
    FellBehind = 4,
    /// Bad command-line usage.
    Usage = 64,
    /// Bad scenario file (with file, line and column), or a run folder that cannot be read.
    BadScenario = 65,
    /// A bug in leakgate (a worker panicked): the results are incomplete (EX_SOFTWARE).
    Internal = 70,
    /// The results could not be written: disk full, folder not writable (EX_IOERR).
    Io = 74,
}

impl ExitCode {
    /// The numeric code handed to the operating system.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The exit code table as printed in `--help`.
pub const TABLE: &str = "\
EXIT CODES:
   0  pass
   1  a gate failed: leak or latency limit
   2  inconclusive: not enough evidence either way
   3  the target died (crash, OOM kill) or never became ready
   4  the driver could not hold the planned rate
  64  usage error
  65  bad scenario file (with file, line and column), or an unreadable run folder
  70  internal error: a bug in leakgate (a load worker panicked); results are incomplete
  74  the results could not be written (disk full, folder not writable)";
