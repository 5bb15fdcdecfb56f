//! Placeholders in scenario strings: `{port:NAME}`, `{bin:NAME}`, `{go:NAME}`, `{python:NAME}`,
//! `{java:NAME}`,
//! `{scenario_dir}`, `{bin_dir}`.
//!
//! They let shipped scenarios run from a clean clone: ports are picked free on 127.0.0.1 (the
//! same NAME gives the same port everywhere in the file), `{bin:NAME}` points at a binary of
//! this workspace next to the `leakgate` executable, built on demand, and `{go:NAME}` at a Go
//! target of this workspace (`targets/go/NAME`) in `target/go/`, built on demand with
//! `targets/go/build.sh`, and `{python:NAME}` at the wrapper of a Python target of this
//! workspace (`targets/python/NAME.py`) in `target/python/`, made on demand with
//! `targets/python/build.sh`; `{java:NAME}` is the class folder of a Java target
//! (`targets/java/NAME`), `target/java/NAME`, built on demand with `targets/java/build.sh`, for
//! a command such as `["java", "-cp", "{java:leaktarget}", "LeakTarget", ...]`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// Placeholder values for one scenario.
#[derive(Debug)]
pub struct Placeholders {
    ports: BTreeMap<String, u16>,
    bins: BTreeSet<String>,
    go_bins: BTreeSet<String>,
    python_bins: BTreeSet<String>,
    java_bins: BTreeSet<String>,
    scenario_dir: PathBuf,
    bin_dir: PathBuf,
    go_dir: PathBuf,
    python_dir: PathBuf,
    java_dir: PathBuf,
}

impl Placeholders {
    /// Placeholders for a scenario in `scenario_dir`, with workspace binaries in `bin_dir`.
    pub fn new(scenario_dir: &Path, bin_dir: PathBuf) -> Self {
        Self {
            ports: BTreeMap::new(),
            bins: BTreeSet::new(),
            go_bins: BTreeSet::new(),
            python_bins: BTreeSet::new(),
            java_bins: BTreeSet::new(),
            scenario_dir: scenario_dir.to_path_buf(),
            bin_dir,
            go_dir: default_go_dir(),
            python_dir: default_python_dir(),
            java_dir: default_java_dir(),
        }
    }

    /// The scenario file's folder.
    pub fn scenario_dir(&self) -> &Path {
        &self.scenario_dir
    }

    /// Workspace binaries named by `{bin:NAME}` so far.
    pub fn bins_used(&self) -> Vec<String> {
        self.bins.iter().cloned().collect()
    }

    /// Go targets named by `{go:NAME}` so far.
    pub fn go_bins_used(&self) -> Vec<String> {
        self.go_bins.iter().cloned().collect()
    }

    /// Python targets named by `{python:NAME}` so far.
    pub fn python_bins_used(&self) -> Vec<String> {
        self.python_bins.iter().cloned().collect()
    }

    /// Java targets named by `{java:NAME}` so far.
    pub fn java_bins_used(&self) -> Vec<String> {
        self.java_bins.iter().cloned().collect()
    }

