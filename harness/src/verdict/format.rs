//! Human units for verdict messages: bytes as KiB/MiB, slopes per second/minute/request.

use crate::scenario::plan::SignalUnit;

/// An amount: `1.5 MiB` for bytes, `1234` for counts.
pub fn amount(v: f64, unit: SignalUnit) -> String {
    match unit {
        SignalUnit::Bytes => bytes(v),
        SignalUnit::Count if v.abs() >= 100.0 || v == v.trunc() => format!("{v:.0}"),
        SignalUnit::Count => format!("{v:.3}"),
    }
}

/// `1.02 KiB`, `2.00 MiB`, `512 B`.
pub fn bytes(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        format!("{v}")
    } else if a >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", v / (1024.0 * 1024.0 * 1024.0))
    } else if a >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", v / (1024.0 * 1024.0))
    } else if a >= 1024.0 {
        format!("{:.2} KiB", v / 1024.0)
    } else {
        format!("{v:.1} B")
    }
}

/// A per-second slope, shown per minute when that reads better.
pub fn per_second(v: f64, unit: SignalUnit) -> String {
    if !v.is_finite() {
        return format!("{v}/s");
    }
    match unit {
        SignalUnit::Bytes if v.abs() < 1024.0 => format!("{}/min", bytes(v * 60.0)),
        SignalUnit::Bytes => format!("{}/s", bytes(v)),
        SignalUnit::Count if v.abs() < 1.0 => format!("{:.2}/min", v * 60.0),
        SignalUnit::Count => format!("{v:.2}/s"),
    }
}

/// A per-request slope; counts are shown per 10 000 requests.
pub fn per_request(v: f64, unit: SignalUnit) -> String {
    if !v.is_finite() {
        return format!("{v}/request");
    }
    match unit {
        SignalUnit::Bytes => format!("{}/request", bytes(v)),
        SignalUnit::Count => format!("{:.1} per 10k requests", v * 10_000.0),
    }
}

/// `42 s`, `3.5 min`, `2.1 h`.
pub fn duration(s: f64) -> String {
    if !s.is_finite() {
        "never".into()
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(1044.0), "1.02 KiB");
        assert_eq!(bytes(2.0 * 1048576.0), "2.00 MiB");
        assert_eq!(per_second(2.0 * 1048576.0, SignalUnit::Bytes), "2.00 MiB/s");
        assert_eq!(per_second(10.0, SignalUnit::Bytes), "600.0 B/min");
        assert_eq!(
            per_request(0.5, SignalUnit::Count),
            "5000.0 per 10k requests"
        );
        assert_eq!(duration(90.0), "90 s");
        assert_eq!(amount(12.0, SignalUnit::Count), "12");
    }
}
