//! The internal vocabulary every dialect converts to and from.
//!
//! Adapters turn a webhook into an [`Inbound`] (USSD) or an [`SmsInbound`]; the gateway
//! answers with a [`Reply`] or an [`SmsReply`]; adapters render it back. No serde here:
//! wire forms belong to the adapters.

use crate::text::{self, Encoding};

/// The two channels a subscriber reaches tamtam on. A dialect carries one of them; the
/// engine shows a screen for one of them (USSD pages, or one SMS text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Ussd,
    Sms,
}

/// One USSD hop, whatever the aggregator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The aggregator's session id.
    pub session_id: String,
    /// The subscriber's number, normalised (`+2250700000001` when the country is known).
    pub msisdn: String,
    /// What was dialled: `*144#`, or a direct dial such as `*144*3#`.
    pub service_code: String,
    pub hop: Hop,
}

/// What the subscriber did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// Dialled the service code (Hubtel `initiation`, JSON `start`).
    Start,
    /// The whole path typed so far, `*`-separated (Africa's Talking); empty on the dial.
    Path(String),
    /// One answer (Hubtel `response`, JSON `input`), with the aggregator's sequence number.
    Answer { text: String, seq: Option<u64> },
    /// Hung up (Hubtel `release`, JSON `end`).
    Release,
    /// The aggregator gave up waiting for us (Hubtel `timeout`): the session is gone, but
    /// the subscriber may dial again and resume.
    Timeout,
}

/// What to show the subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    /// The session is over after this screen.
    pub end: bool,
}

impl Reply {
    pub fn end(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            end: true,
        }
    }
}

/// One SMS received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsInbound {
    /// The aggregator's message id (Kannel `%I`, Twilio `MessageSid`), for deduplication.
    pub id: Option<String>,
    /// The subscriber, normalised like USSD numbers.
    pub from: String,
    /// The short code or number it was sent to.
    pub to: String,
    pub text: String,
}

/// The SMS to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsReply {
    pub text: String,
    pub encoding: Encoding,
    /// Parts the text takes.
    pub segments: usize,
}

impl SmsReply {
    /// A reply, measured. An empty text becomes a single space: Kannel would otherwise send
    /// `<Empty reply from service provider>` to the phone.
    pub fn new(text: String) -> SmsReply {
        let text = if text.trim().is_empty() {
            " ".to_string()
        } else {
            text
        };
        let seg = text::sms_segments(&text);
        SmsReply {
            text,
            encoding: seg.encoding,
            segments: seg.count,
        }
    }
}

/// `s` with every run of 8 digits or more (with an optional `+`) masked the way
/// [`mask_msisdn`] masks a number: for texts that may quote one (a provider's answer, a
/// parser's error) on their way to logs, dead letters or an error body.
pub fn mask_numbers(s: &str) -> String {
    static NUMBER: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\+?\d{8,}").expect("a valid regex"));
    NUMBER
        .replace_all(s, |c: &regex::Captures| mask_msisdn(&c[0]))
        .into_owned()
}

/// Masks a number for logs: `+2250700000001` becomes `+225*******01`. Logs at INFO and
/// above never carry a raw MSISDN.
pub fn mask_msisdn(msisdn: &str) -> String {
    let chars: Vec<char> = msisdn.chars().collect();
    let n = chars.len();
    if n <= 6 {
        return "*".repeat(n);
    }
    let head = if chars[0] == '+' { 4 } else { 3 };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - 2 { *c } else { '*' })
        .collect()
}

/// Normalises a subscriber number: spaces and dashes dropped, `00` becomes `+`, and a
/// number of 8 digits or more without a leading `0` gains a `+` (Hubtel sends
/// `233246912184`). A national number (leading `0`) is kept as sent.
pub fn normalize_msisdn(raw: &str) -> String {
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    if let Some(rest) = compact.strip_prefix("00") {
        return format!("+{rest}");
    }
    if !compact.starts_with('+')
        && !compact.starts_with('0')
        && compact.len() >= 8
        && compact.chars().all(|c| c.is_ascii_digit())
    {
        return format!("+{compact}");
    }
    compact
}

/// Splits a dial string (`*144*3#`) into its parts (`["144", "3"]`); `None` when it is not
/// one (every part must be digits, none empty).
pub fn dial_parts(code: &str) -> Option<Vec<&str>> {
    let inner = code.trim().strip_prefix('*')?.strip_suffix('#')?;
    let parts: Vec<&str> = inner.split('*').collect();
    parts
        .iter()
        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        .then_some(parts)
}

/// Turns what an aggregator calls the service code (`*144#`, `144`, `*144*3#`) into a
/// dial string.
pub fn as_dial_string(code: &str) -> String {
    let inner = code.trim().trim_start_matches('*').trim_end_matches('#');
    format!("*{inner}#")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msisdns_are_masked() {
        assert_eq!(mask_msisdn("+2250700000001"), "+225********01");
        assert_eq!(mask_msisdn("687700123"), "687****23");
        assert_eq!(mask_msisdn("1234"), "****");
    }

    #[test]
    fn msisdns_are_normalised() {
        assert_eq!(normalize_msisdn("+225 07 00 00 00 01"), "+2250700000001");
        assert_eq!(normalize_msisdn("002250700000001"), "+2250700000001");
        assert_eq!(normalize_msisdn("233246912184"), "+233246912184");
        assert_eq!(normalize_msisdn("0700000001"), "0700000001");
        assert_eq!(normalize_msisdn("+687700123"), "+687700123");
    }

    #[test]
    fn dial_parts_accepts_only_dial_strings() {
        assert_eq!(dial_parts("*144#"), Some(vec!["144"]));
        assert_eq!(dial_parts("*144*3*1#"), Some(vec!["144", "3", "1"]));
        assert_eq!(dial_parts("144"), None);
        assert_eq!(dial_parts("*144"), None);
        assert_eq!(dial_parts("**#"), None);
        assert_eq!(dial_parts("*14a#"), None);
    }

    #[test]
    fn service_codes_become_dial_strings() {
        assert_eq!(as_dial_string("*144#"), "*144#");
        assert_eq!(as_dial_string("144"), "*144#");
        assert_eq!(as_dial_string("144*3"), "*144*3#");
    }
}
