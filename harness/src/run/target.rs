//! The service under test as one run sees it: spawned, attached, or only a URL.

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::heap::heaptrack::{self, HeaptrackError};
use crate::probe::ProbeSet;
use crate::scenario::placeholders::{
    default_bin_dir, default_go_dir, default_java_dir, default_python_dir, workspace_dir,
};
use crate::scenario::plan::{NativeProfiler, Plan, ProbePlan, TargetPlan};
use crate::supervise::{self, Attached, ExitInfo, SuperviseError, Supervised, find};

/// Why the target could not be had (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Starting or attaching failed.
    #[error(transparent)]
    Supervise(#[from] SuperviseError),
    /// A workspace binary the scenario uses could not be built.
    #[error("cannot build `{bin}` (needed by the scenario's {{bin:{bin}}}): {reason}")]
    Build {
        /// The binary.
        bin: String,
        /// Why.
        reason: String,
    },
    /// A Go or Java target the scenario uses could not be built.
    #[error(
        "cannot build the {lang} target `{name}` (needed by the scenario's {{{key}:{name}}}): \
         {reason}"
    )]
    BuildTarget {
        /// `Go` or `Java`.
        lang: &'static str,
        /// The placeholder's kind, `go` or `java`.
        key: &'static str,
        /// The target's name (its folder under targets/go/ or targets/java/).
        name: String,
        /// Why.
        reason: String,
    },
    /// The native heap profiler the plan asks for is not installed.
    #[error(transparent)]
    Native(#[from] HeaptrackError),
    /// A Python target the scenario uses could not be made.
    #[error(
        "cannot build the Python target `{name}` (needed by the scenario's {{python:{name}}}): \
         {reason}"
    )]
    BuildPython {
        /// The target's name (its script is targets/python/NAME.py).
        name: String,
        /// Why.
        reason: String,
    },
    /// The base URL does not accept connections.
    #[error("the target at {url} is not reachable: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

enum Kind {
    Spawned(Supervised),
    Attached(Attached),
    UrlOnly,
}

/// The target of one run.
pub struct Target {
    kind: Kind,
    /// heaptrack, when the spawned target runs under it.
    native: Option<heaptrack::Tools>,
}

impl Target {
    /// Starts or finds the target, then checks its base URL accepts connections.
    pub fn start(plan: &Plan, run_dir: &Path) -> Result<Self, TargetError> {
        let mut native = None;
        let kind = match &plan.target {
            TargetPlan::Spawn(s) => {
                for bin in &s.build_bins {
                    ensure_built(bin)?;
                }
                for name in &s.build_go {
                    ensure_go_built(name)?;
                }
                for name in &s.build_java {
                    ensure_java_built(name)?;
                }
                for name in &s.build_python {
                    ensure_python_built(name)?;
                }
                let mut s = std::borrow::Cow::Borrowed(s);
                if plan.probes.native == Some(NativeProfiler::Heaptrack) {
                    let tools = heaptrack::Tools::find()?;
                    let program = s.command.first().cloned().unwrap_or_default();
                    let env = tools.env(&s.env, run_dir, &program);
                    s.to_mut().env.extend(env);
                    native = Some(tools);
                }
                Kind::Spawned(supervise::spawn(&s, run_dir)?)
            }
            TargetPlan::Attach(a) => Kind::Attached(supervise::attach(a)?),
            TargetPlan::UrlOnly => Kind::UrlOnly,
        };
        let target = Self { kind, native };
        // A watch drives nothing: there is no URL to reach.
        if plan.watch.is_none() {
            preflight(&plan.load.base_url)?;
        }
        Ok(target)
    }

