//! find: a service someone else started (systemd, docker, a pod), by process name, unit or
//! container id, and the limits it runs under.
//!
//! Every function takes its roots as parameters so the tests run on fixture folders; the real
//! ones are [`PROC_ROOT`] and [`CGROUP_ROOT`].

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where the kernel's process table is mounted.
pub const PROC_ROOT: &str = "/proc";
/// Where the cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How deep below a cgroup root units and containers are looked for.
const MAX_DEPTH: usize = 8;
/// How many candidates an error lists.
const MAX_LISTED: usize = 10;
/// cgroup v1 limits at or above this are "no limit" (it reports a huge page-aligned number).
const V1_UNLIMITED: u64 = 1 << 62;
/// Systemd and container-runtime scope names: `<prefix><full id>.scope`.
const SCOPE_PREFIXES: [&str; 4] = ["docker-", "cri-containerd-", "crio-", "libpod-"];

/// Why a running service could not be found.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// The process table could not be listed.
    #[error("cannot list {}: {source}; is procfs mounted there?", root.display())]
    ProcRoot {
        /// The proc mount.
        root: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No process has that name.
    #[error(
        "no process named {name:?} (looked at {root}/*/comm and the program name of each command \
         line); give --pid instead"
    )]
    NoProcess {
        /// The name asked for.
        name: String,
        /// The proc mount.
        root: String,
    },
    /// Several processes have that name.
    #[error("{count} processes are named {name:?}: {listed}; pick one with --pid")]
    SeveralProcesses {
        /// The name asked for.
        name: String,
        /// How many matched.
        count: usize,
        /// Up to ten `pid (command line)`.
        listed: String,
    },
    /// No cgroup folder carries the unit's name.
    #[error(
        "no cgroup named {unit:?} under {searched} (up to {MAX_DEPTH} levels deep); check the \
         unit with `systemctl status {unit}`, or give --cgroup"
    )]
    NoUnit {
        /// The unit, with its suffix.
        unit: String,
        /// The roots searched.
        searched: String,
    },
    /// The container id is not one.
    #[error(
        "{id:?} is not a container id: it must be 4 to 64 lowercase hex characters (the id or a \
         prefix of it, as `docker ps --no-trunc` or `crictl ps` shows)"
    )]
    BadContainerId {
        /// What was given.
        id: String,
    },
    /// No cgroup folder belongs to the container.
    #[error(
        "no cgroup of container {id} under {searched} (up to {MAX_DEPTH} levels deep); check the \
         id with `docker ps --no-trunc` or `crictl ps`, or give --cgroup"
    )]
    NoContainer {
        /// The id or prefix.
        id: String,
        /// The roots searched.
        searched: String,
    },
    /// A short id matches several containers.
    #[error("container id {id} matches {count} containers: {listed}; give more of the id")]
    AmbiguousContainer {
        /// The prefix.
        id: String,
        /// How many full ids matched.
        count: usize,
        /// Up to ten of them.
        listed: String,
    },
    /// The cgroup holds no process.
    #[error(
        "cgroup {} holds no process (read cgroup.procs there and in its sub-folders); is the \
         service running? Otherwise give --pid", dir.display()
    )]
    EmptyCgroup {
        /// The cgroup folder.
        dir: PathBuf,
    },
    /// The cgroup lists processes, but none is alive in the process table.
    #[error(
        "cgroup {} lists pids {pids} but none is a live process in {root}; they have exited, or \
         live in another pid namespace: give --pid", dir.display()
    )]
    GoneProcesses {
        /// The cgroup folder.
        dir: PathBuf,
        /// The pids listed.
        pids: String,
        /// The proc mount.
        root: String,
    },
}

