//! Scenario errors that name the file, line and column, and say what was expected.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// Anything wrong with a scenario file or an override of it (exit 65).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A mistake at a known position.
    #[error("{}:{line}:{column}: {message}", path.display())]
    At {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        column: usize,
        /// What was wrong and what is expected.
        message: String,
    },
    /// A `--set key=value` override that does not fit.
    #[error("--set {key}: {message}")]
    Override {
        /// The dotted key.
        key: String,
        /// What was wrong.
        message: String,
    },
}

impl ScenarioError {
    /// An error at a byte span of `text`.
    pub fn at(path: &Path, text: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let (line, column) = line_column(text, span.start);
        Self::At {
            path: path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    /// What was wrong, for an error at a position.
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::At { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Converts a TOML parse/deserialize error, keeping its position (on one line).
    pub fn from_toml(path: &Path, text: &str, err: &toml::de::Error) -> Self {
        let message = one_line(err.message());
        let span = err.span().unwrap_or(0..0);
        Self::at(path, text, span, message)
    }
}

/// Text of several lines as one: the lines joined with `; `.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 10), (2, 4));
        assert_eq!(line_column(text, 999), (3, 1));
    }
}
