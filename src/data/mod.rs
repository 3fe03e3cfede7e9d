//! Data sources for `lookup` screens: where a subscriber's consumption comes from.
//!
//! One interface, [`Source::lookup`], async so that network sources fit the same call.
//! Three kinds, one file each, each owning its configuration type, defaults and checks
//! (the pattern outbox senders follow):
//! - `file`: a CSV read once at start-up into memory ([`FileSource`]);
//! - `redis`: one hash per subscriber, read with one `HGETALL` ([`RedisSource`]);
//! - `http`: a JSON API, fields picked by JSON Pointer, with retries, a circuit breaker
//!   (`breaker.rs`) and a short cache (`cache.rs`) ([`HttpSource`]).
//!
//! `config.rs` holds what their configurations share (the table as written, the checking
//! context, the `fields` mapping); this file holds the two closed enums over the kinds ([`SourceConfig`] as
//! configured, [`Source`] ready to look up), the dispatch of checks on `kind`
//! ([`check_source`]), and what the kinds share: key templates (`conso:{key}`), `${NAME}`
//! environment expansion, [`Secret`] values and the rendering of JSON values as text.
//!
//! A lookup never fails loudly: a network source turns every problem into
//! [`LookupOutcome::Failed`] within its own time budget and logs it once, with its cause
//! (one `warn!` per failed lookup; the key masked, secrets never logged).
//!
//! Nothing here imports `crate::config`: the configuration calls in (`check_source`).

mod breaker;
mod cache;
mod config;
mod file;
mod http;
mod redis;

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use crate::menu::LookupOutcome;
use crate::template::Piece;

pub use self::breaker::BreakerState;
pub use self::config::{is_field_name, resolve_path, FieldMap, RawSource, SourceContext};
pub use self::file::FileSource;
pub use self::http::{HttpSource, HttpSourceConfig, HTTP_SOURCE_TIMEOUT};
pub use self::redis::{RedisSource, RedisSourceConfig, REDIS_SOURCE_TIMEOUT};
pub use crate::secret::Secret;

/// A configured data source.
#[derive(Debug, Clone)]
pub enum Source {
    File(Arc<FileSource>),
    Redis(Arc<RedisSource>),
    Http(Arc<HttpSource>),
}

impl Source {
    /// Builds the source `config` describes for `tenant`: reads a file, prepares a client.
    /// Network sources connect on first use, so the gateway starts while they are down.
    pub fn from_config(tenant: &str, config: &SourceConfig) -> Result<Source, String> {
        Ok(match config {
            SourceConfig::File { path, .. } => Source::File(Arc::new(FileSource::from_path(path)?)),
            SourceConfig::Redis(c) => Source::Redis(Arc::new(RedisSource::new(tenant, c)?)),
            SourceConfig::Http(c) => Source::Http(Arc::new(HttpSource::new(tenant, c)?)),
        })
    }

    /// Looks a record up by key. Network sources bound the time themselves and log their
    /// failures; the caller only turns the outcome into a screen.
    pub async fn lookup(&self, key: &str) -> LookupOutcome {
        match self {
            Source::File(f) => f.lookup(key),
            Source::Redis(r) => r.lookup(key).await,
            Source::Http(h) => h.lookup(key).await,
        }
    }

    /// The field names records carry, for `tamtam check`: a file's columns, a network
    /// source's `fields` mapping (empty when every field is passed as is: unknown).
    pub fn fields(&self) -> Vec<String> {
        match self {
            Source::File(f) => f.fields.clone(),
            Source::Redis(r) => r.fields(),
            Source::Http(h) => h.fields(),
        }
    }

    /// The kind as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::File(_) => "file",
            Source::Redis(_) => "redis",
            Source::Http(_) => "http",
        }
    }
}

