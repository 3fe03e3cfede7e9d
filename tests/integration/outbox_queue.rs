//! The outbound queue's contract, on both queues (`Queue::Memory`, `Queue::Redis` on a real
//! `redis-server`): a message goes from accepted to claimed to sent, retried or dead, keeps
//! its history, and is resolvable by the provider's id. On Redis, two consumers never get
//! the same message, and a message a consumer claimed and never finished is taken over.

use std::collections::HashSet;
use std::time::Duration;

use tamtam::outbox::{event, now_ms, MemoryQueue, OutMessage, Queue, RedisQueue};
use tokio::time::Instant;

use crate::support::outbox_fake::{statuses, TIMEOUT};
use crate::support::{redis_url, unique_prefix};

const TTL: Duration = Duration::from_secs(3600);
/// Long enough that no entry is ever taken over in a test that does not want it.
const NEVER: Duration = Duration::from_secs(3600);
const WAIT: Duration = Duration::from_millis(50);

pub fn message(id: &str, sender: &str) -> OutMessage {
    OutMessage {
        id: id.to_string(),
        sender: sender.to_string(),
        tenant: "moov-ci".into(),
        from: "144".into(),
        to: "+2250700000001".into(),
        text: format!("texte de {id}"),
        link_id: None,
        attempts: 0,
    }
}

pub fn redis_queue(prefix: &str) -> Queue {
    Queue::Redis(RedisQueue::open(&redis_url(), prefix, Duration::from_secs(2)).unwrap())
}

