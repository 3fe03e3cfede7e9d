//! The Redis queue: durable, shared by every replica, kept across restarts.
//!
//! Layout, under the configured prefix `p` (the `{outbox}` hash tag keeps the queue keys in
//! one Redis Cluster slot, as the promotion script needs):
//! - `p:{outbox}:stream`: a stream, one entry per message to send now (field `m`, JSON);
//!   consumer group `senders`. An entry read but not acknowledged (its replica died) is
//!   claimed by another after `claim_after`.
//! - `p:{outbox}:delayed`: a sorted set of messages waiting for a retry, scored by the
//!   Unix millisecond they are due; a Lua script moves due ones back to the stream
//!   atomically, so two replicas never both move one.
//! - `p:{outbox}:dead`: a list of dead letters (newest first, capped).
//! - `p:status:{id}`: a message's status history (a list of JSON events, with a TTL, the
//!   newest `max_entries` kept: every push is followed by an `LTRIM` in the same
//!   transaction, on the same key). A delivery report appends only to an existing history
//!   (`RPUSHX`) and does not renew its TTL.
//! - `p:provider:{sender:provider-id}`: our id for a provider's message id (for delivery
//!   reports), with the same TTL.
//!
//! Every change of a message's place is one `MULTI` transaction (acknowledge, move,
//! record), so a crash leaves it in exactly one place. Requeueing or purging a dead letter
//! (`tamtam outbox requeue|purge`) records the event on the history first (its own slot),
//! then moves the letter with [`TAKE_DEAD`], a script on the `{outbox}` keys only. The connections are made lazily,
//! so the gateway starts even while Redis is down.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Value;
use serde::Serialize;

use super::{ttl_ms, DeadFilter, DeadLetter, Delivery, HistoryLimits, QueueStats, Sends, DEAD_CAP};
use crate::outbox::{now_ms, OutMessage, OutboxError, StatusEvent};

/// The consumer group every replica reads with.
const GROUP: &str = "senders";

fn unavailable(e: redis::RedisError) -> OutboxError {
    OutboxError::Unavailable(e.to_string())
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("queue records always serialize")
}

