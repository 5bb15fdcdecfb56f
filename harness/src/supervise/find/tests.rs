//! Fixture trees for every finder and every error, plus one real process.

use super::*;
use std::time::{Duration, Instant};

const ID_A: &str = "4f2b8e1c9d0a7b6c5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d";
const ID_B: &str = "4f2b8e1c00000000000000000000000000000000000000000000000000000000";

/// Writes `files` (path relative to `root` → content), creating folders.
fn tree(root: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// A `/proc/<pid>` folder: `comm`, NUL-separated `cmdline`, and a `stat` with this state and
/// start time (field 22).
fn process(proc_root: &Path, pid: u32, comm: &str, argv: &[&str], state: char, start: u64) {
    let mut cmdline = argv.join("\0");
    if !argv.is_empty() {
        cmdline.push('\0');
    }
    // Fields 4..=21 are zeros, 22 is the start time, a few more follow.
    let middle = vec!["0"; 18].join(" ");
    let stat = format!("{pid} ({comm}) {state} {middle} {start} 1000 200 0 0\n");
    let dir = proc_root.join(pid.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
    std::fs::write(dir.join("cmdline"), cmdline).unwrap();
    std::fs::write(dir.join("stat"), stat).unwrap();
}

#[test]
fn process_found_by_comm_or_program_name() {
    let p = tempfile::tempdir().unwrap();
    process(
        p.path(),
        10,
        "api",
        &["/usr/bin/api", "--port", "8080"],
        'S',
        5,
    );
    process(p.path(), 11, "bash", &["bash"], 'S', 6);
    // comm is cut at 15 bytes; the program's file name is whole.
    process(
        p.path(),
        12,
        "billing-export-",
        &["/opt/billing-export-worker"],
        'R',
        7,
    );
    // A comm with ") Z (" in it: the state is read after the last `)`.
    process(p.path(), 13, "odd) Z (name", &["/bin/odd"], 'S', 8);
    tree(p.path(), &[("self/comm", "api\n"), ("sys/x", "")]);
    assert_eq!(process_by_name(p.path(), "api", &[]).unwrap(), 10);
    assert_eq!(
        process_by_name(p.path(), "billing-export-worker", &[]).unwrap(),
        12
    );
    assert_eq!(process_by_name(p.path(), "odd", &[]).unwrap(), 13);
}

#[test]
fn process_zombie_and_excluded_skipped() {
    let p = tempfile::tempdir().unwrap();
    process(p.path(), 20, "api", &[], 'Z', 1);
    process(p.path(), 21, "api", &["api"], 'S', 2);
    process(p.path(), 22, "leakgate", &["/usr/local/bin/api"], 'S', 3);
    assert_eq!(process_by_name(p.path(), "api", &[22]).unwrap(), 21);
}

#[test]
fn process_none_is_an_error() {
    let p = tempfile::tempdir().unwrap();
    process(p.path(), 30, "nginx", &["nginx: master process"], 'S', 1);
    let e = process_by_name(p.path(), "api", &[]).unwrap_err();
    assert!(matches!(e, FindError::NoProcess { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("\"api\"") && msg.contains("/*/comm"), "{msg}");
    assert!(msg.contains("give --pid instead"), "{msg}");
    assert!(process_by_name(p.path(), "", &[]).is_err());
}

#[test]
fn process_several_is_an_error_listing_them() {
    let p = tempfile::tempdir().unwrap();
    for pid in 100..112 {
        process(
            p.path(),
            pid,
            "worker",
            &["/srv/worker", "--id", "x"],
            'S',
            1,
        );
    }
    let e = process_by_name(p.path(), "worker", &[]).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, FindError::SeveralProcesses { count: 12, .. }),
        "{msg}"
    );
    assert!(msg.contains("100 (/srv/worker --id x)"), "{msg}");
    assert!(msg.contains("109 (") && !msg.contains("110 ("), "{msg}");
    assert!(msg.contains("and 2 more") && msg.contains("--pid"), "{msg}");
}

#[test]
fn process_garbage_proc_never_panics() {
    let p = tempfile::tempdir().unwrap();
    tree(
        p.path(),
        &[
            ("40/stat", "no parenthesis here"),
            ("40/comm", "api"),
            ("41/stat", ""),
            ("42/stat", "42 (api)"),
            ("42/cmdline", "\0\0\u{ff}"),
            ("99999999999/comm", "api"),
        ],
    );
    std::fs::create_dir_all(p.path().join("43")).unwrap();
    assert!(matches!(
        process_by_name(p.path(), "api", &[]),
        Err(FindError::NoProcess { .. })
    ));
    let e = process_by_name(&p.path().join("absent"), "api", &[]).unwrap_err();
    assert!(matches!(e, FindError::ProcRoot { .. }), "{e}");
}

#[test]
fn unit_found_in_v1_memory_tree_first() {
    let r = tempfile::tempdir().unwrap();
    tree(
        r.path(),
        &[
            ("memory/system.slice/api.service/memory.usage_in_bytes", "1"),
            ("unified/system.slice/api.service/cgroup.procs", ""),
            ("memory/system.slice/api.socket/memory.usage_in_bytes", "1"),
        ],
    );
    let want = r.path().join("memory/system.slice/api.service");
    assert_eq!(systemd_unit_cgroup(r.path(), "api").unwrap(), want);
    assert_eq!(systemd_unit_cgroup(r.path(), "api.service").unwrap(), want);
    assert_eq!(
        systemd_unit_cgroup(r.path(), "api.socket").unwrap(),
        r.path().join("memory/system.slice/api.socket")
    );
}

#[test]
fn unit_found_in_v2_tree() {
    let r = tempfile::tempdir().unwrap();
    tree(
        r.path(),
        &[
            ("cgroup.controllers", "cpu memory pids"),
            ("system.slice/cron.service/memory.current", "1"),
            ("system.slice/api.service/memory.current", "1"),
            ("user.slice/user-1000.slice/app.scope/memory.current", "1"),
        ],
    );
    assert_eq!(
        systemd_unit_cgroup(r.path(), "api").unwrap(),
        r.path().join("system.slice/api.service")
    );
    assert_eq!(
        systemd_unit_cgroup(r.path(), "app.scope").unwrap(),
        r.path().join("user.slice/user-1000.slice/app.scope")
    );
}

#[test]
fn unit_prefers_a_memory_cgroup() {
    let r = tempfile::tempdir().unwrap();
    // The v1 match comes first but is no memory cgroup; the unified one is.
    tree(
        r.path(),
        &[
            ("memory/system.slice/api.service/cgroup.procs", ""),
            ("unified/system.slice/api.service/memory.current", "1"),
            ("memory/a/db.service/cgroup.procs", ""),
            ("unified/b/db.service/cgroup.procs", ""),
        ],
    );
    assert_eq!(
        systemd_unit_cgroup(r.path(), "api").unwrap(),
        r.path().join("unified/system.slice/api.service")
    );
    // No memory cgroup at all: the first match.
    assert_eq!(
        systemd_unit_cgroup(r.path(), "db").unwrap(),
        r.path().join("memory/a/db.service")
    );
}

#[test]
fn unit_missing_names_the_roots() {
    let r = tempfile::tempdir().unwrap();
    let deep = format!("memory/{}api.service/memory.usage_in_bytes", "d/".repeat(8));
    tree(r.path(), &[(deep.as_str(), "1")]);
    let e = systemd_unit_cgroup(r.path(), "api").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, FindError::NoUnit { .. }), "{msg}");
    assert!(msg.contains("\"api.service\""), "{msg}");
    assert!(
        msg.contains(&r.path().join("memory").display().to_string())
            && msg.contains(&r.path().join("unified").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("systemctl status api.service"), "{msg}");
    assert!(systemd_unit_cgroup(&r.path().join("absent"), "x").is_err());
    // Eight levels down is still found.
    let eight = format!("memory/{}web.service/memory.usage_in_bytes", "d/".repeat(7));
    tree(r.path(), &[(eight.as_str(), "1")]);
    assert!(systemd_unit_cgroup(r.path(), "web").is_ok());
}

#[test]
fn container_by_systemd_driver_scope() {
    let r = tempfile::tempdir().unwrap();
    let docker = format!("memory/system.slice/docker-{ID_A}.scope");
    let cri = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/\
               cri-containerd-9a8b7c6d5e4f.scope";
    tree(
        r.path(),
        &[
            (format!("{docker}/memory.usage_in_bytes").as_str(), "1"),
            ("unified/system.slice/docker-zzzz.scope/x", ""),
            (format!("unified/{cri}/memory.current").as_str(), "1"),
            ("memory/machine.slice/libpod-0123456789ab.scope/x", ""),
            ("memory/crio-conmon-abcdef.scope/x", ""),
        ],
    );
    assert_eq!(
        container_cgroup(r.path(), &ID_A[..12]).unwrap(),
        r.path().join(&docker)
    );
    assert_eq!(
        container_cgroup(r.path(), ID_A).unwrap(),
        r.path().join(&docker)
    );
    assert_eq!(
        container_cgroup(r.path(), "9a8b").unwrap(),
        r.path().join("unified").join(cri)
    );
    assert_eq!(
        container_cgroup(r.path(), "0123").unwrap(),
        r.path()
            .join("memory/machine.slice/libpod-0123456789ab.scope")
    );
    // `crio-conmon-<id>` is the monitor, not the container.
    assert!(matches!(
        container_cgroup(r.path(), "abcdef"),
        Err(FindError::NoContainer { .. })
    ));
}

#[test]
fn container_by_cgroupfs_driver_name() {
    let r = tempfile::tempdir().unwrap();
    let docker = format!("memory/docker/{ID_A}");
    let pod = "memory/kubepods/burstable/pod0a1b2c3d/c0ffee00c0ffee00";
    tree(
        r.path(),
        &[
            (format!("{docker}/memory.usage_in_bytes").as_str(), "1"),
            (format!("{pod}/memory.usage_in_bytes").as_str(), "1"),
            // The same container in the unified tree is the same id, not a second match.
            (format!("unified/docker/{ID_A}/cgroup.procs").as_str(), ""),
        ],
    );
    assert_eq!(
        container_cgroup(r.path(), "4f2b8e1c9d").unwrap(),
        r.path().join(&docker)
    );
    assert_eq!(
        container_cgroup(r.path(), "c0ffee").unwrap(),
        r.path().join(pod)
    );
    // `pod<uid>` is not a container id.
    assert!(container_cgroup(r.path(), "0a1b2c3d").is_err());
}

#[test]
fn container_bad_id() {
    let r = tempfile::tempdir().unwrap();
    let long = "a".repeat(65);
    for bad in [
        "abc",
        "ABCDEF12",
        "4f2b-8e1c",
        "not hex",
        "",
        long.as_str(),
        "é123",
    ] {
        let e = container_cgroup(r.path(), bad).unwrap_err();
        assert!(matches!(e, FindError::BadContainerId { .. }), "{bad}: {e}");
        assert!(e.to_string().contains("4 to 64 lowercase hex"), "{e}");
    }
}

#[test]
fn container_ambiguous_prefix() {
    let r = tempfile::tempdir().unwrap();
    tree(
        r.path(),
        &[
            (
                format!("memory/system.slice/docker-{ID_A}.scope/x").as_str(),
                "",
            ),
            (
                format!("memory/system.slice/docker-{ID_B}.scope/x").as_str(),
                "",
            ),
        ],
    );
    let e = container_cgroup(r.path(), "4f2b8e1c").unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, FindError::AmbiguousContainer { count: 2, .. }),
        "{msg}"
    );
    assert!(msg.contains(ID_A) && msg.contains(ID_B), "{msg}");
    assert!(msg.contains("give more of the id"), "{msg}");
    // A longer prefix picks one.
    assert!(container_cgroup(r.path(), "4f2b8e1c9d").is_ok());
}