/// The one live process whose `comm` or program file name is `name`, skipping `exclude`.
pub fn process_by_name(proc_root: &Path, name: &str, exclude: &[u32]) -> Result<u32, FindError> {
    let entries = std::fs::read_dir(proc_root).map_err(|source| FindError::ProcRoot {
        root: proc_root.to_path_buf(),
        source,
    })?;
    let mut found: Vec<(u32, String)> = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if exclude.contains(&pid) {
            continue;
        }
        let dir = entry.path();
        // A process that vanished while we looked, or a zombie, is no candidate.
        match stat_fields(&dir) {
            Some(f) if f.first().is_some_and(|s| s != "Z") => {}
            _ => continue,
        }
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let comm = comm.trim();
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        let program = Path::new(OsStr::from_bytes(argv0)).file_name();
        if (!comm.is_empty() && comm == name) || program == Some(OsStr::new(name)) {
            found.push((pid, command_line(&cmdline, comm)));
        }
    }
    found.sort();
    match found.as_slice() {
        [] => Err(FindError::NoProcess {
            name: name.to_string(),
            root: proc_root.display().to_string(),
        }),
        [(pid, _)] => Ok(*pid),
        all => Err(FindError::SeveralProcesses {
            name: name.to_string(),
            count: all.len(),
            listed: listing(all.iter().map(|(p, c)| format!("{p} ({c})"))),
        }),
    }
}

/// The cgroup folder of a systemd unit (`api` means `api.service`), a memory cgroup if any.
pub fn systemd_unit_cgroup(cgroup_root: &Path, unit: &str) -> Result<PathBuf, FindError> {
    let unit = if unit.contains('.') {
        unit.to_string()
    } else {
        format!("{unit}.service")
    };
    let roots = search_roots(cgroup_root);
    let mut matches = Vec::new();
    walk(&roots, |name, dir| {
        if name == unit {
            matches.push(dir.to_path_buf());
        }
    });
    prefer_memory(matches).ok_or_else(|| FindError::NoUnit {
        unit,
        searched: describe_roots(&roots),
    })
}

/// The cgroup folder of a docker/containerd/CRI-O/podman container, by id or unique prefix.
pub fn container_cgroup(cgroup_root: &Path, id: &str) -> Result<PathBuf, FindError> {
    if !(4..=64).contains(&id.len()) || !is_lower_hex(id) {
        return Err(FindError::BadContainerId { id: id.to_string() });
    }
    let roots = search_roots(cgroup_root);
    let mut matches: Vec<(String, PathBuf)> = Vec::new();
    walk(&roots, |name, dir| {
        if let Some(full) = container_id_of(name, id) {
            matches.push((full.to_string(), dir.to_path_buf()));
        }
    });
    // The exact id wins over longer ids that merely start with it.
    if matches.iter().any(|(full, _)| full == id) {
        matches.retain(|(full, _)| full == id);
    }
    let ids: BTreeSet<&str> = matches.iter().map(|(full, _)| full.as_str()).collect();
    if ids.len() > 1 {
        return Err(FindError::AmbiguousContainer {
            id: id.to_string(),
            count: ids.len(),
            listed: listing(ids.iter().map(|s| s.to_string())),
        });
    }
    prefer_memory(matches.into_iter().map(|(_, d)| d).collect()).ok_or_else(|| {
        FindError::NoContainer {
            id: id.to_string(),
            searched: describe_roots(&roots),
        }
    })
}

/// The service's main process: the oldest pid in the cgroup, or in its sub-folders if it has none.
pub fn main_pid(proc_root: &Path, cgroup_dir: &Path) -> Result<u32, FindError> {
    let mut pids = cgroup_procs(cgroup_dir);
    if pids.is_empty() {
        walk(&[cgroup_dir.to_path_buf()], |_, dir| {
            pids.extend(cgroup_procs(dir));
        });
    }
    pids.sort_unstable();
    pids.dedup();
    if pids.is_empty() {
        return Err(FindError::EmptyCgroup {
            dir: cgroup_dir.to_path_buf(),
        });
    }
    pids.iter()
        .filter_map(|&pid| Some((start_time(proc_root, pid)?, pid)))
        .min()
        .map(|(_, pid)| pid)
        .ok_or_else(|| FindError::GoneProcesses {
            dir: cgroup_dir.to_path_buf(),
            pids: listing(pids.iter().map(u32::to_string)),
            root: proc_root.display().to_string(),
        })
}

/// The soft "Max address space" limit of `pid` in bytes (`None` when unlimited or unreadable).
pub fn address_space_limit(proc_root: &Path, pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("limits")).ok()?;
    let rest = text
        .lines()
        .find_map(|l| l.strip_prefix("Max address space"))?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The memory limit of a cgroup folder in bytes: v2 `memory.max`, v1 `memory.limit_in_bytes`.
