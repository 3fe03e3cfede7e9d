//! Where accepted messages wait to be sent: one queue contract, two queues.
//!
//! - [`RedisQueue`] (`redis.rs`): durable and shared by every replica. A stream with a
//!   consumer group hands each message to one replica, a sorted set holds delayed retries,
//!   a list holds dead letters. Every change of a message's place is one transaction.
//! - [`MemoryQueue`] (`memory.rs`): the same contract for one process; nothing survives a
//!   restart. The default when no Redis is set, and what `tamtam simulate` shows.
//!
//! [`Queue`] is a closed enum rather than a trait object, as the session store is: two
//! implementations, no boxing. One test suite runs against both
//! (`tests/integration/outbox_queue.rs`): a pushed message is claimed, then sent, retried
//! when due or dead-lettered with its reason, and every move adds to its status history.
//! On Redis, two consumers never get the same message, and one claimed but never
//! acknowledged (its replica died) is taken over after `claim_after`.

mod memory;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use memory::MemoryQueue;
pub use redis::RedisQueue;

use super::{OutMessage, OutboxError, StatusEvent};

/// Most dead letters kept.
const DEAD_CAP: isize = 10_000;

/// `[outbox] history_max_entries`: most events one message's history keeps (the newest).
/// A message's own life takes a few (accepted, retrying per attempt, sent or dead,
/// requeued); the rest is room for delivery reports.
pub const DEFAULT_HISTORY_MAX_ENTRIES: usize = 32;
/// `[outbox] detail_max_chars`: longest detail an event keeps (a provider's words, an error).
pub const DEFAULT_DETAIL_MAX_CHARS: usize = 256;

/// What one message's status history may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Most events kept, the newest (at least 1).
    pub max_entries: usize,
    /// Longest detail kept, in characters (see [`clean_detail`](crate::outbox::clean_detail)).
    pub detail_max_chars: usize,
}

impl Default for HistoryLimits {
    fn default() -> HistoryLimits {
        HistoryLimits {
            max_entries: DEFAULT_HISTORY_MAX_ENTRIES,
            detail_max_chars: DEFAULT_DETAIL_MAX_CHARS,
        }
    }
}

impl HistoryLimits {
    /// `event` as a history keeps it: its detail cleaned and cut. Borrowed when unchanged.
    fn shape<'a>(&self, event: &'a StatusEvent) -> std::borrow::Cow<'a, StatusEvent> {
        use std::borrow::Cow;
        match &event.detail {
            Some(d) => match crate::outbox::clean_detail(d, self.detail_max_chars) {
                Cow::Borrowed(_) => Cow::Borrowed(event),
                Cow::Owned(clean) => Cow::Owned(StatusEvent {
                    detail: Some(clean),
                    ..event.clone()
                }),
            },
            None => Cow::Borrowed(event),
        }
    }

    fn max_entries(&self) -> usize {
        self.max_entries.max(1)
    }
}

/// Which dead letters `requeue` and `purge` take: one id, or all; of one sender, or any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadFilter {
    /// Only the message with this id (`None`: every one).
    pub id: Option<String>,
    /// Only messages of this `[[sender]]`.
    pub sender: Option<String>,
}

impl DeadFilter {
    /// Whether `letter` is taken.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        self.id.as_ref().is_none_or(|id| *id == letter.message.id)
            && self
                .sender
                .as_ref()
                .is_none_or(|s| *s == letter.message.sender)
    }
}

/// A message handed to a worker, to acknowledge, retry or dead-letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The stream entry id (empty in memory).
    pub entry: String,
    /// The message as queued; `attempts` counts the sends made before this claim.
    pub message: OutMessage,
}

/// A message given up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The message, with every attempt counted.
    pub message: OutMessage,
    /// Why it was given up on (a refusal, or the last failure after `max_attempts`).
    pub reason: String,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
}

