//! One USSD hop: read, decide, run the engine, write.
//!
//! A hop is cut into named steps:
//! 1. one read: the session record, and on a possible start the subscriber's resumable
//!    state (`Gateway::read`);
//! 2. a pure `decide`: release, replay the stored reply, expired, or run the engine on
//!    these inputs. It holds the retry rules: **a retried hop never advances twice**;
//! 3. the engine step (`enter`, then `Gateway::run` for the lookups) and the follow-up
//!    SMS the screen asked for;
//! 4. one write: the session record (one builder, whether the session goes on or ended)
//!    and the resumable state (`Gateway::writes`), committed only if the session still
//!    holds the bytes read in step 1 (`Store::commit`, a compare-and-set). A hop that lost
//!    that race goes back to step 1 and is decided again on what the winner wrote (at
//!    most `MAX_ATTEMPTS` times); the follow-up SMS is queued only by the winner.

use tracing::Instrument;

use super::records::{ResumeRecord, SavedReply, SessionRecord, StateRecord, RECORD_VERSION};
use super::{Gateway, LateLookup, Outcome, SendError, Tenant, EXPIRED, UNKNOWN_SERVICE};
use crate::logs::SessionHash;
use crate::menu::{self, Channel, Menu, State, Step};
use crate::message::{mask_msisdn, Hop, Inbound, Reply};
use crate::session::{keys, Guard, StoreError, Write};
use crate::text::transliterate;

/// What a hop comes to, once its stored record is read. Worked out by `decide`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The subscriber hung up (`forget_resume`: nothing to resume either), or the
    /// aggregator gave up waiting (the subscriber may dial again and resume).
    Release { forget_resume: bool },
    /// A retried hop, or one after the session ended: the stored reply again, nothing run.
    Replay(SavedReply),
    /// An answer to a session the store does not know (never seen, or its record expired).
    Expired,
    /// Inputs to feed the engine.
    Run(Run),
}

/// The engine's work for a hop, and where the session stands after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    /// The stored state to continue; `None` starts a new session.
    pub state: Option<StateRecord>,
    /// Inputs in order: direct-dial inputs and typed path on a start, new answers after.
    pub inputs: Vec<String>,
    /// The sequence number to record (dialects that send one).
    pub seq: Option<u64>,
    /// Path inputs consumed once this hop is done (dialects that send the whole path).
    pub consumed: u32,
}

/// The retry rules, pure. `prefill` holds the direct-dial inputs after the service code.
///
/// - Africa's Talking sends the whole path typed so far: a path no longer than what the
///   session consumed is a retry (replayed); a longer one brings the inputs past it. With
///   no stored session (a first hop, a direct dial sent as text, or a session this store
///   lost) the whole path is played from home.
/// - Hubtel and JSON send one answer with a sequence number: a number no greater than the
///   stored one is a retry (replayed). An answer without one (Hubtel's `Sequence` is
///   optional in some integrations) cannot be told from a new answer by itself: it runs,
///   unless it lost a race to a concurrent write of its session, in which case it is taken
///   for a copy of the hop that won and gets that hop's screen (`Gateway::hop`).
/// - A session that ended (stored without state) answers every later hop with its final
///   screen.
pub(crate) fn decide(hop: &Hop, record: Option<SessionRecord>, prefill: &[String]) -> Decision {
    let replay = |r: SessionRecord| Decision::Replay(r.reply);
    match (hop, record) {
        (Hop::Release, _) => Decision::Release {
            forget_resume: true,
        },
        (Hop::Timeout, _) => Decision::Release {
            forget_resume: false,
        },
        // A retried dial.
        (Hop::Start, Some(r)) => replay(r),
        (Hop::Start, None) => Decision::Run(Run {
            state: None,
            inputs: prefill.to_vec(),
            seq: None,
            consumed: 0,
        }),
        (Hop::Path(path), record) => {
            let parts: Vec<String> = if path.is_empty() {
                Vec::new()
            } else {
                path.split('*').map(|p| p.trim().to_string()).collect()
            };
            let count = u32::try_from(parts.len()).unwrap_or(u32::MAX);
            match record {
                // Nothing new since the last hop: a retry.
                Some(r) if count <= r.consumed || r.state.is_none() => replay(r),
                Some(r) => Decision::Run(Run {
                    inputs: parts.into_iter().skip(r.consumed as usize).collect(),
                    state: r.state,
                    seq: None,
                    consumed: count,
                }),
                None => Decision::Run(Run {
                    state: None,
                    inputs: prefill.iter().cloned().chain(parts).collect(),
                    seq: None,
                    consumed: count,
                }),
            }
        }
        (Hop::Answer { .. }, None) => Decision::Expired,
        (Hop::Answer { text, seq }, Some(r)) => {
            let stale = matches!((seq, r.seq), (Some(new), Some(old)) if *new <= old);
            if stale || r.state.is_none() {
                return replay(r);
            }
            Decision::Run(Run {
                state: r.state,
                inputs: vec![text.clone()],
                seq: *seq,
                consumed: r.consumed,
            })
        }
    }
}

