//! The in-memory queue: one gateway process, nothing survives a restart. The default when
//! no Redis is set, and the queue `tamtam simulate` shows instead of sending.
//!
//! A `std::sync::Mutex` guards the collections: no `.await` happens while it is held. A
//! [`Notify`] wakes a worker waiting in `claim` as soon as a message is pushed or a retry
//! falls due. Status histories and provider ids expire by the wall clock (the Unix
//! milliseconds the records carry); expired ones are swept whenever the number of histories
//! held reaches a multiple of [`SWEEP_AT`], which bounds memory without a background task.
//! Each history keeps at most [`HistoryLimits::max_entries`] events (the newest), each
//! detail cleaned and cut; a delivery report adds to a history without renewing its expiry.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::{ttl_ms, DeadFilter, DeadLetter, Delivery, HistoryLimits, QueueStats, Sends, DEAD_CAP};
use crate::outbox::{now_ms, OutMessage, StatusEvent};

/// Expired histories and provider ids are swept when the number of histories held is a
/// multiple of this.
const SWEEP_AT: usize = 4096;

/// The in-process queue: one gateway, nothing survives a restart.
#[derive(Debug, Clone, Default)]
pub struct MemoryQueue {
    inner: Arc<Mutex<MemoryInner>>,
    /// Wakes a `claim` waiting for work.
    ready_signal: Arc<Notify>,
    /// Counts recorded sends (see [`Queue::sends`](super::Queue::sends)).
    pub(super) sends: Sends,
    /// What one history may hold.
    limits: HistoryLimits,
}

#[derive(Debug, Default)]
struct MemoryInner {
    /// Messages to send now, oldest first.
    ready: VecDeque<OutMessage>,
    /// Retries with the Unix millisecond they are due.
    delayed: Vec<(u64, OutMessage)>,
    /// Dead letters, newest first, at most `DEAD_CAP`.
    dead: VecDeque<DeadLetter>,
    /// Status history per message id, with its expiry (Unix milliseconds).
    status: HashMap<String, (Vec<StatusEvent>, u64)>,
    /// Our message id per (sender, provider id), with its expiry (Unix milliseconds).
    provider: HashMap<(String, String), (String, u64)>,
    /// Claimed and not yet sent, retried or dead-lettered.
    in_flight: u64,
}

impl MemoryQueue {
    pub fn new() -> MemoryQueue {
        MemoryQueue::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // Each critical section is a few collection operations: a poisoned lock is consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The same queue, keeping histories within `limits`.
    pub(super) fn with_history_limits(mut self, limits: HistoryLimits) -> MemoryQueue {
        self.limits = limits;
        self
    }

    /// Appends `event` (shaped) to `history`, dropping the oldest beyond the cap.
    fn append(&self, history: &mut Vec<StatusEvent>, event: StatusEvent) {
        let event = match self.limits.shape(&event) {
            std::borrow::Cow::Borrowed(_) => event,
            std::borrow::Cow::Owned(shaped) => shaped,
        };
        history.push(event);
        let over = history.len().saturating_sub(self.limits.max_entries());
        history.drain(..over);
    }

    fn record_locked(&self, inner: &mut MemoryInner, id: &str, event: StatusEvent, ttl: Duration) {
        let expiry = now_ms() + ttl_ms(ttl);
        let entry = inner.status.entry(id.to_string()).or_default();
        self.append(&mut entry.0, event);
        entry.1 = expiry;
        if inner.status.len().is_multiple_of(SWEEP_AT) {
            let now = now_ms();
            inner.status.retain(|_, (_, exp)| *exp > now);
            inner.provider.retain(|_, (_, exp)| *exp > now);
        }
    }

    pub(super) fn push(&self, m: OutMessage, event: StatusEvent, ttl: Duration) {
        let mut inner = self.lock();
        self.record_locked(&mut inner, &m.id, event, ttl);
        inner.ready.push_back(m);
        drop(inner);
        self.ready_signal.notify_one();
    }

    pub(super) async fn claim(&self, count: usize, wait: Duration) -> Vec<Delivery> {
        let take = |q: &MemoryQueue| {
            let mut inner = q.lock();
            let n = count.min(inner.ready.len());
            let out: Vec<Delivery> = inner
                .ready
                .drain(..n)
                .map(|message| Delivery {
                    entry: String::new(),
                    message,
                })
                .collect();
            inner.in_flight += out.len() as u64;
            out
        };
        let out = take(self);
        if !out.is_empty() {
            return out;
        }
        let _ = tokio::time::timeout(wait, self.ready_signal.notified()).await;
        take(self)
    }

    fn done(inner: &mut MemoryInner) {
        inner.in_flight = inner.in_flight.saturating_sub(1);
    }

    pub(super) fn sent(&self, d: &Delivery, pid: Option<&str>, event: StatusEvent, ttl: Duration) {
        let mut inner = self.lock();
        Self::done(&mut inner);
        self.record_locked(&mut inner, &d.message.id, event, ttl);
        if let Some(pid) = pid {
            let expiry = now_ms() + ttl_ms(ttl);
            inner.provider.insert(
                (d.message.sender.clone(), pid.to_string()),
                (d.message.id.clone(), expiry),
            );
        }
    }

    pub(super) fn retry_at(&self, d: &Delivery, due_ms: u64, event: StatusEvent, ttl: Duration) {
        let mut inner = self.lock();
        Self::done(&mut inner);
        self.record_locked(&mut inner, &d.message.id, event, ttl);
        inner.delayed.push((due_ms, d.message.clone()));
    }

    pub(super) fn dead(&self, letter: DeadLetter, event: StatusEvent, ttl: Duration) {
        let mut inner = self.lock();
        Self::done(&mut inner);
        self.record_locked(&mut inner, &letter.message.id, event, ttl);
        inner.dead.push_front(letter);
        inner.dead.truncate(DEAD_CAP as usize);
    }

    pub(super) fn promote_due(&self) -> usize {
        let now = now_ms();
        let mut inner = self.lock();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut inner.delayed)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        inner.delayed = later;
        let n = due.len();
        inner.ready.extend(due.into_iter().map(|(_, m)| m));
        drop(inner);
        if n > 0 {
            self.ready_signal.notify_one();
        }
        n
    }

