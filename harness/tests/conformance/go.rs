//! Go's net/http (standard library) over TLS as a conformance server: `main.go` in this folder,
//! built by the test into the target folder and started once per test binary.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::servers::{Announced, log_tail, scratch, start_announced, support_dir};

/// A running Go server.
pub struct GoServer {
    pub tls: u16,
    admin: u16,
    pub dir: PathBuf,
    /// Its stdout, kept open (it printed its one line).
    _stdout: Mutex<BufReader<ChildStdout>>,
}

static GO: OnceLock<GoServer> = OnceLock::new();

/// This binary's Go server, built and started on first use; None (SKIPPED, or a panic under
/// CI) when there is no Go toolchain.
pub fn get(test: &str) -> Option<&'static GoServer> {
    let version = match Command::new("go").arg("version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => {
            crate::runs::tool_missing(test, "go", "golang-go");
            return None;
        }
    };
    Some(GO.get_or_init(|| start(version)))
}

impl GoServer {
    /// What the server saw of a case: (requests, distinct client connections).
    pub fn seen(&self, case: &str) -> (u64, u64) {
        let (code, body) = crate::procs::get(self.admin, &format!("/stats?case={case}"))
            .expect("the Go server's admin port answers");
        assert_eq!(code, 200, "{body}");
        let field = |k: &str| -> u64 {
            body.split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k} in {body:?}"))
        };
        (field("requests"), field("connections"))
    }

    pub fn url(&self, path: &str, case: &str) -> String {
        format!("https://127.0.0.1:{}{path}?case={case}", self.tls)
    }

    /// The server's stderr so far (net/http logs handshake errors and panics there).
    pub fn log(&self) -> String {
        log_tail(&self.dir.join("stderr.log"), 20)
    }
}

/// Builds `main.go` into the target folder when the binary is missing or older than the
/// source: standard library only, nothing fetched (GOPROXY=off).
fn build() -> PathBuf {
    let src = support_dir().join("main.go");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance");
    std::fs::create_dir_all(&out_dir).unwrap();
    let bin = out_dir.join("conformance-go");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if mtime(&bin).is_some_and(|b| mtime(&src).is_some_and(|s| b >= s)) {
        return bin;
    }
    // Built under a name of its own and renamed: tests in other processes may build at once.
    let tmp = out_dir.join(format!("conformance-go.{}.tmp", std::process::id()));
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&tmp)
        .arg("main.go")
        .current_dir(support_dir())
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("CGO_ENABLED", "0")
        .output()
        .expect("go runs");
    assert!(
        out.status.success(),
        "go build of {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &bin).unwrap();
    bin
}

fn start(version: String) -> GoServer {
    let bin = build();
    let scratch = scratch("go");
    let dir = scratch.path().to_path_buf();
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.arg("-cert")
        .arg(dir.join("cert.pem"))
        .arg("-key")
        .arg(dir.join("key.pem"));
    // "listening tls=PORT admin=PORT", printed once both listeners are bound.
    let Announced { dir, line, stdout } =
        start_announced(cmd, scratch, "the Go server", Duration::from_secs(30), 20);
    let port = |k: &str| -> u16 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} port in {line:?}"))
    };
    eprintln!("conformance: Go server ({version}) {line}");
    GoServer {
        tls: port("tls"),
        admin: port("admin"),
        dir,
        _stdout: Mutex::new(stdout),
    }
}
