//! What the fuzz targets share: one fuzzer input cut into a webhook, and the checks that an
//! answer is valid in its dialect (a failed check panics, which libFuzzer reports as a crash
//! and saves in `fuzz/artifacts/`).

#![allow(dead_code)]

use tamtam::adapters::{RawRequest, RawResponse};

/// A webhook cut from fuzzer bytes: `[selector, query \0\0 header value \0\0 body]`.
pub struct Webhook {
    pub selector: u8,
    pub method: &'static str,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

const METHODS: [&str; 4] = ["POST", "POST", "GET", "HEAD"];
const HEADERS: [&str; 6] = [
    "content-type",
    "x-kannel-from",
    "x-kannel-coding",
    "host",
    "x-twilio-signature",
    "x-forwarded-proto",
];

impl Webhook {
    pub fn cut(data: &[u8]) -> Option<Webhook> {
        let (&selector, rest) = data.split_first()?;
        let mut parts = split(rest, b"\0\0");
        let body = parts.pop().unwrap_or_default();
        let header = parts.pop();
        let query = parts.pop();
        let headers = header
            .map(|h| {
                let name = HEADERS[usize::from(selector >> 4) % HEADERS.len()];
                vec![(name.to_string(), String::from_utf8_lossy(&h).into_owned())]
            })
            .unwrap_or_default();
        Some(Webhook {
            selector,
            method: METHODS[usize::from(selector >> 2) % METHODS.len()],
            query: query.map(|q| String::from_utf8_lossy(&q).into_owned()),
            headers,
            body: body.to_vec(),
        })
    }

    pub fn request(&self) -> RawRequest<'_> {
        RawRequest {
            method: self.method,
            path: "/hook",
            query: self.query.as_deref(),
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// At most three parts, the last one keeping any further separators.
fn split(data: &[u8], sep: &[u8]) -> Vec<Vec<u8>> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() < 2 {
        match rest.windows(sep.len()).position(|w| w == sep) {
            Some(i) => {
                parts.push(rest[..i].to_vec());
                rest = &rest[i + sep.len()..];
            }
            None => break,
        }
    }
    parts.push(rest.to_vec());
    parts
}

pub fn assert_4xx(r: &RawResponse) {
    assert!((400..500).contains(&r.status), "status {}", r.status);
}

pub fn json_object(r: &RawResponse) -> serde_json::Map<String, serde_json::Value> {
    assert_eq!(r.content_type, RawResponse::JSON);
    match serde_json::from_str(&r.body) {
        Ok(serde_json::Value::Object(o)) => o,
        other => panic!("not a JSON object: {other:?}: {}", r.body),
    }
}