#[test]
fn container_missing_names_the_roots() {
    let r = tempfile::tempdir().unwrap();
    tree(r.path(), &[("cgroup.controllers", "memory")]);
    let e = container_cgroup(r.path(), "deadbeef").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, FindError::NoContainer { .. }), "{msg}");
    assert!(
        msg.contains("deadbeef") && msg.contains("docker ps"),
        "{msg}"
    );
    assert!(msg.contains(&r.path().display().to_string()), "{msg}");
}

#[test]
fn main_pid_is_the_oldest() {
    let p = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    process(p.path(), 30, "api", &["api"], 'S', 500);
    process(p.path(), 31, "api", &["api"], 'S', 100);
    process(p.path(), 32, "api", &["api"], 'S', 300);
    process(p.path(), 33, "api", &["api"], 'Z', 1);
    tree(
        c.path(),
        &[("cgroup.procs", "30\n31\n32\n33\n34\ngarbage\n0\n")],
    );
    assert_eq!(main_pid(p.path(), c.path()).unwrap(), 31);
}

#[test]
fn main_pid_from_subgroups() {
    let p = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    process(p.path(), 40, "sh", &["sh"], 'S', 900);
    process(p.path(), 41, "api", &["api"], 'S', 200);
    tree(
        c.path(),
        &[
            ("cgroup.procs", "\n"),
            ("a/cgroup.procs", "40\n"),
            ("b/c/cgroup.procs", "41\n"),
        ],
    );
    assert_eq!(main_pid(p.path(), c.path()).unwrap(), 41);
}

