//! The gateway on a real Redis: sessions survive a restart and move between replicas,
//! retried hops never advance a session twice, every key has a TTL, and a dropped session
//! can be resumed.

use tamtam::adapters::Dialect;

use crate::support::{redis_url, unique_prefix, Phone, Server};

const MOOV: &str = "*144#";
/// A caller per dialect and test, so that one test's open session (rightly offered for
/// resuming) never meets another's.
fn caller(dialect: Dialect, n: u32) -> String {
    format!("+22507000{:02}{:03}", n, dialect as u32)
}

#[tokio::test]
async fn a_session_continues_across_a_restart_and_across_replicas() {
    let url = redis_url();
    let prefix = unique_prefix("restart");
    for dialect in Dialect::USSD {
        let first = Server::start(Some((&url, &prefix))).await;
        let mut phone = Phone::new(&first, dialect, MOOV, &caller(dialect, 1));
        phone.dial().await;
        let s = phone.send("1").await;
        assert!(s.text.contains("MEMO"), "{}: {s:?}", dialect.name());
        first.stop().await;

        // A new process, same Redis: the session goes on where it was.
        let second = Server::start(Some((&url, &prefix))).await;
        phone.via(&second);
        let s = phone.send("2").await;
        assert!(
            s.text.contains("cinq (5)"),
            "{} after restart: {s:?}",
            dialect.name()
        );

        // Two replicas at once, hops alternating between them. (Another caller: the first
        // one left a session mid-way and would rightly be offered to resume it.)
        let third = Server::start(Some((&url, &prefix))).await;
        let mut phone = Phone::new(&second, dialect, MOOV, &caller(dialect, 2));
        phone.dial().await;
        phone.via(&third);
        let s = phone.send("1").await;
        assert!(s.text.contains("MEMO"), "{}: {s:?}", dialect.name());
        phone.via(&second);
        let s = phone.send("1").await;
        assert!(s.text.contains("carte MEMO"), "{}: {s:?}", dialect.name());
        phone.via(&third);
        let s = phone.send("98").await;
        assert!(s.text.contains("1 000"), "{}: {s:?}", dialect.name());
        second.stop().await;
        third.stop().await;
    }
}

