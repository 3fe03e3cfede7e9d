//! tamtam's own SMS JSON dialect, with a synchronous reply (see README).
//!
//! Request: `{"id"?, "from", "to", "text"}`. Reply: `{"id", "from", "to", "text",
//! "encoding", "segments", "units"}` where `from`/`to` are those of the reply (the short code
//! sends to the subscriber). Error: a 4xx with `{"text", "error": {"code", "message"}}`.

use serde::Deserialize;

use crate::adapters::{required, AdapterError, JsonKind, RawRequest, RawResponse};
use crate::message::{normalize_msisdn, SmsInbound, SmsReply};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    text: Option<String>,
}

/// The fields and the kind of value each holds, to name the one at fault.
const FIELDS: [(&str, JsonKind); 4] = [
    ("id", JsonKind::String),
    ("from", JsonKind::String),
    ("to", JsonKind::String),
    ("text", JsonKind::String),
];

pub(super) fn parse(req: &RawRequest) -> Result<SmsInbound, AdapterError> {
    if req.method != "POST" {
        return Err(AdapterError::Method(req.method.to_string()));
    }
    let r: Request =
        serde_json::from_slice(req.body).map_err(|e| AdapterError::json(req.body, &e, &FIELDS))?;
    let from = normalize_msisdn(required(r.from.as_deref(), "from")?);
    let to = required(r.to.as_deref(), "to")?.to_string();
    let text = r.text.ok_or(AdapterError::MissingField("text"))?;
    Ok(SmsInbound {
        id: r.id.filter(|i| !i.is_empty()),
        from,
        to,
        text,
    })
}

pub(super) fn render(reply: &SmsReply, inbound: Option<&SmsInbound>) -> RawResponse {
    let units = crate::text::measure(&reply.text).units;
    let body = serde_json::json!({
        "id": inbound.and_then(|i| i.id.as_deref()),
        "from": inbound.map(|i| i.to.as_str()),
        "to": inbound.map(|i| i.from.as_str()),
        "text": reply.text,
        "encoding": reply.encoding.as_str(),
        "segments": reply.segments,
        "units": units,
    });
    RawResponse::json(200, &body)
}

pub(super) fn render_error(error: &AdapterError) -> RawResponse {
    let body = serde_json::json!({
        "text": error.to_subscriber(),
        "error": { "code": error.code(), "message": error.to_string() },
    });
    RawResponse::json(error.status(), &body)
}

/// An SMS refused by the abuse limits, no text to send: `status` and `code` in the error
/// format (429 `too_many_requests`, 403 `destination_not_allowed`).
pub(super) fn render_no_reply(status: u16, code: &str, message: &str) -> RawResponse {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    RawResponse::json(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(body: &[u8]) -> Result<SmsInbound, AdapterError> {
        parse(&RawRequest {
            method: "POST",
            path: "/sms/json",
            query: None,
            headers: &[],
            body,
        })
    }

    #[test]
    fn reads_and_answers() {
        let m = post(br#"{"id":"m1","from":"2250700000001","to":"144","text":"SMSC"}"#).unwrap();
        assert_eq!((m.from.as_str(), m.to.as_str()), ("+2250700000001", "144"));
        let r = render(&SmsReply::new("Réglez +22501099099".into()), Some(&m));
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["to"], "+2250700000001");
        assert_eq!(v["from"], "144");
        assert_eq!(v["id"], "m1");
        assert_eq!(v["segments"], 1);
        assert_eq!(v["encoding"], "gsm7");
    }

    #[test]
    fn bad_requests_are_named() {
        assert_eq!(
            post(br#"{"to":"1","text":""}"#),
            Err(AdapterError::MissingField("from"))
        );
        assert_eq!(
            post(br#"{"from":"1","to":"1"}"#),
            Err(AdapterError::MissingField("text"))
        );
        assert!(matches!(post(b"{"), Err(AdapterError::Malformed(_))));
        assert!(matches!(
            post(br#"{"from":"1","to":"1","text":"","x":1}"#),
            Err(AdapterError::Malformed(_))
        ));
    }
}
