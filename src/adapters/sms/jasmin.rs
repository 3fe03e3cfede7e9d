//! Jasmin HTTP MO: `id`, `from`, `to`, `content` (the bytes as received: UTF-16BE when
//! `coding` is 8), `coding`, `origin-connector`, `binary` (hex, newer versions), by GET or
//! POST form. Jasmin takes the body `ACK/Jasmin` as the acknowledgement (anything else is
//! retried, 3 times 30 s apart) and no reply: the reply goes through the sender's `/send`.
//!
//! Its delivery reports (`/dlr/jasmin`, the `dlr-url` the sender gives, with `?sender=`):
//! `id` (Jasmin's message id), `message_status` (SMPP words: `DELIVRD`, `ESME_ROK`,
//! `UNDELIV`…), `err`; acknowledged with `ACK/Jasmin` too.

use super::dlr::{provider_report, DeliveryReport};
use crate::adapters::{decode_utf16be, parse_form_bytes, AdapterError, RawRequest, RawResponse};
use crate::message::{normalize_msisdn, SmsInbound};

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
    let coding = get("coding")
        .and_then(|c| std::str::from_utf8(c).ok())
        .unwrap_or("0");
    let content = get("content").unwrap_or_default();
    let text = if coding.trim() == "8" {
        decode_utf16be(content, "content")?
    } else {
        // GSM and Latin-1 codings: UTF-8 when it is, else Latin-1.
        String::from_utf8(content.to_vec())
            .unwrap_or_else(|_| content.iter().map(|&b| char::from(b)).collect())
    };
    Ok(SmsInbound {
        id: Some(id),
        from,
        to,
        text,
    })
}

/// The only body Jasmin accepts as an acknowledgement.
pub(super) fn ack() -> RawResponse {
    RawResponse::text(200, "ACK/Jasmin")
}

/// Reads a delivery report.
pub(super) fn parse_dlr(req: &RawRequest) -> Result<DeliveryReport, AdapterError> {
    provider_report(req, "message_status")
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
            ("ESME_RINVDSTADR", "esme_rinvdstadr"),
        ] {
            let body = format!("id=j1&message_status={word}&level=2");
            let r = parse_dlr(&post(None, body.as_bytes())).unwrap();
            assert_eq!(r.status.as_str(), status, "{word}");
            assert_eq!(r.detail, word);
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
