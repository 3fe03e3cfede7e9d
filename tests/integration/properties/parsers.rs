//! Every webhook parser on any input: an error is a 4xx valid in the dialect, a success
//! renders a valid reply (USSD, SMS, delivery reports).

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;
use tamtam::adapters::{DlrDialect, RawResponse, SmsAuth, SmsDialect, UssdDialect};
use tamtam::message::{Reply, SmsReply};

use super::inputs::*;
use super::{check, Check};

fn json_object_of(r: &RawResponse) -> Result<serde_json::Map<String, Value>, TestCaseError> {
    prop_assert_eq!(r.content_type, RawResponse::JSON);
    match serde_json::from_str::<Value>(&r.body) {
        Ok(Value::Object(o)) => Ok(o),
        other => Err(TestCaseError::fail(format!(
            "not a JSON object: {other:?} ({})",
            r.body
        ))),
    }
}

fn is_4xx(r: &RawResponse) -> Check {
    prop_assert!((400..500).contains(&r.status), "status {}", r.status);
    Ok(())
}

/// A USSD response valid in `d`; `error`: a 4xx that ends the session.
fn valid_ussd(d: UssdDialect, r: &RawResponse, error: bool) -> Check {
    if error {
        is_4xx(r)?;
    } else {
        prop_assert_eq!(r.status, 200);
    }
    match d {
        UssdDialect::AfricasTalking => {
            prop_assert!(r.body.starts_with("END ") || (!error && r.body.starts_with("CON ")));
        }
        UssdDialect::Hubtel => {
            let o = json_object_of(r)?;
            let kind = o.get("Type").and_then(Value::as_str);
            prop_assert!(
                kind == Some("Release") || (!error && kind == Some("Response")),
                "{}",
                r.body
            );
            prop_assert!(o.get("Message").is_some_and(Value::is_string), "{}", r.body);
        }
        UssdDialect::Json => {
            let o = json_object_of(r)?;
            let action = o.get("action").and_then(Value::as_str);
            prop_assert!(
                action == Some("end") || (!error && action == Some("continue")),
                "{}",
                r.body
            );
            prop_assert!(o.get("text").is_some_and(Value::is_string), "{}", r.body);
            if error {
                prop_assert!(o["error"]["code"].is_string(), "{}", r.body);
                prop_assert!(o["error"]["message"].is_string(), "{}", r.body);
            }
        }
    }
    Ok(())
}

/// Well-formed TwiML: the one envelope, its text escaped, only characters XML 1.0 allows.
fn valid_twiml(body: &str) -> Check {
    let inner = body
        .strip_prefix(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>"#)
        .and_then(|b| b.strip_suffix("</Message></Response>"));
    let Some(inner) = inner else {
        return Err(TestCaseError::fail(format!("not TwiML: {body}")));
    };
    prop_assert!(!inner.contains('<'), "raw < in {body}");
    for (i, _) in inner.match_indices('&') {
        let rest = &inner[i..];
        prop_assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|e| rest.starts_with(e)),
            "bare & in {body}"
        );
    }
    let xml_char = |c: char| {
        matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}'
    };
    prop_assert!(
        inner.chars().all(xml_char),
        "a character XML forbids in {body:?}"
    );
    Ok(())
}

/// An SMS response valid in `d`; `error`: a 4xx.
fn valid_sms(d: SmsDialect, r: &RawResponse, error: bool) -> Check {
    if error {
        is_4xx(r)?;
    } else {
        prop_assert_eq!(r.status, 200);
    }
    match d {
        SmsDialect::Kannel => {
            prop_assert_eq!(r.content_type, RawResponse::TEXT);
            prop_assert!(!r.body.is_empty(), "Kannel sends the body as an SMS");
        }
        SmsDialect::Twilio => {
            prop_assert!(r.content_type.starts_with("text/xml"));
            valid_twiml(&r.body)?;
        }
        SmsDialect::Json => {
            let o = json_object_of(r)?;
            prop_assert!(o.get("text").is_some_and(Value::is_string), "{}", r.body);
            if error {
                prop_assert!(o["error"]["code"].is_string(), "{}", r.body);
            }
        }
        SmsDialect::AfricasTalking => {
            prop_assert!(!r.body.is_empty());
            if !error {
                prop_assert_eq!(r.body.as_str(), "OK");
            }
        }
        SmsDialect::Jasmin => {
            if error {
                prop_assert!(r.body.starts_with("Error: "), "{}", r.body);
            } else {
                prop_assert_eq!(r.body.as_str(), "ACK/Jasmin");
            }
        }
    }
    Ok(())
}

