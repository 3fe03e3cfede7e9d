//! Abuse limits: what one caller may cost, inbound and outbound.
//!
//! Inbound, token buckets: one per subscriber (MSISDN) and one per source address, each
//! refilled at `per_minute` tokens a minute up to `burst`; a hop or an SMS takes one token
//! from each. A caller out of tokens is refused before the gateway does any engine work.
//! Outbound, per tenant: an SMS goes only to a destination whose number starts with one of
//! the tenant's `sms_destinations` prefixes, and at most `sms_per_subscriber_per_day` SMS
//! go to one subscriber in a UTC day.
//!
//! Laid out like `session/`: this file is the contract ([`Limiter`], a closed enum of two
//! backends, no boxing), `memory.rs` keeps buckets and counters in this process (capped,
//! oldest evicted), `redis.rs` shares them between replicas (one Lua script per bucket key,
//! one hash tag per key, so nothing crosses a Redis Cluster slot).
//!
//! With Redis, a hop pays one extra round trip (the subscriber's and the source's buckets
//! are two keys in two slots, sent together on the multiplexed connection, so their
//! latencies overlap); with both inbound limits at 0 nothing is sent at all. A limiter
//! that cannot reach Redis lets the caller through (logged): the session store fails the
//! hop anyway if Redis is down, and limits must not turn a Redis blip into an outage.
//!
//! Every refusal is counted by [`Refusal`] (for the metrics to come) and logged once, the
//! number masked.

mod memory;
mod redis;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use self::memory::MemoryLimiter;
pub use self::redis::RedisLimiter;
use crate::message::mask_msisdn;

/// `[limits] per_subscriber_per_minute`: a person typing a USSD menu makes a hop every few
/// seconds; 30 a minute leaves room for retries.
pub const PER_SUBSCRIBER_PER_MINUTE: u32 = 30;
/// `[limits] per_subscriber_burst`: hops one subscriber may make at once.
pub const PER_SUBSCRIBER_BURST: u32 = 10;
/// `[limits] per_source_per_minute`: off by default. An aggregator's few addresses carry
/// every subscriber's traffic, and behind a reverse proxy every request comes from the
/// proxy: set it from the traffic a deployment expects.
pub const PER_SOURCE_PER_MINUTE: u32 = 0;
/// `[limits] per_source_burst`.
pub const PER_SOURCE_BURST: u32 = 100;
/// `[limits] max_buckets`: buckets (and daily counters) kept in memory, each kind; past
/// it the oldest goes.
pub const MAX_BUCKETS: usize = 100_000;
/// `sms_per_subscriber_per_day` of a `[[tenant]]` when unset.
pub const SMS_PER_SUBSCRIBER_PER_DAY: u32 = 10;

/// The USSD `END` a caller over their rate gets (the tenant's text policy applied).
pub const TOO_MANY: &str = "Trop de demandes. Réessayez dans quelques minutes.";
/// The USSD `END` instead of "SMS envoyé" when the destination is not served.
pub const SMS_NOT_ALLOWED: &str = "Nous ne pouvons pas envoyer de SMS à ce numéro.";
/// The USSD `END` instead of "SMS envoyé" when the subscriber had their SMS for the day.
pub const SMS_DAILY_CAP: &str = "Vous avez reçu le nombre maximal de SMS pour aujourd'hui.";

/// How long Redis keeps a day's counter: the day, and a margin for clocks.
const DAY_COUNTER_TTL: Duration = Duration::from_secs(2 * 24 * 3600);

/// A token bucket's refill: `per_minute` tokens a minute, up to `burst`. `per_minute` 0
/// turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    pub fn is_off(self) -> bool {
        self.per_minute == 0
    }

    /// Milliseconds for a bucket to fill up from empty (how long Redis keeps it).
    fn fill_ms(self) -> u64 {
        let per_minute = u64::from(self.per_minute.max(1));
        (u64::from(self.burst.max(1)) * 60_000).div_ceil(per_minute)
    }
}

/// The inbound limits (`[limits]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    pub per_subscriber: Rate,
    pub per_source: Rate,
    /// Buckets kept in memory, per kind (subscribers, sources, daily counters).
    pub max_buckets: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            per_subscriber: Rate {
                per_minute: PER_SUBSCRIBER_PER_MINUTE,
                burst: PER_SUBSCRIBER_BURST,
            },
            per_source: Rate {
                per_minute: PER_SOURCE_PER_MINUTE,
                burst: PER_SOURCE_BURST,
            },
            max_buckets: MAX_BUCKETS,
        }
    }
}

impl LimitSettings {
    /// No inbound limit (the outbound ones are the tenants').
    pub fn off() -> LimitSettings {
        let off = Rate {
            per_minute: 0,
            burst: 0,
        };
        LimitSettings {
            per_subscriber: off,
            per_source: off,
            max_buckets: MAX_BUCKETS,
        }
    }
}

