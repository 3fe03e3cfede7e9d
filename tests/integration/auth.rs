//! Authentication at the edge, over real HTTP: a forged USSD hop, SMS or delivery report
//! is refused in its dialect's 401/403 format and changes nothing (no session written,
//! nothing queued, no status changed); each mechanism lets the right credentials through;
//! `X-Forwarded-For` counts only from a trusted proxy; an HMAC outside its window is a
//! replay; `/messages/{id}` lives on the admin listener; secrets never reach the logs;
//! `tamtam check` refuses an open channel on a public listener.

use std::process::{Command, Stdio};
use std::sync::Arc;

use tamtam::adapters::Dialect;
use tamtam::app::Options;
use tamtam::auth::{hmac_signature, ChannelAuth, Cidr, HmacAuth, Secret};
use tamtam::config::Config;
use tamtam::session::{MemoryStore, Store};

use crate::outbox_worker::out;
use crate::support::outbox_fake::{client, get_message, json_statuses, post_form, tamtam_bin};
use crate::support::Captured;
use crate::support::{parse_screen, root, script_time, shipped_config, test_options, Server};

const SECRET: &str = "hubtel-shared-secret";
const USER: &str = "africastalking";
const PASSWORD: &str = "basic-password-value";
const HMAC_KEY: &str = "json-hmac-key-value";
const SMS_SECRET: &str = "at-sms-secret-value";

/// The shipped configuration with every mechanism on some channel: Hubtel a shared secret,
/// Africa's Talking USSD Basic, JSON USSD an HMAC, Africa's Talking SMS a secret in the
/// query, Kannel an allow-list.
fn guarded_config(trusted_proxies: &[&str]) -> Config {
    let mut config = shipped_config(None);
    for c in &mut config.channels {
        c.auth = match c.dialect {
            Dialect::Hubtel => ChannelAuth {
                secret: Some(Secret::new(SECRET)),
                ..ChannelAuth::default()
            },
            Dialect::AfricasTalking => ChannelAuth {
                basic: Some((USER.into(), Secret::new(PASSWORD))),
                ..ChannelAuth::default()
            },
            Dialect::Json => ChannelAuth {
                hmac: Some(HmacAuth {
                    key: Secret::new(HMAC_KEY),
                    window_secs: 300,
                }),
                ..ChannelAuth::default()
            },
            Dialect::AtSms => ChannelAuth {
                secret: Some(Secret::new(SMS_SECRET)),
                ..ChannelAuth::default()
            },
            Dialect::Kannel => ChannelAuth {
                allow: vec![Cidr::parse("192.0.2.0/24").unwrap()],
                ..ChannelAuth::default()
            },
            _ => c.auth.clone(),
        };
    }
    config.trusted_proxies = trusted_proxies
        .iter()
        .map(|p| Cidr::parse(p).unwrap())
        .collect();
    config
}

/// A guarded gateway on a memory store the test can look into, its clock stopped.
async fn guarded(trusted_proxies: &[&str]) -> (Server, MemoryStore) {
    let store = MemoryStore::new();
    let now = script_time();
    let options = Options {
        store: Some(Store::Memory(store.clone())),
        clock: Some(tamtam::gateway::Clock(Arc::new(move || now))),
        ..test_options()
    };
    (
        Server::build(guarded_config(trusted_proxies), options).await,
        store,
    )
}