/// A data source as configured.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// A CSV file; the first column is the key.
    File { name: String, path: PathBuf },
    /// One Redis hash per subscriber.
    Redis(RedisSourceConfig),
    /// A JSON API.
    Http(HttpSourceConfig),
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::File { name, .. } => name,
            SourceConfig::Redis(r) => &r.name,
            SourceConfig::Http(h) => &h.name,
        }
    }

    /// The kind as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::File { .. } => "file",
            SourceConfig::Redis(_) => "redis",
            SourceConfig::Http(_) => "http",
        }
    }
}

/// The kinds of data source, as written in `kind`.
pub const SOURCE_KINDS: &[&str] = &["file", "redis", "http"];

/// The options a kind of source takes (`name` and `kind` aside); `None` for an unknown kind.
pub fn source_options(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "file" => Some(file::OPTIONS),
        "redis" => Some(redis::OPTIONS),
        "http" => Some(http::OPTIONS),
        _ => None,
    }
}

/// Checks one `[[tenant.source]]`: options of another kind and unknown ones, then the
/// kind's own checks. Every problem comes back, each prefixed with the source's name.
pub fn check_source(s: RawSource, cx: &SourceContext) -> Result<SourceConfig, Vec<String>> {
    let Some(options) = source_options(&s.kind) else {
        return Err(vec![format!(
            "data source `{}`: unknown kind `{}` (expected file, redis or http)",
            s.name, s.kind
        )]);
    };
    let mut problems = s.misplaced(options);
    let source = match s.kind.as_str() {
        "file" => file::check(&s, cx, &mut problems).map(|path| SourceConfig::File {
            name: s.name.clone(),
            path,
        }),
        "redis" => redis::check(&s, cx, &mut problems).map(SourceConfig::Redis),
        _ => http::check(&s, cx, &mut problems).map(SourceConfig::Http),
    };
    match source {
        Some(source) if problems.is_empty() => Ok(source),
        _ => Err(problems
            .into_iter()
            .map(|p| format!("data source `{}`: {p}", s.name))
            .collect()),
    }
}

/// The menu field names a `fields` mapping gives (none without a mapping: every field of
/// the record is passed as is, so the names are unknown until a lookup).
fn field_names(fields: Option<&FieldMap>) -> Vec<String> {
    fields
        .into_iter()
        .flatten()
        .map(|(name, _)| name.clone())
        .collect()
}

/// A text with the lookup key in it: `conso:{key}`, `https://api/v1/usage/{msisdn}`.
///
/// `{key}` and its alias `{msisdn}` are the lookup key (the caller's number unless the
/// screen says otherwise); `{{` and `}}` are literal braces. Any other placeholder is an
/// error, and so is a template without the key (every subscriber would get one record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Key,
}

/// What [`KeyTemplate::render_url`] leaves as is: RFC 3986's unreserved characters.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl KeyTemplate {
    /// Parses a template; the message says what is wrong.
    pub fn parse(template: &str) -> Result<KeyTemplate, String> {
        // The brace grammar (`{{`, `}}`, `{name}`) is the one menus use.
        let parsed = crate::template::Template::parse(template).map_err(|e| e.to_string())?;
        let mut parts = Vec::new();
        for piece in parsed.pieces() {
            match piece {
                Piece::Text(text) => parts.push(Part::Text(text.clone())),
                Piece::Placeholder(name) => match name.trim() {
                    "key" | "msisdn" => parts.push(Part::Key),
                    other => {
                        return Err(format!(
                            "unknown placeholder `{{{other}}}` (expected {{key}} or {{msisdn}}; write {{{{ for a literal brace)"
                        ))
                    }
                },
            }
        }
        if !parts.contains(&Part::Key) {
            return Err("the template never uses the key: write {key} (or {msisdn}) in it".into());
        }
        Ok(KeyTemplate {
            source: template.to_string(),
            parts,
        })
    }

    /// The template with the key as is (a Redis key).
    pub fn render(&self, key: &str) -> String {
        self.render_with(key, Cow::Borrowed)
    }

    /// The template with the key percent-encoded (a URL): only `A-Z a-z 0-9 - . _ ~` are
    /// left as is, so `+687700001` becomes `%2B687700001` and `/` or `?` cannot change the
    /// URL's structure.
    pub fn render_url(&self, key: &str) -> String {
        self.render_with(key, |k| utf8_percent_encode(k, URL_COMPONENT).into())
    }

    fn render_with<'k>(&self, key: &'k str, encode: impl Fn(&'k str) -> Cow<'k, str>) -> String {
        let mut out = String::with_capacity(self.source.len() + key.len() * 3);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Key => out.push_str(&encode(key)),
            }
        }
        out
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Logs a failed lookup once, with its cause (the key masked), and gives `Failed`.
pub(crate) fn lookup_failed(
    tenant: &str,
    source: &str,
    kind: &str,
    key: &str,
    cause: &str,
) -> crate::menu::LookupOutcome {
    tracing::warn!(
        tenant = %tenant,
        source = %source,
        kind,
        key = %crate::message::mask_msisdn(key),
        cause,
        "lookup failed"
    );
    crate::menu::LookupOutcome::Failed
}