async fn contract(queue: Queue, tag: &str) {
    let id = |n: u32| format!("{tag}-{n}-{}", now_ms());
    let empty = queue.stats().await.unwrap();
    assert_eq!(
        (empty.ready, empty.in_flight, empty.delayed, empty.dead),
        (0, 0, 0, 0),
        "{tag}: a new queue is empty"
    );
    // Nothing to claim: an empty answer after the wait, not an error.
    let nothing = tokio::time::timeout(TIMEOUT, queue.claim("c1", 10, WAIT, NEVER))
        .await
        .expect("an empty claim returns after its wait");
    assert!(nothing.unwrap().is_empty());

    // push → claim → sent with the provider's id.
    let m1 = message(&id(1), "jasmin");
    queue
        .push(&m1, &event("accepted", None), TTL)
        .await
        .unwrap();
    let s = queue.stats().await.unwrap();
    assert_eq!((s.ready, s.in_flight), (1, 0), "{tag}: {s:?}");
    let got = queue.claim("c1", 10, WAIT, NEVER).await.unwrap();
    assert_eq!(got.len(), 1, "{tag}");
    assert_eq!(got[0].message, m1, "{tag}: the message as pushed");
    let s = queue.stats().await.unwrap();
    assert_eq!((s.ready, s.in_flight), (0, 1), "{tag}: claimed: {s:?}");
    let mut sends = queue.sends();
    assert!(!sends.has_changed().unwrap(), "{tag}: nothing sent yet");
    queue
        .sent(
            &got[0],
            Some("07033084-5cfd-4812-90a4-e4d24ffb6e3d"),
            &event("sent", None),
            TTL,
        )
        .await
        .unwrap();
    assert!(
        sends.has_changed().unwrap(),
        "{tag}: a recorded send wakes whoever waits for one"
    );
    sends.mark_unchanged();
    assert_eq!(
        statuses(&queue.history(&m1.id).await.unwrap()),
        ["accepted", "sent"],
        "{tag}"
    );
    assert_eq!(
        queue
            .resolve_provider_id("jasmin", "07033084-5cfd-4812-90a4-e4d24ffb6e3d")
            .await
            .unwrap()
            .as_deref(),
        Some(m1.id.as_str()),
        "{tag}: the provider's id leads to ours"
    );
    assert_eq!(
        queue
            .resolve_provider_id("other", "07033084-5cfd-4812-90a4-e4d24ffb6e3d")
            .await
            .unwrap(),
        None,
        "{tag}: provider ids are per sender"
    );
    assert_eq!(
        queue.resolve_provider_id("jasmin", "nope").await.unwrap(),
        None
    );
    assert!(queue.history("never-pushed").await.unwrap().is_empty());
    let s = queue.stats().await.unwrap();
    assert_eq!((s.ready, s.in_flight), (0, 0), "{tag}: sent leaves: {s:?}");

    // retry_at (due now) → promote_due → claimed again, attempts kept.
    let m2 = message(&id(2), "jasmin");
    queue
        .push(&m2, &event("accepted", None), TTL)
        .await
        .unwrap();
    let mut d = queue.claim("c1", 10, WAIT, NEVER).await.unwrap();
    assert_eq!(d.len(), 1, "{tag}");
    let mut d = d.remove(0);
    d.message.attempts = 1;
    queue
        .retry_at(
            &d,
            now_ms(),
            &event("retrying", Some("HTTP 503".into())),
            TTL,
        )
        .await
        .unwrap();
    // A retry due in an hour stays where it is.
    let m3 = message(&id(3), "jasmin");
    queue
        .push(&m3, &event("accepted", None), TTL)
        .await
        .unwrap();
    let mut later = queue.claim("c1", 10, WAIT, NEVER).await.unwrap();
    assert_eq!(later.len(), 1, "{tag}");
    let mut later = later.remove(0);
    assert_eq!(later.message.id, m3.id);
    later.message.attempts = 1;
    queue
        .retry_at(&later, now_ms() + 3_600_000, &event("retrying", None), TTL)
        .await
        .unwrap();
    let s = queue.stats().await.unwrap();
    assert_eq!(
        (s.ready, s.in_flight, s.delayed),
        (0, 0, 2),
        "{tag}: two retries wait: {s:?}"
    );
    assert!(
        queue.claim("c1", 10, WAIT, NEVER).await.unwrap().is_empty(),
        "{tag}: a delayed message is not claimable before it is promoted"
    );
    assert_eq!(
        queue.promote_due().await.unwrap(),
        1,
        "{tag}: only the due one"
    );
    let s = queue.stats().await.unwrap();
    assert_eq!((s.ready, s.delayed), (1, 1), "{tag}: {s:?}");
    let again = queue.claim("c1", 10, WAIT, NEVER).await.unwrap();
    assert_eq!(again.len(), 1, "{tag}");
    assert_eq!(again[0].message.id, m2.id, "{tag}");
    assert_eq!(again[0].message.attempts, 1, "{tag}: attempts kept");
    assert_eq!(again[0].message.text, m2.text, "{tag}");
    assert_eq!(
        statuses(&queue.history(&m2.id).await.unwrap()),
        ["accepted", "retrying"],
        "{tag}"
    );

    // dead → listed with its reason.
    let reason = "HTTP 400: No route found";
    queue
        .dead(&again[0], reason, &event("dead", Some(reason.into())), TTL)
        .await
        .unwrap();
    let letters = queue.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1, "{tag}: {letters:?}");
    assert_eq!(letters[0].message.id, m2.id, "{tag}");
    assert_eq!(letters[0].message.attempts, 1, "{tag}");
    assert_eq!(letters[0].reason, reason, "{tag}");
    let history = queue.history(&m2.id).await.unwrap();
    assert_eq!(
        statuses(&history),
        ["accepted", "retrying", "dead"],
        "{tag}"
    );
    assert_eq!(history[2].detail.as_deref(), Some(reason), "{tag}");

    // A delivery report adds to the history.
    queue
        .record(&m1.id, &event("delivered", Some("DELIVRD".into())), TTL)
        .await
        .unwrap();
    assert_eq!(
        statuses(&queue.history(&m1.id).await.unwrap()),
        ["accepted", "sent", "delivered"],
        "{tag}"
    );

    let s = queue.stats().await.unwrap();
    assert_eq!(
        (s.ready, s.in_flight, s.delayed, s.dead),
        (0, 0, 1, 1),
        "{tag}: final counts"
    );
    assert!(
        !sends.has_changed().unwrap(),
        "{tag}: retries, dead letters and reports are not sends"
    );
}

#[tokio::test]
async fn the_memory_queue_keeps_the_contract() {
    contract(Queue::Memory(MemoryQueue::new()), "memory").await;
}

