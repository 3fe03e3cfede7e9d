//! Dialects: the only code that knows wire formats.
//!
//! Each dialect is one file that turns a webhook ([`RawRequest`]) into the one internal
//! [`Inbound`] and a [`Reply`] back into a [`RawResponse`]. Errors come back in the
//! dialect's own format (an Africa's Talking `END …` text, a Hubtel `Release` JSON), with a
//! 4xx status and a message saying what was wrong. No axum, no session, no menu here.

mod africas_talking;
mod hubtel;
mod json;

use crate::message::{Inbound, Reply};

/// The USSD dialects tamtam speaks. Closed: adding one is adding a file and a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    AfricasTalking,
    Hubtel,
    Json,
}

impl Dialect {
    pub const ALL: [Dialect; 3] = [Dialect::AfricasTalking, Dialect::Hubtel, Dialect::Json];

    /// The name used in the configuration and in session keys.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::AfricasTalking => "africas_talking",
            Dialect::Hubtel => "hubtel",
            Dialect::Json => "json",
        }
    }

    pub fn from_name(name: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Reads a webhook.
    pub fn parse(self, req: &RawRequest) -> Result<Inbound, AdapterError> {
        if req.method != "POST" {
            return Err(AdapterError::Method(req.method.to_string()));
        }
        match self {
            Dialect::AfricasTalking => africas_talking::parse(req.body),
            Dialect::Hubtel => hubtel::parse(req.body),
            Dialect::Json => json::parse(req.body),
        }
    }

    /// Writes the reply to a hop of `session_id`.
    pub fn render(self, reply: &Reply, session_id: &str) -> RawResponse {
        match self {
            Dialect::AfricasTalking => africas_talking::render(reply),
            Dialect::Hubtel => hubtel::render(reply),
            Dialect::Json => json::render(reply, session_id),
        }
    }

    /// Writes an error, with its 4xx status, in the dialect's format.
    pub fn render_error(self, error: &AdapterError) -> RawResponse {
        let mut response = match self {
            Dialect::AfricasTalking => africas_talking::render(&Reply::end(error.to_subscriber())),
            Dialect::Hubtel => hubtel::render(&Reply::end(error.to_subscriber())),
            Dialect::Json => json::render_error(error),
        };
        response.status = error.status();
        response
    }
}

/// A webhook as received, before any dialect reads it.
#[derive(Debug, Clone, Copy)]
pub struct RawRequest<'a> {
    pub method: &'a str,
    pub body: &'a [u8],
}

/// A response, ready for the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

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
    #[error("body is not valid UTF-8")]
    NotUtf8,
    #[error("method {0} not allowed; use POST")]
    Method(String),
}

impl AdapterError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            AdapterError::TooLarge(_) => 413,
            AdapterError::Method(_) => 405,
            _ => 400,
        }
    }

    /// A stable code for the JSON dialect.
    pub fn code(&self) -> &'static str {
        match self {
            AdapterError::MissingField(_) => "missing_field",
            AdapterError::InvalidField { .. } => "invalid_field",
            AdapterError::Malformed(_) => "malformed",
            AdapterError::TooLarge(_) => "too_large",
            AdapterError::NotUtf8 => "not_utf8",
            AdapterError::Method(_) => "method_not_allowed",
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
            AdapterError::NotUtf8 => "texte non UTF-8".to_string(),
            AdapterError::Method(m) => format!("methode {m} refusee, utilisez POST"),
        };
        crate::text::transliterate(&format!("Demande invalide : {detail}.")).into_owned()
    }
}

/// Reads an `application/x-www-form-urlencoded` body, strictly: the body and every decoded
/// value must be UTF-8 (the `form_urlencoded` crate replaces bad bytes silently, which
/// would hide a broken aggregator).
pub(crate) fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, AdapterError> {
    let text = std::str::from_utf8(body).map_err(|_| AdapterError::NotUtf8)?;
    let decode = |s: &str| -> Result<String, AdapterError> {
        let plus = s.replace('+', " ");
        percent_encoding::percent_decode_str(&plus)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| AdapterError::NotUtf8)
    };
    let mut pairs = Vec::new();
    for pair in text.trim().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((decode(k)?, decode(v)?));
    }
    Ok(pairs)
}

/// The value of a form field.
pub(crate) fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A required, non-blank field.
pub(crate) fn required<'a>(
    value: Option<&'a str>,
    name: &'static str,
) -> Result<&'a str, AdapterError> {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(AdapterError::MissingField(name)),
    }
}

/// Turns what an aggregator calls the service code (`*144#`, `144`, `*144*3#`) into a
/// dial string.
pub(crate) fn as_dial_string(code: &str) -> String {
    let inner = code.trim().trim_start_matches('*').trim_end_matches('#');
    format!("*{inner}#")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_strictly() {
        let pairs = parse_form(b"a=1&text=1*2&phoneNumber=%2B225+07&empty=&flag").unwrap();
        assert_eq!(field(&pairs, "a"), Some("1"));
        assert_eq!(field(&pairs, "text"), Some("1*2"));
        assert_eq!(field(&pairs, "phoneNumber"), Some("+225 07"));
        assert_eq!(field(&pairs, "empty"), Some(""));
        assert_eq!(field(&pairs, "flag"), Some(""));
        assert_eq!(parse_form(b"a=%FF"), Err(AdapterError::NotUtf8));
        assert_eq!(parse_form(&[b'a', b'=', 0xC3]), Err(AdapterError::NotUtf8));
    }

    #[test]
    fn service_codes_become_dial_strings() {
        assert_eq!(as_dial_string("*144#"), "*144#");
        assert_eq!(as_dial_string("144"), "*144#");
        assert_eq!(as_dial_string("144*3"), "*144*3#");
    }

    #[test]
    fn subscriber_error_texts_are_gsm7() {
        for e in [
            AdapterError::MissingField("sessionId"),
            AdapterError::Malformed("expected value at line 1".into()),
            AdapterError::TooLarge(65536),
            AdapterError::NotUtf8,
            AdapterError::Method("GET".into()),
        ] {
            let t = e.to_subscriber();
            assert!(crate::text::is_gsm7(&t), "{t}");
            assert!(t.starts_with("Demande invalide"), "{t}");
        }
    }
}