/// Replaces every `${NAME}` in `text` with the value `lookup` gives for `NAME` (the
/// environment, when the configuration is loaded). A `$` not followed by `{` is kept.
/// Every problem is reported: an unset or empty variable (named, its value never shown),
/// a bad name, an unclosed `${`.
pub fn expand_env(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            problems.push("`${` is not closed by `}`".to_string());
            rest = "";
            break;
        };
        let name = &after[..end];
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            problems.push(format!(
                "`${{{name}}}` is not an environment variable name (letters, digits and _)"
            ));
        } else {
            match lookup(name).filter(|v| !v.is_empty()) {
                Some(v) => out.push_str(&v),
                None => problems.push(format!("environment variable `{name}` is not set")),
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// A JSON value as the text a screen shows: strings as they are, numbers as written
/// (`48`, `12.5`), booleans as `true`/`false`. `null`, arrays and objects have no text.
pub fn json_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The fields of a JSON document: with a mapping, each menu field from its JSON Pointer
/// (RFC 6901; a pointer that leads nowhere, or to something without text, leaves the
/// field absent); without, every member of a top-level object that has a text.
pub fn json_fields(doc: &Value, mapping: Option<&FieldMap>) -> Vec<(String, String)> {
    match mapping {
        Some(mapping) => mapping
            .iter()
            .filter_map(|(name, pointer)| {
                let v = doc.pointer(pointer)?;
                Some((name.clone(), json_text(v)?))
            })
            .collect(),
        None => match doc {
            Value::Object(members) => members
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), json_text(v)?)))
                .collect(),
            _ => Vec::new(),
        },
    }
}

