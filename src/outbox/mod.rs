//! The outbound queue: SMS that tamtam sends itself (a USSD follow-up, a reply to an
//! aggregator that does not take replies in the webhook response), durably, with retries
//! and delivery tracking.
//!
//! - [`Outbox`]: accept a message ([`Outbox::accept`]), read its status history
//!   ([`Outbox::status`]), list dead letters.
//! - `queue/`: where accepted messages wait, laid out like `session/` (the contract in
//!   `mod.rs`, one file per queue). On Redis, a stream with a consumer group (each entry
//!   goes to one replica; entries a crashed replica left unacknowledged are claimed again
//!   after `claim_after`), a sorted set of delayed retries, and a dead-letter list. In
//!   memory: the same contract for one process, lost on restart.
//! - `worker`: the loop that sends, with a per-sender rate limit, exponential backoff with
//!   jitter on timeouts and 5xx, no retry on 4xx, and dead-lettering after `max_attempts`.
//! - `senders`: the HTTP APIs that send (Kannel `sendsms`, Jasmin `/send`, Africa's
//!   Talking, a generic JSON endpoint).
//!
//! Delivery is at least once: a replica that dies after the SMSC accepted a message but
//! before acknowledging it leaves it to be sent again. The window is one HTTP call.

mod health;
mod queue;
pub mod senders;
mod worker;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use health::{Health, SenderHealth};
pub use queue::{
    DeadFilter, DeadLetter, Delivery, HistoryLimits, MemoryQueue, Queue, QueueStats, RedisQueue,
    DEFAULT_DETAIL_MAX_CHARS, DEFAULT_HISTORY_MAX_ENTRIES,
};
pub use senders::{SendError, Sender, SenderConfig, SenderKind, DEFAULT_TIMEOUT_MS};
pub use worker::{run_worker, WorkerSettings};

/// Why the outbox could not take or tell something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// The queue's store is unreachable, timed out, or answered nonsense (Redis).
    #[error("outbound queue unavailable; {0}")]
    Unavailable(String),
    /// There is no queue: no `[[sender]]` is configured, so nothing can be sent.
    #[error("no outbound queue; configure a `[[sender]]`")]
    NotConfigured,
}

/// A message to send, as queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutMessage {
    /// tamtam's id for the message (`GET /messages/{id}`).
    pub id: String,
    /// The sender (`[[sender]] name`) that sends it.
    pub sender: String,
    /// The tenant it is sent for (`[[tenant]] id`).
    pub tenant: String,
    /// The short code or number it is sent from.
    pub from: String,
    /// The subscriber.
    pub to: String,
    /// The text as the subscriber will read it (already shaped to the tenant's limits).
    pub text: String,
    /// Africa's Talking's `linkId`, echoed on premium replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_id: Option<String>,
    /// Send attempts made so far.
    #[serde(default)]
    pub attempts: u32,
}

/// One step in a message's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEvent {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// `accepted`, `sent`, `retrying`, `dead`, or a delivery report's status (`delivered`,
    /// `failed`, `buffered`, `rejected`, `submitted`…).
    pub status: String,
    /// Why, or the provider's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A message id: time-ordered, unique across replicas (time, process, counter, randomness
/// from the hasher's per-process keys).
pub fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u32(std::process::id());
    format!("{:x}-{:x}-{:08x}", now_ms(), n, h.finish() as u32)
}

/// The outbound side of the gateway: a queue and its status records.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// Where accepted messages wait, and their status histories.
    pub queue: Queue,
    /// How long status histories are kept.
    pub status_ttl: Duration,
}

impl Outbox {
    /// Accepts a message: once this returns, it will be sent (or dead-lettered).
    pub async fn accept(&self, message: &OutMessage) -> Result<(), OutboxError> {
        self.queue
            .push(message, &event("accepted", None), self.status_ttl)
            .await
    }

    /// A message's status history, oldest first.
    pub async fn status(&self, id: &str) -> Result<Vec<StatusEvent>, OutboxError> {
        self.queue.history(id).await
    }

    /// Records a delivery report for the message the provider calls `provider_id`.
    /// Returns our message id when the provider id is known.
    ///
    /// A report only adds to a history that exists, and does not renew its time to live:
    /// however many reports arrive, a history is gone `status_ttl` after the gateway's own
    /// last event, and holds at most the queue's `max_entries`.
    pub async fn report(
        &self,
        sender: &str,
        provider_id: &str,
        status: &str,
        detail: Option<String>,
    ) -> Result<Option<String>, OutboxError> {
        let Some(id) = self.queue.resolve_provider_id(sender, provider_id).await? else {
            return Ok(None);
        };
        // Resolved but expired since: the report has nothing left to add to.
        self.queue.report(&id, &event(status, detail)).await?;
        Ok(Some(id))
    }

    /// Records a delivery report for one of our own message ids (Kannel's `dlr-url` carries
    /// it), in one round trip. False when the message is unknown (or its history expired).
    pub async fn report_own(
        &self,
        id: &str,
        status: &str,
        detail: Option<String>,
    ) -> Result<bool, OutboxError> {
        self.queue.report(id, &event(status, detail)).await
    }