#[tokio::test]
async fn the_redis_queue_keeps_the_contract() {
    contract(redis_queue(&unique_prefix("outbox-contract")), "redis").await;
}

#[tokio::test]
async fn two_redis_consumers_never_get_the_same_message() {
    let prefix = unique_prefix("outbox-two-consumers");
    let a = redis_queue(&prefix);
    let b = redis_queue(&prefix);
    let mut pushed = HashSet::new();
    for n in 0..50 {
        let m = message(&format!("two-{n}-{}", now_ms()), "http");
        a.push(&m, &event("accepted", None), TTL).await.unwrap();
        pushed.insert(m.id);
    }
    async fn drain(queue: Queue, consumer: &'static str) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut got = Vec::new();
        // Small batches so that both consumers take turns; stop when the stream is empty.
        loop {
            let batch = queue.claim(consumer, 3, WAIT, NEVER).await.unwrap();
            if batch.is_empty() && queue.stats().await.unwrap().ready == 0 {
                return got;
            }
            got.extend(batch.into_iter().map(|d| d.message.id));
            assert!(Instant::now() < deadline, "{consumer}: still claiming");
        }
    }
    let (from_a, from_b) = tokio::join!(drain(a.clone(), "worker-a"), drain(b, "worker-b"));
    let set_a: HashSet<_> = from_a.iter().cloned().collect();
    let set_b: HashSet<_> = from_b.iter().cloned().collect();
    assert_eq!(set_a.len(), from_a.len(), "worker-a got a message twice");
    assert_eq!(set_b.len(), from_b.len(), "worker-b got a message twice");
    assert!(
        set_a.is_disjoint(&set_b),
        "both got {:?}",
        set_a.intersection(&set_b).collect::<Vec<_>>()
    );
    let union: HashSet<_> = set_a.union(&set_b).cloned().collect();
    assert_eq!(union, pushed, "every message claimed exactly once");
    let s = a.stats().await.unwrap();
    assert_eq!((s.ready, s.in_flight), (0, 50), "{s:?}");
}

#[tokio::test]
async fn a_claimed_message_never_acknowledged_is_taken_over_after_claim_after() {
    let prefix = unique_prefix("outbox-takeover");
    let dead_replica = redis_queue(&prefix);
    let survivor = redis_queue(&prefix);
    let m = message(&format!("takeover-{}", now_ms()), "http");
    dead_replica
        .push(&m, &event("accepted", None), TTL)
        .await
        .unwrap();
    // Taken before the claim: the entry's idle time starts no earlier than this.
    let claimed_at = Instant::now();
    let claimed = dead_replica.claim("dead", 10, WAIT, NEVER).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // "dead" never acknowledges. Before claim_after, the survivor cannot have it.
    assert!(
        survivor
            .claim("survivor", 10, WAIT, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "taken over before claim_after"
    );
    let claim_after = Duration::from_millis(200);
    let deadline = Instant::now() + TIMEOUT;
    let taken = loop {
        let got = survivor
            .claim("survivor", 10, WAIT, claim_after)
            .await
            .unwrap();
        if !got.is_empty() {
            break got;
        }
        assert!(Instant::now() < deadline, "never taken over");
    };
    assert!(
        claimed_at.elapsed() >= claim_after,
        "taken over after {:?}",
        claimed_at.elapsed()
    );
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].message, m);
    assert_eq!(taken[0].entry, claimed[0].entry, "the same stream entry");
    let s = survivor.stats().await.unwrap();
    assert_eq!((s.ready, s.in_flight), (0, 1), "{s:?}");
    survivor
        .sent(&taken[0], None, &event("sent", None), TTL)
        .await
        .unwrap();
    let s = survivor.stats().await.unwrap();
    assert_eq!((s.ready, s.in_flight), (0, 0), "{s:?}");
    assert_eq!(
        statuses(&survivor.history(&m.id).await.unwrap()),
        ["accepted", "sent"]
    );
    // Once acknowledged it is gone for everyone, the first consumer included.
    assert!(dead_replica
        .claim("dead", 10, WAIT, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
}