pub fn cgroup_memory_limit(dir: &Path) -> Option<u64> {
    if let Ok(max) = std::fs::read_to_string(dir.join("memory.max")) {
        // "max" is no limit.
        return max.trim().parse().ok();
    }
    let v1: u64 = std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (v1 < V1_UNLIMITED).then_some(v1)
}

/// The fields of `/proc/<pid>/stat` after the last `)`: state first (field 3), then 4, 5, ...
fn stat_fields(pid_dir: &Path) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(pid_dir.join("stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// The pids in a folder's `cgroup.procs` (none when it has no such file).
fn cgroup_procs(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|&pid: &u32| pid != 0)
        .collect()
}

/// Start time (field 22 of `stat`, clock ticks after boot) of a live, non-zombie process.
fn start_time(proc_root: &Path, pid: u32) -> Option<u64> {
    let fields = stat_fields(&proc_root.join(pid.to_string()))?;
    if fields.first()? == "Z" {
        return None;
    }
    fields.get(22 - 3)?.parse().ok()
}

/// A command line for people: arguments joined by spaces, or `[comm]` for kernel threads.
fn command_line(cmdline: &[u8], comm: &str) -> String {
    let text = String::from_utf8_lossy(cmdline).replace('\0', " ");
    let text = text.trim();
    if text.is_empty() {
        return format!("[{comm}]");
    }
    let mut short: String = text.chars().take(100).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// Up to [`MAX_LISTED`] items, comma-separated, and how many more there are.
fn listing(items: impl ExactSizeIterator<Item = String>) -> String {
    let total = items.len();
    let mut out: Vec<String> = items.take(MAX_LISTED).collect();
    if total > MAX_LISTED {
        out.push(format!("and {} more", total - MAX_LISTED));
    }
    out.join(", ")
}

/// The v1 memory controller's tree, then the v2 unified tree.
fn search_roots(cgroup_root: &Path) -> Vec<PathBuf> {
    let unified = if cgroup_root.join("cgroup.controllers").exists() {
        cgroup_root.to_path_buf()
    } else {
        cgroup_root.join("unified")
    };
    vec![cgroup_root.join("memory"), unified]
}

fn describe_roots(roots: &[PathBuf]) -> String {
    let names: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    names.join(" and ")
}

/// Visits every folder below `roots`, breadth-first, up to [`MAX_DEPTH`] levels deep, in name
/// order; symlinks are not followed.
fn walk(roots: &[PathBuf], mut visit: impl FnMut(&str, &Path)) {
    for root in roots {
        let mut queue = VecDeque::from([(root.clone(), 0usize)]);
        while let Some((dir, depth)) = queue.pop_front() {
            if depth >= MAX_DEPTH {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut children: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            children.sort();
            for child in children {
                if let Some(name) = child.file_name().and_then(OsStr::to_str) {
                    visit(name, &child);
                }
                queue.push_back((child, depth + 1));
            }
        }
    }
}

/// v1 has `memory.usage_in_bytes`, v2 `memory.current`.
fn is_memory_cgroup(dir: &Path) -> bool {
    dir.join("memory.usage_in_bytes").exists() || dir.join("memory.current").exists()
}

/// The first match that is a memory cgroup, else the first match at all.
fn prefer_memory(matches: Vec<PathBuf>) -> Option<PathBuf> {
    match matches.iter().position(|d| is_memory_cgroup(d)) {
        Some(i) => matches.into_iter().nth(i),
        None => matches.into_iter().next(),
    }
}

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The full container id a cgroup folder name carries, if it starts with `id`:
/// `docker-<id>.scope` and the like (systemd driver) or a bare hex id (cgroupfs driver).
fn container_id_of<'a>(name: &'a str, id: &str) -> Option<&'a str> {
    let core = SCOPE_PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p)?.strip_suffix(".scope"))
        .unwrap_or(name);
    (core.starts_with(id) && is_lower_hex(core)).then_some(core)
}

#[cfg(test)]
mod tests;
