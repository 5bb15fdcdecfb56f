//! `/proc/<pid>`: RSS (anon, file, shmem), VmSize, VmHWM, threads, faults, CPU, fds, PSS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Reads process signals from a `/proc`-like root (a folder in tests).
#[derive(Debug, Clone)]
pub struct ProcProbe {
    dir: PathBuf,
    root: PathBuf,
    pid: u32,
    smaps: bool,
    tree: bool,
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

impl ProcProbe {
    /// A probe of `pid` under `/proc`.
    pub fn new(pid: u32, smaps: bool, tree: bool) -> Self {
        Self::with_root(Path::new("/proc"), pid, smaps, tree)
    }

    /// A probe of `pid` under another root (tests use fixture folders).
    pub fn with_root(root: &Path, pid: u32, smaps: bool, tree: bool) -> Self {
        Self {
            dir: root.join(pid.to_string()),
            root: root.to_path_buf(),
            pid,
            smaps,
            tree,
        }
    }

    /// Adds this tick's signals; `Err` when the process is gone.
    pub fn sample(&self, out: &mut BTreeMap<String, f64>) -> Result<(), String> {
        let status = std::fs::read_to_string(self.dir.join("status"))
            .map_err(|e| format!("process {} is gone ({e})", self.pid))?;
        parse_status(&status, out);
        if let Ok(stat) = std::fs::read_to_string(self.dir.join("stat")) {
            parse_stat(&stat, clk_tck(), out);
        }
        if let Ok(fds) = std::fs::read_dir(self.dir.join("fd")) {
            out.insert("fd_count".into(), fds.count() as f64);
        }
        if self.smaps
            && let Ok(s) = std::fs::read_to_string(self.dir.join("smaps_rollup"))
        {
            parse_smaps_rollup(&s, out);
        }
        if self.tree {
            let total: f64 = self
                .descendants()
                .iter()
                .filter_map(|p| rss_of(&self.root, *p))
                .sum();
            let own = out.get("rss_bytes").copied().unwrap_or(0.0);
            out.insert("tree_rss_bytes".into(), own + total);
        }
        Ok(())
    }

    /// Descendant pids, found through each task's `children` file.
    fn descendants(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut todo = vec![self.pid];
        while let Some(p) = todo.pop() {
            let Ok(tasks) = std::fs::read_dir(self.root.join(p.to_string()).join("task")) else {
                continue;
            };
            for t in tasks.flatten() {
                if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                    for child in c.split_whitespace().filter_map(|x| x.parse().ok()) {
                        if !out.contains(&child) && out.len() < 10_000 {
                            out.push(child);
                            todo.push(child);
                        }
                    }
                }
            }
        }
        out
    }
}

fn rss_of(root: &Path, pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(root.join(pid.to_string()).join("status")).ok()?;
    let mut m = BTreeMap::new();
    parse_status(&s, &mut m);
    m.get("rss_bytes").copied()
}

/// `/proc/<pid>/status`: memory lines in kB, threads.
pub fn parse_status(text: &str, out: &mut BTreeMap<String, f64>) {
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let name = match k {
            "VmRSS" => "rss_bytes",
            "RssAnon" => "rss_anon_bytes",
            "RssFile" => "rss_file_bytes",
            "RssShmem" => "rss_shmem_bytes",
            "VmSize" => "vm_size_bytes",
            "VmHWM" => "vm_hwm_bytes",
            "VmSwap" => "swap_bytes",
            "Threads" => {
                if let Ok(n) = v.trim().parse::<f64>() {
                    out.insert("threads".into(), n);
                }
                continue;
            }
            _ => continue,
        };
        if let Some(kb) = v
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<f64>().ok())
        {
            out.insert(name.into(), kb * 1024.0);
        }
    }
}

/// `/proc/<pid>/stat`: faults and CPU time (fields after the parenthesised command name).
pub fn parse_stat(text: &str, ticks_per_second: f64, out: &mut BTreeMap<String, f64>) {
    // The command name may contain spaces and parentheses: split after the last ')'.
    let Some(close) = text.rfind(')') else { return };
    let f: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // f[0] is field 3 (state): minflt is field 10, majflt 12, utime 14, stime 15.
    let num = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok());
    if let Some(v) = num(7) {
        out.insert("minor_faults".into(), v);
    }
    if let Some(v) = num(9) {
        out.insert("major_faults".into(), v);
    }
    if let (Some(u), Some(s)) = (num(11), num(12)) {
        out.insert("cpu_seconds".into(), (u + s) / ticks_per_second);
    }
}

/// `/proc/<pid>/smaps_rollup`: PSS and anonymous/LazyFree amounts.
pub fn parse_smaps_rollup(text: &str, out: &mut BTreeMap<String, f64>) {
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let name = match k.trim() {
            "Pss" => "pss_bytes",
            "Pss_Anon" => "pss_anon_bytes",
            "LazyFree" => "lazyfree_bytes",
            _ => continue,
        };
        if let Some(kb) = v
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<f64>().ok())
        {
            out.insert(name.into(), kb * 1024.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let mut m = BTreeMap::new();
        parse_status(
            "Name:\tx\nVmSize:\t  2000 kB\nVmHWM:\t 300 kB\nVmRSS:\t 200 kB\nRssAnon:\t 150 kB\nRssFile:\t 50 kB\nRssShmem:\t 0 kB\nThreads:\t7\n",
            &mut m,
        );
        assert_eq!(m["rss_bytes"], 204800.0);
        assert_eq!(m["rss_anon_bytes"], 153600.0);
        assert_eq!(m["threads"], 7.0);
        parse_stat(
            "42 (my (odd) name) S 1 42 42 0 -1 4194304 100 0 3 0 250 50 0 0 20 0 7 0",
            100.0,
            &mut m,
        );
        assert_eq!(m["minor_faults"], 100.0);
        assert_eq!(m["major_faults"], 3.0);
        assert_eq!(m["cpu_seconds"], 3.0);
        parse_smaps_rollup("Rss: 10 kB\nPss:  8 kB\nLazyFree: 1 kB\n", &mut m);
        assert_eq!(m["pss_bytes"], 8192.0);
    }

    #[test]
    fn samples_this_process() {
        let mut m = BTreeMap::new();
        ProcProbe::new(std::process::id(), true, true)
            .sample(&mut m)
            .unwrap();
        assert!(m["rss_bytes"] > 0.0);
        assert!(m["fd_count"] > 0.0);
        assert!(m["threads"] >= 1.0);
        assert!(m.contains_key("cpu_seconds"));
        assert!(m["tree_rss_bytes"] >= m["rss_bytes"]);
    }

    #[test]
    fn a_gone_process_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = BTreeMap::new();
        assert!(
            ProcProbe::with_root(dir.path(), 1, false, false)
                .sample(&mut m)
                .is_err()
        );
        assert!(m.is_empty());
    }
}
