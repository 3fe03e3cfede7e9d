//! The state machine: one subscriber answer in, one screen (or one effect) out.
//!
//! Pure: the caller passes the caller's number, feeds back lookups it carried out, and
//! stores the [`State`] between hops. Inputs queue up in [`State::pending`], which is how a
//! direct dial (`*144*3*1#`) and a cumulative Africa's Talking path are replayed: as if
//! typed one by one, pausing for each lookup on the way.

use std::borrow::Cow;
use std::collections::VecDeque;

use super::model::{
    Body, Channel, Kind, Menu, RouteCondition, ScreenId, BACK, HOME, MAX_ERRORS, MORE,
};
use super::render::{paginate, sms_text};
use crate::hours::{describe_next, LocalTime};

/// Most automatic moves (routers, silent lookups) one answer may cause: a guard against a
/// menu whose routers loop.
const MAX_AUTOMATIC_MOVES: usize = 32;
/// Most screens remembered for "back".
const MAX_HISTORY: usize = 32;

/// Where a subscriber is in a menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The current screen (always a displayed one between hops).
    pub screen: ScreenId,
    /// The page of the current screen.
    pub page: u8,
    /// Screens to go back to, most recent last.
    pub history: Vec<ScreenId>,
    /// Bad answers in a row on this screen.
    pub errors: u8,
    /// The last answer was wrong: the next display starts with the error line.
    pub flash: bool,
    /// Saved inputs and looked-up fields, by name.
    pub vars: Vec<(String, String)>,
    /// Inputs not yet applied.
    pub pending: VecDeque<String>,
    /// While the "resume or restart" question shows: where the dropped session was.
    pub resume: Option<Box<State>>,
    /// SMS to send to the caller (from `sms` screens), for the caller to take and send.
    /// Never stored.
    pub outgoing: Vec<String>,
    /// The tenant's local time, given by the caller for opening hours. Never stored; without
    /// it, every line counts as closed and `{next_open:…}` renders empty.
    pub now: Option<LocalTime>,
    /// Invalid answers given since the caller last reset it (for metrics). Never stored.
    pub invalid: u32,
}

impl State {
    /// A state on `screen` with nothing else.
    pub fn at(screen: ScreenId) -> State {
        State {
            screen,
            page: 0,
            history: Vec::new(),
            errors: 0,
            flash: false,
            vars: Vec::new(),
            pending: VecDeque::new(),
            resume: None,
            outgoing: Vec::new(),
            now: None,
            invalid: 0,
        }
    }

    /// The value of a variable.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn set_var(&mut self, name: &str, value: String) {
        match self.vars.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name.to_string(), value)),
        }
    }

    /// True when there is something worth resuming: the subscriber went past home.
    pub fn worth_resuming(&self, menu: &Menu) -> bool {
        self.resume.is_none() && (self.screen != menu.home || self.page > 0)
    }
}

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Show this text; `end` when the session is over.
    Show { text: String, end: bool },
    /// Carry out a lookup and pass its outcome to [`lookup_done`].
    Lookup(Effect),
}

/// A lookup for the caller to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// The tenant's data source name.
    pub source: String,
    /// The record's key (the caller's number by default).
    pub key: String,
    /// The screen says `late = "sms"`: if the source is too slow for the hop, the caller
    /// may end the session with `sms_later` and send [`late_sms`] once the lookup is done.
    pub late_sms: bool,
}

/// The outcome of a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupOutcome {
    Found(Vec<(String, String)>),
    Missing,
    Failed,
}

enum Flow {
    /// A displayed screen is current.
    Shown,
    Effect(Effect),
    End(String),
}

/// Starts a session at home. `prefill` holds the inputs of a direct dial. `resume` is the
/// state of a session that dropped mid-way: when given (and no prefill), the first screen
/// asks whether to resume it.
pub fn start(
    menu: &Menu,
    channel: Channel,
    msisdn: &str,
    now: Option<LocalTime>,
    prefill: Vec<String>,
    resume: Option<State>,
) -> (State, Step) {
    let mut state = State::at(menu.home);
    state.now = now;
    if let Some(previous) = resume.filter(|_| prefill.is_empty()) {
        state.resume = Some(Box::new(previous));
        let step = show(menu, channel, &mut state, msisdn);
        return (state, step);
    }
    state.pending = prefill.into();
    let step = settle(menu, channel, &mut state, msisdn, menu.home);
    (state, step)
}

