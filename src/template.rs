//! The one brace-template grammar of tamtam: literal text with `{name}` placeholders.
//!
//! Screen texts (`Crédit {credit} F`), lookup keys (`{msisdn}`) and data-source keys and
//! URLs (`conso:{key}`) are all written in it, so a content team learns one rule and reads
//! one set of error messages:
//! - `{name}` is a placeholder; the name is everything between the braces, as written (each
//!   user decides which names it accepts, see [`Template::vars`]);
//! - `{{` and `}}` are a literal `{` and `}`;
//! - a `{` never closed, a lone `}` and an empty `{}` are errors.
//!
//! Parsing happens once, at load; rendering only walks the pieces. Pure: no I/O.

use std::borrow::Cow;
use std::fmt;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text, braces already unescaped.
    Text(String),
    /// A `{name}` placeholder: the name as written between the braces.
    Placeholder(String),
}

/// Why a text is not a template. `Display` gives the one wording used everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `{name` with no `}` after it.
    Unclosed(String),
    /// A `}` that closes nothing.
    LoneClose,
    /// `{}`.
    Empty,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Unclosed(name) => write!(
                f,
                "`{{{name}` is not closed by `}}` (write `{{{{` for a literal brace)"
            ),
            TemplateError::LoneClose => f.write_str("a lone `}` (write `}}` for a literal brace)"),
            TemplateError::Empty => f.write_str("an empty placeholder `{}`"),
        }
    }
}

impl std::error::Error for TemplateError {}

/// A parsed template: text and placeholders, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `{name}` placeholders; `{{` and `}}` are literal braces. The empty text is a
    /// template of one empty literal.
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(TemplateError::Unclosed(name)),
                        }
                    }
                    if name.is_empty() {
                        return Err(TemplateError::Empty);
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Placeholder(name));
                }
                '}' => return Err(TemplateError::LoneClose),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() || pieces.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// True when the template has no placeholder.
    pub fn is_static(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Text(_)))
    }

    /// The placeholder names, in order, as written.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Placeholder(v) => Some(v.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// Fills the placeholders; one without a value renders empty.
    pub fn render<'v>(&self, value: impl Fn(&str) -> Option<Cow<'v, str>>) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(l) => out.push_str(l),
                Piece::Placeholder(v) => {
                    if let Some(val) = value(v) {
                        out.push_str(&val)
                    } else {
                        tracing::debug!(placeholder = %v, "template placeholder has no value");
                    }
                }
            }
        }
        out
    }

    /// The template's text when it is static.
    pub fn as_static(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [Piece::Text(l)] => Some(l),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Piece {
        Piece::Text(s.into())
    }
    fn var(s: &str) -> Piece {
        Piece::Placeholder(s.into())
    }

    #[test]
    fn text_and_placeholders_come_out_in_order_with_escapes_unescaped() {
        let t = Template::parse("conso:{key}/{{x}} {msisdn}").unwrap();
        assert_eq!(
            t.pieces(),
            [text("conso:"), var("key"), text("/{x} "), var("msisdn")]
        );
        assert_eq!(t.vars().collect::<Vec<_>>(), ["key", "msisdn"]);
        assert!(!t.is_static());
        let out = t.render(|v| Some(Cow::Owned(v.to_uppercase())));
        assert_eq!(out, "conso:KEY/{x} MSISDN");
    }

    #[test]
    fn names_are_kept_as_written_for_the_caller_to_judge() {
        let t = Template::parse("{ key }{a b}{next_open:1000}").unwrap();
        assert_eq!(
            t.vars().collect::<Vec<_>>(),
            [" key ", "a b", "next_open:1000"]
        );
    }

    #[test]
    fn static_templates_give_their_text() {
        assert_eq!(Template::parse("").unwrap().as_static(), Some(""));
        assert_eq!(
            Template::parse("a {{b}}").unwrap().as_static(),
            Some("a {b}")
        );
        assert!(Template::parse("a {{b}}").unwrap().is_static());
    }

    #[test]
    fn a_missing_value_renders_empty() {
        let t = Template::parse("[{x}]").unwrap();
        assert_eq!(t.render(|_| None), "[]");
    }

    #[test]
    fn errors_have_one_wording() {
        for (template, expected) in [
            (
                "conso:{key",
                "`{key` is not closed by `}` (write `{{` for a literal brace)",
            ),
            ("conso}", "a lone `}` (write `}}` for a literal brace)"),
            ("a {} b", "an empty placeholder `{}`"),
        ] {
            let err = Template::parse(template).unwrap_err();
            assert_eq!(err.to_string(), expected, "{template}");
        }
    }
}
