//! The session-store contract, run on both stores (Redis: the real server the test
//! command started), and the stored record's behaviour across menu changes.

use std::time::Duration;

use tamtam::gateway::records::{SessionRecord, StateRecord};
use tamtam::session::{keys, MemoryStore, RedisStore, Store, Write};

use crate::support::{redis_url, shipped_config, shipped_tenants, unique_prefix};

async fn contract(store: &Store, prefix: &str) {
    let a = format!("{prefix}:a");
    let b = format!("{prefix}:b");
    let missing = format!("{prefix}:missing");
    let ttl = Duration::from_secs(60);

    assert_eq!(store.get(&[&a]).await.unwrap(), vec![None], "absent key");
    store.write(&[]).await.unwrap();
    store
        .write(&[
            Write::Set {
                key: a.clone(),
                value: b"one".to_vec(),
                ttl,
            },
            Write::Set {
                key: b.clone(),
                value: b"two".to_vec(),
                ttl,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        store.get(&[&a, &missing, &b]).await.unwrap(),
        vec![Some(b"one".to_vec()), None, Some(b"two".to_vec())],
        "several keys at once, in order"
    );
    // Writes apply in order: set then delete leaves nothing; overwrite replaces.
    store
        .write(&[
            Write::Set {
                key: a.clone(),
                value: b"three".to_vec(),
                ttl,
            },
            Write::Delete { key: b.clone() },
        ])
        .await
        .unwrap();
    assert_eq!(
        store.get(&[&a, &b]).await.unwrap(),
        vec![Some(b"three".to_vec()), None]
    );
    store
        .write(&[
            Write::Set {
                key: b.clone(),
                value: vec![0, 255, 1],
                ttl,
            },
            Write::Delete { key: b.clone() },
        ])
        .await
        .unwrap();
    assert_eq!(store.get(&[&b]).await.unwrap(), vec![None]);
    // Binary values survive.
    store
        .write(&[Write::Set {
            key: b.clone(),
            value: vec![0, 255, 1],
            ttl,
        }])
        .await
        .unwrap();
    assert_eq!(store.get(&[&b]).await.unwrap(), vec![Some(vec![0, 255, 1])]);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    contract(&Store::Memory(MemoryStore::new()), "m").await;
}

#[tokio::test]
async fn redis_store_keeps_the_contract() {
    let store = Store::Redis(RedisStore::open(&redis_url(), Duration::from_secs(2)).unwrap());
    contract(&store, &unique_prefix("contract")).await;
}

#[tokio::test(start_paused = true)]
async fn memory_keys_expire_after_their_ttl() {
    let store = MemoryStore::new();
    store.write(&[Write::Set {
        key: "k".into(),
        value: b"v".to_vec(),
        ttl: Duration::from_secs(180),
    }]);
    tokio::time::advance(Duration::from_secs(179)).await;
    assert_eq!(store.get(&["k"]), vec![Some(b"v".to_vec())]);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(store.get(&["k"]), vec![None]);
}

#[tokio::test(start_paused = true)]
async fn memory_store_sweeps_expired_keys() {
    let store = MemoryStore::new();
    for i in 0..10 {
        store.write(&[Write::Set {
            key: format!("old{i}"),
            value: vec![1],
            ttl: Duration::from_secs(1),
        }]);
    }
    tokio::time::advance(Duration::from_secs(2)).await;
    for i in 0..5000 {
        store.write(&[Write::Set {
            key: "live".into(),
            value: vec![i as u8],
            ttl: Duration::from_secs(60),
        }]);
    }
    assert_eq!(store.len(), 1, "expired keys are swept, live ones kept");
}

#[tokio::test]
async fn redis_keys_always_carry_a_ttl() {
    let url = redis_url();
    let store = Store::Redis(RedisStore::open(&url, Duration::from_secs(2)).unwrap());
    let key = format!("{}:ttl", unique_prefix("ttl"));
    store
        .write(&[Write::Set {
            key: key.clone(),
            value: b"v".to_vec(),
            ttl: Duration::from_secs(180),
        }])
        .await
        .unwrap();
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 170_000 && pttl <= 180_000, "PTTL {pttl}");
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_hang() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let store =
        Store::Redis(RedisStore::open("redis://127.0.0.1:1", Duration::from_millis(300)).unwrap());
    assert!(store.ping().await.is_err());
    assert!(store.get(&["k"]).await.is_err());
}

#[test]
fn a_record_survives_a_menu_that_lost_its_screen() {
    let config = shipped_config(None);
    let tenants = shipped_tenants(&config);
    let menu = &tenants[0].menu;
    let home = menu.screen(menu.home).id.clone();
    let rec = StateRecord {
        screen: "no_such_screen".into(),
        page: 3,
        history: vec![home.clone(), "gone".into()],
        errors: 2,
        vars: vec![("a".into(), "b".into())],
        resume: None,
    };
    let state = rec.to_state(menu);
    assert_eq!(state.screen, menu.home, "a vanished screen sends home");
    assert_eq!(state.page, 0);
    assert_eq!(
        state.history,
        vec![menu.home],
        "vanished history entries are dropped"
    );
    assert_eq!(state.var("a"), Some("b"));
    assert_eq!(StateRecord::from_state(&state, menu).screen, home);

    // Damaged or foreign bytes read as no session, never as a crash.
    assert!(SessionRecord::from_bytes(b"{not json").is_none());
    assert!(
        SessionRecord::from_bytes(br#"{"v":99,"state":null,"reply":{"text":"x","end":true}}"#)
            .is_none()
    );
    // Every key of one subscriber's conversation shares one hash tag (one Cluster slot).
    let tag = |key: String| key[key.find('{').unwrap()..=key.find('}').unwrap()].to_string();
    for key in [
        keys::session("p", "t", "+1", "d", "s"),
        keys::resume("p", "t", "+1"),
        keys::sms("p", "t", "144", "+1"),
        keys::message("p", "t", "+1", "d", "id"),
    ] {
        assert_eq!(tag(key), "{t:+1}", "cluster hash tag");
    }
}
