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
//! - `p:status:{id}`: a message's status history (a list of JSON events, with a TTL).
//! - `p:provider:{sender:provider-id}`: our id for a provider's message id (for delivery
//!   reports), with the same TTL.
//!
//! Every change of a message's place is one `MULTI` transaction (acknowledge, move,
//! record), so a crash leaves it in exactly one place. The connections are made lazily,
//! so the gateway starts even while Redis is down.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Value;
use serde::Serialize;

use super::{ttl_ms, DeadLetter, Delivery, QueueStats, Sends, DEAD_CAP};
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
    /// Counts the sends this process recorded (see [`Queue::sends`](super::Queue::sends)).
    pub(super) sends: Sends,
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
            sends: Sends::default(),
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
        self.add_status(&mut pipe, id, event, ttl);
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(unavailable)
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
