//! Screen templates: the crate's one brace grammar ([`crate::template`]) with the names a
//! menu accepts (`letters`, digits, `_`, and `:` as in `{next_open:1000}`).
//!
//! Parsed once at load (screen `text`, lookup `key`); the engine only renders.

pub use crate::template::Template;

/// Parses a screen text or lookup key; the message says what is wrong.
pub fn parse(s: &str) -> Result<Template, String> {
    let template = Template::parse(s).map_err(|e| e.to_string())?;
    if let Some(bad) = template.vars().find(|v| {
        !v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }) {
        return Err(format!(
            "placeholder `{{{bad}}}` may hold only letters, digits, `_` and `:` (write `{{{{` for a literal brace)"
        ));
    }
    Ok(template)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[test]
    fn template_parses_and_renders() {
        let t = parse("Crédit {credit} F, {{brut}}").unwrap();
        assert!(!t.is_static());
        assert_eq!(t.vars().collect::<Vec<_>>(), ["credit"]);
        let out = t.render(|v| (v == "credit").then_some(Cow::Borrowed("1 500")));
        assert_eq!(out, "Crédit 1 500 F, {brut}");
        assert!(parse("a {b").is_err());
        assert!(parse("a {b c}").is_err());
        assert_eq!(
            parse("{next_open:1000}")
                .unwrap()
                .vars()
                .collect::<Vec<_>>(),
            ["next_open:1000"]
        );
        assert!(parse("a }").is_err());
        assert!(parse("{}").is_err());
        assert_eq!(parse("").unwrap().as_static(), Some(""));
    }

    #[test]
    fn a_name_with_a_space_is_refused_with_the_placeholder_quoted() {
        assert_eq!(
            parse("a {b c}").unwrap_err(),
            "placeholder `{b c}` may hold only letters, digits, `_` and `:` (write `{{` for a literal brace)"
        );
        assert_eq!(
            parse("a {b").unwrap_err(),
            "`{b` is not closed by `}` (write `{{` for a literal brace)"
        );
    }
}
