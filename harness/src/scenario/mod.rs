//! Scenario files (TOML) and flag overrides into one validated [`plan::Plan`].

pub mod error;
pub mod file;
pub mod placeholders;
pub mod plan;
pub mod resolve;
pub mod units;

use std::path::Path;

pub use error::ScenarioError;
use placeholders::Placeholders;
use plan::Plan;

/// Reads, validates and resolves a scenario file, applying `key=value` overrides first.
pub fn load(path: &Path, overrides: &[(String, String)]) -> Result<Plan, ScenarioError> {
    let bytes = std::fs::read(path).map_err(|source| ScenarioError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..good]);
        ScenarioError::at(
            path,
            &text,
            good..good,
            "not UTF-8 text: a scenario file is TOML, which is UTF-8",
        )
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut placeholders = Placeholders::new(dir, placeholders::default_bin_dir());
    parse(path, &text, overrides, &mut placeholders)
}

/// Validates and resolves scenario `text` (as read from `path`).
pub fn parse(
    path: &Path,
    text: &str,
    overrides: &[(String, String)],
    placeholders: &mut Placeholders,
) -> Result<Plan, ScenarioError> {
    // Parse the file as written first, so its own mistakes point into it.
    let file: file::ScenarioFile =
        toml::from_str(text).map_err(|e| ScenarioError::from_toml(path, text, &e))?;
    if overrides.is_empty() {
        return resolve::Resolver::new(path, text, placeholders).plan(file);
    }
    let merged = apply_overrides(text, overrides)?;
    let file: file::ScenarioFile =
        toml::from_str(&merged).map_err(|e| ScenarioError::Override {
            key: overrides
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            message: error::one_line(e.message()),
        })?;
    match resolve::Resolver::new(path, &merged, placeholders).plan(file) {
        Ok(plan) => Ok(plan),
        // Positions in the merged text are nowhere in the file: a mistake the file has on its
        // own is shown where it is in the file; anything else is the overrides'.
        Err(ScenarioError::At { message, .. }) => {
            let original = toml::from_str::<file::ScenarioFile>(text)
                .ok()
                .and_then(|f| {
                    resolve::Resolver::new(path, text, placeholders)
                        .plan(f)
                        .err()
                });
            match original {
                Some(e @ ScenarioError::At { .. }) if e.message() == Some(message.as_str()) => {
                    Err(e)
                }
                _ => Err(ScenarioError::Override {
                    key: overrides
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    message,
                }),
            }
        }
        Err(e) => Err(e),
    }
}

/// Sets dotted keys (`load.connections=64`, `load.phases.1.rate=3000`) in the TOML document.
fn apply_overrides(text: &str, overrides: &[(String, String)]) -> Result<String, ScenarioError> {
    let mut doc =
        toml::Value::Table(toml::from_str(text).map_err(|e| ScenarioError::Override {
            key: String::new(),
            message: e.message().to_string(),
        })?);
    for (key, raw) in overrides {
        let oerr = |message: String| ScenarioError::Override {
            key: key.clone(),
            message,
        };
        // A value is TOML if it parses as such (numbers, booleans, arrays), else a string.
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let mut cur = &mut doc;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            cur = match cur {
                toml::Value::Table(t) if last => {
                    t.insert((*part).to_string(), value.clone());
                    break;
                }
                toml::Value::Table(t) => t
                    .entry((*part).to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new())),
                toml::Value::Array(a) => {
                    let idx: usize = part.parse().map_err(|_| {
                        oerr(format!(
                            "`{part}` must be an index into the array (0, 1, ...)"
                        ))
                    })?;
                    let len = a.len();
                    let slot = a.get_mut(idx).ok_or_else(|| {
                        oerr(format!("index {idx} is past the end (the array has {len})"))
                    })?;
                    if last {
                        *slot = value.clone();
                        break;
                    }
                    slot
                }
                _ => {
                    return Err(oerr(format!(
                        "`{part}` is inside a value that is not a table"
                    )));
                }
            };
        }
    }
    toml::to_string(&doc).map_err(|e| ScenarioError::Override {
        key: String::new(),
        message: e.to_string(),
    })
}
