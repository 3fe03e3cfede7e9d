//! One SMS: read the dialogue, decide what the text is, run the engine once, plan the writes.
//!
//! The plan ([`SmsPlan`]) is worked out before anything is written, then committed only if
//! the dialogue still holds what was read and the webhook's message id is still unknown
//! (`Store::commit`); a plan that lost that race is worked out again, and a copy of the
//! same message then finds its id taken and gets the same reply. [`Gateway::sms`] answers
//! in the webhook's reply once committed; [`Gateway::sms_async`] commits (claiming the
//! message id), then queues the reply, and undoes the commit if queueing failed, so a
//! retry after a failure is served afresh and concurrent copies queue one reply.

use tracing::Instrument;

use super::records::{SmsRecord, StateRecord, RECORD_VERSION};
use super::ussd::hop_span;
use super::{
    Gateway, NotServed, Outcome, SendError, Tenant, TenantRef, SUITE_NOTE, UNKNOWN_SMS_CODE,
};
use crate::hours::LocalTime;
use crate::menu::{self, Channel, Menu, ScreenId, State};
use crate::message::{mask_msisdn, SmsInbound, SmsReply};
use crate::session::{keys, Guard, StoreError, Write};
use crate::text::{fold_accents, shape_sms, transliterate};

/// Words that ask for the keyword list (after accent folding and upper-casing).
const HELP_WORDS: [&str; 4] = ["AIDE", "MENU", "HELP", "?"];

/// A short code as tenants list it: no spaces around, no leading `+`.
fn short_code(to: &str) -> &str {
    to.trim().trim_start_matches('+')
}

/// An SMS worked out: the reply, and the writes that record it (the dialogue, the
/// webhook's id), carried out by the caller in the order it needs.
struct SmsPlan {
    reply: SmsReply,
    outcome: Outcome,
    /// What the writes assume: the dialogue as read, the message id still unknown.
    guards: Vec<Guard>,
    writes: Vec<Write>,
    /// Puts the dialogue back as read and forgets the message id (a failed queueing).
    undo: Vec<Write>,
}

impl SmsPlan {
    /// Nothing to write: a retry, a failure, or an answer that records nothing.
    fn only(reply: SmsReply, outcome: Outcome) -> SmsPlan {
        SmsPlan {
            reply,
            outcome,
            guards: Vec::new(),
            writes: Vec::new(),
            undo: Vec::new(),
        }
    }

    fn unknown_code() -> SmsPlan {
        SmsPlan::only(
            SmsReply::new(transliterate(UNKNOWN_SMS_CODE).into_owned()),
            Outcome::UnknownService,
        )
    }
}

/// What an incoming text is, decided before anything runs.
#[derive(Debug)]
enum SmsAction {
    /// A keyword (always starts over), or a text to a short code bound to a screen.
    Start(ScreenId),
    /// An answer to the screen waiting in the dialogue.
    Answer(State),
    /// `SUITE`: the rest of a cut reply; the dialogue's state, if any, stays.
    Suite { rest: String, state: Option<State> },
    /// A call for help, or a text nothing else matches: the keyword list.
    Help,
}

/// Classifies a text, pure. Keywords win over everything; `SUITE` counts only when a reply
/// was cut; a waiting screen takes any other text as its answer.
fn sms_action(
    menu: &Menu,
    text: &str,
    code: &str,
    state: Option<State>,
    rest: Option<String>,
) -> SmsAction {
    let folded = fold_accents(text).to_uppercase();
    let first_word = folded.split_whitespace().next().unwrap_or("");
    if let Some(k) = menu.sms.keyword(text) {
        return SmsAction::Start(k.screen);
    }
    if let (true, Some(rest)) = (first_word == "SUITE", rest) {
        return SmsAction::Suite { rest, state };
    }
    if folded.is_empty() || HELP_WORDS.contains(&first_word) {
        return SmsAction::Help;
    }
    if let Some(state) = state {
        return SmsAction::Answer(state);
    }
    match menu.sms.fixed.get(code) {
        Some(screen) => SmsAction::Start(*screen),
        None => SmsAction::Help,
    }
}

