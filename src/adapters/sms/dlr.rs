//! Delivery reports in tamtam's words: which message ([`MessageRef`]), how it went
//! ([`DeliveryStatus`]) and the provider's own words ([`DeliveryReport::detail`]).
//!
//! Each provider's `parse_dlr` lives in its dialect's file (`kannel.rs`, `jasmin.rs`,
//! `africas_talking.rs`); this file holds what they share: the report type, reading the
//! fields from the query and a form body, and the status words of SMPP-style providers.
//! Values are taken as sent (not bounded nor cleaned): the place to add that is
//! [`fields`], which every parser goes through.

use crate::adapters::{field, form_fields, AdapterError, RawRequest};

/// A delivery report, as a provider sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The message it is about.
    pub id: MessageRef,
    pub status: DeliveryStatus,
    /// The provider's own words, kept in the message's history (`kannel dlr 1`,
    /// `Failed: UserInBlacklist`).
    pub detail: String,
}

/// How a report names its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageRef {
    /// tamtam's own message id (Kannel: the sender put it in the `dlr-url`). It is known
    /// from the moment the message is accepted, so an unknown one never becomes known.
    Own(String),
    /// The provider's message id, which the worker records once the provider has answered
    /// the send: a report can arrive before that. `sender` is the `[[sender]]` the report
    /// names (`?sender=` in the `dlr-url`), if any.
    Provider { id: String, sender: Option<String> },
}

/// Where a message is, in tamtam's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryStatus {
    Delivered,
    Submitted,
    Buffered,
    Rejected,
    Failed,
    /// A Kannel code tamtam does not know.
    Unknown,
    /// A provider's word tamtam does not know, in lower case (kept as a final status).
    Other(String),
}

impl DeliveryStatus {
    /// The word stored in the message's history.
    pub fn as_str(&self) -> &str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Submitted => "submitted",
            DeliveryStatus::Buffered => "buffered",
            DeliveryStatus::Rejected => "rejected",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Unknown => "unknown",
            DeliveryStatus::Other(word) => word,
        }
    }

    /// A status word of an SMPP-style provider (Jasmin's `message_status`, Africa's
    /// Talking's `status`), in any case. One table serves both: each provider's words do
    /// not collide with the other's.
    pub(super) fn from_provider_word(raw: &str) -> DeliveryStatus {
        match raw.trim().to_ascii_uppercase().as_str() {
            "DELIVRD" | "SUCCESS" | "DELIVERED" => DeliveryStatus::Delivered,
            "ESME_ROK" | "SUBMITTED" | "SENT" | "ACCEPTD" => DeliveryStatus::Submitted,
            "BUFFERED" | "ENROUTE" => DeliveryStatus::Buffered,
            "REJECTED" | "REJECTD" => DeliveryStatus::Rejected,
            "FAILED" | "UNDELIV" | "EXPIRED" | "DELETED" => DeliveryStatus::Failed,
            other => DeliveryStatus::Other(other.to_ascii_lowercase()),
        }
    }
}

/// A report's fields: the query's, then a form body's (names and values as text).
pub(super) fn fields(req: &RawRequest) -> Result<Vec<(String, String)>, AdapterError> {
    let mut fields = form_fields(req.query.unwrap_or("").as_bytes())?;
    fields.extend(form_fields(req.body)?);
    Ok(fields)
}

/// A field that must be present (it may be empty).
pub(super) fn present<'a>(
    fields: &'a [(String, String)],
    name: &'static str,
) -> Result<&'a str, AdapterError> {
    field(fields, name).ok_or(AdapterError::MissingField(name))
}

/// A report naming the provider's id in `id` and its status word in `status_field`, with
/// an optional reason (`failureReason` or `err`) and an optional `sender`.
pub(super) fn provider_report(
    req: &RawRequest,
    status_field: &'static str,
) -> Result<DeliveryReport, AdapterError> {
    let f = fields(req)?;
    let id = present(&f, "id")?;
    let raw = present(&f, status_field)?;
    let detail = match field(&f, "failureReason").or(field(&f, "err")) {
        Some(reason) => format!("{raw}: {reason}"),
        None => raw.to_string(),
    };
    Ok(DeliveryReport {
        id: MessageRef::Provider {
            id: id.to_string(),
            sender: field(&f, "sender").map(str::to_string),
        },
        status: DeliveryStatus::from_provider_word(raw),
        detail,
    })
}

#[cfg(test)]
pub(super) fn post<'a>(query: Option<&'a str>, body: &'a [u8]) -> RawRequest<'a> {
    RawRequest {
        method: "POST",
        path: "/dlr",
        query,
        headers: &[],
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_keep_the_words_the_history_stores() {
        let words: Vec<&str> = [
            DeliveryStatus::Delivered,
            DeliveryStatus::Submitted,
            DeliveryStatus::Buffered,
            DeliveryStatus::Rejected,
            DeliveryStatus::Failed,
            DeliveryStatus::Unknown,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        assert_eq!(
            words,
            [
                "delivered",
                "submitted",
                "buffered",
                "rejected",
                "failed",
                "unknown"
            ]
        );
        assert_eq!(
            DeliveryStatus::from_provider_word(" Queued ").as_str(),
            "queued"
        );
    }

    #[test]
    fn fields_come_from_the_query_then_the_body() {
        let f = fields(&post(Some("sender=j1&id=q"), b"id=b&x=1")).unwrap();
        assert_eq!(field(&f, "sender"), Some("j1"));
        assert_eq!(field(&f, "id"), Some("q"), "the query comes first");
        assert_eq!(fields(&post(None, b"id=\xff")), Err(AdapterError::NotUtf8));
    }
}
