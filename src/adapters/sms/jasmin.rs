//! Jasmin HTTP MO: `id`, `from`, `to`, `content` (the bytes as received), `coding`,
//! `origin-connector`, `binary` (the same bytes in hex, newer versions), by GET or POST
//! form. Jasmin 0.11 posts `coding` as the SMPP `data_coding` byte itself (`%08`, `%00`),
//! older ones and hand-written clients as a digit: both are read. The bytes (`binary` when
//! it is there and readable, else `content`) are decoded by the coding: 8 is UTF-16BE
//! (UCS-2); 0, the SMSC's default alphabet, is GSM 03.38 one septet a byte
//! (`cr%05dit` is `crédit`), unless a byte is not a septet; 3 is Latin-1; anything else is
//! UTF-8 when it is, else Latin-1. Jasmin takes the body `ACK/Jasmin` as the acknowledgement (anything else is
//! retried, 3 times 30 s apart) and no reply: the reply goes through the sender's `/send`.
//!
//! Its delivery reports (`/dlr/jasmin`, the `dlr-url` the sender gives, with `?sender=`):
//! `id` (Jasmin's message id), `message_status` (SMPP words: `DELIVRD`, `ESME_ROK`,
//! `UNDELIV`…), `err`; acknowledged with `ACK/Jasmin` too.

use super::dlr::{provider_report, DeliveryReport, DeliveryStatus};
use crate::adapters::{decode_utf16be, parse_form_bytes, AdapterError, RawRequest, RawResponse};
use crate::message::{normalize_msisdn, SmsInbound};
use crate::text::decode_gsm7;

pub(super) fn parse(req: &RawRequest) -> Result<SmsInbound, AdapterError> {
    let raw = match req.method {
        "GET" => req.query.unwrap_or("").as_bytes(),
        "POST" => req.body,
        other => return Err(AdapterError::Method(other.to_string())),
    };
    let f = parse_form_bytes(raw)?;
    let get = |name: &str| {
        f.iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    };
    let text_field = |name: &'static str| -> Result<&str, AdapterError> {
        let v = get(name).ok_or(AdapterError::MissingField(name))?;
        let s = std::str::from_utf8(v).map_err(|_| AdapterError::NotUtf8)?;
        if s.trim().is_empty() {
            return Err(AdapterError::MissingField(name));
        }
        Ok(s)
    };
    let id = text_field("id")?.to_string();
    let from = normalize_msisdn(text_field("from")?);
    let to = text_field("to")?.to_string();
    let coding = data_coding(get("coding").unwrap_or_default())?;
    let binary = get("binary").and_then(from_hex);
    let (bytes, field) = match &binary {
        Some(b) => (b.as_slice(), "binary"),
        None => (get("content").unwrap_or_default(), "content"),
    };
    let text = decode(coding, bytes, field)?;
    Ok(SmsInbound {
        id: Some(id),
        from,
        to,
        text,
    })
}

/// The SMPP `data_coding`: one raw byte (Jasmin 0.11: `%08`), or its decimal digits; 0 when
/// absent or empty.
fn data_coding(raw: &[u8]) -> Result<u8, AdapterError> {
    let invalid = || AdapterError::InvalidField {
        field: "coding",
        reason: "is not a data coding (a byte or a number up to 255)".into(),
    };
    let digits = raw.trim_ascii();
    match raw {
        [] => Ok(0),
        [b] if !b.is_ascii_digit() => Ok(*b),
        _ if !digits.is_empty() && digits.len() <= 3 && digits.iter().all(u8::is_ascii_digit) => {
            std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse().ok())
                .ok_or_else(invalid)
        }
        _ => Err(invalid()),
    }
}

/// Even-length hex, either case; `None` otherwise (the caller then reads `content`).
fn from_hex(hex: &[u8]) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16);
    hex.chunks_exact(2)
        .map(|p| u8::try_from(nibble(p[0])? * 16 + nibble(p[1])?).ok())
        .collect()
}