async fn post(
    url: &str,
    content_type: &str,
    body: &str,
    headers: &[(&str, String)],
    basic: Option<(&str, &str)>,
) -> (u16, String) {
    let mut req = client()
        .post(url)
        .header("content-type", content_type)
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    if let Some((u, p)) = basic {
        req = req.basic_auth(u, Some(p));
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A request to try: dialect, body, content type, headers, Basic credentials, and what is
/// expected (a status, or nothing).
type Attempt<'a, E> = (
    Dialect,
    &'a str,
    &'a str,
    Vec<(&'a str, String)>,
    Option<(&'a str, &'a str)>,
    E,
);

#[tokio::test]
async fn forged_ussd_hops_are_refused_in_their_dialect_and_write_no_session() {
    let (server, store) = guarded(&[]).await;
    let hubtel = r#"{"Type":"Initiation","SessionId":"victim","Mobile":"2250700000042","Message":"*144*7#","ServiceCode":"144","Sequence":1}"#;
    let at = "sessionId=victim&serviceCode=%2A144%23&phoneNumber=%2B2250700000042&text=7";
    let json = r#"{"session_id":"victim","msisdn":"+687700001","service_code":"*100*1#"}"#;
    let now = script_time();
    let signed = |at: i64| {
        vec![
            ("x-tamtam-timestamp", at.to_string()),
            (
                "x-tamtam-signature",
                format!("sha256={}", hmac_signature(HMAC_KEY, at, json.as_bytes())),
            ),
        ]
    };
    let wrong_sig = vec![
        ("x-tamtam-timestamp", now.to_string()),
        (
            "x-tamtam-signature",
            hmac_signature("guess", now, json.as_bytes()),
        ),
    ];
    let form = "application/x-www-form-urlencoded";
    let js = "application/json";
    // (dialect, body, content type, headers, basic, expected status)
    let forged: Vec<Attempt<'_, u16>> = vec![
        (Dialect::Hubtel, hubtel, js, vec![], None, 401),
        (
            Dialect::Hubtel,
            hubtel,
            js,
            vec![("x-tamtam-secret", "guess".into())],
            None,
            403,
        ),
        (Dialect::AfricasTalking, at, form, vec![], None, 401),
        (
            Dialect::AfricasTalking,
            at,
            form,
            vec![],
            Some((USER, "guess")),
            403,
        ),
        (
            Dialect::AfricasTalking,
            at,
            form,
            vec![],
            Some(("someone", PASSWORD)),
            403,
        ),
        (Dialect::Json, json, js, vec![], None, 401),
        (Dialect::Json, json, js, wrong_sig, None, 403),
        // A signature captured and replayed later than the window.
        (Dialect::Json, json, js, signed(now - 301), None, 403),
    ];
    for (dialect, body, ct, headers, basic, status) in forged {
        let (code, text) = post(&server.url(dialect), ct, body, &headers, basic).await;
        assert_eq!(code, status, "{}: {text}", dialect.name());
        let screen = parse_screen(dialect, code, &text);
        assert!(screen.end, "{}: {screen:?}", dialect.name());
        assert!(!text.contains("onsommation"), "{}: {text}", dialect.name());
    }
    assert_eq!(store.len(), 0, "a refused hop writes nothing");

    // The right credentials go through, and only then is a session written.
    let ok: Vec<Attempt<'_, ()>> = vec![
        (
            Dialect::Hubtel,
            hubtel,
            js,
            vec![("x-tamtam-secret", SECRET.into())],
            None,
            (),
        ),
        (
            Dialect::AfricasTalking,
            at,
            form,
            vec![],
            Some((USER, PASSWORD)),
            (),
        ),
        (Dialect::Json, json, js, signed(now - 299), None, ()),
    ];
    for (dialect, body, ct, headers, basic, ()) in ok {
        let (code, text) = post(&server.url(dialect), ct, body, &headers, basic).await;
        assert_eq!(code, 200, "{}: {text}", dialect.name());
        assert!(text.contains("onsommation"), "{}: {text}", dialect.name());
    }
    assert!(!store.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_basic_refusal_asks_for_credentials() {
    let (server, _) = guarded(&[]).await;
    let resp = client()
        .post(server.url(Dialect::AfricasTalking))
        .body("sessionId=s&serviceCode=%2A144%23&phoneNumber=%2B2250700000001&text=")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"].to_str().unwrap(),
        "Basic realm=\"tamtam\""
    );
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with("END Demande invalide : authentification requise"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_forged_sms_is_refused_and_queues_or_answers_nothing() {
    let (server, _) = guarded(&[]).await;
    let mo = [
        ("from", "+2250700000042"),
        ("to", "144"),
        ("text", "CONSO"),
        ("id", "ATXid_forged"),
        ("linkId", "L"),
    ];
    let url = server.url(Dialect::AtSms);
    let (code, body) = post_form(&url, &mo).await;
    assert_eq!(code, 401, "{body}");
    let (code, body) = post_form(&format!("{url}?secret=guess"), &mo).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        server.outbox_ready().await,
        0,
        "nothing queued for a forged MO"
    );
    // The secret in the callback URL's query, as an aggregator that only takes a URL sends it.
    let (code, body) = post_form(&format!("{url}?secret={SMS_SECRET}"), &mo).await;
    assert_eq!((code, body.as_str()), (200, "OK"));
    assert_eq!(server.outbox_ready().await, 1);

    // Kannel from an address outside its allow-list (the test's 127.0.0.1).
    let kannel = format!(
        "{}?from=%2B2250700000042&to=144&text=CONSO&id=k-forged",
        server.url(Dialect::Kannel)
    );
    let resp = client().get(&kannel).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with("Demande invalide : acces refuse"),
        "{text}"
    );
    // X-Forwarded-For from a peer that is not a trusted proxy is not believed.
    let resp = client()
        .get(&kannel)
        .header("x-forwarded-for", "192.0.2.7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    server.stop().await;
}

#[tokio::test]
async fn x_forwarded_for_counts_when_a_trusted_proxy_sends_it() {
    let (server, _) = guarded(&["127.0.0.1"]).await;
    let kannel = format!(
        "{}?from=%2B2250700000042&to=144&text=CONSO&id=k-proxied",
        server.url(Dialect::Kannel)
    );
    let get = |xff: &'static str| {
        let kannel = kannel.clone();
        async move {
            let resp = client()
                .get(&kannel)
                .header("x-forwarded-for", xff)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let (code, text) = get("192.0.2.7").await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("onsommation"), "{text}");
    // A forged left-most entry does not help a caller outside the list.
    assert_eq!(get("192.0.2.7, 203.0.113.5").await.0, 403);
    server.stop().await;
}

#[tokio::test]
async fn a_forged_delivery_report_is_refused_and_changes_no_status() {
    let server = Server::start(None).await;
    let m = out("kannel", "+2250700000001", "Bonjour");
    server.outbox.accept(&m).await.unwrap();
    let forged = [
        (
            format!("{}/dlr/kannel?id={}&status=1", server.base, m.id),
            401,
        ),
        (
            format!(
                "{}/dlr/kannel?id={}&status=16&secret=guess",
                server.base, m.id
            ),
            403,
        ),
    ];
    for (url, status) in forged {
        let (code, body) = post_form(&url, &[]).await;
        assert_eq!(code, status, "{url}: {body}");
    }
    for route in ["jasmin", "at"] {
        let (code, body) = post_form(
            &format!("{}/dlr/{route}", server.base),
            &[
                ("id", "x"),
                ("message_status", "hacked"),
                ("status", "hacked"),
            ],
        )
        .await;
        assert_eq!(code, 401, "{route}: {body}");
    }
    let (code, v) = get_message(&server.admin, &m.id).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        json_statuses(&v),
        ["accepted"],
        "refused reports change nothing: {v}"
    );

    let (code, _) = post_form(
        &format!("{}&id={}&status=1", server.dlr_url("kannel"), m.id),
        &[],
    )
    .await;
    assert_eq!(code, 200);
    let (_, v) = get_message(&server.admin, &m.id).await;
    assert_eq!(json_statuses(&v), ["accepted", "delivered"], "{v}");
    server.stop().await;
}

#[tokio::test]
async fn message_statuses_are_served_on_the_admin_listener_only() {
    let server = Server::start(None).await;
    let m = out("kannel", "+2250700000001", "Bonjour");
    server.outbox.accept(&m).await.unwrap();
    let (code, _) = get_message(&server.admin, &m.id).await;
    assert_eq!(code, 200);
    let resp = client()
        .get(format!("{}/messages/{}", server.base, m.id))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        404,
        "the public listener has no /messages"
    );
    for base in [&server.base, &server.admin] {
        for path in ["/healthz", "/readyz"] {
            let resp = client().get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{base}{path}");
        }
    }
    // Webhooks are not on the admin listener.
    let resp = client()
        .post(format!("{}/ussd/json", server.admin))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    server.stop().await;
}

