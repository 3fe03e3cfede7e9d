//! tamtam's own JSON dialect, for an operator's in-house USSD gateway (see README).
//!
//! Request: `{"session_id", "msisdn", "service_code", "type"?, "input"?, "seq"?}` where
//! `type` is `start`, `input` or `end` (default: `start` without `input`, else `input`).
//! Reply: `{"session_id", "action": "continue"|"end", "text", "encoding", "units"}`.
//! Error: a 4xx with `{"action": "end", "text", "error": {"code", "message"}}`.

use serde::Deserialize;

use crate::adapters::{required, AdapterError, JsonKind, RawResponse};
use crate::message::{normalize_msisdn, Hop, Inbound, Reply};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    session_id: Option<String>,
    msisdn: Option<String>,
    service_code: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    input: Option<String>,
    seq: Option<u64>,
}

/// The fields and the kind of value each holds, to name the one at fault.
const FIELDS: [(&str, JsonKind); 6] = [
    ("session_id", JsonKind::String),
    ("msisdn", JsonKind::String),
    ("service_code", JsonKind::String),
    ("type", JsonKind::String),
    ("input", JsonKind::String),
    ("seq", JsonKind::WholeNumber),
];

pub(super) fn parse(body: &[u8]) -> Result<Inbound, AdapterError> {
    let req: Request =
        serde_json::from_slice(body).map_err(|e| AdapterError::json(body, &e, &FIELDS))?;
    let session_id = required(req.session_id.as_deref(), "session_id")?.to_string();
    let msisdn = normalize_msisdn(required(req.msisdn.as_deref(), "msisdn")?);
    let service_code = required(req.service_code.as_deref(), "service_code")?.to_string();
    let kind = req.kind.as_deref().unwrap_or(if req.input.is_some() {
        "input"
    } else {
        "start"
    });
    let hop = match kind {
        "start" => Hop::Start,
        "input" => Hop::Answer {
            // An empty answer is an answer (the subscriber pressed send): the menu re-prompts.
            text: req
                .input
                .as_deref()
                .ok_or(AdapterError::MissingField("input"))?
                .trim()
                .to_string(),
            seq: req.seq,
        },
        "end" => Hop::Release,
        _ => {
            return Err(AdapterError::InvalidField {
                field: "type",
                reason: "is not one of start, input, end".into(),
            })
        }
    };
    Ok(Inbound {
        session_id,
        msisdn,
        service_code,
        hop,
    })
}

pub(super) fn render(reply: &Reply, session_id: &str) -> RawResponse {
    let m = crate::text::measure(&reply.text);
    let body = serde_json::json!({
        "session_id": session_id,
        "action": if reply.end { "end" } else { "continue" },
        "text": reply.text,
        "encoding": m.encoding.as_str(),
        "units": m.units,
    });
    RawResponse::json(200, &body)
}

pub(super) fn render_error(error: &AdapterError) -> RawResponse {
    let body = serde_json::json!({
        "action": "end",
        "text": error.to_subscriber(),
        "error": { "code": error.code(), "message": error.to_string() },
    });
    RawResponse::json(error.status(), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_input_are_inferred() {
        let i = parse(br#"{"session_id":"a","msisdn":"+2250700000001","service_code":"*144*3#"}"#)
            .unwrap();
        assert_eq!(i.hop, Hop::Start);
        assert_eq!(i.service_code, "*144*3#");
        let i = parse(
            br#"{"session_id":"a","msisdn":"+1","service_code":"*144#","input":"2","seq":4}"#,
        )
        .unwrap();
        assert_eq!(
            i.hop,
            Hop::Answer {
                text: "2".into(),
                seq: Some(4)
            }
        );
        let i = parse(br#"{"session_id":"a","msisdn":"+1","service_code":"*144#","type":"end"}"#)
            .unwrap();
        assert_eq!(i.hop, Hop::Release);
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        assert!(matches!(
            parse(br#"{"session_id":"a","msisdn":"+1","service_code":"*1#","colour":"red"}"#),
            Err(AdapterError::Malformed(m)) if m.contains("colour")
        ));
        assert!(matches!(
            parse(br#"{"session_id":"a","msisdn":"+1","service_code":"*1#","type":"pause"}"#),
            Err(AdapterError::InvalidField { field: "type", .. })
        ));
        assert_eq!(
            parse(br#"{"msisdn":"+1","service_code":"*1#"}"#),
            Err(AdapterError::MissingField("session_id"))
        );
    }

    #[test]
    fn errors_are_json_with_a_code() {
        let r = render_error(&AdapterError::MissingField("msisdn"));
        assert_eq!(r.status, 400);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "missing_field");
        assert_eq!(v["action"], "end");
    }

    #[test]
    fn a_number_where_a_string_belongs_is_named_and_not_repeated() {
        let e = parse(br#"{"session_id":"a","msisdn":2250700000001,"service_code":"*1#"}"#)
            .unwrap_err();
        assert_eq!(
            e,
            AdapterError::Malformed("field `msisdn` must be a string, not a number".into())
        );
        let e = parse(
            br#"{"session_id":"a","msisdn":"+1","service_code":"*1#","type":"2250700000001"}"#,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("0700000001"), "{e}");
    }
}
