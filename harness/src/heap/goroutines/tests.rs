//! Dumps and heap profiles captured from `targets/go/leaktarget` (Go 1.19): before and after
//! 300 `/watch` requests in `-leak leaked-goroutines`, before and after 40 `/proxy` requests
//! in `-leak unclosed-bodies`; heap profiles before and after 20 000 `/watch` requests.

use super::*;

const LEAKED_START: &str = include_str!("leaked-start.txt");
const LEAKED_END: &str = include_str!("leaked-end.txt");
const UNCLOSED_START: &str = include_str!("unclosed-start.txt");
const UNCLOSED_END: &str = include_str!("unclosed-end.txt");

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/heap/goroutines")
}

#[test]
fn leaked_watchers_are_named_by_their_wait_and_their_creator() {
    let (a, b) = (parse(LEAKED_START).unwrap(), parse(LEAKED_END).unwrap());
    assert_eq!((a.len(), b.len()), (7, 307));
    let d = diff(&a, &b, 10);
    assert_eq!((d.start_total, d.end_total), (7, 307));
    let top = &d.groups[0];
    assert_eq!(top.blocked_in, "main.watchItem");
    assert_eq!(top.state, "select");
    assert_eq!(top.created_by.as_deref(), Some("main.item"));
    assert!(
        top.created_at
            .as_deref()
            .is_some_and(|a| a.ends_with("leaktarget/main.go:344")),
        "{top:?}"
    );
    assert_eq!(top.entry, None, "the watcher waits in its own function");
    assert_eq!((top.start, top.end, top.growth()), (0, 300, 300), "{d:?}");
    assert_eq!(
        top.describe(),
        "main.watchItem (select), created by main.item"
    );
    assert!(
        d.groups.iter().skip(1).all(|g| g.growth() < 10),
        "only the watchers grew much: {d:?}"
    );
}

#[test]
fn unclosed_bodies_show_the_transport_and_server_goroutines_they_hold() {
    let d = diff(
        &parse(UNCLOSED_START).unwrap(),
        &parse(UNCLOSED_END).unwrap(),
        10,
    );
    let forty: Vec<String> = d
        .groups
        .iter()
        .filter(|g| g.growth() == 40)
        .map(|g| g.describe())
        .collect();
    // A connection per request whose body was never closed: its read and write loops on
    // the client side, its server goroutine on the upstream side; equal growth sorts by name.
    assert_eq!(
        forty,
        [
            "net.(*netFD).Read (IO wait) in net/http.(*conn).serve, created by net/http.(*Server).Serve",
            "net/http.(*persistConn).readLoop (select), created by net/http.(*Transport).dialConn",
            "net/http.(*persistConn).writeLoop (select), created by net/http.(*Transport).dialConn",
        ],
        "{d:#?}"
    );
    assert_eq!(&d.groups[..3].len(), &3);
}

#[test]
fn newer_go_headers_durations_and_garbage() {
    // Go 1.21 and later: "created by F in goroutine N"; waits longer than a minute carry
    // their duration; deep stacks elide frames.
    let text = "goroutine 40 [chan receive, 12 minutes]:\n\
                runtime.gopark(0x0?, 0x0?, 0x0?, 0x0?, 0x0?)\n\
                \t/usr/lib/go/src/runtime/proc.go:398 +0xce\n\
                runtime.chanrecv1(0x0?, 0x0?)\n\
                \t/usr/lib/go/src/runtime/chan.go:442 +0x12\n\
                app/worker.(*Pool).wait(...)\n\
                \t/src/app/worker/pool.go:88\n\
                ...additional frames elided...\n\
                app/worker.(*Pool).run.func1()\n\
                \t/src/app/worker/pool.go:61 +0x3a\n\
                created by app/worker.(*Pool).run in goroutine 1\n\
                \t/src/app/worker/pool.go:59 +0x8e\n\n\
                goroutine 41 [chan receive (nil chan)]:\n\
                app.stuck()\n\
                \t/src/app/main.go:9 +0x1\n";
    let gs = parse(text).unwrap();
    assert_eq!(gs.len(), 2);
    let g = group_of(&gs[0]);
    assert_eq!(g.state, "chan receive");
    assert_eq!(g.blocked_in, "app/worker.(*Pool).wait");
    assert_eq!(g.entry.as_deref(), Some("app/worker.(*Pool).run.func1"));
    assert_eq!(g.created_by.as_deref(), Some("app/worker.(*Pool).run"));
    assert_eq!(g.created_at.as_deref(), Some("/src/app/worker/pool.go:59"));
    assert_eq!(gs[1].state, "chan receive (nil chan)");
    assert_eq!(gs[1].created_by, None);
    // debug=1 (counts per stack, no creators) and HTML are refused, an empty dump is none.
    assert!(parse("goroutine profile: total 7\n1 @ 0x1\n").is_err());
    assert!(parse("<html><body>404</body></html>").is_err());
    assert_eq!(parse("").unwrap(), []);
}

#[test]
fn a_heap_site_that_is_goroutines_is_called_from_their_creator() {
    let dir = dir();
    let mut heap = crate::heap::diff_files(
        &dir.join("heap-start.pb.gz"),
        &dir.join("heap-end.pb.gz"),
        10,
    )
    .unwrap();
    let malg = |h: &HeapDiff| {
        h.sites
            .iter()
            .find(|s| s.function == "runtime.malg")
            .cloned()
            .unwrap_or_else(|| panic!("no runtime.malg site: {h:#?}"))
    };
    // Go 1.19 cuts the stack of a goroutine's allocation at the system stack: no user frame.
    assert!(
        malg(&heap)
            .callers
            .iter()
            .all(|c| c.starts_with("runtime.")),
        "{:?}",
        malg(&heap)
    );
    let g = diff(
        &parse(LEAKED_START).unwrap(),
        &parse(LEAKED_END).unwrap(),
        10,
    );
    attribute(&mut heap, &g);
    assert_eq!(
        malg(&heap).callers,
        ["main.item (go statement; +300 goroutines it created)"]
    );
    // A site with a user caller keeps it.
    let item = heap
        .sites
        .iter()
        .find(|s| s.function == "main.item")
        .unwrap();
    assert_eq!(item.callers[0], "main.(*service).watch");
}

#[test]
fn a_run_folder_compares_start_with_end_or_the_latest_scheduled_dump() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    assert!(diff_run(d).is_none());
    std::fs::write(d.join(START_NAME), LEAKED_START).unwrap();
    assert!(
        diff_run(d).is_none(),
        "no end and nothing scheduled: no diff"
    );
    std::fs::write(d.join(LATEST_NAME), LEAKED_END).unwrap();
    let g = diff_run(d).unwrap().unwrap();
    assert_eq!(g.groups[0].growth(), 300);
    std::fs::write(d.join(END_NAME), "<html>").unwrap();
    let e = diff_run(d).unwrap().unwrap_err();
    assert!(
        e.starts_with("goroutines-end.txt: not a goroutine dump"),
        "{e}"
    );
}
