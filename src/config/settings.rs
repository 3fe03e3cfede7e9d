//! The `[session]` and `[outbox]` sections: timings and naming of stored sessions, and how
//! the outbound queue retries and keeps records. Each default is a named constant, used by
//! both `Default` and the check.

use std::time::Duration;

use serde::Deserialize;

use super::Problems;
use crate::outbox::{DEFAULT_DETAIL_MAX_CHARS, DEFAULT_HISTORY_MAX_ENTRIES};

/// `[session] ttl_secs`: an idle USSD session lives this long (aggregators give up sooner).
pub const SESSION_TTL: Duration = Duration::from_secs(180);
/// `[session] resume_window_secs`: a cut-off session can be resumed for this long.
pub const RESUME_WINDOW: Duration = Duration::from_secs(300);
/// `[session] ended_ttl_secs`: an ended session is kept this long to answer retries.
pub const ENDED_TTL: Duration = Duration::from_secs(30);
/// `[session] sms_ttl_secs`: an SMS dialogue lives this long after its last message.
pub const SMS_TTL: Duration = Duration::from_secs(15 * 60);
/// `[session] dedupe_ttl_secs`: a webhook's message id is remembered this long.
pub const DEDUPE_TTL: Duration = Duration::from_secs(24 * 3600);
/// `[session] key_prefix`: several gateways can share one Redis under different prefixes.
pub const KEY_PREFIX: &str = "tamtam";
/// `[session] redis_timeout_ms`: one Redis command, sessions and outbound queue alike.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(1000);
/// `[session] memory_capacity`: most sessions, SMS dialogues and resume points the
/// in-memory store holds (defined beside the store).
pub const MEMORY_CAPACITY: usize = crate::session::DEFAULT_CAPACITY;
/// `[session] memory_message_ids`: most webhook message ids the in-memory store remembers.
pub const MEMORY_MESSAGE_IDS: usize = crate::session::DEFAULT_MESSAGE_IDS;

/// `[outbox] base_backoff_ms`: the first retry's delay; each further one doubles it.
pub const BASE_BACKOFF: Duration = Duration::from_secs(1);
/// `[outbox] max_backoff_ms`: the longest delay between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// `[outbox] claim_after_secs`: longer than any send can take.
pub const CLAIM_AFTER: Duration = Duration::from_secs(60);
/// `[outbox] status_ttl_secs`: a week.
pub const STATUS_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// `[session]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    ttl_secs: Option<u64>,
    resume_window_secs: Option<u64>,
    ended_ttl_secs: Option<u64>,
    sms_ttl_secs: Option<u64>,
    dedupe_ttl_secs: Option<u64>,
    key_prefix: Option<String>,
    redis_timeout_ms: Option<u64>,
    memory_capacity: Option<usize>,
    memory_message_ids: Option<usize>,
}

/// `[outbox]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutbox {
    base_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    claim_after_secs: Option<u64>,
    status_ttl_secs: Option<u64>,
    history_max_entries: Option<usize>,
    detail_max_chars: Option<usize>,
}

/// Session timings and naming.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// How long an idle USSD session lives.
    pub ttl: Duration,
    /// How long a cut-off session can be resumed by dialling again.
    pub resume_window: Duration,
    /// How long an ended session is kept, to answer the aggregator's retries.
    pub ended_ttl: Duration,
    /// Time to live of an SMS dialogue after its last message.
    pub sms_ttl: Duration,
    /// How long a webhook's message id is remembered to answer its retries.
    pub dedupe_ttl: Duration,
    /// Prefix of every Redis key, so several gateways can share one Redis.
    pub key_prefix: String,
    /// The most one Redis command may take (connecting included), for sessions and the
    /// outbound queue: a stuck Redis never wedges a hop, which answers `unavailable`.
    pub redis_timeout: Duration,
    /// Most sessions, dialogues and resume points the in-memory store holds; the oldest
    /// written goes first beyond it.
    pub memory_capacity: usize,
    /// Most webhook message ids the in-memory store remembers; the oldest goes first.
    pub memory_message_ids: usize,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            ttl: SESSION_TTL,
            resume_window: RESUME_WINDOW,
            ended_ttl: ENDED_TTL,
            sms_ttl: SMS_TTL,
            dedupe_ttl: DEDUPE_TTL,
            key_prefix: KEY_PREFIX.into(),
            redis_timeout: REDIS_TIMEOUT,
            memory_capacity: MEMORY_CAPACITY,
            memory_message_ids: MEMORY_MESSAGE_IDS,
        }
    }
}

/// How the outbound queue retries and keeps records.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// The first retry's delay; each further one doubles it, up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// A message a replica claimed and did not finish for this long is taken over.
    pub claim_after: Duration,
    /// How long a message's status stays readable after the gateway's last event for it
    /// (delivery reports do not renew it).
    pub status_ttl: Duration,
    /// What one message's status history may hold (events, detail length).
    pub history: crate::outbox::HistoryLimits,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            base_backoff: BASE_BACKOFF,
            max_backoff: MAX_BACKOFF,
            claim_after: CLAIM_AFTER,
            status_ttl: STATUS_TTL,
            history: crate::outbox::HistoryLimits::default(),
        }
    }
}

fn secs(v: Option<u64>, default: Duration) -> Duration {
    v.map_or(default, Duration::from_secs)
}

