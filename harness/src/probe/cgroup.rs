//! cgroup memory, v2 (`memory.current`, `memory.stat`, `memory.events`, `memory.max`) and v1
//! (`memory.usage_in_bytes`, `memory.stat`, `memory.oom_control`, `memory.limit_in_bytes`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Limits at or above this are "no limit" (v1 reports a huge page-aligned number).
const UNLIMITED: f64 = (1u64 << 60) as f64;

/// Reads one cgroup folder.
#[derive(Debug, Clone)]
pub struct CgroupProbe {
    dir: PathBuf,
    v2: bool,
}

impl CgroupProbe {
    /// A probe of the cgroup folder `dir` (v2 when it has `memory.current`).
    pub fn new(dir: &Path) -> Self {
        Self {
            v2: dir.join("memory.current").exists(),
            dir: dir.to_path_buf(),
        }
    }

    /// The cgroup folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read(&self, f: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(f)).ok()
    }

    fn num(&self, f: &str) -> Option<f64> {
        self.read(f)?.trim().parse().ok()
    }

    /// Adds this tick's signals; a file that is missing is an absent signal.
    pub fn sample(&self, out: &mut BTreeMap<String, f64>) -> Result<(), String> {
        if !self.dir.is_dir() {
            return Err(format!("cgroup {} is gone", self.dir.display()));
        }
        let stat = self
            .read("memory.stat")
            .map(|s| keyed(&s))
            .unwrap_or_default();
        if self.v2 {
            put(out, "cgroup_memory_bytes", self.num("memory.current"));
            put(out, "cgroup_anon_bytes", stat.get("anon").copied());
            put(out, "cgroup_file_bytes", stat.get("file").copied());
            let events = self
                .read("memory.events")
                .map(|s| keyed(&s))
                .unwrap_or_default();
            put(out, "cgroup_oom_kills", events.get("oom_kill").copied());
            let max = self
                .read("memory.max")
                .and_then(|s| s.trim().parse::<f64>().ok());
            put(out, "cgroup_limit_bytes", max.filter(|m| *m < UNLIMITED));
        } else {
            put(
                out,
                "cgroup_memory_bytes",
                self.num("memory.usage_in_bytes"),
            );
            put(
                out,
                "cgroup_anon_bytes",
                stat.get("total_rss").or(stat.get("rss")).copied(),
            );
            put(
                out,
                "cgroup_file_bytes",
                stat.get("total_cache").or(stat.get("cache")).copied(),
            );
            let oom = self
                .read("memory.oom_control")
                .map(|s| keyed(&s))
                .unwrap_or_default();
            put(out, "cgroup_oom_kills", oom.get("oom_kill").copied());
            put(
                out,
                "cgroup_limit_bytes",
                self.num("memory.limit_in_bytes").filter(|m| *m < UNLIMITED),
            );
        }
        Ok(())
    }

    /// The OOM-kill count, when the cgroup reports one.
    pub fn oom_kills(&self) -> Option<f64> {
        let mut m = BTreeMap::new();
        self.sample(&mut m).ok()?;
        m.get("cgroup_oom_kills").copied()
    }
}

fn put(out: &mut BTreeMap<String, f64>, k: &str, v: Option<f64>) {
    if let Some(v) = v {
        out.insert(k.into(), v);
    }
}

