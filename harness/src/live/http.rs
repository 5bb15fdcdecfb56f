//! One connection of the live endpoints: read a request head, answer from the pages, close.
//!
//! Hand-parsed HTTP/1.x: only the request line matters; every answer is `Connection: close`
//! with a `Content-Length`, and nothing malformed panics or holds a thread past a few seconds.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::render::{self, Snapshot};
use crate::record::EvalOutcome;

/// Longest a connection may take to send its request head, and the write timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest request line accepted (without its line end).
const MAX_REQUEST_LINE: usize = 8 * 1024;
/// Longest request head (line and headers) read before answering 400.
const MAX_HEAD: usize = 32 * 1024;
/// How long unread request bytes are drained after answering, so the close is not a reset.
const LINGER: Duration = Duration::from_millis(500);

const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const JSON_TYPE: &str = "application/json";
const TEXT_TYPE: &str = "text/plain; charset=utf-8";

/// Both pages of one published snapshot, ready to send.
pub(super) struct Pages {
    metrics: String,
    verdict: String,
    leak: bool,
}

impl Pages {
    /// Renders both pages of `s`.
    pub(super) fn render(s: &Snapshot) -> Pages {
        Pages {
            metrics: render::metrics(s),
            verdict: render::verdict_json(s),
            leak: render::verdict(s) == EvalOutcome::Leak,
        }
    }
}

/// The pages in force now; the request path only clones an `Arc`.
fn current(pages: &Mutex<Arc<Pages>>) -> Arc<Pages> {
    Arc::clone(&pages.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Answers one connection from the pages in force when its request line arrived.
pub(super) fn handle(mut stream: TcpStream, pages: &Mutex<Arc<Pages>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let response = match read_request_line(&mut stream) {
        Ok(line) => respond(&line, pages),
        Err(Head::Bad) => response(400, TEXT_TYPE, b"bad request\n", false, &[]),
        Err(Head::Gone) => return,
    };
    if stream.write_all(&response).is_err() {
        return;
    }
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    linger(&mut stream);
}

/// Why no request line could be had.
enum Head {
    /// Malformed, too long, or cut short: answer 400.
    Bad,
    /// Nothing was sent before the peer closed or the time ran out: just close.
    Gone,
}

/// Reads the request head (until a blank line, end of stream or 2 s) and returns its first line.
fn read_request_line(stream: &mut TcpStream) -> Result<String, Head> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let line_end = buf.iter().position(|&b| b == b'\n');
        if line_end.unwrap_or(buf.len()) > MAX_REQUEST_LINE + 1 || buf.len() > MAX_HEAD {
            return Err(Head::Bad);
        }
        let head_done =
            buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n");
        if head_done {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let read = if left.is_zero() {
            Err(io::ErrorKind::TimedOut.into())
        } else {
            stream
                .set_read_timeout(Some(left))
                .and_then(|()| stream.read(&mut chunk))
        };
        match read {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // End of stream or time out: answer a complete request line, else give up.
            _ if line_end.is_some() => break,
            _ if buf.is_empty() => return Err(Head::Gone),
            _ => return Err(Head::Bad),
        }
    }
    let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    if line.len() > MAX_REQUEST_LINE {
        return Err(Head::Bad);
    }
    String::from_utf8(line.to_vec()).map_err(|_| Head::Bad)
}

/// Reads and drops what the client still sends, briefly, so closing does not reset the answer.
fn linger(stream: &mut TcpStream) {
    let deadline = Instant::now() + LINGER;
    let mut scratch = [0u8; 4096];
    let mut drained = 0usize;
    while drained < 256 * 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut scratch) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// `METHOD SP target SP HTTP/1.x` → method, path, query; None when malformed.
fn parse_request_line(line: &str) -> Option<(&str, &str, &str)> {
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let version_ok = version.len() == 8
        && version.starts_with("HTTP/1.")
        && version.ends_with(|c: char| c.is_ascii_digit());
    let target_ok = target.starts_with('/') && !target.contains(|c: char| c.is_ascii_control());
    if parts.next().is_some() || method.is_empty() || !method.chars().all(token) {
        return None;
    }
    if !version_ok || !target_ok {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Some((method, path, query))
}

/// Whether the query asks for 503 on a leak (`fail_on_leak=1` or `=true`).
fn fail_on_leak(query: &str) -> bool {
    query
        .split('&')
        .any(|kv| matches!(kv.split_once('='), Some(("fail_on_leak", "1" | "true"))))
}

fn respond(line: &str, pages: &Mutex<Arc<Pages>>) -> Vec<u8> {
    let Some((method, path, query)) = parse_request_line(line) else {
        return response(400, TEXT_TYPE, b"bad request\n", false, &[]);
    };
    let head_only = method == "HEAD";
    if !matches!(path, "/metrics" | "/verdict" | "/healthz") {
        return response(404, TEXT_TYPE, b"not found\n", head_only, &[]);
    }
    // Flagger calls its webhooks with POST (the body, its canary's metadata, is not needed).
    let post_ok = path == "/verdict" && method == "POST";
    if !(matches!(method, "GET" | "HEAD") || post_ok) {
        let allow = if path == "/verdict" {
            [("Allow", "GET, HEAD, POST")]
        } else {
            [("Allow", "GET, HEAD")]
        };
        return response(405, TEXT_TYPE, b"method not allowed\n", false, &allow);
    }
    let pages = current(pages);
    match path {
        "/metrics" => response(200, METRICS_TYPE, pages.metrics.as_bytes(), head_only, &[]),
        "/verdict" => {
            let status = if pages.leak && fail_on_leak(query) {
                503
            } else {
                200
            };
            response(status, JSON_TYPE, pages.verdict.as_bytes(), head_only, &[])
        }
        _ => response(200, TEXT_TYPE, b"ok", head_only, &[]),
    }
}

/// A whole `Connection: close` answer; `head_only` keeps the length but leaves out the body.
fn response(
    status: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_request_line_parsing() {
        assert_eq!(
            parse_request_line("GET /verdict?fail_on_leak=1 HTTP/1.1"),
            Some(("GET", "/verdict", "fail_on_leak=1"))
        );
        for bad in [
            "",
            "GET",
            "GET /",
            "GET / HTTP/2",
            "GET x HTTP/1.1",
            "G@T / HTTP/1.1",
        ] {
            assert_eq!(parse_request_line(bad), None, "{bad:?}");
        }
        assert!(fail_on_leak("a=b&fail_on_leak=true"));
        assert!(!fail_on_leak("fail_on_leak=0"));
    }
}
