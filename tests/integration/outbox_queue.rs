//! The outbound queue's contract, on both queues (`Queue::Memory`, `Queue::Redis` on a real
//! `redis-server`): a message goes from accepted to claimed to sent, retried or dead, keeps
//! its history, and is resolvable by the provider's id; a dead letter is requeued (same id,
//! history kept, attempts reset) or purged, by id or all of one sender; a delivery report
//! adds only to an existing history, which keeps at most its cap of entries with details
//! cleaned and cut. On Redis, two consumers never get the same message, a message a
//! consumer claimed and never finished is taken over, and reports never renew a history's
//! time to live.

use std::collections::HashSet;
use std::time::Duration;

use tamtam::outbox::{
    event, now_ms, DeadFilter, HistoryLimits, MemoryQueue, OutMessage, Queue, RedisQueue,
    DEFAULT_DETAIL_MAX_CHARS, DEFAULT_HISTORY_MAX_ENTRIES,
};
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

/// Pushes `m`, claims it and gives up on it.
async fn dead_letter(queue: &Queue, m: &OutMessage) {
    queue.push(m, &event("accepted", None), TTL).await.unwrap();
    let mut d = queue.claim("c1", 1, WAIT, NEVER).await.unwrap();
    assert_eq!(d.len(), 1);
    let mut d = d.remove(0);
    assert_eq!(d.message.id, m.id);
    d.message.attempts = 5;
    queue
        .dead(&d, "HTTP 503", &event("dead", Some("HTTP 503".into())), TTL)
        .await
        .unwrap();
}

fn filter(id: Option<&str>, sender: Option<&str>) -> DeadFilter {
    DeadFilter {
        id: id.map(str::to_string),
        sender: sender.map(str::to_string),
    }
}

