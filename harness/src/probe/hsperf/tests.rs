use super::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A counter to write: name, type, flags, units, variability, payload.
struct Spec {
    name: &'static str,
    value: Value,
    units: u8,
    variability: u8,
}

fn long(name: &'static str, v: i64) -> Spec {
    Spec {
        name,
        value: Value::Long(v),
        units: 2,
        variability: 3,
    }
}

fn text(name: &'static str, v: &str) -> Spec {
    Spec {
        name,
        value: Value::Text(v.into()),
        units: 5,
        variability: 1,
    }
}

/// Writes an hsperfdata file the way the JVM lays it out (8-byte aligned data).
fn build(big: bool, specs: &[Spec]) -> Vec<u8> {
    let i32b = |v: i32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let i64b = |v: i64| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut entries = Vec::new();
    for s in specs {
        let name_len = s.name.len() + 1;
        let data_at = (ENTRY_HEADER_LEN + name_len).div_ceil(8) * 8;
        let (kind, vector, data) = match &s.value {
            Value::Long(v) => (b'J', 0, i64b(*v).to_vec()),
            Value::Text(t) => {
                let mut d = t.as_bytes().to_vec();
                d.resize(t.len() + 4, 0);
                (b'B', d.len(), d)
            }
        };
        let len = (data_at + data.len()).div_ceil(8) * 8;
        let mut e = Vec::new();
        e.extend(i32b(len as i32));
        e.extend(i32b(ENTRY_HEADER_LEN as i32));
        e.extend(i32b(vector as i32));
        e.extend([kind, 1, s.units, s.variability]);
        e.extend(i32b(data_at as i32));
        e.extend(s.name.as_bytes());
        e.resize(data_at, 0);
        e.extend(data);
        e.resize(len, 0);
        entries.extend(e);
    }
    let mut b = MAGIC.to_vec();
    b.extend([if big { 0 } else { 1 }, 2, 0, 1]);
    b.extend(i32b((PROLOGUE_LEN + entries.len()) as i32));
    b.extend(i32b(0));
    b.extend(i64b(123_456_789));
    b.extend(i32b(PROLOGUE_LEN as i32));
    b.extend(i32b(specs.len() as i32));
    b.extend(entries);
    b
}

fn jvm(young: i64, full: i64, old_used: i64) -> Vec<u8> {
    build(
        false,
        &[
            text("sun.gc.generation.0.name", "young"),
            long("sun.gc.generation.0.spaces", 3),
            text("sun.gc.generation.0.space.0.name", "eden"),
            long("sun.gc.generation.0.space.0.used", 4 << 20),
            long("sun.gc.generation.0.space.0.capacity", 16 << 20),
            text("sun.gc.generation.0.space.1.name", "s0"),
            long("sun.gc.generation.0.space.1.used", 1 << 20),
            long("sun.gc.generation.0.space.1.capacity", 2 << 20),
            text("sun.gc.generation.0.space.2.name", "s1"),
            long("sun.gc.generation.0.space.2.used", 0),
            long("sun.gc.generation.0.space.2.capacity", 2 << 20),
            text("sun.gc.generation.1.name", "old"),
            long("sun.gc.generation.1.spaces", 1),
            text("sun.gc.generation.1.space.0.name", "old"),
            long("sun.gc.generation.1.space.0.used", old_used),
            long("sun.gc.generation.1.space.0.capacity", 32 << 20),
            long("sun.gc.metaspace.used", 5 << 20),
            long("sun.gc.metaspace.capacity", 6 << 20),
            long("sun.gc.collector.0.invocations", young),
            long("sun.gc.collector.0.time", 3_000_000),
            long("sun.gc.collector.1.invocations", full),
            long("sun.gc.collector.1.time", 1_000_000),
            long("sun.os.hrt.frequency", 1_000_000_000),
        ],
    )
}

#[test]
fn parses_both_byte_orders() {
    for big in [true, false] {
        let buf = build(
            big,
            &[
                long("sun.os.hrt.frequency", 1_000_000_000),
                long("a.negative", -42),
                text("java.property.java.vm.name", "OpenJDK 64-Bit Server VM"),
            ],
        );
        let (p, c) = parse(&buf).unwrap();
        assert_eq!(
            p,
            Prologue {
                big_endian: big,
                major: 2,
                minor: 0,
                accessible: true,
                used: buf.len() as i32,
                overflow: 0,
                mod_time_stamp: 123_456_789,
                entry_offset: 32,
                num_entries: 3,
            }
        );
        assert_eq!(c.len(), 3);
        let f = &c["sun.os.hrt.frequency"];
        assert_eq!(f.long(), Some(1_000_000_000));
        assert_eq!((f.flags, f.units, f.variability), (1, 2, 3));
        assert_eq!(c["a.negative"].long(), Some(-42));
        let n = &c["java.property.java.vm.name"];
        assert_eq!(n.text(), Some("OpenJDK 64-Bit Server VM"));
        assert_eq!((n.units, n.variability), (5, 1));
    }
}

