//! Delivery reports in tamtam's words: which message ([`MessageRef`]), how it went
//! ([`DeliveryStatus`]) and the provider's own words ([`DeliveryReport::detail`]).
//!
//! Each provider's `parse_dlr` lives in its dialect's file (`kannel.rs`, `jasmin.rs`,
//! `africas_talking.rs`); this file holds what they share: the report type, reading the
//! fields (a `GET`'s query, a `POST`'s query and form body; any other method, `HEAD`
//! included, is refused with a 405 and changes nothing), and the report of providers that
//! name their own id and a status word.
//!
//! A status is only ever one of tamtam's words: each provider's vocabulary is a closed
//! table (`jasmin::status_word`, `africas_talking::status_word`, Kannel's numeric codes),
//! and anything else is [`DeliveryStatus::Unknown`], never the word sent. The detail keeps
//! the provider's words; the queue cleans and cuts it before it is stored
//! (`outbox::clean_detail`).

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
    /// A code or word outside the provider's vocabulary (kept as a final status).
    Unknown,
}

impl DeliveryStatus {
    /// The word stored in the message's history.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Submitted => "submitted",
            DeliveryStatus::Buffered => "buffered",
            DeliveryStatus::Rejected => "rejected",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Unknown => "unknown",
        }
    }
}

/// A report's fields: a `GET`'s query; a `POST`'s query (the `dlr-url`'s own parameters),
/// then its form body. Names and values as text. Any other method is refused: a `HEAD`
/// (or an `OPTIONS`) is not a report.
pub(super) fn fields(req: &RawRequest) -> Result<Vec<(String, String)>, AdapterError> {
    let mut fields = match req.method {
        "GET" | "POST" => form_fields(req.query.unwrap_or("").as_bytes())?,
        other => return Err(AdapterError::Method(other.to_string())),
    };
    if req.method == "POST" {
        fields.extend(form_fields(req.body)?);
    }
    Ok(fields)
}

/// A field that must be present (it may be empty).
pub(super) fn present<'a>(
    fields: &'a [(String, String)],
    name: &'static str,
) -> Result<&'a str, AdapterError> {
    field(fields, name).ok_or(AdapterError::MissingField(name))
}

/// A report naming the provider's id in `id` and its status word in `status_field` (read
/// by `status_word`, the provider's vocabulary), with an optional reason (`failureReason`
/// or `err`) and an optional `sender`.
pub(super) fn provider_report(
    req: &RawRequest,
    status_field: &'static str,
    status_word: fn(&str) -> DeliveryStatus,
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
        status: status_word(raw.trim()),
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
    }

    #[test]
    fn only_get_and_post_carry_a_report() {
        let req = |method, query, body| RawRequest {
            method,
            path: "/dlr",
            query,
            headers: &[],
            body,
        };
        let f = fields(&req("GET", Some("id=q&status=1"), b"id=b")).unwrap();
        assert_eq!(field(&f, "id"), Some("q"));
        assert_eq!(f.len(), 2, "a GET's body is not read: {f:?}");
        for method in ["HEAD", "OPTIONS", "PUT", "DELETE"] {
            assert_eq!(
                fields(&req(method, Some("id=q&status=1"), b"")),
                Err(AdapterError::Method(method.into())),
                "{method}"
            );
        }
    }

    #[test]
    fn fields_come_from_the_query_then_the_body() {
        let f = fields(&post(Some("sender=j1&id=q"), b"id=b&x=1")).unwrap();
        assert_eq!(field(&f, "sender"), Some("j1"));
        assert_eq!(field(&f, "id"), Some("q"), "the query comes first");
        assert_eq!(fields(&post(None, b"id=\xff")), Err(AdapterError::NotUtf8));
    }
}
