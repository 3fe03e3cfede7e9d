//! Conversation scripts (`tests/conversations/*.toml`) played through every USSD dialect
//! over real HTTP, on both session stores. Every dialect must show the same screens.

use serde::Deserialize;
use tamtam::adapters::Dialect;
use tamtam::text::TextPolicy;

use crate::support::{files, name, redis_url, unique_prefix, Phone, Server};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Conversation {
    description: String,
    service: String,
    msisdn: String,
    hop: Vec<HopSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HopSpec {
    send: Option<String>,
    #[serde(default)]
    expect: Vec<String>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    ends: bool,
}

/// Fragments are written with accents; screens are transliterated by the tenant policy.
fn policy_of(server: &Server, code: &str) -> TextPolicy {
    server
        .config
        .tenants
        .iter()
        .find(|t| t.ussd_codes.iter().any(|c| c == code))
        .map(|t| t.ussd_text)
        .expect("tenant of the conversation")
}

async fn play_all(server: &Server) {
    let mut failures = Vec::new();
    let mut played = 0;
    for path in files("tests/conversations", "toml") {
        let file = name(&path);
        let conv: Conversation = toml::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!conv.hop.is_empty(), "{file}: no hop");
        let mut transcripts: Vec<(Dialect, Vec<String>)> = Vec::new();
        for dialect in Dialect::ALL {
            let mut phone = Phone::new(server, dialect, &conv.service, &conv.msisdn);
            let policy = policy_of(server, &phone.code);
            let mut transcript = Vec::new();
            for (i, hop) in conv.hop.iter().enumerate() {
                let screen = match (i, &hop.send) {
                    (0, None) => phone.dial().await,
                    (0, Some(_)) => panic!("{file}: the first hop is the dial and has no `send`"),
                    (_, Some(input)) => phone.send(input).await,
                    (_, None) => panic!("{file}: hop {} needs `send`", i + 1),
                };
                let at = format!(
                    "{file} ({}) [{}] hop {}",
                    conv.description,
                    dialect.name(),
                    i + 1
                );
                if screen.status != 200 {
                    failures.push(format!("{at}: status {}", screen.status));
                }
                for e in &hop.expect {
                    let e = policy.apply(e);
                    if !screen.text.contains(e.as_ref()) {
                        failures.push(format!("{at}: expected {e:?} in {:?}", screen.text));
                    }
                }
                for a in &hop.absent {
                    let a = policy.apply(a);
                    if screen.text.contains(a.as_ref()) {
                        failures.push(format!("{at}: {a:?} must not be in {:?}", screen.text));
                    }
                }
                if screen.end != hop.ends {
                    failures.push(format!(
                        "{at}: ends = {}, expected {}",
                        screen.end, hop.ends
                    ));
                }
                transcript.push(screen.text);
            }
            transcripts.push((dialect, transcript));
        }
        let (first, reference) = &transcripts[0];
        for (d, t) in &transcripts[1..] {
            if t != reference {
                failures.push(format!(
                    "{file}: {} shows other screens than {}: {t:#?} vs {reference:#?}",
                    d.name(),
                    first.name()
                ));
            }
        }
        played += 1;
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(played >= 15, "only {played} conversations found");
}

#[tokio::test]
async fn conversations_in_memory() {
    let server = Server::start(None).await;
    play_all(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn conversations_on_redis() {
    let url = redis_url();
    let prefix = unique_prefix("conversations");
    let server = Server::start(Some((&url, &prefix))).await;
    play_all(&server).await;
    server.stop().await;
}
