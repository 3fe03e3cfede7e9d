//! Limits in this process's memory: token buckets and daily SMS counters, for a single
//! replica (no Redis). Each map is capped; past the cap the oldest entry goes (a bucket
//! forgotten that way starts full again: the cap errs on the side of the caller). The
//! clock is tokio's, so tests drive refills on a paused clock.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use super::{BucketKey, Rate};

/// A map of at most `cap` entries that forgets the oldest inserted one when full.
#[derive(Debug)]
struct Capped<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    cap: usize,
    /// Whether the cap was reached once (warned once).
    full: bool,
}

impl<K: Hash + Eq + Clone, V> Capped<K, V> {
    fn new(cap: usize) -> Self {
        Capped {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            full: false,
        }
    }

    /// The entry of `key`, made by `make` when missing (evicting the oldest if full).
    fn entry(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.cap {
                let Some(oldest) = self.order.pop_front() else {
                    break;
                };
                self.map.remove(&oldest);
                if !self.full {
                    self.full = true;
                    tracing::warn!(
                        cap = self.cap,
                        "limits: bucket cap reached; the oldest are forgotten"
                    );
                }
            }
            self.order.push_back(key.clone());
        }
        self.map.entry(key).or_insert_with(make)
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// A token bucket: tokens left (fractional) at `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Refills for the time since `at`, then takes one token if there is one.
    fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let burst = f64::from(rate.burst.max(1));
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate.per_minute) / 60.0).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Maps {
    subscribers: Capped<String, Bucket>,
    sources: Capped<IpAddr, Bucket>,
    /// `tenant:msisdn` to (UTC day, SMS counted that day).
    days: Capped<String, (i64, u64)>,
}

/// Buckets and counters of one process.
#[derive(Debug, Clone)]
pub struct MemoryLimiter {
    maps: Arc<Mutex<Maps>>,
}

impl MemoryLimiter {
    /// Keeps at most `cap` entries of each kind.
    pub fn new(cap: usize) -> MemoryLimiter {
        MemoryLimiter {
            maps: Arc::new(Mutex::new(Maps {
                subscribers: Capped::new(cap),
                sources: Capped::new(cap),
                days: Capped::new(cap),
            })),
        }
    }

    fn maps(&self) -> MutexGuard<'_, Maps> {
        // A panic while holding the lock cannot leave a map inconsistent: keep going.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a token from `key`'s bucket at `now`; a new bucket starts full.
    pub fn take(&self, key: BucketKey<'_>, rate: Rate, now: Instant) -> bool {
        let full = || Bucket {
            tokens: f64::from(rate.burst.max(1)),
            at: now,
        };
        let mut maps = self.maps();
        match key {
            BucketKey::Subscriber(msisdn) => match maps.subscribers.map.get_mut(msisdn) {
                Some(b) => b.take(rate, now),
                None => maps
                    .subscribers
                    .entry(msisdn.to_string(), full)
                    .take(rate, now),
            },
            BucketKey::Source(ip) => maps.sources.entry(ip, full).take(rate, now),
        }
    }

    /// Counts one SMS to `msisdn` from `tenant` on `day`; returns the day's count.
    pub fn count_sms(&self, tenant: &str, msisdn: &str, day: i64) -> u64 {
        let mut maps = self.maps();
        let counter = maps.days.entry(format!("{tenant}:{msisdn}"), || (day, 0));
        if counter.0 != day {
            *counter = (day, 0);
        }
        counter.1 += 1;
        counter.1
    }

    /// Buckets held (subscribers and sources), for tests of the cap.
    pub fn buckets(&self) -> usize {
        let maps = self.maps();
        maps.subscribers.len() + maps.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const RATE: Rate = Rate {
        per_minute: 6,
        burst: 2,
    };

    fn taken(l: &MemoryLimiter, msisdn: &str, n: usize) -> usize {
        let now = Instant::now();
        (0..n)
            .filter(|_| l.take(BucketKey::Subscriber(msisdn), RATE, now))
            .count()
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_gives_its_burst_then_refills_at_its_rate() {
        let l = MemoryLimiter::new(10);
        assert_eq!(taken(&l, "+1", 5), 2, "the burst, then nothing");
        // 6 a minute: one token every 10 s.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(taken(&l, "+1", 5), 0, "not yet a whole token");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(taken(&l, "+1", 5), 1, "one token after 10 s");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(taken(&l, "+1", 5), 2, "never more than the burst");
        assert_eq!(
            taken(&l, "+2", 5),
            2,
            "each subscriber has their own bucket"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_bucket_goes_when_the_cap_is_reached() {
        let l = MemoryLimiter::new(3);
        for i in 0..10 {
            taken(&l, &format!("+{i}"), 5);
            assert!(l.buckets() <= 3);
        }
        // +0 was forgotten: it starts full again; +9 is still empty.
        assert_eq!(taken(&l, "+9", 1), 0);
        assert_eq!(taken(&l, "+0", 1), 1);
        assert_eq!(l.buckets(), 3);
    }

    #[test]
    fn daily_counters_start_again_each_day_and_per_tenant() {
        let l = MemoryLimiter::new(10);
        assert_eq!(l.count_sms("a", "+1", 7), 1);
        assert_eq!(l.count_sms("a", "+1", 7), 2);
        assert_eq!(l.count_sms("b", "+1", 7), 1);
        assert_eq!(l.count_sms("a", "+1", 8), 1);
    }
}
