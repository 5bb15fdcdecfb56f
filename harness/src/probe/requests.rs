//! requests: the target's own request counter, the x-axis when leakgate watches traffic it does
//! not drive. A Prometheus (or OpenMetrics) counter summed over its labels, or nginx's
//! `stub_status` page.

use std::collections::BTreeSet;
use std::time::Duration;

/// The counter read when none is named.
pub const DEFAULT_METRIC: &str = "http_requests_total";
/// The header line of nginx's `stub_status` page; the totals are on the next line.
const STUB_STATUS_HEADER: &str = "server accepts handled requests";
/// Timeout of one read.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How many counter names a "not found" message lists.
const MAX_LISTED: usize = 10;

/// The sum over all labels of the samples named `metric` (or `metric_total`, or `metric`
/// without `_total`, the first of those present); `None` when no finite sample matched.
pub fn sum_counter(text: &str, metric: &str) -> Option<f64> {
    let samples = super::prometheus::parse(text);
    let mut names = vec![metric.to_string(), format!("{metric}_total")];
    if let Some(bare) = metric.strip_suffix("_total") {
        names.push(bare.to_string());
    }
    // One name only, so a page with both `x` and `x_total` is not counted twice.
    names.iter().find_map(|wanted| {
        let values: Vec<f64> = samples
            .iter()
            .filter(|(key, v)| sample_name(key) == wanted && v.is_finite())
            .map(|(_, v)| *v)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    })
}

/// The `requests` total of an nginx `stub_status` page (third number after its header line).
pub fn parse_stub_status(text: &str) -> Option<f64> {
    let mut lines = text.lines();
    lines.find(|l| l.trim() == STUB_STATUS_HEADER)?;
    let v: f64 = lines.next()?.split_whitespace().nth(2)?.parse().ok()?;
    v.is_finite().then_some(v)
}

/// The metric name of a parsed sample key (`name` or `name{labels}`).
fn sample_name(key: &str) -> &str {
    key.split('{').next().unwrap_or(key)
}

/// Reads a target's request counter and counts requests since the first read, across resets.
#[derive(Debug, Clone)]
pub struct RequestCounter {
    url: String,
    metric: Option<String>,
    /// The raw value of the last successful read.
    last: Option<f64>,
    /// Requests counted since the first successful read.
    total: f64,
}

impl RequestCounter {
    /// A counter read from `url`; `metric` defaults to [`DEFAULT_METRIC`] (unused for nginx).
    pub fn new(url: String, metric: Option<String>) -> Self {
        Self {
            url,
            metric,
            last: None,
            total: 0.0,
        }
    }

    /// GETs the page and returns the requests counted since the first successful read.
    pub fn read(&mut self) -> Result<u64, String> {
        let body = super::http_get(&self.url, TIMEOUT)?;
        let raw = self.raw_value(&String::from_utf8_lossy(&body))?;
        Ok(self.advance(raw))
    }

    /// The counter's raw value in a page, or why it is not there.
    fn raw_value(&self, text: &str) -> Result<f64, String> {
        if text.contains(STUB_STATUS_HEADER) {
            return parse_stub_status(text).ok_or_else(|| {
                format!(
                    "{} looks like an nginx stub_status page but has no numbers after \
                     `{STUB_STATUS_HEADER}`",
                    self.url
                )
            });
        }
        let metric = self.metric.as_deref().unwrap_or(DEFAULT_METRIC);
        sum_counter(text, metric).ok_or_else(|| missing(&self.url, metric, text))
    }

    /// Folds one raw reading in: a value below the last one is a reset (the target restarted),
    /// so the count so far is kept and the new value is counted from zero.
    fn advance(&mut self, raw: f64) -> u64 {
        if !raw.is_finite() {
            return self.total.round() as u64;
        }
        let raw = raw.max(0.0);
        match self.last {
            None => {}
            Some(last) if raw >= last => self.total += raw - last,
            Some(_) => self.total += raw,
        }
        self.last = Some(raw);
        self.total.round() as u64
    }
}

