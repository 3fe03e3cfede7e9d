//! The in-memory store: one process, no persistence. The default when no Redis is set.
//!
//! A `std::sync::Mutex` guards a `HashMap`: no `.await` happens while it is held and each
//! critical section is a few map operations, so a [`MemoryStore::commit`] (check the
//! guards, then write) is atomic. Expiry uses `tokio::time::Instant`, so tests can pause
//! and advance time. Expired keys are swept every [`SWEEP_EVERY`] writes.
//!
//! Memory is bounded by entries, in two pools with their own cap: conversation keys
//! (sessions, dialogues, resume points) and remembered webhook message ids. Beyond its cap a
//! pool forgets the key written longest ago, and says so in one WARN (again only after it
//! fell back below nine tenths of its cap), not one per eviction.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::{keys, Guard, Write};

/// Writes between two sweeps of expired keys.
const SWEEP_EVERY: u64 = 4096;
/// Default cap of conversation keys (sessions, dialogues, resume points).
pub const DEFAULT_CAPACITY: usize = 100_000;
/// Default cap of remembered webhook message ids.
pub const DEFAULT_MESSAGE_IDS: usize = 100_000;

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expiry: Instant,
    /// Write order, the key in its pool's `order`.
    seq: u64,
}

/// Keys of one kind, oldest write first, under a cap.
#[derive(Debug)]
struct Pool {
    name: &'static str,
    cap: usize,
    order: BTreeMap<u64, String>,
    warned: bool,
}

impl Pool {
    fn new(name: &'static str, cap: usize) -> Pool {
        Pool {
            name,
            cap: cap.max(1),
            order: BTreeMap::new(),
            warned: false,
        }
    }
}

#[derive(Debug)]
struct Inner {
    map: HashMap<String, Entry>,
    conversations: Pool,
    messages: Pool,
    next_seq: u64,
    writes: u64,
}

impl Inner {
    fn pool(&mut self, key: &str) -> &mut Pool {
        if keys::is_message(key) {
            &mut self.messages
        } else {
            &mut self.conversations
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.map.remove(key) {
            self.pool(key).order.remove(&old.seq);
        }
    }

    fn set(&mut self, key: &str, value: Vec<u8>, expiry: Instant) {
        self.remove(key);
        self.next_seq += 1;
        let seq = self.next_seq;
        self.map
            .insert(key.to_string(), Entry { value, expiry, seq });
        let pool = self.pool(key);
        pool.order.insert(seq, key.to_string());
        if pool.order.len() * 10 < pool.cap * 9 {
            pool.warned = false;
        }
        let mut evicted = Vec::new();
        while pool.order.len() > pool.cap {
            let Some((_, oldest)) = pool.order.pop_first() else {
                break;
            };
            evicted.push(oldest);
        }
        if !evicted.is_empty() && !pool.warned {
            pool.warned = true;
            tracing::warn!(
                pool = pool.name,
                cap = pool.cap,
                "in-memory store full: the oldest entries are forgotten first"
            );
        }
        for key in evicted {
            self.map.remove(&key);
        }
    }

    fn live(&self, key: &str, now: Instant) -> Option<&Vec<u8>> {
        self.map
            .get(key)
            .filter(|e| e.expiry > now)
            .map(|e| &e.value)
    }

    fn apply(&mut self, writes: &[Write], now: Instant) {
        for w in writes {
            match w {
                Write::Set { key, value, ttl } => self.set(key, value.clone(), now + *ttl),
                Write::Delete { key } => self.remove(key),
            }
        }
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            let expired: Vec<String> = (self.map.iter())
                .filter(|(_, e)| e.expiry <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for key in expired {
                self.remove(&key);
            }
        }
    }
}

/// A process-local key-value store with TTLs and a cap on entries.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_capacity(DEFAULT_CAPACITY, DEFAULT_MESSAGE_IDS)
    }
}

impl MemoryStore {
    /// A store with the default caps.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store holding at most `conversations` sessions, dialogues and resume points, and
    /// `message_ids` remembered webhook ids (each at least 1).
    pub fn with_capacity(conversations: usize, message_ids: usize) -> MemoryStore {
        MemoryStore {
            inner: Arc::new(Mutex::new(Inner {
                map: HashMap::new(),
                conversations: Pool::new("conversations", conversations),
                messages: Pool::new("message_ids", message_ids),
                next_seq: 0,
                writes: 0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent in a way that
        // matters (at worst a key is in the map and not in its pool's order, or back), so a
        // poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, keys: &[&str]) -> Vec<Option<Vec<u8>>> {
        let now = Instant::now();
        let inner = self.lock();
        keys.iter().map(|k| inner.live(k, now).cloned()).collect()
    }

    pub fn write(&self, writes: &[Write]) {
        let now = Instant::now();
        self.lock().apply(writes, now);
    }

    /// Applies `writes` if every guard holds, under one lock; false (nothing written) if not.
    pub fn commit(&self, guards: &[Guard], writes: &[Write]) -> bool {
        let now = Instant::now();
        let mut inner = self.lock();
        let holds = guards
            .iter()
            .all(|g| inner.live(&g.key, now) == g.expected.as_ref());
        if holds {
            inner.apply(writes, now);
        }
        holds
    }

    /// Keys currently held, expired or not (for tests of the sweep and the caps).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Each pool's name, entries and capacity (for metrics).
    pub fn pools(&self) -> [(&'static str, usize, usize); 2] {
        let i = self.lock();
        [&i.conversations, &i.messages].map(|p| (p.name, p.order.len(), p.cap))
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn set(key: &str) -> Write {
        Write::Set {
            key: key.into(),
            value: b"v".to_vec(),
            ttl: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn each_pool_keeps_at_most_its_cap_and_forgets_the_oldest_first() {
        let store = MemoryStore::with_capacity(3, 2);
        for i in 0..10 {
            store.write(&[set(&keys::session("p", "t", "+1", "d", &i.to_string()))]);
            store.write(&[set(&keys::message("p", "t", "+1", "d", &i.to_string()))]);
            assert!(store.len() <= 5, "{} keys after {i}", store.len());
        }
        assert_eq!(store.len(), 5);
        let newest = keys::session("p", "t", "+1", "d", "9");
        let oldest = keys::session("p", "t", "+1", "d", "6");
        let gone = keys::session("p", "t", "+1", "d", "0");
        let got = store.get(&[&newest, &oldest, &gone]);
        assert_eq!(got, vec![Some(b"v".to_vec()), None, None]);
        // Rewriting a key makes it the newest: it outlives keys written before it.
        let kept = keys::session("p", "t", "+1", "d", "7");
        store.write(&[set(&kept)]);
        store.write(&[set(&keys::session("p", "t", "+1", "d", "x"))]);
        store.write(&[set(&keys::session("p", "t", "+1", "d", "y"))]);
        assert!(store.get(&[&kept])[0].is_some());
        assert_eq!(store.len(), 5);
    }

    #[tokio::test]
    async fn a_commit_applies_only_while_its_guards_hold() {
        let store = MemoryStore::new();
        let g = |expected: Option<&[u8]>| Guard {
            key: "k".into(),
            expected: expected.map(<[u8]>::to_vec),
        };
        assert!(store.commit(&[g(None)], &[set("k")]));
        assert!(!store.commit(&[g(None)], &[set("other")]), "k exists now");
        assert!(store.get(&["other"])[0].is_none());
        assert!(!store.commit(&[g(Some(b"w"))], &[set("other")]));
        assert!(store.commit(&[g(Some(b"v"))], &[Write::Delete { key: "k".into() }]));
        assert!(store.get(&["k"])[0].is_none());
    }
}
