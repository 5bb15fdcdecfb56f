use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{
    CompactStats, ReadError, compact_file, next_segment_path, read_dir_records, segment_paths,
};
use crate::record::{Record, Window};
use crate::store::compact;
use crate::store::test_support::{sample, second};

fn lines(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn indexes(records: &[Record]) -> Vec<u64> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Window(w) => Some(w.index),
            _ => None,
        })
        .collect()
}

#[test]
fn segments_are_read_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "samples.ndjson", &lines(&[Record::Window(second(9))]));
    write(
        d,
        "samples.00010.ndjson",
        &lines(&[Record::Window(second(5)), Record::Window(second(6))]),
    );
    write(
        d,
        "samples.00002.ndjson",
        &lines(&[Record::Window(second(3))]),
    );
    write(
        d,
        "samples.00001.ndjson",
        &lines(&[Record::Window(second(1))]),
    );
    for noise in [
        "samples.00003.ndjson.tmp",
        "samples.x.ndjson",
        "samples..ndjson",
        "notes.txt",
    ] {
        write(d, noise, "not a record\n");
    }
    let names: Vec<String> = segment_paths(d)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "samples.00001.ndjson",
            "samples.00002.ndjson",
            "samples.00010.ndjson",
            "samples.ndjson"
        ]
    );
    assert_eq!(indexes(&read_dir_records(d).unwrap()), [1, 3, 5, 6, 9]);
    assert_eq!(next_segment_path(d), d.join("samples.00011.ndjson"));
}

#[test]
fn an_empty_or_missing_folder_has_no_records() {
    let dir = tempfile::tempdir().unwrap();
    assert!(read_dir_records(dir.path()).unwrap().is_empty());
    assert_eq!(
        next_segment_path(dir.path()),
        dir.path().join("samples.00001.ndjson")
    );
    assert!(
        read_dir_records(&dir.path().join("gone"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_torn_last_line_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let whole = lines(&[Record::Window(second(1)), Record::Window(second(2))]);
    // Killed mid-write, inside a two-byte character of the next record.
    let torn = serde_json::to_string(&Record::Probe(sample(3.0, 1, &[("rss é", 1.0)]))).unwrap();
    let cut = torn.find('é').unwrap() + 1;
    let mut bytes = whole.into_bytes();
    bytes.extend_from_slice(&torn.as_bytes()[..cut]);
    std::fs::write(d.join("samples.00001.ndjson"), bytes).unwrap();
    write(
        d,
        "samples.ndjson",
        &(lines(&[Record::Window(second(4))]) + "{\"type\":\"win"),
    );
    assert_eq!(indexes(&read_dir_records(d).unwrap()), [1, 2, 4]);
}

#[test]
fn a_bad_middle_line_names_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "samples.00001.ndjson",
        &lines(&[Record::Window(second(1))]),
    );
    let good = lines(&[Record::Window(second(2))]);
    write(
        d,
        "samples.00002.ndjson",
        &format!("{good}\n{{\"type\":\"nope\"}}\n{good}"),
    );
    let err = read_dir_records(d).unwrap_err();
    assert!(
        matches!(&err, ReadError::Parse { path, line: 3, .. } if path.ends_with("samples.00002.ndjson")),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("samples.00002.ndjson:3: not a samples.ndjson record: "),
        "{text}"
    );

    // A bad last line that did end with a newline was written whole: an error too.
    write(d, "samples.00002.ndjson", &format!("{good}garbage\n"));
    assert!(matches!(
        read_dir_records(d),
        Err(ReadError::Parse { line: 2, .. })
    ));
}

#[test]
fn compact_file_shrinks_an_hour_to_sixty_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.00001.ndjson");
    // Sixty distinct seconds, repeated: building histograms is slow in a debug build.
    let minute: Vec<Window> = (0..60).map(second).collect();
    let hour: Vec<Record> = (0..3600u64)
        .map(|i| {
            let mut w = minute[(i % 60) as usize].clone();
            (w.index, w.start, w.end) = (i, i as f64, i as f64 + 1.0);
            w.cumulative_completed = 3 * (i + 1);
            Record::Window(w)
        })
        .collect();
    std::fs::write(&path, lines(&hour)).unwrap();
    let bytes_before = std::fs::metadata(&path).unwrap().len();

    let stats = compact_file(&path, 3600.0, 60.0).unwrap();
    assert_eq!((stats.lines_before, stats.lines_after), (3600, 60));
    assert_eq!(stats.bytes_before, bytes_before);
    assert_eq!(stats.bytes_after, std::fs::metadata(&path).unwrap().len());
    assert!(stats.bytes_after * 20 < stats.bytes_before, "{stats:?}");
    // Compared as text: serde_json may read a float back one ulp off.
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(
        written == lines(&compact(hour, 3600.0, 60.0)),
        "not the compacted hour"
    );
    assert_eq!(read_dir_records(dir.path()).unwrap().len(), 60);
    assert!(!dir.path().join("samples.00001.ndjson.tmp").exists());

    // Nothing left to merge: the file is not rewritten.
    let (text, inode) = (
        std::fs::read(&path).unwrap(),
        std::fs::metadata(&path).unwrap().ino(),
    );
    let again = compact_file(&path, 3600.0, 60.0).unwrap();
    let size = stats.bytes_after;
    assert_eq!(
        again,
        CompactStats {
            lines_before: 60,
            lines_after: 60,
            bytes_before: size,
            bytes_after: size
        }
    );
    assert_eq!(std::fs::read(&path).unwrap(), text);
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
}

#[test]
fn compact_file_drops_a_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.00001.ndjson");
    let records = vec![Record::Window(second(1)), Record::Window(second(100))];
    std::fs::write(&path, lines(&records) + "{\"type\":\"probe\",\"t\":1").unwrap();
    let stats = compact_file(&path, 60.0, 60.0).unwrap();
    assert_eq!((stats.lines_before, stats.lines_after), (3, 2));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), lines(&records));
}

#[test]
fn the_tmp_file_never_stays_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.00001.ndjson");
    let tmp = dir.path().join("samples.00001.ndjson.tmp");
    let records: Vec<Record> = (0..120).map(|i| Record::Window(second(i))).collect();
    std::fs::write(&path, lines(&records)).unwrap();
    // Left by a run killed mid-compaction.
    std::fs::File::create(&tmp)
        .unwrap()
        .write_all(b"{\"type\":\"wi")
        .unwrap();
    assert_eq!(compact_file(&path, 120.0, 60.0).unwrap().lines_after, 2);
    assert!(!tmp.exists());

    // A file that cannot be read is left alone and no copy is made.
    let bad = lines(&records[..2]) + "oops\n" + &lines(&records[2..]);
    std::fs::write(&path, &bad).unwrap();
    let err = compact_file(&path, 120.0, 60.0).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        err.to_string().contains("samples.00001.ndjson:3: "),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), bad);
    assert!(!tmp.exists());
    assert!(compact_file(&dir.path().join("missing.ndjson"), 1.0, 60.0).is_err());
}
