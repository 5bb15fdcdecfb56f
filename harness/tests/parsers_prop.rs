//! Property tests for every parser of outside input: scenario TOML, units, templates, the
//! samples reader and the pprof decoder. None may panic on any input; where a parser's output
//! can be formatted back, it reads back what was formatted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config;

use leakgate::heap::pprof::{Function, Line, Location, Profile, Sample, ValueType};
use leakgate::load::template::Template;
use leakgate::scenario::placeholders::Placeholders;
use leakgate::scenario::plan::SignalUnit;
use leakgate::scenario::units::{Slope, parse_bytes, parse_duration, parse_slope};
use leakgate::verdict::format;

/// `cases` per property, no regression files written into the tree.
fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A scenario that resolves; the scenario properties break it.
const GOOD: &str = r#"name = "prop"
[target]
command = ["{bin:rest-target}", "--listen", "127.0.0.1:{port:http}"]
ready_url = "http://127.0.0.1:{port:http}/healthz"
base_url = "http://127.0.0.1:{port:http}"
start_timeout = "30s"

[load]
protocol = "http1"
connections = 8
timeout = "5s"
window = "1s"
max_queue = 100
tolerance = 0.05
[[load.phases]]
kind = "warmup"
duration = "2s"
rate = 100
[[load.phases]]
duration = "10s"
rate = { from = 100, to = 500 }
[[load.requests]]
path = "/cache/{{seq}}"
headers = { x-id = "{{uuid}}" }
cancel_after = "1s"

[probes]
interval = "500ms"
drain_wait = "1s"

[gates]
windows = 10
warmup_share = 0.1
[gates.signals.rss_bytes]
max_slope = "1 MiB/min"
[gates.latency]
p99 = "500ms"
error_rate = 0.01
"#;

/// Values the mutations put in place of a value: absurd numbers, wrong types, half-written
/// strings and templates.
const ABSURD: &[&str] = &[
    "0",
    "-1",
    "1e12",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "nan",
    "inf",
    "-inf",
    "1e300",
    "0.0",
    "\"\"",
    "\"0s\"",
    "\"10µs\"",
    "\"1e400s\"",
    "\"max\"",
    "\"-1 KiB\"",
    "\"{{rand_str 99999999999}}\"",
    "\"{{zipf NaN 1}}\"",
    "\"{port:}\"",
    "\"ftp://x\"",
    "\"http://127.0.0.1:0\"",
    "[]",
    "{}",
    "{ from = 0, to = 0 }",
    "{ from = nan, to = inf }",
    "true",
    "\"",
    "'''",
    "[[",
];