#[tokio::test]
async fn secrets_never_reach_the_logs_and_refusals_are_logged_once_per_source() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    // The test's runtime has one thread: the server's tasks log through this subscriber
    // (see bad_input.rs for why a second dispatch is registered).
    let _guard = tracing::subscriber::set_default(subscriber);
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let mut config = guarded_config(&[]);
    // One channel left open: `serve` names it at WARN.
    config.channels.retain(|c| c.dialect != Dialect::SmsJson);
    config.channels.push(tamtam::config::Mount {
        dialect: Dialect::SmsJson,
        path: "/sms/open".into(),
        public_url: None,
        auth_token_env: None,
        sender: None,
        auth: ChannelAuth::default(),
        hop_timeout: tamtam::config::DEFAULT_HOP_TIMEOUT,
    });
    let server = Server::build(config, test_options()).await;
    let hubtel = r#"{"Type":"Initiation","SessionId":"s","Mobile":"2250700000001","Message":"*144#","ServiceCode":"144","Sequence":1}"#;
    for guess in ["guess-one-value", "guess-two-value", "guess-three-value"] {
        let (code, _) = post(
            &server.url(Dialect::Hubtel),
            "application/json",
            hubtel,
            &[("x-tamtam-secret", guess.to_string())],
            None,
        )
        .await;
        assert_eq!(code, 403);
    }
    let (code, _) = post(
        &server.url(Dialect::Hubtel),
        "application/json",
        hubtel,
        &[("x-tamtam-secret", SECRET.to_string())],
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = post_form(
        &format!(
            "{}/dlr/kannel?id=x&status=1&secret=guess-dlr-value",
            server.base
        ),
        &[],
    )
    .await;
    assert_eq!(code, 403);
    let (code, _) = post_form(&format!("{}&id=x&status=1", server.dlr_url("kannel")), &[]).await;
    assert_eq!(code, 404);
    server.stop().await;

    let text = logs.text();
    for secret in [
        SECRET,
        PASSWORD,
        HMAC_KEY,
        SMS_SECRET,
        crate::support::DLR_SECRET,
        "guess-one-value",
        "guess-two-value",
        "guess-dlr-value",
    ] {
        assert!(!text.contains(secret), "`{secret}` in the logs:\n{text}");
    }
    let refusals = text
        .lines()
        .filter(|l| l.contains("refused an unauthenticated request"))
        .count();
    assert_eq!(
        refusals, 1,
        "four refusals from one source, one line:\n{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("WARN")
            && l.contains("unauthenticated channel")
            && l.contains("/sms/open")),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.contains("unauthenticated channel") && l.contains("/ussd/hubtel")),
        "{text}"
    );
}

