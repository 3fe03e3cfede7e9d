//! The Redis store: sessions shared by every replica, kept across restarts.
//!
//! One `ConnectionManager` (a multiplexed connection that reconnects by itself) per
//! process. Reads are one `GET` or one pipeline of `GET`s; writes are one pipeline of
//! `SET … PX` and `DEL`. Every key written has a TTL. The connection is made lazily, so the
//! gateway starts even while Redis is down; `/readyz` says so.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{StoreError, Write};

/// A Redis-backed key-value store.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// Prepares a store for `url` (`redis://host:port/db`). Connects on first use.
    /// `timeout` bounds each command, so a stuck Redis never wedges a hop.
    pub fn open(url: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = client
            .get_connection_manager_lazy(config)
            .map_err(unavailable)?;
        Ok(RedisStore { conn })
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
                    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                    pipe.cmd("SET")
                        .arg(key)
                        .arg(value)
                        .arg("PX")
                        .arg(ms)
                        .ignore();
                }
                Write::Delete { key } => {
                    pipe.cmd("DEL").arg(key).ignore();
                }
            }
        }
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
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
