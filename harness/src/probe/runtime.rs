//! Runtime signals over HTTP: Prometheus metrics, Go expvar memstats, goroutine totals.

use std::collections::BTreeMap;

/// Go `/debug/vars` memstats → `go_*` signals.
pub fn parse_expvar(body: &[u8], out: &mut BTreeMap<String, f64>) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("expvar is not JSON: {e}"))?;
    let ms = v
        .get("memstats")
        .ok_or("expvar has no \"memstats\" (is it a Go /debug/vars?)")?;
    for (field, name) in [
        ("HeapAlloc", "go_heap_alloc_bytes"),
        ("HeapInuse", "go_heap_inuse_bytes"),
        ("Sys", "go_sys_bytes"),
        ("NumGC", "go_num_gc"),
        ("HeapObjects", "go_heap_objects"),
    ] {
        if let Some(x) = ms.get(field).and_then(|x| x.as_f64()) {
            out.insert(name.into(), x);
        }
    }
    Ok(())
}

/// `/debug/pprof/goroutine?debug=1`: the first line is `goroutine profile: total N`.
pub fn parse_goroutines(body: &[u8]) -> Result<f64, String> {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("goroutine profile: total "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| "not a goroutine profile (expected \"goroutine profile: total N\")".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expvar_and_goroutines() {
        let mut m = BTreeMap::new();
        parse_expvar(br#"{"cmdline":[],"memstats":{"HeapAlloc":10,"HeapInuse":20,"Sys":30,"NumGC":4,"HeapObjects":5}}"#, &mut m).unwrap();
        assert_eq!(m["go_heap_inuse_bytes"], 20.0);
        assert_eq!(m["go_num_gc"], 4.0);
        assert!(parse_expvar(b"<html>", &mut m).is_err());
        assert!(parse_expvar(b"{}", &mut m).is_err());
        assert_eq!(
            parse_goroutines(b"goroutine profile: total 42\n1 @ 0x1\n").unwrap(),
            42.0
        );
        assert!(parse_goroutines(b"nope").is_err());
    }
}