/// The engine's first step on a hop, pure: the stored state fed the inputs, or a new
/// session (offered the state another session of this subscriber left, for "resume").
fn enter(
    menu: &Menu,
    run: &Run,
    resume: Option<ResumeRecord>,
    inbound: &Inbound,
    now: Option<crate::hours::LocalTime>,
) -> (State, Step) {
    let msisdn = inbound.msisdn.as_str();
    match &run.state {
        Some(record) => {
            let mut state = record.to_state(menu);
            state.now = now;
            // All inputs but the last wait their turn; the last one is answered.
            let step = match run.inputs.split_last() {
                Some((last, before)) => {
                    state.pending.extend(before.iter().cloned());
                    menu::input(menu, Channel::Ussd, &mut state, msisdn, last)
                }
                // No new input (cannot happen past `decide`): show the screen again.
                None => menu::input(menu, Channel::Ussd, &mut state, msisdn, ""),
            };
            (state, step)
        }
        None => {
            let offer = resume
                .filter(|r| r.session != inbound.session_id)
                .map(|r| r.state.to_state(menu));
            let inputs = run.inputs.clone();
            menu::start(menu, Channel::Ussd, msisdn, now, inputs, offer)
        }
    }
}

/// Most inputs one hop may apply: a direct dial's (`*144*1*2#`: two), or a cumulative
/// path's new ones. Menus are a few screens deep; beyond it the hop is refused politely.
pub const MAX_INPUTS: usize = 16;
/// Longest dial string accepted (the longest USSD string a network carries).
pub const MAX_DIAL_CHARS: usize = 182;
/// Longest cumulative path (Africa's Talking's `text`) accepted: a long session's worth.
pub const MAX_PATH_CHARS: usize = 2048;
/// Most times a hop is worked out again after losing a race to a concurrent hop.
const MAX_ATTEMPTS: usize = 4;

/// True when a hop brings more than a hop may apply, told before any parsing or engine
/// work: a dial string or path too long, or too many direct-dial inputs.
fn too_long(dialled: &str, hop: &Hop, prefill: usize) -> bool {
    let path = match hop {
        Hop::Path(p) => p.len(),
        _ => 0,
    };
    dialled.len() > MAX_DIAL_CHARS || path > MAX_PATH_CHARS || prefill > MAX_INPUTS
}

/// What a hop reads: the session's bytes as stored, its record, and the resume point.
type Read = (Option<Vec<u8>>, Option<SessionRecord>, Option<ResumeRecord>);

/// The store keys of one hop.
struct HopKeys {
    session: String,
    resume: String,
}

/// Context for every log of one hop: the dialect, the tenant (recorded once resolved), the
/// number masked and the session id hashed (`logs::SessionHash`), never the typed text.
/// The server opens it around the whole hop, so its per-hop line and the rate limiter's
/// carry the same fields as the gateway's; [`Gateway::ussd`] called without one (the
/// simulator, tests) opens its own.
pub fn ussd_span(dialect: &str, inbound: &Inbound) -> tracing::Span {
    tracing::info_span!(
        USSD_SPAN,
        dialect,
        tenant = tracing::field::Empty,
        msisdn = %mask_msisdn(&inbound.msisdn),
        session = %SessionHash(&inbound.session_id),
    )
}

/// The name of a hop's span.
const USSD_SPAN: &str = "ussd";

