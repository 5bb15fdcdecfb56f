//! Prometheus text format (and OpenMetrics as prometheus-client renders it): a small parser.

use std::collections::BTreeMap;

/// Parses exposition text into `sample name (with labels as written, normalised) → value`.
///
/// Comments, `# EOF`, timestamps and malformed lines are skipped; a garbage page yields an
/// empty map, never a panic.
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = parse_line(line) {
            out.insert(name, value);
        }
    }
    out
}

fn parse_line(line: &str) -> Option<(String, f64)> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut key = name.to_string();
    if rest.starts_with('{') {
        let (labels, after) = parse_labels(&rest[1..])?;
        if !labels.is_empty() {
            let joined: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            key = format!("{name}{{{}}}", joined.join(","));
        }
        rest = after;
    }
    let value = rest.split_whitespace().next()?;
    let v = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some((key, v))
}

/// Parses `a="x",b="y"}` (after the `{`), returning sorted labels and the text after `}`.
fn parse_labels(s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = s.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            labels.sort();
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let k = rest[..eq].trim().to_string();
        rest = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut v = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => v.push('\n'),
                    other => v.push(other),
                },
                '"' => break i,
                c => v.push(c),
            }
        };
        labels.push((k, v));
        rest = rest[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
}

/// Normalises a metric selector the user wrote (`x{b="2",a="1"}`) to the parser's key form.
pub fn normalise(selector: &str) -> String {
    parse_line(&format!("{selector} 0")).map_or_else(|| selector.to_string(), |(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_openmetrics() {
        let text = "# HELP x help\n# TYPE x gauge\nx 1.5\nreq_total{code=\"200\",method=\"get\"} 7 1700000000\n\
                    up{job=\"a\\\"b\"} +Inf\nnan_metric NaN\n# EOF\n garbage line here\n{bad} 1\n9x 1\nh_bucket{le=\"0.1\"} 3";
        let m = parse(text);
        assert_eq!(m["x"], 1.5);
        assert_eq!(m["req_total{code=\"200\",method=\"get\"}"], 7.0);
        assert!(m["up{job=\"a\"b\"}"].is_infinite());
        assert!(m["nan_metric"].is_nan());
        assert_eq!(m["h_bucket{le=\"0.1\"}"], 3.0);
        assert!(!m.contains_key("garbage"));
        assert_eq!(m.len(), 5);
        assert_eq!(
            normalise("req_total{method=\"get\", code=\"200\"}"),
            "req_total{code=\"200\",method=\"get\"}"
        );
        assert!(parse("\u{0}\u{1}{{{").is_empty());
    }
}