/// Starts a session on `screen` (an SMS keyword), with home as the way back.
pub fn start_at(
    menu: &Menu,
    channel: Channel,
    msisdn: &str,
    now: Option<LocalTime>,
    screen: ScreenId,
) -> (State, Step) {
    let mut state = State::at(menu.home);
    state.now = now;
    if screen != menu.home {
        state.history.push(menu.home);
    }
    let step = settle(menu, channel, &mut state, msisdn, screen);
    (state, step)
}

/// Enters `screen` and applies pending inputs.
fn settle(
    menu: &Menu,
    channel: Channel,
    state: &mut State,
    msisdn: &str,
    screen: ScreenId,
) -> Step {
    match enter(menu, channel, state, msisdn, screen) {
        Flow::Shown => drain(menu, channel, state, msisdn),
        Flow::Effect(e) => Step::Lookup(e),
        Flow::End(text) => Step::Show { text, end: true },
    }
}

/// Applies one answer of the subscriber.
pub fn input(menu: &Menu, channel: Channel, state: &mut State, msisdn: &str, text: &str) -> Step {
    state.pending.push_back(text.to_string());
    drain(menu, channel, state, msisdn)
}

/// Applies the outcome of the lookup the last [`Step::Lookup`] asked for.
pub fn lookup_done(
    menu: &Menu,
    channel: Channel,
    state: &mut State,
    msisdn: &str,
    outcome: LookupOutcome,
) -> Step {
    let flow = match &menu.screen(state.screen).kind {
        Kind::Lookup {
            missing,
            failed,
            next,
            ..
        } => match outcome {
            LookupOutcome::Found(fields) => {
                for (k, v) in fields {
                    state.set_var(&k, v);
                }
                match (&menu.screen(state.screen).body, next) {
                    (None, Some(next)) => enter(menu, channel, state, msisdn, *next),
                    _ => Flow::Shown,
                }
            }
            LookupOutcome::Missing => enter(menu, channel, state, msisdn, *missing),
            LookupOutcome::Failed => match failed {
                Some(f) => enter(menu, channel, state, msisdn, *f),
                None => Flow::End(menu.texts(channel).unavailable.clone()),
            },
        },
        // Not waiting for a lookup: nothing to apply.
        _ => Flow::Shown,
    };
    match flow {
        Flow::Shown => drain(menu, channel, state, msisdn),
        Flow::Effect(e) => Step::Lookup(e),
        Flow::End(text) => Step::Show { text, end: true },
    }
}

/// The SMS that answers a `late = "sms"` lookup once it is done: on the SMS channel, the
/// screen the lookup leads to (its text filled from the record; the `missing` screen when
/// there is no record), without choices, under the SMS text policy. `None` when the lookup
/// failed (the subscriber gets nothing more: the session already ended, and a second
/// apology would cost an SMS to say nothing), or when it leads to another lookup. `state`
/// is the session as it waited on the lookup; it is not changed.
pub fn late_sms(
    menu: &Menu,
    state: &State,
    msisdn: &str,
    outcome: LookupOutcome,
) -> Option<String> {
    // A menu swapped meanwhile may have sent the session elsewhere: nothing to answer.
    let waiting = matches!(menu.screen(state.screen).kind, Kind::Lookup { .. });
    if outcome == LookupOutcome::Failed || !waiting {
        return None;
    }
    let mut probe = state.clone();
    probe.pending.clear();
    match lookup_done(menu, Channel::Sms, &mut probe, msisdn, outcome) {
        Step::Show { .. } => {
            let text = sms_plain_of(menu, &probe, msisdn);
            (!text.is_empty()).then_some(text)
        }
        Step::Lookup(_) => None,
    }
}

