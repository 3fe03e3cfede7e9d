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
//! - `tenants`: [`Tenant`], [`load_tenants`], and [`Tenants`], the version of them a hop
//!   reads (one lock-free load) and a reload swaps.
//! - `reload`: [`ReloadStatus`], the configuration version and the last reload's result.
//! - `records`: the versioned records kept in the store, and engine state to and from them.

mod limits;
pub mod records;
mod reload;
mod sms;
mod tenants;
mod ussd;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tracing::Instrument;

use crate::config::{Config, SessionSettings};
use crate::limits::Limiter;
use crate::menu::{self, Channel, Effect, LookupOutcome, State, Step};
use crate::message::dial_parts;
use crate::outbox::{OutMessage, Outbox, OutboxError};
use crate::session::{Store, StoreError};

pub use limits::SendError;
pub use reload::{ReloadResult, ReloadStatus};
pub use sms::sms_span;
pub use tenants::{load_tenants, Tenant, TenantRef, Tenants, TenantsHandle};
pub use ussd::ussd_span;

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

/// Most late lookups (`late = "sms"`) running at once in this process. Each holds a
/// connection to a slow source and a little memory until its source's own time limit;
/// past the cap a slow lookup fails as any other would (the screen's `failed`), and one
/// WARN says so.
pub const MAX_LATE_LOOKUPS: usize = 1024;

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
    /// A `late = "sms"` lookup slower than the hop allows: the session ended with
    /// `sms_later`, and the answer follows by SMS ([`Gateway::finish_late`]).
    Late,
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
            Outcome::Late => "late",
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

/// A lookup still running when its hop had to answer (a `late = "sms"` screen): handed to
/// whoever can run it past the hop (the server spawns [`Gateway::finish_late`]), only by
/// the copy of the hop whose commit won, so the answer is sent once.
pub struct LateLookup {
    /// The tenant's id (a menu swapped meanwhile is read by screen names).
    tenant: String,
    /// The session as it waited on the lookup, by screen names.
    state: records::StateRecord,
    msisdn: String,
    /// The lookup itself, bounded by the source's own time limit.
    lookup: Pin<Box<dyn Future<Output = LookupOutcome> + Send>>,
    /// Its place among the [`MAX_LATE_LOOKUPS`], given back when it is dropped.
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl std::fmt::Debug for LateLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateLookup")
            .field("tenant", &self.tenant)
            .field("screen", &self.state.screen)
            .finish_non_exhaustive()
    }
}

/// What a lookup came to within the hop's patience.
enum Looked {
    Done(LookupOutcome),
    /// Too slow, on a `late = "sms"` screen: the lookup, still running.
    Late(Pin<Box<dyn Future<Output = LookupOutcome> + Send>>),
}