/// A reply text that might reach a renderer (menus and data sources fill them).
fn reply_text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,200}", "\\PC{0,200}", "[<>&\"'\\x00-\\x1f]{0,20}"]
}

/// Parses `w` as `d`: an error renders as a valid 4xx; a hop renders both kinds of reply.
fn ussd_answers(d: UssdDialect, w: &Webhook, text: &str) -> Check {
    match d.parse(&w.request()) {
        Err(e) => valid_ussd(d, &d.render_error(&e), true),
        Ok(inbound) => {
            prop_assert!(!inbound.session_id.trim().is_empty(), "{}", d.name());
            prop_assert!(!inbound.msisdn.is_empty(), "{}", d.name());
            for end in [false, true] {
                let reply = Reply {
                    text: text.to_string(),
                    end,
                };
                valid_ussd(d, &d.render(&reply, &inbound.session_id), false)?;
            }
            Ok(())
        }
    }
}

const TWILIO_TOKEN: &str = "property-token";
const TWILIO_URL: &str = "https://gateway.example/sms/twilio";

fn twilio_auth() -> SmsAuth {
    SmsAuth {
        twilio_token: Some(TWILIO_TOKEN.into()),
        public_url: Some(TWILIO_URL.into()),
    }
}

/// Parses `w` as `d`: an error renders as a valid 4xx; a message renders a valid reply.
fn sms_answers(d: SmsDialect, w: &Webhook, text: &str) -> Check {
    match d.parse(&w.request(), &twilio_auth()) {
        Err(e) => valid_sms(d, &d.render_error(&e), true),
        Ok(hook) => {
            prop_assert!(!hook.inbound.from.trim().is_empty(), "{}", d.name());
            prop_assert!(!hook.inbound.to.trim().is_empty(), "{}", d.name());
            valid_sms(
                d,
                &d.render(&SmsReply::new(text.to_string()), &hook.inbound),
                false,
            )
        }
    }
}

