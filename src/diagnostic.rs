//! Problem reports: what `tamtam check`, the configuration loader and the menu loader say
//! when something is wrong, as `file:place: severity: message`.
//!
//! One type for every loader, so the configuration and the menus report in the same shape
//! and the CLI prints them the same way. Loaders never stop at the first problem: they
//! return a `Vec<Diagnostic>` holding every problem they found (ripgrep's config reader and
//! rust-analyzer's parser do the same).

use std::fmt;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The file loads, but something is probably not what its author meant.
    Warning,
    /// The file cannot be used as it is.
    Error,
}

/// One problem in a menu or configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file, as the user named it (relative paths stay relative).
    pub file: String,
    /// Where in the file: a screen (`home`), a section (`tenant moov-ci`), or a line and
    /// column (`12:5`) for a syntax error. `None` when the whole file is concerned.
    pub place: Option<String>,
    pub message: String,
}

impl Diagnostic {
    /// A TOML syntax error in `text` (the contents of `file`), placed at `LINE:COLUMN`.
    pub fn toml(file: &str, text: &str, e: &toml::de::Error) -> Self {
        toml_syntax(file, text, e)
    }

    /// An error at `place` in `file`.
    pub fn error(
        file: impl Into<String>,
        place: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.into(),
            place,
            message: message.into(),
        }
    }

    /// A warning at `place` in `file`.
    pub fn warning(
        file: impl Into<String>,
        place: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, place, message)
        }
    }

    /// Logs the problem at its level (ERROR or WARN), as `serve` and a reload report what
    /// `check` would print.
    pub fn log(&self) {
        match self.severity {
            Severity::Error => tracing::error!("{self}"),
            Severity::Warning => tracing::warn!("{self}"),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A field error from serde, broken up: the long list of what was expected goes on a line
/// of its own (`unknown field `colour``, then `    expected one of `screen`, `kind`, …`).
pub fn readable(message: &str) -> String {
    match message.trim_end().split_once(", expected ") {
        Some((what, expected)) if expected.len() > 40 => {
            format!("{what}\n    expected {expected}")
        }
        _ => message.trim_end().to_string(),
    }
}

/// True when one of `problems` is an error (warnings alone do not stop a load).
pub fn has_errors(problems: &[Diagnostic]) -> bool {
    problems.iter().any(Diagnostic::is_error)
}

/// A TOML error as `file:LINE:COLUMN: error: invalid TOML: message`. The place is where
/// the parser stopped (1-based, columns in characters), so an editor can jump to it. toml's
/// own message does not always name the key (`duplicate key`, `invalid type: …`): the key
/// written at that place is added, with its table (`duplicate key `ttl_secs` in [session]`).
fn toml_syntax(file: &str, text: &str, e: &toml::de::Error) -> Diagnostic {
    // toml's messages may run over several lines ("invalid table header\nexpected ...").
    let joined = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let message = joined.as_str();
    let Some(span) = e.span() else {
        return Diagnostic::error(file, None, format!("invalid TOML: {message}"));
    };
    let (line, column) = line_column(text, span.start);
    let at = text.get(span.clone()).unwrap_or("");
    let line_text = text.lines().nth(line - 1).unwrap_or("");
    let table = text
        .lines()
        .take(line - 1)
        .filter(|l| l.trim_start().starts_with('['))
        .last()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|_| !line_text.trim_start().starts_with('['));
    let within = table.map(|t| format!(" in {t}")).unwrap_or_default();
    let message = if message == "duplicate key" && !at.is_empty() {
        format!("duplicate key `{at}`{within}")
    } else if let Some(key) = key_before(line_text, column) {
        if message.contains(&format!("`{key}`")) {
            format!("{}{message}", in_table(table))
        } else {
            format!("`{key}`{within}: {message}")
        }
    } else {
        format!("{}{message}", in_table(table))
    };
    Diagnostic::error(
        file,
        Some(format!("{line}:{column}")),
        format!("invalid TOML: {}", readable(&message)),
    )
}

/// `in [table]: `, or nothing at the top level.
fn in_table(table: Option<&str>) -> String {
    table.map(|t| format!("in {t}: ")).unwrap_or_default()
}

/// The key of `key = value` when `column` (1-based, in characters) is in the value.
fn key_before(line: &str, column: usize) -> Option<&str> {
    let cut = line
        .char_indices()
        .nth(column - 1)
        .map_or(line.len(), |(i, _)| i);
    let (key, _) = line[..cut].split_once('=')?;
    let key = key.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'');
    (!key.is_empty() && key.chars().all(bare)).then_some(key)
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &self.place {
            Some(p) => write!(f, "{}:{}: {level}: {}", self.file, p, self.message),
            None => write!(f, "{}: {level}: {}", self.file, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_file_place_severity_message() {
        let d = Diagnostic::error("menus/a.toml", Some("home".into()), "no such screen");
        assert_eq!(d.to_string(), "menus/a.toml:home: error: no such screen");
        let w = Diagnostic::warning("config/tamtam.toml", None, "unused");
        assert_eq!(w.to_string(), "config/tamtam.toml: warning: unused");
        assert!(has_errors(&[w.clone(), d]));
        assert!(!has_errors(&[w]));
    }

    #[test]
    fn line_and_column_count_lines_and_characters_from_one() {
        let text = "ab\nçd\n\nx";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 1), (1, 2));
        assert_eq!(line_column(text, 3), (2, 1));
        assert_eq!(line_column(text, 5), (2, 2), "ç is two bytes, one column");
        assert_eq!(line_column(text, 7), (3, 1));
        assert_eq!(line_column(text, 8), (4, 1));
        assert_eq!(line_column(text, 100), (4, 2), "past the end: the end");
        assert_eq!(
            line_column(text, 4),
            (2, 1),
            "inside a character: its start"
        );
    }
}
