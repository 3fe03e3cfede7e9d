//! Sessions: one store contract, two stores, and the names of their keys.
//!
//! The store is a key-value store of bytes with a TTL on every key. A hop costs one read
//! (one round trip, every key it needs at once) and one write (one round trip, pipelined).
//! [`Store`] is a closed enum rather than a trait object: two implementations, no boxing.
//!
//! Exactly-once hops rest on [`Store::commit`], a compare-and-set: the writes apply only if
//! each guarded key still holds the bytes the hop read (or is still absent), all at once
//! (under the memory store's lock; in one Lua script on Redis). Every key one commit
//! touches shares one hash tag, the subscriber's `{tenant:msisdn}`, so the script never
//! crosses a Redis Cluster slot.
//!
//! What the bytes mean (the versioned records of conversation state) is the gateway's
//! business: see `crate::gateway::records`. The store knows keys and bytes only.

mod memory;
mod redis;

use std::time::Duration;

pub use memory::{MemoryStore, DEFAULT_CAPACITY, DEFAULT_MESSAGE_IDS};
pub use redis::{lazy_manager, RedisStore};

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

/// What a key must still hold for a [`Store::commit`] to apply: the bytes read, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub key: String,
    /// The value read (`None`: the key was absent, and must still be).
    pub expected: Option<Vec<u8>>,
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
            Store::Redis(r) => crate::metrics::store_timed("get", r.get(keys)).await,
        }
    }

    /// Applies several writes in one round trip, in order.
    pub async fn write(&self, writes: &[Write]) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.write(writes);
                Ok(())
            }
            Store::Redis(r) => crate::metrics::store_timed("write", r.write(writes)).await,
        }
    }

    /// Applies `writes` only if every guard still holds: one round trip, atomic. `Ok(false)`
    /// when a guard failed (another request wrote first); nothing was written then. Every
    /// key must share one hash tag.
    pub async fn commit(&self, guards: &[Guard], writes: &[Write]) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.commit(guards, writes)),
            Store::Redis(r) => {
                crate::metrics::store_timed("commit", r.commit(guards, writes)).await
            }
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
/// Every key of a subscriber's conversation carries the hash tag `{tenant:msisdn}`: the USSD
/// session (`…:ussd:{tenant:msisdn}:dialect:session`), the resume point, the SMS dialogue
/// and the remembered webhook ids. So one hop's commit (session and resume point; dialogue
/// and message id) stays in one Redis Cluster slot, and a session id is only ever looked up
/// under the number that sent it: naming another subscriber's session id finds nothing.
pub mod keys {
    /// The key of a USSD session: per tenant, subscriber, dialect and aggregator session id.
    pub fn session(
        prefix: &str,
        tenant: &str,
        msisdn: &str,
        dialect: &str,
        session_id: &str,
    ) -> String {
        format!("{prefix}:ussd:{{{tenant}:{msisdn}}}:{dialect}:{session_id}")
    }

    /// The key of an SMS dialogue: per tenant, subscriber and short code.
    pub fn sms(prefix: &str, tenant: &str, code: &str, msisdn: &str) -> String {
        format!("{prefix}:sms:{{{tenant}:{msisdn}}}:{code}")
    }

    /// The key remembering the reply to a webhook's message id (retries get it again), under
    /// the number that sent it.
    pub fn message(prefix: &str, tenant: &str, msisdn: &str, dialect: &str, id: &str) -> String {
        format!("{prefix}:msg:{{{tenant}:{msisdn}}}:{dialect}:{id}")
    }

    /// True for a key made by [`message`] (the memory store caps them apart).
    pub fn is_message(key: &str) -> bool {
        key.split_once(":msg:{").is_some()
    }

    /// The key of a subscriber's resumable state, per tenant.
    pub fn resume(prefix: &str, tenant: &str, msisdn: &str) -> String {
        format!("{prefix}:resume:{{{tenant}:{msisdn}}}")
    }
}
