//! The compiled menu: screens by index, choices resolved, static pages pre-rendered
//! ([`Body`], [`Pages`], [`LayoutKind`]).
//!
//! Built once by `load`; the hot path only indexes into it. Pure data: `render` and
//! `engine` read it, it imports neither (only the screen [`Template`]).

use std::collections::HashMap;

use regex::Regex;

use super::template::Template;
use crate::text::{TextPolicy, UssdLimits};

/// The channel a screen is shown on: USSD pages, or one SMS text.
pub use crate::message::Channel;

/// Index of a screen in [`Menu::screens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScreenId(pub u16);

/// One tenant's menu, ready to serve.
#[derive(Debug)]
pub struct Menu {
    /// The file it came from, for messages.
    pub file: String,
    pub screens: Vec<Screen>,
    pub home: ScreenId,
    /// Built-in phrases for USSD, under `policy`.
    pub texts: Texts,
    /// The USSD text policy.
    pub policy: TextPolicy,
    pub limits: UssdLimits,
    /// Built-in phrases for SMS, under `sms_policy`.
    pub sms_texts: Texts,
    /// The SMS text policy.
    pub sms_policy: TextPolicy,
    /// Keywords and fixed short codes for the SMS channel.
    pub sms: SmsRoutes,
    /// Opening hours by name (`[hours]`), for `open` routes and `{next_open:NAME}`.
    pub hours: HashMap<String, crate::hours::Schedule>,
    pub(crate) index: HashMap<String, ScreenId>,
}

/// How an SMS finds its screen.
#[derive(Debug, Default)]
pub struct SmsRoutes {
    /// Tried in order; matched against the text with accents folded, case ignored.
    pub keywords: Vec<Keyword>,
    /// Short codes that answer every text (that is no keyword) with one screen.
    pub fixed: HashMap<String, ScreenId>,
    /// The list of keywords sent for `AIDE`, `MENU`, `?` or an unknown text (SMS policy applied).
    pub help: String,
}

/// One SMS keyword.
#[derive(Debug)]
pub struct Keyword {
    /// Shown in the help list.
    pub name: String,
    pub regex: Regex,
    pub screen: ScreenId,
}

impl SmsRoutes {
    /// The screen a text starts, if a keyword matches it.
    pub fn keyword(&self, text: &str) -> Option<&Keyword> {
        let folded = crate::text::fold_accents(text.trim());
        self.keywords.iter().find(|k| k.regex.is_match(&folded))
    }
}

impl Menu {
    /// The screen with this id.
    pub fn screen(&self, id: ScreenId) -> &Screen {
        &self.screens[usize::from(id.0)]
    }

    /// The built-in phrases of a channel.
    pub fn texts(&self, channel: Channel) -> &Texts {
        match channel {
            Channel::Ussd => &self.texts,
            Channel::Sms => &self.sms_texts,
        }
    }

    /// The text policy of a channel.
    pub fn policy(&self, channel: Channel) -> TextPolicy {
        match channel {
            Channel::Ussd => self.policy,
            Channel::Sms => self.sms_policy,
        }
    }

    /// The screen named `name`, if the menu has one.
    pub fn find(&self, name: &str) -> Option<ScreenId> {
        self.index.get(name).copied()
    }
}

/// One screen of a menu.
#[derive(Debug)]
pub struct Screen {
    pub id: String,
    pub kind: Kind,
    /// What the screen shows; `None` for routers and silent lookups.
    pub(crate) body: Option<Body>,
}

impl Screen {
    /// True when the screen shows something (routers and silent lookups do not).
    pub fn is_shown(&self) -> bool {
        self.body.is_some()
    }

    /// The USSD pages of a static screen (`None` when rendered at run time or not shown).
    pub fn static_pages(&self) -> Option<&[String]> {
        match &self.body {
            Some(Body::Static(pages)) => Some(&pages.normal),
            _ => None,
        }
    }

    /// The text alone (no choices) of a static screen as an SMS: what an `sms` screen
    /// pointing at it sends.
    pub fn static_sms_plain(&self) -> Option<&str> {
        match &self.body {
            Some(Body::Static(pages)) => Some(&pages.sms_plain),
            _ => None,
        }
    }

    /// The SMS text of a static screen (`None` when rendered at run time or not shown).
    pub fn static_sms(&self) -> Option<&str> {
        match &self.body {
            Some(Body::Static(pages)) => Some(&pages.sms),
            _ => None,
        }
    }
}

