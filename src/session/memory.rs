//! The in-memory store: one process, no persistence. The default when no Redis is set.
//!
//! A `std::sync::Mutex` guards a `HashMap`: no `.await` happens while it is held and each
//! critical section is a lookup or an insert. Expiry uses `tokio::time::Instant`, so tests
//! can pause and advance time. Expired keys are swept every [`SWEEP_EVERY`] writes, which
//! bounds memory without a background task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::Write;

/// Writes between two sweeps of expired keys.
const SWEEP_EVERY: u64 = 4096;

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, (Vec<u8>, Instant)>,
    writes: u64,
}

/// A process-local key-value store with TTLs.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent (each critical
        // section is one map operation), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, keys: &[&str]) -> Vec<Option<Vec<u8>>> {
        let now = Instant::now();
        let inner = self.lock();
        keys.iter()
            .map(|k| {
                inner
                    .map
                    .get(*k)
                    .filter(|(_, expiry)| *expiry > now)
                    .map(|(v, _)| v.clone())
            })
            .collect()
    }

    pub fn write(&self, writes: &[Write]) {
        let now = Instant::now();
        let mut inner = self.lock();
        for w in writes {
            match w {
                Write::Set { key, value, ttl } => {
                    inner.map.insert(key.clone(), (value.clone(), now + *ttl));
                }
                Write::Delete { key } => {
                    inner.map.remove(key);
                }
            }
        }
        inner.writes += 1;
        if inner.writes.is_multiple_of(SWEEP_EVERY) {
            inner.map.retain(|_, (_, expiry)| *expiry > now);
        }
    }

    /// Keys currently held, expired or not (for tests of the sweep).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
