//! Properties (proptest) over everything that reads outside input: every webhook parser
//! (USSD, SMS, delivery reports), the menu loader and the configuration loader, fed
//! arbitrary bytes and hostile but plausible inputs (field maps with any keys, forms with
//! every required field holding a hostile value, real files with values swapped, deep and
//! huge TOML within a size bound). Each must answer and never panic: an error is a 4xx
//! whose body is valid in the dialect, a success renders a valid reply, a loader reports
//! every problem as `file:place: message`. One more property runs whole USSD sessions
//! through the gateway (memory store): every hop gets a screen that fits the USSD limits.
//!
//! 256 cases per property (proptest's default; `PROPTEST_CASES` raises it), no Redis, a
//! few seconds in all. A failure prints the shrunk input: make it a named regression test
//! next to the code it broke. Longer, coverage-guided runs: the cargo-fuzz targets in
//! `fuzz/`.

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::Value;
use tamtam::adapters::{DlrDialect, RawRequest, RawResponse, SmsAuth, SmsDialect, UssdDialect};
use tamtam::config::{Config, Overrides};
use tamtam::gateway::Gateway;
use tamtam::menu::LoadOptions;
use tamtam::message::{dial_parts, Hop, Inbound, Reply, SmsReply};
use tamtam::session::{MemoryStore, Store};
use tamtam::text::UssdLimits;

use crate::support;

type Check = Result<(), TestCaseError>;

/// Runs `test` on values of `strategy`; panics with the shrunk failing input.
fn check<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Check)
where
    S::Value: std::fmt::Debug,
{
    let config = ProptestConfig {
        // Failures become named regression tests, not files next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------
// Inputs.

/// Every field name any dialect reads, so that arbitrary maps hit real fields.
const FIELD_NAMES: &[&str] = &[
    "sessionId",
    "serviceCode",
    "phoneNumber",
    "text",
    "networkCode",
    "from",
    "to",
    "id",
    "linkId",
    "date",
    "coding",
    "charset",
    "smsc",
    "time",
    "content",
    "binary",
    "origin-connector",
    "priority",
    "validity",
    "message_status",
    "status",
    "err",
    "failureReason",
    "sender",
    "Body",
    "From",
    "To",
    "MessageSid",
    "session_id",
    "msisdn",
    "service_code",
    "type",
    "input",
    "seq",
    "Type",
    "SessionId",
    "Mobile",
    "Message",
    "ServiceCode",
    "Sequence",
];

/// Words some field expects, so that hostile maps reach past the first checks.
const WORDS: &[&str] = &[
    "start",
    "input",
    "end",
    "initiation",
    "Initiation",
    "response",
    "release",
    "timeout",
    "UTF-16BE",
    "UCS-2",
    "ISO-8859-1",
    "UTF-8",
    "0",
    "2",
    "8",
    "1",
    "16",
    "DELIVRD",
    "Success",
    "Failed",
    "*144#",
    "*144*1*2#",
    "144",
    "+2250700000001",
    "",
];

/// A field name: a known one, or anything.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(FIELD_NAMES).prop_map(str::to_string),
        1 => ".{0,12}",
    ]
}

/// A hostile value, as bytes (forms may carry bytes that are not UTF-8).
fn value_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => proptest::sample::select(WORDS).prop_map(|w| w.as_bytes().to_vec()),
        2 => ".{0,40}".prop_map(String::into_bytes),
        1 => "[0-9+*#]{0,40}".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
        1 => long().prop_map(String::into_bytes),
    ]
}

/// A long value (1,000 to 4,000 repeats of a short piece): built at once, not character
/// by character, so that huge inputs stay cheap to generate.
fn long() -> impl Strategy<Value = String> {
    const PIECES: &[&str] = &["1", "%", "%2", "*1", "é", "a%26b=", "{", "\\u0000", " "];
    (proptest::sample::select(PIECES), 1000usize..4000).prop_map(|(p, n)| p.repeat(n))
}