async fn dead_letters_are_requeued_or_purged(queue: Queue, tag: &str) {
    let id = |n: u32| format!("{tag}-dl-{n}-{}", now_ms());
    let a = message(&id(1), "jasmin");
    dead_letter(&queue, &a).await;
    let requeued = event("requeued", None);
    // Another sender's filter, or another id, takes nothing.
    assert!(queue
        .requeue(&filter(Some(&a.id), Some("kannel")), &requeued, TTL)
        .await
        .unwrap()
        .is_empty());
    assert!(queue
        .requeue(&filter(Some("no-such-id"), None), &requeued, TTL)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(queue.stats().await.unwrap().dead, 1, "{tag}");
    assert_eq!(
        queue
            .requeue(&filter(Some(&a.id), None), &requeued, TTL)
            .await
            .unwrap(),
        vec![a.id.clone()],
        "{tag}"
    );
    let s = queue.stats().await.unwrap();
    assert_eq!((s.ready, s.dead), (1, 0), "{tag}: back in the queue: {s:?}");
    assert_eq!(
        statuses(&queue.history(&a.id).await.unwrap()),
        ["accepted", "dead", "requeued"],
        "{tag}: the history is kept"
    );
    // Taken once: a second requeue finds nothing.
    assert!(queue
        .requeue(&filter(Some(&a.id), None), &requeued, TTL)
        .await
        .unwrap()
        .is_empty());
    let again = queue.claim("c1", 10, WAIT, NEVER).await.unwrap();
    assert_eq!(again.len(), 1, "{tag}: claimed once");
    assert_eq!(
        again[0].message,
        OutMessage {
            attempts: 0,
            ..a.clone()
        },
        "{tag}: the same message, its attempts reset"
    );
    queue
        .sent(&again[0], None, &event("sent", None), TTL)
        .await
        .unwrap();

    // --all --sender: only that sender's; purge forgets, with a `purged` event.
    let b = message(&id(2), "jasmin");
    let c = message(&id(3), "kannel");
    let d = message(&id(4), "jasmin");
    for m in [&b, &c, &d] {
        dead_letter(&queue, m).await;
    }
    let mut purged = queue
        .purge(&filter(None, Some("jasmin")), &event("purged", None), TTL)
        .await
        .unwrap();
    purged.sort();
    let mut expected = vec![b.id.clone(), d.id.clone()];
    expected.sort();
    assert_eq!(purged, expected, "{tag}");
    let left = queue.dead_letters(10).await.unwrap();
    assert_eq!(left.len(), 1, "{tag}: {left:?}");
    assert_eq!(left[0].message.id, c.id, "{tag}");
    assert_eq!(
        statuses(&queue.history(&b.id).await.unwrap()),
        ["accepted", "dead", "purged"],
        "{tag}"
    );
    assert_eq!(
        queue
            .requeue(&DeadFilter::default(), &requeued, TTL)
            .await
            .unwrap(),
        vec![c.id.clone()],
        "{tag}: --all takes what is left"
    );
    let s = queue.stats().await.unwrap();
    assert_eq!((s.ready, s.dead), (1, 0), "{tag}: {s:?}");
}

async fn reports_keep_histories_bounded(queue: Queue, tag: &str) {
    let m = message(&format!("{tag}-reports-{}", now_ms()), "jasmin");
    // A report for a message without a history adds nothing and says so.
    let report = event("delivered", Some("DELIVRD".into()));
    assert!(!queue.report(&m.id, &report).await.unwrap(), "{tag}");
    assert!(queue.history(&m.id).await.unwrap().is_empty(), "{tag}");
    queue.push(&m, &event("accepted", None), TTL).await.unwrap();
    assert!(queue.report(&m.id, &report).await.unwrap(), "{tag}");
    assert_eq!(
        statuses(&queue.history(&m.id).await.unwrap()),
        ["accepted", "delivered"],
        "{tag}"
    );
    // 200 reports with a 60 KB detail full of control characters.
    let huge = "x\r\n\u{1b}[2J".repeat(10_000);
    assert!(huge.len() >= 60_000);
    for n in 0..200 {
        let e = event("failed", Some(format!("{n} {huge}")));
        assert!(queue.report(&m.id, &e).await.unwrap(), "{tag}: report {n}");
    }
    let history = queue.history(&m.id).await.unwrap();
    assert_eq!(
        history.len(),
        DEFAULT_HISTORY_MAX_ENTRIES,
        "{tag}: at most the cap"
    );
    for e in &history {
        let d = e.detail.as_deref().unwrap_or("");
        assert!(
            d.chars().count() <= DEFAULT_DETAIL_MAX_CHARS,
            "{tag}: {} chars",
            d.chars().count()
        );
        assert!(!d.chars().any(char::is_control), "{tag}: {d:?}");
    }
    // The newest are kept.
    let last = history.last().unwrap().detail.as_deref().unwrap();
    assert!(last.starts_with("199 x[2Jx[2J"), "{tag}: {last}");

    // A queue with smaller limits keeps them, for the gateway's own events too.
    let small = queue.with_history_limits(HistoryLimits {
        max_entries: 3,
        detail_max_chars: 5,
    });
    let m2 = message(&format!("{tag}-small-{}", now_ms()), "jasmin");
    small
        .push(&m2, &event("accepted", Some("abcdefgh".into())), TTL)
        .await
        .unwrap();
    for status in ["submitted", "buffered", "delivered"] {
        assert!(small.report(&m2.id, &event(status, None)).await.unwrap());
    }
    let history = small.history(&m2.id).await.unwrap();
    assert_eq!(
        statuses(&history),
        ["submitted", "buffered", "delivered"],
        "{tag}"
    );
    let h2 = message(&format!("{tag}-small2-{}", now_ms()), "jasmin");
    small
        .push(&h2, &event("accepted", Some("abcdefgh".into())), TTL)
        .await
        .unwrap();
    assert_eq!(
        small.history(&h2.id).await.unwrap()[0].detail.as_deref(),
        Some("abcd…"),
        "{tag}"
    );
}

#[tokio::test]
async fn the_memory_queue_requeues_and_purges_dead_letters() {
    dead_letters_are_requeued_or_purged(Queue::Memory(MemoryQueue::new()), "memory").await;
}

#[tokio::test]
async fn the_redis_queue_requeues_and_purges_dead_letters() {
    dead_letters_are_requeued_or_purged(redis_queue(&unique_prefix("outbox-requeue")), "redis")
        .await;
}

#[tokio::test]
async fn the_memory_queue_keeps_histories_bounded() {
    reports_keep_histories_bounded(Queue::Memory(MemoryQueue::new()), "memory").await;
}

#[tokio::test]
async fn the_redis_queue_keeps_histories_bounded() {
    reports_keep_histories_bounded(redis_queue(&unique_prefix("outbox-bounded")), "redis").await;
}

#[tokio::test]
async fn a_report_never_renews_a_redis_history_s_time_to_live() {
    let prefix = unique_prefix("outbox-report-ttl");
    let queue = redis_queue(&prefix);
    let m = message(&format!("ttl-{}", now_ms()), "jasmin");
    queue.push(&m, &event("accepted", None), TTL).await.unwrap();
    let key = format!("{prefix}:status:{{{}}}", m.id);
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 100_000, "the history has its TTL: {ttl}");
    // Pretend most of its life has passed.
    let _: () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(100_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    for _ in 0..5 {
        assert!(queue
            .report(&m.id, &event("delivered", Some("DELIVRD".into())))
            .await
            .unwrap());
    }
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (1..=100_000).contains(&ttl),
        "reports left the TTL alone: {ttl}"
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
