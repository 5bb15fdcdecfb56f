//! Conformance of leakgate's load clients against servers this project did not write: nginx
//! and Go's net/http, each started by the test on 127.0.0.1 and driven through the real
//! `leakgate run` binary for one second at a few hundred requests per second. Every case
//! checks summary.json (requests planned and completed, status classes, error kinds, body
//! bytes) and what the server saw: the requests it served, the connections they came on and
//! (nginx) the protocol.
//!
//! What is proven, client by client:
//! - the lean HTTP/1.1 client (plain `http://`): keep-alive (nginx sees no more connections
//!   than slots), chunked bodies (nginx SSI output, counted decoded), HEAD, 204 and 304
//!   answers without a body;
//! - hyper's HTTP/2 client: h2c with prior knowledge and h2 by ALPN over TLS with a
//!   self-signed certificate (`--insecure`) against nginx; a server that allows 2 streams per
//!   connection while leakgate opens 8 (no errors, the planned rate held); against Go: trailers,
//!   a 40 KiB response header block (HEADERS plus CONTINUATION frames), and a stream reset
//!   mid-body, counted as `reset` errors while the connection carries on.
//!
//! The servers: `conformance/nginx.conf` (nginx from PATH or /usr/sbin) and
//! `conformance/main.go` (built here with `go build`, standard library only, GOPROXY=off). One
//! of each per test binary; nothing is downloaded. Without nginx or Go a test prints SKIPPED,
//! and fails when `CI` is set: `./ci/test.sh` installs Debian's nginx and golang-go.

mod procs;
mod runs;

#[path = "conformance/go.rs"]
mod go;
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
    // 2 000/s on one connection of 8 streams: the first hand-out alone holds about 6 requests,
    // sent before nginx's SETTINGS (2 streams) are read, and arrivals bunch up past 2 after.
    let url = ng.url("http", ng.limited, "/small", case);
    let flags: Vec<&str> = "--rate 2000 -d 1s -c 1 --http2 --streams 8"
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
    let want = Outcome::all(2000, "2xx", SMALL);
    expect(case, &run, &want, &why);
    let seen = ng.seen(case, 2000);
    assert_eq!(
        (seen.requests, seen.connections),
        (2000, 1),
        "{case}: {seen:?}"
    );
}

/// Flags of the Go cases: h2 by ALPN over TLS, 2 connections of 4 streams.
const GO_FLAGS: &[&str] = &["-c", "2", "--http2", "--streams", "4", "--insecure"];

/// Runs one Go case and checks that the server served every request on at most 2 connections.
fn go_case(case: &str, path: &str, want: &Outcome, why: &str) {
    let Some(server) = go::get(case) else { return };
    let run = adhoc(case, &server.url(path, case), &args(GO_FLAGS));
    let why = format!("{why}\nthe Go server's stderr:\n{}", server.log());
    expect(case, &run, want, &why);
    let (requests, connections) = server.seen(case);
    assert_eq!(
        requests, N,
        "{case}: the Go server served {requests} requests"
    );
    assert!(
        connections <= 2,
        "{case}: the requests came on {connections} connections, leakgate was asked for 2: a \
         stream's end or reset must not cost its connection"
    );
}

#[test]
fn go_h2_trailers() {
    // "body before trailers\n", then a HEADERS frame with X-Checksum and X-Late.
    go_case(
        "go_h2_trailers",
        "/trailers",
        &Outcome::all(N, "2xx", 21),
        "trailers after the body end the response normally",
    );
}

#[test]
fn go_h2_large_header_block() {
    // 40 headers of 1 KiB: a header block of about 27 KiB encoded, more than one 16 KiB frame,
    // so it arrives as HEADERS plus CONTINUATION; then "after big headers\n".
    go_case(
        "go_h2_large_header_block",
        "/bigheaders",
        &Outcome::all(N, "2xx", 18),
        "a 200 whose 40 KiB header block spans CONTINUATION frames is a valid answer \
         (RFC 9113 6.10); a client that announces a smaller SETTINGS_MAX_HEADER_LIST_SIZE \
         than its servers send turns every such answer into an error",
    );
}

#[test]
fn go_h2_stream_reset_mid_body() {
    // 4 KiB of body, then panic(http.ErrAbortHandler): RST_STREAM(INTERNAL_ERROR) on the
    // stream, the connection left open.
    go_case(
        "go_h2_stream_reset_mid_body",
        "/reset",
        &Outcome::all_failed(N, "reset", 4096),
        "a stream the server resets mid-body is an error of kind `reset`, as leakgate's gRPC \
         clients count an RST_STREAM other than PROTOCOL_ERROR (the peer reset it; the answer \
         was valid HTTP/2, not a `protocol` error); its 4 KiB read are counted, and the run \
         and the connection go on",
    );
}