#[tokio::test]
async fn a_retried_hop_gets_the_same_screen_and_advances_once() {
    let url = redis_url();
    let prefix = unique_prefix("retry");
    let server = Server::start(Some((&url, &prefix))).await;
    for dialect in Dialect::USSD {
        let mut phone = Phone::new(&server, dialect, MOOV, &caller(dialect, 3));
        let home = phone.dial().await;
        let again = phone.retry("").await;
        if dialect == Dialect::AfricasTalking {
            assert_eq!(again, home, "a retried dial");
        }
        let sim = phone.send("1").await;
        assert!(sim.text.contains("MEMO"));
        // The same hop again: same screen, and "1" is not applied a second time.
        assert_eq!(phone.retry("1").await, sim, "{}", dialect.name());
        assert_eq!(phone.retry("1").await, sim, "{}", dialect.name());
        let next = phone.send("2").await;
        assert!(
            next.text.contains("cinq (5)"),
            "{}: {next:?}",
            dialect.name()
        );
        phone.send("98").await;
        let choice = phone.send("98").await;
        assert!(
            choice.text.contains("Recevoir par SMS"),
            "{}: {choice:?}",
            dialect.name()
        );
        // The final hop queues one SMS; retried after the session ended, it gets the final
        // screen again and queues nothing more.
        let before = server.outbox_ready().await;
        let last = phone.send("1").await;
        assert!(
            last.end && last.text.contains("Vous allez recevoir un SMS"),
            "{last:?}"
        );
        assert_eq!(phone.retry("1").await, last, "{}", dialect.name());
        assert_eq!(phone.retry("1").await, last, "{}", dialect.name());
        assert_eq!(
            server.outbox_ready().await,
            before + 1,
            "{}: one SMS",
            dialect.name()
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn every_key_written_has_a_ttl_and_an_ended_session_keeps_only_its_last_screen() {
    let url = redis_url();
    let prefix = unique_prefix("ttl-all");
    let server = Server::start(Some((&url, &prefix))).await;
    for dialect in Dialect::USSD {
        let mut phone = Phone::new(&server, dialect, MOOV, &caller(dialect, 4));
        phone.dial().await;
        phone.send("1").await;
        phone.send("1").await;
        let mut open = Phone::new(&server, dialect, "*100#", "+687700001");
        open.dial().await;
        open.send("1").await;
    }
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.len() >= 6, "{keys:?}");
    let session = server.config.session.clone();
    for key in &keys {
        // The outbound queue is durable by design: its entries leave as they are sent.
        if key.contains("{outbox}") {
            continue;
        }
        let pttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(pttl > 0, "{key} has no TTL ({pttl})");
        if key.contains(":status:") {
            continue;
        }
        let value: Vec<u8> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if let Some(rec) = tamtam::gateway::records::SessionRecord::from_bytes(&value) {
            if rec.reply.end {
                assert!(
                    rec.state.is_none(),
                    "{key}: an ended session keeps no state"
                );
                assert!(
                    pttl as u128 <= session.ended_ttl.as_millis(),
                    "{key}: {pttl}"
                );
            } else {
                assert!(rec.state.is_some());
                assert!(pttl as u128 <= session.ttl.as_millis(), "{key}: {pttl}");
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_dropped_session_can_be_resumed_or_restarted() {
    let url = redis_url();
    for (store, server) in [
        ("memory", Server::start(None).await),
        (
            "redis",
            Server::start(Some((&url, &unique_prefix("resume")))).await,
        ),
    ] {
        for dialect in Dialect::USSD {
            let caller = format!("+22507000004{}", dialect as u8);
            // Go two screens deep, then the network drops the session.
            let mut phone = Phone::new(&server, dialect, MOOV, &caller);
            phone.dial().await;
            let sim = phone.send("1").await;
            assert!(sim.text.contains("MEMO"));

            // Dialling again offers to resume; 1 resumes on the same screen.
            let mut again = Phone::new(&server, dialect, MOOV, &caller);
            let offer = again.dial().await;
            assert!(
                offer.text.contains("Reprendre") && offer.text.contains("Recommencer"),
                "{store} {}: {offer:?}",
                dialect.name()
            );
            let resumed = again.send("1").await;
            assert_eq!(resumed.text, sim.text, "{store} {}", dialect.name());
            let s = again.send("1").await;
            assert!(s.text.contains("carte MEMO") && !s.end, "{store}: {s:?}");
            let s = again.send("98").await;
            assert!(s.text.contains("Recevoir par SMS"), "{store}: {s:?}");
            let s = again.send("1").await;
            assert!(s.end, "{store}: {s:?}");

            // Ended normally: nothing to resume.
            let mut third = Phone::new(&server, dialect, MOOV, &caller);
            let home = third.dial().await;
            assert!(!home.text.contains("Reprendre"), "{store}: {home:?}");
            third.send("1").await;

            // Dropped again; this time 2 starts over at home.
            let mut fourth = Phone::new(&server, dialect, MOOV, &caller);
            assert!(fourth.dial().await.text.contains("Reprendre"));
            let restart = fourth.send("2").await;
            assert_eq!(restart.text, home.text, "{store}");

            // A direct dial never asks.
            let mut direct = Phone::new(&server, dialect, "*144*1#", &caller);
            let s = direct.dial().await;
            assert!(s.text.contains("MEMO"), "{store}: {s:?}");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn a_release_ends_the_session() {
    let server = Server::start(Some((&redis_url(), &unique_prefix("release")))).await;
    for dialect in [Dialect::Hubtel, Dialect::Json] {
        let mut phone = Phone::new(&server, dialect, MOOV, &caller(dialect, 5));
        phone.dial().await;
        phone.send("1").await;
        let bye = phone.release().await;
        assert!(bye.end && bye.status == 200, "{bye:?}");
        // Hung up on purpose: dialling again starts at home, no resume offer.
        let mut again = Phone::new(&server, dialect, MOOV, &caller(dialect, 5));
        assert!(!again.dial().await.text.contains("Reprendre"));
        // The released session is gone: a late hop gets the polite "expired".
        let late = phone.send("2").await;
        assert!(late.end && late.text.contains("expir"), "{late:?}");
    }
    server.stop().await;
}