/// Applies pending inputs until none is left, an effect is needed or the session ends.
fn drain(menu: &Menu, channel: Channel, state: &mut State, msisdn: &str) -> Step {
    // Apply inputs while some are left and the screen reached does not end the session.
    while !state.pending.is_empty() && !ends_here(menu, channel, state, msisdn) {
        let answer = state.pending.pop_front().unwrap_or_default();
        match apply(menu, channel, state, msisdn, answer.trim()) {
            Flow::Shown => {}
            Flow::Effect(e) => return Step::Lookup(e),
            Flow::End(text) => {
                state.pending.clear();
                return Step::Show { text, end: true };
            }
        }
    }
    state.pending.clear();
    show(menu, channel, state, msisdn)
}

/// True when the current screen's last page ends the session (whatever the page shown).
fn terminal(menu: &Menu, channel: Channel, state: &State) -> bool {
    let terminal = match &menu.screen(state.screen).kind {
        Kind::Info | Kind::Sms { .. } => true,
        Kind::Lookup { choices, .. } => choices.is_empty(),
        // A menu whose every choice is USSD-only (e.g. "Recevoir par SMS") ends on SMS.
        Kind::Menu { choices } => visible(menu, channel, choices).is_empty(),
        _ => false,
    };
    terminal && state.resume.is_none()
}

/// True when the current screen ends the session once shown (its last page, on USSD).
fn ends_here(menu: &Menu, channel: Channel, state: &State, msisdn: &str) -> bool {
    terminal(menu, channel, state)
        && match channel {
            Channel::Sms => true,
            Channel::Ussd => usize::from(state.page) + 1 >= pages_of(menu, state, msisdn).len(),
        }
}

/// Shows the current screen and clears the error flag. The screen is rendered once.
fn show(menu: &Menu, channel: Channel, state: &mut State, msisdn: &str) -> Step {
    let (text, last_page) = display(menu, channel, state, msisdn);
    let end = last_page && terminal(menu, channel, state);
    state.flash = false;
    Step::Show { text, end }
}

/// What the current state shows on `channel`, and whether it is the screen's last page.
fn display(menu: &Menu, channel: Channel, state: &State, msisdn: &str) -> (String, bool) {
    let t = menu.texts(channel);
    if state.resume.is_some() {
        let question = format!(
            "{}\n1. {}\n2. {}",
            t.resume, t.resume_continue, t.resume_restart
        );
        let flash = state.flash.then_some(t.invalid_choice.as_str());
        return (with_flash(flash, question), true);
    }
    let screen = menu.screen(state.screen);
    let (shown, last_page) = match channel {
        Channel::Ussd => {
            let pages = pages_of(menu, state, msisdn);
            let p = usize::from(state.page).min(pages.len() - 1);
            (pages[p].clone(), p + 1 == pages.len())
        }
        Channel::Sms => (sms_of(menu, state, msisdn), true),
    };
    let error;
    let flash = match &screen.kind {
        Kind::Input { error: e, .. } => {
            error = menu.policy(channel).apply(e);
            error.as_ref()
        }
        _ => t.invalid_choice.as_str(),
    };
    (with_flash(state.flash.then_some(flash), shown), last_page)
}

fn with_flash(flash: Option<&str>, page: String) -> String {
    match flash {
        Some(f) => format!("{f}\n{page}"),
        None => page,
    }
}

/// The value of a placeholder: the caller's number, when a line opens next
/// (`next_open:NAME`), or a variable.
fn value<'a>(menu: &Menu, state: &'a State, msisdn: &'a str, name: &str) -> Option<Cow<'a, str>> {
    if name == "msisdn" {
        return Some(Cow::Borrowed(msisdn));
    }
    if let Some(line) = name.strip_prefix("next_open:") {
        let now = state.now?;
        let next = menu.hours.get(line)?.next_opening(now)?;
        return Some(Cow::Owned(describe_next(now, next)));
    }
    state.var(name).map(Cow::Borrowed)
}

