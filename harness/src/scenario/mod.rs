//! scenario: scenario files (TOML) and CLI flags into one validated `Plan`.

pub mod plan;
