//! What is wrong with a webhook, in words that never repeat what the client sent.
//!
//! An [`AdapterError`] reaches the rejection log line (INFO) and the 4xx body, so its text
//! names the field and the problem, never the value: a value may be a subscriber's number
//! or message. serde quotes values in its errors (`invalid type: integer `2250700000001``),
//! so [`json_problem`] rewrites them, and [`mask_numbers`] masks anything that still looks
//! like a phone number (a field *name* is the client's choice too).

use std::sync::LazyLock;

use crate::message::mask_numbers;

/// What is wrong with a webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("malformed body; {0}")]
    Malformed(String),
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// The body did not arrive whole within the server's body-read timeout (milliseconds).
    #[error("body not received within {0} ms")]
    BodyTimeout(u64),
    #[error("body is not valid UTF-8")]
    NotUtf8,
    #[error("method {0} not allowed; use POST")]
    Method(String),
    #[error("forbidden; {0}")]
    Forbidden(String),
    #[error("unauthorized; {0}")]
    Unauthorized(String),
}

impl AdapterError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            AdapterError::TooLarge(_) => 413,
            AdapterError::BodyTimeout(_) => 408,
            AdapterError::Method(_) => 405,
            AdapterError::Forbidden(_) => 403,
            AdapterError::Unauthorized(_) => 401,
            _ => 400,
        }
    }

    /// A stable code for the JSON dialects.
    pub fn code(&self) -> &'static str {
        match self {
            AdapterError::MissingField(_) => "missing_field",
            AdapterError::InvalidField { .. } => "invalid_field",
            AdapterError::Malformed(_) => "malformed",
            AdapterError::TooLarge(_) => "too_large",
            AdapterError::BodyTimeout(_) => "timeout",
            AdapterError::NotUtf8 => "not_utf8",
            AdapterError::Method(_) => "method_not_allowed",
            AdapterError::Forbidden(_) => "forbidden",
            AdapterError::Unauthorized(_) => "unauthorized",
        }
    }

    /// The text for dialects whose error body is a screen: French, GSM-7, and the detail
    /// an operator needs.
    pub fn to_subscriber(&self) -> String {
        let detail = match self {
            AdapterError::MissingField(f) => format!("champ {f} manquant"),
            AdapterError::InvalidField { field, reason } => {
                format!("champ {field} invalide ({reason})")
            }
            AdapterError::Malformed(m) => format!("format illisible ({m})"),
            AdapterError::TooLarge(n) => format!("corps de plus de {n} octets"),
            AdapterError::BodyTimeout(ms) => format!("corps non reçu en {ms} ms"),
            AdapterError::NotUtf8 => "texte non UTF-8".to_string(),
            AdapterError::Method(m) => format!("methode {m} refusee, utilisez POST"),
            AdapterError::Forbidden(why) => format!("acces refuse ({why})"),
            AdapterError::Unauthorized(why) => format!("authentification requise ({why})"),
        };
        crate::text::transliterate(&format!("Demande invalide : {detail}.")).into_owned()
    }

    /// A JSON body that could not be read: [`AdapterError::NotUtf8`] when it is not text,
    /// else [`AdapterError::Malformed`] naming the field of `fields` whose value has the
    /// wrong type, or with serde's words, values left out.
    pub(crate) fn json(
        body: &[u8],
        e: &serde_json::Error,
        fields: &[(&'static str, JsonKind)],
    ) -> AdapterError {
        if std::str::from_utf8(body).is_err() {
            return AdapterError::NotUtf8;
        }
        if let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice(body) {
            for &(name, kind) in fields {
                if let Some(v) = obj.get(name).filter(|v| !kind.accepts(v)) {
                    return AdapterError::Malformed(format!(
                        "field `{name}` must be {}, not {}",
                        kind.describe(),
                        describe(v)
                    ));
                }
            }
        }
        AdapterError::Malformed(json_problem(e))
    }
}

/// What a JSON field must hold (`null` is always accepted: the field is then absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonKind {
    String,
    WholeNumber,
}

