//! The SMS channel over real HTTP: conversation scripts (`tests/sms_conversations/*.toml`)
//! through every SMS dialect (Kannel `get-url` and `post-url`, signed Twilio-style, JSON)
//! on both stores, retried webhooks, signatures, and bad input. One conversation's replies
//! are pinned in full (`tests/golden/sms/`).

use serde::Deserialize;
use tamtam::adapters::twilio_signature;

use crate::support::checks::fragments;
use crate::support::scripts::{check_golden, play_scripts, Script};
use crate::support::{redis_url, script_time, unique_prefix, Server, TWILIO_TEST_TOKEN};

/// The ways an SMS reaches tamtam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    KannelGet,
    KannelPost,
    Twilio,
    Json,
}

pub const ALL: [Via; 4] = [Via::KannelGet, Via::KannelPost, Via::Twilio, Via::Json];

/// An SMS as the phone gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub status: u16,
    pub text: String,
    /// `gsm7` or `ucs2`, as the dialect says it.
    pub encoding: String,
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn unescape_xml(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Sends one SMS `from` → `to` with message id `id`, the way `via` does.
pub async fn send(server: &Server, via: Via, id: &str, from: &str, to: &str, text: &str) -> Sms {
    let client = reqwest::Client::new();
    let resp = match via {
        Via::KannelGet => client
            .get(format!(
                "{}/sms/kannel?from={}&to={}&text={}&id={}&smsc=fake&coding=0&charset=UTF-8&time=1700000000",
                server.base,
                enc(from),
                enc(to),
                enc(text),
                enc(id)
            ))
            .send()
            .await
            .unwrap(),
        Via::KannelPost => client
            .post(format!("{}/sms/kannel?id={}", server.base, enc(id)))
            .header("content-type", "text/plain; charset=UTF-8")
            .header("x-kannel-from", from)
            .header("x-kannel-to", to)
            .header("x-kannel-coding", "0")
            .body(text.to_string())
            .send()
            .await
            .unwrap(),
        Via::Twilio => {
            let params: Vec<(String, String)> = [
                ("From", from),
                ("To", to),
                ("Body", text),
                ("MessageSid", id),
                ("NumMedia", "0"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let url = format!("{}/sms/twilio", server.base);
            let sig = twilio_signature(TWILIO_TEST_TOKEN, &url, &params);
            let body = params
                .iter()
                .map(|(k, v)| format!("{k}={}", enc(v)))
                .collect::<Vec<_>>()
                .join("&");
            client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap()
        }
        Via::Json => client
            .post(format!("{}/sms/json", server.base))
            .body(serde_json::json!({"id": id, "from": from, "to": to, "text": text}).to_string())
            .send()
            .await
            .unwrap(),
    };
    read(via, resp).await
}

/// Reads a reply, failing the test when it is not well formed for the dialect.
pub async fn read(via: Via, resp: reqwest::Response) -> Sms {
    let status = resp.status().as_u16();
    let coding = resp
        .headers()
        .get("x-kannel-coding")
        .map(|v| v.to_str().unwrap().to_string());
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.text().await.unwrap();
    match via {
        Via::KannelGet | Via::KannelPost => {
            assert!(content_type.starts_with("text/plain"), "{content_type}");
            assert!(
                !body.trim().is_empty(),
                "Kannel must never get an empty reply"
            );
            let encoding = if coding.as_deref() == Some("2") {
                "ucs2"
            } else {
                "gsm7"
            };
            Sms {
                status,
                text: body,
                encoding: encoding.into(),
            }
        }
        Via::Twilio => {
            assert!(content_type.starts_with("text/xml"), "{content_type}");
            let inner = body
                .split_once("<Response><Message>")
                .and_then(|(_, rest)| rest.rsplit_once("</Message></Response>"))
                .unwrap_or_else(|| panic!("not TwiML: {body}"))
                .0;
            let text = unescape_xml(inner);
            let encoding = tamtam::text::measure(&text).encoding.as_str().to_string();
            Sms {
                status,
                text,
                encoding,
            }
        }
        Via::Json => {
            let v: serde_json::Value =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
            Sms {
                status,
                text: v["text"].as_str().expect("text").to_string(),
                encoding: v["encoding"].as_str().unwrap_or("").to_string(),
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Conversation {
    description: String,
    to: String,
    msisdn: String,
    sms: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    send: String,
    #[serde(default)]
    expect: Vec<String>,
    #[serde(default)]
    absent: Vec<String>,
    encoding: Option<String>,
    max_segments: Option<usize>,
}

impl Script for Conversation {
    type Dialect = Via;

    fn steps(&self) -> usize {
        self.sms.len()
    }

    fn inputs(&self) -> Vec<String> {
        self.sms.iter().map(|s| s.send.clone()).collect()
    }

    async fn play(
        &self,
        server: &Server,
        via: Via,
        file: &str,
        failures: &mut Vec<String>,
    ) -> Vec<String> {
        let policy = server
            .config
            .tenants
            .iter()
            .find(|t| t.sms_codes.contains(&self.to))
            .map(|t| t.sms_text)
            .unwrap_or_else(|| panic!("{file}: no tenant for {}", self.to));
        let mut transcript = Vec::new();
        for (i, step) in self.sms.iter().enumerate() {
            let id = format!("{file}-{i}-{via:?}");
            let sms = send(server, via, &id, &self.msisdn, &self.to, &step.send).await;
            let at = format!("{file} ({}) [{via:?}] SMS {}", self.description, i + 1);
            if sms.status != 200 {
                failures.push(format!("{at}: status {}", sms.status));
            }
            fragments(failures, &at, &sms.text, policy, &step.expect, &step.absent);
            if let Some(e) = &step.encoding {
                if &sms.encoding != e {
                    failures.push(format!("{at}: encoding {} instead of {e}", sms.encoding));
                }
            }
            let parts = tamtam::text::sms_segments(&sms.text).count;
            if let Some(max) = step.max_segments {
                if parts > max {
                    failures.push(format!("{at}: {parts} parts, at most {max}"));
                }
            }
            if parts > 3 {
                failures.push(format!("{at}: {parts} parts, over the tenant's cap of 3"));
            }
            transcript.push(sms.text);
        }
        transcript
    }
}

/// SMS conversations whose every reply is pinned in full under `tests/golden/sms/`.
const GOLDEN: [&str; 1] = ["moov_sim_dialogue.toml"];

/// Plays every SMS conversation through every SMS dialect (a gateway per dialect:
/// dialogues are keyed by subscriber and short code), then compares the golden ones.
async fn play_all<F, Fut>(start: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Server>,
{
    let played =
        play_scripts::<Conversation, _, _>("tests/sms_conversations", 8, &ALL, start).await;
    check_golden(&played, &GOLDEN, "sms");
}

#[tokio::test]
async fn sms_conversations_in_memory() {
    play_all(|| Server::start_at(None, script_time())).await;
}

#[tokio::test]
async fn sms_conversations_on_redis() {
    let url = redis_url();
    play_all(|| {
        let prefix = unique_prefix("sms");
        let url = url.clone();
        async move { Server::start_at(Some((&url, &prefix)), script_time()).await }
    })
    .await;
}

#[tokio::test]
async fn a_retried_webhook_gets_the_same_reply_and_is_processed_once() {
    let url = redis_url();
    let server = Server::start(Some((&url, &unique_prefix("sms-retry")))).await;
    for via in ALL {
        let from = format!("+22507000009{}", via as u8);
        let question = send(&server, via, &format!("q-{via:?}"), &from, "144", "SIM").await;
        assert!(question.text.contains("MEMO"), "{via:?}: {question:?}");
        let id = format!("a-{via:?}");
        let answer = send(&server, via, &id, &from, "144", "2").await;
        assert!(answer.text.contains("cinq (5)"), "{via:?}: {answer:?}");
        // The dialogue is over; processed again, "2" would get the keyword list.
        let retry = send(&server, via, &id, &from, "144", "2").await;
        assert_eq!(retry, answer, "{via:?}: a retry gets the same reply");
        let fresh = send(&server, via, &format!("b-{via:?}"), &from, "144", "2").await;
        assert!(
            fresh.text.contains("Envoyez un mot-clé"),
            "{via:?}: {fresh:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn ucs2_replies_are_flagged_for_kannel() {
    let server = Server::start(None).await;
    // aide's SMS policy keeps accents: "l’opérateur" needs UCS-2.
    let sms = send(
        &server,
        Via::KannelGet,
        "u1",
        "+33600000009",
        "202",
        "LITIGE",
    )
    .await;
    assert_eq!(sms.encoding, "ucs2", "{sms:?}");
    // moov-ci transliterates: GSM-7, no coding header.
    let sms = send(
        &server,
        Via::KannelGet,
        "u2",
        "+2250700000001",
        "144",
        "SMSC",
    )
    .await;
    assert_eq!(sms.encoding, "gsm7", "{sms:?}");
    assert!(tamtam::text::is_gsm7(&sms.text));
    server.stop().await;
}

#[tokio::test]
async fn bad_sms_webhooks_get_a_clear_4xx_in_their_dialect() {
    let server = Server::start(None).await;
    let client = reqwest::Client::new();
    let base = &server.base;

    // Kannel: a missing sender; invalid UTF-8 declared as UTF-8.
    let r = client
        .get(format!("{base}/sms/kannel?to=144&text=SIM"))
        .send()
        .await
        .unwrap();
    let s = read(Via::KannelGet, r).await;
    assert_eq!(s.status, 400);
    assert!(s.text.contains("from"), "{s:?}");
    let r = client
        .get(format!(
            "{base}/sms/kannel?from=1&to=144&text=%E7&charset=UTF-8"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(read(Via::KannelGet, r).await.status, 400);

    // Twilio: unsigned, wrongly signed, signed for another URL.
    let body = "From=%2B2250700000001&To=144&Body=SIM&MessageSid=SMx";
    for sig in [None, Some("AAAA"), Some("GvWf1cFY/Q7PnoempGyD5oXAezc=")] {
        let mut req = client
            .post(format!("{base}/sms/twilio"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(sig) = sig {
            req = req.header("x-twilio-signature", sig);
        }
        let s = read(Via::Twilio, req.send().await.unwrap()).await;
        assert_eq!(s.status, 403, "{sig:?}: {s:?}");
    }

    // JSON: malformed, missing field, too large.
    let r = client
        .post(format!("{base}/sms/json"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(read(Via::Json, r).await.status, 400);
    let r = client
        .post(format!("{base}/sms/json"))
        .body(r#"{"from":"+1","text":"x"}"#)
        .send()
        .await
        .unwrap();
    let s = read(Via::Json, r).await;
    assert_eq!(s.status, 400);
    assert!(s.text.contains("to"), "{s:?}");
    let big = format!(
        r#"{{"from":"+1","to":"144","text":"{}"}}"#,
        "a".repeat(70_000)
    );
    let r = client
        .post(format!("{base}/sms/json"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(read(Via::Json, r).await.status, 413);

    // An unknown short code: a polite SMS, not an error.
    let s = send(&server, Via::Json, "x1", "+2250700000001", "9999", "SIM").await;
    assert_eq!(s.status, 200);
    assert!(s.text.contains("ne répond pas"), "{s:?}");
    server.stop().await;
}
