//! Where accepted messages wait to be sent: Redis (durable, shared by replicas) or memory.
//!
//! Redis layout, under the configured prefix `p` (the `{outbox}` hash tag keeps the queue
//! keys in one Redis Cluster slot, as the promotion script needs):
//! - `p:{outbox}:stream`: a stream, one entry per message to send now (field `m`, JSON);
//!   consumer group `senders`. An entry read but not acknowledged (its replica died) is
//!   claimed by another after `claim_after`.
//! - `p:{outbox}:delayed`: a sorted set of messages waiting for a retry, scored by the
//!   Unix millisecond they are due; a Lua script moves due ones back to the stream
//!   atomically, so two replicas never both move one.
//! - `p:{outbox}:dead`: a list of dead letters (newest first, capped).
//! - `p:status:{id}`: a message's status history (a list of JSON events, with a TTL).
//! - `p:provider:{sender:provider-id}`: our id for a provider's message id (for delivery
//!   reports), with the same TTL.
//!
//! Every change of a message's place is one `MULTI` transaction (acknowledge, move,
//! record), so a crash leaves it in exactly one place.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Value;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{now_ms, OutMessage, StatusEvent};
use crate::session::StoreError;

/// Most dead letters kept.
const DEAD_CAP: isize = 10_000;
/// The consumer group every replica reads with.
const GROUP: &str = "senders";

/// A message handed to a worker, to acknowledge, retry or dead-letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The stream entry id (empty in memory).
    pub entry: String,
    pub message: OutMessage,
}

/// A message given up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub message: OutMessage,
    pub reason: String,
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
    pub dead: u64,
}

/// The queue of a gateway process.
#[derive(Debug, Clone)]
pub enum Queue {
    Memory(MemoryQueue),
    Redis(RedisQueue),
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("queue records always serialize")
}

impl Queue {
    /// Adds a message to send now and records `event` in its history.
    pub async fn push(
        &self,
        message: &OutMessage,
        event: &StatusEvent,
        status_ttl: Duration,
    ) -> Result<(), StoreError> {
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
    ) -> Result<Vec<Delivery>, StoreError> {
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
    ) -> Result<(), StoreError> {
        match self {
            Queue::Memory(m) => {
                m.sent(d, provider_id, event.clone(), status_ttl);
                Ok(())
            }
            Queue::Redis(r) => r.sent(d, provider_id, event, status_ttl).await,
        }
    }

