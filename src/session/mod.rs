//! Sessions: one store contract, two stores, and the names of their keys.
//!
//! The store is a key-value store of bytes with a TTL on every key. A hop costs one read
//! (one round trip, every key it needs at once) and one write (one round trip, pipelined).
//! [`Store`] is a closed enum rather than a trait object: two implementations, no boxing.
//!
//! What the bytes mean (the versioned records of conversation state) is the gateway's
//! business: see `crate::gateway::records`. The store knows keys and bytes only.

mod memory;
mod redis;

use std::time::Duration;

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// A store failure (Redis unreachable, timed out, or answered nonsense).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable; {0}")]
    Unavailable(String),
}

/// One write of a hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Set `key` to `value`, expiring after `ttl`.
    Set {
        key: String,
        value: Vec<u8>,
        ttl: Duration,
    },
    /// Delete `key`.
    Delete { key: String },
}

/// The session store of a gateway process.
#[derive(Debug, Clone)]
pub enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl Store {
    /// Reads several keys in one round trip.
    pub async fn get(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.get(keys)),
            Store::Redis(r) => r.get(keys).await,
        }
    }

    /// Applies several writes in one round trip, in order.
    pub async fn write(&self, writes: &[Write]) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.write(writes);
                Ok(())
            }
            Store::Redis(r) => r.write(writes).await,
        }
    }

    /// Checks the store answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(r) => r.ping().await,
        }
    }

    /// A name for logs and `/readyz`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }
}

/// Key names.
///
/// The hash tags (`{…}`) decide each key's Redis Cluster slot, but they do not put a
/// subscriber's keys in one slot: a USSD hop reads and writes `{tenant:dialect:session}`
/// (the session) and `{tenant:msisdn}` (the resumable state), which are two slots. The
/// store is not a cluster client today, so this costs nothing yet; cluster support has to
/// revisit the layout.
pub mod keys {
    /// The key of a USSD session: per tenant, dialect and aggregator session id.
    pub fn session(prefix: &str, tenant: &str, dialect: &str, session_id: &str) -> String {
        format!("{prefix}:ussd:{{{tenant}:{dialect}:{session_id}}}")
    }

    /// The key of an SMS dialogue: per tenant, short code and subscriber.
    pub fn sms(prefix: &str, tenant: &str, code: &str, msisdn: &str) -> String {
        format!("{prefix}:sms:{{{tenant}:{code}:{msisdn}}}")
    }

    /// The key remembering the reply to a webhook's message id (retries get it again).
    pub fn message(prefix: &str, tenant: &str, dialect: &str, id: &str) -> String {
        format!("{prefix}:msg:{{{tenant}:{dialect}:{id}}}")
    }

    /// The key of a subscriber's resumable state, per tenant.
    pub fn resume(prefix: &str, tenant: &str, msisdn: &str) -> String {
        format!("{prefix}:resume:{{{tenant}:{msisdn}}}")
    }
}
