//! Every way out is honest: the bad-input table.
//!
//! Each case is a malformed input (a scenario file, a flag, a duration, a size, a URL, a
//! template, an absurd number, a .proto, a run folder with a broken `summary.json` or
//! `samples.ndjson`, a heap profile that is not one, a `watch` flag) given to the real binary.
//! Each must exit 64 (a flag) or 65 (a scenario file, an unreadable run folder) with one line
//! on stderr that names the input, within a 20 s kill timeout, and never panic.
//!
//! Everything is offline: URLs point at a port nobody listens on, so a `run` that got past its
//! argument checks would fail by connecting (exit 3) and show up as a mismatch.
//! `cargo test -p leakgate --test bad_input -- --nocapture` prints the table.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use leakgate::heap::pprof::{Function, Line, Location, Profile, Sample, ValueType};

const USAGE: i32 = 64;
const BAD: i32 = 65;
/// A results folder that cannot be made is no malformed input but a folder not writable.
const IO: i32 = 74;
const KILL_AFTER: Duration = Duration::from_secs(20);

/// One malformed input: the arguments, the files written into the case's folder first, the
/// expected exit code and what the error line must contain (pieces separated by `…` must
/// appear in this order).
struct Case {
    name: String,
    args: Vec<String>,
    files: Vec<(String, Vec<u8>)>,
    code: i32,
    needle: String,
}

fn case(name: &str, code: i32, needle: &str, args: &[&str]) -> Case {
    Case {
        name: name.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        files: Vec::new(),
        code,
        needle: needle.to_string(),
    }
}

impl Case {
    fn file(mut self, name: &str, content: impl Into<Vec<u8>>) -> Self {
        self.files.push((name.to_string(), content.into()));
        self
    }

    fn files(mut self, files: Vec<(String, Vec<u8>)>) -> Self {
        self.files.extend(files);
        self
    }
}

/// A scenario that resolves (`check` exits 0), driving the dead port: each scenario case
/// changes one thing in it.
const GOOD: &str = r#"name = "bad-input"
[target]
base_url = "{url}"

[load]
connections = 4
timeout = "5s"
window = "1s"
max_queue = 100
tolerance = 0.05
[[load.phases]]
kind = "warmup"
duration = "1s"
rate = 10
[[load.phases]]
duration = "2s"
rate = { from = 10, to = 20 }
[[load.requests]]
path = "/x/{{seq}}"
headers = { x-id = "{{uuid}}" }

[probes]
interval = "1s"

[gates]
windows = 10
[gates.signals.rss_bytes]
max_slope = "1 MiB/min"
[gates.latency]
p99 = "500ms"
"#;

/// A gRPC scenario with its methods from a .proto file next to it.
const GRPC: &str = r#"name = "grpc-bad-input"
[target]
base_url = "{url}"

[load]
protocol = "grpc"
connections = 2
[[load.phases]]
duration = "2s"
rate = 10
[[load.requests]]
path = "t.S/Get"
body = '{"k": "a"}'
[load.grpc]
protos = ["t.proto"]

[gates.signals.rss_bytes]
max_slope = "1 MiB/min"
"#;

const PROTO: &str = r#"syntax = "proto3";
package t;
message M { string k = 1; }
service S { rpc Get(M) returns (M); }
"#;

/// Lines of [`garbage`]: every one of them is a malformed record.
fn garbage_lines(lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..lines {
        out.extend(garbage(40 + i));
        out.push(b'\n');
    }
    out
}

/// `GOOD` with the first `from` replaced by `to`, as `scn.toml`.
fn scenario(name: &str, cmd: &str, from: &str, to: &str, code: i32, needle: &str) -> Case {
    assert!(GOOD.contains(from), "{name}: GOOD has no {from:?}");
    case(name, code, needle, &[cmd, "scn.toml"]).file("scn.toml", GOOD.replacen(from, to, 1))
}

/// `GRPC` with the first `from` replaced by `to`, as `grpc.toml`, with `t.proto`.
fn grpc(name: &str, from: &str, to: &str, needle: &str) -> Case {
    assert!(GRPC.contains(from), "{name}: GRPC has no {from:?}");
    case(name, BAD, needle, &["run", "grpc.toml"])
        .file("grpc.toml", GRPC.replacen(from, to, 1))
        .file("t.proto", PROTO)
}

/// A stored run folder's two files, as `run/summary.json` and `run/samples.ndjson`.
fn stored_run() -> (Vec<u8>, Vec<u8>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs/clean");
    (
        std::fs::read(dir.join("summary.json")).unwrap(),
        std::fs::read(dir.join("samples.ndjson")).unwrap(),
    )
}

fn run_folder(summary: impl Into<Vec<u8>>, samples: impl Into<Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    vec![
        ("run/summary.json".into(), summary.into()),
        ("run/samples.ndjson".into(), samples.into()),
    ]
}

/// The stored summary with one JSON value changed (by a path of keys).
fn summary_with(summary: &[u8], path: &[&str], value: serde_json::Value) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(summary).unwrap();
    let mut cur = &mut v;
    for k in &path[..path.len() - 1] {
        cur = cur.get_mut(*k).unwrap();
    }
    cur[path[path.len() - 1]] = value;
    serde_json::to_vec_pretty(&v).unwrap()
}

/// `text` with line `n` (from 1) replaced.
fn with_line(text: &[u8], n: usize, line: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, l) in text.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(if i + 1 == n { line } else { l });
    }
    out
}