    /// Replaces every placeholder in `text`; other braces (such as `{{seq}}`) are left alone.
    pub fn fill(&mut self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                out.push_str(&rest[open..]);
                return Ok(out);
            };
            let inner = &after[..close];
            match self.value(inner)? {
                Some(v) => {
                    out.push_str(&v);
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn value(&mut self, inner: &str) -> Result<Option<String>, String> {
        let (kind, name) = inner.split_once(':').unwrap_or((inner, ""));
        match (kind, name) {
            ("scenario_dir", "") => Ok(Some(self.scenario_dir.display().to_string())),
            ("bin_dir", "") => Ok(Some(self.bin_dir.display().to_string())),
            ("port" | "bin" | "go" | "python" | "java", "") => Err(format!(
                "placeholder {{{inner}}} needs a name, e.g. {{{kind}:http}}"
            )),
            ("port", name) => Ok(Some(self.port(name)?.to_string())),
            ("bin" | "go" | "python" | "java", name) => {
                if !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(format!("{{{kind}:{name}}}: not a binary name"));
                }
                let (names, dir) = match kind {
                    "bin" => (&mut self.bins, &self.bin_dir),
                    "go" => (&mut self.go_bins, &self.go_dir),
                    "python" => (&mut self.python_bins, &self.python_dir),
                    _ => (&mut self.java_bins, &self.java_dir),
                };
                names.insert(name.to_string());
                Ok(Some(dir.join(name).display().to_string()))
            }
            _ => Ok(None),
        }
    }

    fn port(&mut self, name: &str) -> Result<u16, String> {
        if let Some(p) = self.ports.get(name) {
            return Ok(*p);
        }
        // Bind port 0 and release it: the kernel does not hand the same port out again soon.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port for {{port:{name}}}: {e}"))?
            .port();
        self.ports.insert(name.to_string(), port);
        Ok(port)
    }
}

/// Folder of this workspace's built binaries: next to the running executable (one level up
/// from `deps/` when running as a test), or `LEAKGATE_BIN_DIR`.
pub fn default_bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LEAKGATE_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// This workspace's root, as built (the `{bin:NAME}`, `{go:NAME}` and `{python:NAME}` sources
/// live there).
pub fn workspace_dir() -> PathBuf {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR"));
    harness.parent().unwrap_or(harness).to_path_buf()
}

/// Folder of the built Go targets: `target/go` in this workspace (where `targets/go/build.sh`
/// puts them), or `LEAKGATE_GO_BIN_DIR` (which build.sh honours too).
pub fn default_go_dir() -> PathBuf {
    match std::env::var_os("LEAKGATE_GO_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => workspace_dir().join("target").join("go"),
    }
}

/// Folder of the Python targets' venv, stubs and wrappers: `target/python` in this workspace
/// (where `targets/python/build.sh` puts them), or `LEAKGATE_PYTHON_DIR` (which build.sh
/// honours too).
pub fn default_python_dir() -> PathBuf {
    match std::env::var_os("LEAKGATE_PYTHON_DIR") {
        Some(d) => PathBuf::from(d),
        None => workspace_dir().join("target").join("python"),
    }
}

/// Folder of the built Java targets' class folders: `target/java` in this workspace (where
/// `targets/java/build.sh` puts them), or `LEAKGATE_JAVA_BIN_DIR` (which build.sh honours too).
pub fn default_java_dir() -> PathBuf {
    match std::env::var_os("LEAKGATE_JAVA_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => workspace_dir().join("target").join("java"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_and_keeps_templates() {
        let mut p = Placeholders::new(Path::new("/s"), PathBuf::from("/b"));
        let a = p.fill("127.0.0.1:{port:http}").unwrap();
        let b = p.fill("{port:http}").unwrap();
        assert!(a.ends_with(&b));
        assert_eq!(p.fill("{bin:rest-target}").unwrap(), "/b/rest-target");
        assert_eq!(p.fill("/x/{{seq}}/{other}").unwrap(), "/x/{{seq}}/{other}");
        assert_eq!(p.bins_used(), vec!["rest-target".to_string()]);
        assert!(p.fill("{port:}").is_err());
        assert!(p.fill("{bin:../x}").is_err());
    }

    #[test]
    fn go_targets_resolve_to_the_go_folder() {
        let mut p = Placeholders::new(Path::new("/s"), PathBuf::from("/b"));
        let exe = p.fill("{go:leaktarget}").unwrap();
        assert_eq!(
            PathBuf::from(&exe),
            default_go_dir().join("leaktarget"),
            "{exe}"
        );
        p.fill("x {go:leaktarget} {bin:rest-target}").unwrap();
        assert_eq!(p.go_bins_used(), vec!["leaktarget".to_string()]);
        assert_eq!(p.bins_used(), vec!["rest-target".to_string()]);
        assert!(p.fill("{go:}").is_err());
        assert!(p.fill("{go:../../etc/x}").is_err());
        if std::env::var_os("LEAKGATE_GO_BIN_DIR").is_none() {
            assert!(exe.ends_with("target/go/leaktarget"), "{exe}");
            assert!(workspace_dir().join("targets/go/build.sh").exists());
        }
    }

    #[test]
    fn python_targets_resolve_to_the_python_folder() {
        let mut p = Placeholders::new(Path::new("/s"), PathBuf::from("/b"));
        let exe = p.fill("{python:leaktarget}").unwrap();
        assert_eq!(PathBuf::from(&exe), default_python_dir().join("leaktarget"));
        p.fill("x {python:leaktarget} {go:leaktarget}").unwrap();
        assert_eq!(p.python_bins_used(), vec!["leaktarget".to_string()]);
        assert_eq!(p.go_bins_used(), vec!["leaktarget".to_string()]);
        assert!(p.fill("{python:}").is_err());
        assert!(p.fill("{python:../x}").is_err());
        if std::env::var_os("LEAKGATE_PYTHON_DIR").is_none() {
            assert!(exe.ends_with("target/python/leaktarget"), "{exe}");
            assert!(workspace_dir().join("targets/python/build.sh").exists());
        }
    }

    #[test]
    fn java_targets_resolve_to_their_class_folder() {
        let mut p = Placeholders::new(Path::new("/s"), PathBuf::from("/b"));
        let cp = p.fill("{java:leaktarget}").unwrap();
        assert_eq!(PathBuf::from(&cp), default_java_dir().join("leaktarget"));
        p.fill("-cp {java:leaktarget} {go:leaktarget}").unwrap();
        assert_eq!(p.java_bins_used(), vec!["leaktarget".to_string()]);
        assert_eq!(p.go_bins_used(), vec!["leaktarget".to_string()]);
        assert!(p.fill("{java:}").is_err());
        assert!(p.fill("{java:a/b}").is_err());
        if std::env::var_os("LEAKGATE_JAVA_BIN_DIR").is_none() {
            assert!(cp.ends_with("target/java/leaktarget"), "{cp}");
            assert!(workspace_dir().join("targets/java/build.sh").exists());
        }
    }
}