/// `pairs` as a form (percent-encoded), sometimes with raw separators left in.
fn form(pairs: &[(String, Vec<u8>)], raw: bool) -> String {
    let enc = |b: &[u8]| {
        percent_encoding::percent_encode(b, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    pairs
        .iter()
        .map(|(k, v)| {
            if raw {
                format!("{k}={}", String::from_utf8_lossy(v))
            } else {
                format!("{}={}", enc(k.as_bytes()), enc(v))
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        proptest::sample::select(WORDS).prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "[0-9]{0,30}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((name(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A JSON object with known and arbitrary keys.
fn json_object() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec((name(), json_value()), 0..10).prop_map(|kv| {
        Value::Object(kv.into_iter().collect())
            .to_string()
            .into_bytes()
    })
}

/// The body of a webhook: arbitrary bytes, a form, or a JSON object.
#[derive(Debug, Clone)]
struct Webhook {
    method: &'static str,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Webhook {
    fn request(&self) -> RawRequest<'_> {
        RawRequest {
            method: self.method,
            path: "/hook",
            query: self.query.as_deref(),
            headers: &self.headers,
            body: &self.body,
        }
    }
}

fn header() -> impl Strategy<Value = (String, String)> {
    const NAMES: &[&str] = &[
        "content-type",
        "x-kannel-from",
        "x-kannel-to",
        "x-kannel-coding",
        "host",
        "x-twilio-signature",
        "x-forwarded-proto",
    ];
    (
        proptest::sample::select(NAMES).prop_map(str::to_string),
        prop_oneof![
            proptest::sample::select(WORDS).prop_map(str::to_string),
            Just("text/plain; charset=UTF-16BE".to_string()),
            ".{0,30}",
        ],
    )
}

/// Any webhook: arbitrary bytes or text in every part, forms and JSON with any fields.
fn webhook() -> impl Strategy<Value = Webhook> {
    let method = proptest::sample::select(["POST", "GET", "HEAD", "PUT"].as_slice());
    let fields = || proptest::collection::vec((name(), value_bytes()), 0..12);
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (fields(), any::<bool>()).prop_map(|(f, raw)| form(&f, raw).into_bytes()),
        json_object(),
    ];
    let query = proptest::option::of(prop_oneof![
        (fields(), any::<bool>()).prop_map(|(f, raw)| form(&f, raw)),
        ".{0,60}",
    ]);
    (
        method,
        query,
        proptest::collection::vec(header(), 0..4),
        body,
    )
        .prop_map(|(method, query, headers, body)| Webhook {
            method,
            query,
            headers,
            body,
        })
}

/// A form holding every field of `required` (hostile values) and a few others.
fn full_form(required: &'static [&'static str]) -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    (
        proptest::collection::vec(value_bytes(), required.len()),
        proptest::collection::vec((name(), value_bytes()), 0..4),
    )
        .prop_map(move |(values, extra)| {
            let mut pairs: Vec<(String, Vec<u8>)> =
                required.iter().map(|n| n.to_string()).zip(values).collect();
            pairs.extend(extra);
            pairs
        })
}

/// A JSON object holding every field of `required` (hostile values) and a few others.
fn full_json(required: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        4 => value_bytes().prop_map(|b| Value::from(String::from_utf8_lossy(&b).into_owned())),
        1 => json_value(),
    ];
    (
        proptest::collection::vec(value, required.len()),
        proptest::collection::vec((name(), json_value()), 0..3),
    )
        .prop_map(move |(values, extra)| {
            let mut obj: serde_json::Map<String, Value> =
                required.iter().map(|n| n.to_string()).zip(values).collect();
            obj.extend(extra);
            Value::Object(obj).to_string().into_bytes()
        })
}

fn post(body: Vec<u8>) -> Webhook {
    Webhook {
        method: "POST",
        query: None,
        headers: Vec::new(),
        body,
    }
}

// ---------------------------------------------------------------------------------------
// What a valid answer is, per dialect.

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

// ---------------------------------------------------------------------------------------
// The loaders.

