//! Proves the real-Kannel harness (`kannel.rs`) before the gateway's Kannel adapter exists:
//! a tiny service in the test answers Kannel's `/sms/kannel` calls with fixed replies keyed on
//! the MO text, and the MTs Kannel delivers to the phone are checked exactly (text, coding,
//! parts), as are the requests Kannel made (GET query, POST headers and body).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use crate::kannel::{is_gsm7, Kannel, KannelMode, MoCoding, Mt};

const PHONE: &str = "2250700000001";
const SHORT_CODE: &str = "1234";

/// One call Kannel made to the service.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    /// The raw query string (GET).
    query: String,
    headers: HeaderMap,
    /// The MO text, decoded with the charset Kannel declared.
    text: String,
    /// `charset=` (GET) or the Content-Type charset (POST).
    charset: String,
    /// `coding=` (GET) or `X-Kannel-Coding` (POST).
    coding: String,
}

type Calls = Arc<Mutex<Vec<Seen>>>;

/// A 400-character GSM text: three SMS.
fn long_text() -> String {
    (0..40).map(|i| format!("mot-{i:03}-ok ")).collect()
}

/// 150 UCS-2 characters: three SMS of at most 67.
fn long_unicode() -> String {
    "Reçu ’ç’ ê ".repeat(15)
}

/// The fixed replies, keyed on the MO text: (body, needs X-Kannel-Coding: 2).
fn reply_for(text: &str) -> (String, bool) {
    match text {
        "PING" => ("PONG é à".into(), false),
        "LONG" => (long_text(), false),
        "UNI" => ("Reçu ’ç’".into(), true),
        "LONGUNI" => (long_unicode(), true),
        "VIDE" => (String::new(), false),
        "LIGNES" => ("ligne 1\nligne 2".into(), false),
        other => {
            let body = format!("Reçu : {other}");
            let ucs2 = !is_gsm7(&body);
            (body, ucs2)
        }
    }
}

/// Kannel's url-encoding: `+` is a space, `%XX` a byte.
fn form_bytes(s: &str) -> Vec<u8> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus).collect()
}

/// Text bytes in Kannel's declared charset.
fn decode(bytes: &[u8], charset: &str) -> String {
    if charset.eq_ignore_ascii_case("UTF-16BE") {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).expect("UTF-16BE text")
    } else {
        String::from_utf8(bytes.to_vec()).expect("UTF-8 text")
    }
}

async fn service(
    State(calls): State<Calls>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (text_bytes, charset, coding) = if method == Method::GET {
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| form_bytes(v))
                .unwrap_or_default()
        };
        let charset = String::from_utf8(param("charset")).unwrap();
        let coding = String::from_utf8(param("coding")).unwrap();
        (param("text"), charset, coding)
    } else {
        // `text/plain; charset="UTF-16BE"`: Kannel quotes the charset.
        let ct = header("content-type");
        let charset = ct
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("charset="))
            .map(|c| c.trim_matches('"').to_string())
            .next()
            .unwrap_or_default();
        (body.to_vec(), charset, header("x-kannel-coding"))
    };
    let text = decode(&text_bytes, &charset);
    let (reply, ucs2) = reply_for(&text);
    calls.lock().unwrap().push(Seen {
        method,
        query,
        headers,
        text,
        charset,
        coding,
    });
    let mut resp = (
        StatusCode::OK,
        [("content-type", "text/plain; charset=UTF-8")],
        reply,
    )
        .into_response();
    if ucs2 {
        resp.headers_mut()
            .insert("x-kannel-coding", HeaderValue::from_static("2"));
    }
    resp
}