fn parse(text: &str, overrides: &[(String, String)]) -> Result<(), String> {
    let mut p = Placeholders::new(Path::new("/scn"), PathBuf::from("/bin"));
    leakgate::scenario::parse(Path::new("scn.toml"), text, overrides, &mut p)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// An error names the file (or, for an override, the flag), on its first line.
fn names_the_input(e: &str) -> bool {
    let first = e.lines().next().unwrap_or("");
    !e.trim().is_empty() && (first.starts_with("scn.toml:") || first.starts_with("--set "))
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn scenario_random_text_never_panics(text in "\\PC{0,300}") {
        if let Err(e) = parse(&text, &[]) {
            prop_assert!(names_the_input(&e), "{e}");
        }
    }

    #[test]
    fn scenario_with_a_value_replaced_never_panics(
        line in 0usize..64,
        value in prop::sample::select(ABSURD),
    ) {
        let lines: Vec<&str> = GOOD.lines().collect();
        let n = line % lines.len();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            match l.split_once(" = ") {
                Some((key, _)) if i == n => out.push(format!("{key} = {value}")),
                _ => out.push(l.to_string()),
            }
        }
        let text = out.join("\n");
        if let Err(e) = parse(&text, &[]) {
            prop_assert!(names_the_input(&e), "{e}");
        }
    }

    #[test]
    fn scenario_cut_spliced_or_overridden_never_panics(
        cut in 0usize..2000,
        at in 0usize..2000,
        insert in "\\PC{0,12}",
        key in prop::sample::select(&[
            "load.connections", "load.phases.0.rate", "load.phases.1.duration", "load.timeout",
            "load.window", "load.max_queue", "gates.windows", "target", "load.phases.7.rate",
            "load.requests.0.path", "name", "a.b.c",
        ][..]),
        value in prop::sample::select(ABSURD),
    ) {
        let mut chars: Vec<char> = GOOD.chars().collect();
        let cut = cut % (chars.len() + 1);
        let at = at % (cut + 1);
        chars.truncate(cut);
        let tail: Vec<char> = chars.split_off(at);
        let text: String = chars.into_iter().chain(insert.chars()).chain(tail).collect();
        if let Err(e) = parse(&text, &[]) {
            prop_assert!(names_the_input(&e), "{e}");
        }
        if let Err(e) = parse(GOOD, &[(key.to_string(), value.to_string())]) {
            prop_assert!(names_the_input(&e), "{e}");
        }
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn units_never_panic(text in "\\PC{0,40}") {
        let _ = parse_duration(&text);
        if let Ok(b) = parse_bytes(&text) {
            prop_assert!(b.is_finite() && b >= 0.0, "{text}: {b}");
        }
        if let Ok(Slope::PerSecond(v) | Slope::PerRequest(v)) = parse_slope(&text) {
            prop_assert!(v.is_finite() && v >= 0.0, "{text}: {v}");
        }
    }

    #[test]
    fn units_of_digits_and_units_never_panic(
        number in "[0-9.eE+-]{0,12}",
        space in prop::bool::ANY,
        unit in prop::sample::select(&[
            "", "s", "ms", "us", "µs", "μs", "µ", "ns", "m", "min", "h", "d", "B", "KiB", "MB",
            "TiB", "e", "/s", "/min", " B/request", "/req", "/0s", "/1e3s", "x",
        ][..]),
    ) {
        let text = format!("{number}{}{unit}", if space { " " } else { "" });
        if let Ok(d) = parse_duration(&text) {
            prop_assert!(d.as_secs_f64() <= 1e9, "{text}: {d:?}");
        }
        let _ = parse_bytes(&text);
        let _ = parse_slope(&text);
    }

    /// Durations read back from Rust's own `Debug` (`1.5s`, `250ms`, `10µs`, `7ns`).
    #[test]
    fn durations_round_trip_through_debug(
        nanos in prop_oneof![
            0u64..1_000,
            1_000u64..1_000_000,
            1_000_000u64..1_000_000_000,
            1_000_000_000u64..=1_000_000_000_000_000_000,
        ],
    ) {
        let d = Duration::from_nanos(nanos);
        let text = format!("{d:?}");
        let back = parse_duration(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let diff = (back.as_secs_f64() - d.as_secs_f64()).abs();
        prop_assert!(diff <= 1e-9 + d.as_secs_f64() * 1e-15, "{text} read back as {back:?}");
    }

    /// Sizes and slopes read back from the verdict's own wording (three significant digits).
    #[test]
    fn sizes_and_slopes_round_trip_through_the_verdict_format(
        v in prop_oneof![Just(0.0), (-6.0f64..15.0).prop_map(|e| 10f64.powf(e))],
        per in prop::sample::select(&["s", "min", "h", "request"][..]),
    ) {
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.006 + 1e-9;
        let text = format::bytes(v);
        let back = parse_bytes(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert!(close(back, v), "{v} → {text} → {back}");
        let text = format::rate(v, SignalUnit::Bytes, per);
        let back = parse_slope(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let seconds = match per { "s" => 1.0, "min" => 60.0, "h" => 3600.0, _ => 0.0 };
        match back {
            Slope::PerRequest(b) => prop_assert!(per == "request" && close(b, v), "{text}: {back:?}"),
            Slope::PerSecond(b) => prop_assert!(per != "request" && close(b * seconds, v), "{text}: {back:?}"),
        }
    }
}

/// Template text: literal text, braces, and `{{NAME ARGS}}` with arguments of every kind.
fn template_text() -> impl Strategy<Value = String> {
    let name = prop::sample::select(&["seq", "uuid", "rand_int", "rand_str", "zipf", "nope"][..]);
    let arg = prop::sample::select(
        &[
            "0",
            "1",
            "-1",
            "9",
            "1.5",
            "1e300",
            "-1e300",
            "NaN",
            "inf",
            "-inf",
            "99999999999",
            "1048577",
            "9223372036854775807",
            "-9223372036854775808",
            "9007199254740993",
            "{{",
            "}}",
            "x",
            "",
        ][..],
    );
    let part = prop_oneof![
        "\\PC{0,6}",
        prop::sample::select(&["{{", "}}", "{", "}", " "][..]).prop_map(String::from),
        (name, prop::collection::vec(arg, 0..4))
            .prop_map(|(n, a)| format!("{{{{{n} {}}}}}", a.join(" "))),
    ];
    prop::collection::vec(part, 0..5).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn templates_compile_or_say_where(text in template_text()) {
        use rand::SeedableRng;
        match Template::compile(&text) {
            Ok(t) => {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
                let mut out = String::new();
                for seq in [0, 1, u64::MAX] {
                    t.fill(seq, &mut rng, &mut out);
                }
            }
            Err(e) => prop_assert!(e.position <= text.len(), "{e}"),
        }
    }

    #[test]
    fn templates_of_any_text_never_panic(text in "\\PC{0,60}") {
        let _ = Template::compile(&text);
    }
}

/// The first lines of a stored run's samples (probes, windows with histograms, events).
fn stored_samples() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/runs/clean/samples.ndjson");
    let text = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    for line in text.split_inclusive(|&b| b == b'\n').take(24) {
        out.extend_from_slice(line);
    }
    out
}

/// Writes `bytes` as a run folder's `samples.ndjson` and reads the folder.
fn read_folder(bytes: &[u8]) -> Result<Vec<leakgate::record::Record>, leakgate::store::ReadError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("samples.ndjson"), bytes).unwrap();
    leakgate::store::read_dir_records(dir.path())
}

proptest! {
    #![proptest_config(config(160))]

    /// A valid file cut at any byte: every whole line is read (the last one too when only its
    /// newline was cut), the torn one is skipped.
    #[test]
    fn samples_cut_anywhere_read_every_whole_line(cut in 0usize..1_000_000) {
        let full = stored_samples();
        let cut = cut % (full.len() + 1);
        let part = &full[..cut];
        // A cut just before a newline leaves the last line whole, only unterminated.
        let complete_tail = !part.is_empty() && !part.ends_with(b"\n") && full.get(cut) == Some(&b'\n');
        let whole = part.iter().filter(|&&b| b == b'\n').count() + usize::from(complete_tail);
        let records = read_folder(part).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(records.len(), whole);
        let text = String::from_utf8_lossy(part);
        match leakgate::verdict::input::parse_ndjson(&text, Path::new("samples.ndjson")) {
            Ok(input) => prop_assert!(!input.samples.is_empty()),
            Err(leakgate::verdict::input::InputError::Empty { .. }) => {}
            Err(e) => prop_assert!(false, "a cut valid file is not an error: {e}"),
        }
    }

    /// Random bytes, and a valid file with bytes overwritten: records or a line number.
    #[test]
    fn samples_of_any_bytes_never_panic(
        junk in prop::collection::vec(any::<u8>(), 0..600),
        at in 0usize..1_000_000,
        flips in prop::collection::vec(any::<u8>(), 1..8),
    ) {
        for bytes in [junk.clone(), {
            let mut b = stored_samples();
            let at = at % b.len();
            for (i, f) in flips.iter().enumerate() {
                if let Some(x) = b.get_mut(at + i) {
                    *x = *f;
                }
            }
            b
        }] {
            let lines = bytes.split(|&b| b == b'\n').count();
            match read_folder(&bytes) {
                Ok(_) => {}
                Err(leakgate::store::ReadError::Parse { line, .. }) => {
                    prop_assert!((1..=lines).contains(&line), "line {line} of {lines}");
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Err(leakgate::verdict::input::InputError::Line { line, .. }) =
                leakgate::verdict::input::parse_ndjson(&text, Path::new("s.ndjson"))
            {
                prop_assert!((1..=lines).contains(&line), "line {line} of {lines}");
            }
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Profiles with ids, string indexes and values of every size, dangling ones included.
fn profile() -> impl Strategy<Value = Profile> {
    let id = prop_oneof![0u64..4, any::<u64>()];
    let index = prop_oneof![-2i64..8, any::<i64>()];
    let value = prop_oneof![-10i64..10, Just(i64::MAX), Just(i64::MIN), any::<i64>()];
    (
        prop::collection::vec((index.clone(), index.clone()), 0..3),
        prop::collection::vec(
            (
                prop::collection::vec(id.clone(), 0..4),
                prop::collection::vec(value, 0..3),
            ),
            0..6,
        ),
        prop::collection::vec(
            (
                id.clone(),
                any::<u64>(),
                prop::collection::vec((id.clone(), index.clone()), 0..3),
            ),
            0..4,
        ),
        prop::collection::vec((id, index.clone(), index.clone()), 0..4),
        index,
    )
        .prop_map(|(types, samples, locations, functions, default)| Profile {
            sample_type: types
                .into_iter()
                .map(|(r#type, unit)| ValueType { r#type, unit })
                .collect(),
            sample: samples
                .into_iter()
                .map(|(location_id, value)| Sample { location_id, value })
                .collect(),
            location: locations
                .into_iter()
                .map(|(id, address, lines)| Location {
                    id,
                    address,
                    line: lines
                        .into_iter()
                        .map(|(function_id, line)| Line { function_id, line })
                        .collect(),
                })
                .collect(),
            function: functions
                .into_iter()
                .map(|(id, name, filename)| Function { id, name, filename })
                .collect(),
            string_table: [
                "",
                "inuse_space",
                "bytes",
                "malloc",
                "std::alloc",
                "app::f",
                "a.rs",
            ]
            .map(String::from)
            .to_vec(),
            default_sample_type: default,
        })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn pprof_of_any_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Profile::decode_bytes(&bytes);
        let _ = Profile::decode_bytes(&gzip(&bytes));
        let mut with_magic = vec![0x1f, 0x8b];
        with_magic.extend(&bytes);
        let _ = Profile::decode_bytes(&with_magic);
    }

    /// A valid gzipped profile cut anywhere but its end is an error, never a panic.
    #[test]
    fn pprof_cut_gzip_is_an_error(p in profile(), cut in 0usize..100_000) {
        let full = gzip(&prost::Message::encode_to_vec(&p));
        // From the two bytes of gzip magic on: a shorter start is no gzip at all.
        let cut = 2 + cut % (full.len() - 2);
        prop_assert!(Profile::decode_bytes(&full[..cut]).is_err(), "cut at {cut} of {}", full.len());
        prop_assert_eq!(Profile::decode_bytes(&full).unwrap(), p);
    }

    /// Any two profiles compare without a panic (values that overflow are an error).
    #[test]
    fn heap_diff_of_any_profiles_never_panics(a in profile(), b in profile(), top in 0usize..5) {
        if let Ok(d) = leakgate::heap::diff::diff(&a, &b, top) {
            prop_assert!(d.sites.len() <= top);
        }
    }
}
