//! The request mix on the wire: the raw HTTP/1.1 bytes of the lean client hold to the rules of
//! hyper's `HeaderValue` and `Uri`. A bad static value is a plan error naming the
//! request; a bad templated one is `build`'s error per request, and nothing is sent.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use leakgate::load::LoadError;
use leakgate::load::hpack::Encoder;
use leakgate::load::request::Mix;
use leakgate::scenario::plan::{LoadPlan, Protocol, Rate};

const BASE: &str = "http://127.0.0.1:8080";

/// A plan of one request `path` with `headers`, over `protocol`.
fn plan(protocol: Protocol, path: &str, headers: &[(&str, &str)]) -> LoadPlan {
    let mut p = common::plan(BASE, path, Rate::Constant { rps: 1.0 }, 1.0, 1);
    p.protocol = protocol;
    p.requests[0].headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    p
}

/// The plan error of compiling `plan`'s mix.
fn plan_error(plan: &LoadPlan) -> String {
    match Mix::new(plan, None) {
        Err(LoadError::Plan(m)) => m,
        Err(e) => panic!("not a plan error: {e}"),
        Ok(_) => panic!("the mix compiled"),
    }
}

/// The request line's target of the raw bytes, or the error.
fn raw_target(mix: &Mix) -> Result<String, String> {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut out = Vec::new();
    let raw = mix.raw(0, 7, &mut rng, &mut String::new(), &mut out)?;
    let line = raw.split(|&b| b == b'\n').next().unwrap();
    let line = std::str::from_utf8(line).unwrap().trim_end_matches('\r');
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts.len(), 3, "request line {line:?}");
    Ok(parts[1].to_string())
}

/// The `:path` the HTTP/2 client sends for the same plan over HTTP/2 (its header block read
/// by an independent HPACK decoder), or the error: both clients hold targets to the same rule
/// (`wire::parsed_target`).
fn built_target(mix: &Mix) -> Result<String, String> {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut literals = Vec::new();
    let (_, fields) = mix.h2_parts(0, 7, &mut rng, &mut String::new(), &mut literals)?;
    let mut block = Vec::new();
    Encoder::default().block(0, fields, &mut block);
    block.extend_from_slice(&literals);
    let headers = loona_hpack::Decoder::new().decode(&block).unwrap();
    let path = headers
        .iter()
        .find(|(n, _)| n.as_slice() == b":path")
        .unwrap();
    Ok(String::from_utf8(path.1.to_vec()).unwrap())
}

/// The same plan over HTTP/2.
fn as_h2(p: &LoadPlan) -> Mix {
    let mut p = p.clone();
    p.protocol = Protocol::Http2;
    Mix::new(&p, None).unwrap()
}

#[test]
fn static_header_values_that_are_not_valid_are_plan_errors() {
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let p = plan(protocol, "/", &[("x-a", "1\r\nx-smuggled: 1")]);
        let m = plan_error(&p);
        assert!(
            m.contains("request \"r\"") && m.contains("header x-a"),
            "{m}"
        );
    }
}

#[test]
fn static_paths_that_are_not_valid_are_plan_errors() {
    for path in ["/a b", "/a\r\nx-smuggled: 1", "/a\n"] {
        for protocol in [Protocol::Http1, Protocol::Http2] {
            let m = plan_error(&plan(protocol, path, &[]));
            assert!(m.contains("request \"r\"") && m.contains("path"), "{m}");
        }
    }
}

#[test]
fn templated_header_values_get_the_hyper_paths_error() {
    let p = plan(Protocol::Http1, "/", &[("x-a", "{{seq}}\r\nx-smuggled: 1")]);
    let mix = Mix::new(&p, None).unwrap();
    let raw = raw_target(&mix).unwrap_err();
    assert_eq!(raw, built_target(&as_h2(&p)).unwrap_err());
    assert!(raw.contains("header x-a"), "{raw}");
}