/// A gzipped pprof heap profile: one site holding each of `values` (inuse_space, bytes).
fn heap_profile(values: &[i64]) -> Vec<u8> {
    let p = Profile {
        sample_type: vec![ValueType { r#type: 1, unit: 2 }],
        sample: values
            .iter()
            .map(|&v| Sample {
                location_id: vec![1],
                value: vec![v],
            })
            .collect(),
        location: vec![Location {
            id: 1,
            address: 0x1000,
            line: vec![Line {
                function_id: 1,
                line: 7,
            }],
        }],
        function: vec![Function {
            id: 1,
            name: 3,
            filename: 4,
        }],
        string_table: ["", "inuse_space", "bytes", "app::grow", "src/app.rs"]
            .map(String::from)
            .to_vec(),
        default_sample_type: 0,
    };
    gzip(&prost::Message::encode_to_vec(&p))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Bytes that are neither UTF-8 text nor gzip nor protobuf (fixed, so the table is stable).
fn garbage(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8 | 0x80
        })
        .collect()
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let (summary, samples) = stored_run();
    let half_summary = summary[..summary.len() / 2].to_vec();
    let samples_text = String::from_utf8(samples.clone()).unwrap();
    let good_heap = heap_profile(&[1 << 20]);
    let mut v = vec![
        // The command line itself.
        case("no subcommand", USAGE, "no command given", &[]),
        case("unknown subcommand", USAGE, "'frobnicate'", &["frobnicate"]),
        case("run without a target", USAGE, "<TARGET>", &["run"]),
        case("run: unknown flag", USAGE, "'--bogus'", &["run", "{url}/", "--bogus"]),
        case("check without a file", USAGE, "<FILE>", &["check"]),
        case("schema with an argument", USAGE, "'extra'", &["schema", "extra"]),
        // URLs.
        case("run ftp://", USAGE, "scheme `ftp` is not supported", &["run", "ftp://host/"]),
        case("run gopher:// (upper case)", USAGE, "scheme `GOPHER`", &["run", "GOPHER://h/"]),
        case("URL without a host", USAGE, "the URL \"http://\" is not a URL", &["run", "http://"]),
        case("URL port 0", USAGE, "port 0 is not a TCP port", &["run", "http://127.0.0.1:0/"]),
        case("URL port 99999", USAGE, "port 99999", &["run", "http://127.0.0.1:99999/x"]),
        case("URL IPv6 port 0", USAGE, "port 0", &["run", "http://[::1]:0/"]),
        case("URL with a space", USAGE, "http://exa mple", &["run", "http://exa mple/"]),
        case("URL unclosed IPv6", USAGE, "http://[::1", &["run", "http://[::1/"]),
        case("URL with --set", USAGE, "--set", &["run", "{url}/", "--set", "a=b"]),
        // Connections, rates, durations (the issue's known holes first).
        case("-c 99999999999", USAGE, "--connections…RLIMIT_NOFILE", &["run", "{url}/", "-c", "99999999999", "-d", "1s", "--rate", "10"]),
        case("-c u64::MAX", USAGE, "--connections…RLIMIT_NOFILE", &["run", "{url}/", "-c", "18446744073709551615"]),
        case("-c u64::MAX+1", USAGE, "'--connections", &["run", "{url}/", "-c", "18446744073709551616"]),
        case("-c 0", USAGE, "--connections must be at least 1", &["run", "{url}/", "-c", "0"]),
        case("-c -1", USAGE, "'--connections", &["run", "{url}/", "-c", "-1"]),
        case("-c many", USAGE, "'--connections", &["run", "{url}/", "-c", "many"]),
        case("--rate 1e12", USAGE, "--rate…10000000", &["run", "{url}/", "--rate", "1e12", "-d", "1s"]),
        case("--rate u64::MAX", USAGE, "--rate…10000000", &["run", "{url}/", "--rate", "18446744073709551615"]),
        case("--rate 0", USAGE, "--rate must be > 0", &["run", "{url}/", "--rate", "0"]),
        case("--rate -5", USAGE, "--rate must be > 0", &["run", "{url}/", "--rate", "-5"]),
        case("--rate NaN", USAGE, "--rate must be > 0…NaN", &["run", "{url}/", "--rate", "NaN"]),
        case("--rate inf", USAGE, "--rate = inf", &["run", "{url}/", "--rate", "inf"]),
        case("--rate fast", USAGE, "'--rate", &["run", "{url}/", "--rate", "fast"]),
        case("-d 0s", USAGE, "--duration must be longer than 0s", &["run", "{url}/", "-d", "0s"]),
        case("-d 0", USAGE, "'--duration", &["run", "{url}/", "-d", "0"]),
        case("-d -1s", USAGE, "'--duration", &["run", "{url}/", "-d", "-1s"]),
        case("-d 1e12s", USAGE, "'--duration", &["run", "{url}/", "-d", "1e12s"]),
        case("-d u64::MAX s", USAGE, "'--duration…31 years", &["run", "{url}/", "-d", "18446744073709551615s"]),
        case("-d NaNs", USAGE, "'--duration", &["run", "{url}/", "-d", "NaNs"]),
        case("-d 40d (over 30 days)", USAGE, "--duration must be at most", &["run", "{url}/", "-d", "40d"]),
        case("-d 3 parsecs", USAGE, "'--duration", &["run", "{url}/", "-d", "3 parsecs"]),
        case("--timeout 10µs (µ parses)", USAGE, "--timeout must be at least 1ms, got 10µs", &["run", "{url}/", "--timeout", "10µs"]),
        case("--timeout 0s", USAGE, "--timeout must be at least", &["run", "{url}/", "--timeout", "0s"]),
        case("--timeout 1000d", USAGE, "--timeout must be at most", &["run", "{url}/", "--timeout", "1000d"]),
        case("--window 0s", USAGE, "--window must be at least 100ms", &["run", "{url}/", "--window", "0s"]),
        case("--window 1000d", USAGE, "--window must be at most", &["run", "{url}/", "--window", "1000d"]),
        case("--max-queue 0", USAGE, "--max-queue must be from 1", &["run", "{url}/", "--max-queue", "0"]),
        case("--max-queue u64::MAX", USAGE, "--max-queue must be from 1", &["run", "{url}/", "--max-queue", "18446744073709551615"]),
        case("--tolerance NaN", USAGE, "--tolerance must be in 0..1", &["run", "{url}/", "--tolerance", "NaN"]),
        case("--tolerance 1.5", USAGE, "--tolerance must be in 0..1", &["run", "{url}/", "--tolerance", "1.5"]),
        case("--tolerance -0.1", USAGE, "--tolerance must be in 0..1", &["run", "{url}/", "--tolerance", "-0.1"]),
        case("--streams 0 --http2", USAGE, "--streams must be from 1", &["run", "{url}/", "--http2", "--streams", "0"]),
        case("--streams 99999999 --http2", USAGE, "--streams must be from 1", &["run", "{url}/", "--http2", "--streams", "99999999"]),
        case("--streams 4 on HTTP/1.1", USAGE, "--streams = 4…--http2", &["run", "{url}/", "--streams", "4"]),
        case("-c × streams over a million", USAGE, "--connections = 2000…requests in flight", &["run", "{url}/", "--http2", "--streams", "1000", "-c", "2000"]),
        case("--threads 0", USAGE, "--threads must be from 1", &["run", "{url}/", "--threads", "0"]),
        case("--threads 100000", USAGE, "--threads must be from 1", &["run", "{url}/", "--threads", "100000"]),
        case("--seed -1", USAGE, "'--seed", &["run", "{url}/", "--seed", "-1"]),
        case("--seed u64::MAX+1", USAGE, "'--seed", &["run", "{url}/", "--seed", "18446744073709551616"]),
        case("--cancel-after 0s", USAGE, "--cancel-after must be at least", &["run", "{url}/", "--cancel-after", "0s"]),
        // Sizes.
        case("--abandon-after 12 parsecs", USAGE, "'--abandon-after", &["run", "{url}/", "--abandon-after", "12 parsecs"]),
        case("--abandon-after -5", USAGE, "'--abandon-after", &["run", "{url}/", "--abandon-after", "-5"]),
        case("--abandon-after 1e400", USAGE, "'--abandon-after", &["run", "{url}/", "--abandon-after", "1e400"]),
        case("--abandon-after NaN KiB", USAGE, "'--abandon-after", &["run", "{url}/", "--abandon-after", "NaN KiB"]),
        // Methods, headers, templates.
        case("-m with a space", USAGE, "--method \"GE T\"", &["run", "{url}/", "-m", "GE T"]),
        case("-H without a colon", USAGE, "--header expects", &["run", "{url}/", "-H", "NoColon"]),
        case("-H bad name", USAGE, "\"bad name\" is not a valid HTTP header name", &["run", "{url}/", "-H", "bad name: v"]),
        case("-H template MIN > MAX", USAGE, "--header…MIN must be <= MAX", &["run", "{url}/", "-H", "x: {{rand_int 9 1}}"]),
        case("-H rand_str 1e11", USAGE, "--header…LEN must be from 0", &["run", "{url}/", "-H", "x: {{rand_str 99999999999}}"]),
        case("--body unclosed {{", USAGE, "--body…without a closing", &["run", "{url}/", "--body", "{{seq"]),
        case("--body unknown", USAGE, "--body…unknown `{{nope}}`", &["run", "{url}/", "--body", "{{nope}}"]),
        case("--body zipf NaN", USAGE, "--body…zipf NaN", &["run", "{url}/", "--body", "{{zipf NaN 1.1}}"]),
        case("--body zipf inf", USAGE, "--body…zipf inf", &["run", "{url}/", "--body", "{{zipf inf 1.1}}"]),
        case("--body zipf 0", USAGE, "--body…zipf 0", &["run", "{url}/", "--body", "{{zipf 0 1}}"]),
        case("--body rand_int NaN", USAGE, "--body…whole number", &["run", "{url}/", "--body", "{{rand_int NaN 1}}"]),
        case("--body rand_str -1", USAGE, "--body…LEN must be from 0", &["run", "{url}/", "--body", "{{rand_str -1}}"]),
        // Other run flags.
        case("--evaluate-every 0s", USAGE, "--evaluate-every must be at least", &["run", "{url}/", "--evaluate-every", "0s"]),
        case("--listen-public without --listen", USAGE, "--listen", &["run", "{url}/", "--listen-public"]),
        case("--until-verdict without gates", USAGE, "--until-verdict needs a gate", &["run", "{url}/", "--until-verdict"]),
        case("--listen not an address", USAGE, "not-an-address", &["run", "{url}/", "--listen", "not-an-address"]),
        case("--results-dir under a file", IO, "cannot write results to", &["run", "{url}/", "--results-dir", "f/sub"]).file("f", "a file"),
    ];

    // Scenario files: exit 65 with file:line:col.
    let s = |n, from, to, needle| scenario(n, "run", from, to, BAD, needle);
    v.extend([
        s("connections = 0", "connections = 4", "connections = 0", "scn.toml:6:15: `connections` must be at least 1"),
        s("connections = 99999999999", "connections = 4", "connections = 99999999999", "scn.toml:6:15:…RLIMIT_NOFILE"),
        s("connections = -1", "connections = 4", "connections = -1", "scn.toml:6:15:"),
        s("connections = u64::MAX+1", "connections = 4", "connections = 18446744073709551616", "scn.toml:6:"),
        s("connections = \"four\"", "connections = 4", "connections = \"four\"", "scn.toml:6:15: invalid type"),
        s("rate = 1e12", "rate = 10", "rate = 1e12", "scn.toml:14:8:…10000000"),
        s("rate = 0", "rate = 10", "rate = 0", "scn.toml:14:8:…must be > 0"),
        s("rate = -5", "rate = 10", "rate = -5", "scn.toml:14:8:…must be > 0"),
        s("rate = nan", "rate = 10", "rate = nan", "scn.toml:14:8:…NaN"),
        s("rate = inf", "rate = 10", "rate = inf", "scn.toml:14:8:…inf"),
        s("rate = \"fast\"", "rate = 10", "rate = \"fast\"", "scn.toml:14:8:…\"max\""),
        s("ramp to = 1e12", "to = 20", "to = 1e12", "scn.toml:17:8: a ramp's `to`"),
        s("ramp from = -1", "from = 10", "from = -1", "scn.toml:17:8: a ramp needs rates >= 0"),
        s("ramp to = nan", "to = 20", "to = nan", "scn.toml:17:8:"),
        s("ramp without to", ", to = 20", "", "scn.toml:17:8: a ramp needs both"),
        s("duration = \"0s\"", "duration = \"1s\"", "duration = \"0s\"", "scn.toml:13:12: a phase's `duration` must be longer than 0s"),
        s("duration = 0", "duration = \"1s\"", "duration = 0", "scn.toml:13:12:"),
        s("duration = -1", "duration = \"1s\"", "duration = -1", "scn.toml:13:12: a duration cannot be negative"),
        s("duration = 1e300", "duration = \"1s\"", "duration = 1e300", "scn.toml:13:12:…31 years"),
        s("duration = i64::MAX", "duration = \"1s\"", "duration = 9223372036854775807", "scn.toml:13:12:…9223372036854775807"),
        s("duration = \"40d\"", "duration = \"1s\"", "duration = \"40d\"", "scn.toml:13:12:…must be at most"),
        s("duration = \"10µ\"", "duration = \"1s\"", "duration = \"10µ\"", "scn.toml:13:12: expected a duration"),
        s("timeout = \"0s\"", "timeout = \"5s\"", "timeout = \"0s\"", "scn.toml:7:11: `timeout` must be at least 1ms"),
        s("timeout = \"10µs\"", "timeout = \"5s\"", "timeout = \"10µs\"", "scn.toml:7:11: `timeout` must be at least 1ms, got 10µs"),
        s("timeout = \"1000d\"", "timeout = \"5s\"", "timeout = \"1000d\"", "scn.toml:7:11: `timeout` must be at most"),
        s("timeout = i64::MAX", "timeout = \"5s\"", "timeout = 9223372036854775807", "scn.toml:7:11:"),
        s("window = \"0s\"", "window = \"1s\"", "window = \"0s\"", "scn.toml:8:10: `window` must be at least 100ms"),
        s("window = \"1000d\"", "window = \"1s\"", "window = \"1000d\"", "scn.toml:8:10: `window` must be at most"),
        s("max_queue = 0", "max_queue = 100", "max_queue = 0", "scn.toml:9:13: `max_queue` must be from 1"),
        s("max_queue = 99999999999", "max_queue = 100", "max_queue = 99999999999", "scn.toml:9:13: `max_queue`"),
        s("tolerance = nan", "tolerance = 0.05", "tolerance = nan", "scn.toml:10:13: `tolerance` must be in 0..1"),
        s("tolerance = 1.5", "tolerance = 0.05", "tolerance = 1.5", "scn.toml:10:13: `tolerance`"),
        s("streams on http1", "connections = 4", "connections = 4\nstreams_per_connection = 4", "scn.toml:7:26:…HTTP/1.1"),
        s("streams = 0 (http2)", "connections = 4", "protocol = \"http2\"\nstreams_per_connection = 0", "scn.toml:7:26:…from 1 to 1000"),
        s("streams = 99999999 (http2)", "connections = 4", "protocol = \"http2\"\nstreams_per_connection = 99999999", "scn.toml:7:26:"),
        s("threads = 0", "connections = 4", "threads = 0", "scn.toml:6:11: `threads` must be from 1"),
        s("threads = 100000", "connections = 4", "threads = 100000", "scn.toml:6:11: `threads`"),
        s("weight = 0", "path = \"/x/{{seq}}\"", "path = \"/x\"\nweight = 0", "scn.toml:20:10: `weight` must be at least 1"),
        s("weight = 2^32", "path = \"/x/{{seq}}\"", "path = \"/x\"\nweight = 4294967296", "scn.toml:20:10:"),
        s("method with a space", "path = \"/x/{{seq}}\"", "path = \"/x\"\nmethod = \"GE T\"", "scn.toml:20:10: `method` \"GE T\""),
        s("path without /", "path = \"/x/{{seq}}\"", "path = \"x\"", "scn.toml:19:8: `path` must start with `/`"),
        s("path template unknown", "/x/{{seq}}", "/x/{{nope}}", "scn.toml:19:8: `path`: template…unknown"),
        s("path template unclosed", "/x/{{seq}}", "/x/{{seq", "scn.toml:19:8: `path`: template…without a closing"),
        s("header template MIN > MAX", "{{uuid}}", "{{rand_int 9 1}}", "scn.toml:20:20: header `x-id`…MIN must be <= MAX"),
        s("header name with a space", "x-id = ", "\"x id\" = ", "scn.toml:20:22: header name \"x id\""),
        s("body zipf NaN", "path = \"/x/{{seq}}\"", "path = \"/x\"\nbody = \"{{zipf NaN 1}}\"", "scn.toml:20:8: `body`…zipf NaN"),
        s("body rand_str 1e11", "path = \"/x/{{seq}}\"", "path = \"/x\"\nbody = \"{{rand_str 99999999999}}\"", "scn.toml:20:8: `body`…LEN"),
        s("cancel_after = \"0s\"", "path = \"/x/{{seq}}\"", "path = \"/x\"\ncancel_after = \"0s\"", "scn.toml:20:16: `cancel_after`"),
        s("abandon_after = \"12 parsecs\"", "path = \"/x/{{seq}}\"", "path = \"/x\"\nabandon_after = \"12 parsecs\"", "scn.toml:20:17: expected a size"),
        s("abandon_after = -1", "path = \"/x/{{seq}}\"", "path = \"/x\"\nabandon_after = -1", "scn.toml:20:17: a size cannot be negative"),
        s("base_url ftp://", "base_url = \"{url}\"", "base_url = \"ftp://x\"", "scn.toml:3:12: `base_url` \"ftp://x\" must start with http://"),
        s("base_url port 0", "base_url = \"{url}\"", "base_url = \"http://127.0.0.1:0\"", "scn.toml:3:12:…port 0"),
        s("base_url port 99999", "base_url = \"{url}\"", "base_url = \"http://127.0.0.1:99999\"", "scn.toml:3:12:…port 99999"),
        s("base_url without host", "base_url = \"{url}\"", "base_url = \"http://\"", "scn.toml:3:12:"),
        s("placeholder {port:}", "base_url = \"{url}\"", "base_url = \"http://127.0.0.1:{port:}\"", "scn.toml:3:12: placeholder {port:} needs a name"),
        s("unknown key", "connections = 4", "conections = 4", "scn.toml:6:1: unknown field `conections`"),
        s("table header cut", "[load]", "[load", "scn.toml:5:"),
        s("probes interval 1ms", "interval = \"1s\"", "interval = \"1ms\"", "scn.toml:23:12: [probes] `interval` must be at least 50ms"),
        s("probes drain_wait 1000d", "interval = \"1s\"", "interval = \"1s\"\ndrain_wait = \"1000d\"", "scn.toml:24:14: [probes] `drain_wait`"),
        s("heap_profile_every 10ms", "interval = \"1s\"", "interval = \"1s\"\nheap_profile_every = \"10ms\"", "scn.toml:24:22: [probes] `heap_profile_every`"),
        s("heap_profile_url https", "interval = \"1s\"", "interval = \"1s\"\nheap_profile_url = \"https://h/heap\"", "scn.toml:22:1: [probes] `heap_profile_url`…only http://"),
        s("gates windows 0", "windows = 10", "windows = 0", "scn.toml:26:11: [gates] `windows` must be in 4..=1000"),
        s("gates windows 99999", "windows = 10", "windows = 99999", "scn.toml:26:11:"),
        s("gates warmup_share nan", "windows = 10", "warmup_share = nan", "scn.toml:26:16: [gates] `warmup_share`"),
        s("gates confidence 1.5", "windows = 10", "confidence = 1.5", "scn.toml:26:14: [gates] `confidence`"),
        s("max_slope per fortnight", "1 MiB/min", "1 MiB/fortnight", "scn.toml:28:13: expected a slope"),
        s("max_slope NaN/s", "1 MiB/min", "NaN/s", "scn.toml:28:13: expected a slope"),
        s("max_slope 1e400 B/s", "1 MiB/min", "1e400 B/s", "scn.toml:28:13: expected a slope"),
        s("latency p99 = -1", "p99 = \"500ms\"", "p99 = -1", "scn.toml:30:7: a duration cannot be negative"),
        s("latency error_rate 2", "p99 = \"500ms\"", "error_rate = 2.0", "scn.toml:30:14: [gates.latency] `error_rate`"),
        scenario("check: connections = 0", "check", "connections = 4", "connections = 0", BAD, "scn.toml:6:15:"),
        scenario("check: rate = 1e12", "check", "rate = 10", "rate = 1e12", BAD, "scn.toml:14:8:…10000000"),
        scenario("check --set connections=0", "check", "", "", BAD, "")
            .retarget(&["check", "scn.toml", "--set", "load.connections=0"], USAGE, "--set load.connections: `connections` must be at least 1"),
        scenario("run --set phases.9", "run", "", "", BAD, "")
            .retarget(&["run", "scn.toml", "--set", "load.phases.9.rate=1"], USAGE, "--set load.phases.9.rate: index 9 is past the end"),
        scenario("run --set without =", "run", "", "", BAD, "").retarget(&["run", "scn.toml", "--set", "nokey"], USAGE, "--set expects KEY=VALUE"),
        scenario("run scenario --rate 1e12", "run", "", "", BAD, "").retarget(&["run", "scn.toml", "--rate", "1e12"], USAGE, "--rate…10000000"),
        scenario("run scenario -d 0s", "run", "", "", BAD, "").retarget(&["run", "scn.toml", "-d", "0s"], USAGE, "--duration must be longer than 0s"),
        scenario("run scenario -c 99999999999", "run", "", "", BAD, "")
            .retarget(&["run", "scn.toml", "-c", "99999999999"], USAGE, "--connections…RLIMIT_NOFILE"),
        case("scenario missing", BAD, "cannot read scenario file nope.toml", &["run", "nope.toml"]),
        case("scenario is a folder", BAD, "cannot read scenario file d", &["check", "d"]).file("d/x", ""),
        case("scenario not UTF-8", BAD, "bin.toml:2:8: not UTF-8", &["run", "bin.toml"])
            .file("bin.toml", [b"name = \"x\"\nrate = ".as_slice(), &garbage(64)].concat()),
        case("scenario cut mid-line", BAD, "cut.toml:", &["run", "cut.toml"])
            .file("cut.toml", &GOOD.as_bytes()[..GOOD.find("rate = { from").unwrap() + 12]),
        case("scenario empty", BAD, "empty.toml: the scenario has no [load]", &["run", "empty.toml"]).file("empty.toml", ""),
        // .proto files (a gRPC run fails before connecting).
        grpc("proto missing", "protos = [\"t.proto\"]", "protos = [\"missing.proto\"]", "grpc.toml:…missing.proto"),
        grpc("proto not compiling", "protos = [\"t.proto\"]", "protos = [\"bad.proto\"]", "grpc.toml:…bad.proto…does not compile")
            .file("bad.proto", "syntax = \"proto3\";\nmessage {"),
        grpc("proto not UTF-8", "protos = [\"t.proto\"]", "protos = [\"bin.proto\"]", "grpc.toml:…bin.proto").file("bin.proto", garbage(100)),
        grpc("protoset garbage", "protos = [\"t.proto\"]", "protoset = \"x.pb\"", "grpc.toml:…x.pb is not a FileDescriptorSet")
            .file("x.pb", garbage(100)),
        grpc("unknown gRPC method", "t.S/Get", "t.S/Nope", "grpc.toml:…has no method \"Nope\""),
        grpc("unknown gRPC service", "t.S/Get", "t.Nope/Get", "grpc.toml:…unknown gRPC service"),
        grpc("gRPC body not the message", "{\"k\": \"a\"}", "{\"nope\": 1}", "grpc.toml:…does not fit t.M"),
        grpc("gRPC path without /", "path = \"t.S/Get\"", "path = \"Get\"", "grpc.toml:12:8: a gRPC path"),
        grpc("gRPC method path on http2", "protocol = \"grpc\"", "protocol = \"http2\"", "grpc.toml:12:8: `path` must start with `/`"),
    ]);

    // Run folders: report, compare, heapdiff, analyze.
    v.extend([
        case("report: no folder", BAD, "nope/summary.json", &["report", "nope"]),
        case("report: a file", BAD, "f/summary.json", &["report", "f"]).file("f", "x"),
        case("report: empty folder", BAD, "run/summary.json: No such file", &["report", "run"]).file("run/x", ""),
        case("report: summary cut in half", BAD, "run/summary.json:", &["report", "run"]).files(run_folder(half_summary.clone(), samples.clone())),
        case("report: summary empty", BAD, "run/summary.json:", &["report", "run"]).files(run_folder("", samples.clone())),
        case("report: summary garbage", BAD, "run/summary.json:", &["report", "run"]).files(run_folder(garbage(300), samples.clone())),
        case("report: summary {}", BAD, "run/summary.json:1: …missing field", &["report", "run"]).files(run_folder("{}", samples.clone())),
        case("report: summary []", BAD, "run/summary.json:1:", &["report", "run"]).files(run_folder("[]", samples.clone())),
        case("report: summary schema 99", BAD, "run/summary.json: schema_version 99 is not 1", &["report", "run"])
            .files(run_folder(summary_with(&summary, &["schema_version"], 99.into()), samples.clone())),
        case("report: unfinished, schema 99", BAD, "run/summary.json: schema_version 99 is not 1", &["report", "run"])
            .files(run_folder(summary_with(&summary_with(&summary, &["schema_version"], 99.into()), &["finished"], false.into()), samples.clone())),
        case("report: summary exit_code a string", BAD, "run/summary.json:", &["report", "run"])
            .files(run_folder(summary_with(&summary, &["exit_code"], "x".into()), samples.clone())),
        case("report: unfinished, gates a string", BAD, "run/summary.json:…expected struct GatePlan", &["report", "run"])
            .files(run_folder(summary_with(&summary_with(&summary, &["plan", "gates"], "x".into()), &["finished"], false.into()), samples.clone())),
        case("report: samples line 4 cut", BAD, "run/samples.ndjson:4:", &["report", "run"])
            .files(run_folder(summary.clone(), with_line(&samples, 4, b"{\"type\":\"probe\","))),
        case("report: samples garbage", BAD, "run/samples.ndjson:1:", &["report", "run"]).files(run_folder(summary.clone(), garbage_lines(50))),
        case("report: samples not UTF-8 in line 3", BAD, "run/samples.ndjson:3:", &["report", "run"])
            .files(run_folder(summary.clone(), with_line(&samples, 3, &garbage(40)))),
        case("report: samples unknown type", BAD, "run/samples.ndjson:2:", &["report", "run"])
            .files(run_folder(summary.clone(), with_line(&samples, 2, b"{\"type\":\"bogus\",\"t\":1}"))),
        case("report: samples t = 1e999", BAD, "run/samples.ndjson:2:", &["report", "run"])
            .files(run_folder(summary.clone(), with_line(&samples, 2, b"{\"type\":\"event\",\"t\":1e999,\"kind\":\"x\",\"detail\":\"\"}"))),
        case("report: samples array line", BAD, "run/samples.ndjson:5:", &["report", "run"])
            .files(run_folder(summary.clone(), with_line(&samples, 5, b"[1,2,3]"))),
        case("report: unfinished, samples cut mid-file", BAD, "run/samples.ndjson:2:", &["report", "run"])
            .files(run_folder(summary_with(&summary, &["finished"], false.into()), with_line(&samples, 2, &samples_text.lines().nth(1).unwrap().as_bytes()[..30]))),
        case("report: segment file corrupt", BAD, "samples.00001.ndjson:1:", &["report", "run"])
            .files(run_folder(summary.clone(), samples.clone()))
            .file("run/samples.00001.ndjson", "{\"type\":\n"),
        case("compare: base missing", BAD, "compare: …nope/summary.json", &["compare", "nope", "run"])
            .files(run_folder(summary.clone(), samples.clone())),
        case("compare: new summary cut", BAD, "compare: …run/summary.json:", &["compare", "ok", "run"])
            .files(run_folder(half_summary.clone(), samples.clone()))
            .file("ok/summary.json", summary.clone())
            .file("ok/samples.ndjson", samples.clone()),
        case("compare: new samples garbage", BAD, "compare: …run/samples.ndjson:1:", &["compare", "ok", "run"])
            .files(run_folder(summary.clone(), garbage_lines(20)))
            .file("ok/summary.json", summary.clone())
            .file("ok/samples.ndjson", samples.clone()),
        case("compare: one folder only", USAGE, "<NEW>", &["compare", "run"]),
        case("compare --p99-tolerance NaN", USAGE, "'--p99-tolerance", &["compare", "a", "b", "--p99-tolerance", "NaN"]),
        case("compare --p99-tolerance -10%", USAGE, "'--p99-tolerance", &["compare", "a", "b", "--p99-tolerance", "-10%"]),
        case("compare --p99-floor -1ms", USAGE, "'--p99-floor", &["compare", "a", "b", "--p99-floor", "-1ms"]),
        case("compare --slope-tolerance 1e999", USAGE, "'--slope-tolerance", &["compare", "a", "b", "--slope-tolerance", "1e999"]),
        case("heapdiff: no profiles", BAD, "heap-start.pb.gz", &["heapdiff", "run"]).files(run_folder(summary.clone(), samples.clone())),
        case("heapdiff: start not gzip", BAD, "a.pb.gz: not a pprof profile", &["heapdiff", "a.pb.gz", "b.pb.gz"])
            .file("a.pb.gz", garbage(200))
            .file("b.pb.gz", good_heap.clone()),
        case("heapdiff: gzip of garbage", BAD, "b.pb.gz: not a pprof profile", &["heapdiff", "a.pb.gz", "b.pb.gz"])
            .file("a.pb.gz", good_heap.clone())
            .file("b.pb.gz", gzip(&garbage(200))),
        case("heapdiff: gzip cut", BAD, "b.pb.gz: not a valid gzip stream", &["heapdiff", "a.pb.gz", "b.pb.gz"])
            .file("a.pb.gz", good_heap.clone())
            .file("b.pb.gz", good_heap[..good_heap.len() / 2].to_vec()),
        case("heapdiff: gzip header only", BAD, "b.pb.gz: not a valid gzip stream", &["heapdiff", "a.pb.gz", "b.pb.gz"])
            .file("a.pb.gz", good_heap.clone())
            .file("b.pb.gz", good_heap[..2].to_vec()),
        case("heapdiff: empty file", BAD, "b.pb.gz: …no sample types", &["heapdiff", "a.pb.gz", "b.pb.gz"])
            .file("a.pb.gz", good_heap.clone())
            .file("b.pb.gz", ""),
        case("heapdiff: a text file", BAD, "b.txt: not a pprof profile", &["heapdiff", "a.pb.gz", "b.txt"])
            .file("a.pb.gz", good_heap.clone())
            .file("b.txt", "heap profile: 1: 2 [3: 4] @ heap/1048576\n"),
        case("heapdiff: values past 2^63", BAD, "b.pb.gz: …past 2^63", &["heapdiff", "a.pb.gz", "b.pb.gz"])
            .file("a.pb.gz", good_heap.clone())
            .file("b.pb.gz", heap_profile(&[i64::MAX, i64::MAX])),
        case("heapdiff: start missing", BAD, "cannot read nope.pb.gz", &["heapdiff", "nope.pb.gz", "b.pb.gz"]).file("b.pb.gz", good_heap.clone()),
        case("heapdiff --top -1", USAGE, "'--top", &["heapdiff", "run", "--top", "-1"]),
        case("heapdiff: three profiles", USAGE, "'c'", &["heapdiff", "a", "b", "c"]),
        case("analyze: missing file", BAD, "cannot read nope.ndjson", &["analyze", "nope.ndjson", "--max-slope", "1/s"]),
        case("analyze: csv bad value", BAD, "m.csv:3: value `x`", &["analyze", "m.csv", "--max-slope", "1/s"])
            .file("m.csv", "time,value\n0,1\n1,x\n"),
        case("analyze: csv three columns", BAD, "m.csv:2: expected two columns", &["analyze", "m.csv", "--max-slope", "1/s"])
            .file("m.csv", "time,value\n0,1,2\n"),
        case("analyze: samples without probes", BAD, "s.ndjson: no probe samples", &["analyze", "s.ndjson", "--max-slope", "1/s"])
            .file("s.ndjson", "{\"type\":\"event\",\"t\":1,\"kind\":\"x\",\"detail\":\"\"}\n"),
        case("analyze: samples garbage", BAD, "cannot read s.ndjson", &["analyze", "s.ndjson", "--max-slope", "1/s"]).file("s.ndjson", garbage(100)),
        case("analyze: no --max-slope", USAGE, "--max-slope", &["analyze", "s.ndjson"]),
        case("analyze --max-slope 1 MiB", USAGE, "'--max-slope", &["analyze", "s.ndjson", "--max-slope", "1 MiB"]),
        case("analyze --max-slope -1/s", USAGE, "'--max-slope", &["analyze", "s.ndjson", "--max-slope", "-1/s"]),
        case("analyze --warmup-share NaN", USAGE, "--warmup-share must be in 0..0.9", &["analyze", "s.ndjson", "--max-slope", "1/s", "--warmup-share", "NaN"]),
        case("analyze --windows 0", USAGE, "--windows must be in 4..=1000", &["analyze", "s.ndjson", "--max-slope", "1/s", "--windows", "0"]),
        case("analyze --windows u64::MAX", USAGE, "--windows must be in", &["analyze", "s.ndjson", "--max-slope", "1/s", "--windows", "18446744073709551615"]),
    ]);

    // watch: which service, how often, which gates.
    v.extend([
        case("watch: no service", USAGE, "say which service to watch", &["watch"]),
        case("watch --pid -1", USAGE, "'--pid", &["watch", "--pid", "-1"]),
        case("watch --pid 2^32", USAGE, "'--pid", &["watch", "--pid", "4294967296"]),
        case("watch --pid 0", USAGE, "cannot attach", &["watch", "--pid", "0"]),
        case("watch --pid not running", USAGE, "cannot attach", &["watch", "--pid", "4194303"]),
        case("watch --pid-file missing", USAGE, "cannot attach…nope.pid", &["watch", "--pid-file", "nope.pid"]),
        case("watch --pid-file garbage", USAGE, "cannot attach…g.pid", &["watch", "--pid-file", "g.pid"]).file("g.pid", "not a pid\n"),
        case("watch --cgroup missing", USAGE, "cannot attach…nope-cgroup", &["watch", "--cgroup", "nope-cgroup"]),
        case("watch --systemd-unit missing", USAGE, "cannot attach…nope", &["watch", "--systemd-unit", "nope", "--cgroup-root", "cg"])
            .file("cg/x", ""),
        case("watch --container missing", USAGE, "cannot attach…0123abcd", &["watch", "--container", "0123abcd", "--cgroup-root", "cg"])
            .file("cg/x", ""),
        case("watch --process-name missing", USAGE, "cannot attach…no-such-process-xyz", &["watch", "--process-name", "no-such-process-xyz"]),
        case("watch --interval 1ms", USAGE, "--interval must be at least 50ms", &["watch", "--pid", "{pid}", "--interval", "1ms"]),
        case("watch --interval -1s", USAGE, "'--interval", &["watch", "--pid", "{pid}", "--interval", "-1s"]),
        case("watch --duration 0s", USAGE, "--duration must be longer than 0s", &["watch", "--pid", "{pid}", "-d", "0s"]),
        case("watch --evaluate-every 0s", USAGE, "--evaluate-every must be at least", &["watch", "--pid", "{pid}", "--evaluate-every", "0s"]),
        case("watch --horizon 0s", USAGE, "'--horizon", &["watch", "--pid", "{pid}", "--horizon", "0s"]),
        case("watch --horizon NaNreq", USAGE, "'--horizon", &["watch", "--pid", "{pid}", "--horizon", "NaNreq"]),
        case("watch --horizon -5req", USAGE, "'--horizon", &["watch", "--pid", "{pid}", "--horizon", "-5req"]),
        case("watch --horizon forever", USAGE, "'--horizon", &["watch", "--pid", "{pid}", "--horizon", "forever"]),
        case("watch --gate without =", USAGE, "--gate expects SIGNAL=LIMIT", &["watch", "--pid", "{pid}", "--gate", "rss_bytes"]),
        case("watch --gate bad slope", USAGE, "--gate rss_bytes: expected a slope", &["watch", "--pid", "{pid}", "--gate", "rss_bytes=fast"]),
        case("watch --gate =1/s", USAGE, "--gate expects", &["watch", "--pid", "{pid}", "--gate", "=1/s"]),
        case("watch --min-time-to-limit 1e12s", USAGE, "'--min-time-to-limit", &["watch", "--pid", "{pid}", "--min-time-to-limit", "1e12s"]),
        case("watch --requests-metric alone", USAGE, "--requests-from", &["watch", "--pid", "{pid}", "--requests-metric", "x"]),
        case("watch --metric alone", USAGE, "--prometheus", &["watch", "--pid", "{pid}", "--metric", "x"]),
        case("watch --requests-from ftp://", USAGE, "--requests-from \"ftp://h/m\": only http://", &["watch", "--pid", "{pid}", "--requests-from", "ftp://h/m"]),
        case("watch --prometheus port 0", USAGE, "--prometheus…port 0", &["watch", "--pid", "{pid}", "--prometheus", "http://127.0.0.1:0/metrics"]),
        case("watch --requests-from dead port", USAGE, "--requests-from:", &["watch", "--pid", "{pid}", "--requests-from", "{url}/metrics", "--requests-metric", "x"]),
        case("watch --set without a scenario", USAGE, "--set applies to a scenario file", &["watch", "--pid", "{pid}", "--set", "a=b"]),
        case("watch a spawning scenario", BAD, "spawn.toml: the scenario starts its own target", &["watch", "spawn.toml"])
            .file("spawn.toml", "[target]\ncommand = [\"true\"]\nready_port = \"127.0.0.1:1\"\n"),
        case("watch scenario --set bad", USAGE, "--set gates.windows: [gates] `windows`", &["watch", "w.toml", "--pid", "{pid}", "--set", "gates.windows=0"])
            .file("w.toml", "[gates.signals.rss_bytes]\nmax_slope = \"1 MiB/h\"\n"),
    ]);
    v
}

impl Case {
    /// The same files, other arguments and expectations.
    fn retarget(mut self, args: &[&str], code: i32, needle: &str) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self.code = code;
        self.needle = needle.to_string();
        self
    }
}

