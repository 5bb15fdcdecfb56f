//! Human-readable numbers for verdict messages: bytes as KiB/MiB/GiB, rates per s/min/request.

use crate::scenario::plan::SignalUnit;

/// A value in the signal's unit: `1.02 KiB`, `48.0 MiB`, `12.5`.
pub fn value(v: f64, unit: SignalUnit) -> String {
    match unit {
        SignalUnit::Bytes => bytes(v),
        SignalUnit::Count => count(v),
    }
}

/// A rate: `2.00 MiB/s`, `12.0 KiB/min`; counts per request are shown per 10k requests
/// (`3.00 /10k requests`), the scale at which leaked tasks or fds are readable.
pub fn rate(v: f64, unit: SignalUnit, per: &str) -> String {
    match unit {
        SignalUnit::Bytes => format!("{}/{per}", bytes(v)),
        SignalUnit::Count => {
            let (scale, per) = count_per(per);
            format!("{} /{per}", count(v * scale))
        }
    }
}

/// Scale and label of a count rate.
fn count_per(per: &str) -> (f64, String) {
    if per == "request" {
        (1e4, "10k requests".to_string())
    } else {
        (1.0, per.to_string())
    }
}

/// A rate with its interval in one prefix: `1.02 KiB/request (95 % CI 0.980–1.05 KiB/request)`.
pub fn rate_ci(v: f64, lo: f64, hi: f64, unit: SignalUnit, per: &str, confidence: f64) -> String {
    let conf = format!("{:.0} %", confidence * 100.0);
    let sep = if lo < 0.0 || hi < 0.0 { " to " } else { "–" };
    match unit {
        SignalUnit::Bytes => {
            let (div, name) = prefix(v.abs().max(lo.abs()).max(hi.abs()));
            format!(
                "{} {name}/{per} ({conf} CI {}{sep}{} {name}/{per})",
                sig3(v / div),
                sig3(lo / div),
                sig3(hi / div)
            )
        }
        SignalUnit::Count => {
            let (k, per) = count_per(per);
            format!(
                "{} /{per} ({conf} CI {}{sep}{} /{per})",
                sig3(v * k),
                sig3(lo * k),
                sig3(hi * k)
            )
        }
    }
}

/// Divisor and name of the binary prefix that suits a magnitude.
fn prefix(magnitude: f64) -> (f64, &'static str) {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut div = 1.0;
    let mut i = 0;
    while magnitude.is_finite() && magnitude / div >= 1024.0 && i < UNITS.len() - 1 {
        div *= 1024.0;
        i += 1;
    }
    (div, UNITS[i])
}

/// Bytes with a binary prefix and three significant digits.
pub fn bytes(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v} B");
    }
    let (div, name) = prefix(v.abs());
    format!("{} {name}", sig3(v / div))
}

/// A plain count with three significant digits (integers printed whole).
pub fn count(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    sig3(v)
}

/// A duration in seconds as `42 s`, `3.5 min`, `2.1 h`.
pub fn duration(s: f64) -> String {
    if !s.is_finite() {
        return "never".to_string();
    }
    if s < 120.0 {
        format!("{} s", sig3(s))
    } else if s < 7200.0 {
        format!("{} min", sig3(s / 60.0))
    } else {
        format!("{} h", sig3(s / 3600.0))
    }
}

/// Three significant digits, without exponent for ordinary magnitudes.
pub fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.001 {
        let digits = (2 - a.log10().floor() as i32).max(0) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_pick_binary_prefixes() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1044.5), "1.02 KiB");
        assert_eq!(bytes(2.0 * 1024.0 * 1024.0), "2.00 MiB");
        assert_eq!(bytes(-40.0 * 1024.0 * 1024.0), "-40.0 MiB");
        assert_eq!(bytes(0.0), "0 B");
    }

    #[test]
    fn intervals_share_one_prefix() {
        assert_eq!(
            rate_ci(1044.5, 1003.5, 1075.2, SignalUnit::Bytes, "request", 0.95),
            "1.02 KiB/request (95 % CI 0.980–1.05 KiB/request)"
        );
        assert_eq!(
            rate_ci(0.5, -2.0, 3.0, SignalUnit::Count, "s", 0.9),
            "0.500 /s (90 % CI -2.00 to 3.00 /s)"
        );
    }

    #[test]
    fn rates_and_counts() {
        assert_eq!(
            rate(1024.0, SignalUnit::Bytes, "request"),
            "1.00 KiB/request"
        );
        assert_eq!(rate(0.25, SignalUnit::Count, "s"), "0.250 /s");
        assert_eq!(
            rate(0.0003, SignalUnit::Count, "request"),
            "3.00 /10k requests"
        );
        assert_eq!(count(12.0), "12");
        assert_eq!(count(0.001234), "0.00123");
        assert_eq!(duration(90.0), "90.0 s");
        assert_eq!(duration(600.0), "10.0 min");
        assert_eq!(duration(f64::INFINITY), "never");
    }
}
