//! Hubtel-style USSD (Programmable Services): JSON in, `{"Type","Message"}` JSON out.
//!
//! Read leniently, as the field lists disagree between Hubtel's pages and SDKs: keys are
//! matched case-insensitively (`ServiceCode` and `serviceCode`), `Type` too (`initiation`,
//! `Initiation`), and `Sequence` may be a number or a string. On `initiation`, `Message` is
//! the full dial string (`*144*3#`); afterwards it is the last input only.

use serde_json::{Map, Value};

use crate::adapters::{required, AdapterError, RawResponse};
use crate::message::{as_dial_string, dial_parts, normalize_msisdn, Hop, Inbound, Reply};

fn get<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn string(obj: &Map<String, Value>, name: &'static str) -> Result<Option<String>, AdapterError> {
    match get(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(AdapterError::InvalidField {
            field: name,
            reason: "must be a string".into(),
        }),
    }
}

pub(super) fn parse(body: &[u8]) -> Result<Inbound, AdapterError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| AdapterError::json(body, &e, &[]))?;
    let Value::Object(obj) = value else {
        return Err(AdapterError::Malformed("expected a JSON object".into()));
    };
    let kind = string(&obj, "Type")?;
    let kind = required(kind.as_deref(), "Type")?.to_ascii_lowercase();
    let session_id = string(&obj, "SessionId")?;
    let session_id = required(session_id.as_deref(), "SessionId")?.to_string();
    let mobile = string(&obj, "Mobile")?;
    let msisdn = normalize_msisdn(required(mobile.as_deref(), "Mobile")?);
    let message = string(&obj, "Message")?.unwrap_or_default();
    let service = string(&obj, "ServiceCode")?;
    let seq = match get(&obj, "Sequence") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_u64().ok_or(AdapterError::InvalidField {
            field: "Sequence",
            reason: "must be a whole number".into(),
        })?),
        Some(Value::String(s)) => {
            Some(
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| AdapterError::InvalidField {
                        field: "Sequence",
                        reason: "is not a whole number".into(),
                    })?,
            )
        }
        Some(_) => {
            return Err(AdapterError::InvalidField {
                field: "Sequence",
                reason: "must be a number".into(),
            })
        }
    };

    let hop = match kind.as_str() {
        "initiation" => Hop::Start,
        "response" => Hop::Answer {
            text: message.trim().to_string(),
            seq,
        },
        "release" => Hop::Release,
        "timeout" => Hop::Timeout,
        _ => {
            return Err(AdapterError::InvalidField {
                field: "Type",
                reason: "is not one of initiation, response, release, timeout".into(),
            })
        }
    };
    // On initiation the message is the dial string, direct-dial digits included.
    let service_code = match (&hop, dial_parts(message.trim())) {
        (Hop::Start, Some(_)) => message.trim().to_string(),
        _ => as_dial_string(required(service.as_deref(), "ServiceCode")?),
    };
    Ok(Inbound {
        session_id,
        msisdn,
        service_code,
        hop,
    })
}

pub(super) fn render(reply: &Reply) -> RawResponse {
    let body = serde_json::json!({
        "Type": if reply.end { "Release" } else { "Response" },
        "Message": reply.text,
    });
    RawResponse::json(200, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initiation_carries_the_dial_string() {
        let i = parse(br#"{"Type":"Initiation","SessionId":"8d44","Mobile":"2250700000001","Message":"*144*3#","ServiceCode":"144","Sequence":"1"}"#).unwrap();
        assert_eq!(i.hop, Hop::Start);
        assert_eq!(i.service_code, "*144*3#");
        assert_eq!(i.msisdn, "+2250700000001");
    }

    #[test]
    fn responses_carry_the_last_input_and_a_sequence_of_either_type() {
        for body in [
            br#"{"type":"response","sessionId":"s","mobile":"1234567890","message":" 2 ","serviceCode":"144","sequence":3}"#.as_slice(),
            br#"{"Type":"RESPONSE","SessionId":"s","Mobile":"1234567890","Message":"2","ServiceCode":"*144#","Sequence":"3"}"#,
        ] {
            let i = parse(body).unwrap();
            assert_eq!(i.hop, Hop::Answer { text: "2".into(), seq: Some(3) });
            assert_eq!(i.service_code, "*144#");
        }
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        assert!(matches!(parse(b"{"), Err(AdapterError::Malformed(_))));
        assert!(matches!(parse(b"[1]"), Err(AdapterError::Malformed(_))));
        assert_eq!(
            parse(br#"{"SessionId":"s","Mobile":"1"}"#),
            Err(AdapterError::MissingField("Type"))
        );
        assert!(matches!(
            parse(br#"{"Type":"AddToCart","SessionId":"s","Mobile":"1","ServiceCode":"1"}"#),
            Err(AdapterError::InvalidField { field: "Type", .. })
        ));
        assert!(matches!(
            parse(br#"{"Type":"response","SessionId":"s","Mobile":"1","ServiceCode":"1","Sequence":"x"}"#),
            Err(AdapterError::InvalidField { field: "Sequence", .. })
        ));
        assert_eq!(
            parse(br#"{"Type":"response","SessionId":"s","Mobile":"1","Message":"1"}"#),
            Err(AdapterError::MissingField("ServiceCode"))
        );
        assert_eq!(parse(b"{\"Type\":\"\xff\"}"), Err(AdapterError::NotUtf8));
    }

    #[test]
    fn replies_are_response_or_release() {
        let r = render(&Reply {
            text: "Menu".into(),
            end: false,
        });
        assert_eq!(r.body, r#"{"Message":"Menu","Type":"Response"}"#);
        let r = render(&Reply::end("Fin"));
        assert!(r.body.contains(r#""Type":"Release""#));
    }
}