/// The span named `name` the caller is in, else `open()`; either way with `tenant`
/// recorded.
pub(super) fn hop_span(
    name: &str,
    tenant: &str,
    open: impl FnOnce() -> tracing::Span,
) -> tracing::Span {
    let current = tracing::Span::current();
    let span = if current.metadata().is_some_and(|m| m.name() == name) {
        current
    } else {
        open()
    };
    span.record("tenant", tracing::field::display(tenant));
    span
}

impl Gateway {
    /// Serves one USSD hop within the global `hop_timeout_ms`. Always answers; the outcome
    /// is for logs. A late answer by SMS is finished here, before answering (the simulator
    /// and tests; the server hands it to a task of its own instead).
    pub async fn ussd(&self, dialect: &str, inbound: &Inbound) -> (Reply, Outcome) {
        let (reply, outcome, late) = self.ussd_within(dialect, inbound, self.hop_timeout).await;
        if let Some(late) = late {
            self.finish_late(late).await;
        }
        (reply, outcome)
    }

    /// Serves one USSD hop within `budget` (the time budget of the channel it came on,
    /// `Mount::hop_timeout`): past it, the tenant's `unavailable` text; a lookup gets half
    /// of it. Always answers; the outcome is for logs. A `late = "sms"` lookup too slow
    /// for the hop comes back still running: the caller runs [`Gateway::finish_late`] on
    /// it, off the hop. Only the copy of a hop whose commit won returns it.
    pub async fn ussd_within(
        &self,
        dialect: &str,
        inbound: &Inbound,
        budget: std::time::Duration,
    ) -> (Reply, Outcome, Option<LateLookup>) {
        let started = std::time::Instant::now();
        let Some((held, prefill)) = self.resolve(&inbound.service_code) else {
            crate::metrics::unknown_service("ussd", dialect, started.elapsed());
            return (
                Reply::end(transliterate(UNKNOWN_SERVICE)),
                Outcome::UnknownService,
                None,
            );
        };
        let tenant: &Tenant = &held;
        // Context for every log of the hop: the server's span when it opened one, else ours.
        let span = hop_span(USSD_SPAN, &tenant.config.id, || ussd_span(dialect, inbound));
        let mut late = None;
        let hop = self.hop(tenant, prefill, dialect, inbound, budget, &mut late);
        let done = match tokio::time::timeout(budget, hop)
            .instrument(span.clone())
            .await
        {
            Ok((reply, outcome)) => (reply, outcome, late),
            Err(_) => {
                span.in_scope(|| tracing::warn!("hop exceeded its time budget"));
                (
                    Reply::end(tenant.menu.texts.unavailable.clone()),
                    Outcome::TimedOut,
                    None,
                )
            }
        };
        crate::metrics::hop(
            "ussd",
            dialect,
            &tenant.config.id,
            done.1.as_str(),
            started.elapsed(),
        );
        done
    }