/// What an SMS shows, and the dialogue state it leaves.
struct Shown {
    text: String,
    end: bool,
    state: Option<State>,
    outcome: Outcome,
}

/// Most times an SMS is worked out again after losing a race to a concurrent one.
const MAX_ATTEMPTS: usize = 4;

/// What an SMS reads: the dialogue's bytes as stored, its record, and the reply already
/// given to the webhook's message id.
type SmsRead = (Option<Vec<u8>>, Option<SmsRecord>, Option<Vec<u8>>);

/// The store keys of one SMS.
struct SmsKeys {
    dialogue: String,
    /// The webhook's message id, when the dialect sends one.
    message: Option<String>,
}

/// Context for every log of one SMS: the dialect, the tenant (recorded once resolved), the
/// number masked, never the text. The server opens it around the whole message, so its
/// per-message line carries the same fields; [`Gateway::sms`] called without one opens its
/// own. The webhook's message id is the aggregator's reference, not the subscriber's, and
/// is shown as is.
pub fn sms_span(dialect: &str, inbound: &SmsInbound) -> tracing::Span {
    tracing::info_span!(
        SMS_SPAN,
        dialect,
        tenant = tracing::field::Empty,
        msisdn = %mask_msisdn(&inbound.from),
        id = inbound.id.as_deref().unwrap_or("-"),
    )
}

/// The name of an SMS's span.
const SMS_SPAN: &str = "sms";

impl Gateway {
    /// The tenant owning an SMS short code (`+` and spaces ignored).
    pub fn resolve_sms(&self, to: &str) -> Option<TenantRef> {
        let tenants = self.tenants.load_full();
        let i = *(tenants.by_sms_code.get(to.trim()))
            .or_else(|| tenants.by_sms_code.get(short_code(to)))?;
        Some(TenantRef::new(tenants, i))
    }

