//! The circuit breaker of the `http` data source: it spares a sick API, and the
//! subscribers waiting on it.
//!
//! `threshold` failed lookups in a row open it; while open, lookups fail at once without a
//! request; once `open_for` has passed, one trial lookup goes through (half-open) while the
//! others still fail at once: a success closes it, a failure opens it again. Opening and
//! closing are logged once each.
//!
//! Time is `tokio::time::Instant`, so the tests below move the clock with
//! `tokio::time::advance` instead of waiting for it.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// Where a circuit breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests go through.
    Closed,
    /// Lookups fail at once, without a request.
    Open,
    /// The open period is over: the next lookup is a trial (or one is under way).
    HalfOpen,
}

/// A circuit breaker, shared by every lookup of one source.
#[derive(Debug)]
pub(super) struct Breaker {
    /// Failed lookups in a row that open it; 0 turns the breaker off.
    threshold: u32,
    /// How long it stays open before a trial lookup.
    open_for: Duration,
    state: Mutex<Inner>,
}

#[derive(Debug, Clone, Copy)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A trial lookup is under way; others fail at once.
    Trial,
}

impl Breaker {
    pub(super) fn new(threshold: u32, open_for: Duration) -> Breaker {
        Breaker {
            threshold,
            open_for,
            state: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where it stands now.
    pub(super) fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() < until => BreakerState::Open,
            Inner::Open { .. } | Inner::Trial => BreakerState::HalfOpen,
        }
    }

    /// Lets a lookup through, or not (open, or a trial under way). `tenant` and `source`
    /// are for the logs.
    pub(super) fn admit<'a>(&'a self, tenant: &'a str, source: &'a str) -> Option<Ticket<'a>> {
        let mut state = self.lock();
        let trial = match *state {
            Inner::Closed { .. } => false,
            Inner::Open { until } if Instant::now() >= until => {
                *state = Inner::Trial;
                true
            }
            Inner::Open { .. } | Inner::Trial => return None,
        };
        Some(Ticket {
            breaker: self,
            tenant,
            source,
            trial,
            done: false,
        })
    }

    fn record(&self, ok: bool, tenant: &str, source: &str) {
        if self.threshold == 0 {
            return;
        }
        let mut state = self.lock();
        match (*state, ok) {
            (Inner::Closed { .. }, true) => *state = Inner::Closed { failures: 0 },
            (Inner::Open { .. } | Inner::Trial, true) => {
                *state = Inner::Closed { failures: 0 };
                tracing::info!(
                    tenant = %tenant,
                    source = %source,
                    kind = "http",
                    "circuit breaker closed: the source answers again"
                );
            }
            (Inner::Closed { failures }, false) => {
                let failures = failures + 1;
                if failures >= self.threshold {
                    *state = Inner::Open {
                        until: Instant::now() + self.open_for,
                    };
                    tracing::warn!(
                        tenant = %tenant,
                        source = %source,
                        kind = "http",
                        failures,
                        open_ms = u64::try_from(self.open_for.as_millis()).unwrap_or(u64::MAX),
                        "circuit breaker open: lookups fail at once until a trial succeeds"
                    );
                } else {
                    *state = Inner::Closed { failures };
                }
            }
            (Inner::Trial, false) => {
                *state = Inner::Open {
                    until: Instant::now() + self.open_for,
                };
                tracing::debug!(
                    tenant = %tenant,
                    source = %source,
                    kind = "http",
                    "circuit breaker trial failed: open again"
                );
            }
            // A lookup let through before the breaker opened: it stays open as it is.
            (Inner::Open { .. }, false) => {}
        }
    }
}

/// A lookup let through by the breaker; it must say how it went. A trial dropped without a
/// word (its hop was cancelled) counts as a failure, so the breaker never stays half-open.
pub(super) struct Ticket<'a> {
    breaker: &'a Breaker,
    tenant: &'a str,
    source: &'a str,
    trial: bool,
    done: bool,
}

impl Ticket<'_> {
    pub(super) fn success(&mut self) {
        self.done = true;
        self.breaker.record(true, self.tenant, self.source);
    }

    pub(super) fn failure(&mut self) {
        self.done = true;
        self.breaker.record(false, self.tenant, self.source);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.done && self.trial {
            self.breaker.record(false, self.tenant, self.source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    const OPEN_FOR: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_after_failures_in_a_row_and_closes_after_a_good_trial() {
        let b = Breaker::new(2, OPEN_FOR);
        b.admit("t", "s").unwrap().failure();
        b.admit("t", "s").unwrap().success();
        b.admit("t", "s").unwrap().failure();
        assert_eq!(b.state(), BreakerState::Closed, "the success broke the row");
        b.admit("t", "s").unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.admit("t", "s").is_none());

        // Still open one millisecond before the end of the open period.
        advance(OPEN_FOR - Duration::from_millis(1)).await;
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.admit("t", "s").is_none());

        // End of the open period: one trial, the others wait.
        advance(Duration::from_millis(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let mut trial = b.admit("t", "s").unwrap();
        assert!(b.admit("t", "s").is_none());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        trial.failure();
        assert_eq!(
            b.state(),
            BreakerState::Open,
            "a failed trial opens it again"
        );

        // A trial dropped unanswered (a cancelled hop) opens it again.
        advance(OPEN_FOR).await;
        drop(b.admit("t", "s").unwrap());
        assert_eq!(b.state(), BreakerState::Open);

        // A good trial closes it.
        advance(OPEN_FOR).await;
        b.admit("t", "s").unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admit("t", "s").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_opens_the_breaker_for_a_whole_period_again() {
        let b = Breaker::new(1, OPEN_FOR);
        b.admit("t", "s").unwrap().failure();
        advance(OPEN_FOR).await;
        b.admit("t", "s").unwrap().failure();
        advance(OPEN_FOR - Duration::from_millis(1)).await;
        assert_eq!(b.state(), BreakerState::Open, "counted from the trial");
        advance(Duration::from_millis(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_let_through_before_the_breaker_opened_leaves_it_open() {
        let b = Breaker::new(1, OPEN_FOR);
        let mut late = b.admit("t", "s").unwrap();
        b.admit("t", "s").unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        late.failure();
        advance(OPEN_FOR).await;
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen,
            "the late failure did not push the open period further"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_breaker_with_threshold_zero_never_opens() {
        let b = Breaker::new(0, Duration::from_secs(1));
        for _ in 0..10 {
            b.admit("t", "s").unwrap().failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
