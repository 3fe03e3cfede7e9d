//! The gateway: one hop, end to end, without knowing HTTP or wire formats.
//!
//! `ussd` is the imperative shell around the pure engine: it picks the tenant from the
//! service code, reads the session (one round trip), replays a retried hop, runs the
//! engine, carries out its lookups, and writes the session back (one round trip). Every
//! failure ends in a polite screen; nothing here panics on input.
//!
//! Stateless between requests: all conversation state is in the [`Store`], so any replica
//! can serve any hop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, SessionSettings, SourceConfig};
use crate::data::Source;
use crate::diagnostic::{Diagnostic, Severity};
use crate::menu::{self, Channel, LoadOptions, LookupOutcome, Menu, State, Step};
use crate::message::{dial_parts, Hop, Inbound, Reply, SmsInbound, SmsReply};
use crate::outbox::{OutMessage, Outbox};
use crate::session::{
    keys, ResumeRecord, SavedReply, SessionRecord, SmsRecord, StateRecord, Store, Write,
};
use crate::text::{fold_accents, shape_sms, transliterate};

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

/// One organisation served by the gateway.
#[derive(Debug)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub menu: Menu,
    pub sources: HashMap<String, Source>,
    pub ussd_codes: Vec<String>,
    pub sms_codes: Vec<String>,
    pub sms_max_segments: usize,
    /// The sender of the SMS this tenant sends itself (USSD follow-ups).
    pub sms_sender: Option<String>,
    /// IANA time zone, for opening hours.
    pub time_zone: String,
}

/// An SMS worked out: the reply, and the writes that record it (the dialogue, the
/// webhook's id), carried out by the caller in the order it needs.
struct SmsPlan {
    reply: SmsReply,
    outcome: Outcome,
    writes: Vec<Write>,
}

impl SmsPlan {
    /// Nothing to write: a retry, a failure, or an answer that records nothing.
    fn only(reply: SmsReply, outcome: Outcome) -> SmsPlan {
        SmsPlan {
            reply,
            outcome,
            writes: Vec::new(),
        }
    }

    fn unknown_code() -> SmsPlan {
        SmsPlan::only(
            SmsReply::new(transliterate(UNKNOWN_SMS_CODE).into_owned()),
            Outcome::UnknownService,
        )
    }
}

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
        }
    }
}

/// Everything a hop needs, shared by all requests.
#[derive(Debug)]
pub struct Gateway {
    tenants: Vec<Tenant>,
    /// Service code parts (`144`, `144*5`) to tenant index.
    by_code: HashMap<String, usize>,
    /// SMS short codes to tenant index.
    by_sms_code: HashMap<String, usize>,
    store: Store,
    session: SessionSettings,
    hop_timeout: Duration,
    /// Where SMS to send go; `None` when no sender is configured.
    outbox: Option<Outbox>,
    /// Unix seconds now: the system clock, or a test's.
    clock: Clock,
}