/// The current screen as one SMS text.
fn sms_of(menu: &Menu, state: &State, msisdn: &str) -> String {
    match &menu.screen(state.screen).body {
        Some(Body::Static(pages)) => pages.sms.clone(),
        Some(Body::Dynamic { text, choices, .. }) => {
            let policy = menu.sms_policy;
            let body = text.render(|name| value(menu, state, msisdn, name));
            let targets = match &menu.screen(state.screen).kind {
                Kind::Menu { choices } | Kind::Lookup { choices, .. } => choices.as_slice(),
                _ => &[],
            };
            let labels: Vec<String> = choices
                .iter()
                .zip(targets.iter().map(Some).chain(std::iter::repeat(None)))
                .filter(|(_, t)| {
                    t.is_none_or(|t| !matches!(menu.screen(*t).kind, Kind::Sms { .. }))
                })
                .map(|(l, _)| policy.apply(l).into_owned())
                .collect();
            sms_text(&policy.apply(&body), &labels)
        }
        None => String::new(),
    }
}

/// The choices a channel shows: on SMS, a choice leading to an `sms` screen (which sends
/// the screen by SMS) would be pointless and is left out.
fn visible<'c>(menu: &Menu, channel: Channel, choices: &'c [ScreenId]) -> Cow<'c, [ScreenId]> {
    let sends = |c: &ScreenId| matches!(menu.screen(*c).kind, Kind::Sms { .. });
    match channel {
        Channel::Sms if choices.iter().any(sends) => {
            Cow::Owned(choices.iter().copied().filter(|c| !sends(c)).collect())
        }
        _ => Cow::Borrowed(choices),
    }
}

/// The current screen's text alone, as an SMS.
fn sms_plain_of(menu: &Menu, state: &State, msisdn: &str) -> String {
    match &menu.screen(state.screen).body {
        Some(Body::Static(pages)) => pages.sms_plain.clone(),
        Some(Body::Dynamic { text, .. }) => {
            let body = text.render(|name| value(menu, state, msisdn, name));
            menu.sms_policy.apply(body.trim_end()).into_owned()
        }
        None => String::new(),
    }
}

/// The pages of the current screen: borrowed when static, rendered when dynamic.
fn pages_of<'m>(menu: &'m Menu, state: &State, msisdn: &str) -> Cow<'m, [String]> {
    match &menu.screen(state.screen).body {
        Some(Body::Static(pages)) => Cow::Borrowed(&pages.normal),
        Some(Body::Dynamic {
            text,
            choices,
            layout,
        }) => {
            let policy = menu.policy;
            let body = text.render(|name| value(menu, state, msisdn, name));
            let body = policy.apply(&body);
            let labels: Vec<String> = choices
                .iter()
                .map(|l| policy.apply(l).into_owned())
                .collect();
            match paginate(&body, &labels, *layout, &menu.texts, menu.limits) {
                Ok(pages) => Cow::Owned(pages.normal),
                // Choices are checked at load, so this cannot happen; show the text anyway.
                Err(_) => Cow::Owned(vec![body.into_owned()]),
            }
        }
        None => Cow::Owned(vec![String::new()]),
    }
}

