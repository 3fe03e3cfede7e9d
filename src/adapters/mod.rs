//! Dialects: the only code that knows wire formats.
//!
//! Two closed families, one folder each, one file per dialect:
//! - [`ussd`]: [`UssdDialect`] turns a webhook ([`RawRequest`]) into an [`Inbound`] hop and
//!   a [`Reply`] back into a [`RawResponse`] (Africa's Talking, Hubtel, tamtam's JSON);
//! - [`sms`]: [`SmsDialect`] reads an incoming SMS ([`SmsInbound`]) and writes the answer
//!   (Kannel, Twilio, tamtam's JSON; Africa's Talking and Jasmin, whose replies are sent,
//!   not returned), and [`DlrDialect`] reads delivery reports (Kannel, Jasmin, Africa's
//!   Talking) into a [`DeliveryReport`].
//!
//! [`Dialect`] is a configured mount's dialect, named as in the configuration; its
//! [`Family`] gives it the methods of its channel. Errors come back in the dialect's own format (an Africa's Talking `END …`
//! text, a Hubtel `Release` JSON), with a 4xx status and a message saying what was wrong
//! and never what the client sent. No axum, no session, no menu here.
//!
//! [`Inbound`]: crate::message::Inbound
//! [`Reply`]: crate::message::Reply
//! [`SmsInbound`]: crate::message::SmsInbound

mod error;
pub mod sms;
pub mod ussd;

pub use error::AdapterError;
pub(crate) use error::JsonKind;
pub use sms::{
    DeliveryReport, DeliveryStatus, DlrDialect, MessageRef, SmsAuth, SmsDialect, SmsWebhook,
};
pub use ussd::UssdDialect;

use crate::message::Channel;

pub use sms::twilio_signature;

/// A mounted channel's dialect, by its configuration name. What it can do is its
/// [`family`](Dialect::family)'s: a USSD dialect and an SMS dialect have different methods,
/// so neither can be called the wrong way.
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

/// A dialect with the methods of its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Ussd(UssdDialect),
    Sms(SmsDialect),
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

    /// The dialect with its channel's methods.
    pub fn family(self) -> Family {
        match self {
            Dialect::AfricasTalking => Family::Ussd(UssdDialect::AfricasTalking),
            Dialect::Hubtel => Family::Ussd(UssdDialect::Hubtel),
            Dialect::Json => Family::Ussd(UssdDialect::Json),
            Dialect::Kannel => Family::Sms(SmsDialect::Kannel),
            Dialect::Twilio => Family::Sms(SmsDialect::Twilio),
            Dialect::SmsJson => Family::Sms(SmsDialect::Json),
            Dialect::AtSms => Family::Sms(SmsDialect::AfricasTalking),
            Dialect::Jasmin => Family::Sms(SmsDialect::Jasmin),
        }
    }

    /// The name used in the configuration and in session keys.
    pub fn name(self) -> &'static str {
        match self.family() {
            Family::Ussd(d) => d.name(),
            Family::Sms(d) => d.name(),
        }
    }

    pub fn from_name(name: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The channel the dialect carries: USSD hops or SMS.
    pub fn channel(self) -> Channel {
        match self.family() {
            Family::Ussd(_) => Channel::Ussd,
            Family::Sms(_) => Channel::Sms,
        }
    }

    /// True for dialects whose replies are sent through a `[[sender]]`.
    pub fn needs_sender(self) -> bool {
        match self.family() {
            Family::Ussd(_) => false,
            Family::Sms(d) => d.needs_sender(),
        }
    }

    /// Writes an error, with its 4xx status, in the dialect's format.
    pub fn render_error(self, error: &AdapterError) -> RawResponse {
        match self.family() {
            Family::Ussd(d) => d.render_error(error),
            Family::Sms(d) => d.render_error(error),
        }
    }
}

impl From<UssdDialect> for Dialect {
    fn from(d: UssdDialect) -> Dialect {
        match d {
            UssdDialect::AfricasTalking => Dialect::AfricasTalking,
            UssdDialect::Hubtel => Dialect::Hubtel,
            UssdDialect::Json => Dialect::Json,
        }
    }
}

impl From<SmsDialect> for Dialect {
    fn from(d: SmsDialect) -> Dialect {
        match d {
            SmsDialect::Kannel => Dialect::Kannel,
            SmsDialect::Twilio => Dialect::Twilio,
            SmsDialect::Json => Dialect::SmsJson,
            SmsDialect::AfricasTalking => Dialect::AtSms,
            SmsDialect::Jasmin => Dialect::Jasmin,
        }
    }
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

impl RawResponse {
    /// The content type of [`RawResponse::text`].
    pub const TEXT: &'static str = "text/plain; charset=utf-8";
    /// The content type of [`RawResponse::json`].
    pub const JSON: &'static str = "application/json";

    /// A plain-text (UTF-8) response.
    pub fn text(status: u16, body: impl Into<String>) -> RawResponse {
        RawResponse {
            status,
            content_type: RawResponse::TEXT,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> RawResponse {
        RawResponse {
            status,
            content_type: RawResponse::JSON,
            headers: Vec::new(),
            body: value.to_string(),
        }
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
    fn every_dialect_has_a_unique_name_and_one_family() {
        for d in Dialect::ALL {
            assert_eq!(Dialect::from_name(d.name()), Some(d));
        }
        assert_eq!(
            Dialect::USSD.len() + Dialect::SMS.len() + Dialect::ASYNC_SMS.len(),
            Dialect::ALL.len()
        );
        assert_eq!(
            UssdDialect::ALL.len() + SmsDialect::ALL.len(),
            Dialect::ALL.len()
        );
        for d in Dialect::ALL {
            let back = match d.family() {
                Family::Ussd(u) => Dialect::from(u),
                Family::Sms(s) => Dialect::from(s),
            };
            assert_eq!(back, d);
        }
        for d in Dialect::USSD {
            assert_eq!(d.channel(), Channel::Ussd, "{}", d.name());
        }
        for d in Dialect::SMS {
            assert!(!d.needs_sender(), "{}", d.name());
        }
        for d in Dialect::ASYNC_SMS {
            assert!(d.needs_sender(), "{}", d.name());
        }
    }
}