/// A TOML value of any type, hostile where it can be.
fn toml_value() -> impl Strategy<Value = String> {
    let string = prop_oneof![
        proptest::sample::select(WORDS).prop_map(str::to_string),
        ".{0,40}",
        "[a-z_{}]{0,20}",
        Just("{".to_string()),
        Just("{msisdn}{{}}{".to_string()),
        Just("${TAMTAM_PROPERTY_UNSET}".to_string()),
        Just("(a*)*b".to_string()),
        Just("[".to_string()),
        Just("a{100000}".to_string()),
        Just("0.0.0.0:99999".to_string()),
        Just("lun-dim 25:00-07:61".to_string()),
        long(),
    ]
    .prop_map(|s| serde_json::to_string(&s).expect("a string serialises"));
    prop_oneof![
        4 => string,
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => Just("99999999999999999999".to_string()),
        1 => Just("0".to_string()),
        1 => Just("-1".to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:?}")),
        1 => Just("nan".to_string()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => Just("1979-05-27T07:32:00Z".to_string()),
        1 => Just("[]".to_string()),
        1 => Just("{}".to_string()),
        1 => Just(r#"["*144#", 1, true]"#.to_string()),
        1 => Just(r#"{ label = "x", next = "accueil" }"#.to_string()),
    ]
}

/// `text` with some `key = value` lines given hostile values, some lines dropped or doubled.
fn mutated(text: &'static str) -> impl Strategy<Value = String> {
    let edit = prop_oneof![
        4 => (any::<prop::sample::Index>(), toml_value()).prop_map(|(i, v)| (i, Some(v))),
        1 => (any::<prop::sample::Index>(), Just(None)),
    ];
    (proptest::collection::vec(edit, 1..8), any::<bool>()).prop_map(move |(edits, double)| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for (i, value) in edits {
            let i = i.index(lines.len());
            match value {
                Some(v) => {
                    if let Some((key, _)) = lines[i].split_once(" = ") {
                        lines[i] = format!("{key} = {v}");
                    }
                }
                None if double => {
                    let line = lines[i].clone();
                    lines.insert(i, line);
                }
                None => {
                    lines.remove(i);
                }
            }
        }
        lines.join("\n")
    })
}

/// Deep or wide TOML: `n` nested arrays, inline tables, dotted keys or header parts
/// (the parser stops at about a hundred levels, so `n` up to 300 crosses the limit), or
/// `n` screens. [`toml_nested_up_to_64_kib_is_reported_not_a_crash`] takes the largest.
fn deep_toml(n: usize, shape: usize) -> String {
    match shape {
        0 => format!("a = {}1{}", "[".repeat(n), "]".repeat(n)),
        1 => format!("a = {}1{}", "{ b = ".repeat(n), " }".repeat(n)),
        2 => format!("{} = 1", vec!["a"; n].join(".")),
        3 => format!("[{}]\nx = 1", vec!["s"; n].join(".")),
        _ => (0..n)
            .map(|i| format!("[screens.s{i}]\nkind = \"info\"\ntext = \"{i}\"\n"))
            .collect(),
    }
}

/// Any text a loader might be given.
fn loader_text(real: &'static [&'static str]) -> impl Strategy<Value = String> {
    let files = real.iter().map(|f| mutated(f)).collect::<Vec<_>>();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2000)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        proptest::collection::vec((name(), toml_value()), 0..10).prop_map(|kv| {
            kv.into_iter()
                .map(|(k, v)| format!("{} = {v}\n", serde_json::to_string(&k).unwrap()))
                .collect()
        }),
        proptest::strategy::Union::new(files),
        (1usize..300, 0usize..5).prop_map(|(n, shape)| deep_toml(n, shape)),
    ]
}

