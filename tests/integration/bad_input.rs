//! Bad input over real HTTP: every malformed webhook gets a 4xx whose body is valid for
//! its dialect and says what was wrong; odd but well-formed hops get a polite END; nothing
//! gets a 5xx, and the gateway keeps serving.

use tamtam::adapters::Dialect;

use crate::support::Captured;
use crate::support::{parse_screen, Phone, Screen, Server};

async fn post(server: &Server, dialect: Dialect, body: Vec<u8>) -> Screen {
    let resp = reqwest::Client::new()
        .post(server.url(dialect))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert!(
        status < 500,
        "{}: status {status} for a bad request: {text}",
        dialect.name()
    );
    parse_screen(dialect, status, &text)
}

fn assert_rejected(s: &Screen, status: u16, says: &str, what: &str) {
    assert_eq!(s.status, status, "{what}: {s:?}");
    assert!(s.end, "{what}: an error ends the session: {s:?}");
    assert!(
        s.text.contains(says),
        "{what}: {:?} should mention {says:?}",
        s.text
    );
}

#[tokio::test]
async fn malformed_webhooks_get_a_clear_4xx_in_their_dialect() {
    let server = Server::start(None).await;
    let at = Dialect::AfricasTalking;
    let hubtel = Dialect::Hubtel;
    let json = Dialect::Json;
    let cases: Vec<(Dialect, Vec<u8>, u16, &str)> = vec![
        (at, b"serviceCode=*144%23&phoneNumber=%2B2250700000001&text=".to_vec(), 400, "sessionId"),
        (at, b"sessionId=a&phoneNumber=%2B2250700000001".to_vec(), 400, "serviceCode"),
        (at, b"sessionId=a&serviceCode=*144%23".to_vec(), 400, "phoneNumber"),
        (at, b"sessionId=a&serviceCode=*144%23&phoneNumber=1&text=%FF".to_vec(), 400, "UTF-8"),
        (at, vec![b's', b'=', 0xff, 0xfe], 400, "UTF-8"),
        (hubtel, b"{\"Type\":".to_vec(), 400, "format illisible"),
        (hubtel, b"not json at all".to_vec(), 400, "format illisible"),
        (hubtel, br#"{"Type":"Initiation","SessionId":"s","Message":"*144#"}"#.to_vec(), 400, "Mobile"),
        (hubtel, br#"{"Type":"Response","SessionId":"s","Mobile":"225","Message":"1","ServiceCode":"144","Sequence":"deux"}"#.to_vec(), 400, "Sequence"),
        (hubtel, br#"{"Type":"Checkout","SessionId":"s","Mobile":"225","ServiceCode":"144"}"#.to_vec(), 400, "Type"),
        (hubtel, b"{\"Type\":\"Initiation\",\"SessionId\":\"\xff\"}".to_vec(), 400, "UTF-8"),
        (json, b"[]".to_vec(), 400, "format illisible"),
        (json, br#"{"msisdn":"+2250700000001","service_code":"*144#"}"#.to_vec(), 400, "session_id"),
        (json, br#"{"session_id":"s","msisdn":"+1","service_code":"*144#","type":"input"}"#.to_vec(), 400, "input"),
        (json, br#"{"session_id":"s","msisdn":"+1","service_code":"*144#","seq":-1,"input":"1"}"#.to_vec(), 400, "format illisible"),
    ];
    for (dialect, body, status, says) in cases {
        let what = format!("{} {:?}", dialect.name(), String::from_utf8_lossy(&body));
        let s = post(&server, dialect, body).await;
        assert_rejected(&s, status, says, &what);
    }

    // The JSON dialect says what was wrong with a stable code.
    let resp = reqwest::Client::new()
        .post(server.url(json))
        .body(r#"{"session_id":"s","service_code":"*144#"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "missing_field");
    assert!(v["error"]["message"].as_str().unwrap().contains("msisdn"));

    // Over the body limit (64 KiB by default): 413, in each dialect's format.
    for dialect in Dialect::USSD {
        let big = vec![b'a'; server.config.max_body_bytes + 1];
        let s = post(&server, dialect, big).await;
        assert_rejected(&s, 413, "octets", dialect.name());
    }

    // Wrong method: 405, still in the dialect's format.
    for dialect in Dialect::USSD {
        let resp = reqwest::Client::new()
            .get(server.url(dialect))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let s = parse_screen(dialect, status, &resp.text().await.unwrap());
        assert_rejected(&s, 405, "POST", dialect.name());
    }

    // After all that, the gateway still serves.
    for dialect in Dialect::USSD {
        let mut phone = Phone::new(&server, dialect, "*144#", "+2250700000001");
        let s = phone.dial().await;
        assert_eq!(s.status, 200);
        assert!(!s.end && s.text.contains("1. "), "{s:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn unknown_codes_and_sessions_get_a_polite_end() {
    let server = Server::start(None).await;
    let at = b"sessionId=x1&serviceCode=*999%23&phoneNumber=%2B2250700000001&text=".to_vec();
    let s = post(&server, Dialect::AfricasTalking, at).await;
    assert_eq!((s.status, s.end), (200, true));
    assert!(s.text.contains("pas disponible"), "{s:?}");

    let hubtel = br#"{"Type":"Initiation","SessionId":"x2","Mobile":"2250700000001","Message":"*999#","ServiceCode":"999","Sequence":1}"#.to_vec();
    let s = post(&server, Dialect::Hubtel, hubtel).await;
    assert_eq!((s.status, s.end), (200, true));
    assert!(s.text.contains("pas disponible"), "{s:?}");

    // A non-initial hop for a session nobody started.
    let hubtel = br#"{"Type":"Response","SessionId":"never-seen","Mobile":"2250700000001","Message":"2","ServiceCode":"144","Sequence":3}"#.to_vec();
    let s = post(&server, Dialect::Hubtel, hubtel).await;
    assert_eq!((s.status, s.end), (200, true));
    assert!(s.text.contains("expir"), "{s:?}");
    let json = br#"{"session_id":"never-seen","msisdn":"+2250700000001","service_code":"*144#","input":"2","seq":3}"#.to_vec();
    let s = post(&server, Dialect::Json, json).await;
    assert_eq!((s.status, s.end), (200, true));
    assert!(s.text.contains("expir"), "{s:?}");
    server.stop().await;
}

/// Deterministic garbage (a small linear congruential generator): no body crashes the
/// gateway, every answer is well formed for its dialect, and none is a 5xx.
#[tokio::test]
async fn garbage_never_gets_a_5xx() {
    let server = Server::start(None).await;
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    };
    let pieces: &[&[u8]] = &[
        b"sessionId=",
        b"serviceCode=*144%23",
        b"text=",
        b"&",
        b"=",
        b"%",
        b"*",
        b"{",
        b"}",
        b"\"Type\":\"Response\"",
        b"\"SessionId\":\"g\"",
        b",",
        b":",
        b"\xff",
        b"\"",
        b"1*2*98",
        b"phoneNumber=%2B225",
        b"\"Mobile\":\"225\"",
        b"null",
        b"[",
        b"]",
        b"00",
    ];
    for i in 0..300 {
        let dialect = Dialect::USSD[i % 3];
        let mut body = Vec::new();
        for _ in 0..(next() % 12) {
            body.extend_from_slice(pieces[(next() as usize) % pieces.len()]);
        }
        post(&server, dialect, body).await;
    }
    let mut phone = Phone::new(&server, Dialect::Json, "*144#", "+2250700000001");
    assert_eq!(phone.dial().await.status, 200);
    server.stop().await;
}

/// serde quotes the values it cannot read (`invalid type: integer `2250700000001``): a
/// number sent where a string belongs must reach neither the INFO log nor the 4xx body,
/// which still says which field was wrong, in the dialect's format.
#[tokio::test]
async fn a_rejected_webhook_never_logs_or_echoes_the_subscriber_s_number() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The test's runtime has one thread: the server's tasks log through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    // With a single subscriber registered, tracing-core lets whichever thread meets a log's
    // callsite first decide for all threads: a test on another thread, with no subscriber,
    // would cache the rejection's callsite as never enabled. A second registered subscriber
    // makes it ask every registered subscriber instead.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let server = Server::start(None).await;
    let bodies: Vec<(Dialect, &[u8])> = vec![
        (
            Dialect::Json,
            br#"{"session_id":"s","msisdn":2250700000001,"service_code":"*144#"}"#,
        ),
        (
            Dialect::Json,
            br#"{"session_id":"s","msisdn":"+1","service_code":"*144#","input":"1","seq":"2250700000001"}"#,
        ),
        (
            Dialect::Json,
            br#"{"session_id":"s","msisdn":"+1","service_code":"*144#","2250700000001":1}"#,
        ),
        (
            Dialect::Hubtel,
            br#"{"Type":"Response","SessionId":"s","Mobile":"1","Message":"1","ServiceCode":"144","Sequence":"2250700000001x"}"#,
        ),
        (
            Dialect::Hubtel,
            br#"{"Type":"2250700000001","SessionId":"s","Mobile":"1","ServiceCode":"144"}"#,
        ),
    ];
    for (dialect, body) in bodies {
        let what = String::from_utf8_lossy(body).into_owned();
        let resp = reqwest::Client::new()
            .post(server.url(dialect))
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 400, "{what}: {text}");
        assert!(
            !text.contains("0700000001"),
            "{what}: the 4xx echoes the number: {text}"
        );
        let screen = parse_screen(dialect, status, &text);
        assert!(screen.end, "{what}: {screen:?}");
    }
    // The first body's answer names the field at fault.
    let resp = reqwest::Client::new()
        .post(server.url(Dialect::Json))
        .body(r#"{"session_id":"s","msisdn":2250700000001,"service_code":"*144#"}"#)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "malformed", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("`msisdn` must be a string"), "{message}");
    server.stop().await;

    let logs = logs.text();
    assert_eq!(
        logs.matches("rejected webhook").count(),
        6,
        "every rejection is logged: {logs}"
    );
    assert!(
        !logs.contains("0700000001"),
        "a log line carries the number: {logs}"
    );
}