/// Counts for `tamtam outbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Waiting to be sent now.
    pub ready: u64,
    /// Read by a replica, not yet acknowledged.
    pub in_flight: u64,
    /// Waiting for a retry.
    pub delayed: u64,
    /// Dead letters kept (the newest ones, capped).
    pub dead: u64,
}

/// The outbound queue of a gateway process.
#[derive(Debug, Clone)]
pub enum Queue {
    /// In this process only.
    Memory(MemoryQueue),
    /// In Redis, shared by every replica.
    Redis(RedisQueue),
}

impl Queue {
    /// The same queue, keeping histories within `limits` (the default without this).
    pub fn with_history_limits(self, limits: HistoryLimits) -> Queue {
        match self {
            Queue::Memory(m) => Queue::Memory(m.with_history_limits(limits)),
            Queue::Redis(r) => Queue::Redis(r.with_history_limits(limits)),
        }
    }

    /// Adds a message to send now and records `event` in its history.
    pub async fn push(
        &self,
        message: &OutMessage,
        event: &StatusEvent,
        status_ttl: Duration,
    ) -> Result<(), OutboxError> {
        match self {
            Queue::Memory(m) => {
                m.push(message.clone(), event.clone(), status_ttl);
                Ok(())
            }
            Queue::Redis(r) => r.push(message, event, status_ttl).await,
        }
    }

    /// Takes up to `count` messages for `consumer`, waiting up to `wait` when none is ready.
    pub async fn claim(
        &self,
        consumer: &str,
        count: usize,
        wait: Duration,
        claim_after: Duration,
    ) -> Result<Vec<Delivery>, OutboxError> {
        match self {
            Queue::Memory(m) => Ok(m.claim(count, wait).await),
            Queue::Redis(r) => r.claim(consumer, count, wait, claim_after).await,
        }
    }

    /// The message was sent: acknowledge it, record `event`, and remember the provider's id.
    pub async fn sent(
        &self,
        d: &Delivery,
        provider_id: Option<&str>,
        event: &StatusEvent,
        status_ttl: Duration,
    ) -> Result<(), OutboxError> {
        match self {
            Queue::Memory(m) => {
                m.sent(d, provider_id, event.clone(), status_ttl);
                m.sends.bump();
                Ok(())
            }
            Queue::Redis(r) => {
                r.sent(d, provider_id, event, status_ttl).await?;
                r.sends.bump();
                Ok(())
            }
        }
    }

    /// Counts the sends this process recorded through this queue (or a clone of it), from
    /// subscription on. A worker in the same process can be awaited (`changed()`) rather
    /// than polled; sends recorded by other replicas are not counted.
    pub fn sends(&self) -> watch::Receiver<u64> {
        match self {
            Queue::Memory(m) => m.sends.subscribe(),
            Queue::Redis(r) => r.sends.subscribe(),
        }
    }

    /// Sends the message again at `due_ms` (its `attempts` already counted).
    pub async fn retry_at(
        &self,
        d: &Delivery,
        due_ms: u64,
        event: &StatusEvent,
        status_ttl: Duration,
    ) -> Result<(), OutboxError> {
        match self {
            Queue::Memory(m) => {
                m.retry_at(d, due_ms, event.clone(), status_ttl);
                Ok(())
            }
            Queue::Redis(r) => r.retry_at(d, due_ms, event, status_ttl).await,
        }
    }

    /// Gives up on the message.
    pub async fn dead(
        &self,
        d: &Delivery,
        reason: &str,
        event: &StatusEvent,
        status_ttl: Duration,
    ) -> Result<(), OutboxError> {
        let letter = DeadLetter {
            message: d.message.clone(),
            reason: reason.to_string(),
            at_ms: event.at_ms,
        };
        match self {
            Queue::Memory(m) => {
                m.dead(letter, event.clone(), status_ttl);
                Ok(())
            }
            Queue::Redis(r) => r.dead(d, &letter, event, status_ttl).await,
        }
    }

