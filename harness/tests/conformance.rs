//! Conformance of leakgate's load clients against a server this project did not write: nginx,
//! started by the test on 127.0.0.1 and driven through the real `leakgate run` binary for one
//! second at a few hundred requests per second. Every case checks summary.json (requests
//! planned and completed, status classes, error kinds, body bytes) and what nginx saw: the
//! requests it served, the connections they came on and the protocol.
//!
//! What is proven, client by client:
//! - the lean HTTP/1.1 client (plain `http://`): keep-alive (nginx sees no more connections
//!   than slots), chunked bodies (nginx SSI output, counted decoded), HEAD, 204 and 304
//!   answers without a body;
//! - hyper's HTTP/2 client: h2c with prior knowledge and h2 by ALPN over TLS with a
//!   self-signed certificate (`--insecure`); a server that allows 2 streams per connection
//!   while leakgate opens 8 (no errors, the planned rate held).
//!
//! The server: `conformance/nginx.conf` (nginx from PATH or /usr/sbin), one per test binary;
//! nothing is downloaded. Without nginx a test prints SKIPPED, and fails when `CI` is set:
//! `./ci/test.sh` installs Debian's nginx.

mod procs;
mod runs;

#[path = "conformance/nginx.rs"]
mod nginx;
#[path = "conformance/outcome.rs"]
mod outcome;
#[path = "conformance/servers.rs"]
mod servers;

use std::collections::BTreeSet;

use outcome::{Outcome, adhoc, report};
use runs::scenario::Run;

/// Requests per second and seconds of the HTTP cases: 200 requests each.
const LOAD: &[&str] = &["--rate", "200", "-d", "1s"];
const N: u64 = 200;
/// Body of nginx's and Go's `/small`.
const SMALL: u64 = 13;

/// The run did what `want` says; `why` is the rule the server's answer sets for the client.
fn expect(case: &str, run: &Run, want: &Outcome, why: &str) {
    assert_eq!(
        &Outcome::of(run),
        want,
        "{case}: {why}\nleakgate's summary (left), what it should say (right):\n{}",
        report(run)
    );
}

/// The shared load flags, then `extra`.
fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = LOAD.to_vec();
    a.extend_from_slice(extra);
    a
}

/// Runs one nginx case and checks what leakgate counted, then that nginx logged every planned
/// request, on at most `conns` connections (keep-alive), with `protocol`.
fn nginx_case(
    ng: &nginx::Nginx,
    (case, url): (&str, &str),
    flags: &[&str],
    want: Outcome,
    why: &str,
    (conns, protocol): (usize, &str),
) -> nginx::Seen {
    let run = adhoc(case, url, flags);
    expect(case, &run, &want, why);
    let seen = ng.seen(case, want.planned);
    assert_eq!(
        seen.requests, want.planned,
        "{case}: nginx logged {} requests, leakgate planned {}: {seen:?}",
        seen.requests, want.planned
    );
    assert!(
        seen.connections <= conns,
        "{case}: the requests came on {} connections, leakgate was asked for {conns} \
         (keep-alive: a connection is reused until the run ends): {seen:?}",
        seen.connections
    );
    let protocols: BTreeSet<String> = BTreeSet::from([protocol.to_string()]);
    assert_eq!(seen.protocols, protocols, "{case}: {seen:?}");
    seen
}

#[test]
fn nginx_http1_keep_alive() {
    let case = "nginx_http1_keep_alive";
    let Some(ng) = nginx::get(case) else { return };
    let url = ng.url("http", ng.http1, "/small", case);
    let flags = args(&["-c", "4"]);
    let want = Outcome::all(N, "2xx", SMALL);
    let why = "every request is answered 200 with 13 bytes";
    nginx_case(ng, (case, &url), &flags, want, why, (4, "HTTP/1.1"));
}

#[test]
fn nginx_http1_chunked_body() {
    let case = "nginx_http1_chunked_body";
    let Some(ng) = nginx::get(case) else { return };
    // The case means something only if nginx really sends this page chunked.
    let head = ng.head_of("/ssi/page.html");
    let chunked = nginx::header(&head, "transfer-encoding") == Some("chunked");
    let length = nginx::header(&head, "content-length");
    assert!(chunked && length.is_none(), "not a chunked answer:\n{head}");
    let body = nginx::ssi_body().len() as u64;
    let url = ng.url("http", ng.http1, "/ssi/page.html", case);
    let flags = args(&["-c", "4"]);
    let want = Outcome::all(N, "2xx", body);
    let why = format!("a chunked body is read to its last chunk and counted decoded ({body} B)");
    nginx_case(ng, (case, &url), &flags, want, &why, (4, "HTTP/1.1"));
}