/// Where a gateway reads the time: the system clock, or a test's.
#[derive(Clone)]
pub struct Clock(pub Arc<dyn Fn() -> i64 + Send + Sync>);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Reads every tenant's menu and data files. Returns the tenants when nothing is wrong,
/// and every problem found in any case.
pub fn load_tenants(config: &Config) -> (Option<Vec<Tenant>>, Vec<Diagnostic>) {
    let mut problems = Vec::new();
    let mut tenants = Vec::new();
    for t in &config.tenants {
        let mut sources = HashMap::new();
        for s in &t.sources {
            match Source::from_config(&t.id, s) {
                Ok(source) => {
                    sources.insert(s.name().to_string(), source);
                }
                Err(e) => problems.push(Diagnostic {
                    severity: Severity::Error,
                    // A file's problem is in that file; a network source's in the config.
                    file: match s {
                        SourceConfig::File { path, .. } => path.display().to_string(),
                        _ => config.file.clone(),
                    },
                    place: None,
                    message: format!("data source `{}` of tenant {}: {e}", s.name(), t.id),
                }),
            }
        }
        let options = LoadOptions {
            policy: t.ussd_text,
            sms_policy: t.sms_text,
            limits: t.ussd_limits,
            sources: t
                .sources
                .iter()
                .map(|s| {
                    let fields = sources
                        .get(s.name())
                        .map(Source::fields)
                        .unwrap_or_default();
                    (s.name().to_string(), fields)
                })
                .collect(),
        };
        let file = t.menu.display().to_string();
        let (menu, diags) = match std::fs::read_to_string(&t.menu) {
            Ok(text) => menu::load(&file, &text, &options),
            Err(e) => (
                None,
                vec![Diagnostic {
                    severity: Severity::Error,
                    file: file.clone(),
                    place: None,
                    message: format!("cannot read the menu of tenant {}: {e}", t.id),
                }],
            ),
        };
        problems.extend(diags);
        if let Some(menu) = &menu {
            let sends = menu
                .screens
                .iter()
                .find(|s| matches!(s.kind, menu::Kind::Sms { .. }));
            if let (Some(screen), None) = (sends, &t.sms_sender) {
                problems.push(Diagnostic {
                    severity: Severity::Error,
                    file: file.clone(),
                    place: Some(screen.id.clone()),
                    message: format!(
                        "this screen sends an SMS, but tenant {} has no `sms_sender`",
                        t.id
                    ),
                });
            }
            if sends.is_some() && t.sms_codes.is_empty() {
                problems.push(Diagnostic {
                    severity: Severity::Error,
                    file: file.clone(),
                    place: sends.map(|s| s.id.clone()),
                    message: format!(
                        "this screen sends an SMS, but tenant {} has no `sms_codes` to send it from",
                        t.id
                    ),
                });
            }
        }
        if let Some(menu) = menu {
            tenants.push(Tenant {
                id: t.id.clone(),
                name: t.name.clone(),
                menu,
                sources,
                ussd_codes: t.ussd_codes.clone(),
                sms_codes: t.sms_codes.clone(),
                sms_max_segments: t.sms_max_segments,
                sms_sender: t.sms_sender.clone(),
                time_zone: t.time_zone.clone(),
            });
        }
    }
    let ok = !problems.iter().any(|d| d.severity == Severity::Error);
    (ok.then_some(tenants), problems)
}

impl Gateway {
    pub fn new(tenants: Vec<Tenant>, config: &Config, store: Store) -> Gateway {
        let mut by_code = HashMap::new();
        let mut by_sms_code = HashMap::new();
        for (i, t) in tenants.iter().enumerate() {
            for code in &t.sms_codes {
                by_sms_code.insert(code.clone(), i);
            }
            for code in &t.ussd_codes {
                if let Some(parts) = dial_parts(code) {
                    by_code.insert(parts.join("*"), i);
                }
            }
        }
        Gateway {
            tenants,
            by_code,
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
        }
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
        crate::hours::local_time(&tenant.time_zone, (self.clock.0)()).ok()
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
    ) -> Result<String, crate::outbox::OutboxError> {
        let Some(outbox) = &self.outbox else {
            return Err(crate::outbox::OutboxError::NotConfigured);
        };
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
        outbox.accept(&message).await?;
        Ok(message.id)
    }

    /// Serves an SMS of an asynchronous dialect: the reply is queued on `sender`, and only
    /// then are the dialogue and the webhook's id recorded, so a retry after a failure is
    /// served afresh, and a retry after success is recognised and queues nothing. `Err`
    /// when nothing could be queued: the aggregator should retry.
    pub async fn sms_async(
        &self,
        dialect: &str,
        inbound: &SmsInbound,
        sender: &str,
        link_id: Option<String>,
    ) -> Result<(SmsReply, Outcome), crate::session::StoreError> {
        let unavailable = |outcome: Outcome| {
            crate::session::StoreError::Unavailable(format!(
                "could not serve the message ({})",
                outcome.as_str()
            ))
        };
        let (tenant_id, plan) = match self.resolve_sms(&inbound.to) {
            Some(tenant) => {
                let plan =
                    tokio::time::timeout(self.hop_timeout, self.sms_plan(tenant, dialect, inbound))
                        .await
                        .map_err(|_| unavailable(Outcome::TimedOut))?;
                (tenant.id.as_str(), plan)
            }
            None => ("-", SmsPlan::unknown_code()),
        };
        match plan.outcome {
            Outcome::Replay => return Ok((plan.reply, plan.outcome)),
            Outcome::StoreDown | Outcome::TimedOut => return Err(unavailable(plan.outcome)),
            _ => {}
        }
        self.send_sms(
            tenant_id,
            sender,
            &inbound.to,
            &inbound.from,
            plan.reply.text.clone(),
            link_id,
        )
        .await
        .map_err(|e| crate::session::StoreError::Unavailable(e.to_string()))?;
        if let Err(e) = self.store.write(&plan.writes).await {
            // The reply is on its way; only the dialogue's next step is at risk.
            tracing::error!(tenant = %tenant_id, cause = %e, "reply queued, but the dialogue was not saved");
        }
        Ok((plan.reply, plan.outcome))
    }

