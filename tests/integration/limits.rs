//! Abuse limits (`tamtam::limits`), over real HTTP: a subscriber over their rate gets a
//! polite USSD `END` or, by SMS, no reply, and the gateway runs nothing for them (the
//! session stays where it was, nothing is queued); the Redis bucket's arithmetic at
//! explicit instants, and two gateways sharing one bucket; SMS only to the tenant's
//! `sms_destinations` (a forged Jasmin MO, a USSD "Recevoir par SMS" from a foreign
//! number) and at most `sms_per_subscriber_per_day`; `tamtam check` reporting bad limits.

use serde_json::json;
use tamtam::adapters::Dialect;
use tamtam::config::Config;
use tamtam::gateway::records::SessionRecord;
use tamtam::limits::{BucketKey, LimitSettings, Rate, RedisLimiter};
use tamtam::session::{keys, MemoryStore, RedisStore, Store};

use crate::support::outbox_fake::{tamtam_bin, TempDir};
use crate::support::{redis_url, root, shipped_config, unique_prefix, Phone, Server};

/// What a USSD subscriber over their rate reads (moov-ci transliterates; é is GSM-7).
const TOO_MANY: &str = "Trop de demandes. Réessayez dans quelques minutes.";

/// Limits of `burst` hops per subscriber, refilled at one a minute (no test lasts long
/// enough to see a refill: refills are tested on explicit instants).
fn per_subscriber(burst: u32) -> LimitSettings {
    LimitSettings {
        per_subscriber: Rate {
            per_minute: 1,
            burst,
        },
        ..LimitSettings::off()
    }
}

/// The shipped configuration with `limits`, on Redis under `prefix` or in memory.
fn config(limits: LimitSettings, redis: Option<(&str, &str)>) -> (Config, Store) {
    let mut config = shipped_config(redis.map(|(url, _)| url.to_string()));
    config.limits = limits;
    let store = match redis {
        Some((url, prefix)) => {
            config.session.key_prefix = prefix.to_string();
            Store::Redis(RedisStore::open(url, config.session.redis_timeout).unwrap())
        }
        None => Store::Memory(MemoryStore::new()),
    };
    (config, store)
}