    /// Read, decide, run, then commit if nobody wrote the session in between; after losing
    /// such a race, the hop is worked out again on what the winner wrote (a copy of the
    /// same hop is then a retry). The SMS a screen asks for is queued only once the commit
    /// won, so concurrent copies of a hop queue it once; likewise a late lookup is put in
    /// `late_out` only by the copy whose commit won.
    async fn hop(
        &self,
        tenant: &Tenant,
        prefill: Vec<String>,
        dialect: &str,
        inbound: &Inbound,
        budget: std::time::Duration,
        late_out: &mut Option<LateLookup>,
    ) -> (Reply, Outcome) {
        if too_long(&inbound.service_code, &inbound.hop, prefill.len()) {
            return self.too_long(tenant);
        }
        let prefix = &self.session.key_prefix;
        let (id, msisdn) = (&tenant.config.id, inbound.msisdn.as_str());
        let keys = HopKeys {
            session: keys::session(prefix, id, msisdn, dialect, &inbound.session_id),
            resume: keys::resume(prefix, id, msisdn),
        };
        for attempt in 0..MAX_ATTEMPTS {
            let (raw, record, resume) = match self.read(&keys, &inbound.hop).await {
                Ok(read) => read,
                Err(e) => return self.store_down(tenant, e),
            };
            // Without a sequence number a copy of a hop cannot be told from a new answer;
            // one that lost a race to a concurrent write is taken for a copy of it.
            if let (true, Hop::Answer { seq: None, .. }, Some(r)) =
                (attempt > 0, &inbound.hop, &record)
            {
                return (r.reply.clone().into(), Outcome::Replay);
            }
            if let (Hop::Release | Hop::Timeout, Some(SessionRecord { state: Some(s), .. })) =
                (&inbound.hop, &record)
            {
                crate::metrics::screen_left(&tenant.config.id, &s.screen);
            }
            let run = match decide(&inbound.hop, record, &prefill) {
                Decision::Release { forget_resume } => {
                    return self.release(tenant, keys, forget_resume).await
                }
                Decision::Replay(saved) => return (saved.into(), Outcome::Replay),
                Decision::Expired => {
                    let text = tenant.menu.policy.apply(EXPIRED).into_owned();
                    return (Reply::end(text), Outcome::UnknownSession);
                }
                Decision::Run(run) if run.inputs.len() > MAX_INPUTS => {
                    return self.too_long(tenant)
                }
                Decision::Run(run) => run,
            };

            if let (0, None, Some(r)) = (attempt, &run.state, &resume) {
                if r.session != inbound.session_id {
                    crate::metrics::screen_left(&tenant.config.id, &r.state.screen);
                }
            }
            // Run the engine, in the tenant's local time.
            let now = self.local_now(tenant);
            let (mut state, step) = enter(&tenant.menu, &run, resume, inbound, now);
            let (text, end, late) = self
                .run_within(tenant, Channel::Ussd, &mut state, msisdn, step, budget / 2)
                .await;
            let reply = Reply { text, end };
            let outgoing = std::mem::take(&mut state.outgoing);
            let writes = self.writes(&tenant.menu, &keys, &run, &reply, &state, inbound);
            let guard = Guard {
                key: keys.session.clone(),
                expected: raw,
            };
            match self.store.commit(&[guard], &writes).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return self.store_down(tenant, e),
            }
            if late.is_some() {
                *late_out = late;
                return (reply, Outcome::Late);
            }
            let reply = self
                .send_follow_ups(
                    tenant,
                    outgoing,
                    msisdn,
                    reply,
                    (&keys, &run, &state, inbound),
                )
                .await;
            let outcome = if reply.end {
                Outcome::End
            } else {
                Outcome::Continue
            };
            let screen = &tenant.menu.screen(state.screen).id;
            crate::metrics::screen(&tenant.config.id, screen, reply.end, state.invalid);
            return (reply, outcome);
        }
        tracing::warn!("hop lost every race to concurrent hops of its session");
        (
            Reply::end(tenant.menu.texts.unavailable.clone()),
            Outcome::Contended,
        )
    }

    /// A dial or a path with more inputs than a hop may apply: the tenant's polite `END`,
    /// and no engine work.
    fn too_long(&self, tenant: &Tenant) -> (Reply, Outcome) {
        tracing::info!("too many inputs at once; refused");
        (
            Reply::end(tenant.menu.texts.too_long.clone()),
            Outcome::TooLong,
        )
    }

    /// A store failure: logged, and the hop ends on the "unavailable" screen.
    fn store_down(&self, tenant: &Tenant, e: StoreError) -> (Reply, Outcome) {
        tracing::error!(cause = %e, "session store failed");
        (
            Reply::end(tenant.menu.texts.unavailable.clone()),
            Outcome::StoreDown,
        )
    }

    /// Whether dropped sessions are kept for "resume".
    fn resuming(&self) -> bool {
        !self.session.resume_window.is_zero()
    }

    /// One read: the session (its bytes, for the commit's guard, and its record), and on a
    /// possible start the subscriber's resumable state.
    async fn read(&self, keys: &HopKeys, hop: &Hop) -> Result<Read, StoreError> {
        let maybe_start = matches!(hop, Hop::Start | Hop::Path(_));
        let read: Vec<&str> = if maybe_start && self.resuming() {
            vec![&keys.session, &keys.resume]
        } else {
            vec![&keys.session]
        };
        let mut values = self.store.get(&read).await?.into_iter();
        let raw = values.next().flatten();
        let record = raw.as_deref().and_then(SessionRecord::from_bytes);
        let resume = values
            .next()
            .flatten()
            .and_then(|b| ResumeRecord::from_bytes(&b));
        Ok((raw, record, resume))
    }

    /// Forgets the session (and on a hang-up the resumable state); says goodbye.
    async fn release(
        &self,
        tenant: &Tenant,
        keys: HopKeys,
        forget_resume: bool,
    ) -> (Reply, Outcome) {
        let mut writes = vec![Write::Delete { key: keys.session }];
        if forget_resume {
            writes.push(Write::Delete { key: keys.resume });
        }
        if let Err(e) = self.store.write(&writes).await {
            tracing::warn!(cause = %e, "could not delete a released session");
        }
        (
            Reply::end(tenant.menu.texts.goodbye.clone()),
            Outcome::Released,
        )
    }

    /// Queues the SMS the screen asked to send the caller, once the hop's commit won. A
    /// failure ends the session on the "unavailable" screen, and a refusal (destination,
    /// daily cap) on the refusal's text, written over the committed reply so that a retry
    /// gets it too; a tenant without a sender sends nothing (the
    /// loader refuses such a menu).
    async fn send_follow_ups(
        &self,
        tenant: &Tenant,
        outgoing: Vec<String>,
        msisdn: &str,
        mut reply: Reply,
        (keys, run, state, inbound): (&HopKeys, &Run, &State, &Inbound),
    ) -> Reply {
        let mut replaced = None;
        for text in outgoing {
            let (Some(sender), Some(from)) =
                (&tenant.config.sms_sender, tenant.config.sms_codes.first())
            else {
                continue;
            };
            match self
                .send_sms(&tenant.config.id, sender, from, msisdn, text, None)
                .await
            {
                Ok(_) => {}
                // Refused (logged by the limiter): say so, not "SMS envoyé".
                Err(SendError::Refused(r)) => {
                    let text = tenant.menu.policy.apply(r.ussd_text()).into_owned();
                    replaced = Some(Reply::end(text));
                }
                Err(e) => {
                    tracing::error!(cause = %e, "could not queue a follow-up SMS");
                    replaced = Some(Reply::end(tenant.menu.texts.unavailable.clone()));
                }
            }
        }
        if let Some(end) = replaced {
            // Written over the committed reply, so that a retry gets this end too.
            reply = end;
            let writes = self.writes(&tenant.menu, keys, run, &reply, state, inbound);
            if let Err(e) = self.store.write(&writes).await {
                tracing::warn!(cause = %e, "could not record the end that replaced the reply");
            }
        }
        reply
    }

    /// The hop's one write: the session record (its state while it goes on, only its final
    /// reply once it ended, each with its own lifetime) and the resumable state.
    fn writes(
        &self,
        menu: &Menu,
        keys: &HopKeys,
        run: &Run,
        reply: &Reply,
        state: &State,
        inbound: &Inbound,
    ) -> Vec<Write> {
        let (kept, ttl) = if reply.end {
            (None, self.session.ended_ttl)
        } else {
            (Some(StateRecord::from_state(state, menu)), self.session.ttl)
        };
        let record = SessionRecord::new(kept, run.seq, run.consumed, SavedReply::from(reply));
        let mut writes = vec![Write::Set {
            key: keys.session.clone(),
            value: record.to_bytes(),
            ttl,
        }];
        if self.resuming() {
            let key = keys.resume.clone();
            writes.push(if reply.end {
                Write::Delete { key }
            } else {
                self.resume_write(key, state, menu, &inbound.session_id)
            });
        }
        writes
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
                    v: RECORD_VERSION,
                    session: session.to_string(),
                    state: StateRecord::from_state(s, menu),
                }
                .to_bytes(),
                ttl: self.session.resume_window,
            },
            None => Write::Delete { key },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row: what the case is, the hop, the stored session, the direct-dial inputs, and
    /// the decision.
    type Case = (
        &'static str,
        Hop,
        Option<SessionRecord>,
        &'static [&'static str],
        Decision,
    );

    /// A stored session: `state` is false once it ended.
    fn stored(state: bool, seq: Option<u64>, consumed: u32) -> Option<SessionRecord> {
        Some(SessionRecord::new(
            state.then(waiting),
            seq,
            consumed,
            last_reply(),
        ))
    }

    fn waiting() -> StateRecord {
        StateRecord {
            screen: "balance".into(),
            page: 0,
            history: vec!["home".into()],
            errors: 0,
            vars: Vec::new(),
            resume: None,
        }
    }

    fn last_reply() -> SavedReply {
        SavedReply {
            text: "1. Solde\n2. Forfaits".into(),
            end: false,
        }
    }

    fn path(p: &str) -> Hop {
        Hop::Path(p.into())
    }

    fn answer(text: &str, seq: Option<u64>) -> Hop {
        Hop::Answer {
            text: text.into(),
            seq,
        }
    }

    fn run(state: bool, inputs: &[&str], seq: Option<u64>, consumed: u32) -> Decision {
        Decision::Run(Run {
            state: state.then(waiting),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            seq,
            consumed,
        })
    }

    #[test]
    fn a_hop_bringing_more_than_a_hop_applies_is_too_long() {
        let dial = |n: usize| format!("*144{}#", "*1".repeat(n));
        assert!(!too_long(&dial(16), &Hop::Start, 16));
        assert!(too_long(&dial(17), &Hop::Start, 17), "inputs");
        assert!(too_long(&dial(100), &Hop::Start, 100), "length");
        assert!(!too_long("*144#", &path(&"1*".repeat(500)), 0));
        assert!(
            too_long("*144#", &path(&"1*".repeat(1100)), 0),
            "path length"
        );
    }

    #[test]
    fn every_kind_of_hop_is_decided_by_the_retry_rules() {
        let replay = Decision::Replay(last_reply());
        let none = None;
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            // Africa's Talking: the whole path typed so far.
            ("AT dial, no session", path(""), none.clone(), &[], run(false, &[], None, 0)),
            ("AT direct dial, no session: prefill first", path(""), none.clone(), &["3"], run(false, &["3"], None, 0)),
            ("AT path, no session (lost or sent as text): played from home", path("1*2"), none.clone(), &["3"], run(false, &["3", "1", "2"], None, 2)),
            ("AT retried dial", path(""), stored(true, None, 0), &[], replay.clone()),
            ("AT same path again: a retry", path("1*2"), stored(true, None, 2), &[], replay.clone()),
            ("AT shorter path: a retry", path("1"), stored(true, None, 2), &[], replay.clone()),
            ("AT different path of the same length: a retry", path("1*3"), stored(true, None, 2), &[], replay.clone()),
            ("AT longer path: only the new inputs", path("1*2* 4 *5"), stored(true, None, 2), &["9"], run(true, &["4", "5"], None, 4)),
            ("AT longer path on an ended session", path("1*2*4"), stored(false, None, 2), &[], replay.clone()),
            // Hubtel and JSON: one answer with a sequence number.
            ("start, no session", Hop::Start, none.clone(), &["3", "1"], run(false, &["3", "1"], None, 0)),
            ("retried start", Hop::Start, stored(true, Some(1), 0), &[], replay.clone()),
            ("old sequence number", answer("2", Some(2)), stored(true, Some(3), 0), &[], replay.clone()),
            ("equal sequence number", answer("2", Some(3)), stored(true, Some(3), 0), &[], replay.clone()),
            ("new sequence number", answer("2", Some(4)), stored(true, Some(3), 1), &[], run(true, &["2"], Some(4), 1)),
            ("first numbered answer after an unnumbered start", answer("2", Some(1)), stored(true, None, 0), &[], run(true, &["2"], Some(1), 0)),
            ("unnumbered answer", answer("2", None), stored(true, Some(3), 0), &[], run(true, &["2"], None, 0)),
            ("answer on an ended session", answer("2", Some(9)), stored(false, Some(3), 0), &[], replay.clone()),
            ("answer on an unknown or expired session", answer("2", Some(4)), none.clone(), &[], Decision::Expired),
            // Endings.
            ("release", Hop::Release, stored(true, Some(3), 0), &[], Decision::Release { forget_resume: true }),
            ("release of an unknown session", Hop::Release, none.clone(), &[], Decision::Release { forget_resume: true }),
            ("timeout keeps what can be resumed", Hop::Timeout, stored(true, Some(3), 0), &[], Decision::Release { forget_resume: false }),
        ];
        for (name, hop, record, prefill, want) in cases {
            let prefill: Vec<String> = prefill.iter().map(|s| s.to_string()).collect();
            assert_eq!(decide(&hop, record, &prefill), want, "{name}");
        }
    }
}
