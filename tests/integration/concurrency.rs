//! Trust at the edge, for sessions: copies of one hop sent at once advance the session once
//! and queue one SMS (on the memory store, and across two gateways sharing one Redis); two
//! different hops of one session sent together both count; copies of one incoming SMS
//! queue one reply; a session id is only found under the number that opened it; a dial
//! with too many inputs is refused before any engine work; the in-memory store keeps to
//! its cap.

use tamtam::adapters::Dialect;
use tamtam::session::{MemoryStore, Store};

use crate::support::outbox_fake::post_form;
use crate::support::{redis_url, shipped_config, unique_prefix, Phone, Server};

const MOOV: &str = "*144#";
const COPIES: usize = 50;
const SMS_SENT: &str = "Vous allez recevoir un SMS";
const TOO_LONG: &str = "Trop de choix";
/// The screens after "1", then "1" again, from home.
const FIRST: &str = "Avez-vous votre carte MEMO";
const SECOND: &str = "Puce";

/// Takes `phone` to the screen offering "Recevoir par SMS" (choice 1).
async fn to_the_sms_choice(phone: &mut Phone) {
    phone.dial().await;
    assert!(phone.send("1").await.text.contains("MEMO"));
    assert!(phone.send("1").await.text.contains("carte MEMO"));
    let s = phone.send("98").await;
    assert!(s.text.contains("Recevoir par SMS"), "{s:?}");
}