/// The message's bytes as text, by data coding.
fn decode(coding: u8, bytes: &[u8], field: &'static str) -> Result<String, AdapterError> {
    let latin1 = |b: &[u8]| b.iter().map(|&b| char::from(b)).collect::<String>();
    Ok(match coding {
        8 => decode_utf16be(bytes, field)?,
        0 => match decode_gsm7(bytes) {
            Some(text) => text,
            // Not septets: a peer that already gave text (UTF-8, else Latin-1).
            None => String::from_utf8(bytes.to_vec()).unwrap_or_else(|_| latin1(bytes)),
        },
        3 => latin1(bytes),
        _ => String::from_utf8(bytes.to_vec()).unwrap_or_else(|_| latin1(bytes)),
    })
}

/// The only body Jasmin accepts as an acknowledgement.
pub(super) fn ack() -> RawResponse {
    RawResponse::text(200, "ACK/Jasmin")
}

/// Reads a delivery report.
pub(super) fn parse_dlr(req: &RawRequest) -> Result<DeliveryReport, AdapterError> {
    provider_report(req, "message_status", status_word)
}

/// Jasmin's `message_status`: the SMSC's answer to the submit at level 1 (`ESME_ROK`, or
/// an SMPP error `ESME_R…`: the submit was refused), the SMPP receipt's state at levels 2
/// and 3; in any case. Anything else is unknown.
fn status_word(word: &str) -> DeliveryStatus {
    match word.to_ascii_uppercase().as_str() {
        "DELIVRD" => DeliveryStatus::Delivered,
        "ESME_ROK" | "ACCEPTD" => DeliveryStatus::Submitted,
        "ENROUTE" => DeliveryStatus::Buffered,
        "REJECTD" => DeliveryStatus::Rejected,
        "UNDELIV" | "EXPIRED" | "DELETED" => DeliveryStatus::Failed,
        w if w.len() > "ESME_R".len()
            && w.len() <= 16
            && w.starts_with("ESME_R")
            && w.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') =>
        {
            DeliveryStatus::Rejected
        }
        _ => DeliveryStatus::Unknown,
    }
}

