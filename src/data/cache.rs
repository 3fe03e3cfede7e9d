//! The short answer cache of the `http` data source (`cache_ms`, off by default).
//!
//! Found and missing answers are kept per key for `ttl`, `capacity` at most, oldest first
//! out; failures are never cached (the caller only stores what it wants kept). The caller
//! passes the time (`tokio::time::Instant::now()`), so the cache itself reads no clock.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::menu::LookupOutcome;

/// Found and missing answers per key, for `ttl`, `capacity` at most.
#[derive(Debug)]
pub(super) struct Cache {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<String, (Instant, LookupOutcome)>,
    /// Keys in the order they were stored, with their expiry: the oldest goes first.
    order: VecDeque<(String, Instant)>,
}

impl Cache {
    /// An empty cache; `capacity` is at least 1.
    pub(super) fn new(ttl: Duration, capacity: usize) -> Cache {
        Cache {
            ttl,
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The answer stored for `key`, unless it has expired by `now`.
    pub(super) fn get(&mut self, key: &str, now: Instant) -> Option<LookupOutcome> {
        match self.entries.get(key) {
            Some((expires, outcome)) if *expires > now => Some(outcome.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `outcome` for `key` until `now + ttl`, making room first.
    pub(super) fn put(&mut self, key: &str, outcome: LookupOutcome, now: Instant) {
        // Expired entries first, then the oldest while full. An `order` entry whose expiry
        // differs from the stored one is stale (the key was stored again): just dropped.
        while let Some((k, expires)) = self.order.front() {
            let full = self.entries.len() >= self.capacity || self.order.len() >= 2 * self.capacity;
            if *expires > now && !full {
                break;
            }
            if self.entries.get(k).is_some_and(|(e, _)| e == expires) {
                self.entries.remove(k);
            }
            self.order.pop_front();
        }
        let expires = now + self.ttl;
        self.entries.insert(key.to_string(), (expires, outcome));
        self.order.push_back((key.to_string(), expires));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    fn found(v: &str) -> LookupOutcome {
        LookupOutcome::Found(vec![("x".into(), v.into())])
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_expires_entries_and_stays_bounded() {
        let t0 = Instant::now();
        let mut c = Cache::new(Duration::from_secs(10), 3);
        c.put("a", found("1"), t0);
        c.put("b", LookupOutcome::Missing, t0);
        assert_eq!(c.get("a", t0), Some(found("1")));
        assert_eq!(c.get("b", t0), Some(LookupOutcome::Missing));
        assert_eq!(c.get("a", t0 + Duration::from_secs(10)), None);
        c.put("c", found("3"), t0);
        c.put("d", found("4"), t0);
        c.put("e", found("5"), t0);
        assert!(c.entries.len() <= 3, "{c:?}");
        assert_eq!(c.get("e", t0), Some(found("5")));
        // Many keys: never more than the capacity.
        for i in 0..100 {
            c.put(&i.to_string(), found("n"), t0 + Duration::from_millis(i));
            assert!(c.entries.len() <= 3 && c.order.len() <= 6, "{c:?}");
        }
        assert_eq!(
            c.get("99", t0 + Duration::from_millis(99)),
            Some(found("n"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_lives_exactly_its_ttl_on_the_clock() {
        let mut c = Cache::new(Duration::from_secs(60), 10);
        c.put("k", found("1"), Instant::now());
        advance(Duration::from_secs(59)).await;
        assert_eq!(c.get("k", Instant::now()), Some(found("1")));
        // Stored again: the new answer, with a new expiry.
        c.put("k", found("2"), Instant::now());
        advance(Duration::from_secs(59)).await;
        assert_eq!(c.get("k", Instant::now()), Some(found("2")));
        advance(Duration::from_secs(1)).await;
        assert_eq!(c.get("k", Instant::now()), None);
    }
}
