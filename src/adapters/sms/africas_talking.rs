//! Africa's Talking incoming SMS: form fields `from`, `to`, `text`, `id`, `linkId`, `date`,
//! `networkCode`. Africa's Talking takes no reply in the response: we answer `200` once
//! the reply is safely queued, and the reply goes through the sender (echoing `linkId`).
//! Africa's Talking retries unacknowledged messages for 10 minutes: `id` deduplicates.
//!
//! Its delivery reports (`/dlr/at`): form fields `id` (its message id), `status`
//! (`Success`, `Sent`, `Submitted`, `Buffered`, `Rejected`, `Failed`), `failureReason`.

use super::dlr::{provider_report, DeliveryReport, DeliveryStatus};
use crate::adapters::{field, parse_form, required, AdapterError, RawRequest, RawResponse};
use crate::message::{normalize_msisdn, SmsInbound};

pub(super) fn parse(req: &RawRequest) -> Result<(SmsInbound, Option<String>), AdapterError> {
    if req.method != "POST" {
        return Err(AdapterError::Method(req.method.to_string()));
    }
    let f = parse_form(req.body)?;
    let inbound = SmsInbound {
        id: Some(required(field(&f, "id"), "id")?.to_string()),
        from: normalize_msisdn(required(field(&f, "from"), "from")?),
        to: required(field(&f, "to"), "to")?.to_string(),
        text: field(&f, "text").unwrap_or("").to_string(),
    };
    let link = field(&f, "linkId")
        .filter(|l| !l.is_empty())
        .map(str::to_string);
    Ok((inbound, link))
}

/// The acknowledgement (the reply itself is queued).
pub(super) fn ack() -> RawResponse {
    RawResponse::text(200, "OK")
}

/// Reads a delivery report.
pub(super) fn parse_dlr(req: &RawRequest) -> Result<DeliveryReport, AdapterError> {
    provider_report(req, "status", status_word)
}

/// Africa's Talking's `status` words, as documented (`Sent`, `Submitted`, `Buffered`,
/// `Rejected`, `Success`, `Failed`, `AbsentSubscriber`, `Expired`), in any case. Anything
/// else is unknown.
fn status_word(word: &str) -> DeliveryStatus {
    match word.to_ascii_lowercase().as_str() {
        "success" => DeliveryStatus::Delivered,
        "sent" | "submitted" => DeliveryStatus::Submitted,
        "buffered" => DeliveryStatus::Buffered,
        "rejected" => DeliveryStatus::Rejected,
        "failed" | "absentsubscriber" | "expired" => DeliveryStatus::Failed,
        _ => DeliveryStatus::Unknown,
    }
}

pub(super) fn render_error(error: &AdapterError) -> RawResponse {
    RawResponse::text(error.status(), format!("{error}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_incoming_sms_with_its_link_id() {
        let body = b"from=%2B254711082300&to=21525&text=CONSO&id=ATXid_1&linkId=SampleLinkId123&date=2026-11-24+03%3A00%3A00&networkCode=63902";
        let (m, link) = parse(&RawRequest {
            method: "POST",
            path: "/sms/at",
            query: None,
            headers: &[],
            body,
        })
        .unwrap();
        assert_eq!(
            (m.from.as_str(), m.to.as_str(), m.text.as_str()),
            ("+254711082300", "21525", "CONSO")
        );
        assert_eq!(m.id.as_deref(), Some("ATXid_1"));
        assert_eq!(link.as_deref(), Some("SampleLinkId123"));
        let missing = parse(&RawRequest {
            method: "POST",
            path: "/sms/at",
            query: None,
            headers: &[],
            body: b"from=1&to=2&text=x",
        });
        assert_eq!(missing, Err(AdapterError::MissingField("id")));
    }

    #[test]
    fn delivery_reports_map_africas_talking_words() {
        use crate::adapters::sms::dlr::{post, MessageRef};
        for (word, status) in [
            ("Success", "delivered"),
            ("Sent", "submitted"),
            ("Submitted", "submitted"),
            ("Buffered", "buffered"),
            ("Rejected", "rejected"),
            ("Failed", "failed"),
            ("AbsentSubscriber", "failed"),
            ("Expired", "failed"),
            ("hacked", "unknown"),
            ("DELIVRD", "unknown"),
        ] {
            let body = format!("id=ATXid_1&status={word}&phoneNumber=%2B254711082300");
            let r = parse_dlr(&post(None, body.as_bytes())).unwrap();
            assert_eq!(r.status.as_str(), status, "{word}");
            assert_eq!(r.detail, word);
            assert_eq!(
                r.id,
                MessageRef::Provider {
                    id: "ATXid_1".into(),
                    sender: None
                }
            );
        }
        let r = parse_dlr(&post(
            None,
            b"id=A&status=Failed&failureReason=UserInBlacklist",
        ))
        .unwrap();
        assert_eq!(r.detail, "Failed: UserInBlacklist");
        assert_eq!(
            parse_dlr(&post(None, b"status=Success")),
            Err(AdapterError::MissingField("id"))
        );
    }
}