    pub(super) fn record(&self, id: &str, event: StatusEvent, ttl: Duration) {
        self.record_locked(&mut self.lock(), id, event, ttl);
    }

    pub(super) fn report(&self, id: &str, event: StatusEvent) -> bool {
        let now = now_ms();
        let mut inner = self.lock();
        match inner.status.get_mut(id) {
            Some((history, exp)) if *exp > now => {
                self.append(history, event);
                true
            }
            _ => false,
        }
    }

    /// Takes the dead letters `filter` matches out of the list; `requeue` puts them back in
    /// the queue with no attempt counted. `event` goes to each history first.
    pub(super) fn take_dead(
        &self,
        filter: &DeadFilter,
        event: StatusEvent,
        requeue: bool,
        ttl: Duration,
    ) -> Vec<String> {
        let mut inner = self.lock();
        let (taken, kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut inner.dead)
            .into_iter()
            .partition(|l| filter.matches(l));
        inner.dead = kept;
        let mut ids = Vec::with_capacity(taken.len());
        for letter in taken {
            self.record_locked(&mut inner, &letter.message.id, event.clone(), ttl);
            ids.push(letter.message.id.clone());
            if requeue {
                let mut m = letter.message;
                m.attempts = 0;
                inner.ready.push_back(m);
            }
        }
        drop(inner);
        if requeue && !ids.is_empty() {
            self.ready_signal.notify_one();
        }
        ids
    }

    pub(super) fn history(&self, id: &str) -> Vec<StatusEvent> {
        let now = now_ms();
        self.lock()
            .status
            .get(id)
            .filter(|(_, exp)| *exp > now)
            .map(|(v, _)| v.clone())
            .unwrap_or_default()
    }

    pub(super) fn resolve(&self, sender: &str, pid: &str) -> Option<String> {
        let now = now_ms();
        self.lock()
            .provider
            .get(&(sender.to_string(), pid.to_string()))
            .filter(|(_, exp)| *exp > now)
            .map(|(id, _)| id.clone())
    }

    pub(super) fn dead_letters(&self, n: usize) -> Vec<DeadLetter> {
        self.lock().dead.iter().take(n).cloned().collect()
    }

    pub(super) fn stats(&self) -> QueueStats {
        let inner = self.lock();
        QueueStats {
            ready: inner.ready.len() as u64,
            in_flight: inner.in_flight,
            delayed: inner.delayed.len() as u64,
            dead: inner.dead.len() as u64,
        }
    }
}