/// Why a caller or an SMS was refused. Bounded, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// A subscriber over `per_subscriber_per_minute`.
    SubscriberRate,
    /// A source address over `per_source_per_minute`.
    SourceRate,
    /// An SMS to a number outside the tenant's `sms_destinations`.
    Destination,
    /// An SMS past the tenant's `sms_per_subscriber_per_day`.
    DailyCap,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::SubscriberRate,
        Refusal::SourceRate,
        Refusal::Destination,
        Refusal::DailyCap,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::SubscriberRate => "subscriber_rate",
            Refusal::SourceRate => "source_rate",
            Refusal::Destination => "destination",
            Refusal::DailyCap => "daily_cap",
        }
    }

    /// What a USSD subscriber is told, before the tenant's text policy.
    pub fn ussd_text(self) -> &'static str {
        match self {
            Refusal::SubscriberRate | Refusal::SourceRate => TOO_MANY,
            Refusal::Destination => SMS_NOT_ALLOWED,
            Refusal::DailyCap => SMS_DAILY_CAP,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Whose bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketKey<'a> {
    Subscriber(&'a str),
    Source(IpAddr),
}

/// A limiter failure (Redis unreachable, timed out, or answered nonsense).
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("limiter unavailable; {0}")]
    Unavailable(String),
}

/// What a tenant allows itself to send: from its `[[tenant]]`.
#[derive(Debug, Clone, Copy)]
pub struct SmsPolicy<'a> {
    /// Prefixes (`+225`) a destination must start with; empty: none is allowed.
    pub destinations: &'a [String],
    /// SMS to one subscriber in a UTC day; 0: no cap.
    pub per_subscriber_per_day: u32,
}

/// Where buckets and counters live.
#[derive(Debug, Clone)]
pub enum Backend {
    Memory(MemoryLimiter),
    Redis(RedisLimiter),
}

/// The limits of a gateway process: settings, where the buckets live, refusal counts.
#[derive(Debug, Clone)]
pub struct Limiter {
    settings: LimitSettings,
    backend: Backend,
    refused: Arc<[AtomicU64; 4]>,
}

impl Limiter {
    pub fn new(settings: LimitSettings, backend: Backend) -> Limiter {
        Limiter {
            settings,
            backend,
            refused: Arc::new(Default::default()),
        }
    }

    /// Buckets in this process's memory.
    pub fn memory(settings: LimitSettings) -> Limiter {
        let backend = Backend::Memory(MemoryLimiter::new(settings.max_buckets));
        Limiter::new(settings, backend)
    }

    /// No inbound limit, in memory (what a gateway built without a limiter gets).
    pub fn off() -> Limiter {
        Limiter::memory(LimitSettings::off())
    }

    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    /// How many refusals of each kind this process made.
    pub fn refusals(&self) -> [(Refusal, u64); 4] {
        Refusal::ALL.map(|r| (r, self.refused[r.index()].load(Ordering::Relaxed)))
    }

    /// Counts and logs a refusal, once.
    fn refuse(&self, reason: Refusal, msisdn: &str) -> Refusal {
        self.refused[reason.index()].fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            reason = reason.as_str(),
            msisdn = %mask_msisdn(msisdn),
            "refused by abuse limits"
        );
        reason
    }

    /// Takes a token from the subscriber's and the source's buckets. With Redis the two
    /// scripts go out together (one round trip of latency); with both limits off nothing
    /// is done. A limiter that cannot answer lets the caller through.
    pub async fn admit(&self, peer: Option<IpAddr>, msisdn: &str) -> Result<(), Refusal> {
        let sub = self.settings.per_subscriber;
        let src = self.settings.per_source;
        let peer = peer.filter(|_| !src.is_off());
        if sub.is_off() && peer.is_none() {
            return Ok(());
        }
        let (sub_ok, src_ok) = match &self.backend {
            Backend::Memory(m) => {
                let now = tokio::time::Instant::now();
                let sub_ok = sub.is_off() || m.take(BucketKey::Subscriber(msisdn), sub, now);
                let src_ok = peer.is_none_or(|ip| m.take(BucketKey::Source(ip), src, now));
                (sub_ok, src_ok)
            }
            Backend::Redis(r) => {
                let now = now_ms();
                let sub_take = async {
                    if sub.is_off() {
                        return Ok(true);
                    }
                    r.take(BucketKey::Subscriber(msisdn), sub, now).await
                };
                let src_take = async {
                    match peer {
                        Some(ip) => r.take(BucketKey::Source(ip), src, now).await,
                        None => Ok(true),
                    }
                };
                let (a, b) = tokio::join!(sub_take, src_take);
                (open_on_error(a), open_on_error(b))
            }
        };
        match (sub_ok, src_ok) {
            (true, true) => Ok(()),
            (false, _) => Err(self.refuse(Refusal::SubscriberRate, msisdn)),
            (true, false) => Err(self.refuse(Refusal::SourceRate, msisdn)),
        }
    }

    /// Whether `tenant` may send one more SMS to `to` on UTC day `day` (Unix seconds /
    /// 86400): a destination it allows, under its daily cap (the SMS is counted when
    /// allowed).
    pub async fn allow_sms(
        &self,
        tenant: &str,
        policy: SmsPolicy<'_>,
        to: &str,
        day: i64,
    ) -> Result<(), Refusal> {
        if !destination_allowed(policy.destinations, to) {
            return Err(self.refuse(Refusal::Destination, to));
        }
        let cap = policy.per_subscriber_per_day;
        if cap == 0 {
            return Ok(());
        }
        let count = match &self.backend {
            Backend::Memory(m) => m.count_sms(tenant, to, day),
            Backend::Redis(r) => match r.count_sms(tenant, to, day).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(cause = %e, "daily SMS counter unavailable; SMS let through");
                    return Ok(());
                }
            },
        };
        if count > u64::from(cap) {
            return Err(self.refuse(Refusal::DailyCap, to));
        }
        Ok(())
    }
}