    /// Serves one SMS. Always answers with a non-empty text; the outcome is for logs.
    pub async fn sms(&self, dialect: &str, inbound: &SmsInbound) -> (SmsReply, Outcome) {
        let started = std::time::Instant::now();
        let Some(held) = self.resolve_sms(&inbound.to) else {
            crate::metrics::unknown_service("sms", dialect, started.elapsed());
            return (
                SmsReply::new(transliterate(UNKNOWN_SMS_CODE).into_owned()),
                Outcome::UnknownService,
            );
        };
        let tenant: &Tenant = &held;
        let unavailable = || SmsReply::new(tenant.menu.sms_texts.unavailable.clone());
        let hop = async {
            for _ in 0..MAX_ATTEMPTS {
                let plan = self.sms_plan(tenant, dialect, inbound).await;
                if plan.writes.is_empty() {
                    return (plan.reply, plan.outcome);
                }
                match self.store.commit(&plan.guards, &plan.writes).await {
                    Ok(true) => return (plan.reply, plan.outcome),
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::error!(cause = %e, "session store failed");
                        return (unavailable(), Outcome::StoreDown);
                    }
                }
            }
            tracing::warn!("SMS lost every race to concurrent messages of its dialogue");
            (unavailable(), Outcome::Contended)
        };
        let done = async {
            match tokio::time::timeout(self.hop_timeout, hop).await {
                Ok(done) => done,
                Err(_) => {
                    tracing::warn!("SMS exceeded its time budget");
                    (unavailable(), Outcome::TimedOut)
                }
            }
        }
        .instrument(hop_span(SMS_SPAN, &tenant.config.id, || {
            sms_span(dialect, inbound)
        }))
        .await;
        crate::metrics::hop(
            "sms",
            dialect,
            &tenant.config.id,
            done.1.as_str(),
            started.elapsed(),
        );
        crate::metrics::sms_parts(done.0.encoding.as_str(), done.0.segments as u64);
        done
    }

    /// Serves an SMS of an asynchronous dialect: the dialogue and the webhook's id are
    /// committed (the id claimed, so a concurrent copy finds it taken and queues nothing),
    /// then the reply is queued on `sender`; if queueing fails the commit is undone, so the
    /// aggregator's retry is served afresh. `Err` when nothing could be queued: the
    /// aggregator should retry.
    pub async fn sms_async(
        &self,
        dialect: &str,
        inbound: &SmsInbound,
        sender: &str,
        link_id: Option<String>,
    ) -> Result<(SmsReply, Outcome), NotServed> {
        let held = self.resolve_sms(&inbound.to);
        let tenant = held.as_deref();
        let tenant_id = tenant.map_or("-", |t| t.config.id.as_str());
        let span = hop_span(SMS_SPAN, tenant_id, || sms_span(dialect, inbound));
        let started = std::time::Instant::now();
        let done = async {
            for _ in 0..MAX_ATTEMPTS {
                let plan = match tenant {
                    Some(tenant) => tokio::time::timeout(
                        self.hop_timeout,
                        self.sms_plan(tenant, dialect, inbound),
                    )
                    .await
                    .map_err(|_| not_served(Outcome::TimedOut))?,
                    None => SmsPlan::unknown_code(),
                };
                match plan.outcome {
                    Outcome::Replay => return Ok((plan.reply, plan.outcome)),
                    Outcome::StoreDown | Outcome::TimedOut => return Err(not_served(plan.outcome)),
                    _ => {}
                }
                if !plan.writes.is_empty() && !self.store.commit(&plan.guards, &plan.writes).await?
                {
                    continue;
                }
                let text = plan.reply.text.clone();
                let to = &inbound.from;
                let sent = self.send_sms(tenant_id, sender, &inbound.to, to, text, link_id);
                return match sent.await {
                    Ok(_) => Ok((plan.reply, plan.outcome)),
                    // Refused (logged by the limiter): acknowledged and nothing sent; the
                    // claimed id makes a retry of it a replay that sends nothing either.
                    Err(SendError::Refused(_)) => Ok((plan.reply, Outcome::Refused)),
                    Err(SendError::Outbox(e)) => {
                        if let Err(e) = self.store.write(&plan.undo).await {
                            tracing::error!(cause = %e, "reply not queued, and the claim stays");
                        }
                        Err(e.into())
                    }
                };
            }
            tracing::warn!("SMS lost every race to concurrent messages of its dialogue");
            Err(not_served(Outcome::Contended))
        }
        .instrument(span)
        .await;
        let outcome = match &done {
            Ok((_, o)) => o.as_str(),
            Err(_) => "not_served",
        };
        let tenant_label = tenant.map_or(crate::metrics::NO_TENANT, |t| t.config.id.as_str());
        crate::metrics::hop("sms", dialect, tenant_label, outcome, started.elapsed());
        done
    }

    /// Works out one SMS's reply and the writes that record it, without writing.
    async fn sms_plan(&self, tenant: &Tenant, dialect: &str, inbound: &SmsInbound) -> SmsPlan {
        let menu = &tenant.menu;
        let prefix = &self.session.key_prefix;
        let code = short_code(&inbound.to);
        let msisdn = inbound.from.as_str();
        let keys = SmsKeys {
            dialogue: keys::sms(prefix, &tenant.config.id, code, msisdn),
            message: (inbound.id.as_deref())
                .map(|id| keys::message(prefix, &tenant.config.id, msisdn, dialect, id)),
        };
        let (raw, record, previous) = match self.read_sms(&keys).await {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(cause = %e, "session store failed");
                let text = menu.sms_texts.unavailable.clone();
                return SmsPlan::only(SmsReply::new(text), Outcome::StoreDown);
            }
        };
        if let Some(previous) = previous {
            // A retried webhook: the same reply, nothing processed twice.
            let text = String::from_utf8_lossy(&previous).into_owned();
            return SmsPlan::only(SmsReply::new(text), Outcome::Replay);
        }

        let now = self.local_now(tenant);
        let state = (record.as_ref().and_then(|r| r.state.as_ref())).map(|s| {
            let mut state = s.to_state(menu);
            state.now = now;
            state
        });
        let rest = record.as_ref().and_then(|r| r.rest.clone());
        let text = inbound.text.trim();
        let action = sms_action(menu, text, code, state, rest);
        let shown = self.answer_sms(tenant, action, msisdn, text, now).await;
        self.sms_writes(tenant, keys, raw, shown)
    }

    /// One read: the dialogue (its bytes, for the commit's guard, and its record), and the
    /// reply already given to this message id.
    async fn read_sms(&self, keys: &SmsKeys) -> Result<SmsRead, StoreError> {
        let mut read = vec![keys.dialogue.as_str()];
        read.extend(keys.message.as_deref());
        let mut values = self.store.get(&read).await?.into_iter();
        let raw = values.next().flatten();
        let record = raw.as_deref().and_then(SmsRecord::from_bytes);
        Ok((raw, record, values.next().flatten()))
    }

    /// Carries out an SMS's action: fixed answers as they are, the engine (one run) for
    /// the rest.
    async fn answer_sms(
        &self,
        tenant: &Tenant,
        action: SmsAction,
        msisdn: &str,
        text: &str,
        now: Option<LocalTime>,
    ) -> Shown {
        let menu = &tenant.menu;
        let (mut state, step) = match action {
            SmsAction::Help => {
                return Shown {
                    text: menu.sms.help.clone(),
                    end: true,
                    state: None,
                    outcome: Outcome::Help,
                }
            }
            SmsAction::Suite { rest, state } => {
                return Shown {
                    text: rest,
                    end: state.is_none(),
                    state,
                    outcome: Outcome::Suite,
                }
            }
            SmsAction::Start(screen) => menu::start_at(menu, Channel::Sms, msisdn, now, screen),
            SmsAction::Answer(mut state) => {
                let step = menu::input(menu, Channel::Sms, &mut state, msisdn, text);
                (state, step)
            }
        };
        let (text, end) = self
            .run(tenant, Channel::Sms, &mut state, msisdn, step)
            .await;
        Shown {
            text,
            end,
            state: Some(state),
            outcome: if end { Outcome::End } else { Outcome::Continue },
        }
    }

    /// Shapes the reply to the tenant's segment limit and plans one write: the dialogue (or
    /// its deletion when nothing is left to keep) and the reply to this message id.
    fn sms_writes(
        &self,
        tenant: &Tenant,
        keys: SmsKeys,
        raw: Option<Vec<u8>>,
        shown: Shown,
    ) -> SmsPlan {
        let menu = &tenant.menu;
        let suffix = menu.sms_policy.apply(SUITE_NOTE);
        let shaped = shape_sms(&shown.text, tenant.config.sms_max_segments, &suffix);
        let keep_state = shown.state.filter(|_| !shown.end);
        let mut writes = Vec::with_capacity(2);
        let mut undo = Vec::with_capacity(2);
        let had_record = raw.is_some();
        if keep_state.is_some() || shaped.rest.is_some() {
            let record = SmsRecord {
                v: RECORD_VERSION,
                state: keep_state
                    .as_ref()
                    .map(|s| StateRecord::from_state(s, menu)),
                rest: shaped.rest.clone(),
            };
            writes.push(Write::Set {
                key: keys.dialogue.clone(),
                value: record.to_bytes(),
                ttl: self.session.sms_ttl,
            });
        } else if had_record {
            writes.push(Write::Delete {
                key: keys.dialogue.clone(),
            });
        }
        if !writes.is_empty() {
            undo.push(match &raw {
                Some(value) => Write::Set {
                    key: keys.dialogue.clone(),
                    value: value.clone(),
                    ttl: self.session.sms_ttl,
                },
                None => Write::Delete {
                    key: keys.dialogue.clone(),
                },
            });
        }
        let mut guards = vec![Guard {
            key: keys.dialogue,
            expected: raw,
        }];
        if let Some(key) = keys.message {
            guards.push(Guard {
                key: key.clone(),
                expected: None,
            });
            undo.push(Write::Delete { key: key.clone() });
            writes.push(Write::Set {
                key,
                value: shaped.text.clone().into_bytes(),
                ttl: self.session.dedupe_ttl,
            });
        }
        SmsPlan {
            reply: SmsReply::new(shaped.text),
            outcome: shown.outcome,
            guards,
            writes,
            undo,
        }
    }
}

