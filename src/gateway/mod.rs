//! The gateway: one hop, end to end, without knowing HTTP or wire formats.
//!
//! The gateway is the imperative shell around the pure engine: it picks the tenant from
//! the service code or short code, reads the session (one round trip), decides what the
//! hop is, runs the engine, carries out its lookups, and writes the session back (one
//! round trip). Every failure ends in a polite screen; nothing here panics on input.
//!
//! Stateless between requests: all conversation state is in the [`Store`], so any replica
//! can serve any hop.
//!
//! - `ussd`: one USSD hop, cut into read, a pure `decide` (the retry rules), the engine
//!   step and one write plan.
//! - `sms`: one SMS, planned before it is written (for the synchronous and the queued
//!   dialects alike).
//! - `tenants`: [`Tenant`] and [`load_tenants`].
//! - `records`: the versioned records kept in the store, and engine state to and from them.

mod limits;
pub mod records;
mod sms;
mod tenants;
mod ussd;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, SessionSettings};
use crate::limits::Limiter;
use crate::menu::{self, Channel, LookupOutcome, State, Step};
use crate::message::dial_parts;
use crate::outbox::{OutMessage, Outbox, OutboxError};
use crate::session::{Store, StoreError};

pub use limits::SendError;
pub use tenants::{load_tenants, Tenant};

/// Shown when a dialled code belongs to no tenant.
pub const UNKNOWN_SERVICE: &str = "Ce code de service n'est pas disponible.";
/// Sent back when a text reaches a short code no tenant owns.
pub const UNKNOWN_SMS_CODE: &str = "Ce numéro ne répond pas aux SMS.";
/// Ends an SMS cut to its segment limit; the subscriber sends `SUITE` for the rest.
pub const SUITE_NOTE: &str = " … Envoyez SUITE";

/// Shown when a non-initial hop names a session the store does not know.
pub const EXPIRED: &str = "Votre session a expiré. Composez à nouveau le code du service.";

/// Most lookups one hop may make (a guard; menus chain two or three at most).
const MAX_LOOKUPS_PER_HOP: usize = 8;

/// How a hop went, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    End,
    /// A retried hop, answered from the stored reply.
    Replay,
    UnknownService,
    UnknownSession,
    Released,
    StoreDown,
    TimedOut,
    /// An SMS answered with the keyword list.
    Help,
    /// An SMS `SUITE` answered with the rest of a cut reply.
    Suite,
    /// A dial or path with more inputs than a hop may apply, refused politely.
    TooLong,
    /// A hop that lost every race to concurrent hops of its session.
    Contended,
    /// A caller over their rate (`crate::limits`): nothing run.
    Limited,
    /// An SMS to send refused by the tenant's destinations or daily cap.
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Continue => "continue",
            Outcome::End => "end",
            Outcome::Replay => "replay",
            Outcome::UnknownService => "unknown_service",
            Outcome::UnknownSession => "unknown_session",
            Outcome::Released => "released",
            Outcome::StoreDown => "store_down",
            Outcome::TimedOut => "timed_out",
            Outcome::Help => "help",
            Outcome::Suite => "suite",
            Outcome::TooLong => "too_long",
            Outcome::Contended => "contended",
            Outcome::Limited => "limited",
            Outcome::Refused => "refused",
        }
    }
}

/// Why an SMS of an asynchronous dialect was not served: the aggregator should retry it.
#[derive(Debug, thiserror::Error)]
pub enum NotServed {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The SMS ran out of its time budget, or the store failed while planning it.
    #[error("could not serve the message; {0}")]
    Outcome(&'static str),
}

/// Everything a hop needs, shared by all requests.
#[derive(Debug)]
pub struct Gateway {
    tenants: Vec<Tenant>,
    /// Service code parts (`144`, `144*5`) to tenant index.
    by_code: HashMap<String, usize>,
    /// Parts of the longest service code, so resolving a dial string stays linear.
    longest_code: usize,
    /// SMS short codes to tenant index.
    by_sms_code: HashMap<String, usize>,
    store: Store,
    session: SessionSettings,
    hop_timeout: Duration,
    /// Where SMS to send go; `None` when no sender is configured.
    outbox: Option<Outbox>,
    /// Unix seconds now: the system clock, or a test's.
    clock: Clock,
    /// Abuse limits, inbound and outbound (`limits.rs`).
    limiter: Limiter,
}

/// Where a gateway reads the time: the system clock, or a test's.
#[derive(Clone)]
pub struct Clock(pub Arc<dyn Fn() -> i64 + Send + Sync>);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl Gateway {
    pub fn new(tenants: Vec<Tenant>, config: &Config, store: Store) -> Gateway {
        let mut by_code = HashMap::new();
        let mut by_sms_code = HashMap::new();
        let mut longest_code = 1;
        for (i, t) in tenants.iter().enumerate() {
            for code in &t.config.sms_codes {
                by_sms_code.insert(code.clone(), i);
            }
            for code in &t.config.ussd_codes {
                if let Some(parts) = dial_parts(code) {
                    longest_code = longest_code.max(parts.len());
                    by_code.insert(parts.join("*"), i);
                }
            }
        }
        Gateway {
            tenants,
            by_code,
            longest_code,
            by_sms_code,
            store,
            session: config.session.clone(),
            hop_timeout: config.hop_timeout,
            outbox: None,
            clock: Clock(Arc::new(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            })),
            limiter: Limiter::off(),
        }
    }

