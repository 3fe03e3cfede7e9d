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

/// Plays every conversation through every dialect. Each dialect gets its own gateway
/// (`start`), so that a conversation left open in one dialect (which rightly offers the
/// caller to resume) cannot change what the next dialect shows.
async fn play_all<F, Fut>(start: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Server>,
{
    let mut failures = Vec::new();
    let conversations: Vec<(String, Conversation)> = files("tests/conversations", "toml")
        .into_iter()
        .map(|path| {
            let file = name(&path);
            let conv: Conversation = toml::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(!conv.hop.is_empty(), "{file}: no hop");
            (file, conv)
        })
        .collect();
    assert!(
        conversations.len() >= 15,
        "only {} conversations found",
        conversations.len()
    );
    let mut transcripts: Vec<Vec<(Dialect, Vec<String>)>> = vec![Vec::new(); conversations.len()];
    for dialect in Dialect::USSD {
        let server = start().await;
        for (n, (file, conv)) in conversations.iter().enumerate() {
            let mut phone = Phone::new(&server, dialect, &conv.service, &conv.msisdn);
            let policy = policy_of(&server, &phone.code);
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
                crate::checks::fragments(
                    &mut failures,
                    &at,
                    &screen.text,
                    policy,
                    &hop.expect,
                    &hop.absent,
                );
                if screen.end != hop.ends {
                    failures.push(format!(
                        "{at}: ends = {}, expected {}",
                        screen.end, hop.ends
                    ));
                }
                transcript.push(screen.text);
            }
            transcripts[n].push((dialect, transcript));
        }
        server.stop().await;
    }
    for ((file, _), runs) in conversations.iter().zip(&transcripts) {
        let (first, reference) = &runs[0];
        for (d, t) in &runs[1..] {
            if t != reference {
                failures.push(format!(
                    "{file}: {} shows other screens than {}: {t:#?} vs {reference:#?}",
                    d.name(),
                    first.name()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn conversations_in_memory() {
    play_all(|| Server::start(None)).await;
}

#[tokio::test]
async fn conversations_on_redis() {
    let url = redis_url();
    play_all(|| {
        let prefix = unique_prefix("conversations");
        let url = url.clone();
        async move { Server::start(Some((&url, &prefix))).await }
    })
    .await;
}