#[test]
fn templated_paths_get_the_hyper_paths_target_or_error() {
    let paths = [
        // Taken as they are.
        ("/a/{{seq}}", Ok("/a/7")),
        ("/a/{{seq}}?q={{seq}}&r=[~]", Ok("/a/7?q=7&r=[~]")),
        // Taken by `Uri` but not by the quick check: parsed, as `build` does.
        ("/\"{{seq}}\"", Ok("/\"7\"")),
        ("/caf\u{e9}/{{seq}}", Ok("/caf\u{e9}/7")),
        ("/a/{{seq}}#part", Ok("/a/7")),
        // Refused by `Uri`.
        ("/a b/{{seq}}", Err(())),
        ("/a/{{seq}}\r\nx-smuggled: 1", Err(())),
        ("/a/{{seq}}\n", Err(())),
        ("/a<{{seq}}", Err(())),
        ("/a?{{seq}}\"", Err(())),
    ];
    for (path, want) in paths {
        let p = plan(Protocol::Http1, path, &[]);
        let mix = Mix::new(&p, None).unwrap();
        let (raw, built) = (raw_target(&mix), built_target(&as_h2(&p)));
        match want {
            Ok(t) => {
                assert_eq!(raw.as_deref(), Ok(t), "{path:?}");
                assert_eq!(built.as_deref(), Ok(t), "{path:?}");
            }
            Err(()) => {
                let e = raw.expect_err(path);
                assert_eq!(Err(e.clone()), built, "{path:?}");
                assert!(e.contains("request \"r\"") && e.contains("path"), "{e}");
            }
        }
    }
}

#[test]
fn long_templated_paths_get_the_hyper_paths_error() {
    // `Uri` takes at most 65 534 bytes.
    let p = plan(Protocol::Http1, "/{{rand_str 70000}}", &[]);
    let mix = Mix::new(&p, None).unwrap();
    let e = raw_target(&mix).unwrap_err();
    assert_eq!(Err(e), built_target(&as_h2(&p)));
}

/// A server that answers every request head with an empty 200 and keeps all it read.
fn recording_server() -> (String, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let all = seen.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let all = all.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let (mut b, mut pending) = ([0u8; 4096], Vec::new());
                while let Ok(n @ 1..) = s.read(&mut b) {
                    all.lock().unwrap().extend_from_slice(&b[..n]);
                    pending.extend_from_slice(&b[..n]);
                    while let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..i + 4);
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if s.write_all(ok).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, seen)
}

#[test]
fn a_bad_templated_value_is_an_error_outcome_and_never_sent() {
    let (url, seen) = recording_server();
    let mut p = common::plan(&url, "/", Rate::Constant { rps: 20.0 }, 0.5, 1);
    p.requests[0].headers = vec![("x-a".into(), "{{seq}}\r\nx-smuggled: 1".into())];
    let (r, _) = common::run(&p);
    assert_eq!(r.planned, 10);
    assert_eq!(r.errors.get("other"), Some(&10), "{r:?}");
    assert!(r.status.is_empty(), "{r:?}");
    let seen = seen.lock().unwrap();
    assert!(
        !seen.windows(10).any(|w| w == b"x-smuggled"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
}

/// The raw and the hyper targets of `path` against `base` over `protocol`.
fn targets(protocol: Protocol, base: &str, path: &str) -> (String, String) {
    let mut p = plan(protocol, path, &[]);
    p.base_url = base.into();
    let mix = Mix::new(&p, None).unwrap();
    (raw_target(&mix).unwrap(), built_target(&as_h2(&p)).unwrap())
}

#[test]
fn absolute_paths_of_the_base_origin_are_sent_as_they_are() {
    let base = "http://127.0.0.1:8080/api/";
    for path in [
        "http://127.0.0.1:8080/x?q=1",
        "HTTP://127.0.0.1:8080/x?q=1",
        "http://127.0.0.1:8080/x?q={{rand_int 1 1}}",
    ] {
        // No base path before it: on the wire, and in hyper's origin-form.
        let (raw, built) = targets(Protocol::Http1, base, path);
        assert_eq!(
            (raw.as_str(), built.as_str()),
            ("/x?q=1", "/x?q=1"),
            "{path}"
        );
        // HTTP/2: the path as given (`:path`; the origin goes in `:authority`).
        let (_, built) = targets(Protocol::Http2, base, path);
        assert_eq!(built, "/x?q=1", "{path}");
    }
    // The default port is the same origin; no path is the root.
    let (raw, built) = targets(
        Protocol::Http1,
        "http://localhost/api",
        "http://localhost:80",
    );
    assert_eq!((raw.as_str(), built.as_str()), ("/", "/"));
    // A plain path still goes under the base path.
    let (raw, built) = targets(Protocol::Http1, base, "/x");
    assert_eq!((raw.as_str(), built.as_str()), ("/api/x", "/api/x"));
}

#[test]
fn absolute_paths_of_another_origin_are_plan_errors() {
    for path in [
        "http://127.0.0.1:9090/x",
        "https://127.0.0.1:8080/x",
        "http://example.com:8080/x",
        "http://{{seq}}/x",
    ] {
        for protocol in [Protocol::Http1, Protocol::Http2] {
            let m = plan_error(&plan(protocol, path, &[]));
            assert!(
                m.contains("request \"r\"")
                    && m.contains("http://127.0.0.1:8080")
                    && m.contains("give a path"),
                "{m}"
            );
        }
    }
}