/// A small menu with every screen kind, SMS keywords and opening hours: what the loader
/// reads, in few lines (a shipped menu takes a tenth of a second to load in a debug build,
/// too slow for hundreds of cases; they are loaded whole by `tests/integration/menus.rs`).
const SMALL_MENU: &str = r#"[menu]
home = "accueil"
[texts]
invalid_choice = "Choix invalide."
[hours]
"1000" = ["lun-ven 07:30-15:45"]
[sms]
keywords = [
  { name = "CONSO", match = "CONSO|SOLDE", screen = "conso" },
]
[screens.accueil]
kind = "menu"
text = "Service client {msisdn}"
choices = [
  { label = "Opérateur", next = "operateur" },
  { label = "Consommation", next = "conso" },
  { label = "Horaires", next = "route" },
  { label = "Par SMS", next = "par_sms" },
]
[screens.operateur]
kind = "input"
text = "Quel est votre opérateur ?"
pattern = "[A-Za-z -]{2,30}"
error = "Tapez un nom."
retries = 3
save = "operateur"
next = "merci"
[screens.merci]
kind = "info"
text = "Merci {operateur}. Ouvert {next_open:1000}."
[screens.conso]
kind = "lookup"
source = "conso"
key = "{msisdn}"
text = "Crédit : {credit} F"
missing = "inconnu"
failed = "inconnu"
choices = [{ label = "Accueil", next = "accueil" }]
[screens.inconnu]
kind = "info"
text = "Numéro inconnu."
[screens.route]
kind = "router"
routes = [
  { open = "1000", next = "merci" },
  { prefix = ["+22507"], next = "inconnu" },
  { var = "operateur", matches = "(?i)orange", next = "merci" },
  { var = "operateur", equals = "pro", next = "merci" },
]
default = "inconnu"
[screens.par_sms]
kind = "sms"
screen = "merci"
"#;

const MENUS: &[&str] = &[SMALL_MENU];

/// Every diagnostic is `file:place: message`, and there is one when loading failed.
fn diagnostics_are_readable(file: &str, problems: &[tamtam::diagnostic::Diagnostic]) -> Check {
    for p in problems {
        let line = p.to_string();
        prop_assert!(line.starts_with(&format!("{file}:")), "{line}");
        prop_assert!(!p.message.trim().is_empty(), "{line}");
    }
    Ok(())
}

#[test]
fn the_menu_loader_reports_any_text_and_never_panics() {
    let options = LoadOptions {
        sources: [("conso".to_string(), vec!["credit".to_string()])]
            .into_iter()
            .collect(),
        ..LoadOptions::default()
    };
    check(loader_text(MENUS), |text| {
        let (menu, problems) = tamtam::menu::load("m.toml", &text, &options);
        diagnostics_are_readable("m.toml", &problems)?;
        let errors = problems
            .iter()
            .filter(|p| p.severity == tamtam::diagnostic::Severity::Error)
            .count();
        prop_assert_eq!(menu.is_some(), errors == 0, "{:?}", problems);
        Ok(())
    });
}