/// Checks a JSON Pointer's syntax (RFC 6901): empty (the whole document) or `/`-separated
/// tokens where `~` is only ever followed by `0` or `1`.
pub fn check_json_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(format!(
            "`{pointer}` is not a JSON Pointer: it must start with / (e.g. /usage/voice)"
        ));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "`{pointer}` is not a JSON Pointer: `~` must be followed by 0 (for ~) or 1 (for /)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_templates_substitute_the_key_and_its_alias() {
        let t = KeyTemplate::parse("conso:{key}").unwrap();
        assert_eq!(t.render("+687700001"), "conso:+687700001");
        let t = KeyTemplate::parse("{msisdn}/{key}:{{x}}").unwrap();
        assert_eq!(t.render("7"), "7/7:{x}");
        assert_eq!(t.as_str(), "{msisdn}/{key}:{{x}}");
        assert_eq!(KeyTemplate::parse("{ key }").unwrap().render("k"), "k");
    }

    #[test]
    fn url_templates_percent_encode_the_key() {
        let t = KeyTemplate::parse("http://api/v1/usage/{msisdn}?line={key}").unwrap();
        assert_eq!(
            t.render_url("+687 70/0?a=b&c"),
            "http://api/v1/usage/%2B687%2070%2F0%3Fa%3Db%26c?line=%2B687%2070%2F0%3Fa%3Db%26c"
        );
        assert_eq!(
            t.render_url("a-b.c_d~e"),
            "http://api/v1/usage/a-b.c_d~e?line=a-b.c_d~e"
        );
        assert_eq!(
            KeyTemplate::parse("x/{key}").unwrap().render_url("é"),
            "x/%C3%A9"
        );
    }

    #[test]
    fn bad_key_templates_say_why() {
        for (template, needle) in [
            ("conso:{name}", "unknown placeholder `{name}`"),
            ("conso:{key", "not closed"),
            ("conso}", "lone `}`"),
            ("conso:all", "never uses the key"),
            ("", "never uses the key"),
        ] {
            let err = KeyTemplate::parse(template).unwrap_err();
            assert!(err.contains(needle), "{template}: {err}");
        }
    }

    #[test]
    fn environment_variables_are_expanded_and_missing_ones_named() {
        let env = |name: &str| match name {
            "BILLING_TOKEN" => Some("s3cret".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(
            expand_env("Bearer ${BILLING_TOKEN}", &env).unwrap(),
            "Bearer s3cret"
        );
        assert_eq!(expand_env("$5 and $HOME", &env).unwrap(), "$5 and $HOME");
        let problems =
            expand_env("${NOPE} ${EMPTY} ${1X} ${BILLING_TOKEN} ${OPEN", &env).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("`NOPE` is not set"), "{problems:?}");
        assert!(problems[1].contains("`EMPTY` is not set"), "{problems:?}");
        assert!(problems[2].contains("`${1X}`"), "{problems:?}");
        assert!(problems[3].contains("not closed"), "{problems:?}");
        assert!(
            problems.iter().all(|p| !p.contains("s3cret")),
            "{problems:?}"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = Secret::new("Bearer s3cret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "Bearer s3cret");
    }

    #[test]
    fn json_pointers_pick_fields_and_render_them_as_text() {
        let doc = json!({
            "usage": { "voice": { "minutes": 48 }, "sms": 60, "data_mb": 8042.5 },
            "balance": "1737",
            "active": true,
            "plan": null,
            "a/b": { "m~n": "escaped" },
            "list": [10, 20],
        });
        let mapping: FieldMap = [
            ("minutes", "/usage/voice/minutes"),
            ("sms", "/usage/sms"),
            ("data_mb", "/usage/data_mb"),
            ("credit", "/balance"),
            ("active", "/active"),
            ("plan", "/plan"),
            ("escaped", "/a~1b/m~0n"),
            ("second", "/list/1"),
            ("gone", "/usage/voice/seconds"),
            ("object", "/usage"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let fields = json_fields(&doc, Some(&mapping));
        let expect: Vec<(String, String)> = [
            ("minutes", "48"),
            ("sms", "60"),
            ("data_mb", "8042.5"),
            ("credit", "1737"),
            ("active", "true"),
            ("escaped", "escaped"),
            ("second", "20"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(fields, expect);
    }

    #[test]
    fn without_a_mapping_top_level_members_with_a_text_are_fields() {
        let doc = json!({ "minutes": 3, "sms": "4", "nested": { "x": 1 }, "none": null });
        let mut fields = json_fields(&doc, None);
        fields.sort();
        assert_eq!(
            fields,
            vec![
                ("minutes".to_string(), "3".to_string()),
                ("sms".to_string(), "4".to_string())
            ]
        );
        assert!(json_fields(&json!([1, 2]), None).is_empty());
    }

    #[test]
    fn json_pointer_syntax_is_checked() {
        assert!(check_json_pointer("").is_ok());
        assert!(check_json_pointer("/a/b~0~1/0").is_ok());
        assert!(check_json_pointer("usage/voice")
            .unwrap_err()
            .contains("must start with /"));
        assert!(check_json_pointer("/a~2").unwrap_err().contains("`~`"));
        assert!(check_json_pointer("/a~").is_err());
    }
}
