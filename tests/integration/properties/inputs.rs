//! The inputs of the properties: field names and hostile values, forms, JSON, webhooks.

use proptest::prelude::*;
use serde_json::Value;
use tamtam::adapters::RawRequest;

/// Every field name any dialect reads, so that arbitrary maps hit real fields.
pub(super) const FIELD_NAMES: &[&str] = &[
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
pub(super) const WORDS: &[&str] = &[
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
pub(super) fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(FIELD_NAMES).prop_map(str::to_string),
        1 => ".{0,12}",
    ]
}

/// A hostile value, as bytes (forms may carry bytes that are not UTF-8).
pub(super) fn value_bytes() -> impl Strategy<Value = Vec<u8>> {
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
pub(super) fn long() -> impl Strategy<Value = String> {
    const PIECES: &[&str] = &["1", "%", "%2", "*1", "é", "a%26b=", "{", "\\u0000", " "];
    (proptest::sample::select(PIECES), 1000usize..4000).prop_map(|(p, n)| p.repeat(n))
}

/// `pairs` as a form (percent-encoded), sometimes with raw separators left in.
pub(super) fn form(pairs: &[(String, Vec<u8>)], raw: bool) -> String {
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
pub(super) fn json_value() -> impl Strategy<Value = Value> {
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
pub(super) fn json_object() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec((name(), json_value()), 0..10).prop_map(|kv| {
        Value::Object(kv.into_iter().collect())
            .to_string()
            .into_bytes()
    })
}

/// The body of a webhook: arbitrary bytes, a form, or a JSON object.
#[derive(Debug, Clone)]
pub(super) struct Webhook {
    pub(super) method: &'static str,
    pub(super) query: Option<String>,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Webhook {
    pub(super) fn request(&self) -> RawRequest<'_> {
        RawRequest {
            method: self.method,
            path: "/hook",
            query: self.query.as_deref(),
            headers: &self.headers,
            body: &self.body,
        }
    }
}

pub(super) fn header() -> impl Strategy<Value = (String, String)> {
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
pub(super) fn webhook() -> impl Strategy<Value = Webhook> {
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
pub(super) fn full_form(
    required: &'static [&'static str],
) -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
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
pub(super) fn full_json(required: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
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

pub(super) fn post(body: Vec<u8>) -> Webhook {
    Webhook {
        method: "POST",
        query: None,
        headers: Vec::new(),
        body,
    }
}
