//! The goroutine count each tick without the goroutine profile, and the dumps taken rarely.
//!
//! A goroutine profile stops the world and copies every goroutine's stack: at 170 000
//! goroutines one `debug=1` request allocates ~46 MiB in the target. The count comes instead
//! from what costs the target nothing more: `go_goroutines` on a Prometheus page or a count
//! in expvar the probes read anyway, else the pprof index page (`/debug/pprof/`, whose
//! goroutine row is `runtime.NumGoroutine()`). Only a target that serves neither has its count
//! read from the profile, at most every `goroutine_profile_every`.

use std::time::{Duration, Instant};

use super::{HTTP_TIMEOUT, http_get, runtime};

/// Largest goroutine dump kept (`debug=2` at ~250 bytes a goroutine: a million goroutines).
pub const MAX_DUMP: usize = 256 << 20;

/// How long a dump may take to come (the target formats every goroutine).
pub const DUMP_TIMEOUT: Duration = Duration::from_secs(60);

/// The per-tick goroutine count of one target.
#[derive(Debug)]
pub struct GoroutineProbe {
    /// `/debug/pprof/goroutine`, without a query.
    base: String,
    /// Least time between two profile reads when the profile is the only source.
    every: Duration,
    /// When the profile was last read for a count.
    last_profile: Option<Instant>,
    /// The index page could not be read: the profile is the source.
    no_index: bool,
}

/// The URL without its query.
fn base_of(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The full dump (`debug=2`, with `created by` lines) of a goroutine profile URL.
pub fn dump_url(goroutine_url: &str) -> String {
    format!("{}?debug=2", base_of(goroutine_url))
}

/// The pprof index page next to a goroutine profile URL (`/debug/pprof/`).
pub fn index_url(goroutine_url: &str) -> String {
    let base = base_of(goroutine_url).trim_end_matches('/');
    match base.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/"),
        None => format!("{base}/"),
    }
}

/// The goroutine count on a pprof index page: the cell before the `goroutine` link,
/// `<tr><td>207</td><td><a href='goroutine?debug=1'>goroutine</a></td></tr>`.
pub fn parse_index(html: &str) -> Option<f64> {
    let link = html
        .find("href='goroutine?")
        .or_else(|| html.find("href=\"goroutine?"))?;
    let cell = html[..link].rsplit("<td>").nth(1)?;
    cell.split('<').next()?.trim().parse().ok()
}

impl GoroutineProbe {
    /// A probe of `goroutine_url`, reading the profile for a count at most every `every`.
    pub fn new(goroutine_url: &str, every: Duration) -> Self {
        Self {
            base: base_of(goroutine_url).to_string(),
            every,
            last_profile: None,
            no_index: false,
        }
    }

    /// This tick's count: `known` when a page the probes read anyway had it, else the index
    /// page, else the profile when `every` has passed since its last read (None until then).
    pub fn count(&mut self, known: Option<f64>) -> Result<Option<f64>, String> {
        if known.is_some() {
            return Ok(known);
        }
        if !self.no_index {
            let page = http_get(&index_url(&self.base), HTTP_TIMEOUT)
                .ok()
                .and_then(|b| parse_index(&String::from_utf8_lossy(&b)));
            match page {
                Some(n) => return Ok(Some(n)),
                None => self.no_index = true,
            }
        }
        if self.last_profile.is_some_and(|t| t.elapsed() < self.every) {
            return Ok(None);
        }
        self.last_profile = Some(Instant::now());
        let body = http_get(&format!("{}?debug=1", self.base), HTTP_TIMEOUT)?;
        runtime::parse_goroutines(&body).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_the_index_page() {
        let u = "http://127.0.0.1:6060/debug/pprof/goroutine?debug=1";
        assert_eq!(
            dump_url(u),
            "http://127.0.0.1:6060/debug/pprof/goroutine?debug=2"
        );
        assert_eq!(index_url(u), "http://127.0.0.1:6060/debug/pprof/");
        // Go 1.19's index page, as targets/go/leaktarget serves it.
        let page = "<table>\n<thead><td>Count</td><td>Profile</td></thead>\n\
                    <tr><td>4</td><td><a href='block?debug=1'>block</a></td></tr>\n\
                    <tr><td>207</td><td><a href='goroutine?debug=1'>goroutine</a></td></tr>\n\
                    <tr><td>9</td><td><a href='heap?debug=1'>heap</a></td></tr>\n";
        assert_eq!(parse_index(page), Some(207.0));
        assert_eq!(parse_index("<html>no profiles</html>"), None);
    }

    #[test]
    fn a_known_count_costs_no_request_and_the_profile_is_read_on_its_schedule() {
        // Nothing listens on port 9 (discard): every request fails at once.
        let mut p = GoroutineProbe::new(
            "http://127.0.0.1:9/debug/pprof/goroutine",
            Duration::from_secs(3600),
        );
        assert_eq!(p.count(Some(12.0)), Ok(Some(12.0)));
        assert!(!p.no_index, "a known count asks nothing");
        // No index page: the profile is tried once, then not again within `every`.
        assert!(p.count(None).is_err());
        assert!(p.no_index);
        assert_eq!(p.count(None), Ok(None));
    }
}
