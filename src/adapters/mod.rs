//! Dialects: the only code that knows wire formats.
//!
//! Each dialect is one file that turns a webhook ([`RawRequest`]) into one internal type
//! ([`Inbound`] for USSD, [`SmsInbound`] for SMS) and a reply back into a [`RawResponse`]. Errors come back in the
//! dialect's own format (an Africa's Talking `END …` text, a Hubtel `Release` JSON), with a
//! 4xx status and a message saying what was wrong. No axum, no session, no menu here.

mod africas_talking;
mod at_sms;
mod hubtel;
mod jasmin;
mod json;
mod kannel;
mod sms_json;
mod twilio;

use crate::message::{Inbound, Reply, SmsInbound, SmsReply};

pub use twilio::signature as twilio_signature;

/// The dialects tamtam speaks. Closed: adding one is adding a file and a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Africa's Talking USSD.
    AfricasTalking,
    /// Hubtel-style USSD.
    Hubtel,
    /// tamtam's own USSD JSON.
    Json,
    /// Kannel `sms-service` (`get-url` or `post-url`).
    Kannel,
    /// Twilio-style SMS webhook.
    Twilio,
    /// tamtam's own SMS JSON.
    SmsJson,
    /// Africa's Talking incoming SMS (asynchronous: the reply is sent, not returned).
    AtSms,
    /// Jasmin HTTP MO (asynchronous: acknowledged with `ACK/Jasmin`, the reply is sent).
    Jasmin,
}

/// Whether a dialect carries USSD hops or SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ussd,
    Sms,
}

impl Dialect {
    pub const ALL: [Dialect; 8] = [
        Dialect::AfricasTalking,
        Dialect::Hubtel,
        Dialect::Json,
        Dialect::Kannel,
        Dialect::Twilio,
        Dialect::SmsJson,
        Dialect::AtSms,
        Dialect::Jasmin,
    ];
    /// The USSD dialects.
    pub const USSD: [Dialect; 3] = [Dialect::AfricasTalking, Dialect::Hubtel, Dialect::Json];
    /// The SMS dialects that answer in the webhook's response.
    pub const SMS: [Dialect; 3] = [Dialect::Kannel, Dialect::Twilio, Dialect::SmsJson];
    /// The SMS dialects whose replies go through the outbound queue.
    pub const ASYNC_SMS: [Dialect; 2] = [Dialect::AtSms, Dialect::Jasmin];

    /// The name used in the configuration and in session keys.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::AfricasTalking => "africas_talking",
            Dialect::Hubtel => "hubtel",
            Dialect::Json => "json",
            Dialect::Kannel => "kannel",
            Dialect::Twilio => "twilio",
            Dialect::SmsJson => "sms_json",
            Dialect::AtSms => "africas_talking_sms",
            Dialect::Jasmin => "jasmin",
        }
    }

    /// True for dialects whose replies are sent through a `[[sender]]`.
    pub fn needs_sender(self) -> bool {
        matches!(self, Dialect::AtSms | Dialect::Jasmin)
    }

    pub fn from_name(name: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.name() == name)
    }

    /// USSD or SMS.
    pub fn kind(self) -> Kind {
        match self {
            Dialect::AfricasTalking | Dialect::Hubtel | Dialect::Json => Kind::Ussd,
            Dialect::Kannel
            | Dialect::Twilio
            | Dialect::SmsJson
            | Dialect::AtSms
            | Dialect::Jasmin => Kind::Sms,
        }
    }

    /// Reads a USSD webhook.
    pub fn parse(self, req: &RawRequest) -> Result<Inbound, AdapterError> {
        if req.method != "POST" {
            return Err(AdapterError::Method(req.method.to_string()));
        }
        match self {
            Dialect::AfricasTalking => africas_talking::parse(req.body),
            Dialect::Hubtel => hubtel::parse(req.body),
            Dialect::Json => json::parse(req.body),
            _ => Err(AdapterError::Malformed(format!(
                "{} is an SMS dialect",
                self.name()
            ))),
        }
    }

    /// Writes the reply to a hop of `session_id`.
    pub fn render(self, reply: &Reply, session_id: &str) -> RawResponse {
        match self {
            Dialect::AfricasTalking => africas_talking::render(reply),
            Dialect::Hubtel => hubtel::render(reply),
            Dialect::Json => json::render(reply, session_id),
            Dialect::Kannel => kannel::render(&SmsReply::new(reply.text.clone())),
            Dialect::Twilio => twilio::render(&SmsReply::new(reply.text.clone())),
            Dialect::SmsJson => sms_json::render(&SmsReply::new(reply.text.clone()), None),
            Dialect::AtSms | Dialect::Jasmin => self.ack(),
        }
    }

    /// Reads an SMS webhook. `auth` carries what Twilio's signature check needs.
    pub fn parse_sms(self, req: &RawRequest, auth: &SmsAuth) -> Result<SmsInbound, AdapterError> {
        match self {
            Dialect::Kannel => kannel::parse(req),
            Dialect::Twilio => twilio::parse(req, auth),
            Dialect::SmsJson => sms_json::parse(req),
            Dialect::AtSms => at_sms::parse(req).map(|(m, _)| m),
            Dialect::Jasmin => jasmin::parse(req),
            _ => Err(AdapterError::Malformed(format!(
                "{} is a USSD dialect",
                self.name()
            ))),
        }
    }

    /// Africa's Talking's `linkId` of an incoming SMS, to echo on the reply.
    pub fn link_id(self, req: &RawRequest) -> Option<String> {
        match self {
            Dialect::AtSms => at_sms::parse(req).ok().and_then(|(_, l)| l),
            _ => None,
        }
    }

    /// The acknowledgement of an asynchronous dialect (its reply is sent separately).
    pub fn ack(self) -> RawResponse {
        match self {
            Dialect::Jasmin => jasmin::ack(),
            _ => at_sms::ack(),
        }
    }

    /// Writes the SMS reply to `inbound`.
    pub fn render_sms(self, reply: &SmsReply, inbound: &SmsInbound) -> RawResponse {
        match self {
            Dialect::Kannel => kannel::render(reply),
            Dialect::Twilio => twilio::render(reply),
            Dialect::SmsJson => sms_json::render(reply, Some(inbound)),
            Dialect::AtSms | Dialect::Jasmin => self.ack(),
            // A USSD dialect never carries SMS; answer as its END screen would.
            _ => self.render(&Reply::end(reply.text.clone()), ""),
        }
    }

    /// Writes an error, with its 4xx status, in the dialect's format.
    pub fn render_error(self, error: &AdapterError) -> RawResponse {
        let text = error.to_subscriber();
        let mut response = match self {
            Dialect::AfricasTalking => africas_talking::render(&Reply::end(text)),
            Dialect::Hubtel => hubtel::render(&Reply::end(text)),
            Dialect::Json => json::render_error(error),
            Dialect::Kannel => kannel::render(&SmsReply::new(text)),
            Dialect::Twilio => twilio::render(&SmsReply::new(text)),
            Dialect::SmsJson => sms_json::render_error(error),
            Dialect::AtSms => at_sms::render_error(error),
            Dialect::Jasmin => jasmin::render_error(error),
        };
        response.status = error.status();
        response
    }
}

