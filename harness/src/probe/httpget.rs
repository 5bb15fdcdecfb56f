//! A tiny blocking HTTP/1.1 GET for the sampler thread (loopback metrics endpoints).
//!
//! The sampler runs on a plain thread and must never block the load path, so it uses its own
//! short-timeout std socket rather than the load engine's runtime.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest body [`get`] accepts (a metrics page or a goroutine count is far smaller); a heap
/// profile or a goroutine dump asks [`get_up_to`] for more.
const MAX_BODY: usize = 32 << 20;

/// GETs `url` (http only) and returns the body of a 2xx answer.
pub fn get(url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    get_up_to(url, timeout, MAX_BODY)
}

/// [`get`] with another largest body (a goroutine dump is larger than a metrics page); a
/// longer body is an error naming the limit and the URL, never a silently shorter answer.
pub fn get_up_to(url: &str, timeout: Duration, max: usize) -> Result<Vec<u8>, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs can be probed"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .or_else(|| {
            format!("{authority}:80")
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
        })
        .ok_or_else(|| format!("{url}: cannot resolve {authority}"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{url}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: leakgate-probe\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{url}: {e}"))?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| format!("{url}: {e}"))?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer: {:?}", line.trim()))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        r.read_line(&mut line).map_err(|e| format!("{url}: {e}"))?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding")
                && v.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    if !(200..300).contains(&status) {
        return Err(format!("{url}: HTTP {status}"));
    }
    let body = if chunked {
        read_chunked(&mut r, max)
    } else {
        read_plain(&mut r, length, max)
    };
    body.map_err(|e| format!("{url}: {e}"))
}

/// Why a body could not be read whole: each is an error, never a shorter body, so a heap
/// profile or a metrics page is never cut silently.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    /// Over the caller's limit.
    #[error("the body is larger than the limit of {}", limit_text(*.0))]
    TooLarge(usize),
    /// The connection closed before the announced end.
    #[error("the connection closed {0}")]
    Ended(&'static str),
    /// A chunk's framing is not HTTP/1.1 chunked encoding.
    #[error("bad chunked encoding: {0:?}")]
    Framing(String),
    /// Reading the socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `max` in bytes, and in MiB when it is a whole number of them.
fn limit_text(max: usize) -> String {
    if max >= 1 << 20 && max.is_multiple_of(1 << 20) {
        format!("{max} bytes ({} MiB)", max >> 20)
    } else {
        format!("{max} bytes")
    }
}

/// A body framed by Content-Length, or by the end of the connection when there is none.
fn read_plain(r: &mut impl Read, length: Option<usize>, max: usize) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    match length {
        Some(len) if len > max => Err(BodyError::TooLarge(max)),
        Some(len) => {
            r.take(len as u64).read_to_end(&mut body)?;
            if body.len() < len {
                return Err(BodyError::Ended("before the Content-Length was read"));
            }
            Ok(body)
        }
        None => {
            // One byte past the limit tells a body of exactly `max` from a longer one.
            r.take(max as u64 + 1).read_to_end(&mut body)?;
            if body.len() > max {
                return Err(BodyError::TooLarge(max));
            }
            Ok(body)
        }
    }
}

/// A chunked body (RFC 9112 7.1); trailers are not read (the connection closes after).
fn read_chunked(r: &mut impl BufRead, max: usize) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(BodyError::Ended("before the last chunk"));
        }
        let digits = line.trim_end().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(digits, 16)
            .map_err(|_| BodyError::Framing(line.trim_end().to_string()))?;
        if size == 0 {
            return Ok(body);
        }
        // `body.len() <= max` holds here, so the subtraction cannot wrap.
        if size > max - body.len() {
            return Err(BodyError::TooLarge(max));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => BodyError::Ended("inside a chunk"),
                _ => BodyError::Io(e),
            })?;
        line.clear();
        r.read_line(&mut line)?;
        if line != "\r\n" && line != "\n" {
            return Err(BodyError::Framing(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread::JoinHandle;

    const T: Duration = Duration::from_secs(10);

    /// Serves `answer` (status line, headers and body) to one connection on 127.0.0.1:0.
    fn serve(answer: Vec<u8>) -> (String, JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/debug/pprof/heap", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            s.set_write_timeout(Some(T)).unwrap();
            let mut r = BufReader::new(&s);
            let mut line = String::new();
            // The request head, bounded: a few lines.
            for _ in 0..32 {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            // The client stops reading at its limit and closes: a failed write is expected.
            let _ = (&s).write_all(&answer);
        });
        (url, h)
    }

    fn chunked(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for c in chunks {
            out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    fn with_length(body: &[u8], length: Option<usize>) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\n".to_vec();
        if let Some(n) = length {
            out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }

    fn fetch(answer: Vec<u8>, max: usize) -> (String, Result<Vec<u8>, String>) {
        let (url, h) = serve(answer);
        let got = get_up_to(&url, T, max);
        h.join().unwrap();
        (url, got)
    }

    fn assert_too_large(url: &str, got: Result<Vec<u8>, String>, limit: &str) {
        let e = got.expect_err("a body over the limit must be an error");
        assert!(e.contains(url) && e.contains(limit), "{e}");
    }

    #[test]
    fn chunked_body_over_the_default_limit_is_an_error() {
        // 32 MiB in 1 MiB chunks, then one byte more: was cut to 32 MiB and reported whole.
        let mut chunks = vec![vec![b'x'; 1 << 20]; 32];
        chunks.push(b"y".to_vec());
        let (url, h) = serve(chunked(&chunks));
        let got = get(&url, T);
        h.join().unwrap();
        assert_too_large(&url, got, "33554432 bytes (32 MiB)");
    }

    #[test]
    fn bodies_over_a_given_limit_are_errors_in_every_framing() {
        let body = vec![b'x'; 2000];
        let (url, got) = fetch(
            chunked(&[body[..1000].to_vec(), body[1000..].to_vec()]),
            1024,
        );
        assert_too_large(&url, got, "1024 bytes");
        let (url, got) = fetch(with_length(&body, Some(body.len())), 1024);
        assert_too_large(&url, got, "1024 bytes");
        let (url, got) = fetch(with_length(&body, None), 1024);
        assert_too_large(&url, got, "1024 bytes");
    }

    #[test]
    fn bodies_at_the_limit_are_whole() {
        let body: Vec<u8> = (0..1024u32).map(|i| i as u8).collect();
        let (_, got) = fetch(
            chunked(&[body[..1000].to_vec(), body[1000..].to_vec()]),
            1024,
        );
        assert_eq!(got.unwrap(), body);
        let (_, got) = fetch(with_length(&body, Some(body.len())), 1024);
        assert_eq!(got.unwrap(), body);
        let (_, got) = fetch(with_length(&body, None), 1024);
        assert_eq!(got.unwrap(), body);
    }

    #[test]
    fn cut_bodies_and_bad_answers_are_errors() {
        // Content-Length promises more than the connection brings.
        let (url, got) = fetch(with_length(b"short", Some(100)), 1024);
        let e = got.unwrap_err();
        assert!(e.contains(&url) && e.contains("Content-Length"), "{e}");
        // A chunked body without its last chunk.
        let mut cut = chunked(&[b"abc".to_vec()]);
        cut.truncate(cut.len() - b"0\r\n\r\n".len());
        let e = fetch(cut, 1024).1.unwrap_err();
        assert!(e.contains("before the last chunk"), "{e}");
        let e = fetch(b"HTTP/1.1 404 Not Found\r\n\r\n".to_vec(), 1024)
            .1
            .unwrap_err();
        assert!(e.ends_with("HTTP 404"), "{e}");
    }
}