/// Parses `w` as a delivery report: an error is a 4xx with a text; a report gets the ack.
fn dlr_answers(d: DlrDialect, w: &Webhook) -> Check {
    match d.parse(&w.request()) {
        Err(e) => {
            let r = d.render_error(&e);
            is_4xx(&r)?;
            prop_assert!(!r.body.trim().is_empty());
        }
        Ok(_) => {
            let ack = d.ack();
            prop_assert_eq!(ack.status, 200);
            prop_assert!(["OK\n", "OK", "ACK/Jasmin"].contains(&ack.body.as_str()));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The parsers.

#[test]
fn every_ussd_parser_answers_any_webhook_in_its_dialect() {
    check((webhook(), reply_text()), |(w, text)| {
        for d in UssdDialect::ALL {
            ussd_answers(d, &w, &text)?;
        }
        Ok(())
    });
}

#[test]
fn ussd_webhooks_with_every_field_hostile_get_a_valid_answer() {
    const AT: &[&str] = &["sessionId", "serviceCode", "phoneNumber", "text"];
    const HUBTEL: &[&str] = &[
        "Type",
        "SessionId",
        "Mobile",
        "Message",
        "ServiceCode",
        "Sequence",
    ];
    const JSON: &[&str] = &[
        "session_id",
        "msisdn",
        "service_code",
        "type",
        "input",
        "seq",
    ];
    let cases = (
        (full_form(AT), any::<bool>()).prop_map(|(f, raw)| form(&f, raw).into_bytes()),
        full_json(HUBTEL),
        full_json(JSON),
        reply_text(),
    );
    check(cases, |(at, hubtel, json, text)| {
        ussd_answers(UssdDialect::AfricasTalking, &post(at), &text)?;
        ussd_answers(UssdDialect::Hubtel, &post(hubtel), &text)?;
        ussd_answers(UssdDialect::Json, &post(json), &text)
    });
}

#[test]
fn every_sms_parser_answers_any_webhook_in_its_dialect() {
    check((webhook(), reply_text()), |(w, text)| {
        for d in SmsDialect::ALL {
            sms_answers(d, &w, &text)?;
        }
        Ok(())
    });
}

#[test]
fn sms_webhooks_with_every_field_hostile_get_a_valid_answer() {
    const KANNEL: &[&str] = &["from", "to", "text", "id", "coding", "charset"];
    const TWILIO: &[&str] = &["From", "To", "Body", "MessageSid"];
    const JSON: &[&str] = &["id", "from", "to", "text"];
    const AT: &[&str] = &["from", "to", "text", "id", "linkId", "date"];
    const JASMIN: &[&str] = &["id", "from", "to", "coding", "content", "binary"];
    let cases = (
        (
            full_form(KANNEL),
            any::<bool>(),
            proptest::collection::vec(header(), 0..3),
        ),
        full_form(TWILIO),
        full_json(JSON),
        full_form(AT),
        (full_form(JASMIN), any::<bool>()),
        reply_text(),
    );
    check(cases, |(kannel, twilio, json, at, jasmin, text)| {
        let (kannel, get, headers) = kannel;
        let kannel_form = form(&kannel, false);
        let w = if get {
            Webhook {
                method: "GET",
                query: Some(kannel_form),
                headers,
                body: Vec::new(),
            }
        } else {
            Webhook {
                method: "POST",
                query: Some(kannel_form),
                headers,
                body: kannel
                    .iter()
                    .find(|(k, _)| k == "text")
                    .map_or_else(Vec::new, |(_, v)| v.clone()),
            }
        };
        sms_answers(SmsDialect::Kannel, &w, &text)?;

        // Twilio, signed as Twilio signs: the parser gets past the signature.
        let params: Vec<(String, String)> = twilio
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        let signature = tamtam::adapters::twilio_signature(TWILIO_TOKEN, TWILIO_URL, &params);
        let pairs: Vec<(String, Vec<u8>)> = params
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        let w = Webhook {
            headers: vec![("x-twilio-signature".into(), signature)],
            ..post(form(&pairs, false).into_bytes())
        };
        sms_answers(SmsDialect::Twilio, &w, &text)?;

        sms_answers(SmsDialect::Json, &post(json), &text)?;
        sms_answers(
            SmsDialect::AfricasTalking,
            &post(form(&at, false).into_bytes()),
            &text,
        )?;
        let (jasmin, get) = jasmin;
        let w = if get {
            Webhook {
                method: "GET",
                query: Some(form(&jasmin, false)),
                ..post(Vec::new())
            }
        } else {
            post(form(&jasmin, false).into_bytes())
        };
        sms_answers(SmsDialect::Jasmin, &w, &text)
    });
}

#[test]
fn every_delivery_report_parser_answers_any_request() {
    const FIELDS: &[&str] = &[
        "id",
        "status",
        "message_status",
        "err",
        "failureReason",
        "sender",
    ];
    let hostile = (full_form(FIELDS), any::<bool>()).prop_map(|(f, in_query)| {
        let f = form(&f, false);
        if in_query {
            Webhook {
                query: Some(f),
                ..post(Vec::new())
            }
        } else {
            post(f.into_bytes())
        }
    });
    check(prop_oneof![webhook(), hostile], |w| {
        for d in DlrDialect::ALL {
            dlr_answers(d, &w)?;
        }
        Ok(())
    });
}