    /// Sends the message again at `due_ms` (its `attempts` already counted).
    pub async fn retry_at(
        &self,
        d: &Delivery,
        due_ms: u64,
        event: &StatusEvent,
        status_ttl: Duration,
    ) -> Result<(), StoreError> {
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
    ) -> Result<(), StoreError> {
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
    pub async fn promote_due(&self) -> Result<usize, StoreError> {
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
    ) -> Result<(), StoreError> {
        match self {
            Queue::Memory(m) => {
                m.record(id, event.clone(), status_ttl);
                Ok(())
            }
            Queue::Redis(r) => r.record(id, event, status_ttl).await,
        }
    }

    /// A message's history, oldest first (empty when unknown or expired).
    pub async fn history(&self, id: &str) -> Result<Vec<StatusEvent>, StoreError> {
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
    ) -> Result<Option<String>, StoreError> {
        match self {
            Queue::Memory(m) => Ok(m.resolve(sender, provider_id)),
            Queue::Redis(r) => r.resolve(sender, provider_id).await,
        }
    }

    /// The newest `n` dead letters.
    pub async fn dead_letters(&self, n: usize) -> Result<Vec<DeadLetter>, StoreError> {
        match self {
            Queue::Memory(m) => Ok(m.dead_letters(n)),
            Queue::Redis(r) => r.dead_letters(n).await,
        }
    }

    /// How many messages wait where.
    pub async fn stats(&self) -> Result<QueueStats, StoreError> {
        match self {
            Queue::Memory(m) => Ok(m.stats()),
            Queue::Redis(r) => r.stats().await,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Redis

/// The durable queue.
#[derive(Clone)]
pub struct RedisQueue {
    /// Commands that answer at once.
    conn: ConnectionManager,
    /// A connection of its own for the blocking read, which would hold up every other
    /// command on a multiplexed connection.
    blocking: ConnectionManager,
    prefix: String,
    promote: Arc<redis::Script>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Moves due retries (score <= now) from the delayed set to the stream, at most 100 a call.
const PROMOTE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  redis.call('XADD', KEYS[2], '*', 'm', m)
end
return #due
";

impl RedisQueue {
    /// Connects lazily to `url`. `timeout` bounds each command.
    pub fn open(url: &str, prefix: &str, timeout: Duration) -> Result<RedisQueue, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?;
        let config = |t: Duration| {
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(t))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500))
        };
        let conn = client
            .get_connection_manager_lazy(config(timeout))
            .map_err(unavailable)?;
        // The blocking read waits up to a few seconds by itself.
        let blocking = client
            .get_connection_manager_lazy(config(timeout + Duration::from_secs(5)))
            .map_err(unavailable)?;
        Ok(RedisQueue {
            conn,
            blocking,
            prefix: prefix.to_string(),
            promote: Arc::new(redis::Script::new(PROMOTE)),
        })
    }

    fn stream(&self) -> String {
        format!("{}:{{outbox}}:stream", self.prefix)
    }
    fn delayed(&self) -> String {
        format!("{}:{{outbox}}:delayed", self.prefix)
    }
    fn dead_key(&self) -> String {
        format!("{}:{{outbox}}:dead", self.prefix)
    }
    fn status_key(&self, id: &str) -> String {
        format!("{}:status:{{{id}}}", self.prefix)
    }
    fn provider_key(&self, sender: &str, pid: &str) -> String {
        format!("{}:provider:{{{sender}:{pid}}}", self.prefix)
    }

    fn add_status(&self, pipe: &mut redis::Pipeline, id: &str, event: &StatusEvent, ttl: Duration) {
        let key = self.status_key(id);
        pipe.cmd("RPUSH").arg(&key).arg(to_json(event)).ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms(ttl)).ignore();
    }

    async fn push(
        &self,
        m: &OutMessage,
        event: &StatusEvent,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("XADD")
            .arg(self.stream())
            .arg("*")
            .arg("m")
            .arg(to_json(m))
            .ignore();
        self.add_status(&mut pipe, &m.id, event, ttl);
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    /// Creates the consumer group (and the stream) when missing.
    async fn ensure_group(&self) -> Result<(), StoreError> {
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.stream())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn.clone())
            .await;
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn claim(
        &self,
        consumer: &str,
        count: usize,
        wait: Duration,
        claim_after: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.ensure_group().await?;
        // First, entries another replica read and never acknowledged.
        let stale: Value = redis::cmd("XAUTOCLAIM")
            .arg(self.stream())
            .arg(GROUP)
            .arg(consumer)
            .arg(ttl_ms(claim_after))
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let mut out = match &stale {
            Value::Array(parts) if parts.len() >= 2 => entries(&parts[1]),
            _ => Vec::new(),
        };
        if !out.is_empty() {
            return Ok(out);
        }
        let fresh: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(ttl_ms(wait))
            .arg("STREAMS")
            .arg(self.stream())
            .arg(">")
            .query_async(&mut self.blocking.clone())
            .await
            .map_err(unavailable)?;
        // [[stream, [[id, [field, value]], …]]] (RESP2) or a map (RESP3); nil on timeout.
        match fresh {
            Value::Array(streams) => {
                for s in streams {
                    if let Value::Array(pair) = s {
                        if let Some(list) = pair.get(1) {
                            out.extend(entries(list));
                        }
                    }
                }
            }
            Value::Map(streams) => {
                for (_, list) in streams {
                    out.extend(entries(&list));
                }
            }
            _ => {}
        }
        Ok(out)
    }

    fn ack(&self, pipe: &mut redis::Pipeline, d: &Delivery) {
        pipe.cmd("XACK")
            .arg(self.stream())
            .arg(GROUP)
            .arg(&d.entry)
            .ignore();
        pipe.cmd("XDEL").arg(self.stream()).arg(&d.entry).ignore();
    }