/// Starts the service on an ephemeral loopback port: its `/sms/kannel` URL and its log.
async fn start_service() -> (String, Calls) {
    let calls = Calls::default();
    let app = Router::new()
        .route("/sms/kannel", any(service))
        .with_state(Arc::clone(&calls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sms/kannel", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

fn last_call(calls: &Calls) -> Seen {
    calls
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("Kannel called the service")
}

fn reply(text: &str, coding: u8, parts: usize) -> Mt {
    Mt {
        from: SHORT_CODE.into(),
        to: PHONE.into(),
        text: text.into(),
        coding,
        parts,
    }
}

#[tokio::test]
async fn kannel_get_url_round_trips_gsm_unicode_long_multiline_and_empty_replies() {
    let (url, calls) = start_service().await;
    let kannel = Kannel::start(&url, KannelMode::Get).await;

    // A GSM MO; a reply with GSM accents stays GSM.
    kannel.send_mo(PHONE, SHORT_CODE, "PING").await;
    assert_eq!(kannel.next_mt().await, reply("PONG é à", 0, 1));
    let seen = last_call(&calls);
    assert_eq!(seen.method, Method::GET);
    for part in [
        format!("from={PHONE}"),
        format!("to={SHORT_CODE}"),
        "text=PING".into(),
        "smsc=fake".into(),
        "coding=0".into(),
        "charset=UTF-8".into(),
    ] {
        assert!(seen.query.contains(&part), "{part} in {}", seen.query);
    }
    let id = seen
        .query
        .split('&')
        .find_map(|kv| kv.strip_prefix("id="))
        .unwrap_or_default();
    assert_eq!(id.len(), 36, "id=%I is a UUID: {}", seen.query);
    assert!(seen.query.contains("&time="), "{}", seen.query);

    // A reply that needs UCS-2 arrives exactly when the service says X-Kannel-Coding: 2.
    kannel.send_mo(PHONE, SHORT_CODE, "UNI").await;
    assert_eq!(kannel.next_mt().await, reply("Reçu ’ç’", 2, 1));

    // A UCS-2 MO ("ç" is not GSM): %b is the UTF-16BE bytes, charset=UTF-16BE, coding=2.
    kannel.send_mo(PHONE, SHORT_CODE, "Numéro reçu ?").await;
    assert_eq!(kannel.next_mt().await, reply("Reçu : Numéro reçu ?", 2, 1));
    let seen = last_call(&calls);
    assert_eq!(seen.text, "Numéro reçu ?");
    assert_eq!(
        (seen.coding.as_str(), seen.charset.as_str()),
        ("2", "UTF-16BE")
    );
    assert!(
        seen.query
            .contains("text=%00N%00u%00m%00%E9%00r%00o%00+%00r%00e%00%E7%00u%00+%00%3F&"),
        "{}",
        seen.query
    );

    // The same MO as GSM (a phone may send é as GSM): UTF-8 in %b, charset=UTF-8.
    kannel
        .send_mo_as(PHONE, SHORT_CODE, "Numéro reçu ?", MoCoding::Gsm)
        .await;
    assert_eq!(kannel.next_mt().await, reply("Reçu : Numéro reçu ?", 2, 1));
    let seen = last_call(&calls);
    assert_eq!(seen.text, "Numéro reçu ?");
    assert_eq!(
        (seen.coding.as_str(), seen.charset.as_str()),
        ("0", "UTF-8")
    );
    assert!(
        seen.query.contains("text=Num%C3%A9ro+re%C3%A7u+%3F&"),
        "{}",
        seen.query
    );

    // An ASCII MO sent as UCS-2 on purpose.
    kannel
        .send_mo_as(PHONE, SHORT_CODE, "PING", MoCoding::Ucs2)
        .await;
    assert_eq!(kannel.next_mt().await, reply("PONG é à", 0, 1));
    assert_eq!(last_call(&calls).coding, "2");

    // Long replies: concatenated parts, reassembled.
    kannel.send_mo(PHONE, SHORT_CODE, "LONG").await;
    assert_eq!(kannel.next_mt().await, reply(&long_text(), 0, 3));
    kannel.send_mo(PHONE, SHORT_CODE, "LONGUNI").await;
    assert_eq!(kannel.next_mt().await, reply(&long_unicode(), 2, 3));

    // A newline in a reply, and an empty reply (omit-empty = false).
    kannel.send_mo(PHONE, SHORT_CODE, "LIGNES").await;
    assert_eq!(kannel.next_mt().await, reply("ligne 1\nligne 2", 0, 1));
    kannel.send_mo(PHONE, SHORT_CODE, "VIDE").await;
    assert_eq!(
        kannel.next_mt().await,
        reply("<Empty reply from service provider>", 0, 1)
    );

    assert_eq!(calls.lock().unwrap().len(), 9, "one service call per MO");
}

#[tokio::test]
async fn kannel_post_url_sends_the_text_in_the_body_and_sendsms_reaches_the_phone() {
    let (url, calls) = start_service().await;
    let kannel = Kannel::start(&url, KannelMode::Post).await;

    kannel.send_mo(PHONE, SHORT_CODE, "PING").await;
    assert_eq!(kannel.next_mt().await, reply("PONG é à", 0, 1));
    let seen = last_call(&calls);
    assert_eq!(seen.method, Method::POST);
    // Kannel substitutes %I in a post-url too: the message id arrives as ?id=<uuid>.
    let id = seen.query.strip_prefix("id=").unwrap_or_default();
    assert_eq!(
        id.len(),
        36,
        "post-url ?id=%I carries the UUID: {}",
        seen.query
    );
    assert_eq!(seen.text, "PING");
    let h = |name: &str| seen.headers[name].to_str().unwrap().to_string();
    assert_eq!(h("x-kannel-from"), PHONE);
    assert_eq!(h("x-kannel-to"), SHORT_CODE);
    assert_eq!(h("x-kannel-coding"), "0");
    assert_eq!(h("content-type"), "text/plain; charset=\"UTF-8\"");

    kannel.send_mo(PHONE, SHORT_CODE, "Numéro reçu ?").await;
    assert_eq!(kannel.next_mt().await, reply("Reçu : Numéro reçu ?", 2, 1));
    let seen = last_call(&calls);
    assert_eq!(seen.text, "Numéro reçu ?");
    assert_eq!(
        (seen.coding.as_str(), seen.charset.as_str()),
        ("2", "UTF-16BE")
    );

    // The sendsms interface, for outbound tests: a UCS-2 MT straight to the phone.
    let resp = reqwest::Client::new()
        .get(kannel.sendsms_url())
        .query(&[
            ("username", kannel.sendsms_username.as_str()),
            ("password", kannel.sendsms_password.as_str()),
            ("from", SHORT_CODE),
            ("to", PHONE),
            ("text", "Alerte : reçu ’ok’"),
            ("charset", "UTF-8"),
            ("coding", "2"),
        ])
        .send()
        .await
        .expect("smsbox's sendsms answers");
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert!(status.is_success(), "sendsms: {status} {body}");
    assert_eq!(kannel.next_mt().await, reply("Alerte : reçu ’ok’", 2, 1));
    assert_eq!(
        calls.lock().unwrap().len(),
        2,
        "sendsms does not call the service"
    );
}