/// `key value` lines.
fn keyed(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// The memory cgroup folder of `pid`: v2 unified path, or the v1 `memory` controller's path.
pub fn of_pid(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    find(&text, Path::new("/sys/fs/cgroup"))
}

/// Finds the memory cgroup folder from `/proc/<pid>/cgroup` text under a mount `root`.
pub fn find(proc_cgroup: &str, root: &Path) -> Option<PathBuf> {
    let mut unified = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            let d = root.join("memory").join(rel);
            if d.join("memory.usage_in_bytes").exists() {
                return Some(d);
            }
        }
        if controllers.is_empty() {
            for base in [root.to_path_buf(), root.join("unified")] {
                let d = base.join(rel);
                if d.join("memory.current").exists() {
                    unified = Some(d);
                }
            }
        }
    }
    unified
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (f, t) in files {
            std::fs::write(dir.join(f), t).unwrap();
        }
    }

    #[test]
    fn reads_v2() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                ("memory.current", "1048576\n"),
                ("memory.stat", "anon 600000\nfile 400000\nkernel 1\n"),
                ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
                ("memory.max", "max\n"),
            ],
        );
        let mut m = BTreeMap::new();
        CgroupProbe::new(d.path()).sample(&mut m).unwrap();
        assert_eq!(m["cgroup_memory_bytes"], 1048576.0);
        assert_eq!(m["cgroup_anon_bytes"], 600000.0);
        assert_eq!(m["cgroup_oom_kills"], 1.0);
        assert!(!m.contains_key("cgroup_limit_bytes"), "\"max\" is no limit");
        write(d.path(), &[("memory.max", "67108864\n")]);
        m.clear();
        CgroupProbe::new(d.path()).sample(&mut m).unwrap();
        assert_eq!(m["cgroup_limit_bytes"], 67108864.0);
    }

    #[test]
    fn reads_v1() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                ("memory.usage_in_bytes", "2000\n"),
                (
                    "memory.stat",
                    "cache 10\nrss 20\ntotal_cache 11\ntotal_rss 21\n",
                ),
                (
                    "memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
                ),
                ("memory.limit_in_bytes", "9223372036854771712\n"),
            ],
        );
        let mut m = BTreeMap::new();
        CgroupProbe::new(d.path()).sample(&mut m).unwrap();
        assert_eq!(m["cgroup_memory_bytes"], 2000.0);
        assert_eq!(m["cgroup_anon_bytes"], 21.0);
        assert_eq!(m["cgroup_file_bytes"], 11.0);
        assert_eq!(m["cgroup_oom_kills"], 2.0);
        assert!(!m.contains_key("cgroup_limit_bytes"));
    }

    #[test]
    fn finds_the_folder() {
        let root = tempfile::tempdir().unwrap();
        let v1 = root.path().join("memory/a/b");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(v1.join("memory.usage_in_bytes"), "1").unwrap();
        assert_eq!(find("4:memory:/a/b\n0::/\n", root.path()), Some(v1));
        let v2 = root.path().join("svc.slice");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("memory.current"), "1").unwrap();
        assert_eq!(find("0::/svc.slice\n", root.path()), Some(v2));
        assert_eq!(find("garbage", root.path()), None);
    }

    /// This process's own memory cgroup, found and read for real: `of_pid` names a folder under
    /// /sys/fs/cgroup that lists this process, and sampling it reports memory in use. Machines
    /// without a memory cgroup skip it with the reason, except under CI (`CI` set), where it
    /// fails: CI machines have one (cgroup v1 `memory` or v2), and a probe that cannot find it
    /// there must not pass.
    #[test]
    fn this_machine_has_a_memory_cgroup() {
        let pid = std::process::id();
        let Some(dir) = of_pid(pid) else {
            let why = format!(
                "no memory cgroup folder under /sys/fs/cgroup for this process; \
                 /proc/self/cgroup:\n{}",
                std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default()
            );
            if std::env::var_os("CI").is_some() {
                panic!("{why}CI is set, so a missing memory cgroup fails this test");
            }
            eprintln!("SKIPPED this_machine_has_a_memory_cgroup: {why}");
            return;
        };
        assert!(
            dir.starts_with("/sys/fs/cgroup") && dir.is_dir(),
            "{}",
            dir.display()
        );
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|l| l.trim() == pid.to_string()),
            "{}/cgroup.procs does not list this process ({pid}): {procs}",
            dir.display()
        );
        let mut m = BTreeMap::new();
        CgroupProbe::new(&dir).sample(&mut m).unwrap();
        let bytes = m.get("cgroup_memory_bytes").copied().unwrap_or(0.0);
        assert!(
            bytes > 0.0,
            "{}: cgroup_memory_bytes {bytes}, signals {m:?}",
            dir.display()
        );
    }
}
