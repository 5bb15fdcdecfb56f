//! Conformance of leakgate's load clients against servers this project did not write: nginx,
//! Go's net/http and Python's grpcio, each started by the test on 127.0.0.1 and driven through
//! the real `leakgate run` binary for one second at a few hundred requests per second. Every
//! case checks summary.json (requests planned and completed, status classes or gRPC codes,
//! error kinds, body bytes) and, where the server can tell, what the server saw: the requests
//! it served, the connections they came on and the protocol.
//!
//! What is proven, client by client:
//! - the lean HTTP/1.1 client (plain `http://`): keep-alive (nginx sees no more connections
//!   than slots), chunked bodies (nginx SSI output, counted decoded), HEAD, 204 and 304
//!   answers without a body;
//! - the own HTTP/2 client (`h2conn`): h2c with prior knowledge and h2 by ALPN over TLS with a
//!   self-signed certificate (`--insecure`) against nginx; a server that allows 2 streams per
//!   connection while leakgate opens 8 (no errors, the planned rate held); against Go: trailers,
//!   a 40 KiB response header block (HEADERS plus CONTINUATION frames), and a stream reset
//!   mid-body, counted as `reset` errors while the connection carries on;
//! - the same client for gRPC, with one stream per connection (`streams_per_connection = 1`,
//!   the reading task always the caller's) and with 8 streams sharing one connection (calls
//!   waiting for a stream, reads handed between tasks, refused streams sent again), against
//!   grpcio limited to 2 concurrent streams: unary, server-streaming and a trailers-only
//!   NOT_FOUND, with the same outcome from each.
//!
//! The servers: `conformance/nginx.conf` (nginx from PATH or /usr/sbin), `conformance/main.go`
//! (built here with `go build`, standard library only, GOPROXY=off) and
//! `conformance/grpc_server.py` (run in the venv of `targets/python/build.sh`, the .proto
//! compiled at start by grpcio-tools). One of each per test binary; nothing is downloaded.
//! Without nginx, Go or the venv a test prints SKIPPED, and fails when `CI` is set:
//! `./ci/test.sh` installs Debian's nginx and golang-go and makes the venv.

mod procs;
mod runs;

#[path = "conformance/go.rs"]
mod go;
#[path = "conformance/grpc.rs"]
mod grpc;
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

/// Calls per second of the gRPC cases. Arrivals are Poisson and grpcio holds each call 2 ms, so
/// on the one connection of 8 streams more calls than grpcio's limit of 2 want to be in flight
/// many times a second, and its limit is exercised, not just announced.
const GRPC_RATE: u64 = 400;

/// Runs `method` with `body` on both gRPC clients and expects `want(n)` from each, `n` being the
/// calls planned (Poisson: about GRPC_RATE, the same for both runs): 8 connections of 1 stream
/// and 1 connection of 8 streams.
fn grpc_case(case: &str, method: &str, body: &str, want: impl Fn(u64) -> Outcome, what: &str) {
    let Some(server) = grpc::get(case) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<Run> = [(8, 1), (1, 8)]
        .into_iter()
        .map(|slots| {
            let name = format!("{case}_streams_{}", slots.1);
            let path = server.scenario(dir.path(), &name, method, body, slots, GRPC_RATE);
            outcome::scenario_file(&name, &path)
        })
        .collect();
    let got: Vec<Outcome> = runs.iter().map(Outcome::of).collect();
    let n = got[0].planned;
    assert!(
        n.abs_diff(GRPC_RATE) <= GRPC_RATE / 10,
        "{case}: {n} calls planned for 1 s at {GRPC_RATE}/s"
    );
    assert_eq!(
        got,
        [want(n), want(n)],
        "{case}: {what}; grpcio allows 2 concurrent streams per connection and refuses more \
         with RST_STREAM(REFUSED_STREAM) (never processed, safe to retry: RFC 9113 8.7). \
         Both runs must give the expected outcome (right): streams_per_connection = 1 \
         (8 connections) first, = 8 (1 connection) second.\nstreams 1:\n{}\nstreams 8:\n{}\ngrpcio's stderr:\n{}",
        report(&runs[0]),
        report(&runs[1]),
        server.log()
    );
}

#[test]
fn grpc_unary() {
    // GetReply {hit: true, size: 7}: 4 bytes, plus the 5-byte message prefix.
    grpc_case(
        "grpc_unary",
        "Get",
        r#"{"key": "present"}"#,
        |n| Outcome::all(n, "OK", 9).messages(1.0),
        "every unary call ends OK with one 9-byte message",
    );
}

#[test]
fn grpc_server_streaming() {
    // Three WatchEvents {key: "k", seq: 1..3}: 5 bytes each plus the prefix.
    grpc_case(
        "grpc_server_streaming",
        "Watch",
        r#"{"key": "k"}"#,
        |n| Outcome::all(n, "OK", 30).messages(3.0),
        "every Watch call ends OK after three 10-byte messages",
    );
}

#[test]
fn grpc_trailers_only_not_found() {
    // context.abort(NOT_FOUND) before any message: grpcio answers trailers-only (grpc-status
    // in the one HEADERS frame, END_STREAM set).
    grpc_case(
        "grpc_trailers_only_not_found",
        "Get",
        r#"{"key": "missing"}"#,
        |n| Outcome::all(n, "NOT_FOUND", 0).messages(0.0),
        "a trailers-only answer is a call that ended with its status (NOT_FOUND), no message",
    );
}
