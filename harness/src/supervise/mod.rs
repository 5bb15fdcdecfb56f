//! supervise: start the target (own cgroup or RLIMIT_AS, logs captured, readiness), watch it
//! die, stop it gracefully; or attach to one that already runs.

pub mod find;
pub mod limit;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::scenario::plan::{AttachPlan, Readiness, SpawnPlan};

/// Why the target could not be started, found or reached.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// The command could not be started at all.
    #[error("cannot start the target `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// It exited before it became ready.
    #[error(
        "the target exited before it was ready ({status}); last lines of its stderr:\n{stderr}"
    )]
    ExitedEarly {
        /// Exit status in words.
        status: String,
        /// Tail of its stderr.
        stderr: String,
    },
    /// It did not become ready in time.
    #[error("the target was not ready after {timeout:?} ({what}); see {log}")]
    NotReady {
        /// The start timeout.
        timeout: Duration,
        /// What was polled.
        what: String,
        /// Where its output is.
        log: String,
    },
    /// Attach: the process is not there.
    #[error("cannot attach: {0}")]
    Attach(String),
    /// Log files could not be created.
    #[error("cannot write the target's logs in {}: {source}", dir.display())]
    Logs {
        /// The run folder.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// How a watched process ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ExitInfo {
    /// Exit status when it exited.
    pub code: Option<i32>,
    /// Signal when one killed it.
    pub signal: Option<i32>,
    /// The kernel OOM killer ended it (cgroup counter rose, or SIGKILL at the memory limit).
    pub oom_killed: bool,
    /// In words.
    pub cause: String,
}

/// A target leakgate started.
pub struct Supervised {
    child: Arc<Mutex<Child>>,
    memory_limit: Option<u64>,
    pid: u32,
    limit: limit::Limit,
    stop_timeout: Duration,
    exit: Arc<Mutex<Option<ExitInfo>>>,
    log_dir: PathBuf,
}

/// Starts `plan.command` with its output captured in `run_dir`, and waits until it is ready.
pub fn spawn(plan: &SpawnPlan, run_dir: &Path) -> Result<Supervised, SuperviseError> {
    let program = plan.command.first().cloned().unwrap_or_default();
    let logs = |source| SuperviseError::Logs {
        dir: run_dir.to_path_buf(),
        source,
    };
    let stderr_path = run_dir.join("target.stderr.log");
    let stdout_log = std::fs::File::create(run_dir.join("target.stdout.log")).map_err(logs)?;
    let stderr_log = std::fs::File::create(&stderr_path).map_err(logs)?;

    let mut cmd = Command::new(&program);
    cmd.args(&plan.command[1..])
        .envs(&plan.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr_log);
    if let Some(cwd) = &plan.cwd {
        cmd.current_dir(cwd);
    }
    let limit = limit::Limit::prepare(plan.memory_limit);
    limit.apply_to(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| SuperviseError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pid = child.id();
    limit.adopt(pid);
    // Copy stdout into its log on a thread, so the child never blocks on a full pipe.
    if let Some(out) = child.stdout.take() {
        let mut log = stdout_log;
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
            }
        });
    }
    let s = Supervised {
        child: Arc::new(Mutex::new(child)),
        memory_limit: plan.memory_limit,
        pid,
        limit,
        stop_timeout: plan.stop_timeout,
        exit: Arc::default(),
        log_dir: run_dir.to_path_buf(),
    };
    s.wait_ready(&plan.ready, plan.start_timeout)?;
    Ok(s)
}

impl Supervised {
    /// Process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The memory limit it was started under, if any.
    pub fn memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    /// The target's own cgroup, when leakgate made one.
    pub fn cgroup(&self) -> Option<PathBuf> {
        self.limit.cgroup_dir()
    }

