//! Human units shared by scenario files and flags: durations, byte sizes, rates and slopes.
//!
//! Each parser returns a message that says what was expected, so the same text can be shown
//! with a file position (scenario) or a flag name (CLI).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The longest duration any value may have, in seconds (about 31 years): anything longer is a
/// typo, and instants that far ahead overflow the clock's arithmetic.
pub const MAX_DURATION_SECS: f64 = 1e9;

/// Parses `"30s"`, `"1.5m"`, `"250ms"`, `"10µs"`, `"2h"`, `"1m30s"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let err = || {
        format!("expected a duration like \"30s\", \"250ms\", \"2m\" or \"1h30m\", got \"{text}\"")
    };
    if s.is_empty() {
        return Err(err());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = rest[num_len..].trim_start();
        // Not only ASCII letters: `µs` starts with the micro sign (or a Greek mu).
        let unit_len = rest
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(err()),
        };
        total += value * factor;
        rest = rest[unit_len..].trim_start();
    }
    if !total.is_finite() || total > MAX_DURATION_SECS {
        return Err(format!(
            "{}; at most {MAX_DURATION_SECS:e} s (about 31 years)",
            err()
        ));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Writes a duration the way [`parse_duration`] reads it back: `"5s"`, `"250ms"`, `"1m30s"`,
/// `"2h"`, `"10us"`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if !nanos.is_multiple_of(1_000_000_000) {
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            format!("{}us", nanos / 1_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if secs > 0 {
        out.push_str(&format!("{secs}s"));
    }
    out
}

/// Parses `"1024"`, `"64 KiB"`, `"1.5MB"`, `"512 B"` into bytes (KB = 1000, KiB = 1024).
pub fn parse_bytes(text: &str) -> Result<f64, String> {
    let (value, unit) = split_number(text).ok_or_else(|| bytes_expected(text))?;
    let factor = byte_factor(unit).ok_or_else(|| bytes_expected(text))?;
    let bytes = value * factor;
    if bytes < 0.0 || !bytes.is_finite() {
        return Err(bytes_expected(text));
    }
    Ok(bytes)
}

fn bytes_expected(text: &str) -> String {
    format!("expected a size like \"512 B\", \"64 KiB\" or \"1.5 MiB\", got \"{text}\"")
}

fn byte_factor(unit: &str) -> Option<f64> {
    Some(match unit {
        "" | "B" | "b" => 1.0,
        "KB" | "kB" | "k" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        "KiB" | "Ki" => 1024.0,
        "MiB" | "Mi" => 1024.0 * 1024.0,
        "GiB" | "Gi" => 1024.0 * 1024.0 * 1024.0,
        "TB" | "T" => 1e12,
        "TiB" | "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    })
}

/// Splits `"1.5 MiB"` into `(1.5, "MiB")`.
fn split_number(text: &str) -> Option<(f64, &str)> {
    let s = text.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(s.len());
    // `e` only counts as an exponent when digits follow; "1e" would swallow a unit otherwise.
    let (mut num, mut unit) = (&s[..end], s[end..].trim());
    if num.ends_with('e') {
        num = &num[..num.len() - 1];
        unit = s[num.len()..].trim();
    }
    let value: f64 = num.parse().ok()?;
    value.is_finite().then_some((value, unit))
}

/// A slope limit: an amount per unit of time or per request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slope {
    /// Units per second.
    PerSecond(f64),
    /// Units per completed request.
    PerRequest(f64),
}

/// Parses `"1 MiB/min"`, `"0.5/s"`, `"100/min"`, `"64 B/request"`, `"2 KiB/req"`.
///
/// `bytes` says whether the amount may carry a byte unit (memory signals) or is a plain count.
pub fn parse_slope(text: &str) -> Result<Slope, String> {
    let expected = || {
        format!(
            "expected a slope like \"1 MiB/min\", \"0.5/s\" or \"64 B/request\", got \"{text}\""
        )
    };
    let (amount, per) = text.split_once('/').ok_or_else(expected)?;
    let amount = if amount.trim().is_empty() {
        1.0
    } else {
        parse_bytes(amount).map_err(|_| expected())?
    };
    let per = per.trim();
    match per {
        "req" | "request" | "requests" => Ok(Slope::PerRequest(amount)),
        _ => {
            let unit = if per.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                per.to_string()
            } else {
                format!("1{per}")
            };
            let seconds = parse_duration(&unit).map_err(|_| expected())?.as_secs_f64();
            if seconds <= 0.0 {
                return Err(expected());
            }
            Ok(Slope::PerSecond(amount / seconds))
        }
    }
}

/// A duration that deserializes from `"30s"`-style strings (or a number of seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration like \"30s\", \"250ms\" or \"2m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                if v < 0 {
                    return Err(E::custom(format!("a duration cannot be negative, got {v}")));
                }
                if v as f64 > MAX_DURATION_SECS {
                    return Err(E::custom(format!(
                        "expected seconds from 0 to {MAX_DURATION_SECS:e} (about 31 years), got {v}"
                    )));
                }
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                if !(0.0..=MAX_DURATION_SECS).contains(&v) {
                    return Err(E::custom(format!(
                        "expected seconds from 0 to {MAX_DURATION_SECS:e} (about 31 years), got {v}"
                    )));
                }
                Ok(HumanDuration(Duration::from_secs_f64(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A byte size that deserializes from `"64 KiB"`-style strings or a plain integer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HumanBytes(pub u64);

impl<'de> Deserialize<'de> for HumanBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanBytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size like \"64 KiB\" or a number of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_bytes(v)
                    .map(|b| HumanBytes(b as u64))
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(HumanBytes)
                    .map_err(|_| E::custom(format!("a size cannot be negative, got {v}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A slope limit that deserializes from `"1 MiB/min"`-style strings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HumanSlope(pub Slope);

impl<'de> Deserialize<'de> for HumanSlope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanSlope;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a slope like \"1 MiB/min\", \"0.5/s\" or \"64 B/request\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_slope(v).map(HumanSlope).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// A plain count or a byte size: `3`, `0.5`, `"64 KiB"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HumanAmount(pub f64);

impl<'de> Deserialize<'de> for HumanAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanAmount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a size like \"64 KiB\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_bytes(v).map(HumanAmount).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                if v >= 0.0 && v.is_finite() {
                    Ok(HumanAmount(v))
                } else {
                    Err(E::custom(format!("expected a number >= 0, got {v}")))
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_written() {
        for text in ["5s", "250ms", "1m30s", "2h", "10us", "1d2h", "0s", "7ns"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), text);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration(" 2h ").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("10µs").unwrap(), Duration::from_micros(10));
        assert_eq!(parse_duration("10 μs").unwrap(), Duration::from_micros(10));
        assert_eq!(parse_duration("10us").unwrap(), Duration::from_micros(10));
        for bad in [
            "",
            "30",
            "s",
            "3 parsecs",
            "-1s",
            "1e400s",
            "10µ",
            "1000000001s",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("expected a duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024.0);
        assert_eq!(parse_bytes("64 KiB").unwrap(), 65536.0);
        assert_eq!(parse_bytes("1.5MB").unwrap(), 1.5e6);
        assert_eq!(parse_bytes("1e3 B").unwrap(), 1000.0);
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("-5 MiB").is_err());
    }

    #[test]
    fn slopes() {
        assert_eq!(
            parse_slope("1 MiB/min").unwrap(),
            Slope::PerSecond(1024.0 * 1024.0 / 60.0)
        );
        assert_eq!(parse_slope("0.5/s").unwrap(), Slope::PerSecond(0.5));
        assert_eq!(parse_slope("/10s").unwrap(), Slope::PerSecond(0.1));
        assert_eq!(
            parse_slope("64 B/request").unwrap(),
            Slope::PerRequest(64.0)
        );
        assert_eq!(parse_slope("2/req").unwrap(), Slope::PerRequest(2.0));
        for bad in ["1 MiB", "1 MiB/fortnight", "x/s", "1/0s"] {
            assert!(parse_slope(bad).is_err(), "{bad}");
        }
    }
}