    /// Sends dead letters again (`tamtam outbox requeue`): each keeps its id and history,
    /// gains a `requeued` event, and starts over with no attempt counted. Returns their ids.
    pub async fn requeue(&self, filter: &DeadFilter) -> Result<Vec<String>, OutboxError> {
        self.queue
            .requeue(filter, &event("requeued", None), self.status_ttl)
            .await
    }

    /// Forgets dead letters (`tamtam outbox purge`); each history gains a `purged` event.
    /// Returns their ids.
    pub async fn purge(&self, filter: &DeadFilter) -> Result<Vec<String>, OutboxError> {
        self.queue
            .purge(filter, &event("purged", None), self.status_ttl)
            .await
    }
}

/// The status a history has reached: the most advanced one, so that a delivery report
/// recorded before the worker's own "sent" (they race) still reads "delivered". Among
/// equally advanced ones, the latest. A `requeued` message starts over: only what follows
/// the last `requeued` event counts.
pub fn current_status(history: &[StatusEvent]) -> Option<&str> {
    fn rank(status: &str) -> u8 {
        match status {
            "accepted" | "requeued" => 0,
            "retrying" => 1,
            "sent" => 2,
            "submitted" | "buffered" => 3,
            // Final: delivered, failed, rejected, dead, or a provider's word we do not know.
            _ => 4,
        }
    }
    let since = history
        .iter()
        .rposition(|e| e.status == "requeued")
        .unwrap_or(0);
    history[since..]
        .iter()
        .enumerate()
        .max_by_key(|(i, e)| (rank(&e.status), *i))
        .map(|(_, e)| e.status.as_str())
}

/// A provider's detail as a history keeps it: control characters (line breaks, escapes)
/// dropped, at most `max_chars` characters (the cut ends with `…`). Borrowed when it is
/// already fine, which is the common case.
pub fn clean_detail(detail: &str, max_chars: usize) -> std::borrow::Cow<'_, str> {
    let fine = !detail.chars().any(char::is_control)
        && (detail.len() <= max_chars || detail.chars().count() <= max_chars);
    if fine {
        return std::borrow::Cow::Borrowed(detail);
    }
    let kept = detail.chars().filter(|c| !c.is_control());
    let mut out: String = kept.clone().take(max_chars).collect();
    if max_chars > 0 && kept.count() > max_chars {
        out.pop();
        out.push('…');
    }
    std::borrow::Cow::Owned(out)
}

/// A status event stamped now.
pub fn event(status: &str, detail: Option<String>) -> StatusEvent {
    StatusEvent {
        at_ms: now_ms(),
        status: status.to_string(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_category_then_detail() {
        assert_eq!(
            OutboxError::Unavailable("connection refused".into()).to_string(),
            "outbound queue unavailable; connection refused"
        );
        assert_eq!(
            OutboxError::NotConfigured.to_string(),
            "no outbound queue; configure a `[[sender]]`"
        );
    }

    #[test]
    fn the_most_advanced_status_wins() {
        let h =
            |names: &[&str]| -> Vec<StatusEvent> { names.iter().map(|n| event(n, None)).collect() };
        assert_eq!(current_status(&h(&["accepted"])), Some("accepted"));
        assert_eq!(
            current_status(&h(&["accepted", "retrying", "sent"])),
            Some("sent")
        );
        // The report raced ahead of the worker's own record.
        assert_eq!(
            current_status(&h(&["accepted", "delivered", "sent"])),
            Some("delivered")
        );
        assert_eq!(
            current_status(&h(&["accepted", "sent", "submitted", "delivered"])),
            Some("delivered")
        );
        assert_eq!(
            current_status(&h(&["accepted", "retrying", "retrying", "dead"])),
            Some("dead")
        );
        assert_eq!(current_status(&[]), None);
        // Requeued: the dead letter's past no longer decides.
        assert_eq!(
            current_status(&h(&["accepted", "retrying", "dead", "requeued"])),
            Some("requeued")
        );
        assert_eq!(
            current_status(&h(&["accepted", "dead", "requeued", "sent", "delivered"])),
            Some("delivered")
        );
    }

    #[test]
    fn details_lose_control_characters_and_are_cut() {
        assert!(matches!(
            clean_detail("DELIVRD: 000", 256),
            std::borrow::Cow::Borrowed("DELIVRD: 000")
        ));
        assert_eq!(clean_detail("a\r\nb\u{1b}[31mc\u{7f}", 256), "ab[31mc");
        let long = "é".repeat(60_000);
        let cut = clean_detail(&long, 10);
        assert_eq!(cut.chars().count(), 10);
        assert!(cut.ends_with('…') && cut.starts_with("ééé"), "{cut}");
        assert_eq!(clean_detail("abc", 0), "");
        assert_eq!(clean_detail("abc", 3), "abc");
    }
}
