//! Request templates, compiled once: `{{seq}}`, `{{rand_int A B}}`, `{{rand_str N}}`,
//! `{{uuid}}`, `{{zipf N S}}`. Filling one is a walk over pre-parsed parts, no parsing.

use std::fmt::Write;

use rand::Rng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Zipf};

/// A template that cannot be compiled.
#[derive(Debug, thiserror::Error)]
#[error("template \"{template}\" at byte {position}: {message}")]
pub struct TemplateError {
    /// The template text.
    pub template: String,
    /// Byte offset of the bad part.
    pub position: usize,
    /// What was wrong and what is allowed.
    pub message: String,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Seq,
    RandInt(i64, i64),
    RandStr(usize),
    Uuid,
    Zipf(Zipf<f64>),
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

/// Longest `{{rand_str LEN}}`: every request carries the string, and a MiB is already more
/// than any header or path a server accepts.
pub const MAX_RAND_STR: usize = 1 << 20;
/// Largest `{{zipf N ...}}`: keys are drawn as floating point, exact up to 2^53.
pub const MAX_ZIPF_N: f64 = 9_007_199_254_740_992.0;

const HELP: &str = "expected one of {{seq}}, {{rand_int MIN MAX}}, {{rand_str LEN}}, {{uuid}}, \
                    {{zipf N EXPONENT}}";

impl Template {
    /// Compiles `text`.
    pub fn compile(text: &str) -> Result<Self, TemplateError> {
        let err = |position: usize, message: String| TemplateError {
            template: text.to_string(),
            position,
            message,
        };
        let mut parts = Vec::new();
        let mut rest = text;
        let mut pos = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| err(pos + open, "`{{` without a closing `}}`".into()))?;
            let words: Vec<&str> = after[..close].split_whitespace().collect();
            let at = pos + open;
            let num = |i: usize| -> Result<f64, TemplateError> {
                words
                    .get(i)
                    .and_then(|w| w.parse::<f64>().ok())
                    .ok_or_else(|| {
                        err(
                            at,
                            format!(
                                "`{{{{{}}}}}` needs a number as argument {i}; {HELP}",
                                words.join(" ")
                            ),
                        )
                    })
            };
            let int = |i: usize| -> Result<i64, TemplateError> {
                words
                    .get(i)
                    .and_then(|w| w.parse::<i64>().ok())
                    .ok_or_else(|| {
                        err(
                            at,
                            format!(
                                "`{{{{{}}}}}` needs a whole number (a 64-bit integer) as argument \
                                 {i}; {HELP}",
                                words.join(" ")
                            ),
                        )
                    })
            };
            let part = match words.as_slice() {
                ["seq"] => Part::Seq,
                ["uuid"] => Part::Uuid,
                ["rand_int", _, _] => {
                    let (a, b) = (int(1)?, int(2)?);
                    if a > b {
                        return Err(err(at, format!("rand_int {a} {b}: MIN must be <= MAX")));
                    }
                    Part::RandInt(a, b)
                }
                ["rand_str", _] => {
                    let n = int(1)?;
                    match usize::try_from(n) {
                        Ok(n) if n <= MAX_RAND_STR => Part::RandStr(n),
                        _ => {
                            return Err(err(
                                at,
                                format!("rand_str {n}: LEN must be from 0 to {MAX_RAND_STR}"),
                            ));
                        }
                    }
                }
                ["zipf", _, _] => {
                    let (n, s) = (num(1)?, num(2)?);
                    // Zipf::new takes NaN and infinities, which then never draw (or panic).
                    let z = Some(())
                        .filter(|_| (1.0..=MAX_ZIPF_N).contains(&n) && s.is_finite())
                        .ok_or_else(|| "out of range".to_string())
                        .and_then(|_| Zipf::new(n, s).map_err(|e| e.to_string()))
                        .map_err(|e| {
                            err(
                                at,
                                format!(
                                    "zipf {n} {s}: {e} (N must be from 1 to 2^53, EXPONENT a \
                                     number >= 0)"
                                ),
                            )
                        })?;
                    Part::Zipf(z)
                }
                _ => {
                    return Err(err(
                        at,
                        format!("unknown `{{{{{}}}}}`: {HELP}", &after[..close]),
                    ));
                }
            };
            parts.push(part);
            let consumed = open + 2 + close + 2;
            rest = &rest[consumed..];
            pos += consumed;
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// The text when the template has no placeholders (so it can be prebuilt once).
    pub fn as_static(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Fills the template for request `seq` into `out` (cleared first).
    pub fn fill(&self, seq: u64, rng: &mut SmallRng, out: &mut String) {
        out.clear();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Seq => {
                    let _ = write!(out, "{seq}");
                }
                Part::RandInt(a, b) => {
                    let _ = write!(out, "{}", rng.random_range(*a..=*b));
                }
                Part::RandStr(n) => {
                    const ABC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
                    out.extend((0..*n).map(|_| ABC[rng.random_range(0..ABC.len())] as char));
                }
                Part::Uuid => {
                    let _ = write!(
                        out,
                        "{}",
                        uuid::Builder::from_random_bytes(rng.random()).into_uuid()
                    );
                }
                Part::Zipf(z) => {
                    let _ = write!(out, "{}", z.sample(rng) as u64);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn fills_each_kind() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut out = String::new();
        let t =
            Template::compile("/k/{{seq}}?r={{rand_int 5 5}}&s={{rand_str 4}}&z={{zipf 10 1.1}}")
                .unwrap();
        t.fill(42, &mut rng, &mut out);
        assert!(out.starts_with("/k/42?r=5&s="), "{out}");
        let z: u64 = out.rsplit('=').next().unwrap().parse().unwrap();
        assert!((1..=10).contains(&z));
        let u = Template::compile("{{uuid}}").unwrap();
        u.fill(0, &mut rng, &mut out);
        assert_eq!(out.len(), 36);
        assert_eq!(
            Template::compile("/plain").unwrap().as_static(),
            Some("/plain")
        );
        assert_eq!(t.as_static(), None);
    }

    #[test]
    fn zipf_prefers_small_keys() {
        let mut rng = SmallRng::seed_from_u64(2);
        let t = Template::compile("{{zipf 1000 1.2}}").unwrap();
        let mut out = String::new();
        let ones = (0..2000)
            .filter(|_| {
                t.fill(0, &mut rng, &mut out);
                out == "1"
            })
            .count();
        assert!(ones > 300, "{ones}");
    }

    #[test]
    fn errors_name_the_position() {
        for (bad, needle) in [
            ("/x/{{seq", "without a closing"),
            ("/x/{{nope}}", "unknown `{{nope}}`"),
            ("{{rand_int 9 1}}", "MIN must be <= MAX"),
            ("{{rand_int a 1}}", "needs a whole number"),
            ("{{rand_int 1.5 3}}", "needs a whole number"),
            ("{{zipf 0 1}}", "zipf"),
            ("{{zipf NaN 1}}", "N must be from 1"),
            ("{{zipf inf 1}}", "N must be from 1"),
            ("{{zipf 10 inf}}", "EXPONENT"),
            ("{{rand_str 1e3}}", "needs a whole number"),
            ("{{rand_str 99999999999}}", "LEN must be from 0"),
            ("{{rand_str -1}}", "LEN must be from 0"),
        ] {
            let e = Template::compile(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        let e = Template::compile("/ab{{bad}}").unwrap_err();
        assert_eq!(e.position, 3);
    }
}
