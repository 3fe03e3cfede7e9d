//! End to end through a real Kannel: fakesmsc plays the phone, bearerbox and smsbox carry
//! the messages, the gateway answers. What the phone receives must be exactly what the
//! gateway answers on its JSON SMS dialect for the same texts (another phone, same short
//! code), with the right data coding and number of parts.
//!
//! Below that, what Kannel itself does, which the Kannel adapter is written against: a
//! tiny service in the test answers Kannel's calls with fixed replies keyed on the MO
//! text, and both the MTs Kannel delivers to the phone (text, coding, parts) and the
//! requests Kannel made (GET query, POST headers and body, `%I` ids, UTF-16BE for UCS-2
//! MOs, empty replies, `sendsms`) are checked exactly. If a Kannel upgrade changes one of
//! these, the adapter's assumptions fail here, by name.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use crate::sms::{send, Via};
use crate::support::kannel::{is_gsm7, Kannel, KannelMode, MoCoding, Mt};
use crate::support::Server;

/// One SMS of a script: what the phone sends, and fragments its answer must hold.
struct Step {
    to: &'static str,
    text: &'static str,
    coding: MoCoding,
    expect: &'static [&'static str],
}

const SCRIPT: &[Step] = &[
    // A keyword answer with French accents (GSM-7 ones: é, à are kept).
    Step {
        to: "144",
        text: "SMSC",
        coding: MoCoding::Auto,
        expect: &["+22501099099", "numéro", "malgré"],
    },
    // A two-step dialogue.
    Step {
        to: "144",
        text: "sim",
        coding: MoCoding::Auto,
        expect: &["Avez-vous votre carte MEMO ?", "1. Oui", "2. Non"],
    },
    Step {
        to: "144",
        text: "2",
        coding: MoCoding::Auto,
        expect: &["cinq (5)", "Familles et Amis"],
    },
    // An unknown keyword: the list of keywords.
    Step {
        to: "144",
        text: "bonjour",
        coding: MoCoding::Auto,
        expect: &["Envoyez un mot-clé", "CONSO", "SMSC"],
    },
    // A keyword typed with accents, sent by the phone as UCS-2.
    Step {
        to: "144",
        text: "Réactivation",
        coding: MoCoding::Ucs2,
        expect: &["Avez-vous toujours votre puce ?"],
    },
    // A UCS-2 reply (this tenant keeps accents), long enough for several parts, cut with SUITE.
    Step {
        to: "202",
        text: "LITIGE",
        coding: MoCoding::Auto,
        expect: &["l’opérateur", "Envoyez SUITE"],
    },
    Step {
        to: "202",
        text: "suite",
        coding: MoCoding::Auto,
        expect: &["dborne@cpme.fr"],
    },
    // 1088 answers anything with the consumption.
    Step {
        to: "1088",
        text: "bonjour",
        coding: MoCoding::Auto,
        expect: &["Consommation du mois en cours"],
    },
];

async fn run(mode: KannelMode) {
    let server = Server::start(None).await;
    let kannel = Kannel::start(&format!("{}/sms/kannel", server.base), mode).await;
    let phone = "+2250700000321";
    let twin = "+2250700000654";
    let opt_phone = "+687700321";
    // aide answers French lines only (its `sms_destinations`).
    let (fr_phone, fr_twin) = ("+33600000321", "+33600000654");
    for (i, step) in SCRIPT.iter().enumerate() {
        // The consumption answer is the caller's own record and ends at once: compare it
        // with the same number's answer. Dialogue steps use a twin phone, so as not to
        // disturb the dialogue under test.
        let (from, other) = match step.to {
            "1088" => (opt_phone, opt_phone),
            "202" => (fr_phone, fr_twin),
            _ => (phone, twin),
        };
        kannel
            .send_mo_as(from, step.to, step.text, step.coding)
            .await;
        let mt = kannel.next_mt().await;
        let at = format!("{mode:?} step {} ({:?} to {})", i + 1, step.text, step.to);
        assert_eq!(mt.to, from, "{at}: delivered to the sender");
        assert_eq!(mt.from, step.to, "{at}: sent from the short code");
        for e in step.expect {
            assert!(mt.text.contains(e), "{at}: expected {e:?} in {:?}", mt.text);
        }
        // The same text from another phone on the JSON dialect: the same answer, but for
        // the caller's own number where the answer quotes it.
        let twin_reply = send(
            &server,
            Via::Json,
            &format!("twin-{mode:?}-{i}"),
            other,
            step.to,
            step.text,
        )
        .await;
        assert_eq!(
            mt.text,
            twin_reply.text.replace(other, from),
            "{at}: the phone got what the gateway answered"
        );
        let segments = tamtam::text::sms_segments(&mt.text);
        let expected_coding = match segments.encoding {
            tamtam::text::Encoding::Gsm7 => 0,
            tamtam::text::Encoding::Ucs2 => 2,
        };
        assert_eq!(mt.coding, expected_coding, "{at}: data coding");
        assert_eq!(mt.parts, segments.count, "{at}: parts");
        assert!(mt.parts <= 3, "{at}: at most 3 parts");
    }
    // The long UCS-2 answer really was several parts.
    drop(kannel);
    server.stop().await;
}

#[tokio::test]
async fn kannel_get_url_carries_keywords_dialogues_and_ucs2() {
    run(KannelMode::Get).await;
}

#[tokio::test]
async fn kannel_post_url_carries_keywords_dialogues_and_ucs2() {
    run(KannelMode::Post).await;
}

// What Kannel itself does (the facts the Kannel adapter relies on).

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
