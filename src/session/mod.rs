//! Sessions: one store contract, two stores, and the versioned record they keep.
//!
//! The store is a key-value store with a TTL on every key. A hop costs one read (one
//! round trip, every key it needs at once) and one write (one round trip, pipelined).
//! [`Store`] is a closed enum rather than a trait object: two implementations, no boxing.
//!
//! [`SessionRecord`] is the only serialized form of conversation state. It names screens
//! by id (not by index), so a session survives a deploy that reorders a menu file; a
//! screen that disappeared sends the subscriber home.

mod memory;
mod redis;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use memory::MemoryStore;
pub use redis::RedisStore;

use crate::menu::{Menu, State};

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

/// Where a subscriber is, as stored. Screens by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    pub screen: String,
    #[serde(default)]
    pub page: u8,
    #[serde(default)]
    pub history: Vec<String>,
    #[serde(default)]
    pub errors: u8,
    #[serde(default)]
    pub vars: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Box<StateRecord>>,
}

impl StateRecord {
    /// Records `state` (its pending inputs are always empty between hops).
    pub fn from_state(state: &State, menu: &Menu) -> StateRecord {
        let name = |id| menu.screen(id).id.clone();
        StateRecord {
            screen: name(state.screen),
            page: state.page,
            history: state.history.iter().map(|id| name(*id)).collect(),
            errors: state.errors,
            vars: state.vars.clone(),
            resume: state
                .resume
                .as_ref()
                .map(|r| Box::new(StateRecord::from_state(r, menu))),
        }
    }

    /// Rebuilds the state; a screen the menu no longer has becomes home.
    pub fn to_state(&self, menu: &Menu) -> State {
        let found = menu.find(&self.screen);
        let mut state = State::at(found.unwrap_or(menu.home));
        // The page and error count belong to the stored screen: kept only if it still exists.
        if found.is_some() {
            state.page = self.page;
            state.errors = self.errors;
        }
        state.history = self.history.iter().filter_map(|h| menu.find(h)).collect();
        state.vars = self.vars.clone();
        state.resume = self.resume.as_ref().map(|r| Box::new(r.to_state(menu)));
        state
    }
}

/// The last reply of a session, kept so that a retried hop gets the same screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedReply {
    pub text: String,
    pub end: bool,
}

/// A USSD session as stored under its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Format version.
    pub v: u8,
    /// Where the subscriber is; `None` once the session ended (the record then only
    /// answers retried hops with the final screen).
    pub state: Option<StateRecord>,
    /// The last hop's sequence number, for dialects that send one.
    #[serde(default)]
    pub seq: Option<u64>,
    /// Inputs consumed so far, for dialects that send the whole path (Africa's Talking).
    #[serde(default)]
    pub consumed: u32,
    /// The last reply.
    pub reply: SavedReply,
}

/// Version of [`SessionRecord`] this build writes.
pub const RECORD_VERSION: u8 = 1;

impl SessionRecord {
    /// Serializes to JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a session record always serializes")
    }

    /// Parses stored bytes; a record of another version or a damaged one reads as absent.
    pub fn from_bytes(bytes: &[u8]) -> Option<SessionRecord> {
        serde_json::from_slice::<SessionRecord>(bytes)
            .ok()
            .filter(|r| r.v == RECORD_VERSION)
    }
}

/// The state a dropped session left, kept per subscriber for "resume".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeRecord {
    pub v: u8,
    /// The aggregator session it came from (a new dial has another one).
    pub session: String,
    pub state: StateRecord,
}

impl ResumeRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a resume record always serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<ResumeRecord> {
        serde_json::from_slice::<ResumeRecord>(bytes)
            .ok()
            .filter(|r| r.v == RECORD_VERSION)
    }
}

/// An SMS dialogue as stored: where the subscriber is (if a screen waits for an answer)
/// and what `SUITE` sends next (if the last reply was cut).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsRecord {
    pub v: u8,
    #[serde(default)]
    pub state: Option<StateRecord>,
    #[serde(default)]
    pub rest: Option<String>,
}

impl SmsRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an SMS record always serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<SmsRecord> {
        serde_json::from_slice::<SmsRecord>(bytes)
            .ok()
            .filter(|r| r.v == RECORD_VERSION)
    }
}

/// Key names. Hash tags (`{…}`) keep each subscriber's keys in one Redis Cluster slot.
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