/// The durable queue.
#[derive(Clone)]
pub struct RedisQueue {
    /// Commands that answer at once.
    conn: ConnectionManager,
    /// A connection of its own for the blocking read, which would hold up every other
    /// command on a multiplexed connection.
    blocking: ConnectionManager,
    /// The key prefix (`[session] key_prefix`), shared with the session keys.
    prefix: String,
    /// The [`PROMOTE`] script, loaded once and then called by its SHA.
    promote: Arc<redis::Script>,
    /// The [`TAKE_DEAD`] script.
    take_dead: Arc<redis::Script>,
    /// Counts the sends this process recorded (see [`Queue::sends`](super::Queue::sends)).
    pub(super) sends: Sends,
    /// What one history may hold.
    limits: HistoryLimits,
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

/// Takes dead letters out of the list (`KEYS[1]`) and, when `ARGV[1]` is `1`, adds each to
/// the stream (`KEYS[2]`). `ARGV[2..]` are pairs: the letter exactly as listed, and the
/// message to queue. A letter another caller took meanwhile is skipped. Returns, per pair,
/// 1 when taken, 0 when gone.
const TAKE_DEAD: &str = r"
local out = {}
for i = 2, #ARGV, 2 do
  if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
    if ARGV[1] == '1' then
      redis.call('XADD', KEYS[2], '*', 'm', ARGV[i + 1])
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
";

/// Dead letters moved by one script call.
const TAKE_BATCH: usize = 100;

impl RedisQueue {
    /// Connects lazily to `url`. `timeout` bounds each command.
    pub fn open(url: &str, prefix: &str, timeout: Duration) -> Result<RedisQueue, OutboxError> {
        let client = redis::Client::open(url)
            .map_err(|e| OutboxError::Unavailable(format!("invalid Redis URL: {e}")))?;
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
            take_dead: Arc::new(redis::Script::new(TAKE_DEAD)),
            sends: Sends::default(),
            limits: HistoryLimits::default(),
        })
    }

    /// The same queue, keeping histories within `limits`.
    pub(super) fn with_history_limits(mut self, limits: HistoryLimits) -> RedisQueue {
        self.limits = limits;
        self
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
        pipe.cmd("RPUSH")
            .arg(&key)
            .arg(to_json(&self.limits.shape(event)))
            .ignore();
        self.trim(pipe, &key);
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms(ttl)).ignore();
    }

    /// Keeps the newest `max_entries` events of the history at `key`.
    fn trim(&self, pipe: &mut redis::Pipeline, key: &str) {
        let keep = isize::try_from(self.limits.max_entries()).unwrap_or(isize::MAX);
        pipe.cmd("LTRIM").arg(key).arg(-keep).arg(-1).ignore();
    }

    pub(super) async fn push(
        &self,
        m: &OutMessage,
        event: &StatusEvent,
        ttl: Duration,
    ) -> Result<(), OutboxError> {
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
    async fn ensure_group(&self) -> Result<(), OutboxError> {
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

    pub(super) async fn claim(
        &self,
        consumer: &str,
        count: usize,
        wait: Duration,
        claim_after: Duration,
    ) -> Result<Vec<Delivery>, OutboxError> {
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

    pub(super) async fn sent(
        &self,
        d: &Delivery,
        provider_id: Option<&str>,
        event: &StatusEvent,
        ttl: Duration,
    ) -> Result<(), OutboxError> {
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

    pub(super) async fn retry_at(
        &self,
        d: &Delivery,
        due_ms: u64,
        event: &StatusEvent,
        ttl: Duration,
    ) -> Result<(), OutboxError> {
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

    pub(super) async fn dead(
        &self,
        d: &Delivery,
        letter: &DeadLetter,
        event: &StatusEvent,
        ttl: Duration,
    ) -> Result<(), OutboxError> {
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

    pub(super) async fn promote_due(&self) -> Result<usize, OutboxError> {
        self.promote
            .key(self.delayed())
            .key(self.stream())
            .arg(now_ms())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    pub(super) async fn record(
        &self,
        id: &str,
        event: &StatusEvent,
        ttl: Duration,
    ) -> Result<(), OutboxError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.add_status(&mut pipe, id, event, ttl);
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    pub(super) async fn report(&self, id: &str, event: &StatusEvent) -> Result<bool, OutboxError> {
        let key = self.status_key(id);
        let mut pipe = redis::pipe();
        // One key: one slot. RPUSHX adds nothing to a history that does not exist.
        pipe.atomic();
        pipe.cmd("RPUSHX")
            .arg(&key)
            .arg(to_json(&self.limits.shape(event)));
        self.trim(&mut pipe, &key);
        let (len,): (u64,) = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(len > 0)
    }

    pub(super) async fn take_dead(
        &self,
        filter: &DeadFilter,
        event: &StatusEvent,
        requeue: bool,
        ttl: Duration,
    ) -> Result<Vec<String>, OutboxError> {
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.dead_key())
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let chosen: Vec<(String, OutMessage)> = raw
            .into_iter()
            .filter_map(|json| {
                let letter: DeadLetter = serde_json::from_str(&json).ok()?;
                if !filter.matches(&letter) {
                    return None;
                }
                let message = OutMessage {
                    attempts: 0,
                    ..letter.message
                };
                Some((json, message))
            })
            .collect();
        let mut taken = Vec::with_capacity(chosen.len());
        for batch in chosen.chunks(TAKE_BATCH) {
            // The event first, so that it precedes whatever the worker records next. Each
            // history is its own slot: one transaction per message.
            for (_, m) in batch {
                let mut pipe = redis::pipe();
                pipe.atomic();
                self.add_status(&mut pipe, &m.id, event, ttl);
                pipe.query_async::<()>(&mut self.conn.clone())
                    .await
                    .map_err(unavailable)?;
            }
            let mut call = self.take_dead.key(self.dead_key());
            call.key(self.stream());
            call.arg(if requeue { "1" } else { "0" });
            for (json, m) in batch {
                call.arg(json).arg(to_json(m));
            }
            let done: Vec<u8> = call
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(unavailable)?;
            taken.extend(
                batch
                    .iter()
                    .zip(done)
                    .filter(|(_, d)| *d == 1)
                    .map(|((_, m), _)| m.id.clone()),
            );
        }
        Ok(taken)
    }

    pub(super) async fn history(&self, id: &str) -> Result<Vec<StatusEvent>, OutboxError> {
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

    pub(super) async fn resolve(
        &self,
        sender: &str,
        pid: &str,
    ) -> Result<Option<String>, OutboxError> {
        redis::cmd("GET")
            .arg(self.provider_key(sender, pid))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    pub(super) async fn dead_letters(&self, n: usize) -> Result<Vec<DeadLetter>, OutboxError> {
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

    pub(super) async fn stats(&self) -> Result<QueueStats, OutboxError> {
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