#[test]
fn truncated_and_garbage_are_errors() {
    let buf = jvm(1, 0, 0);
    assert!(parse(&buf).is_ok());
    for cut in [0, 3, 31, 32, 40, buf.len() / 2, buf.len() - 1] {
        assert!(parse(&buf[..cut]).is_err(), "cut at {cut}");
    }
    let mut bad = buf.clone();
    bad[0] = 0;
    assert!(parse(&bad).unwrap_err().contains("magic"));
    let mut bad = buf.clone();
    bad[4] = 7;
    assert!(parse(&bad).is_err());
    let mut bad = buf.clone();
    bad[5] = 1;
    assert!(parse(&bad).unwrap_err().contains("version"));
    let mut bad = buf.clone();
    bad[7] = 0;
    assert!(parse(&bad).unwrap_err().contains("accessible"));
    let mut bad = buf.clone();
    bad[PROLOGUE_LEN..PROLOGUE_LEN + 4].copy_from_slice(&(-8i32).to_le_bytes());
    assert!(parse(&bad).is_err());
    let mut bad = buf.clone();
    bad[24..28].copy_from_slice(&i32::MAX.to_le_bytes());
    assert!(parse(&bad).is_err());
    assert!(parse(&[0xffu8; 200]).is_err());
    let err = read(Path::new("/nonexistent/hsperfdata_x/1")).unwrap_err();
    assert!(err.contains("/nonexistent/hsperfdata_x/1"), "{err}");
}

#[test]
fn random_mutations_never_panic() {
    let valid = jvm(3, 1, 9 << 20);
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let (mut ok, mut err) = (0, 0);
    for _ in 0..5000 {
        let mut b = valid.clone();
        for _ in 0..rng.random_range(1..6) {
            let i = rng.random_range(0..b.len());
            b[i] = rng.random();
        }
        if rng.random_bool(0.2) {
            b.truncate(rng.random_range(0..b.len()));
        }
        match parse(&b) {
            Ok((_, c)) => {
                ok += 1;
                signals(&c, &mut BTreeMap::new());
            }
            Err(_) => err += 1,
        }
    }
    assert!(ok > 0 && err > 0, "ok {ok} err {err}");
}

#[test]
fn maps_signals() {
    let (_, c) = parse(&jvm(5, 2, 9 << 20)).unwrap();
    let mut m = BTreeMap::new();
    signals(&c, &mut m);
    let mib = |n: f64| n * 1048576.0;
    assert_eq!(m["jvm_heap_used_bytes"], mib(14.0));
    assert_eq!(m["jvm_heap_committed_bytes"], mib(52.0));
    assert_eq!(m["jvm_old_used_bytes"], mib(9.0));
    assert_eq!(m["jvm_old_committed_bytes"], mib(32.0));
    assert_eq!(m["jvm_metaspace_used_bytes"], mib(5.0));
    assert_eq!(m["jvm_metaspace_committed_bytes"], mib(6.0));
    assert_eq!(m["jvm_gc_count"], 7.0);
    assert_eq!(m["jvm_young_gc_count"], 5.0);
    assert_eq!(m["jvm_full_gc_count"], 2.0);
    assert!((m["jvm_gc_seconds"] - 0.004).abs() < 1e-12);
    assert!(!m.contains_key("jvm_old_used_after_gc_bytes"));
    // No counters: every signal absent, never zero.
    let mut none = BTreeMap::new();
    signals(&BTreeMap::new(), &mut none);
    assert!(none.is_empty());
}

#[test]
fn old_after_gc_follows_full_collections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("4242");
    let mut probe = HsperfProbe::new(path.clone());
    let mut tick = |young, full, old: i64| {
        std::fs::write(&path, jvm(young, full, old)).unwrap();
        let mut m = BTreeMap::new();
        probe.sample(&mut m).unwrap();
        m.get("jvm_old_used_after_gc_bytes").copied()
    };
    assert_eq!(tick(1, 1, 10 << 20), None, "no collection seen yet");
    assert_eq!(tick(2, 1, 12 << 20), None, "young collections do not count");
    assert_eq!(tick(2, 2, 8 << 20), Some((8 << 20) as f64));
    assert_eq!(tick(3, 2, 11 << 20), Some((8 << 20) as f64), "carried");
    assert_eq!(tick(3, 3, 9 << 20), Some((9 << 20) as f64));
    std::fs::remove_file(&path).unwrap();
    let err = probe.sample(&mut BTreeMap::new()).unwrap_err();
    assert!(err.contains("4242"), "{err}");
}