/// "counter X is not in URL; counters there: ..." with up to ten `_total` names of the page.
fn missing(url: &str, metric: &str, text: &str) -> String {
    let samples = super::prometheus::parse(text);
    let counters: BTreeSet<&str> = samples
        .keys()
        .map(|k| sample_name(k))
        .filter(|n| n.ends_with("_total"))
        .collect();
    let mut msg = format!("counter {metric:?} is not in {url}; ");
    if counters.is_empty() {
        msg.push_str("the page has no counter ending in _total; name one with `metric`");
    } else {
        let listed: Vec<&str> = counters.iter().take(MAX_LISTED).copied().collect();
        msg.push_str(&format!("counters there: {}", listed.join(", ")));
        if counters.len() > MAX_LISTED {
            msg.push_str(&format!(" and {} more", counters.len() - MAX_LISTED));
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    const CLASSIC: &str = "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n\
        http_requests_total{code=\"200\",method=\"get\"} 1027\n\
        http_requests_total{code=\"400\",method=\"post\"} 3 1395066363000\n\
        http_requests_total{code=\"500\"} NaN\n\
        http_request_duration_seconds_count 1030\nprocess_cpu_seconds_total 1.5\n";

    const OPENMETRICS: &str = "# TYPE requests_served counter\n# HELP requests_served Served.\n\
        requests_served_total{path=\"/a\"} 10.0\nrequests_served_created{path=\"/a\"} 1.7e9\n\
        requests_served_total{path=\"/b\"} 5.0\nrequests_served_created{path=\"/b\"} 1.7e9\n# EOF\n";

    /// The example of nginx's ngx_http_stub_status_module documentation.
    const STUB_STATUS: &str = "Active connections: 291 \nserver accepts handled requests\n \
        16630948 16630948 31070465 \nReading: 6 Writing: 179 Waiting: 106 \n";

    #[test]
    fn sums_classic_text_over_labels() {
        assert_eq!(sum_counter(CLASSIC, "http_requests_total"), Some(1030.0));
        assert_eq!(sum_counter(CLASSIC, "process_cpu_seconds_total"), Some(1.5));
        assert_eq!(sum_counter(CLASSIC, "http_request_duration_seconds"), None);
        assert_eq!(sum_counter("x NaN\nx{a=\"1\"} +Inf\n", "x"), None);
        assert_eq!(sum_counter("\u{0}{{garbage", "x"), None);
    }

    #[test]
    fn total_suffix_both_ways() {
        // OpenMetrics names the family without `_total`; its samples carry it.
        assert_eq!(sum_counter(OPENMETRICS, "requests_served"), Some(15.0));
        assert_eq!(
            sum_counter(OPENMETRICS, "requests_served_total"),
            Some(15.0)
        );
        assert_eq!(sum_counter(CLASSIC, "http_requests"), Some(1030.0));
        // An old-style counter without the suffix, asked for with it.
        assert_eq!(
            sum_counter("hits{a=\"1\"} 4\nhits 2\n", "hits_total"),
            Some(6.0)
        );
        // Both present: the exact name only, never counted twice.
        assert_eq!(sum_counter("hits 2\nhits_total 7\n", "hits"), Some(2.0));
    }

    #[test]
    fn parses_nginx_stub_status() {
        assert_eq!(parse_stub_status(STUB_STATUS), Some(31070465.0));
        assert_eq!(
            parse_stub_status("server accepts handled requests\n 1 2\n"),
            None
        );
        assert_eq!(parse_stub_status("server accepts handled requests"), None);
        assert_eq!(parse_stub_status(CLASSIC), None);
        let c = RequestCounter::new("http://x/status".into(), None);
        assert_eq!(c.raw_value(STUB_STATUS), Ok(31070465.0));
        let e = c
            .raw_value("server accepts handled requests\nnope\n")
            .unwrap_err();
        assert!(e.contains("stub_status"), "{e}");
    }

    #[test]
    fn counter_resets_keep_the_count() {
        let mut c = RequestCounter::new("http://x/metrics".into(), None);
        let seen: Vec<u64> = [100.0, 150.0, 20.0, 30.0]
            .into_iter()
            .map(|v| c.advance(v))
            .collect();
        assert_eq!(seen, [0, 50, 70, 80]);
        // Garbage never panics nor goes backwards.
        assert_eq!(c.advance(f64::NAN), 80);
        assert_eq!(c.advance(-5.0), 80);
        assert_eq!(c.advance(4.0), 84);
    }

    #[test]
    fn missing_metric_names_the_counters_there() {
        let c = RequestCounter::new("http://127.0.0.1:9/metrics".into(), None);
        let e = c.raw_value(OPENMETRICS).unwrap_err();
        assert_eq!(
            e,
            "counter \"http_requests_total\" is not in http://127.0.0.1:9/metrics; \
             counters there: requests_served_total"
        );
        let many: String = (0..12).map(|i| format!("c{i:02}_total 1\n")).collect();
        let e = c.raw_value(&many).unwrap_err();
        assert!(
            e.contains("c00_total, c01_total") && e.contains("c09_total"),
            "{e}"
        );
        assert!(!e.contains("c10_total") && e.ends_with("and 2 more"), "{e}");
        let e = c.raw_value("up 1\n").unwrap_err();
        assert!(e.contains("no counter ending in _total"), "{e}");
        let named = RequestCounter::new("http://h/m".into(), Some("requests_served".into()));
        assert_eq!(named.raw_value(OPENMETRICS), Ok(15.0));
    }

    #[test]
    fn reads_a_live_endpoint() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for served in [40, 47] {
                let (mut s, _) = listener.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                    line.clear();
                }
                let body = format!(
                    "# TYPE app_requests_total counter\napp_requests_total{{code=\"200\"}} {served}\n\
                     app_requests_total{{code=\"500\"}} 2\n"
                );
                write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
        });
        let url = format!("http://{addr}/metrics");
        let mut c = RequestCounter::new(url, Some("app_requests".into()));
        assert_eq!(c.read(), Ok(0));
        assert_eq!(c.read(), Ok(7));
        server.join().unwrap();
        // The server is gone: an error naming the URL, and the count (raw 49) is kept.
        let e = c.read().unwrap_err();
        assert!(e.contains(&addr.to_string()), "{e}");
        assert_eq!(c.advance(51.0), 9);
    }
}
