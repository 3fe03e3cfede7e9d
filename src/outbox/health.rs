//! Each sender's recent health, as the worker saw it: the last send's result and time and
//! the failures in a row, for `/readyz`. One small map behind a mutex, written once per
//! send and read by the readiness probe; capped by the configured senders (the worker only
//! records senders it has).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What a sender's last send did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderHealth {
    /// Whether the last send was accepted by the provider.
    pub ok: bool,
    /// When it finished (Unix milliseconds).
    pub at_ms: u64,
    /// Sends that failed in a row (0 after a success).
    pub consecutive_failures: u32,
    /// Why the last failure failed (the sender's own classification text).
    pub last_error: Option<String>,
}

impl SenderHealth {
    /// `ok` when the last send succeeded, `degraded` otherwise.
    pub fn status(&self) -> &'static str {
        if self.ok {
            "ok"
        } else {
            "degraded"
        }
    }
}

/// The senders' health, shared by the worker (writes) and `/readyz` (reads). Cheap to
/// clone.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<BTreeMap<String, SenderHealth>>>);

/// The longest error text kept per sender.
const MAX_ERROR_CHARS: usize = 200;

impl Health {
    /// Records a send by `sender` at `at_ms`: `Ok` or the failure's text.
    pub fn record(&self, sender: &str, at_ms: u64, result: Result<(), &str>) {
        let mut senders = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let failures = senders.get(sender).map_or(0, |h| h.consecutive_failures);
        let health = match result {
            Ok(()) => SenderHealth {
                ok: true,
                at_ms,
                consecutive_failures: 0,
                last_error: None,
            },
            Err(why) => SenderHealth {
                ok: false,
                at_ms,
                consecutive_failures: failures.saturating_add(1),
                last_error: Some(why.chars().take(MAX_ERROR_CHARS).collect()),
            },
        };
        match senders.get_mut(sender) {
            Some(h) => *h = health,
            None => {
                senders.insert(sender.to_string(), health);
            }
        }
    }

    /// Every sender that has sent since start, by name.
    pub fn snapshot(&self) -> BTreeMap<String, SenderHealth> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_in_a_row_and_a_success_clears_them() {
        let h = Health::default();
        h.record("at", 1, Err("503"));
        h.record("at", 2, Err("timeout"));
        let at = &h.snapshot()["at"];
        assert_eq!(
            (at.status(), at.consecutive_failures, at.at_ms),
            ("degraded", 2, 2)
        );
        assert_eq!(at.last_error.as_deref(), Some("timeout"));
        h.record("at", 3, Ok(()));
        let at = &h.snapshot()["at"];
        assert_eq!(
            (at.status(), at.consecutive_failures, at.last_error.clone()),
            ("ok", 0, None)
        );
    }
}
