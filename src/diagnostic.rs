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

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// True when one of `problems` is an error (warnings alone do not stop a load).
pub fn has_errors(problems: &[Diagnostic]) -> bool {
    problems.iter().any(Diagnostic::is_error)
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
}