/// The error of an SMS that could not be served, so the aggregator retries.
fn not_served(outcome: Outcome) -> NotServed {
    NotServed::Outcome(outcome.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::menu::LoadOptions;

    const MENU: &str = r#"
[menu]
home = "accueil"

[sms]
keywords = [{ name = "SOLDE", match = "SOLDE", screen = "solde" }]
fixed = { "1000" = "accueil" }

[screens.accueil]
kind = "menu"
choices = [{ label = "Solde", next = "solde" }]

[screens.solde]
kind = "info"
text = "Votre solde."
"#;

    /// One row: what the case is, the text, the short code it went to, the screen waiting
    /// in the dialogue, the rest of a cut reply, and the action.
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Option<State>,
        Option<String>,
        &'static str,
    );

    /// The action as a word, with the screen it starts or answers.
    fn described(menu: &Menu, action: &SmsAction) -> String {
        let name = |id: ScreenId| menu.screen(id).id.clone();
        match action {
            SmsAction::Start(screen) => format!("start {}", name(*screen)),
            SmsAction::Answer(state) => format!("answer {}", name(state.screen)),
            SmsAction::Suite { rest, state } => {
                format!(
                    "suite {rest} ({})",
                    state.as_ref().map_or("-".into(), |s| name(s.screen))
                )
            }
            SmsAction::Help => "help".into(),
        }
    }

    #[test]
    fn each_text_is_a_keyword_suite_help_an_answer_or_a_fixed_code() {
        let (menu, problems) = crate::menu::load("m.toml", MENU, &LoadOptions::default());
        let menu = menu.unwrap_or_else(|| panic!("{problems:?}"));
        let waiting = || Some(State::at(menu.home));
        let rest = || Some("la suite".to_string());
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("a keyword starts over, even mid-dialogue", "solde svp", "1088", waiting(), rest(), "start solde"),
            ("SUITE sends the rest of a cut reply", "suite", "1088", waiting(), rest(), "suite la suite (accueil)"),
            ("SUITE after a cut reply that ended the dialogue", "Suite", "1088", None, rest(), "suite la suite (-)"),
            ("SUITE with nothing cut is an answer", "SUITE", "1088", waiting(), None, "answer accueil"),
            ("a call for help, even mid-dialogue", "aide", "1088", waiting(), None, "help"),
            ("an empty text", "", "1088", waiting(), None, "help"),
            ("any other text answers the waiting screen", "1", "1000", waiting(), None, "answer accueil"),
            ("a text to a fixed short code starts its screen", "bonjour", "1000", None, None, "start accueil"),
            ("anything else gets the keyword list", "bonjour", "1088", None, None, "help"),
        ];
        for (what, text, code, state, cut, want) in cases {
            let action = sms_action(&menu, text, code, state, cut);
            assert_eq!(described(&menu, &action), want, "{what}");
        }
    }

    #[test]
    fn short_codes_lose_spaces_and_a_leading_plus() {
        assert_eq!(short_code(" +1088 "), "1088");
        assert_eq!(short_code("1088"), "1088");
    }
}