pub(super) fn render_error(error: &AdapterError) -> RawResponse {
    RawResponse::text(error.status(), format!("Error: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(body: &[u8]) -> Result<SmsInbound, AdapterError> {
        parse(&RawRequest {
            method: "POST",
            path: "/sms/jasmin",
            query: None,
            headers: &[],
            body,
        })
    }

    #[test]
    fn reads_gsm_and_ucs2_messages() {
        let m = post(b"id=5e2f&from=2250700000001&to=144&origin-connector=smpp1&priority=1&coding=0&validity=&content=SIM&binary=53494d").unwrap();
        assert_eq!(
            (m.from.as_str(), m.to.as_str(), m.text.as_str()),
            ("+2250700000001", "144", "SIM")
        );
        assert_eq!(m.id.as_deref(), Some("5e2f"));
        let m = post(b"id=1&from=1&to=144&coding=8&content=%00R%00%E9").unwrap();
        assert_eq!(m.text, "Ré");
        assert_eq!(
            post(b"from=1&to=144&content=x"),
            Err(AdapterError::MissingField("id"))
        );
        assert_eq!(ack().body, "ACK/Jasmin");
    }

    /// The bodies a real Jasmin 0.11 posts (captured), with the coding as a raw byte.
    const JASMIN_011_UCS2: &[u8] = b"id=6f6a2b5c-8d2e-4d7a-9d27-2b8f0c1e4a11&from=2250700000001&to=144&origin-connector=smppc01&priority=%00&coding=%08&validity=none&content=%00C%00O%00N%00S%00O&binary=0043004f004e0053004f";
    const JASMIN_011_GSM: &[u8] = b"id=0c9d7e31-5b1a-4f8e-8a0b-77d2f1a3c5e9&from=2250700000001&to=144&origin-connector=smppc01&priority=%00&coding=%00&validity=none&content=cr%05dit+restant&binary=6372056469742072657374616e74";

    #[test]
    fn reads_the_bodies_a_real_jasmin_0_11_posts() {
        let m = post(JASMIN_011_UCS2).unwrap();
        assert_eq!(m.text, "CONSO");
        assert_eq!((m.from.as_str(), m.to.as_str()), ("+2250700000001", "144"));
        assert_eq!(
            m.id.as_deref(),
            Some("6f6a2b5c-8d2e-4d7a-9d27-2b8f0c1e4a11")
        );
        assert_eq!(post(JASMIN_011_GSM).unwrap().text, "crédit restant");
        // Without `binary` (older versions), the content decodes the same way.
        let without = |body: &[u8]| {
            let s = std::str::from_utf8(body).unwrap();
            post(s.split("&binary=").next().unwrap().as_bytes())
                .unwrap()
                .text
        };
        assert_eq!(without(JASMIN_011_UCS2), "CONSO");
        assert_eq!(without(JASMIN_011_GSM), "crédit restant");
    }

    #[test]
    fn coding_is_a_raw_byte_or_a_number() {
        assert_eq!(data_coding(b""), Ok(0));
        assert_eq!(data_coding(b"\x00"), Ok(0));
        assert_eq!(data_coding(b"\x08"), Ok(8));
        assert_eq!(data_coding(b"8"), Ok(8));
        assert_eq!(data_coding(b" 0 "), Ok(0));
        assert_eq!(data_coding(b"\x03"), Ok(3));
        for bad in [&b"256"[..], b"abc", b"\x08\x08", b"1234"] {
            assert!(
                matches!(
                    data_coding(bad),
                    Err(AdapterError::InvalidField {
                        field: "coding",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        // `binary` wins over `content` when readable; unreadable hex falls back to it.
        let m = post(b"id=1&from=1&to=144&coding=0&content=zzz&binary=41").unwrap();
        assert_eq!(m.text, "A");
        let m = post(b"id=1&from=1&to=144&coding=0&content=ok&binary=4").unwrap();
        assert_eq!(m.text, "ok");
        // Latin-1, and UTF-8 under coding 0 (not septets) stay readable.
        let m = post(b"id=1&from=1&to=144&coding=%03&content=cr%E9dit").unwrap();
        assert_eq!(m.text, "crédit");
        let m = post(b"id=1&from=1&to=144&coding=0&content=cr%C3%A9dit").unwrap();
        assert_eq!(m.text, "crédit");
        // UCS-2 of an odd number of bytes is named by the field it came from.
        assert!(matches!(
            post(b"id=1&from=1&to=144&coding=%08&binary=004300"),
            Err(AdapterError::InvalidField {
                field: "binary",
                ..
            })
        ));
    }

    #[test]
    fn delivery_reports_map_smpp_words_and_name_jasmin_s_id() {
        use crate::adapters::sms::dlr::{post, MessageRef};
        for (word, status) in [
            ("DELIVRD", "delivered"),
            ("ESME_ROK", "submitted"),
            ("ACCEPTD", "submitted"),
            ("ENROUTE", "buffered"),
            ("REJECTD", "rejected"),
            ("UNDELIV", "failed"),
            ("EXPIRED", "failed"),
            ("DELETED", "failed"),
            ("UNKNOWN", "unknown"),
            ("ESME_RINVDSTADR", "rejected"),
            ("ESME_RTHROTTLED", "rejected"),
            // Outside the vocabulary: stored as `unknown`, never as the word sent.
            ("hacked", "unknown"),
            ("delivrd", "delivered"),
            ("ESME_R", "unknown"),
            ("ESME_R%3Cscript%3E", "unknown"),
        ] {
            let body = format!("id=j1&message_status={word}&level=2");
            let r = parse_dlr(&post(None, body.as_bytes())).unwrap();
            assert_eq!(r.status.as_str(), status, "{word}");
            if !word.contains('%') {
                assert_eq!(r.detail, word, "the provider's words stay in the detail");
            }
        }
        let r = parse_dlr(&post(
            Some("sender=jas"),
            b"id=j1&message_status=UNDELIV&err=011",
        ))
        .unwrap();
        assert_eq!(
            r.id,
            MessageRef::Provider {
                id: "j1".into(),
                sender: Some("jas".into())
            }
        );
        assert_eq!(r.detail, "UNDELIV: 011");
        assert_eq!(
            parse_dlr(&post(None, b"id=j1&status=DELIVRD")),
            Err(AdapterError::MissingField("message_status"))
        );
    }
}
