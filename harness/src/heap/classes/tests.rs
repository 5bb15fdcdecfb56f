use super::*;

/// Real output of `jcmd <pid> GC.class_histogram` (OpenJDK 17.0.15, Debian) against the
/// Java reference target in unbounded-cache mode, 1024-byte values: before and after 300
/// requests with new keys.
const START: &str = include_str!("jdk17-start.txt");
const END: &str = include_str!("jdk17-end.txt");

#[test]
fn a_real_histogram_parses_with_its_total() {
    let h = parse(START).unwrap();
    let b = h.classes["byte[]"];
    assert_eq!((b.instances, b.bytes), (12978, 986960));
    assert_eq!(h.classes["java.lang.Object[]"].bytes, 147608);
    assert!(
        h.classes
            .contains_key("java.util.concurrent.ConcurrentHashMap$Node")
    );
    let sum: i64 = h.classes.values().map(|c| c.bytes).sum();
    assert_eq!(
        h.total.bytes, sum,
        "the Total line is the sum of the classes"
    );
    assert!(
        h.classes.keys().all(|k| !k.contains("java.base@")),
        "modules dropped"
    );
}

#[test]
fn the_leaking_values_top_the_table() {
    let d = diff(&parse(START).unwrap(), &parse(END).unwrap(), 10);
    assert_eq!((d.unit.as_str(), d.sites.len()), ("bytes", 10));
    let top = &d.sites[0];
    // 300 values of 1024 bytes (1040 with the array header), plus the keys' bytes.
    assert_eq!(top.function, "byte[]");
    assert_eq!((top.start, top.end), (986960, 1600144));
    assert!(top.growth() >= 300 * 1040, "{top:?}");
    assert_eq!(top.at.as_deref(), Some("12978 → 20312 instances"));
    assert!(top.callers.is_empty());
    assert!(
        d.sites
            .iter()
            .any(|s| s.function == "java.util.HashMap$Node")
    );
    assert!(d.sites.windows(2).all(|w| w[0].growth() >= w[1].growth()));
    assert!(d.end_total > d.start_total);
}

#[test]
fn jdk8_lines_without_modules_and_array_names() {
    // The JDK 8 layout (no module column, no Total numbers on some builds).
    let text = " num     #instances         #bytes  class name\n\
                ----------------------------------------------\n\
                \x20  1:          4000        4160000  [B\n\
                \x20  2:            10            960  [[Ljava.lang.String;\n\
                \x20  3:             2             64  Foo$Entry\n";
    let h = parse(text).unwrap();
    assert_eq!(h.classes["byte[]"].instances, 4000);
    assert_eq!(h.classes["java.lang.String[][]"].bytes, 960);
    assert_eq!(h.total.bytes, 4160000 + 960 + 64);
    assert_eq!(java_name("[[I"), "int[][]");
    assert_eq!(java_name("[Z"), "boolean[]");
    assert_eq!(java_name("java.lang.String"), "java.lang.String");
    assert_eq!(java_name("[Q"), "[Q");
}

#[test]
fn garbage_is_refused_and_shrinking_classes_are_not_listed() {
    assert!(parse("12345:\nAttachNotSupportedException: no such process\n").is_err());
    assert!(parse("   1:  x  y  [B\n").unwrap_err().contains("line 1"));
    let a = parse("   1: 10 1000 [B\n   2: 5 50 Foo\n").unwrap();
    let b = parse("   1: 1 100 [B\n   2: 6 60 Foo\n   3: 1 16 Bar\n").unwrap();
    let d = diff(&a, &b, 10);
    let names: Vec<&str> = d.sites.iter().map(|s| s.function.as_str()).collect();
    assert_eq!(names, ["Bar", "Foo"], "byte[] shrank; ties break by name");
}

#[test]
fn a_run_folder_needs_both_files_and_names_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    assert!(diff_run(dir.path()).is_none());
    std::fs::write(dir.path().join(START_NAME), START).unwrap();
    assert!(diff_run(dir.path()).is_none(), "no end: no table");
    std::fs::write(dir.path().join(END_NAME), "Connection refused\n").unwrap();
    let err = diff_run(dir.path()).unwrap().unwrap_err();
    assert!(err.starts_with("classes-end.txt: "), "{err}");
    std::fs::write(dir.path().join(END_NAME), END).unwrap();
    assert_eq!(
        diff_run(dir.path()).unwrap().unwrap().sites[0].function,
        "byte[]"
    );
}