/// Applies one answer to a displayed screen.
fn apply(menu: &Menu, channel: Channel, state: &mut State, msisdn: &str, answer: &str) -> Flow {
    if let Some(previous) = state.resume.take() {
        return match answer {
            "1" => {
                *state = State {
                    pending: std::mem::take(&mut state.pending),
                    ..*previous
                };
                Flow::Shown
            }
            "2" => {
                let pending = std::mem::take(&mut state.pending);
                *state = State::at(menu.home);
                state.pending = pending;
                enter(menu, channel, state, msisdn, menu.home)
            }
            _ => {
                state.resume = Some(previous);
                invalid(menu, channel, state, MAX_ERRORS)
            }
        };
    }
    if answer == HOME {
        state.history.clear();
        return enter(menu, channel, state, msisdn, menu.home);
    }
    if answer == BACK {
        if state.page > 0 {
            state.page -= 1;
            state.errors = 0;
            return Flow::Shown;
        }
        if let Some(previous) = state.history.pop() {
            return enter(menu, channel, state, msisdn, previous);
        }
        // Back on the first page of home: stay, it is not an error worth counting.
        return Flow::Shown;
    }
    if answer == MORE
        && channel == Channel::Ussd
        && usize::from(state.page) + 1 < pages_of(menu, state, msisdn).len()
    {
        state.page += 1;
        state.errors = 0;
        return Flow::Shown;
    }
    let screen = menu.screen(state.screen);
    match &screen.kind {
        Kind::Menu { choices } | Kind::Lookup { choices, .. } if !choices.is_empty() => {
            let choices = visible(menu, channel, choices);
            match answer.parse::<usize>() {
                Ok(n) if (1..=choices.len()).contains(&n) && !answer.starts_with('0') => {
                    let next = choices[n - 1];
                    push_history(state);
                    enter(menu, channel, state, msisdn, next)
                }
                _ => invalid(menu, channel, state, MAX_ERRORS),
            }
        }
        Kind::Input {
            regex,
            retries,
            save,
            next,
            ..
        } => {
            if regex.is_match(answer) {
                state.set_var(save, answer.to_string());
                push_history(state);
                enter(menu, channel, state, msisdn, *next)
            } else {
                invalid(menu, channel, state, *retries)
            }
        }
        _ => invalid(menu, channel, state, MAX_ERRORS),
    }
}

fn push_history(state: &mut State) {
    if state.history.len() == MAX_HISTORY {
        state.history.remove(0);
    }
    state.history.push(state.screen);
}

fn invalid(menu: &Menu, channel: Channel, state: &mut State, allowed: u8) -> Flow {
    state.errors = state.errors.saturating_add(1);
    state.invalid = state.invalid.saturating_add(1);
    if state.errors >= allowed.max(1) {
        return Flow::End(menu.texts(channel).too_many_errors.clone());
    }
    state.flash = true;
    Flow::Shown
}

/// Makes `id` current, following routers, and asks for a lookup when it is one.
fn enter(menu: &Menu, channel: Channel, state: &mut State, msisdn: &str, mut id: ScreenId) -> Flow {
    for _ in 0..MAX_AUTOMATIC_MOVES {
        state.screen = id;
        state.page = 0;
        state.errors = 0;
        state.flash = false;
        match &menu.screen(id).kind {
            Kind::Router { routes, default } => {
                id = routes
                    .iter()
                    .find(|r| holds(menu, &r.condition, state, msisdn))
                    .map_or(*default, |r| r.next);
            }
            Kind::Sms { screen } => {
                // The SMS text: this screen's, or the target screen's text without its choices.
                let text = match screen {
                    Some(target) => {
                        let mut probe = state.clone();
                        probe.screen = *target;
                        sms_plain_of(menu, &probe, msisdn)
                    }
                    None => sms_of(menu, state, msisdn),
                };
                return match channel {
                    Channel::Ussd => {
                        state.outgoing.push(text);
                        Flow::End(menu.texts.sms_sent.clone())
                    }
                    Channel::Sms => Flow::End(text),
                };
            }
            Kind::Lookup {
                source,
                key,
                late_sms,
                ..
            } => {
                let key = key.render(|name| value(menu, state, msisdn, name));
                return Flow::Effect(Effect {
                    source: source.clone(),
                    key,
                    late_sms: *late_sms,
                });
            }
            _ => return Flow::Shown,
        }
    }
    tracing::warn!(menu = %menu.file, screen = %menu.screen(id).id, "routers loop; session ended");
    Flow::End(menu.texts(channel).unavailable.clone())
}

fn holds(menu: &Menu, condition: &RouteCondition, state: &State, msisdn: &str) -> bool {
    match condition {
        RouteCondition::Prefix(prefixes) => prefixes.iter().any(|p| msisdn.starts_with(p.as_str())),
        RouteCondition::Matches(var, re) => state.var(var).is_some_and(|v| re.is_match(v)),
        RouteCondition::Equals(var, value) => state.var(var) == Some(value.as_str()),
        RouteCondition::Open(line) => match (state.now, menu.hours.get(line)) {
            (Some(now), Some(schedule)) => schedule.is_open(now),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests;