#[test]
fn nginx_http1_head() {
    let case = "nginx_http1_head";
    let Some(ng) = nginx::get(case) else { return };
    let url = ng.url("http", ng.http1, "/static/index.html", case);
    let why = format!(
        "a HEAD response ends with its head: nginx sends Content-Length: {} and no body \
         (RFC 9110 9.3.2), and a client that waits for those bytes times out",
        nginx::STATIC_BODY.len()
    );
    let flags = args(&["-c", "4", "-m", "HEAD"]);
    let want = Outcome::all(N, "2xx", 0);
    nginx_case(ng, (case, &url), &flags, want, &why, (4, "HTTP/1.1"));
}

#[test]
fn nginx_http1_204_no_content() {
    let case = "nginx_http1_204_no_content";
    let Some(ng) = nginx::get(case) else { return };
    let url = ng.url("http", ng.http1, "/nocontent", case);
    let flags = args(&["-c", "4"]);
    let want = Outcome::all(N, "2xx", 0);
    let why = "a 204 has no body, and the connection is kept";
    let seen = nginx_case(ng, (case, &url), &flags, want, why, (4, "HTTP/1.1"));
    assert_eq!(seen.statuses, BTreeSet::from([204]), "{case}: {seen:?}");
}

#[test]
fn nginx_http1_304_not_modified() {
    let case = "nginx_http1_304_not_modified";
    let Some(ng) = nginx::get(case) else { return };
    let head = ng.head_of("/static/index.html");
    let etag = nginx::header(&head, "etag").unwrap_or_else(|| panic!("no ETag:\n{head}"));
    let url = ng.url("http", ng.http1, "/static/index.html", case);
    let condition = format!("If-None-Match: {etag}");
    let flags = args(&["-c", "4", "-H", &condition]);
    let want = Outcome::all(N, "3xx", 0);
    let why = "a 304 has no body, though it carries the file's Content-Length";
    let seen = nginx_case(ng, (case, &url), &flags, want, why, (4, "HTTP/1.1"));
    assert_eq!(seen.statuses, BTreeSet::from([304]), "{case}: {seen:?}");
}

#[test]
fn nginx_h2c_prior_knowledge() {
    let case = "nginx_h2c_prior_knowledge";
    let Some(ng) = nginx::get(case) else { return };
    let url = ng.url("http", ng.h2c, "/small", case);
    let flags = args(&["-c", "2", "--http2", "--streams", "4"]);
    let want = Outcome::all(N, "2xx", SMALL);
    let why = "h2c with prior knowledge: every stream answered 200";
    nginx_case(ng, (case, &url), &flags, want, why, (2, "HTTP/2.0"));
}

#[test]
fn nginx_h2_over_tls_self_signed() {
    let case = "nginx_h2_over_tls_self_signed";
    let Some(ng) = nginx::get(case) else { return };
    let url = ng.url("https", ng.tls, "/small", case);
    let flags = args(&["-c", "2", "--http2", "--streams", "4", "--insecure"]);
    let want = Outcome::all(N, "2xx", SMALL);
    let why = "h2 by ALPN over TLS, the self-signed certificate accepted with --insecure";
    let seen = nginx_case(ng, (case, &url), &flags, want, why, (2, "HTTP/2.0"));
    assert_eq!(seen.ports, BTreeSet::from([ng.tls]), "{case}: {seen:?}");
}

#[test]
fn nginx_h2c_stream_limit_below_client_streams() {
    let case = "nginx_h2c_stream_limit_below_client_streams";
    let Some(ng) = nginx::get(case) else { return };
    // 1 000/s on one connection: the first 2 ms batch alone holds more than 2 requests, so
    // leakgate wants more streams than nginx allows, from the start (before nginx's SETTINGS
    // arrive) and whenever arrivals bunch up.
    let url = ng.url("http", ng.limited, "/small", case);
    let flags: Vec<&str> = "--rate 1000 -d 1s -c 1 --http2 --streams 8"
        .split(' ')
        .collect();
    let run = adhoc(case, &url, &flags);
    let why = format!(
        "nginx allows 2 concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS = 2) and refuses \
         streams past it with RST_STREAM(REFUSED_STREAM), which RFC 9113 8.7 says were not \
         processed and may be retried: a client must keep within the limit and retry refused \
         streams, without errors and at the planned rate. nginx's error log: {}",
        // nginx 1.22 logs a refusal as "concurrent streams exceeded" or, past twice the limit
        // in one read, "client sent too many streams at once".
        ng.errors_with("streams")
    );
    let want = Outcome::all(1000, "2xx", SMALL);
    expect(case, &run, &want, &why);
    let seen = ng.seen(case, 1000);
    assert_eq!(
        (seen.requests, seen.connections),
        (1000, 1),
        "{case}: {seen:?}"
    );
}