/// Everything a hop needs, shared by all requests.
#[derive(Debug)]
pub struct Gateway {
    /// The running version of the tenants (swapped whole by a reload).
    tenants: TenantsHandle,
    /// The configuration's version and the last reload's result (`/readyz`, metrics).
    reload: ReloadStatus,
    store: Store,
    session: SessionSettings,
    hop_timeout: Duration,
    /// Where SMS to send go; `None` when no sender is configured.
    outbox: Option<Outbox>,
    /// Unix seconds now: the system clock, or a test's.
    clock: Clock,
    /// Abuse limits, inbound and outbound (`limits.rs`).
    limiter: Limiter,
    /// Places for late lookups ([`MAX_LATE_LOOKUPS`]).
    late_slots: Arc<tokio::sync::Semaphore>,
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
        Gateway {
            tenants: Arc::new(ArcSwap::from_pointee(Tenants::new(tenants))),
            reload: ReloadStatus::default(),
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
            late_slots: Arc::new(tokio::sync::Semaphore::new(MAX_LATE_LOOKUPS)),
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

    /// The running version of the tenants (a reload may swap another in later).
    pub fn tenants(&self) -> Arc<Tenants> {
        self.tenants.load_full()
    }

    /// Where the tenants live, for the reloader to swap a new version in.
    pub fn tenants_handle(&self) -> TenantsHandle {
        self.tenants.clone()
    }

    /// The configuration's version and the last reload's result.
    pub fn reload_status(&self) -> &ReloadStatus {
        &self.reload
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The tenant of a dial string and the direct-dial inputs after its service code:
    /// `*144*3*1#` gives the tenant of `*144#` and `["3", "1"]` (the longest configured code
    /// wins, so `*144*5#` may belong to another tenant). Linear in the dial string: only
    /// prefixes as long as a configured code are tried. One lock-free load of the running
    /// version, which the hop then keeps to its end.
    pub fn resolve(&self, dialled: &str) -> Option<(TenantRef, Vec<String>)> {
        let parts = dial_parts(dialled)?;
        let tenants = self.tenants.load_full();
        let (i, n) = (1..=parts.len().min(tenants.longest_code))
            .rev()
            .find_map(|n| Some((*tenants.by_code.get(&parts[..n].join("*"))?, n)))?;
        let rest = parts[n..].iter().map(|s| s.to_string()).collect();
        Some((TenantRef::new(tenants, i), rest))
    }

    /// Carries out the engine's lookups until it shows a screen, each lookup bounded by
    /// half of the global `hop_timeout_ms`.
    async fn run(
        &self,
        tenant: &Tenant,
        channel: Channel,
        state: &mut State,
        msisdn: &str,
        step: Step,
    ) -> (String, bool) {
        let patience = self.hop_timeout / 2;
        let (text, end, _) = self
            .run_within(tenant, channel, state, msisdn, step, patience)
            .await;
        (text, end)
    }

    /// [`Gateway::run`] with each lookup bounded by `patience` (half of the hop's budget,
    /// which is the channel's). On USSD, a `late = "sms"` lookup slower than that ends
    /// the session with `sms_later` and comes back still running, for the caller to hand
    /// on once its commit won.
    async fn run_within(
        &self,
        tenant: &Tenant,
        channel: Channel,
        state: &mut State,
        msisdn: &str,
        mut step: Step,
        patience: Duration,
    ) -> (String, bool, Option<LateLookup>) {
        let mut lookups = 0;
        loop {
            match step {
                Step::Show { text, end } => return (text, end, None),
                Step::Lookup(effect) => {
                    lookups += 1;
                    let late = effect.late_sms && channel == Channel::Ussd;
                    let outcome = if lookups > MAX_LOOKUPS_PER_HOP {
                        LookupOutcome::Failed
                    } else {
                        match self.lookup(tenant, &effect, patience, late).await {
                            Looked::Done(outcome) => outcome,
                            Looked::Late(lookup) => {
                                let Ok(slot) = self.late_slots.clone().try_acquire_owned() else {
                                    tracing::warn!(source = %effect.source, cap = MAX_LATE_LOOKUPS, "too many late lookups running: this one fails");
                                    step = menu::lookup_done(
                                        &tenant.menu,
                                        channel,
                                        state,
                                        msisdn,
                                        LookupOutcome::Failed,
                                    );
                                    continue;
                                };
                                tracing::info!(source = %effect.source, "data source too slow for the hop; the answer will follow by SMS");
                                let late = LateLookup {
                                    tenant: tenant.config.id.clone(),
                                    state: records::StateRecord::from_state(state, &tenant.menu),
                                    msisdn: msisdn.to_string(),
                                    lookup,
                                    _slot: slot,
                                };
                                let text = tenant.menu.texts.sms_later.clone();
                                return (text, true, Some(late));
                            }
                        }
                    };
                    step = menu::lookup_done(&tenant.menu, channel, state, msisdn, outcome);
                }
            }
        }
    }

    /// Finishes a late lookup, past its hop: awaits it (bounded by the source's own time
    /// limit), renders the answer as an SMS through the engine ([`menu::late_sms`]) and
    /// queues it to the caller through [`Gateway::enqueue`] (the tenant's destinations and
    /// daily cap apply). A failed lookup sends nothing.
    pub async fn finish_late(&self, late: LateLookup) {
        let outcome = late.lookup.await;
        // The tenants now in force: a reload meanwhile is read by screen names.
        let tenants = self.tenants();
        let Some(tenant) = tenants.by_id(&late.tenant) else {
            return;
        };
        let state = late.state.to_state(&tenant.menu);
        let span = tracing::info_span!(
            "late",
            tenant = %late.tenant,
            msisdn = %crate::message::mask_msisdn(&late.msisdn),
            screen = %late.state.screen,
        );
        let send = async {
            let Some(text) = menu::late_sms(&tenant.menu, &state, &late.msisdn, outcome) else {
                tracing::warn!("late lookup failed; no answer by SMS");
                return;
            };
            let (Some(sender), Some(from)) =
                (&tenant.config.sms_sender, tenant.config.sms_codes.first())
            else {
                return; // the loader refuses such a menu
            };
            match self
                .send_sms(&tenant.config.id, sender, from, &late.msisdn, text, None)
                .await
            {
                Ok(_) => tracing::info!("late answer queued by SMS"),
                Err(e) => tracing::warn!(cause = %e, "could not queue a late answer by SMS"),
            }
        };
        send.instrument(span).await;
    }

    /// One lookup, bounded by `patience` (half the hop's budget); a missing source or a
    /// slow one fails the lookup (the menu shows its failure screen), never the hop. When
    /// `late`, a slow lookup comes back still running instead.
    async fn lookup(
        &self,
        tenant: &Tenant,
        effect: &Effect,
        patience: Duration,
        late: bool,
    ) -> Looked {
        let source = effect.source.as_str();
        let Some(src) = tenant.sources.get(source) else {
            tracing::error!(source, "lookup on an unconfigured data source");
            return Looked::Done(LookupOutcome::Failed);
        };
        let started = std::time::Instant::now();
        let looked = if late {
            let (src, key) = (src.clone(), effect.key.clone());
            let mut running: Pin<Box<dyn Future<Output = LookupOutcome> + Send>> =
                Box::pin(async move { src.lookup(&key).await });
            match tokio::time::timeout(patience, &mut running).await {
                Ok(outcome) => Looked::Done(outcome),
                Err(_) => Looked::Late(running),
            }
        } else {
            match tokio::time::timeout(patience, src.lookup(&effect.key)).await {
                Ok(outcome) => Looked::Done(outcome),
                Err(_) => {
                    tracing::warn!(source, "data source too slow");
                    Looked::Done(LookupOutcome::Failed)
                }
            }
        };
        let label = match &looked {
            Looked::Done(LookupOutcome::Found(_)) => "found",
            Looked::Done(LookupOutcome::Missing) => "missing",
            Looked::Done(LookupOutcome::Failed) => "failed",
            Looked::Late(_) => "late",
        };
        crate::metrics::lookup(&tenant.config.id, source, label, started.elapsed());
        looked
    }

    /// Checks the session store answers (for `/readyz`).
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}