#[test]
fn check_refuses_an_open_channel_on_a_public_listener_naming_it() {
    let run = |listen: &str| {
        let out = Command::new(tamtam_bin())
            .arg("check")
            .env("TAMTAM_CONFIG", root().join("config/tamtam.toml"))
            .env("TAMTAM_LISTEN", listen)
            .env_remove("TAMTAM_REDIS_URL")
            .env_remove("TAMTAM_ADMIN_LISTEN")
            .stdin(Stdio::null())
            .output()
            .expect("running the tamtam binary");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = run("0.0.0.0:8080");
    assert_eq!(code, Some(1), "{stdout}");
    for path in [
        "/ussd/at",
        "/ussd/hubtel",
        "/ussd/json",
        "/sms/kannel",
        "/sms/json",
        "/sms/at",
        "/sms/jasmin",
    ] {
        let needle = format!(
            "config/tamtam.toml:channel: error: {path}: no authentication on the non-loopback listener 0.0.0.0:8080"
        );
        assert!(stdout.contains(&needle), "{needle} in\n{stdout}");
    }
    assert!(
        !stdout.contains("/sms/twilio: no authentication"),
        "{stdout}"
    );
    let (code, stdout) = run("127.0.0.1:8080");
    assert_eq!(code, Some(0), "{stdout}");
}