/// What a screen does with the subscriber's answer.
#[derive(Debug)]
pub enum Kind {
    /// Numbered choices.
    Menu { choices: Vec<ScreenId> },
    /// Shows its text and ends the session.
    Info,
    /// Free text checked by a regex.
    Input {
        regex: Regex,
        /// As written; the channel's policy applies when shown.
        error: String,
        retries: u8,
        save: String,
        next: ScreenId,
    },
    /// Fetches a record from a data source, then shows it or moves on silently.
    Lookup {
        source: String,
        key: Template,
        choices: Vec<ScreenId>,
        missing: ScreenId,
        failed: Option<ScreenId>,
        next: Option<ScreenId>,
        /// `late = "sms"`: when the source is slower than the hop allows, the USSD session
        /// ends with `sms_later` and the answer follows by SMS ([`crate::menu::late_sms`]).
        late_sms: bool,
    },
    /// Sends a text by SMS to the caller and ends the USSD session with `sms_sent`. On the
    /// SMS channel it simply answers with that text. The text is this screen's own
    /// (`text`, rendered in `body`) or, with `screen`, that screen's SMS text.
    Sms { screen: Option<ScreenId> },
    /// Branches at once on a condition.
    Router {
        routes: Vec<Route>,
        default: ScreenId,
    },
}

/// One branch of a router.
#[derive(Debug)]
pub struct Route {
    pub condition: RouteCondition,
    pub next: ScreenId,
}

/// The condition of a route.
#[derive(Debug)]
pub enum RouteCondition {
    /// The caller's number starts with one of these.
    Prefix(Vec<String>),
    /// A variable matches a regex (anywhere in its value).
    Matches(String, Regex),
    /// A variable equals a value exactly.
    Equals(String, String),
    /// The line named in `[hours]` is open now (tenant time).
    Open(String),
}

/// The built-in phrases of a tenant, already passed through its text policy.
#[derive(Debug, Clone)]
pub struct Texts {
    pub invalid_choice: String,
    pub too_many_errors: String,
    pub more: String,
    pub back: String,
    pub home_label: String,
    pub resume: String,
    pub resume_continue: String,
    pub resume_restart: String,
    pub goodbye: String,
    pub unavailable: String,
    pub sms_sent: String,
    /// A dial or path with more inputs than one hop applies (`*144*1*0*1*…#`).
    pub too_long: String,
    /// Ends the session when a `late = "sms"` lookup is too slow: the answer follows by SMS.
    pub sms_later: String,
}

impl Default for Texts {
    fn default() -> Self {
        Texts {
            invalid_choice: "Choix invalide.".into(),
            too_many_errors: "Trop d'erreurs. Composez à nouveau le code pour recommencer.".into(),
            more: "Suite".into(),
            back: "Retour".into(),
            home_label: "Accueil".into(),
            resume: "Vous n'aviez pas terminé.".into(),
            resume_continue: "Reprendre".into(),
            resume_restart: "Recommencer".into(),
            goodbye: "Au revoir.".into(),
            unavailable: "Service momentanément indisponible. Réessayez plus tard.".into(),
            sms_sent: "Vous allez recevoir un SMS.".into(),
            too_long: "Trop de choix à la fois. Composez le code du service, puis choisissez étape par étape.".into(),
            sms_later: "Vous recevrez la réponse par SMS.".into(),
        }
    }
}

/// Number of bad answers in a row after which a session ends, unless a screen says otherwise.
pub const MAX_ERRORS: u8 = 3;
/// The input that shows the next page.
pub const MORE: &str = "98";
/// The input that goes back.
pub const BACK: &str = "0";
/// The input that goes home.
pub const HOME: &str = "00";
/// Most choices a screen may have (98 is the next-page key).
pub const MAX_CHOICES: usize = 97;

/// What a displayed screen shows.
#[derive(Debug)]
pub(crate) enum Body {
    /// Rendered once at load, for both channels.
    Static(Pages),
    /// Rendered at each display (placeholders). Text and labels as written: the channel's
    /// policy applies after rendering.
    Dynamic {
        text: Template,
        choices: Vec<String>,
        layout: LayoutKind,
    },
}

/// A screen rendered for both channels.
#[derive(Debug, Clone)]
pub(crate) struct Pages {
    /// USSD pages.
    pub normal: Vec<String>,
    /// The whole screen as one SMS text.
    pub sms: String,
    /// The screen's text alone, without its choices, as an SMS (what `sms` screens send).
    pub sms_plain: String,
}

/// Whether the last page of a screen ends the session, and whether it is the home screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LayoutKind {
    /// The last page ends the session (info screens, lookups without choices).
    pub terminal: bool,
    /// Home shows no "back / home" line on its first page.
    pub home: bool,
}