fn ms(v: Option<u64>, default: Duration) -> Duration {
    v.map_or(default, Duration::from_millis)
}

/// Checks `[session]`: every time to live at least one second.
pub(super) fn check_session(raw: RawSession, problems: &mut Problems) -> SessionSettings {
    let session = SessionSettings {
        ttl: secs(raw.ttl_secs, SESSION_TTL),
        resume_window: secs(raw.resume_window_secs, RESUME_WINDOW),
        ended_ttl: secs(raw.ended_ttl_secs, ENDED_TTL),
        sms_ttl: secs(raw.sms_ttl_secs, SMS_TTL),
        dedupe_ttl: secs(raw.dedupe_ttl_secs, DEDUPE_TTL),
        key_prefix: raw.key_prefix.unwrap_or_else(|| KEY_PREFIX.into()),
        redis_timeout: ms(raw.redis_timeout_ms, REDIS_TIMEOUT),
        memory_capacity: raw.memory_capacity.unwrap_or(MEMORY_CAPACITY),
        memory_message_ids: raw.memory_message_ids.unwrap_or(MEMORY_MESSAGE_IDS),
    };
    for (name, v) in [
        ("memory_capacity", session.memory_capacity),
        ("memory_message_ids", session.memory_message_ids),
    ] {
        if v == 0 {
            problems.error("session", format!("`{name}` must be at least 1"));
        }
    }
    for (name, v) in [
        ("ttl_secs", session.ttl),
        ("sms_ttl_secs", session.sms_ttl),
        ("dedupe_ttl_secs", session.dedupe_ttl),
        ("ended_ttl_secs", session.ended_ttl),
    ] {
        if v.is_zero() {
            problems.error("session", format!("`{name}` must be at least 1"));
        }
    }
    session
}

/// Checks `[outbox]`: a history keeps at least one event.
pub(super) fn check_outbox(raw: RawOutbox, problems: &mut Problems) -> OutboxSettings {
    let history = crate::outbox::HistoryLimits {
        max_entries: raw
            .history_max_entries
            .unwrap_or(DEFAULT_HISTORY_MAX_ENTRIES),
        detail_max_chars: raw.detail_max_chars.unwrap_or(DEFAULT_DETAIL_MAX_CHARS),
    };
    if history.max_entries == 0 {
        problems.error("outbox", "`history_max_entries` must be at least 1");
    }
    OutboxSettings {
        base_backoff: ms(raw.base_backoff_ms, BASE_BACKOFF),
        max_backoff: ms(raw.max_backoff_ms, MAX_BACKOFF),
        claim_after: secs(raw.claim_after_secs, CLAIM_AFTER),
        status_ttl: secs(raw.status_ttl_secs, STATUS_TTL),
        history,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{problems, MINIMAL};
    use super::*;

    #[test]
    fn unset_settings_take_their_defaults() {
        let c = super::super::tests::parse(MINIMAL).unwrap();
        assert_eq!(c.session.ttl, SESSION_TTL);
        assert_eq!(c.session.ttl, Duration::from_secs(180));
        assert_eq!(c.session.redis_timeout, Duration::from_millis(1000));
        assert_eq!(c.session.key_prefix, "tamtam");
        assert_eq!(c.outbox.claim_after, Duration::from_secs(60));
        assert_eq!(c.outbox.max_backoff, Duration::from_secs(300));
        assert_eq!(c.outbox.history.max_entries, 32);
        assert_eq!(c.outbox.history.detail_max_chars, 256);
        assert_eq!(c.session.memory_capacity, 100_000);
        assert_eq!(c.session.memory_message_ids, 100_000);
    }

    #[test]
    fn an_empty_history_is_refused() {
        let all = problems(&format!("{MINIMAL}[outbox]\nhistory_max_entries = 0\n"));
        let needle = "t.toml:outbox: error: `history_max_entries` must be at least 1";
        assert!(all.iter().any(|p| p == needle), "{needle} in {all:#?}");
    }

    #[test]
    fn memory_capacities_are_read_and_zero_is_refused() {
        let c = super::super::tests::parse(&format!(
            "{MINIMAL}[session]\nmemory_capacity = 10\nmemory_message_ids = 5\n"
        ))
        .unwrap();
        assert_eq!(
            (c.session.memory_capacity, c.session.memory_message_ids),
            (10, 5)
        );
        let all = problems(&format!(
            "{MINIMAL}[session]\nmemory_capacity = 0\nmemory_message_ids = 0\n"
        ));
        for name in ["memory_capacity", "memory_message_ids"] {
            let needle = format!("t.toml:session: error: `{name}` must be at least 1");
            assert!(all.contains(&needle), "{needle} in {all:#?}");
        }
    }

    #[test]
    fn zero_times_to_live_are_refused() {
        let all = problems(&format!(
            "{MINIMAL}[session]\nttl_secs = 0\nsms_ttl_secs = 0\ndedupe_ttl_secs = 0\nended_ttl_secs = 0\n"
        ));
        for name in [
            "ttl_secs",
            "sms_ttl_secs",
            "dedupe_ttl_secs",
            "ended_ttl_secs",
        ] {
            let needle = format!("t.toml:session: error: `{name}` must be at least 1");
            assert!(all.contains(&needle), "{needle} in {all:#?}");
        }
    }
}
