//! The send loop: claims messages from the queue, paces them per sender, sends, and
//! acknowledges, retries (exponential backoff with jitter) or dead-letters each one.
//!
//! Every replica runs one; the queue's consumer group shares the work between them.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::health::Health;
use super::queue::{Delivery, Queue};
use super::senders::{SendError, Sender};
use super::{event, now_ms, OutboxError};

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// This replica's name in the consumer group (unique per process).
    pub consumer: String,
    /// Messages claimed at once.
    pub batch: usize,
    /// How long one claim waits for work.
    pub wait: Duration,
    /// A message claimed by a replica and not acknowledged for this long is taken over
    /// (its replica died). Longer than any send can take.
    pub claim_after: Duration,
    /// The first retry's delay; each next one doubles, up to `max_backoff`.
    pub base_backoff: Duration,
    /// The longest delay before a retry, before jitter.
    pub max_backoff: Duration,
    /// How long the status histories the worker adds to are kept.
    pub status_ttl: Duration,
    /// Where each send's result is recorded, per sender, for `/readyz`.
    pub health: Health,
}

/// The delay before attempt `attempts + 1`: `base * 2^(attempts-1)`, capped, then a random
/// part of up to half of it added (jitter spreads retries of a burst).
pub fn backoff(settings: &WorkerSettings, attempts: u32) -> Duration {
    let exp = settings
        .base_backoff
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let capped = exp.min(settings.max_backoff);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    let jitter = capped.mul_f64((h.finish() % 1000) as f64 / 2000.0);
    capped + jitter
}

/// Sends until `shutdown` turns true. Store failures are logged and retried after a pause.
pub async fn run_worker(
    queue: Queue,
    senders: Arc<HashMap<String, Sender>>,
    settings: WorkerSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!(consumer = %settings.consumer, senders = senders.len(), "outbox worker started");
    while !*shutdown.borrow() {
        if let Err(e) = queue.promote_due().await {
            tracing::warn!(cause = %e, "outbox: cannot move due retries");
        }
        let claimed = tokio::select! {
            r = queue.claim(&settings.consumer, settings.batch, settings.wait, settings.claim_after) => r,
            _ = shutdown.changed() => break,
        };
        match claimed {
            Ok(deliveries) => {
                for d in deliveries {
                    process(&queue, &senders, &settings, d).await;
                }
            }
            Err(e) => {
                tracing::warn!(cause = %e, "outbox: cannot read the queue; retrying in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
    }
    tracing::info!(consumer = %settings.consumer, "outbox worker stopped");
}

async fn process(
    queue: &Queue,
    senders: &HashMap<String, Sender>,
    s: &WorkerSettings,
    d: Delivery,
) {
    let id = d.message.id.clone();
    let Some(sender) = senders.get(&d.message.sender) else {
        let why = format!("no sender named `{}`", d.message.sender);
        tracing::error!(message = %id, "{why}");
        log_store(
            queue
                .dead(&d, &why, &event("dead", Some(why.clone())), s.status_ttl)
                .await,
        );
        return;
    };
    sender.pace().await;
    let attempts = d.message.attempts + 1;
    let outcome = sender.send(&d.message).await;
    let result = match &outcome {
        Ok(_) => Ok(()),
        Err(SendError::Permanent(why) | SendError::Retryable(why)) => Err(why.as_str()),
    };
    s.health.record(&sender.config.name, now_ms(), result);
    // From here on the message carries this attempt: a retry or a dead letter counts it.
    let mut d = d;
    d.message.attempts = attempts;
    let result = match outcome {
        Ok(provider_id) => {
            tracing::info!(message = %id, sender = %sender.config.name, attempts, "sms sent");
            crate::metrics::sent(&sender.config.name, &d.message.text);
            queue
                .sent(
                    &d,
                    provider_id.as_deref(),
                    &event("sent", provider_id.clone()),
                    s.status_ttl,
                )
                .await
        }
        Err(SendError::Permanent(why)) => {
            crate::metrics::send(&sender.config.name, "refused");
            tracing::warn!(message = %id, sender = %sender.config.name, cause = %why, "sms refused; dead-lettered");
            queue
                .dead(&d, &why, &event("dead", Some(why.clone())), s.status_ttl)
                .await
        }
        Err(SendError::Retryable(why)) if attempts >= sender.max_attempts() => {
            let why = format!("gave up after {attempts} attempts; {why}");
            crate::metrics::send(&sender.config.name, "gave_up");
            tracing::warn!(message = %id, sender = %sender.config.name, cause = %why, "sms dead-lettered");
            queue
                .dead(&d, &why, &event("dead", Some(why.clone())), s.status_ttl)
                .await
        }
        Err(SendError::Retryable(why)) => {
            let delay = backoff(s, attempts);
            crate::metrics::send(&sender.config.name, "retry");
            tracing::info!(message = %id, sender = %sender.config.name, attempts, cause = %why, retry_in_ms = delay.as_millis() as u64, "sms will be retried");
            let due = now_ms() + u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            queue
                .retry_at(&d, due, &event("retrying", Some(why)), s.status_ttl)
                .await
        }
    };
    log_store(result);
}

fn log_store(r: Result<(), OutboxError>) {
    if let Err(e) = r {
        // The message stays claimed and unacknowledged: it is taken over after claim_after.
        tracing::error!(cause = %e, "outbox: cannot record a send outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let s = WorkerSettings {
            consumer: "t".into(),
            batch: 1,
            wait: Duration::from_secs(1),
            claim_after: Duration::from_secs(60),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            status_ttl: Duration::from_secs(60),
            health: Health::default(),
        };
        for (attempts, base) in [(1, 1), (2, 2), (3, 4), (4, 8), (7, 60), (30, 60)] {
            let d = backoff(&s, attempts);
            let base = Duration::from_secs(base);
            assert!(
                d >= base && d <= base + base / 2,
                "attempt {attempts}: {d:?}"
            );
        }
    }
}