impl JsonKind {
    fn accepts(self, v: &serde_json::Value) -> bool {
        v.is_null()
            || match self {
                JsonKind::String => v.is_string(),
                JsonKind::WholeNumber => v.is_u64(),
            }
    }

    fn describe(self) -> &'static str {
        match self {
            JsonKind::String => "a string",
            JsonKind::WholeNumber => "a whole number",
        }
    }
}

/// A JSON value's kind, never the value.
fn describe(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// serde's description of a JSON problem, with the values it quotes left out: `invalid
/// type: integer `2250700000001`, expected a string at line 1 column 26` becomes `invalid
/// type: integer, expected a string at line 1 column 26`. Field names stay (they say what
/// was wrong), with anything that looks like a phone number masked.
pub(crate) fn json_problem(e: &serde_json::Error) -> String {
    // serde's `Unexpected` values: a type word, then the value in backticks or quotes.
    static VALUE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r#"(integer|floating point|boolean|character|string|variant|value) (`[^`]*`|"(?:[^"\\]|\\.)*")"#,
        )
        .expect("a valid regex")
    });
    mask_numbers(&VALUE.replace_all(&e.to_string(), "$1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(json: &str) -> String {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct R {
            msisdn: Option<String>,
            seq: Option<u64>,
        }
        json_problem(&serde_json::from_str::<R>(json).unwrap_err())
    }

    #[test]
    fn serde_problems_name_the_type_but_never_the_value() {
        let p = problem(r#"{"msisdn":2250700000001}"#);
        assert_eq!(
            p,
            "invalid type: integer, expected a string at line 1 column 23"
        );
        let p = problem(r#"{"seq":"2250700000001"}"#);
        assert!(p.starts_with("invalid type: string, expected u64"), "{p}");
        let p = problem(r#"{"seq":"a \"quoted\" text"}"#);
        assert!(!p.contains("quoted"), "{p}");
        let p = problem(r#"{"seq":-1}"#);
        assert!(p.starts_with("invalid value: integer, expected u64"), "{p}");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_its_field() {
        let body = br#"{"msisdn":2250700000001,"seq":-1}"#;
        let e = serde_json::from_slice::<std::collections::HashMap<String, String>>(body);
        let fields = [("msisdn", JsonKind::String), ("seq", JsonKind::WholeNumber)];
        let got = AdapterError::json(body, &e.unwrap_err(), &fields);
        assert_eq!(
            got,
            AdapterError::Malformed("field `msisdn` must be a string, not a number".into())
        );
        let body = br#"{"msisdn":"1","seq":-1}"#;
        let e = serde_json::from_slice::<std::collections::HashMap<String, String>>(body);
        assert_eq!(
            AdapterError::json(body, &e.unwrap_err(), &fields).to_string(),
            "malformed body; field `seq` must be a whole number, not a number"
        );
        assert_eq!(
            AdapterError::json(b"\xff", &e_syntax(), &fields),
            AdapterError::NotUtf8
        );
    }

    fn e_syntax() -> serde_json::Error {
        serde_json::from_str::<serde_json::Value>("{").unwrap_err()
    }

    #[test]
    fn field_names_stay_but_numbers_in_them_are_masked() {
        let p = problem(r#"{"colour":"red"}"#);
        assert!(p.starts_with("unknown field `colour`"), "{p}");
        let p = problem(r#"{"2250700000001":"x"}"#);
        assert!(p.contains("unknown field `225********01`"), "{p}");
        assert_eq!(
            mask_numbers("to +2250700000001 at 12"),
            "to +225********01 at 12"
        );
    }

    #[test]
    fn subscriber_error_texts_are_gsm7() {
        for e in [
            AdapterError::MissingField("sessionId"),
            AdapterError::Malformed("expected value at line 1".into()),
            AdapterError::TooLarge(65536),
            AdapterError::BodyTimeout(10000),
            AdapterError::NotUtf8,
            AdapterError::Method("GET".into()),
        ] {
            let t = e.to_subscriber();
            assert!(crate::text::is_gsm7(&t), "{t}");
            assert!(t.starts_with("Demande invalide"), "{t}");
        }
    }
}