#[test]
fn the_configuration_loader_reports_any_text_and_never_panics() {
    const CONFIG: &[&str] = &[include_str!("../../config/tamtam.toml")];
    check(loader_text(CONFIG), |text| {
        match Config::parse("c.toml", &text, Path::new("."), &Overrides::default()) {
            Ok(_) => Ok(()),
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                diagnostics_are_readable("c.toml", &problems)
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// The whole gateway.

/// One step of a subscriber: an answer, the same hop again, or hanging up.
#[derive(Debug, Clone)]
enum Step {
    Answer(String),
    Retry,
    Release,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => "[0-9]{1,2}".prop_map(Step::Answer),
        2 => prop_oneof!["[0-9*#]{0,6}", ".{0,30}", "[a-zA-Z ]{0,12}"].prop_map(Step::Answer),
        1 => Just(Step::Retry),
        1 => Just(Step::Release),
    ]
}

/// A session: the dialect, the base code (index), direct-dial inputs, steps, the clock.
fn session() -> impl Strategy<Value = (usize, prop::sample::Index, Vec<String>, Vec<Step>, i64)> {
    (
        0usize..3,
        any::<prop::sample::Index>(),
        proptest::collection::vec("[0-9]{0,3}", 0..6),
        proptest::collection::vec(step(), 0..10),
        // Any hour of a fortnight, so that opening hours are open and closed.
        0i64..14 * 24 * 3600,
    )
}

#[test]
fn any_session_through_the_gateway_always_gets_a_screen_that_fits() {
    let config = support::shipped_config(None);
    let tenants = support::shipped_tenants(&config);
    let codes: Vec<String> = tenants
        .iter()
        .flat_map(|t| t.config.ussd_codes.clone())
        .collect();
    static NOW: AtomicI64 = AtomicI64::new(0);
    static SESSION: AtomicU64 = AtomicU64::new(0);
    let gateway = Gateway::new(tenants, &config, Store::Memory(MemoryStore::new())).with_clock(
        tamtam::gateway::Clock(Arc::new(|| NOW.load(Ordering::Relaxed))),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let limits = UssdLimits::default();

    check(session(), |(dialect, code, prefill, steps, offset)| {
        NOW.store(support::script_time() + offset, Ordering::Relaxed);
        let n = SESSION.fetch_add(1, Ordering::Relaxed);
        let session_id = format!("prop-{}-{n}", std::process::id());
        let msisdn = format!("+22507{:08}", n % 1000);
        let base = dial_parts(&codes[code.index(codes.len())])
            .expect("a shipped code is a dial string")
            .join("*");
        let dialled = std::iter::once(base.clone())
            .chain(prefill.iter().cloned())
            .collect::<Vec<_>>()
            .join("*");
        let (name, mut inputs) = match dialect {
            0 => ("africas_talking", prefill.clone()),
            1 => ("hubtel", Vec::new()),
            _ => ("json", Vec::new()),
        };
        let first = match dialect {
            0 => Inbound {
                session_id: session_id.clone(),
                msisdn: msisdn.clone(),
                service_code: format!("*{base}#"),
                hop: Hop::Path(inputs.join("*")),
            },
            _ => Inbound {
                session_id: session_id.clone(),
                msisdn: msisdn.clone(),
                service_code: format!("*{dialled}#"),
                hop: Hop::Start,
            },
        };
        let mut hops = vec![first];
        let mut seq = 1u64;
        for s in steps {
            let last = hops.last().expect("the first hop").clone();
            let hop = match s {
                Step::Retry => last.hop,
                Step::Release => Hop::Release,
                Step::Answer(text) if dialect == 0 => {
                    inputs.push(text);
                    Hop::Path(inputs.join("*"))
                }
                Step::Answer(text) => {
                    seq += 1;
                    Hop::Answer {
                        text,
                        seq: Some(seq),
                    }
                }
            };
            hops.push(Inbound { hop, ..last });
        }
        for hop in &hops {
            let (reply, _) = runtime.block_on(gateway.ussd(name, hop));
            prop_assert!(!reply.text.trim().is_empty(), "empty screen after {hop:?}");
            prop_assert!(
                limits.fits(&reply.text),
                "{} does not fit: {:?}",
                name,
                reply.text
            );
        }
        Ok(())
    });
}

#[test]
fn toml_nested_up_to_64_kib_is_reported_not_a_crash() {
    // Each shape at about 64 KiB: nesting far past the parser's limit, and 1,500 screens.
    for (shape, n) in [
        (0, 32_000),
        (1, 10_000),
        (2, 32_000),
        (3, 32_000),
        (4, 1_500),
    ] {
        let text = deep_toml(n, shape);
        assert!(
            text.len() <= 80 * 1024,
            "shape {shape}: {} bytes",
            text.len()
        );
        let (menu, problems) = tamtam::menu::load("m.toml", &text, &LoadOptions::default());
        assert!(menu.is_none() && !problems.is_empty(), "shape {shape}");
        assert!(
            problems[0].to_string().starts_with("m.toml"),
            "{}",
            problems[0]
        );
        let config = Config::parse("c.toml", &text, Path::new("."), &Overrides::default());
        let Err(problems) = config else {
            panic!("shape {shape} read as a configuration")
        };
        assert!(
            problems[0].to_string().starts_with("c.toml"),
            "{}",
            problems[0]
        );
    }
}