    /// Unix seconds now, by this gateway's clock (webhook timestamps are judged by it).
    pub fn now(&self) -> i64 {
        (self.clock.0)()
    }

    /// Reads time from `clock` (Unix seconds) instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Gateway {
        self.clock = clock;
        self
    }

    /// The tenant's local time now, for opening hours; not worked out for a menu without any.
    fn local_now(&self, tenant: &Tenant) -> Option<crate::hours::LocalTime> {
        if tenant.menu.hours.is_empty() {
            return None;
        }
        crate::hours::local_time(&tenant.config.time_zone, (self.clock.0)()).ok()
    }

    /// Sends SMS through `outbox` (USSD follow-ups, replies of asynchronous dialects).
    pub fn with_outbox(mut self, outbox: Outbox) -> Gateway {
        self.outbox = Some(outbox);
        self
    }

    /// The outbound queue, when configured.
    pub fn outbox(&self) -> Option<&Outbox> {
        self.outbox.as_ref()
    }

    /// Queues an SMS. Returns its id.
    pub async fn send_sms(
        &self,
        tenant: &str,
        sender: &str,
        from: &str,
        to: &str,
        text: String,
        link_id: Option<String>,
    ) -> Result<String, SendError> {
        let message = OutMessage {
            id: crate::outbox::new_id(),
            sender: sender.to_string(),
            tenant: tenant.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            text,
            link_id,
            attempts: 0,
        };
        self.enqueue(&message).await?;
        Ok(message.id)
    }

    /// Puts a message on the outbound queue: the one place the gateway meets the queue and
    /// its errors, and the abuse limits' check of every SMS sent.
    async fn enqueue(&self, message: &OutMessage) -> Result<(), SendError> {
        let Some(outbox) = &self.outbox else {
            return Err(OutboxError::NotConfigured.into());
        };
        self.allow_sms(message).await?;
        Ok(outbox.accept(message).await?)
    }

    pub fn tenants(&self) -> &[Tenant] {
        &self.tenants
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The tenant of a dial string and the direct-dial inputs after its service code:
    /// `*144*3*1#` gives the tenant of `*144#` and `["3", "1"]` (the longest configured code
    /// wins, so `*144*5#` may belong to another tenant). Linear in the dial string: only
    /// prefixes as long as a configured code are tried.
    pub fn resolve(&self, dialled: &str) -> Option<(&Tenant, Vec<String>)> {
        let parts = dial_parts(dialled)?;
        (1..=parts.len().min(self.longest_code))
            .rev()
            .find_map(|n| {
                let i = *self.by_code.get(&parts[..n].join("*"))?;
                Some((
                    &self.tenants[i],
                    parts[n..].iter().map(|s| s.to_string()).collect(),
                ))
            })
    }

    /// Carries out the engine's lookups until it shows a screen.
    async fn run(
        &self,
        tenant: &Tenant,
        channel: Channel,
        state: &mut State,
        msisdn: &str,
        mut step: Step,
    ) -> (String, bool) {
        let mut lookups = 0;
        loop {
            match step {
                Step::Show { text, end } => return (text, end),
                Step::Lookup(effect) => {
                    lookups += 1;
                    let outcome = if lookups > MAX_LOOKUPS_PER_HOP {
                        LookupOutcome::Failed
                    } else {
                        self.lookup(tenant, &effect.source, &effect.key).await
                    };
                    step = menu::lookup_done(&tenant.menu, channel, state, msisdn, outcome);
                }
            }
        }
    }

    /// One lookup, bounded by half the hop's budget; a missing source or a slow one fails
    /// the lookup (the menu shows its failure screen), never the hop.
    async fn lookup(&self, tenant: &Tenant, source: &str, key: &str) -> LookupOutcome {
        let Some(src) = tenant.sources.get(source) else {
            tracing::error!(source, "lookup on an unconfigured data source");
            return LookupOutcome::Failed;
        };
        let started = std::time::Instant::now();
        let outcome = match tokio::time::timeout(self.hop_timeout / 2, src.lookup(key)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::warn!(source, "data source too slow");
                LookupOutcome::Failed
            }
        };
        let label = match outcome {
            LookupOutcome::Found(_) => "found",
            LookupOutcome::Missing => "missing",
            LookupOutcome::Failed => "failed",
        };
        crate::metrics::lookup(&tenant.config.id, source, label, started.elapsed());
        outcome
    }

    /// Checks the session store answers (for `/readyz`).
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}
