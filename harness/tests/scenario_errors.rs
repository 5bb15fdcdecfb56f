//! Every malformed scenario gets a clear error with file, line and column; none panics.

use std::path::{Path, PathBuf};

use leakgate::scenario::placeholders::Placeholders;
use leakgate::scenario::plan::{Protocol, Rate, TargetPlan};
use leakgate::scenario::{self, ScenarioError};

const GOOD: &str = r#"
name = "ok"
[target]
command = ["{bin:rest-target}", "--listen", "127.0.0.1:{port:http}"]
ready_url = "http://127.0.0.1:{port:http}/healthz"
base_url = "http://127.0.0.1:{port:http}"

[load]
connections = 8
[[load.phases]]
kind = "warmup"
duration = "2s"
rate = 100
[[load.phases]]
duration = "10s"
rate = { from = 100, to = 500 }
[[load.requests]]
path = "/cache/{{seq}}"

[gates.signals.rss_bytes]
max_slope = "1 MiB/min"
"#;

fn parse(
    text: &str,
    overrides: &[(&str, &str)],
) -> Result<leakgate::scenario::plan::Plan, ScenarioError> {
    let mut p = Placeholders::new(Path::new("/scn"), PathBuf::from("/bin"));
    let o: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    scenario::parse(Path::new("scn.toml"), text, &o, &mut p)
}

#[test]
fn good_scenario_resolves() {
    let plan = parse(GOOD, &[]).unwrap();
    assert_eq!(plan.name, "ok");
    assert_eq!(plan.load.protocol, Protocol::Http1);
    assert_eq!(plan.load.phases.len(), 2);
    assert_eq!(
        plan.load.phases[1].rate,
        Rate::Ramp {
            from: 100.0,
            to: 500.0
        }
    );
    let TargetPlan::Spawn(s) = &plan.target else {
        panic!("expected spawn")
    };
    assert_eq!(s.command[0], "/bin/rest-target");
    let port = s.command[2].strip_prefix("127.0.0.1:").unwrap();
    assert_eq!(plan.load.base_url, format!("http://127.0.0.1:{port}"));
    assert_eq!(s.build_bins, vec!["rest-target"]);
    assert_eq!(plan.load.requests[0].path, "/cache/{{seq}}");
    let g = &plan.gates.signals[0];
    assert!((g.max_per_second.unwrap() - 1048576.0 / 60.0).abs() < 1e-6);
}

