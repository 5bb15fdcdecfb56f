//! What the servers of the conformance suite share: finding the programs, a scratch folder,
//! reading the line a server prints once it listens, and stopping it when the test binary
//! exits.
//!
//! A server is started once per test binary (under nextest, once per test) and kept in a
//! `OnceLock`, which is never dropped; a small `sh` reaper per server holds a pipe from this
//! process and, once the pipe closes (the binary exited, however it ended, even killed), stops
//! the server by its pid and removes its folder.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

/// The reapers' stdin pipes: open while this process lives.
static REAPERS: Mutex<Vec<Child>> = Mutex::new(Vec::new());

/// Stops `pid` (SIGTERM, SIGKILL after 5 s) and removes `dir` once this process has exited.
pub fn stop_at_exit(pid: u32, dir: &Path) {
    // "Running" excludes a zombie: an orphan waits for init to reap it, and some containers'
    // init never does.
    const SCRIPT: &str = r#"
        read -r _
        running() { s=$(sed 's/.*) //; s/ .*//' "/proc/$1/stat" 2>/dev/null) && [ "$s" != Z ]; }
        kill -TERM "$1" 2>/dev/null
        i=0
        while running "$1" && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        running "$1" && kill -KILL "$1" 2>/dev/null
        rm -rf "$2"
    "#;
    let reaper = Command::new("sh")
        .args(["-c", SCRIPT, "reaper", &pid.to_string()])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sh runs");
    REAPERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(reaper);
}

/// A scratch folder, readable by nginx's workers when they run as nobody. Removed when dropped;
/// once a server uses it, `keep` it and hand it to [`stop_at_exit`].
pub fn scratch(name: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(&format!("leakgate-conformance-{name}-"))
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The first line `child` prints, within `limit`; `None` when it exits first or says nothing.
/// The reader is handed back with the line: dropping it would close the server's stdout.
pub fn first_line(child: &mut Child, limit: Duration) -> Option<(String, BufReader<ChildStdout>)> {
    let out = child.stdout.take()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = String::new();
        let ok = r.read_line(&mut line).is_ok_and(|n| n > 0);
        let _ = tx.send(ok.then(|| (line.trim().to_string(), r)));
    });
    rx.recv_timeout(limit).ok().flatten()
}

/// A started server: its folder (kept until the test binary exits), the line it printed once it
/// listens, and the reader of its stdout (held open: dropping it would close the server's
/// stdout).
pub struct Announced {
    /// The server's folder.
    pub dir: PathBuf,
    /// The first line it printed.
    pub line: String,
    /// Its stdout, after that line.
    pub stdout: BufReader<ChildStdout>,
}

/// Spawns `cmd` with its stderr in `scratch`'s `stderr.log`, has it stopped when this process
/// exits, and waits up to `limit` for the first line it prints; panics naming `what` with the
/// last `tail` lines of its log when none comes.
pub fn start_announced(
    mut cmd: Command,
    scratch: tempfile::TempDir,
    what: &str,
    limit: Duration,
    tail: usize,
) -> Announced {
    let log = scratch.path().join("stderr.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let dir = scratch.keep();
    stop_at_exit(child.id(), &dir);
    let Some((line, stdout)) = first_line(&mut child, limit) else {
        let _ = child.kill();
        panic!(
            "{what} did not say it listens within {} s:\n{}",
            limit.as_secs(),
            log_tail(&log, tail)
        );
    };
    Announced { dir, line, stdout }
}

/// `program` on PATH, or at one of `also` (nginx lives in /usr/sbin, often not on a user's PATH).
pub fn find_program(program: &str, also: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(program))
            .find(|f| is_executable(f))
    });
    on_path.or_else(|| also.iter().map(PathBuf::from).find(|f| is_executable(f)))
}

fn is_executable(f: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(f).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The support files' folder, `harness/tests/conformance`.
pub fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// The last `n` lines of a server's log file, for failure messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