#[test]
fn main_pid_empty_cgroup_is_an_error() {
    let p = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    tree(c.path(), &[("cgroup.procs", ""), ("sub/cgroup.procs", "")]);
    let e = main_pid(p.path(), c.path()).unwrap_err();
    assert!(matches!(e, FindError::EmptyCgroup { .. }), "{e}");
    assert!(e.to_string().contains("holds no process"), "{e}");
    // Listed, but gone from /proc.
    tree(c.path(), &[("cgroup.procs", "77\n")]);
    let e = main_pid(p.path(), c.path()).unwrap_err();
    assert!(matches!(e, FindError::GoneProcesses { .. }), "{e}");
    assert!(e.to_string().contains("77"), "{e}");
}

#[test]
fn limits_of_process_and_cgroup() {
    let p = tempfile::tempdir().unwrap();
    let head = "Limit                     Soft Limit           Hard Limit           Units     \n";
    let stack = "Max stack size            8388608              unlimited            bytes     \n";
    let set = "Max address space         1073741824           unlimited            bytes     \n";
    let unset = "Max address space         unlimited            unlimited            bytes     \n";
    let (five, six) = (format!("{head}{stack}{set}"), format!("{head}{unset}"));
    tree(
        p.path(),
        &[
            ("5/limits", &five),
            ("6/limits", &six),
            ("7/limits", "garbage"),
        ],
    );
    assert_eq!(address_space_limit(p.path(), 5), Some(1 << 30));
    assert_eq!(address_space_limit(p.path(), 6), None);
    assert_eq!(address_space_limit(p.path(), 7), None);
    assert_eq!(address_space_limit(p.path(), 8), None);

    let c = tempfile::tempdir().unwrap();
    tree(
        c.path(),
        &[
            ("v2/memory.max", "67108864\n"),
            ("v2max/memory.max", "max\n"),
            ("v1/memory.limit_in_bytes", "536870912\n"),
            ("v1none/memory.limit_in_bytes", "9223372036854771712\n"),
            ("bad/memory.max", "lots"),
        ],
    );
    assert_eq!(cgroup_memory_limit(&c.path().join("v2")), Some(64 << 20));
    assert_eq!(cgroup_memory_limit(&c.path().join("v2max")), None);
    assert_eq!(cgroup_memory_limit(&c.path().join("v1")), Some(512 << 20));
    assert_eq!(cgroup_memory_limit(&c.path().join("v1none")), None);
    assert_eq!(cgroup_memory_limit(&c.path().join("bad")), None);
    assert_eq!(cgroup_memory_limit(&c.path().join("absent")), None);
}

#[test]
fn finds_a_real_process_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    // Longer than comm's 15 bytes, so it is found by the program's file name.
    let name = format!("lg-find-{}-{nanos}", std::process::id());
    let program = dir.path().join(&name);
    std::fs::copy("/bin/sleep", &program).unwrap();
    // Another test thread may fork while the copy is still open for writing (ETXTBSY).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut child = loop {
        match std::process::Command::new(&program).arg("30").spawn() {
            Ok(c) => break c,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                std::thread::yield_now();
            }
            Err(e) => panic!("cannot start {}: {e}", program.display()),
        }
    };
    let pid = child.id();
    let found = loop {
        match process_by_name(Path::new(PROC_ROOT), &name, &[std::process::id()]) {
            Ok(p) => break Ok(p),
            Err(e) if Instant::now() >= deadline => break Err(e),
            Err(_) => std::thread::yield_now(),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(found.unwrap(), pid);
}