/// A bucket that could not be read lets the caller through (see the module's comment).
fn open_on_error(taken: Result<bool, LimitError>) -> bool {
    taken.unwrap_or_else(|e| {
        tracing::warn!(cause = %e, "rate limit unavailable; hop let through");
        true
    })
}

/// Unix milliseconds now (Redis buckets; replicas' clocks only need to roughly agree: a
/// bucket never refills backwards).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A destination as `+digits`: `00` and a bare international number gain their `+`.
fn international(to: &str) -> String {
    let compact: String = to
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    if let Some(rest) = compact.strip_prefix("00") {
        return format!("+{rest}");
    }
    if compact.starts_with('+') {
        compact
    } else {
        format!("+{compact}")
    }
}

/// Whether `to` starts with one of `prefixes` (each `+digits`), read as an international
/// number; no prefix allows nothing.
pub fn destination_allowed(prefixes: &[String], to: &str) -> bool {
    let to = international(to);
    let digits = to.len() > 1 && to[1..].chars().all(|c| c.is_ascii_digit());
    digits && prefixes.iter().any(|p| to.starts_with(p.as_str()))
}

/// Whether `prefix` is a destination prefix: `+` and one to fifteen digits.
pub fn is_prefix(prefix: &str) -> bool {
    prefix
        .strip_prefix('+')
        .is_some_and(|d| (1..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_match_on_international_prefixes_only() {
        let moov = vec!["+225".to_string()];
        for (to, allowed) in [
            ("+2250700000001", true),
            ("2250700000001", true),
            ("002250700000001", true),
            ("+225 07 00 00 00 01", true),
            ("+33612345678", false),
            ("33612345678", false),
            ("1", false),
            ("+225abc", false),
            ("", false),
        ] {
            assert_eq!(destination_allowed(&moov, to), allowed, "{to}");
        }
        assert!(!destination_allowed(&[], "+2250700000001"));
    }

    #[test]
    fn a_prefix_is_a_plus_and_digits() {
        for (p, ok) in [
            ("+225", true),
            ("+1", true),
            ("225", false),
            ("+", false),
            ("+22 5", false),
            ("+2250000000000000", false),
        ] {
            assert_eq!(is_prefix(p), ok, "{p}");
        }
    }

    #[test]
    fn reasons_have_distinct_names() {
        let names: std::collections::HashSet<_> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Refusal::ALL.len());
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[tokio::test]
    async fn refusals_are_counted_by_reason() {
        let limiter = Limiter::memory(LimitSettings {
            per_subscriber: Rate {
                per_minute: 1,
                burst: 1,
            },
            ..LimitSettings::off()
        });
        assert_eq!(limiter.admit(None, "+2250700000001").await, Ok(()));
        assert_eq!(
            limiter.admit(None, "+2250700000001").await,
            Err(Refusal::SubscriberRate)
        );
        let policy = SmsPolicy {
            destinations: &["+225".to_string()],
            per_subscriber_per_day: 1,
        };
        let sms = |to: &'static str| limiter.allow_sms("t", policy, to, 1);
        assert_eq!(sms("+33612345678").await, Err(Refusal::Destination));
        assert_eq!(sms("+2250700000001").await, Ok(()));
        assert_eq!(sms("+2250700000001").await, Err(Refusal::DailyCap));
        assert_eq!(
            limiter.refusals().map(|(_, n)| n),
            [1, 0, 1, 1],
            "{:?}",
            limiter.refusals()
        );
    }
}