    /// Moves retries that are due back to the queue. Returns how many.
    pub async fn promote_due(&self) -> Result<usize, OutboxError> {
        match self {
            Queue::Memory(m) => Ok(m.promote_due()),
            Queue::Redis(r) => r.promote_due().await,
        }
    }

    /// Adds `event` to a message's history.
    pub async fn record(
        &self,
        id: &str,
        event: &StatusEvent,
        status_ttl: Duration,
    ) -> Result<(), OutboxError> {
        match self {
            Queue::Memory(m) => {
                m.record(id, event.clone(), status_ttl);
                Ok(())
            }
            Queue::Redis(r) => r.record(id, event, status_ttl).await,
        }
    }

    /// Adds a delivery report's `event` to a message's history, if it has one, without
    /// renewing the history's time to live. False when there is no history (unknown id,
    /// or expired). One round trip on Redis.
    pub async fn report(&self, id: &str, event: &StatusEvent) -> Result<bool, OutboxError> {
        match self {
            Queue::Memory(m) => Ok(m.report(id, event.clone())),
            Queue::Redis(r) => r.report(id, event).await,
        }
    }

    /// Moves the dead letters `filter` takes back to the queue, each with `attempts` reset
    /// and `event` (`requeued`) added to its history first. Returns their ids, newest first.
    pub async fn requeue(
        &self,
        filter: &DeadFilter,
        event: &StatusEvent,
        status_ttl: Duration,
    ) -> Result<Vec<String>, OutboxError> {
        match self {
            Queue::Memory(m) => Ok(m.take_dead(filter, event.clone(), true, status_ttl)),
            Queue::Redis(r) => r.take_dead(filter, event, true, status_ttl).await,
        }
    }

    /// Forgets the dead letters `filter` takes, adding `event` (`purged`) to each history.
    /// Returns their ids, newest first.
    pub async fn purge(
        &self,
        filter: &DeadFilter,
        event: &StatusEvent,
        status_ttl: Duration,
    ) -> Result<Vec<String>, OutboxError> {
        match self {
            Queue::Memory(m) => Ok(m.take_dead(filter, event.clone(), false, status_ttl)),
            Queue::Redis(r) => r.take_dead(filter, event, false, status_ttl).await,
        }
    }

    /// A message's history, oldest first (empty when unknown or expired).
    pub async fn history(&self, id: &str) -> Result<Vec<StatusEvent>, OutboxError> {
        match self {
            Queue::Memory(m) => Ok(m.history(id)),
            Queue::Redis(r) => r.history(id).await,
        }
    }

    /// Our id for a provider's message id.
    pub async fn resolve_provider_id(
        &self,
        sender: &str,
        provider_id: &str,
    ) -> Result<Option<String>, OutboxError> {
        match self {
            Queue::Memory(m) => Ok(m.resolve(sender, provider_id)),
            Queue::Redis(r) => r.resolve(sender, provider_id).await,
        }
    }

    /// The newest `n` dead letters.
    pub async fn dead_letters(&self, n: usize) -> Result<Vec<DeadLetter>, OutboxError> {
        match self {
            Queue::Memory(m) => Ok(m.dead_letters(n)),
            Queue::Redis(r) => r.dead_letters(n).await,
        }
    }

    /// How many messages wait where.
    pub async fn stats(&self) -> Result<QueueStats, OutboxError> {
        match self {
            Queue::Memory(m) => Ok(m.stats()),
            Queue::Redis(r) => r.stats().await,
        }
    }
}

/// The counter behind [`Queue::sends`], shared by a queue's clones.
#[derive(Debug, Clone)]
struct Sends(Arc<watch::Sender<u64>>);

impl Default for Sends {
    fn default() -> Sends {
        Sends(Arc::new(watch::Sender::new(0)))
    }
}

impl Sends {
    fn bump(&self) {
        // Counts even while nobody subscribes (`send` would refuse).
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// A duration as Redis's `PX`/`PEXPIRE` take it: whole milliseconds, at least 1.
fn ttl_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