/// Posts a Jasmin MO (form body, data coding 0) to `server`; returns status and body.
async fn jasmin_mo(server: &Server, id: &str, from: &str, to: &str, text: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(server.url(Dialect::Jasmin))
        .form(&[
            ("id", id),
            ("from", from),
            ("to", to),
            ("content", text),
            ("coding", "0"),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The stored record of `phone`'s session.
async fn stored(store: &Store, config: &Config, phone: &Phone) -> SessionRecord {
    let key = keys::session(
        &config.session.key_prefix,
        "moov-ci",
        &phone.msisdn,
        phone.dialect.name(),
        &phone.session_id,
    );
    let bytes = store
        .get(&[&key])
        .await
        .unwrap()
        .remove(0)
        .expect("a session");
    SessionRecord::from_bytes(&bytes).expect("a session record")
}

#[tokio::test]
async fn a_subscriber_over_their_rate_gets_a_polite_end_and_the_gateway_runs_nothing() {
    let (config, store) = config(per_subscriber(2), None);
    let server = Server::start_with(config.clone(), store.clone()).await;
    for dialect in Dialect::USSD {
        let msisdn = format!("+22507000051{:02}", dialect as u32);
        let mut phone = Phone::new(&server, dialect, "*144#", &msisdn);
        phone.dial().await;
        let sim = phone.send("1").await;
        assert!(sim.text.contains("MEMO"), "{}: {sim:?}", dialect.name());
        let before = stored(&store, &config, &phone).await;

        let refused = phone.send("2").await;
        assert_eq!(
            (refused.status, refused.text.as_str(), refused.end),
            (200, TOO_MANY, true),
            "{}",
            dialect.name()
        );
        // Nothing ran: the session still waits on the same screen, with the same reply.
        let after = stored(&store, &config, &phone).await;
        assert_eq!(after.state, before.state, "{}", dialect.name());
        assert_eq!(after.reply, before.reply, "{}", dialect.name());
        // Another subscriber is not affected.
        let mut other = Phone::new(&server, dialect, "*144#", &format!("{msisdn}9"));
        assert!(!other.dial().await.end, "{}", dialect.name());
    }
    server.stop().await;
}

#[tokio::test]
async fn an_sms_over_the_rate_gets_no_reply_in_each_dialect_and_queues_nothing() {
    let (config, store) = config(per_subscriber(1), None);
    let server = Server::start_with(config, store).await;
    let client = reqwest::Client::new();

    // Kannel: an empty body, which its sms-service (omit-empty) sends as nothing.
    let kannel = |id: &str| {
        format!(
            "{}?from=%2B2250700000601&to=144&text=SIM&id={id}",
            server.url(Dialect::Kannel)
        )
    };
    let first = client.get(kannel("l1")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.text().await.unwrap().contains("MEMO"));
    let second = client.get(kannel("l2")).send().await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(second.text().await.unwrap(), "");

    // tamtam's SMS JSON: a 429 in its error format.
    let sms_json = |id: &str| {
        client
            .post(server.url(Dialect::SmsJson))
            .json(&json!({"id": id, "from": "+2250700000602", "to": "144", "text": "SIM"}))
    };
    assert_eq!(sms_json("j1").send().await.unwrap().status(), 200);
    let refused = sms_json("j2").send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");

    // Jasmin: acknowledged (no retry), and no reply queued.
    let queued = server.outbox_ready().await;
    let mo = |id| jasmin_mo(&server, id, "+2250700000603", "144", "SIM");
    assert_eq!(mo("m1").await, (200, "ACK/Jasmin".to_string()));
    assert_eq!(server.outbox_ready().await, queued + 1);
    assert_eq!(mo("m2").await, (200, "ACK/Jasmin".to_string()));
    assert_eq!(
        server.outbox_ready().await,
        queued + 1,
        "nothing more queued"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_redis_bucket_refills_at_its_rate_between_explicit_instants() {
    let url = redis_url();
    let prefix = unique_prefix("bucket");
    let limiter = RedisLimiter::open(&url, &prefix, std::time::Duration::from_secs(1)).unwrap();
    let rate = Rate {
        per_minute: 6,
        burst: 2,
    };
    let key = BucketKey::Subscriber("+2250700000700");
    let mut takes = Vec::new();
    // One token every 10 s; a new bucket starts full.
    for now in [
        0, 0, 0, 5_000, 10_000, 10_000, 5_000, 3_600_000, 3_600_000, 3_600_000,
    ] {
        takes.push(limiter.take(key, rate, 1_000_000 + now).await.unwrap());
    }
    assert_eq!(
        takes,
        [true, true, false, false, true, false, false, true, true, false],
        "burst, empty, one token after 10 s, none from an earlier instant, never more than the burst"
    );

    // One key, in its own hash tag, with a TTL of the time it takes to fill up.
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
    assert_eq!(keys, [format!("{prefix}:limit:{{sub:+2250700000700}}")]);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 21_000, "{pttl}");
}

#[tokio::test]
async fn two_gateways_on_one_redis_share_a_subscribers_bucket() {
    let url = redis_url();
    let prefix = unique_prefix("shared-bucket");
    // At the Redis level, two limiters (two connections) at explicit instants.
    let a = RedisLimiter::open(&url, &prefix, std::time::Duration::from_secs(1)).unwrap();
    let b = RedisLimiter::open(&url, &prefix, std::time::Duration::from_secs(1)).unwrap();
    let rate = Rate {
        per_minute: 1,
        burst: 2,
    };
    let key = BucketKey::Source("192.0.2.7".parse().unwrap());
    assert!(a.take(key, rate, 5_000).await.unwrap());
    assert!(b.take(key, rate, 5_000).await.unwrap());
    assert!(!a.take(key, rate, 5_000).await.unwrap());
    assert!(!b.take(key, rate, 5_000).await.unwrap());

    // Over HTTP: two gateways, one subscriber; the third hop is refused by either.
    let (config_a, store_a) = config(per_subscriber(2), Some((&url, &prefix)));
    let (config_b, store_b) = config(per_subscriber(2), Some((&url, &prefix)));
    let first = Server::start_with(config_a, store_a).await;
    let second = Server::start_with(config_b, store_b).await;
    let mut phone = Phone::new(&first, Dialect::Hubtel, "*144#", "+2250700000701");
    assert!(!phone.dial().await.end);
    phone.via(&second);
    assert!(phone.send("1").await.text.contains("MEMO"));
    phone.via(&first);
    assert_eq!(phone.send("2").await.text, TOO_MANY);
    phone.via(&second);
    assert_eq!(phone.send("2").await.text, TOO_MANY);
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn a_forged_mo_from_a_foreign_number_gets_no_reply_queued_or_returned() {
    let (config, store) = config(LimitSettings::off(), None);
    let server = Server::start_with(config, store).await;
    let before = server.outbox_ready().await;
    // The forgery: +33612345678 texting moov-ci's short code.
    assert_eq!(
        jasmin_mo(&server, "f1", "+33612345678", "144", "SIM").await,
        (200, "ACK/Jasmin".to_string()),
        "acknowledged, so Jasmin does not retry"
    );
    assert_eq!(jasmin_mo(&server, "f2", "1", "144", "SIM").await.0, 200);
    assert_eq!(server.outbox_ready().await, before, "nothing queued");
    // A local number is answered.
    jasmin_mo(&server, "f3", "+2250700000801", "144", "SIM").await;
    assert_eq!(server.outbox_ready().await, before + 1);

    // The synchronous dialects carry their reply in the answer: none for a foreign number.
    let client = reqwest::Client::new();
    let kannel = client
        .get(format!(
            "{}?from=%2B33612345678&to=144&text=SIM&id=f4",
            server.url(Dialect::Kannel)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(kannel.status(), 200);
    assert_eq!(kannel.text().await.unwrap(), "", "Kannel sends nothing");
    let sms_json = client
        .post(server.url(Dialect::SmsJson))
        .json(&json!({"id": "f5", "from": "+33612345678", "to": "144", "text": "SIM"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sms_json.status(), 403);
    let body: serde_json::Value = sms_json.json().await.unwrap();
    assert_eq!(body["error"]["code"], "destination_not_allowed", "{body}");
    server.stop().await;
}

/// Walks moov-ci to the "Recevoir par SMS" choice and takes it; returns the last screen.
async fn receive_by_sms(phone: &mut Phone) -> crate::support::Screen {
    phone.dial().await;
    phone.send("1").await;
    phone.send("2").await;
    phone.send("98").await;
    let choice = phone.send("98").await;
    assert!(choice.text.contains("Recevoir par SMS"), "{choice:?}");
    phone.send("1").await
}

#[tokio::test]
async fn a_ussd_recevoir_par_sms_from_a_foreign_number_ends_politely_and_queues_nothing() {
    let (config, store) = config(LimitSettings::off(), None);
    let server = Server::start_with(config, store).await;
    let before = server.outbox_ready().await;
    let mut phone = Phone::new(&server, Dialect::Hubtel, "*144#", "+33612345678");
    let last = receive_by_sms(&mut phone).await;
    assert_eq!(
        (last.text.as_str(), last.end),
        ("Nous ne pouvons pas envoyer de SMS à ce numéro.", true)
    );
    assert_eq!(server.outbox_ready().await, before);
    server.stop().await;
}

#[tokio::test]
async fn the_daily_cap_stops_the_next_sms_across_two_gateways_on_redis() {
    let url = redis_url();
    let prefix = unique_prefix("daily-cap");
    let capped = |mut c: Config| {
        for t in &mut c.tenants {
            t.sms_per_subscriber_per_day = 2;
        }
        c
    };
    let (config_a, store_a) = config(LimitSettings::off(), Some((&url, &prefix)));
    let (config_b, store_b) = config(LimitSettings::off(), Some((&url, &prefix)));
    let first = Server::start_with(capped(config_a), store_a).await;
    let second = Server::start_with(capped(config_b), store_b).await;
    let from = "+2250700000901";
    let before = first.outbox_ready().await;
    jasmin_mo(&first, "d1", from, "144", "SIM").await;
    jasmin_mo(&second, "d2", from, "144", "SIM").await;
    assert_eq!(first.outbox_ready().await, before + 2);
    // The third of the day, on either gateway: acknowledged, not queued.
    assert_eq!(jasmin_mo(&first, "d3", from, "144", "SIM").await.0, 200);
    assert_eq!(jasmin_mo(&second, "d4", from, "144", "SIM").await.0, 200);
    assert_eq!(first.outbox_ready().await, before + 2);
    // And a USSD "Recevoir par SMS" says so instead of promising an SMS.
    let mut phone = Phone::new(&first, Dialect::Json, "*144#", from);
    let last = receive_by_sms(&mut phone).await;
    assert_eq!(
        last.text,
        "Vous avez recu le nombre maximal de SMS pour aujourd'hui."
    );
    assert_eq!(first.outbox_ready().await, before + 2);
    // Another subscriber still gets theirs.
    jasmin_mo(&second, "d5", "+2250700000902", "144", "SIM").await;
    assert_eq!(first.outbox_ready().await, before + 3);
    first.stop().await;
    second.stop().await;
}

#[test]
fn check_reports_bad_destinations_and_negative_limits_at_once() {
    let dir = TempDir::new("limits-check");
    let shipped = std::fs::read_to_string(root().join("config/tamtam.toml")).unwrap();
    let text = shipped
        .replace(
            "sms_destinations = [\"+225\"]",
            "sms_destinations = [\"225\", \"+22x\"]",
        )
        .replace(
            "sms_per_subscriber_per_day = 10",
            "sms_per_subscriber_per_day = -1",
        )
        .replace(
            "per_subscriber_per_minute = 30",
            "per_subscriber_per_minute = -5",
        )
        .replace("\"../", &format!("\"{}/", root().display()));
    let path = dir.0.join("tamtam.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(tamtam_bin())
        .arg("check")
        .env("TAMTAM_CONFIG", &path)
        .env_remove("TAMTAM_LISTEN")
        .env_remove("TAMTAM_REDIS_URL")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    for needle in [
        "tenant moov-ci: error: sms_destinations: `225` is not a number prefix such as +225",
        "tenant moov-ci: error: sms_destinations: `+22x` is not a number prefix such as +225",
        "tenant moov-ci: error: `sms_per_subscriber_per_day` must be a whole number from 0 to 4294967295",
        "limits: error: `per_subscriber_per_minute` must be a whole number from 0 to 4294967295",
    ] {
        assert!(said.contains(needle), "{needle} in {said}");
    }
}

#[tokio::test]
async fn one_source_address_over_its_rate_is_refused_whoever_it_claims_to_be() {
    let limits = LimitSettings {
        per_source: Rate {
            per_minute: 1,
            burst: 2,
        },
        ..LimitSettings::off()
    };
    let (config, store) = config(limits, None);
    let server = Server::start_with(config, store).await;
    // Three subscribers, one address (loopback): the third hop is refused.
    let mut screens = Vec::new();
    for n in 0..3 {
        let msisdn = format!("+225070000110{n}");
        let mut phone = Phone::new(&server, Dialect::AfricasTalking, "*144#", &msisdn);
        screens.push(phone.dial().await.text);
    }
    assert!(screens[0].starts_with("Moov Africa"), "{screens:?}");
    assert!(screens[1].starts_with("Moov Africa"), "{screens:?}");
    assert_eq!(screens[2], TOO_MANY);
    server.stop().await;
}
