//! Conversation scripts (`tests/conversations/*.toml`) played through every USSD dialect
//! over real HTTP, on both session stores. Every dialect must show the same screens, and
//! a few conversations must show, screen for screen, exactly the text of their golden
//! transcript (`tests/golden/ussd/`). Scripts run with the clock stopped on a Monday at
//! 10:00 in Nouméa, when every service with opening hours is open.

use serde::Deserialize;
use tamtam::adapters::Dialect;
use tamtam::text::TextPolicy;

use crate::support::checks::fragments;
use crate::support::scripts::{check_golden, play_scripts, Script};
use crate::support::{redis_url, script_time, unique_prefix, Phone, Server};

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

impl Script for Conversation {
    type Dialect = Dialect;

    fn steps(&self) -> usize {
        self.hop.len()
    }

    fn inputs(&self) -> Vec<String> {
        let rest = self
            .hop
            .iter()
            .skip(1)
            .map(|h| h.send.clone().unwrap_or_default());
        std::iter::once(self.service.clone()).chain(rest).collect()
    }

    async fn play(
        &self,
        server: &Server,
        dialect: Dialect,
        file: &str,
        failures: &mut Vec<String>,
    ) -> Vec<String> {
        let mut phone = Phone::new(server, dialect, &self.service, &self.msisdn);
        let policy = policy_of(server, &phone.code);
        let mut transcript = Vec::new();
        for (i, hop) in self.hop.iter().enumerate() {
            let screen = match (i, &hop.send) {
                (0, None) => phone.dial().await,
                (0, Some(_)) => panic!("{file}: the first hop is the dial and has no `send`"),
                (_, Some(input)) => phone.send(input).await,
                (_, None) => panic!("{file}: hop {} needs `send`", i + 1),
            };
            let at = format!(
                "{file} ({}) [{}] hop {}",
                self.description,
                dialect.name(),
                i + 1
            );
            if screen.status != 200 {
                failures.push(format!("{at}: status {}", screen.status));
            }
            fragments(
                failures,
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
        transcript
    }
}

/// Conversations whose every screen is pinned in full under `tests/golden/ussd/`: the
/// main menus, pagination with back and home, consumption from a data source, and the
/// error count that ends a session.
const GOLDEN: [&str; 4] = [
    "moov_navigation_retour_accueil_suite.toml",
    "moov_conso_connu.toml",
    "opt_conso_connu.toml",
    "moov_trois_erreurs.toml",
];

/// Plays every conversation through every USSD dialect (each on a gateway of its own from
/// `start`), then compares the golden ones with their files.
async fn play_all<F, Fut>(start: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Server>,
{
    let played =
        play_scripts::<Conversation, _, _>("tests/conversations", 15, &Dialect::USSD, start).await;
    check_golden(&played, &GOLDEN, "ussd");
}

#[tokio::test]
async fn conversations_in_memory() {
    play_all(|| Server::start_at(None, script_time())).await;
}

#[tokio::test]
async fn conversations_on_redis() {
    let url = redis_url();
    play_all(|| {
        let prefix = unique_prefix("conversations");
        let url = url.clone();
        async move { Server::start_at(Some((&url, &prefix)), script_time()).await }
    })
    .await;
}
