//! nginx as a conformance server: one instance per test binary from `nginx.conf` in this
//! folder, on four free ports of 127.0.0.1 (HTTP/1.1, h2c, HTTP/2 over TLS with a self-signed
//! certificate, h2c allowing two streams per connection), and its access log read per case.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::procs::free_port;
use crate::servers::{find_program, log_tail, scratch, stop_at_exit, support_dir};

/// The SSI page's text around its one directive; nginx sends the result chunked.
const SSI_PART: &str = "<p>conformance: a body of unknown length, sent chunked</p>\n";
/// What `<!--# echo -->` in the page turns into.
const SSI_ECHO: &str = "chunked end";
/// Body of `/static/index.html`.
pub const STATIC_BODY: &str = "a static file with an ETag\n";

/// A running nginx.
pub struct Nginx {
    pub dir: PathBuf,
    pub http1: u16,
    pub h2c: u16,
    pub tls: u16,
    /// h2c with `http2_max_concurrent_streams 2`.
    pub limited: u16,
}

static NGINX: OnceLock<Nginx> = OnceLock::new();

/// The nginx binary (`command -v nginx || /usr/sbin/nginx`).
pub fn program() -> Option<PathBuf> {
    find_program("nginx", &["/usr/sbin/nginx"])
}

/// This binary's nginx, started on first use; None (SKIPPED, or a panic under CI) when nginx
/// is not installed.
pub fn get(test: &str) -> Option<&'static Nginx> {
    let Some(bin) = program() else {
        crate::runs::tool_missing(test, "nginx", "nginx");
        return None;
    };
    Some(NGINX.get_or_init(|| start(&bin)))
}

/// The SSI page's decoded body: what leakgate must count for each response.
pub fn ssi_body() -> String {
    format!("{SSI_PART}{SSI_ECHO}\n{SSI_PART}")
}

fn start(bin: &Path) -> Nginx {
    let version = Command::new(bin)
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    let scratch = scratch("nginx");
    let dir = scratch.path().to_path_buf();
    for d in ["html/static", "html/ssi", "logs", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("html/static/index.html"), STATIC_BODY).unwrap();
    std::fs::write(
        dir.join("html/ssi/page.html"),
        format!("{SSI_PART}<!--# echo var=\"no_such_var\" default=\"{SSI_ECHO}\" -->\n{SSI_PART}"),
    )
    .unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let template = std::fs::read_to_string(support_dir().join("nginx.conf")).unwrap();

    // Ports found free can be taken before nginx binds them (tests run side by side): an
    // nginx that exits before it listens is started again on other ports.
    for _attempt in 0..5 {
        let ports = [free_port(), free_port(), free_port(), free_port()];
        let mut conf = template.replace("{{prefix}}", dir.to_str().unwrap());
        for (name, port) in ["http1", "h2c", "tls", "limited"].iter().zip(ports) {
            conf = conf.replace(&format!("{{{{{name}_port}}}}"), &port.to_string());
        }
        assert!(
            !conf.contains("{{"),
            "unfilled placeholder in nginx.conf:\n{conf}"
        );
        std::fs::write(dir.join("nginx.conf"), &conf).unwrap();
        let stderr = std::fs::File::create(dir.join("logs/stderr.log")).unwrap();
        let mut child = Command::new(bin)
            .arg("-p")
            .arg(format!("{}/", dir.display()))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        // nginx binds every listener before it serves: all four accepting means ready.
        let started = Instant::now();
        let ready = loop {
            if child.try_wait().ok().flatten().is_some() {
                break false;
            }
            if ports
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
            {
                break true;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if ready {
            let dir = scratch.keep();
            stop_at_exit(child.id(), &dir);
            eprintln!("conformance: {version} in {}", dir.display());
            return Nginx {
                dir,
                http1: ports[0],
                h2c: ports[1],
                tls: ports[2],
                limited: ports[3],
            };
        }
    }
    let logs = format!(
        "{}\n{}",
        log_tail(&dir.join("logs/stderr.log"), 20),
        log_tail(&dir.join("logs/error.log"), 20)
    );
    panic!("nginx did not start (five tries, each on free ports, 20 s at most):\n{logs}");
}

/// What nginx logged of one case (its URLs carry `?case=NAME`).
#[derive(Debug, Default)]
pub struct Seen {
    pub requests: u64,
    /// Distinct `$connection` serial numbers: connections that carried the case's requests.
    pub connections: usize,
    /// `$server_protocol` values (`HTTP/1.1`, `HTTP/2.0`).
    pub protocols: BTreeSet<String>,
    /// `$server_port` values.
    pub ports: BTreeSet<u16>,
    /// `$status` values.
    pub statuses: BTreeSet<u16>,
}

impl Nginx {
    pub fn url(&self, scheme: &str, port: u16, path: &str, case: &str) -> String {
        format!("{scheme}://127.0.0.1:{port}{path}?case={case}")
    }

    fn seen_now(&self, case: &str) -> Seen {
        let log = std::fs::read_to_string(self.dir.join("logs/access.log")).unwrap_or_default();
        let tag = format!("case={case}");
        let mut seen = Seen::default();
        let mut conns = BTreeSet::new();
        for l in log.lines().filter(|l| l.ends_with(&tag)) {
            // $server_port $connection $server_protocol $request_method $status
            // $body_bytes_sent $request_uri
            let f: Vec<&str> = l.split(' ').collect();
            seen.requests += 1;
            seen.ports.insert(f[0].parse().unwrap());
            conns.insert(f[1].to_string());
            seen.protocols.insert(f[2].to_string());
            seen.statuses.insert(f[4].parse().unwrap());
        }
        seen.connections = conns.len();
        seen
    }

    /// The case's log lines once at least `expected` are written (nginx logs a request just
    /// after its response), or what is there after 3 s.
    pub fn seen(&self, case: &str, expected: u64) -> Seen {
        let started = Instant::now();
        loop {
            let s = self.seen_now(case);
            if s.requests >= expected || started.elapsed() > Duration::from_secs(3) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lines of nginx's error log that contain `needle` (at most 5), for failure messages.
    pub fn errors_with(&self, needle: &str) -> String {
        let log = std::fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default();
        let hits: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
        let shown = hits.iter().take(5).copied().collect::<Vec<_>>().join("\n");
        format!("{} line(s) with {needle:?}:\n{shown}", hits.len())
    }

    /// The response head of a plain `GET path` on the HTTP/1.1 port (a precondition check).
    pub fn head_of(&self, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.http1)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = Vec::new();
        s.read_to_end(&mut text).unwrap();
        let text = String::from_utf8_lossy(&text);
        text.split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// A header's value in a response head.
pub fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
