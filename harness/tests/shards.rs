//! A load driven by several shards (`run --shard I/N`) and merged (`leakgate merge`): exact
//! totals and percentiles from the added histograms, the same verdict as one process at the
//! same total rate, `{{seq}}` keys unique across shards (counted by the target), and the
//! folders that are not one run refused with one line.

use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{SystemTime, UNIX_EPOCH};

mod procs;
mod runs;

use leakgate::load::stats;
use procs::*;

/// A scenario attached to `t` by pid: 2 000 req/s in all, every request a new cache key.
fn scenario(dir: &Path, t: &RestTarget) -> PathBuf {
    let text = format!(
        r#"name = "shards"
[target]
pid = {pid}
base_url = "http://127.0.0.1:{port}"

[load]
connections = 32

[[load.phases]]
kind = "warmup"
duration = "3s"
rate = 2000

[[load.phases]]
kind = "steady"
duration = "12s"
rate = 2000

[[load.requests]]
path = "/cache/{{{{seq}}}}"

[probes]
interval = "250ms"
prometheus = {{ url = "http://127.0.0.1:{admin}/metrics", metrics = ["cache_entries"] }}

[gates.signals.rss_bytes]
max_slope = "256 B/request"

[gates.signals.cache_entries]
max_slope = "0.01/request"
"#,
        pid = t.pid(),
        port = t.port,
        admin = t.admin
    );
    let path = dir.join("shards.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn_shard(scenario: &Path, results: &Path, shard: &str, start_at: u64) -> Child {
    leakgate()
        .arg("run")
        .arg(scenario)
        .args(["--shard", shard, "--start-at", &start_at.to_string()])
        .args(["--no-progress", "--results-dir"])
        .arg(results)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn failed(s: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = s["verdict"]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["outcome"] == "fail")
        .filter_map(|g| g["signal"].as_str().map(String::from))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn cache_entries(t: &RestTarget) -> u64 {
    let (_, body) = get(t.admin, "/metrics").expect("the target's metrics");
    body.lines()
        .find_map(|l| l.strip_prefix("cache_entries "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("cache_entries in the metrics") as u64
}

#[test]
fn four_shards_merge_exactly_and_judge_as_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let target = RestTarget::start("unbounded-cache");
    let scen = scenario(tmp.path(), &target);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // One instant for all four (whole seconds, a little ahead): arrivals interleave exactly.
    let start_at = now + 3;
    let shards: Vec<(PathBuf, Child)> = (0..4)
        .map(|i| {
            let results = tmp.path().join(format!("shard{i}"));
            let child = spawn_shard(&scen, &results, &format!("{i}/4"), start_at);
            (results, child)
        })
        .collect();
    let mut dirs = Vec::new();
    let mut hist: Option<hdrhistogram::Histogram<u64>> = None;
    let mut completed = 0u64;
    for (i, (results, child)) in shards.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let t = text(&out);
        // Shard 0 samples the target and fails on the leak; the others only drive load.
        let want = if i == 0 { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(want), "shard {i}:\n{t}");
        let dir = only_run_dir(&results);
        let s = summary(&dir);
        assert_eq!(s["plan"]["load"]["shard"]["index"], i, "{t}");
        let load = &s["load"];
        assert_eq!(load["fell_behind"], false, "shard {i}:\n{t}");
        completed += load["completed"].as_u64().unwrap();
        let h = stats::decode(load["corrected_hist"].as_str().unwrap()).unwrap();
        match hist.as_mut() {
            Some(all) => all.add(&h).unwrap(),
            None => hist = Some(h),
        }
        if i > 0 {
            let samples = std::fs::read_to_string(dir.join("samples.ndjson")).unwrap();
            assert!(
                !samples.contains("\"rss_bytes\""),
                "shard {i} sampled the target"
            );
        }
        dirs.push(dir);
    }
    // Every request carried a new key: the target holds exactly one entry per request.
    assert_eq!(
        cache_entries(&target),
        completed,
        "{{{{seq}}}} keys collided across shards"
    );
    assert!(
        completed >= 29_000,
        "{completed} requests for 15 s at 2 000 req/s"
    );

    let merged = tmp.path().join("merged");
    let out = leakgate()
        .arg("merge")
        .args(&dirs)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let s = summary(&merged);
    runs::summary_validator()
        .validate(&s)
        .unwrap_or_else(|e| panic!("merged summary.json against the schema: {e}"));
    let load = &s["load"];
    assert_eq!(load["completed"].as_u64(), Some(completed));
    let all = hist.unwrap();
    let exact = stats::summarize(&all);
    assert_eq!(load["corrected"]["p50"].as_f64(), Some(exact.p50), "{t}");
    assert_eq!(load["corrected"]["p99"].as_f64(), Some(exact.p99), "{t}");
    assert_eq!(load["corrected"]["count"].as_u64(), Some(all.len()));
    assert_eq!(s["merged"]["shards"], 4);
    for report in ["report.html", "summary.md", "junit.xml"] {
        assert!(
            merged.join(report).exists(),
            "no {report} in the merged folder"
        );
    }
    let merged_failed = failed(&s);
    assert_eq!(merged_failed, ["cache_entries", "rss_bytes"], "{t}");
    // The merged x-axis is the merged request count: ~1 entry per request, as one process.
    let slope = s["verdict"]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["signal"] == "cache_entries" && g["kind"] == "slope")
        .and_then(|g| g["slope"]["per_request"].as_f64())
        .unwrap();
    assert!(
        (0.9..1.1).contains(&slope),
        "cache_entries {slope}/request:\n{t}"
    );

    // One process at the same total rate reaches the same verdict.
    let fresh = RestTarget::start("unbounded-cache");
    let single_dir = tmp.path().join("single");
    std::fs::create_dir_all(&single_dir).unwrap();
    let single = scenario(&single_dir, &fresh);
    let out = leakgate()
        .arg("run")
        .arg(&single)
        .args(["--no-progress", "--results-dir"])
        .arg(tmp.path().join("single-results"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s1 = summary(&only_run_dir(&tmp.path().join("single-results")));
    assert_eq!(failed(&s1), merged_failed);
}

/// Two shards of a short ad-hoc run against `t`'s `/healthz`, at `rate` in all.
fn small_shards(tmp: &Path, t: &RestTarget, path: &str, tag: &str) -> Vec<PathBuf> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let url = format!("http://127.0.0.1:{}{path}", t.port);
    let children: Vec<(PathBuf, Child)> = (0..2)
        .map(|i| {
            let results = tmp.join(format!("{tag}{i}"));
            let child = leakgate()
                .args(["run", &url, "--rate", "100", "-d", "1s"])
                .args([
                    "--shard",
                    &format!("{i}/2"),
                    "--start-at",
                    &(now + 2).to_string(),
                ])
                .args(["--no-progress", "--results-dir"])
                .arg(&results)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            (results, child)
        })
        .collect();
    children
        .into_iter()
        .map(|(results, mut child)| {
            assert!(child.wait().unwrap().success());
            only_run_dir(&results)
        })
        .collect()
}

fn merge_error(dirs: &[&Path], out: &Path) -> (i32, String) {
    let o = leakgate()
        .arg("merge")
        .args(dirs)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line, not:\n{err}");
    (o.status.code().unwrap(), err)
}

#[test]
fn merge_refuses_folders_that_are_not_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let t = RestTarget::start("none");
    let a = small_shards(tmp.path(), &t, "/healthz", "a");
    let b = small_shards(tmp.path(), &t, "/cache/x", "b");
    let out = tmp.path().join("out");
    let (code, err) = merge_error(&[&a[0]], &out);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("two or more shards"), "{err}");
    let (code, err) = merge_error(&[&a[0], &b[1]], &out);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("different"), "{err}");
    let (code, err) = merge_error(&[&a[0], &a[0]], &out);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("shard 0/2 appears twice"), "{err}");
    // Shard 1 moved 430 ms off the whole-second grid.
    let moved = tmp.path().join("moved");
    std::fs::create_dir_all(&moved).unwrap();
    for f in ["summary.json", "samples.ndjson"] {
        std::fs::copy(a[1].join(f), moved.join(f)).unwrap();
    }
    let mut s = summary(&moved);
    let t0 = s["load_started_unix_ms"].as_u64().unwrap();
    s["load_started_unix_ms"] = (t0 + 430).into();
    std::fs::write(moved.join("summary.json"), s.to_string()).unwrap();
    let (code, err) = merge_error(&[&a[0], &moved], &out);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("windows do not align"), "{err}");
    // And the two that are one run merge.
    let o = leakgate()
        .arg("merge")
        .args(&a)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        summary(&out)["load"]["completed"],
        100,
        "100 req/s for 1 s in all"
    );
    // The output folder now holds a run: never written over.
    let (code, err) = merge_error(&[&a[0], &a[1]], &out);
    assert_eq!(code, 64, "{err}");
    // A shard index out of range is a usage error of run.
    let o = leakgate()
        .args(["run", &format!("http://127.0.0.1:{}/healthz", t.port)])
        .args(["--rate", "10", "-d", "1s", "--shard", "2/2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("out of range"));
}
