//! The Redis store: sessions shared by every replica, kept across restarts.
//!
//! One `ConnectionManager` (a multiplexed connection that reconnects by itself) per
//! process. Reads are one `GET` or one pipeline of `GET`s; writes are one pipeline of
//! `SET … PX` and `DEL`; a guarded write ([`RedisStore::commit`]) is one Lua script
//! ([`COMMIT`], sent by its SHA, loaded again by itself after a Redis restart) that
//! compares, then writes. Every key written has a TTL. The connection is made lazily, so
//! the gateway starts even while Redis is down; `/readyz` says so.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Guard, StoreError, Write};

/// Compare, then write, atomically. `KEYS`: the guarded keys, then the written ones.
/// `ARGV[1]`, `ARGV[2]`: how many guards and writes; then per guard a flag (`-` absent,
/// `=` equal to the next argument) and a value; then per write an operation (`S` set with
/// a value and a TTL in ms, `D` delete) and its two arguments. Returns 1 when written,
/// 0 when a guard failed (nothing written).
const COMMIT: &str = r"
local guards = tonumber(ARGV[1])
local writes = tonumber(ARGV[2])
local a = 3
for i = 1, guards do
  local current = redis.call('GET', KEYS[i])
  if ARGV[a] == '-' then
    if current then return 0 end
  elseif current ~= ARGV[a + 1] then
    return 0
  end
  a = a + 2
end
for j = 1, writes do
  local key = KEYS[guards + j]
  if ARGV[a] == 'S' then
    redis.call('SET', key, ARGV[a + 1], 'PX', ARGV[a + 2])
  else
    redis.call('DEL', key)
  end
  a = a + 3
end
return 1
";

/// A Redis-backed key-value store.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    commit: std::sync::Arc<redis::Script>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

/// A TTL in whole milliseconds, at least 1 (Redis refuses `PX 0`).
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A connection to the gateway's Redis as the hop path uses it (the session store, the rate
/// limiter): made on first use, so the gateway starts while Redis is down; every command
/// bounded by `timeout`; one reconnection attempt, so a dead Redis fails a hop quickly.
pub fn lazy_manager(url: &str, timeout: Duration) -> Result<ConnectionManager, String> {
    let client = redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    client
        .get_connection_manager_lazy(config)
        .map_err(|e| e.to_string())
}

impl RedisStore {
    /// Prepares a store for `url` (`redis://host:port/db`). Connects on first use.
    /// `timeout` bounds each command, so a stuck Redis never wedges a hop.
    pub fn open(url: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        let conn = lazy_manager(url, timeout).map_err(StoreError::Unavailable)?;
        Ok(RedisStore {
            conn,
            commit: std::sync::Arc::new(redis::Script::new(COMMIT)),
        })
    }

    pub async fn get(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut conn = self.conn.clone();
        if let [key] = keys {
            let v: Option<Vec<u8>> = redis::cmd("GET")
                .arg(key)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            return Ok(vec![v]);
        }
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("GET").arg(k);
        }
        pipe.query_async(&mut conn).await.map_err(unavailable)
    }

    pub async fn write(&self, writes: &[Write]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for w in writes {
            match w {
                Write::Set { key, value, ttl } => {
                    pipe.cmd("SET")
                        .arg(key)
                        .arg(value)
                        .arg("PX")
                        .arg(ttl_ms(*ttl))
                        .ignore();
                }
                Write::Delete { key } => {
                    pipe.cmd("DEL").arg(key).ignore();
                }
            }
        }
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    /// Writes `writes` if every guard holds, in one script: `Ok(false)` when one did not.
    pub async fn commit(&self, guards: &[Guard], writes: &[Write]) -> Result<bool, StoreError> {
        let mut invocation = self.commit.prepare_invoke();
        invocation.arg(guards.len()).arg(writes.len());
        for g in guards {
            invocation.key(&g.key);
            match &g.expected {
                Some(v) => invocation.arg("=").arg(v.as_slice()),
                None => invocation.arg("-").arg(""),
            };
        }
        for w in writes {
            match w {
                Write::Set { key, value, ttl } => invocation
                    .key(key)
                    .arg("S")
                    .arg(value.as_slice())
                    .arg(ttl_ms(*ttl)),
                Write::Delete { key } => invocation.key(key).arg("D").arg("").arg(0),
            };
        }
        let mut conn = self.conn.clone();
        let done: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(done == 1)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