/// For every USSD dialect: `COPIES` copies of the "Recevoir par SMS" hop, spread over
/// `servers`, all get the final screen and queue one SMS between them.
async fn copies_queue_one_sms(servers: &[&Server], caller: u32) {
    for dialect in Dialect::USSD {
        let msisdn = format!("+2250711{caller:03}{:02}", dialect as u32);
        let mut phone = Phone::new(servers[0], dialect, MOOV, &msisdn);
        to_the_sms_choice(&mut phone).await;
        let before = servers[0].outbox_ready().await;
        let body = phone.next_body("1");
        let urls: Vec<String> = (0..COPIES)
            .map(|i| servers[i % servers.len()].url(dialect))
            .collect();
        for s in phone.post_copies(&body, &urls).await {
            assert!(
                s.end && s.text.contains(SMS_SENT),
                "{}: {s:?}",
                dialect.name()
            );
        }
        assert_eq!(
            servers[0].outbox_ready().await,
            before + 1,
            "{}: one SMS for {COPIES} copies of one hop",
            dialect.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_copies_of_the_recevoir_par_sms_hop_queue_one_sms_on_the_memory_store() {
    // Sessions in this process's memory; the outbound queue on Redis (so queueing an SMS
    // takes a round trip, as it does in production).
    let mut config = shipped_config(Some(redis_url()));
    config.session.key_prefix = unique_prefix("copies-memory");
    let server = Server::start_with(config, Store::Memory(MemoryStore::new())).await;
    copies_queue_one_sms(&[&server], 1).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_copies_of_the_recevoir_par_sms_hop_queue_one_sms_across_two_gateways() {
    let url = redis_url();
    let prefix = unique_prefix("copies-redis");
    let a = Server::start(Some((&url, &prefix))).await;
    let b = Server::start(Some((&url, &prefix))).await;
    copies_queue_one_sms(&[&a, &b], 2).await;
    a.stop().await;
    b.stop().await;
}

/// Hop 2 ("1": home to "Avez-vous votre carte MEMO ?") and hop 3 ("1": "Oui", to "Puce
/// égarée…") sent together,
/// to two gateways on one Redis, many times. Africa's Talking sends the whole path, so
/// both inputs always count. Hubtel and JSON number their hops: hop 3 either lands on
/// top of hop 2, or (when it committed first) hop 2 is a stale hop answered with the
/// latest screen. Either way the stored session is the one the last answer showed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_different_hops_of_one_session_sent_together_both_take_effect() {
    let url = redis_url();
    let prefix = unique_prefix("two-hops");
    let a = Server::start(Some((&url, &prefix))).await;
    let b = Server::start(Some((&url, &prefix))).await;
    for dialect in Dialect::USSD {
        for round in 0..10u32 {
            let msisdn = format!("+2250712{round:03}{:02}", dialect as u32);
            let mut phone = Phone::new(&a, dialect, MOOV, &msisdn);
            phone.dial().await;
            let hop2 = phone.next_body("1");
            let hop3 = phone.next_body("1");
            let screens = phone
                .post_all(vec![(a.url(dialect), hop2), (b.url(dialect), hop3)])
                .await;
            let (r2, r3) = (&screens[0], &screens[1]);
            // The hop 3 again (a retry): the stored screen, nothing advanced.
            let stored = phone.retry("1").await;
            let name = dialect.name();
            assert_eq!(
                &stored, r3,
                "{name} round {round}: the last answer is stored"
            );
            let both = r2.text.contains(FIRST) && r3.text.contains(SECOND);
            if dialect == Dialect::AfricasTalking {
                assert!(r3.text.contains(SECOND), "{name} {round}: {r3:?}");
            } else {
                assert!(both || r2 == r3, "{name} round {round}: {r2:?} then {r3:?}");
            }
        }
    }
    a.stop().await;
    b.stop().await;
}

/// `COPIES` copies of one Africa's Talking MO (same id), spread over two gateways on one
/// Redis: every copy is acknowledged, one reply is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_copies_of_one_incoming_sms_queue_one_reply() {
    const MO: [(&str, &str); 6] = [
        ("from", "+2250713000001"),
        ("to", "144"),
        ("text", "SIM"),
        ("id", "ATXid_copies_1"),
        ("linkId", "copies-link"),
        ("date", "2026-11-24 03:00:00"),
    ];
    let url = redis_url();
    let prefix = unique_prefix("sms-copies");
    let a = Server::start(Some((&url, &prefix))).await;
    let b = Server::start(Some((&url, &prefix))).await;
    let before = a.outbox_ready().await;
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..COPIES {
        let target = format!("{}/sms/at", if i % 2 == 0 { &a.base } else { &b.base });
        posts.spawn(async move { post_form(&target, &MO).await });
    }
    for (code, body) in posts.join_all().await {
        assert_eq!((code, body.as_str()), (200, "OK"));
    }
    assert_eq!(
        a.outbox_ready().await,
        before + 1,
        "one reply for one MO id"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_hop_naming_another_subscribers_session_id_does_not_see_or_advance_it() {
    let url = redis_url();
    for (store, server) in [
        ("memory", Server::start(None).await),
        (
            "redis",
            Server::start(Some((&url, &unique_prefix("foreign")))).await,
        ),
    ] {
        for dialect in [Dialect::Hubtel, Dialect::Json] {
            let victim_number = format!("+2250714000{:02}", dialect as u32);
            let mut victim = Phone::new(&server, dialect, MOOV, &victim_number);
            victim.dial().await;
            assert!(victim.send("1").await.text.contains("MEMO"));

            // Another number names the victim's session (and its next sequence number).
            let mut other = Phone::new(&server, dialect, MOOV, "+2250714999999");
            other.session_id = victim.session_id.clone();
            other.seq = victim.seq;
            let s = other.send("1").await;
            assert!(
                s.end && s.text.contains("expir") && !s.text.contains("MEMO"),
                "{store} {}: {s:?}",
                dialect.name()
            );
            // The victim's session did not move.
            let s = victim.send("1").await;
            assert!(
                s.text.contains("carte MEMO") && !s.end,
                "{store} {}: {s:?}",
                dialect.name()
            );
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn a_direct_dial_of_32000_inputs_gets_a_polite_end_and_no_engine_work() {
    let server = Server::start(None).await;
    let huge = format!("*144{}#", "*1*0".repeat(16_000));
    for dialect in [Dialect::Hubtel, Dialect::Json] {
        let mut phone = Phone::new(&server, dialect, MOOV, "+2250715000001");
        phone.dialled = huge.clone();
        let s = phone.dial().await;
        assert!(
            s.end && s.text.contains(TOO_LONG),
            "{}: {s:?}",
            dialect.name()
        );
        // Nothing ran, so nothing was stored: the next hop finds no session.
        let s = phone.send("1").await;
        assert!(
            s.end && s.text.contains("expir"),
            "{}: {s:?}",
            dialect.name()
        );
    }
    // Africa's Talking: the same inputs as a cumulative `text`.
    let mut phone = Phone::new(&server, Dialect::AfricasTalking, MOOV, "+2250715000002");
    let body = phone.next_body(&"1*0*".repeat(8_000));
    let s = &phone.post_copies(&body, &[server.url(phone.dialect)]).await[0];
    assert!(s.end && s.text.contains(TOO_LONG), "{s:?}");

    // Sixteen inputs are still one hop's worth: applied, ending back home.
    let mut phone = Phone::new(&server, Dialect::Json, MOOV, "+2250715000003");
    phone.dialled = format!("*144{}#", "*1*0".repeat(8));
    let s = phone.dial().await;
    assert!(!s.end && !s.text.contains(TOO_LONG), "{s:?}");
    let s = phone.send("1").await;
    assert!(s.text.contains("MEMO"), "{s:?}");
    server.stop().await;
}

#[tokio::test]
async fn the_in_memory_store_never_holds_more_than_its_cap() {
    let (sessions, ids) = (8, 4);
    let store = MemoryStore::with_capacity(sessions, ids);
    let server = Server::start_with(shipped_config(None), Store::Memory(store.clone())).await;
    for i in 0..40u32 {
        let mut phone = Phone::new(&server, Dialect::Json, MOOV, &format!("+22507160{i:05}"));
        phone.dial().await;
        let s = phone.send("1").await;
        assert!(s.text.contains("MEMO"), "{s:?}");
        assert!(store.len() <= sessions + ids, "{} keys", store.len());
    }
    assert!(store.len() <= sessions + ids);
    server.stop().await;
}

/// The guarded write both stores share: it applies only while every guarded key holds what
/// was read (or is still absent), and writes nothing otherwise.
#[tokio::test]
async fn a_guarded_write_applies_only_while_its_guards_hold_on_both_stores() {
    use std::time::Duration;
    use tamtam::session::{keys, Guard, RedisStore, Write};
    let url = redis_url();
    let stores = [
        ("memory", Store::Memory(MemoryStore::new()), "m".to_string()),
        (
            "redis",
            Store::Redis(RedisStore::open(&url, Duration::from_secs(2)).unwrap()),
            unique_prefix("guarded"),
        ),
    ];
    for (name, store, prefix) in stores {
        let session = keys::session(&prefix, "t", "+1", "d", "s");
        let resume = keys::resume(&prefix, "t", "+1");
        let set = |key: &str, value: &[u8]| Write::Set {
            key: key.to_string(),
            value: value.to_vec(),
            ttl: Duration::from_secs(60),
        };
        let guard = |expected: Option<&[u8]>| Guard {
            key: session.clone(),
            expected: expected.map(<[u8]>::to_vec),
        };
        let both = [set(&session, b"one"), set(&resume, b"r1")];
        assert!(store.commit(&[guard(None)], &both).await.unwrap(), "{name}");
        // Another request read "absent" too: it loses, and writes nothing.
        let other = [set(&session, b"two"), set(&resume, b"r2")];
        assert!(
            !store.commit(&[guard(None)], &other).await.unwrap(),
            "{name}"
        );
        assert!(!store.commit(&[guard(Some(b"on"))], &other).await.unwrap());
        let got = store.get(&[&session, &resume]).await.unwrap();
        assert_eq!(got, [Some(b"one".to_vec()), Some(b"r1".to_vec())], "{name}");
        // Read "one", still "one": applies, deletes included.
        let next = [
            set(&session, b"two"),
            Write::Delete {
                key: resume.clone(),
            },
        ];
        assert!(store.commit(&[guard(Some(b"one"))], &next).await.unwrap());
        let got = store.get(&[&session, &resume]).await.unwrap();
        assert_eq!(got, [Some(b"two".to_vec()), None], "{name}");
    }
}

/// `COPIES` copies of one answer in an SMS dialogue (same message id), over two gateways on
/// one Redis, all get the reply a single answer gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_copies_of_one_sms_answer_get_the_reply_of_one() {
    use crate::sms::{send, Via};
    let url = redis_url();
    let prefix = unique_prefix("sms-dialogue");
    let a = Server::start(Some((&url, &prefix))).await;
    let b = Server::start(Some((&url, &prefix))).await;
    // What one answer gets, from a twin phone.
    let twin = "+2250718000001";
    assert!(
        send(&a, Via::Json, "twin-1", twin, "144", "SIM")
            .await
            .status
            == 200
    );
    let expected = send(&a, Via::Json, "twin-2", twin, "144", "1").await.text;
    assert!(expected.contains(SECOND), "{expected}");

    let phone = "+2250718000002";
    assert!(
        send(&a, Via::Json, "mo-1", phone, "144", "SIM")
            .await
            .status
            == 200
    );
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..COPIES {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let (target, client) = (format!("{base}/sms/json"), reqwest::Client::new());
        let body = serde_json::json!({"id": "mo-2", "from": phone, "to": "144", "text": "1"});
        posts.spawn(async move {
            let resp = client.post(target).body(body.to_string()).send().await;
            let v: serde_json::Value = resp.unwrap().json().await.unwrap();
            v["text"].as_str().unwrap_or_default().to_string()
        });
    }
    for text in posts.join_all().await {
        assert_eq!(text, expected);
    }
    a.stop().await;
    b.stop().await;
}