#[test]
fn finds_the_file_by_namespace_pid() {
    let dir = tempfile::tempdir().unwrap();
    let (proc_root, root) = (dir.path().join("proc"), dir.path().join("host"));
    // pid 900 is pid 7 in its own namespace, with its own /tmp.
    std::fs::create_dir_all(proc_root.join("900/root/tmp/hsperfdata_app")).unwrap();
    std::fs::write(
        proc_root.join("900/status"),
        "Name:\tjava\nNSpid:\t900\t7\n",
    )
    .unwrap();
    std::fs::write(proc_root.join("900/root/tmp/hsperfdata_app/7"), b"x").unwrap();
    // pid 901 has no status (e.g. not visible): the host /tmp under its pid.
    std::fs::create_dir_all(root.join("tmp/hsperfdata_me")).unwrap();
    std::fs::write(root.join("tmp/hsperfdata_me/901"), b"x").unwrap();
    assert_eq!(
        find_in(&proc_root, &root, 900),
        Some(proc_root.join("900/root/tmp/hsperfdata_app/7"))
    );
    assert_eq!(
        find_in(&proc_root, &root, 901),
        Some(root.join("tmp/hsperfdata_me/901"))
    );
    assert_eq!(find_in(&proc_root, &root, 902), None);
}

const LEAK_JAVA: &str = r#"
import java.util.ArrayList;
import java.util.List;

public class Leak {
    static final List<byte[]> KEEP = new ArrayList<>();

    public static void main(String[] args) throws Exception {
        System.gc();
        System.out.println("ready");
        System.out.flush();
        long end = System.currentTimeMillis() + 6000;
        while (System.currentTimeMillis() < end) {
            KEEP.add(new byte[100 * 1024]);
            for (int i = 0; i < 20; i++) {
                byte[] g = new byte[50 * 1024];
                g[i] = 1;
            }
            Thread.sleep(100);
        }
        System.out.println("kept " + KEEP.size());
        Thread.sleep(600_000);
    }
}
"#;

/// Kills the JVM however the test ends.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` every 100 ms until it returns Some, for at most `secs`.
fn poll<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn real_jvm_counters() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    if Command::new("java").arg("-version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "java is missing on CI");
        println!("SKIPPED: java is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Leak.java"), LEAK_JAVA).unwrap();
    let mut child = Kill(
        Command::new("java")
            .args(["-Xmx64m", "-XX:+UsePerfData", "Leak.java"])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    // Compiling the source takes a few seconds on a busy machine.
    let ready = rx.recv_timeout(std::time::Duration::from_secs(90));
    assert_eq!(ready.as_deref(), Ok("ready"), "the JVM did not start");
    let path = poll(30, || find(pid)).expect("no hsperfdata file");
    let mut probe = HsperfProbe::new(path.clone());
    let sample = |probe: &mut HsperfProbe| {
        let mut m = BTreeMap::new();
        probe.sample(&mut m).map(|_| m)
    };
    let start = poll(10, || sample(&mut probe).ok()).expect("unreadable hsperfdata file");
    let start_used = start["jvm_heap_used_bytes"];
    let grown = poll(30, || {
        let m = sample(&mut probe).ok()?;
        let up = m.get("jvm_heap_used_bytes")? - start_used;
        (m.get("jvm_gc_count")? > &0.0 && up > 3.0 * 1048576.0).then_some(m)
    })
    .unwrap_or_else(|| panic!("the heap did not grow: start {start:?}"));
    let limit = 64.0 * 1048576.0 * 1.1;
    for m in [&start, &grown] {
        let (used, committed) = (m["jvm_heap_used_bytes"], m["jvm_heap_committed_bytes"]);
        assert!(
            used > 0.0 && used <= committed && committed <= limit,
            "{m:?}"
        );
        assert!(
            m["jvm_old_used_bytes"] <= m["jvm_old_committed_bytes"],
            "{m:?}"
        );
        assert!(m["jvm_metaspace_used_bytes"] > 0.0, "{m:?}");
        assert!(m["jvm_gc_seconds"] >= 0.0, "{m:?}");
        assert!(m.contains_key("jvm_young_gc_count") && m.contains_key("jvm_full_gc_count"));
    }
    let c = read(&path).unwrap();
    for n in [
        "sun.gc.generation.0.name",
        "sun.gc.generation.1.name",
        "sun.gc.collector.0.name",
        "sun.gc.collector.1.name",
    ] {
        println!("{n}={:?}", c.get(n).and_then(Counter::text));
    }
    for (k, v) in &grown {
        println!("{k}={v}");
    }
    println!("start {start:?}");
}