    async fn sent(
        &self,
        d: &Delivery,
        provider_id: Option<&str>,
        event: &StatusEvent,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.ack(&mut pipe, d);
        self.add_status(&mut pipe, &d.message.id, event, ttl);
        if let Some(pid) = provider_id {
            pipe.cmd("SET")
                .arg(self.provider_key(&d.message.sender, pid))
                .arg(&d.message.id)
                .arg("PX")
                .arg(ttl_ms(ttl))
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    async fn retry_at(
        &self,
        d: &Delivery,
        due_ms: u64,
        event: &StatusEvent,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.ack(&mut pipe, d);
        pipe.cmd("ZADD")
            .arg(self.delayed())
            .arg(due_ms)
            .arg(to_json(&d.message))
            .ignore();
        self.add_status(&mut pipe, &d.message.id, event, ttl);
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    async fn dead(
        &self,
        d: &Delivery,
        letter: &DeadLetter,
        event: &StatusEvent,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.ack(&mut pipe, d);
        pipe.cmd("LPUSH")
            .arg(self.dead_key())
            .arg(to_json(letter))
            .ignore();
        pipe.cmd("LTRIM")
            .arg(self.dead_key())
            .arg(0)
            .arg(DEAD_CAP - 1)
            .ignore();
        self.add_status(&mut pipe, &d.message.id, event, ttl);
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    async fn promote_due(&self) -> Result<usize, StoreError> {
        self.promote
            .key(self.delayed())
            .key(self.stream())
            .arg(now_ms())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    async fn record(&self, id: &str, event: &StatusEvent, ttl: Duration) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        self.add_status(&mut pipe, id, event, ttl);
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    async fn history(&self, id: &str) -> Result<Vec<StatusEvent>, StoreError> {
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.status_key(id))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(raw
            .iter()
            .filter_map(|s| serde_json::from_str(s).ok())
            .collect())
    }

    async fn resolve(&self, sender: &str, pid: &str) -> Result<Option<String>, StoreError> {
        redis::cmd("GET")
            .arg(self.provider_key(sender, pid))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    async fn dead_letters(&self, n: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.dead_key())
            .arg(0)
            .arg(n.saturating_sub(1))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(raw
            .iter()
            .filter_map(|s| serde_json::from_str(s).ok())
            .collect())
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        self.ensure_group().await?;
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(self.stream());
        pipe.cmd("XPENDING").arg(self.stream()).arg(GROUP);
        pipe.cmd("ZCARD").arg(self.delayed());
        pipe.cmd("LLEN").arg(self.dead_key());
        let (len, pending, delayed, dead): (u64, Value, u64, u64) = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let in_flight = match pending {
            Value::Array(v) => v.first().and_then(as_u64).unwrap_or(0),
            _ => 0,
        };
        Ok(QueueStats {
            ready: len.saturating_sub(in_flight),
            in_flight,
            delayed,
            dead,
        })
    }
}

fn ttl_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Reads `[[id, [field, value, …]], …]` into deliveries; an entry that is not ours is skipped.
fn entries(list: &Value) -> Vec<Delivery> {
    let Value::Array(items) = list else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let entry = as_string(pair.first()?)?;
            let Value::Array(fields) = pair.get(1)? else {
                return None;
            };
            let json = fields
                .chunks(2)
                .find(|kv| as_string(&kv[0]).as_deref() == Some("m"))
                .and_then(|kv| kv.get(1))
                .and_then(as_string)?;
            let message = serde_json::from_str(&json).ok()?;
            Some(Delivery { entry, message })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Memory

/// The in-process queue: one gateway, nothing survives a restart.
#[derive(Debug, Clone, Default)]
pub struct MemoryQueue {
    inner: Arc<Mutex<MemoryInner>>,
    ready_signal: Arc<Notify>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    ready: VecDeque<OutMessage>,
    delayed: Vec<(u64, OutMessage)>,
    dead: VecDeque<DeadLetter>,
    status: HashMap<String, (Vec<StatusEvent>, u64)>,
    provider: HashMap<(String, String), (String, u64)>,
    in_flight: u64,
}

impl MemoryQueue {
    pub fn new() -> MemoryQueue {
        MemoryQueue::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // Each critical section is a few collection operations: a poisoned lock is consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record_locked(inner: &mut MemoryInner, id: &str, event: StatusEvent, ttl: Duration) {
        let expiry = now_ms() + ttl_ms(ttl);
        let entry = inner.status.entry(id.to_string()).or_default();
        entry.0.push(event);
        entry.1 = expiry;
        if inner.status.len().is_multiple_of(4096) {
            let now = now_ms();
            inner.status.retain(|_, (_, exp)| *exp > now);
            inner.provider.retain(|_, (_, exp)| *exp > now);
        }
    }

    fn push(&self, m: OutMessage, event: StatusEvent, ttl: Duration) {
        let mut inner = self.lock();
        Self::record_locked(&mut inner, &m.id, event, ttl);
        inner.ready.push_back(m);
        drop(inner);
        self.ready_signal.notify_one();
    }

    async fn claim(&self, count: usize, wait: Duration) -> Vec<Delivery> {
        let take = |q: &MemoryQueue| {
            let mut inner = q.lock();
            let n = count.min(inner.ready.len());
            let out: Vec<Delivery> = inner
                .ready
                .drain(..n)
                .map(|message| Delivery {
                    entry: String::new(),
                    message,
                })
                .collect();
            inner.in_flight += out.len() as u64;
            out
        };
        let out = take(self);
        if !out.is_empty() {
            return out;
        }
        let _ = tokio::time::timeout(wait, self.ready_signal.notified()).await;
        take(self)
    }

    fn done(inner: &mut MemoryInner) {
        inner.in_flight = inner.in_flight.saturating_sub(1);
    }

    fn sent(&self, d: &Delivery, pid: Option<&str>, event: StatusEvent, ttl: Duration) {
        let mut inner = self.lock();
        Self::done(&mut inner);
        Self::record_locked(&mut inner, &d.message.id, event, ttl);
        if let Some(pid) = pid {
            let expiry = now_ms() + ttl_ms(ttl);
            inner.provider.insert(
                (d.message.sender.clone(), pid.to_string()),
                (d.message.id.clone(), expiry),
            );
        }
    }

    fn retry_at(&self, d: &Delivery, due_ms: u64, event: StatusEvent, ttl: Duration) {
        let mut inner = self.lock();
        Self::done(&mut inner);
        Self::record_locked(&mut inner, &d.message.id, event, ttl);
        inner.delayed.push((due_ms, d.message.clone()));
    }

    fn dead(&self, letter: DeadLetter, event: StatusEvent, ttl: Duration) {
        let mut inner = self.lock();
        Self::done(&mut inner);
        Self::record_locked(&mut inner, &letter.message.id, event, ttl);
        inner.dead.push_front(letter);
        inner.dead.truncate(DEAD_CAP as usize);
    }

    fn promote_due(&self) -> usize {
        let now = now_ms();
        let mut inner = self.lock();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut inner.delayed)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        inner.delayed = later;
        let n = due.len();
        inner.ready.extend(due.into_iter().map(|(_, m)| m));
        drop(inner);
        if n > 0 {
            self.ready_signal.notify_one();
        }
        n
    }

    fn record(&self, id: &str, event: StatusEvent, ttl: Duration) {
        Self::record_locked(&mut self.lock(), id, event, ttl);
    }

    fn history(&self, id: &str) -> Vec<StatusEvent> {
        let now = now_ms();
        self.lock()
            .status
            .get(id)
            .filter(|(_, exp)| *exp > now)
            .map(|(v, _)| v.clone())
            .unwrap_or_default()
    }

    fn resolve(&self, sender: &str, pid: &str) -> Option<String> {
        let now = now_ms();
        self.lock()
            .provider
            .get(&(sender.to_string(), pid.to_string()))
            .filter(|(_, exp)| *exp > now)
            .map(|(id, _)| id.clone())
    }

    fn dead_letters(&self, n: usize) -> Vec<DeadLetter> {
        self.lock().dead.iter().take(n).cloned().collect()
    }

    fn stats(&self) -> QueueStats {
        let inner = self.lock();
        QueueStats {
            ready: inner.ready.len() as u64,
            in_flight: inner.in_flight,
            delayed: inner.delayed.len() as u64,
            dead: inner.dead.len() as u64,
        }
    }
}
