//! The gate against the JVM: the Java reference target (`targets/java/leaktarget`, JDK only,
//! `com.sun.net.httpserver`) under the shipped `java-*` scenarios, through the real `leakgate`
//! binary. Leaky → exit 1 naming the signals; fixed and bounded → exit 0. The JVM's signals come
//! from its hsperfdata file (no agent) and its class histograms from `jcmd`.
//!
//! The scenarios name the class folder `{java:leaktarget}` (`target/java/leaktarget`), which
//! leakgate builds with `targets/java/build.sh` when a JDK is installed. With neither the
//! classes nor `java` and `javac` the tests print SKIPPED, and fail when `CI` is set:
//! `./ci/test.sh` installs Debian's default-jdk-headless and builds the target before
//! `cargo test`. Runs one scenario at a time.

use std::process::Command;

use leakgate::scenario::placeholders::default_java_dir;

mod runs;

use runs::scenario::{Run, expect_leak, expect_pass, shipped};

/// Bytes the unbounded cache keeps per request beyond its `-leak-bytes` value, counted on a
/// 64-bit HotSpot with compressed pointers (what the scenario runs): the value's array header
/// (16), the key (a `String` of 24 and its `byte[]` of 16 + 5 digits, rounded up to 24), the
/// `HashMap.Node` (32) and its slot in the table (4 to 8 at load factor 0.75).
const ENTRY_OVERHEAD: f64 = 16.0 + 24.0 + 24.0 + 32.0 + 6.0;

fn found(program: &str) -> bool {
    Command::new(program)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the Java target can run here: a `java`, and the classes built or a `javac` for
/// leakgate to build them on first use. Fails when it cannot and `CI` is set.
fn java_target(test: &str) -> bool {
    let classes = default_java_dir().join("leaktarget");
    if found("java") && (classes.join("LeakTarget.class").exists() || found("javac")) {
        return true;
    }
    runs::tool_missing(test, "java/javac", "default-jdk-headless");
    false
}

/// The scenario ran the JVM and the hsperfdata probe read it.
fn check_jvm_signals(name: &str, r: &Run) {
    let command: Vec<&str> = r.summary["plan"]["target"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(command[0], "java", "{name}: {command:?}");
    assert!(
        command.iter().any(|a| a.ends_with("java/leaktarget")),
        "{name}: no class folder in {command:?}"
    );
    let samples = std::fs::read_to_string(r.dir.join("samples.ndjson")).unwrap();
    for sig in [
        "\"jvm_heap_used_bytes\"",
        "\"jvm_gc_count\"",
        "\"jvm_threads_live\"",
        "\"fd_count\"",
    ] {
        assert!(samples.contains(sig), "{name}: no {sig} in samples.ndjson");
    }
}

fn leaky(name: &str, signals: &[&str]) -> Option<Run> {
    leaky_with(name, signals, &["--until-verdict=all"])
}

fn leaky_with(name: &str, signals: &[&str], flags: &[&str]) -> Option<Run> {
    if !java_target(name) {
        return None;
    }
    let r = runs::scenario::run(name, &shipped(name), flags);
    check_jvm_signals(name, &r);
    expect_leak(name, &r, signals);
    Some(r)
}

fn clean(name: &str) {
    if !java_target(name) {
        return;
    }
    let r = runs::scenario::run(name, &shipped(name), runs::scenario::clean_flags(name));
    check_jvm_signals(name, &r);
    expect_pass(name, &r);
}

/// The `-leak-bytes` value a scenario passes to the target.
fn leak_bytes(summary: &serde_json::Value) -> f64 {
    let cmd = summary["plan"]["target"]["command"].as_array().unwrap();
    let at = cmd.iter().position(|a| a == "-leak-bytes").unwrap();
    cmd[at + 1].as_str().unwrap().parse().unwrap()
}

#[test]
fn java_unbounded_cache_leaks_at_its_own_rate_and_names_byte_arrays() {
    // The whole plan, no early stop: the slope is measured on all ten windows of the steady
    // phase (a run stopped once decided, after ~6 s of it, leaves five, and the final verdict
    // on so few post-GC floors can be inconclusive where the rolling one said leak).
    let Some(r) = leaky_with(
        "java-unbounded-cache",
        &["jvm_old_used_after_gc_bytes", "cache_entries"],
        &[],
    ) else {
        return;
    };
    // The old generation after full collections grows by what each request leaves in the map.
    let gate = r.summary["verdict"]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| {
            g["signal"] == "jvm_old_used_after_gc_bytes"
                && g["kind"] == "slope"
                && g["unit"] == "bytes/request"
        })
        .unwrap_or_else(|| panic!("no per-request gate: {}", r.summary["verdict"]));
    let slope = gate["slope"]["per_request"].as_f64().unwrap();
    let leaked = leak_bytes(&r.summary) + ENTRY_OVERHEAD;
    let ratio = slope / leaked;
    eprintln!(
        "java-unbounded-cache: jvm_old_used_after_gc_bytes {slope:.0} B/request against \
         {leaked:.0} B kept per request (ratio {ratio:.2}); run {:.1} s",
        r.secs
    );
    // Theil–Sen on post-GC floors: the slope can trail the leak (entries still in the young
    // generation when a window's collection ran) or lead it (table doublings), never by 2×.
    assert!(
        (0.5..=2.0).contains(&ratio),
        "slope {slope} B/request against {leaked} B leaked per request"
    );
    // jcmd's class histograms name the leaking type first.
    for f in ["classes-start.txt", "classes-end.txt"] {
        assert!(r.dir.join(f).exists(), "no {f} in the run folder");
    }
    let md = std::fs::read_to_string(r.dir.join("summary.md")).unwrap();
    let top = md
        .lines()
        .skip_while(|l| !l.starts_with("| class |"))
        .nth(2)
        .unwrap_or_else(|| panic!("no class table in summary.md:\n{md}"));
    assert!(top.starts_with("| `byte[]` |"), "{top}\n{md}");
    let html = std::fs::read_to_string(r.dir.join("report.html")).unwrap();
    assert!(
        html.contains("<table id=\"classes\"") && html.contains("<code>byte[]</code>"),
        "no class table in report.html"
    );
}

#[test]
fn java_bounded_cache_plateau_passes() {
    clean("java-bounded-cache");
}

#[test]
fn java_fixed_cache_passes() {
    clean("java-cache-fixed");
}

#[test]
fn java_unclosed_bodies_leak() {
    leaky(
        "java-unclosed-bodies",
        &["fd_count", "open_upstream_responses"],
    );
}

#[test]
fn java_closed_bodies_pass() {
    clean("java-closed-bodies");
}

#[test]
fn java_leaked_threads_leak() {
    leaky(
        "java-leaked-threads",
        &["jvm_threads_live", "watchers_parked"],
    );
}

#[test]
fn java_bounded_threads_pass() {
    clean("java-bounded-threads");
}