    /// The watched process, if any.
    pub fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Spawned(s) => Some(s.pid()),
            Kind::Attached(a) => a.pid,
            Kind::UrlOnly => None,
        }
    }

    /// The cgroup to read, if known.
    pub fn cgroup(&self) -> Option<PathBuf> {
        match &self.kind {
            Kind::Spawned(s) => s.cgroup(),
            Kind::Attached(a) => a.cgroup.clone(),
            Kind::UrlOnly => None,
        }
    }

    /// The probes `plan` asks for, bound to this target; in a watch the target's request
    /// counter is the run's count of work done.
    pub fn probes(&self, plan: &ProbePlan, watch: bool) -> ProbeSet {
        ProbeSet::new(plan, self.pid(), self.cgroup()).counting_requests(watch)
    }

    /// The memory limit the target runs under and where it comes from: the spawned target's
    /// own, its cgroup's (`memory.max`, the unit's or pod's limit), or its RLIMIT_AS.
    pub fn memory_limit(&self) -> Option<(u64, String)> {
        if let Kind::Spawned(s) = &self.kind
            && let Some(l) = s.memory_limit()
        {
            return Some((l, "memory_limit".into()));
        }
        let cgroup = self
            .cgroup()
            .or_else(|| self.pid().and_then(crate::probe::cgroup::of_pid));
        if let Some(l) = cgroup.and_then(|d| find::cgroup_memory_limit(&d)) {
            return Some((l, "cgroup memory limit".into()));
        }
        let pid = self.pid()?;
        find::address_space_limit(Path::new("/proc"), pid).map(|l| (l, "RLIMIT_AS".into()))
    }

    /// How the target ended, if it has.
    pub fn exit(&self) -> Option<ExitInfo> {
        match &self.kind {
            Kind::Spawned(s) => s.try_exit(),
            Kind::Attached(Attached { pid: Some(p), .. }) if !supervise::alive(*p) => {
                Some(ExitInfo {
                    code: None,
                    signal: None,
                    oom_killed: false,
                    cause: format!("process {p} is gone"),
                })
            }
            _ => None,
        }
    }

    /// Stops a spawned target gracefully (attached ones are left running).
    pub fn stop(&self) {
        if let Kind::Spawned(s) = &self.kind {
            s.stop();
        }
    }

    /// For a target run under heaptrack, once stopped: its table written into `run_dir`, and
    /// what was found (or why not) in a line for the run's events.
    pub fn finish_native(&self, run_dir: &Path) -> Option<String> {
        let done = self.native.as_ref()?.finish(run_dir);
        Some(done.unwrap_or_else(|e| {
            eprintln!("leakgate: warning: {e}");
            e.to_string()
        }))
    }
}