/// What one case did.
struct Outcome {
    code: Option<i32>,
    hung: bool,
    stderr: String,
    elapsed: Duration,
}

/// The binary under test: `LEAKGATE_BIN` when set, else the one cargo built. (Checkouts that
/// share one target folder overwrite `target/debug/leakgate`; a copy taken right after the
/// build is stable.)
fn binary() -> PathBuf {
    std::env::var_os("LEAKGATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_leakgate")))
}

fn run_case(bin: &Path, dir: &Path, c: &Case, vars: &BTreeMap<&str, String>) -> Outcome {
    let fill = |s: &str| {
        vars.iter()
            .fold(s.to_string(), |s, (k, v)| s.replace(&format!("{{{k}}}"), v))
    };
    std::fs::create_dir_all(dir).unwrap();
    for (name, content) in &c.files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let content = match std::str::from_utf8(content) {
            Ok(text) => fill(text).into_bytes(),
            Err(_) => content.clone(),
        };
        std::fs::write(path, content).unwrap();
    }
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(c.args.iter().map(|a| fill(a)))
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start leakgate");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut s);
        s
    });
    let mut hung = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > KILL_AFTER {
            hung = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    Outcome {
        code: status.code(),
        hung,
        stderr,
        elapsed,
    }
}

/// Whether `needle`'s pieces (split at `…`) appear in `text` in order.
fn contains_in_order(text: &str, needle: &str) -> bool {
    let mut rest = text;
    for piece in needle.split('…') {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    true
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// A port on 127.0.0.1 nobody listens on (bound, then released).
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn bad_inputs_exit_64_or_65_with_one_line_naming_them() {
    let bin = binary();
    let root = tempfile::tempdir().unwrap();
    let port = dead_port();
    let vars: BTreeMap<&str, String> = [
        ("url", format!("http://127.0.0.1:{port}")),
        ("pid", std::process::id().to_string()),
    ]
    .into_iter()
    .collect();

    // The scenarios the cases break are good to begin with.
    let control = Case {
        name: "control".into(),
        args: vec!["check".into(), "scn.toml".into()],
        files: vec![
            ("scn.toml".into(), GOOD.into()),
            ("grpc.toml".into(), GRPC.into()),
            ("t.proto".into(), PROTO.into()),
        ],
        code: 0,
        needle: String::new(),
    };
    for file in ["scn.toml", "grpc.toml"] {
        let mut c = control.clone_with(file);
        c.name = format!("control {file}");
        let o = run_case(&bin, &root.path().join("control"), &c, &vars);
        assert_eq!(o.code, Some(0), "{file} must pass `check`: {}", o.stderr);
    }

    let cases = cases();
    let mut names = std::collections::BTreeSet::new();
    for c in &cases {
        assert!(names.insert(c.name.clone()), "two cases named {}", c.name);
    }
    let mut failures = Vec::new();
    let mut per_code: BTreeMap<String, usize> = BTreeMap::new();
    let (mut panics, mut hangs) = (0, 0);
    println!(
        "{:<4} {:<40} {:>4} {:>6}  first line of stderr",
        "#", "input", "exit", "ms"
    );
    for (i, c) in cases.iter().enumerate() {
        let o = run_case(&bin, &root.path().join(format!("{i:03}")), c, &vars);
        let lines: Vec<&str> = o.stderr.trim_end().lines().collect();
        let first = lines.first().copied().unwrap_or("");
        let code = match (o.hung, o.code) {
            (true, _) => "HANG".to_string(),
            (false, Some(c)) => c.to_string(),
            (false, None) => "SIG".to_string(),
        };
        *per_code.entry(code.clone()).or_default() += 1;
        println!(
            "{:<4} {:<40} {:>4} {:>6}  {}",
            i + 1,
            truncate(&c.name, 40),
            code,
            o.elapsed.as_millis(),
            truncate(first, 120)
        );
        let panicked = o.stderr.contains("panicked at") || o.code == Some(101) || o.code.is_none();
        panics += usize::from(panicked && !o.hung);
        hangs += usize::from(o.hung);
        let mut wrong = Vec::new();
        if o.hung {
            wrong.push(format!("killed after {KILL_AFTER:?}"));
        }
        if panicked {
            wrong.push("panicked".to_string());
        }
        if o.code != Some(c.code) {
            wrong.push(format!("exit {code}, expected {}", c.code));
        }
        if lines.len() != 1 {
            wrong.push(format!("{} lines on stderr, expected one", lines.len()));
        }
        if !contains_in_order(&o.stderr, &c.needle) {
            wrong.push(format!("stderr lacks {:?}", c.needle));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "#{} {} [{}]: {}\n      stderr: {}",
                i + 1,
                c.name,
                c.args.join(" "),
                wrong.join("; "),
                o.stderr.trim_end().replace('\n', "\n              ")
            ));
        }
    }
    let counts: Vec<String> = per_code
        .iter()
        .map(|(k, n)| format!("exit {k}: {n}"))
        .collect();
    println!(
        "bad inputs: {} inputs; {}; {panics} panics, {hangs} hangs, {} mismatches",
        cases.len(),
        counts.join(", "),
        failures.len()
    );
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs went wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

impl Case {
    fn clone_with(&self, file: &str) -> Case {
        Case {
            name: self.name.clone(),
            args: vec!["check".into(), file.into()],
            files: self.files.clone(),
            code: self.code,
            needle: self.needle.clone(),
        }
    }
}
