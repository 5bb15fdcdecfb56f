//! A memory limit for a spawned target: its own cgroup (v2 `memory.max` or v1
//! `memory.limit_in_bytes`) where leakgate may create one, RLIMIT_AS otherwise.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::probe::cgroup::CgroupProbe;

/// How the limit is enforced.
#[derive(Debug)]
pub enum Limit {
    /// No limit asked for.
    None,
    /// A cgroup leakgate created for the target.
    Cgroup {
        /// The folder.
        dir: PathBuf,
        /// The limit in bytes.
        bytes: u64,
    },
    /// No cgroup could be made: address-space limit on the process.
    AddressSpace(u64),
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Limit {
    /// Prepares a limit of `bytes` (creating the cgroup now, so errors surface before spawn).
    pub fn prepare(bytes: Option<u64>) -> Self {
        let Some(bytes) = bytes else {
            return Limit::None;
        };
        let name = format!(
            "leakgate-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        match make_cgroup(&name, bytes) {
            Some(dir) => Limit::Cgroup { dir, bytes },
            None => Limit::AddressSpace(bytes),
        }
    }

    /// Makes the child join the cgroup (or take the rlimit) before it executes anything.
    pub fn apply_to(&self, cmd: &mut Command) {
        match self {
            Limit::None => {}
            Limit::Cgroup { dir, .. } => {
                let Ok(procs) =
                    CString::new(dir.join("cgroup.procs").as_os_str().as_encoded_bytes())
                else {
                    return;
                };
                // SAFETY: the hook only calls async-signal-safe syscalls (open, write, close).
                unsafe {
                    cmd.pre_exec(move || {
                        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                        if fd >= 0 {
                            // Writing "0" moves the writing process itself.
                            libc::write(fd, b"0".as_ptr().cast(), 1);
                            libc::close(fd);
                        }
                        Ok(())
                    });
                }
            }
            Limit::AddressSpace(bytes) => {
                let bytes = *bytes;
                // SAFETY: setrlimit is async-signal-safe.
                unsafe {
                    cmd.pre_exec(move || {
                        let lim = libc::rlimit {
                            rlim_cur: bytes as libc::rlim_t,
                            rlim_max: bytes as libc::rlim_t,
                        };
                        libc::setrlimit(libc::RLIMIT_AS, &lim);
                        Ok(())
                    });
                }
            }
        }
    }

    /// Double-checks the child landed in the cgroup (the pre-exec write may have failed).
    pub fn adopt(&self, pid: u32) {
        if let Limit::Cgroup { dir, .. } = self {
            let _ = std::fs::write(dir.join("cgroup.procs"), pid.to_string());
        }
    }

    /// The cgroup folder, when there is one.
    pub fn cgroup_dir(&self) -> Option<PathBuf> {
        match self {
            Limit::Cgroup { dir, .. } => Some(dir.clone()),
            _ => None,
        }
    }

    /// True when the cgroup counted an OOM kill.
    pub fn oom_killed(&self) -> bool {
        match self {
            Limit::Cgroup { dir, .. } => CgroupProbe::new(dir).oom_kills().is_some_and(|n| n > 0.0),
            _ => false,
        }
    }

    /// True when memory use is (or peaked) within 5 % of the limit.
    pub fn at_limit(&self) -> bool {
        match self {
            Limit::Cgroup { dir, bytes } => {
                let peak = [
                    "memory.max_usage_in_bytes",
                    "memory.peak",
                    "memory.current",
                    "memory.usage_in_bytes",
                ]
                .iter()
                .filter_map(|f| {
                    std::fs::read_to_string(dir.join(f))
                        .ok()?
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .fold(0.0, f64::max);
                peak >= *bytes as f64 * 0.95
            }
            _ => false,
        }
    }

    /// Removes the cgroup (once the target is gone).
    pub fn remove(&self) {
        if let Limit::Cgroup { dir, .. } = self {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Creates a child memory cgroup of our own with `memory.max` / `memory.limit_in_bytes`.
fn make_cgroup(name: &str, bytes: u64) -> Option<PathBuf> {
    let own = crate::probe::cgroup::of_pid(std::process::id())?;
    let dir = own.join(name);
    std::fs::create_dir(&dir).ok()?;
    let ok = if dir.join("memory.max").exists() {
        write(&dir, "memory.max", bytes).is_some()
    } else {
        // v1: without a swap limit the kernel may swap instead of killing; set it when offered.
        let ok = write(&dir, "memory.limit_in_bytes", bytes).is_some();
        let _ = write(&dir, "memory.memsw.limit_in_bytes", bytes);
        ok
    };
    if ok {
        Some(dir)
    } else {
        let _ = std::fs::remove_dir(&dir);
        None
    }
}

fn write(dir: &Path, file: &str, v: u64) -> Option<()> {
    std::fs::write(dir.join(file), v.to_string()).ok()
}