/// What an SMS dialect needs to authenticate a webhook.
#[derive(Debug, Clone, Default)]
pub struct SmsAuth {
    /// The Twilio auth token; `None`: every Twilio webhook is refused.
    pub twilio_token: Option<String>,
    /// The URL Twilio calls, as configured; `None`: built from `Host` and the path.
    pub public_url: Option<String>,
}

/// A webhook as received, before any dialect reads it.
#[derive(Debug, Clone, Copy)]
pub struct RawRequest<'a> {
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// Headers, names in lower case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl RawRequest<'_> {
    /// The value of a header (names compared in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response, ready for the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers (`X-Kannel-Coding`).
    pub headers: Vec<(&'static str, String)>,
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
    #[error("forbidden; {0}")]
    Forbidden(String),
}

impl AdapterError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            AdapterError::TooLarge(_) => 413,
            AdapterError::Method(_) => 405,
            AdapterError::Forbidden(_) => 403,
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
            AdapterError::Forbidden(_) => "forbidden",
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
            AdapterError::Forbidden(why) => format!("acces refuse ({why})"),
        };
        crate::text::transliterate(&format!("Demande invalide : {detail}.")).into_owned()
    }
}

/// Reads an `application/x-www-form-urlencoded` body, strictly: the body and every decoded
/// value must be UTF-8 (the `form_urlencoded` crate replaces bad bytes silently, which
/// would hide a broken aggregator).
pub(crate) fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, AdapterError> {
    parse_form_bytes(body)?
        .into_iter()
        .map(|(k, v)| {
            let k = String::from_utf8(k).map_err(|_| AdapterError::NotUtf8)?;
            let v = String::from_utf8(v).map_err(|_| AdapterError::NotUtf8)?;
            Ok((k, v))
        })
        .collect()
}

/// Decodes big-endian UTF-16 (how Kannel and Jasmin pass a UCS-2 message) from `field`.
pub(crate) fn decode_utf16be(bytes: &[u8], field: &'static str) -> Result<String, AdapterError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(AdapterError::InvalidField {
            field,
            reason: "UTF-16BE text of odd length".into(),
        });
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| AdapterError::InvalidField {
        field,
        reason: "invalid UTF-16BE".into(),
    })
}

/// A form field, name and value, as decoded bytes.
pub(crate) type BytePair = (Vec<u8>, Vec<u8>);

/// Reads a form or query string leniently: names and values as text (bad UTF-8 replaced).
pub fn form_fields(raw: &[u8]) -> Result<Vec<(String, String)>, AdapterError> {
    Ok(parse_form_bytes(raw)?
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect())
}

/// Reads a form or query string into decoded bytes, for values whose charset is given
/// elsewhere (Kannel's `charset`).
pub(crate) fn parse_form_bytes(body: &[u8]) -> Result<Vec<BytePair>, AdapterError> {
    let text = std::str::from_utf8(body).map_err(|_| AdapterError::NotUtf8)?;
    let decode = |s: &str| -> Vec<u8> {
        let plus = s.replace('+', " ");
        percent_encoding::percent_decode_str(&plus).collect()
    };
    Ok(text
        .trim()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect())
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
    fn every_dialect_has_a_unique_name() {
        for d in Dialect::ALL {
            assert_eq!(Dialect::from_name(d.name()), Some(d));
        }
        assert_eq!(
            Dialect::USSD.len() + Dialect::SMS.len() + Dialect::ASYNC_SMS.len(),
            Dialect::ALL.len()
        );
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
