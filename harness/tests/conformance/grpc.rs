//! Python grpcio as a conformance server: `grpc_server.py` in this folder, run with the venv
//! of `targets/python/build.sh`, allowing two concurrent streams per connection; and the
//! scenario files that drive it.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use leakgate::scenario::placeholders::default_python_dir;

use crate::servers::{Announced, log_tail, scratch, start_announced, support_dir};

/// A running grpcio server.
pub struct GrpcServer {
    pub port: u16,
    pub dir: PathBuf,
    _stdout: Mutex<BufReader<ChildStdout>>,
}

static GRPC: OnceLock<GrpcServer> = OnceLock::new();

fn venv_python() -> PathBuf {
    default_python_dir().join("venv/bin/python")
}

fn proto_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets/proto")
}

/// This binary's grpcio server, started on first use; None (SKIPPED, or a panic under CI) when
/// the venv with grpcio and grpcio-tools is missing. The test never installs anything.
pub fn get(test: &str) -> Option<&'static GrpcServer> {
    let python = venv_python();
    let version = Command::new(&python)
        .args([
            "-c",
            "import sys, grpc, grpc_tools; print(sys.version.split()[0], grpc.__version__)",
        ])
        .output();
    let version = match version {
        Ok(o) if o.status.success() => {
            let v = String::from_utf8_lossy(&o.stdout);
            let (py, grpcio) = v.trim().split_once(' ').unwrap_or_default();
            format!("grpcio {grpcio} (grpc.aio) on Python {py}")
        }
        _ => {
            let why = format!(
                "{test}: no venv with grpcio and grpcio-tools at {}; ./ci/test.sh makes it \
                 (bash targets/python/build.sh --check, which needs python3 with venv and pip)",
                python.display()
            );
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("SKIPPED {why}");
            return None;
        }
    };
    Some(GRPC.get_or_init(|| start(&python, version)))
}

fn start(python: &Path, version: String) -> GrpcServer {
    let mut cmd = Command::new(python);
    cmd.arg("-u")
        .arg(support_dir().join("grpc_server.py"))
        .arg(proto_root());
    // "listening PORT", printed once the server serves.
    let Announced { dir, line, stdout } = start_announced(
        cmd,
        scratch("grpc"),
        "the grpcio server",
        Duration::from_secs(60),
        30,
    );
    let port = line
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    eprintln!("conformance: {version} on port {port}");
    GrpcServer {
        port,
        dir,
        _stdout: Mutex::new(stdout),
    }
}

impl GrpcServer {
    /// A scenario file (in `dir`) for one method of the Target service: Poisson arrivals at
    /// `rate` calls/s for 1 s (one seed: every run plans the same arrivals) on `connections` x
    /// `streams` call slots; methods from the project's .proto.
    pub fn scenario(
        &self,
        dir: &Path,
        case: &str,
        method: &str,
        body: &str,
        (connections, streams): (usize, usize),
        rate: u64,
    ) -> PathBuf {
        let protos = proto_root();
        let text = format!(
            r#"name = "{case}"
description = "conformance: {method} against grpcio"

[target]
base_url = "http://127.0.0.1:{port}"

[load]
protocol = "grpc"
connections = {connections}
streams_per_connection = {streams}
threads = 1
timeout = "2s"
arrivals = "poisson"
seed = 1

[load.grpc]
protos = ["{proto}"]
import_paths = ["{root}"]

[[load.phases]]
kind = "steady"
duration = "1s"
rate = {rate}

[[load.requests]]
path = "leakgate.target.v1.Target/{method}"
body = '{body}'
"#,
            port = self.port,
            proto = protos.join("leakgate/target/v1/target.proto").display(),
            root = protos.display(),
        );
        let path = dir.join(format!("{case}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        log_tail(&self.dir.join("stderr.log"), 20)
    }
}