#[test]
fn overrides_apply() {
    let plan = parse(
        GOOD,
        &[
            ("load.connections", "64"),
            ("load.phases.1.rate", "3000"),
            ("name", "renamed"),
        ],
    )
    .unwrap();
    assert_eq!(plan.load.connections, 64);
    assert_eq!(plan.load.phases[1].rate, Rate::Constant { rps: 3000.0 });
    assert_eq!(plan.name, "renamed");
    let e = parse(GOOD, &[("load.phases.7.rate", "1")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--set load.phases.7.rate") && e.contains("past the end"),
        "{e}"
    );
    let e = parse(GOOD, &[("load.connections", "\"many\"")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--set"), "{e}");
}

/// (what, replace this, with this, expected line, expected text in the message)
const BAD: &[(&str, &str, &str, usize, &str)] = &[
    (
        "wrong type",
        "connections = 8",
        "connections = \"eight\"",
        9,
        "invalid type",
    ),
    (
        "unknown key",
        "connections = 8",
        "conections = 8",
        9,
        "unknown field `conections`",
    ),
    (
        "bad duration",
        "duration = \"2s\"",
        "duration = \"2 parsecs\"",
        12,
        "expected a duration",
    ),
    (
        "negative rate",
        "rate = 100",
        "rate = -5",
        13,
        "must be > 0",
    ),
    (
        "bad rate word",
        "rate = 100",
        "rate = \"fast\"",
        13,
        "\"max\"",
    ),
    (
        "ramp missing to",
        "{ from = 100, to = 500 }",
        "{ from = 100 }",
        16,
        "needs both",
    ),
    (
        "bad slope",
        "\"1 MiB/min\"",
        "\"1 MiB/fortnight\"",
        21,
        "expected a slope",
    ),
    (
        "bad protocol",
        "connections = 8",
        "protocol = \"http3\"",
        9,
        "http1",
    ),
    (
        "bad phase kind",
        "kind = \"warmup\"",
        "kind = \"cooldown\"",
        11,
        "steady",
    ),
    (
        "path without slash",
        "path = \"/cache/{{seq}}\"",
        "path = \"cache\"",
        18,
        "must start with `/`",
    ),
    (
        "no ready check",
        "ready_url = \"http://127.0.0.1:{port:http}/healthz\"",
        "",
        3,
        "ready_url",
    ),
    (
        "bad base url",
        "base_url = \"http://127.0.0.1:{port:http}\"",
        "base_url = \"ftp://x\"",
        6,
        "http://",
    ),
    (
        "gate without limit",
        "max_slope = \"1 MiB/min\"",
        "unit = \"bytes\"",
        20,
        "has no limit",
    ),
    ("bad toml", "[load]", "[load", 8, ""),
    (
        "zero weight",
        "path = \"/cache/{{seq}}\"",
        "path = \"/x\"\nweight = 0",
        19,
        "`weight` must be at least 1",
    ),
    (
        "zero connections",
        "connections = 8",
        "connections = 0",
        9,
        "at least 1",
    ),
];

#[test]
fn bad_inputs_name_line_and_column() {
    for (what, from, to, line, needle) in BAD {
        assert!(
            GOOD.contains(from),
            "{what}: fixture does not contain {from}"
        );
        let text = GOOD.replacen(from, to, 1);
        let err = parse(&text, &[]).expect_err(what);
        let msg = err.to_string();
        match &err {
            ScenarioError::At {
                line: l, column, ..
            } => {
                assert_eq!(*l, *line, "{what}: {msg}");
                assert!(*column >= 1);
            }
            other => panic!("{what}: expected a positioned error, got {other}"),
        }
        assert!(msg.starts_with("scn.toml:"), "{what}: {msg}");
        assert!(msg.contains(needle), "{what}: {msg}");
    }
}

#[test]
fn missing_target_is_explained() {
    let text = GOOD.replacen("[target]", "[unused]", 1);
    let e = parse(&text, &[]).unwrap_err().to_string();
    assert!(e.contains("unknown field `unused`"), "{e}");
    let start = GOOD.find("[target]").unwrap();
    let end = GOOD.find("[load]").unwrap();
    let text = format!("{}{}", &GOOD[..start], &GOOD[end..]);
    let e = parse(&text, &[]).unwrap_err().to_string();
    assert!(e.contains("no target"), "{e}");
}

#[test]
fn missing_file_is_an_error_not_a_panic() {
    let e = scenario::load(Path::new("/nonexistent/x.toml"), &[]).unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot read scenario file /nonexistent/x.toml")
    );
}

#[test]
fn shipped_scenarios_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let plan = scenario::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !plan.gates.signals.is_empty(),
                "{}: no gates",
                path.display()
            );
            n += 1;
        }
    }
    assert!(n >= 13, "only {n} scenarios found in {}", dir.display());
}

#[test]
fn scenario_dir_works_in_grpc_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(
        &path,
        r#"[load]
protocol = "grpc"
base_url = "http://127.0.0.1:9"
[load.grpc]
protos = ["{scenario_dir}/api.proto"]
import_paths = ["{scenario_dir}/include"]
[[load.phases]]
duration = "1s"
rate = 1
[[load.requests]]
path = "a.B/C"
"#,
    )
    .unwrap();
    let plan = leakgate::scenario::load(&path, &[]).unwrap();
    let g = plan.load.grpc.unwrap();
    assert_eq!(g.protos, vec![dir.path().join("api.proto")]);
    assert_eq!(g.import_paths, vec![dir.path().join("include")]);
}

#[test]
fn native_profiler_is_for_spawned_targets_only() {
    use leakgate::scenario::plan::NativeProfiler;
    let with = |native: &str| format!("{GOOD}\n[probes]\nnative = \"{native}\"\n");
    let plan = parse(&with("heaptrack"), &[]).unwrap();
    assert_eq!(plan.probes.native, Some(NativeProfiler::Heaptrack));
    assert_eq!(parse(GOOD, &[]).unwrap().probes.native, None);
    // An unknown profiler names the ones there are, at the value.
    let e = parse(&with("valgrind"), &[]).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("\"valgrind\"") && msg.contains("known: heaptrack"),
        "{msg}"
    );
    assert!(matches!(e, ScenarioError::At { line: 24, .. }), "{msg}");
    // An attached target already runs: nothing can be preloaded into it.
    let attached = with("heaptrack").replacen(
        "command = [\"{bin:rest-target}\", \"--listen\", \"127.0.0.1:{port:http}\"]\nready_url = \"http://127.0.0.1:{port:http}/healthz\"",
        "pid = 1",
        1,
    );
    assert!(attached.contains("pid = 1"));
    let msg = parse(&attached, &[]).unwrap_err().to_string();
    assert!(
        msg.contains("needs a spawned target") && msg.contains("attached"),
        "{msg}"
    );
}