/// Builds a workspace binary next to leakgate's own when it is missing.
pub fn ensure_built(bin: &str) -> Result<(), TargetError> {
    let dir = default_bin_dir();
    if dir.join(bin).exists() {
        return Ok(());
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let release = dir.file_name().is_some_and(|n| n == "release");
    eprintln!(
        "leakgate: building {bin} with cargo (first run only; a few minutes on a fresh clone, \
         cargo's progress follows)..."
    );
    let mut cmd =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&workspace)
        .args(["build", "-p", "leakgate-targets", "--bin", bin]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(|e| TargetError::Build {
        bin: bin.into(),
        reason: format!("cannot run cargo: {e}"),
    })?;
    if !status.success() || !dir.join(bin).exists() {
        return Err(TargetError::Build {
            bin: bin.into(),
            reason: format!("cargo build {status}; expected {}", dir.join(bin).display()),
        });
    }
    Ok(())
}

/// A language whose reference targets `targets/LANG/build.sh` builds.
struct Toolchain {
    /// `Go` or `Java`.
    lang: &'static str,
    /// Folder under `targets/`, and the placeholder's kind.
    key: &'static str,
    /// Where the built target goes (what the placeholder names).
    out: PathBuf,
    /// The variable build.sh reads the output folder from.
    out_env: &'static str,
    /// How to get the toolchain.
    install: &'static str,
}

/// Builds a Go target of this workspace (`targets/go/NAME`) with `targets/go/build.sh` when its
/// binary is missing or older than a file of its sources. Without the sources (leakgate moved
/// away from its workspace) or without a Go toolchain, an existing binary is used as it is.
pub fn ensure_go_built(name: &str) -> Result<(), TargetError> {
    ensure_script_built(
        &Toolchain {
            lang: "Go",
            key: "go",
            out: default_go_dir(),
            out_env: "LEAKGATE_GO_BIN_DIR",
            install: "install Debian's golang-go, as ./ci/test.sh does",
        },
        name,
    )
}

/// Builds a Java target of this workspace (`targets/java/NAME`) into its class folder with
/// `targets/java/build.sh`, on the same terms as [`ensure_go_built`].
pub fn ensure_java_built(name: &str) -> Result<(), TargetError> {
    ensure_script_built(
        &Toolchain {
            lang: "Java",
            key: "java",
            out: default_java_dir(),
            out_env: "LEAKGATE_JAVA_BIN_DIR",
            install: "install Debian's default-jdk-headless, as ./ci/test.sh does",
        },
        name,
    )
}

fn ensure_script_built(tc: &Toolchain, name: &str) -> Result<(), TargetError> {
    let built = tc.out.join(name);
    let src = workspace_dir().join("targets").join(tc.key).join(name);
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let newest_source = std::fs::read_dir(&src)
        .ok()
        .and_then(|entries| entries.flatten().filter_map(|e| modified(&e.path())).max());
    match (modified(&built), newest_source) {
        (Some(_), None) => return Ok(()),
        (Some(at), Some(source)) if at >= source => return Ok(()),
        _ => {}
    }
    let err = |reason: String| TargetError::BuildTarget {
        lang: tc.lang,
        key: tc.key,
        name: name.into(),
        reason,
    };
    if newest_source.is_none() {
        return Err(err(format!(
            "{} is missing and there are no sources at {}",
            built.display(),
            src.display()
        )));
    }
    let script = workspace_dir()
        .join("targets")
        .join(tc.key)
        .join("build.sh");
    eprintln!(
        "leakgate: building the {} target {name} (targets/{}/build.sh)...",
        tc.lang, tc.key
    );
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(name)
        .env(tc.out_env, &tc.out)
        .status()
        .map_err(|e| err(format!("cannot run {}: {e}", script.display())))?;
    let missing_toolchain = status.code() == Some(127);
    if missing_toolchain && modified(&built).is_some() {
        // Sources newer than the build (a checkout touches them too) but nothing to build
        // with: what is there is the best there is.
        eprintln!(
            "leakgate: no {} toolchain to rebuild {}; using it as it is",
            tc.lang,
            built.display()
        );
        return Ok(());
    }
    if !status.success() || !built.exists() {
        let hint = if missing_toolchain {
            format!(" (no {} toolchain: {})", tc.lang, tc.install)
        } else {
            String::new()
        };
        return Err(err(format!(
            "targets/{}/build.sh {status}; expected {}{hint}",
            tc.key,
            built.display()
        )));
    }
    Ok(())
}

/// Makes a Python target of this workspace (`targets/python/NAME.py`) ready with
/// `targets/python/build.sh`: its venv, stubs and the wrapper `target/python/NAME`, when the
/// wrapper or the venv is missing or the wrapper is older than a file in `targets/python/` or a
/// `.proto` in `targets/proto/`. With the venv in place that is offline (stubs and wrapper); pip
/// runs only for a missing venv or a changed `requirements.txt`. Without the sources or without
/// a Python interpreter, an existing wrapper is used as it is.
pub fn ensure_python_built(name: &str) -> Result<(), TargetError> {
    let out = default_python_dir();
    let wrapper = out.join(name);
    let src = workspace_dir().join("targets").join("python");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let newest_source = [src.clone(), workspace_dir().join("targets").join("proto")]
        .iter()
        .filter_map(|d| newest_file(d))
        .max();
    let venv = out.join("venv").join("bin").join("python").exists();
    match (modified(&wrapper), newest_source) {
        (Some(_), None) if venv => return Ok(()),
        (Some(built), Some(source)) if venv && built >= source => return Ok(()),
        _ => {}
    }
    let err = |reason: String| TargetError::BuildPython {
        name: name.into(),
        reason,
    };
    if !src.join(format!("{name}.py")).exists() {
        return Err(err(format!(
            "{} is missing and there is no script {}",
            wrapper.display(),
            src.join(format!("{name}.py")).display()
        )));
    }
    let script = src.join("build.sh");
    eprintln!("leakgate: making the Python target {name} (targets/python/build.sh)...");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(name)
        .env("LEAKGATE_PYTHON_DIR", &out)
        .status()
        .map_err(|e| err(format!("cannot run {}: {e}", script.display())))?;
    let no_python = status.code() == Some(127);
    if no_python && venv && modified(&wrapper).is_some() {
        eprintln!(
            "leakgate: no python3 to remake {}; using it as it is",
            wrapper.display()
        );
        return Ok(());
    }
    if !status.success() || !wrapper.exists() {
        let hint = if no_python {
            " (no python3: install Debian's python3 and python3-venv)"
        } else {
            ""
        };
        return Err(err(format!(
            "targets/python/build.sh {status}; expected {}{hint}",
            wrapper.display()
        )));
    }
    Ok(())
}

/// The newest modification time of a file under `dir` (recursively), None without any.
fn newest_file(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            if meta.is_dir() {
                newest_file(&e.path())
            } else {
                meta.modified().ok()
            }
        })
        .max()
}

/// A TCP connect to the base URL's host and port.
fn preflight(url: &str) -> Result<(), TargetError> {
    let unreachable = |reason: String| TargetError::Unreachable {
        url: url.into(),
        reason,
    };
    let uri: http::Uri = url.parse().map_err(|e| unreachable(format!("{e}")))?;
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("no address".into()))?;
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map(|_| ())
        .map_err(|e| unreachable(e.to_string()))
}