    fn wait_ready(&self, ready: &Readiness, timeout: Duration) -> Result<(), SuperviseError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(10);
        let what = match ready {
            Readiness::Url { url } => format!("GET {url}"),
            Readiness::Port { addr } => format!("connect {addr}"),
        };
        loop {
            if let Some(info) = self.try_exit() {
                let stderr = tail(&self.log_dir.join("target.stderr.log"), 20);
                return Err(SuperviseError::ExitedEarly {
                    status: info.cause,
                    stderr,
                });
            }
            let ok = match ready {
                Readiness::Url { url } => {
                    crate::probe::http_get(url, Duration::from_secs(1)).is_ok()
                }
                Readiness::Port { addr } => addr.parse().ok().is_some_and(|a| {
                    std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok()
                }),
            };
            if ok {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(SuperviseError::NotReady {
                    timeout,
                    what,
                    log: self.log_dir.join("target.stderr.log").display().to_string(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// How the process ended, if it has (never blocks).
    pub fn try_exit(&self) -> Option<ExitInfo> {
        let mut slot = self.exit.lock().ok()?;
        if slot.is_none() {
            let status = self.child.lock().ok()?.try_wait().ok()??;
            *slot = Some(self.describe(status));
        }
        slot.clone()
    }

    fn describe(&self, status: std::process::ExitStatus) -> ExitInfo {
        use std::os::unix::process::ExitStatusExt;
        let (code, signal) = (status.code(), status.signal());
        let oom =
            self.limit.oom_killed() || (signal == Some(libc::SIGKILL) && self.limit.at_limit());
        let cause = match (code, signal) {
            (Some(c), _) => format!("exited with status {c}"),
            (_, Some(s)) if oom => format!("killed by signal {s} (OOM kill at the memory limit)"),
            (_, Some(s)) => format!("killed by signal {s} ({})", signal_name(s)),
            _ => "ended".into(),
        };
        ExitInfo {
            code,
            signal,
            oom_killed: oom,
            cause,
        }
    }

    /// Stops the target: SIGTERM, then SIGKILL after the grace period. Returns its exit.
    pub fn stop(&self) -> Option<ExitInfo> {
        if let Some(e) = self.try_exit() {
            return Some(e);
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + self.stop_timeout;
        while Instant::now() < deadline {
            if self.try_exit().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.try_exit().is_none()
            && let Ok(mut c) = self.child.lock()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.try_exit()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // No orphan survives leakgate, whatever path led here.
        if self.try_exit().is_none()
            && let Ok(mut c) = self.child.lock()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.limit.remove();
    }
}

/// A service found by pid, pid file and/or cgroup.
#[derive(Debug, Clone)]
pub struct Attached {
    /// Process id, when known.
    pub pid: Option<u32>,
    /// cgroup folder, when known.
    pub cgroup: Option<PathBuf>,
}

/// Resolves an attach plan (pid, pid file, cgroup, systemd unit, container, process name)
/// to a live process and its cgroup.
pub fn attach(plan: &AttachPlan) -> Result<Attached, SuperviseError> {
    let err = |m: String| SuperviseError::Attach(m);
    let proc_root = Path::new("/proc");
    let root = plan
        .cgroup_root
        .clone()
        .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
    let mut cgroup = None;
    if let Some(d) = &plan.cgroup {
        if !d.is_dir() {
            return Err(err(format!("cgroup {} does not exist", d.display())));
        }
        if !d.join("cgroup.procs").exists() {
            return Err(err(format!(
                "{} is not a cgroup folder (it has no cgroup.procs); give a folder under \
                 /sys/fs/cgroup",
                d.display()
            )));
        }
        cgroup = Some(d.clone());
    }
    if let Some(u) = &plan.systemd_unit {
        cgroup = Some(find::systemd_unit_cgroup(&root, u).map_err(|e| err(e.to_string()))?);
    }
    if let Some(c) = &plan.container {
        cgroup = Some(find::container_cgroup(&root, c).map_err(|e| err(e.to_string()))?);
    }
    let pid = match (plan.pid, &plan.pid_file, &plan.process_name) {
        (Some(p), _, _) => Some(p),
        (None, Some(f), _) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| err(format!("pid_file {}: {e}", f.display())))?;
            Some(text.trim().parse().map_err(|_| {
                err(format!(
                    "pid_file {} does not hold a pid: {:?}",
                    f.display(),
                    text.trim()
                ))
            })?)
        }
        (None, None, Some(name)) => Some(
            find::process_by_name(proc_root, name, &[std::process::id()])
                .map_err(|e| err(e.to_string()))?,
        ),
        (None, None, None) => match &cgroup {
            Some(d) => Some(find::main_pid(proc_root, d).map_err(|e| err(e.to_string()))?),
            None => None,
        },
    };
    if let Some(p) = pid
        && !alive(p)
    {
        return Err(err(format!("no process with pid {p}")));
    }
    let cgroup = cgroup.or_else(|| pid.and_then(crate::probe::cgroup::of_pid));
    Ok(Attached { pid, cgroup })
}

/// True while `/proc/<pid>` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            s.rfind(')')
                .and_then(|i| s[i + 1..].split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGINT => "SIGINT",
        _ => "signal",
    }
}