    pub fn tenants(&self) -> &[Tenant] {
        &self.tenants
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The tenant of a dial string and the direct-dial inputs after its service code:
    /// `*144*3*1#` gives the tenant of `*144#` and `["3", "1"]` (the longest configured code
    /// wins, so `*144*5#` may belong to another tenant).
    pub fn resolve(&self, dialled: &str) -> Option<(&Tenant, Vec<String>)> {
        let parts = dial_parts(dialled)?;
        (1..=parts.len()).rev().find_map(|n| {
            let i = *self.by_code.get(&parts[..n].join("*"))?;
            Some((
                &self.tenants[i],
                parts[n..].iter().map(|s| s.to_string()).collect(),
            ))
        })
    }

    /// Serves one USSD hop. Always answers; the outcome is for logs.
    pub async fn ussd(&self, dialect: &str, inbound: &Inbound) -> (Reply, Outcome) {
        let Some((tenant, prefill)) = self.resolve(&inbound.service_code) else {
            return (
                Reply::end(transliterate(UNKNOWN_SERVICE)),
                Outcome::UnknownService,
            );
        };
        match tokio::time::timeout(
            self.hop_timeout,
            self.hop(tenant, prefill, dialect, inbound),
        )
        .await
        {
            Ok(done) => done,
            Err(_) => {
                tracing::warn!(tenant = %tenant.id, "hop exceeded its time budget");
                (
                    Reply::end(tenant.menu.texts.unavailable.clone()),
                    Outcome::TimedOut,
                )
            }
        }
    }

    async fn hop(
        &self,
        tenant: &Tenant,
        prefill: Vec<String>,
        dialect: &str,
        inbound: &Inbound,
    ) -> (Reply, Outcome) {
        let menu = &tenant.menu;
        let prefix = &self.session.key_prefix;
        let session_key = keys::session(prefix, &tenant.id, dialect, &inbound.session_id);
        let resume_key = keys::resume(prefix, &tenant.id, &inbound.msisdn);
        let resuming = !self.session.resume_window.is_zero();

        // One read: the session, and on a possible start the subscriber's resumable state.
        let maybe_start = matches!(inbound.hop, Hop::Start | Hop::Path(_));
        let read: Vec<&str> = if maybe_start && resuming {
            vec![&session_key, &resume_key]
        } else {
            vec![&session_key]
        };
        let values = match self.store.get(&read).await {
            Ok(v) => v,
            Err(e) => return self.store_down(tenant, e),
        };
        let mut values = values.into_iter();
        let record = values
            .next()
            .flatten()
            .and_then(|b| SessionRecord::from_bytes(&b));
        let resume = values
            .next()
            .flatten()
            .and_then(|b| ResumeRecord::from_bytes(&b));

        let replay = |r: &SessionRecord| {
            (
                Reply {
                    text: r.reply.text.clone(),
                    end: r.reply.end,
                },
                Outcome::Replay,
            )
        };

        // Decide what to run: a new session (with prefilled inputs) or inputs on a stored one.
        let (mut state, inputs, seq, consumed) = match (&inbound.hop, record) {
            (Hop::Release | Hop::Timeout, _) => {
                let mut writes = vec![Write::Delete { key: session_key }];
                if inbound.hop == Hop::Release {
                    writes.push(Write::Delete { key: resume_key });
                }
                if let Err(e) = self.store.write(&writes).await {
                    tracing::warn!(cause = %e, "could not delete a released session");
                }
                return (Reply::end(menu.texts.goodbye.clone()), Outcome::Released);
            }
            // A retried dial.
            (Hop::Start, Some(r)) => return replay(&r),
            (Hop::Start, None) => (None, prefill, None, 0),
            (Hop::Path(path), record) => {
                let parts: Vec<String> = if path.is_empty() {
                    Vec::new()
                } else {
                    path.split('*').map(|p| p.trim().to_string()).collect()
                };
                let count = u32::try_from(parts.len()).unwrap_or(u32::MAX);
                match record {
                    // Nothing new since the last hop: a retry.
                    Some(r) if count <= r.consumed || r.state.is_none() => return replay(&r),
                    Some(r) => {
                        let state = r.state.as_ref().map(|s| s.to_state(menu));
                        let new = parts[r.consumed as usize..].to_vec();
                        (state, new, None, count)
                    }
                    // A first hop, a direct dial sent as text, or a session this store lost
                    // (restart of an in-memory gateway): replay the whole path from home.
                    None => {
                        let mut all = prefill;
                        all.extend(parts);
                        (None, all, None, count)
                    }
                }
            }
            (Hop::Answer { .. }, None) => {
                return (Reply::end(transliterate(EXPIRED)), Outcome::UnknownSession)
            }
            (Hop::Answer { text, seq }, Some(r)) => {
                let stale = matches!((seq, r.seq), (Some(new), Some(old)) if *new <= old);
                if stale || r.state.is_none() {
                    return replay(&r);
                }
                let state = r.state.as_ref().map(|s| s.to_state(menu));
                (state, vec![text.clone()], *seq, r.consumed)
            }
        };

        // Run the engine, in the tenant's local time.
        let msisdn = inbound.msisdn.as_str();
        let now = self.local_now(tenant);
        if let Some(s) = state.as_mut() {
            s.now = now;
        }
        let step = match state.as_mut() {
            Some(state) => {
                let mut step = None;
                for (i, input) in inputs.iter().enumerate() {
                    if i + 1 < inputs.len() {
                        state.pending.push_back(input.clone());
                    } else {
                        step = Some(menu::input(menu, Channel::Ussd, state, msisdn, input));
                    }
                }
                // No new input (cannot happen past the replay checks): show the screen again.
                step.unwrap_or_else(|| menu::input(menu, Channel::Ussd, state, msisdn, ""))
            }
            None => {
                let offer = resume
                    .filter(|r| r.session != inbound.session_id)
                    .map(|r| r.state.to_state(menu));
                let (s, step) = menu::start(menu, Channel::Ussd, msisdn, now, inputs, offer);
                state = Some(s);
                step
            }
        };
        let Some(mut state) = state else {
            unreachable!("state is set on both branches above")
        };
        let (text, end) = self
            .run(tenant, Channel::Ussd, &mut state, msisdn, step)
            .await;
        let mut reply = Reply { text, end };
        // SMS the menu asked to send to the caller (a follow-up of this screen).
        for text in std::mem::take(&mut state.outgoing) {
            let (Some(sender), Some(from)) = (&tenant.sms_sender, tenant.sms_codes.first()) else {
                continue;
            };
            if let Err(e) = self
                .send_sms(&tenant.id, sender, from, msisdn, text, None)
                .await
            {
                tracing::error!(tenant = %tenant.id, cause = %e, "could not queue a follow-up SMS");
                reply = Reply::end(menu.texts.unavailable.clone());
            }
        }

        // One write: the session (or its final reply), and the resumable state.
        let saved = SavedReply {
            text: reply.text.clone(),
            end: reply.end,
        };
        let mut writes = Vec::with_capacity(2);
        if reply.end {
            let record = SessionRecord {
                v: crate::session::RECORD_VERSION,
                state: None,
                seq,
                consumed,
                reply: saved,
            };
            writes.push(Write::Set {
                key: session_key,
                value: record.to_bytes(),
                ttl: self.session.ended_ttl,
            });
            if resuming {
                writes.push(Write::Delete { key: resume_key });
            }
        } else {
            let record = SessionRecord {
                v: crate::session::RECORD_VERSION,
                state: Some(StateRecord::from_state(&state, menu)),
                seq,
                consumed,
                reply: saved,
            };
            writes.push(Write::Set {
                key: session_key,
                value: record.to_bytes(),
                ttl: self.session.ttl,
            });
            if resuming {
                writes.push(self.resume_write(resume_key, &state, menu, &inbound.session_id));
            }
        }
        if let Err(e) = self.store.write(&writes).await {
            return self.store_down(tenant, e);
        }
        let outcome = if reply.end {
            Outcome::End
        } else {
            Outcome::Continue
        };
        (reply, outcome)
    }

    /// What to remember for "resume": the state under the resume question if it shows,
    /// else the current state when it is past home; else nothing.
    fn resume_write(&self, key: String, state: &State, menu: &Menu, session: &str) -> Write {
        let target = match &state.resume {
            Some(previous) => Some(previous.as_ref()),
            None => state.worth_resuming(menu).then_some(state),
        };
        match target {
            Some(s) => Write::Set {
                key,
                value: ResumeRecord {
                    v: crate::session::RECORD_VERSION,
                    session: session.to_string(),
                    state: StateRecord::from_state(s, menu),
                }
                .to_bytes(),
                ttl: self.session.resume_window,
            },
            None => Write::Delete { key },
        }
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

    /// The tenant owning an SMS short code (`+` and spaces ignored).
    pub fn resolve_sms(&self, to: &str) -> Option<&Tenant> {
        let to = to.trim();
        self.by_sms_code
            .get(to)
            .or_else(|| self.by_sms_code.get(to.trim_start_matches('+')))
            .map(|i| &self.tenants[*i])
    }

    /// Serves one SMS. Always answers with a non-empty text; the outcome is for logs.
    pub async fn sms(&self, dialect: &str, inbound: &SmsInbound) -> (SmsReply, Outcome) {
        let Some(tenant) = self.resolve_sms(&inbound.to) else {
            return (
                SmsReply::new(transliterate(UNKNOWN_SMS_CODE).into_owned()),
                Outcome::UnknownService,
            );
        };
        let hop = async {
            let plan = self.sms_plan(tenant, dialect, inbound).await;
            if let Err(e) = self.store.write(&plan.writes).await {
                tracing::error!(tenant = %tenant.id, cause = %e, "session store failed");
                let text = tenant.menu.sms_texts.unavailable.clone();
                return (SmsReply::new(text), Outcome::StoreDown);
            }
            (plan.reply, plan.outcome)
        };
        match tokio::time::timeout(self.hop_timeout, hop).await {
            Ok(done) => done,
            Err(_) => {
                tracing::warn!(tenant = %tenant.id, "SMS exceeded its time budget");
                let text = tenant.menu.sms_texts.unavailable.clone();
                (SmsReply::new(text), Outcome::TimedOut)
            }
        }
    }

    /// Works out one SMS's reply and the writes that record it, without writing.
    async fn sms_plan(&self, tenant: &Tenant, dialect: &str, inbound: &SmsInbound) -> SmsPlan {
        let menu = &tenant.menu;
        let prefix = &self.session.key_prefix;
        let code = inbound.to.trim().trim_start_matches('+');
        let msisdn = inbound.from.as_str();
        let session_key = keys::sms(prefix, &tenant.id, code, msisdn);
        let message_key = inbound
            .id
            .as_deref()
            .map(|id| keys::message(prefix, &tenant.id, dialect, id));

        // One read: the dialogue, and the reply already given to this message id.
        let mut read = vec![session_key.as_str()];
        read.extend(message_key.as_deref());
        let values = match self.store.get(&read).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(tenant = %tenant.id, cause = %e, "session store failed");
                return SmsPlan::only(
                    SmsReply::new(menu.sms_texts.unavailable.clone()),
                    Outcome::StoreDown,
                );
            }
        };
        let mut values = values.into_iter();
        let record = values
            .next()
            .flatten()
            .and_then(|b| SmsRecord::from_bytes(&b));
        if let Some(Some(previous)) = values.next() {
            // A retried webhook: the same reply, nothing processed twice.
            let text = String::from_utf8_lossy(&previous).into_owned();
            return SmsPlan::only(SmsReply::new(text), Outcome::Replay);
        }

        let text = inbound.text.trim();
        let folded = fold_accents(text).to_uppercase();
        let first_word = folded.split_whitespace().next().unwrap_or("");
        let now = self.local_now(tenant);
        let state = record
            .as_ref()
            .and_then(|r| r.state.as_ref())
            .map(|s| s.to_state(menu))
            .map(|mut s| {
                s.now = now;
                s
            });
        let rest = record.as_ref().and_then(|r| r.rest.clone());

        // Decide what this text is: a keyword (always starts over), SUITE, a call for help,
        // an answer to the waiting screen, or a text to a fixed short code.
        let (shown, end, next_state, outcome) = if let Some(k) = menu.sms.keyword(text) {
            let (mut s, step) = menu::start_at(menu, Channel::Sms, msisdn, now, k.screen);
            let (t, end) = self.run(tenant, Channel::Sms, &mut s, msisdn, step).await;
            (
                t,
                end,
                Some(s),
                if end { Outcome::End } else { Outcome::Continue },
            )
        } else if first_word == "SUITE" && rest.is_some() {
            let end = state.is_none();
            (rest.unwrap_or_default(), end, state, Outcome::Suite)
        } else if folded.is_empty() || matches!(first_word, "AIDE" | "MENU" | "HELP" | "?") {
            (menu.sms.help.clone(), true, None, Outcome::Help)
        } else if let Some(mut s) = state {
            let step = menu::input(menu, Channel::Sms, &mut s, msisdn, text);
            let (t, end) = self.run(tenant, Channel::Sms, &mut s, msisdn, step).await;
            (
                t,
                end,
                Some(s),
                if end { Outcome::End } else { Outcome::Continue },
            )
        } else if let Some(screen) = menu.sms.fixed.get(code) {
            let (mut s, step) = menu::start_at(menu, Channel::Sms, msisdn, now, *screen);
            let (t, end) = self.run(tenant, Channel::Sms, &mut s, msisdn, step).await;
            (
                t,
                end,
                Some(s),
                if end { Outcome::End } else { Outcome::Continue },
            )
        } else {
            (menu.sms.help.clone(), true, None, Outcome::Help)
        };

        let suffix = menu.sms_policy.apply(SUITE_NOTE);
        let shaped = shape_sms(&shown, tenant.sms_max_segments, &suffix);
        let keep_state = next_state.filter(|_| !end);

        // One write: the dialogue (or its deletion) and the reply to this message id.
        let mut writes = Vec::with_capacity(2);
        if keep_state.is_some() || shaped.rest.is_some() {
            let record = SmsRecord {
                v: crate::session::RECORD_VERSION,
                state: keep_state
                    .as_ref()
                    .map(|s| StateRecord::from_state(s, menu)),
                rest: shaped.rest.clone(),
            };
            writes.push(Write::Set {
                key: session_key,
                value: record.to_bytes(),
                ttl: self.session.sms_ttl,
            });
        } else if record.is_some() {
            writes.push(Write::Delete { key: session_key });
        }
        if let Some(key) = message_key {
            writes.push(Write::Set {
                key,
                value: shaped.text.clone().into_bytes(),
                ttl: self.session.dedupe_ttl,
            });
        }
        SmsPlan {
            reply: SmsReply::new(shaped.text),
            outcome,
            writes,
        }
    }

    async fn lookup(&self, tenant: &Tenant, source: &str, key: &str) -> LookupOutcome {
        let Some(src) = tenant.sources.get(source) else {
            tracing::error!(tenant = %tenant.id, source, "lookup on an unconfigured data source");
            return LookupOutcome::Failed;
        };
        match tokio::time::timeout(self.hop_timeout / 2, src.lookup(key)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::warn!(tenant = %tenant.id, source, "data source too slow");
                LookupOutcome::Failed
            }
        }
    }

    fn store_down(&self, tenant: &Tenant, e: crate::session::StoreError) -> (Reply, Outcome) {
        tracing::error!(tenant = %tenant.id, cause = %e, "session store failed");
        (
            Reply::end(tenant.menu.texts.unavailable.clone()),
            Outcome::StoreDown,
        )
    }

    /// Checks the session store answers (for `/readyz`).
    pub async fn ready(&self) -> Result<(), crate::session::StoreError> {
        self.store.ping().await
    }
}
