//! Menu loading: TOML text in, a compiled [`Menu`] and every problem found out.
//!
//! Never stops at the first problem: each screen is read on its own, so one bad screen
//! does not hide the others. Problems read `file:screen: message` (see [`crate::diagnostic::Diagnostic`]).
//! Pure: the caller reads the file.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use regex::Regex;
use serde::Deserialize;

use super::model::{
    Keyword, Kind, Menu, Route, RouteCondition, Screen, ScreenId, SmsRoutes, Texts, MAX_CHOICES,
    MAX_ERRORS,
};
use super::render::{
    fit_check, page_encoding, paginate, policy_owned, sms_text, Body, LayoutKind, Template,
};
use crate::diagnostic::{Diagnostic, Severity};
use crate::text::{Encoding, TextPolicy, UssdLimits};

/// What a menu needs to know about its tenant.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The USSD text policy.
    pub policy: TextPolicy,
    /// The SMS text policy.
    pub sms_policy: TextPolicy,
    pub limits: UssdLimits,
    /// The tenant's data sources and, when known, their field names.
    pub sources: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    home: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTexts {
    invalid_choice: Option<String>,
    too_many_errors: Option<String>,
    more: Option<String>,
    back: Option<String>,
    home_label: Option<String>,
    resume: Option<String>,
    resume_continue: Option<String>,
    resume_restart: Option<String>,
    goodbye: Option<String>,
    unavailable: Option<String>,
    sms_sent: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSms {
    help: Option<String>,
    #[serde(default)]
    keywords: Vec<RawKeyword>,
    #[serde(default)]
    fixed: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyword {
    name: String,
    #[serde(rename = "match")]
    pattern: String,
    screen: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScreen {
    /// `sms` screens: send that screen's SMS text.
    screen: Option<String>,
    kind: String,
    text: Option<String>,
    choices: Option<Vec<RawChoice>>,
    pattern: Option<String>,
    error: Option<String>,
    retries: Option<u8>,
    save: Option<String>,
    next: Option<String>,
    source: Option<String>,
    key: Option<String>,
    missing: Option<String>,
    failed: Option<String>,
    routes: Option<Vec<RawRoute>>,
    default: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChoice {
    label: String,
    next: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    open: Option<String>,
    prefix: Option<Vec<String>>,
    var: Option<String>,
    matches: Option<String>,
    equals: Option<String>,
    next: String,
}

/// Collects diagnostics for one file.
struct Report<'a> {
    file: &'a str,
    items: Vec<Diagnostic>,
}

impl Report<'_> {
    fn push(&mut self, severity: Severity, screen: Option<&str>, message: impl Into<String>) {
        self.items.push(Diagnostic {
            severity,
            file: self.file.to_string(),
            place: screen.map(str::to_string),
            message: message.into(),
        });
    }
    fn error(&mut self, screen: &str, message: impl Into<String>) {
        self.push(Severity::Error, Some(screen), message);
    }
    fn warn(&mut self, screen: &str, message: impl Into<String>) {
        self.push(Severity::Warning, Some(screen), message);
    }
    fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }
}

/// Loads a menu from its TOML text. Returns the menu when it has no error, and every
/// problem found (errors and warnings) in any case.
pub fn load(file: &str, toml_text: &str, options: &LoadOptions) -> (Option<Menu>, Vec<Diagnostic>) {
    let mut report = Report {
        file,
        items: Vec::new(),
    };
    let menu = load_inner(toml_text, options, &mut report);
    let menu = if report.has_errors() { None } else { menu };
    (menu, report.items)
}

fn load_inner(toml_text: &str, options: &LoadOptions, report: &mut Report) -> Option<Menu> {
    let table: toml::Table = match toml::from_str(toml_text) {
        Ok(t) => t,
        Err(e) => {
            report.push(
                Severity::Error,
                None,
                format!("invalid TOML: {}", e.message()),
            );
            return None;
        }
    };
    for key in table.keys() {
        if !matches!(key.as_str(), "menu" | "texts" | "screens" | "sms" | "hours") {
            report.error(
                key,
                "unknown section (expected [menu], [texts], [sms], [hours] or [screens.<id>])",
            );
        }
    }
    let header: Option<RawHeader> = match table.get("menu") {
        Some(v) => v
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| report.error("menu", e.message().to_string()))
            .ok(),
        None => {
            report.error(
                "menu",
                "missing [menu] section with `home = \"<screen id>\"`",
            );
            None
        }
    };
    let raw_texts: RawTexts = match table.get("texts") {
        Some(v) => v
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| report.error("texts", e.message().to_string()))
            .unwrap_or_default(),
        None => RawTexts::default(),
    };
    let raw_sms: RawSms = match table.get("sms") {
        Some(v) => v
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| report.error("sms", e.message().to_string()))
            .unwrap_or_default(),
        None => RawSms::default(),
    };
    let raw_hours: BTreeMap<String, Vec<String>> = match table.get("hours") {
        Some(v) => v
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| report.error("hours", e.message().to_string()))
            .unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let mut hours = HashMap::new();
    for (line, rules) in &raw_hours {
        let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
        match crate::hours::Schedule::parse(&rules) {
            Ok(s) => {
                hours.insert(line.clone(), s);
            }
            Err(e) => report.error(&format!("hours.{line}"), e),
        }
    }
    let texts = build_texts(&raw_texts, options.policy);
    let sms_texts = build_texts(&raw_texts, options.sms_policy);

    let Some(screens_value) = table.get("screens") else {
        report.error("screens", "no screens: add [screens.<id>] sections");
        return None;
    };
    let Some(screens_table) = screens_value.as_table() else {
        report.error(
            "screens",
            "`screens` must be a table of [screens.<id>] sections",
        );
        return None;
    };

    // First pass: ids and raw screens, each read on its own.
    let mut raws: BTreeMap<&str, Option<RawScreen>> = BTreeMap::new();
    let mut index: HashMap<String, ScreenId> = HashMap::new();
    for (i, (id, value)) in screens_table.iter().enumerate() {
        if !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            report.error(id, "a screen id holds only a-z, 0-9 and _");
        }
        let Ok(n) = u16::try_from(i) else {
            report.error(id, "too many screens (at most 65535)");
            return None;
        };
        index.insert(id.clone(), ScreenId(n));
        let raw = value
            .clone()
            .try_into::<RawScreen>()
            .map_err(|e| report.error(id, e.message().to_string()))
            .ok();
        raws.insert(id.as_str(), raw);
    }
    let home = header.and_then(|h| match index.get(&h.home) {
        Some(id) => Some(*id),
        None => {
            report.error("menu", format!("home screen `{}` does not exist", h.home));
            None
        }
    });

    let saved_vars: HashSet<&str> = raws
        .values()
        .flatten()
        .filter_map(|r| r.save.as_deref())
        .collect();
    let next_open: Vec<String> = raw_hours.keys().map(|l| format!("next_open:{l}")).collect();
    let mut known_vars: HashSet<&str> = saved_vars.clone();
    known_vars.insert("msisdn");
    known_vars.extend(next_open.iter().map(String::as_str));
    for fields in options.sources.values() {
        known_vars.extend(fields.iter().map(String::as_str));
    }

    let kinds: HashMap<&str, &str> = raws
        .iter()
        .filter_map(|(id, r)| Some((*id, r.as_ref()?.kind.as_str())))
        .collect();
    let ctx = Ctx {
        kinds: &kinds,
        hours: &hours,
        index: &index,
        options,
        texts: &texts,
        known_vars: &known_vars,
        home,
    };
    let mut screens = Vec::with_capacity(screens_table.len());
    for (id, _) in screens_table.iter() {
        let raw = raws.get(id.as_str()).and_then(Option::as_ref);
        let screen = raw.and_then(|raw| build_screen(id, raw, &ctx, report));
        screens.push(screen);
    }

    check_texts(&texts, options.limits, report);
    let sms = build_sms(raw_sms, &index, options.sms_policy, report);
    let home = home?;
    if screens.iter().any(Option::is_none) {
        return None;
    }
    let screens: Vec<Screen> = screens.into_iter().flatten().collect();
    check_reachable(&screens, home, report);
    if matches!(
        screens[usize::from(home.0)].kind,
        Kind::Router { .. } | Kind::Lookup { .. }
    ) {
        report.warn(
            &screens[usize::from(home.0)].id,
            "home is a router or lookup: `0`/`00` will run it again",
        );
    }
    Some(Menu {
        file: report.file.to_string(),
        screens,
        home,
        texts,
        policy: options.policy,
        limits: options.limits,
        sms_texts,
        sms_policy: options.sms_policy,
        sms: sms?,
        hours,
        index,
    })
}

fn build_sms(
    raw: RawSms,
    index: &HashMap<String, ScreenId>,
    policy: TextPolicy,
    report: &mut Report,
) -> Option<SmsRoutes> {
    let before = report.items.len();
    let mut routes = SmsRoutes::default();
    for (i, k) in raw.keywords.iter().enumerate() {
        let at = format!("sms.keywords[{}]", i + 1);
        let screen = index.get(&k.screen).copied();
        if screen.is_none() {
            report.error(
                &at,
                format!("`screen` names screen `{}`, which does not exist", k.screen),
            );
        }
        // Accents are folded on both sides, case is ignored, and the keyword starts the text.
        let pattern = format!(
            r"(?i)^\s*(?:{})(?:\W|$)",
            crate::text::fold_accents(&k.pattern)
        );
        let regex = match Regex::new(&pattern) {
            Ok(r) => Some(r),
            Err(e) => {
                report.error(&at, format!("`match` does not compile: {e}"));
                None
            }
        };
        if let Some(r) = &regex {
            if !r.is_match(&crate::text::fold_accents(&k.name)) {
                report.warn(
                    &at,
                    format!("the keyword's own name `{}` does not match it", k.name),
                );
            }
        }
        if let (Some(regex), Some(screen)) = (regex, screen) {
            routes.keywords.push(Keyword {
                name: k.name.clone(),
                regex,
                screen,
            });
        }
    }
    for (code, screen) in &raw.fixed {
        match index.get(screen) {
            Some(id) => {
                routes.fixed.insert(code.clone(), *id);
            }
            None => report.error(
                "sms.fixed",
                format!("short code {code} names screen `{screen}`, which does not exist"),
            ),
        }
    }
    let help = raw.help.unwrap_or_else(|| {
        let names: Vec<&str> = raw.keywords.iter().map(|k| k.name.as_str()).collect();
        format!("Envoyez un mot-clé : {}.", names.join(", "))
    });
    routes.help = policy_owned(policy, &help);
    if report.items[before..]
        .iter()
        .any(|d| d.severity == Severity::Error)
    {
        return None;
    }
    Some(routes)
}

fn build_texts(raw: &RawTexts, policy: TextPolicy) -> Texts {
    let d = Texts::default();
    let p = |v: &Option<String>, d: String| policy_owned(policy, v.as_ref().unwrap_or(&d));
    Texts {
        invalid_choice: p(&raw.invalid_choice, d.invalid_choice),
        too_many_errors: p(&raw.too_many_errors, d.too_many_errors),
        more: p(&raw.more, d.more),
        back: p(&raw.back, d.back),
        home_label: p(&raw.home_label, d.home_label),
        resume: p(&raw.resume, d.resume),
        resume_continue: p(&raw.resume_continue, d.resume_continue),
        resume_restart: p(&raw.resume_restart, d.resume_restart),
        goodbye: p(&raw.goodbye, d.goodbye),
        unavailable: p(&raw.unavailable, d.unavailable),
        sms_sent: p(&raw.sms_sent, d.sms_sent),
    }
}

fn check_texts(texts: &Texts, limits: UssdLimits, report: &mut Report) {
    let resume = format!(
        "{}\n{}\n1. {}\n2. {}",
        texts.invalid_choice, texts.resume, texts.resume_continue, texts.resume_restart
    );
    for (name, text) in [
        ("resume", resume.as_str()),
        ("too_many_errors", &texts.too_many_errors),
        ("goodbye", &texts.goodbye),
        ("unavailable", &texts.unavailable),
        ("sms_sent", &texts.sms_sent),
    ] {
        if let Err(e) = fit_check(text, limits) {
            report.error("texts", format!("`{name}` does not fit on a screen: {e}"));
        }
    }
}

struct Ctx<'a> {
    /// Each screen's `kind` as written, to know which choices are USSD-only.
    kinds: &'a HashMap<&'a str, &'a str>,
    hours: &'a HashMap<String, crate::hours::Schedule>,
    index: &'a HashMap<String, ScreenId>,
    options: &'a LoadOptions,
    texts: &'a Texts,
    known_vars: &'a HashSet<&'a str>,
    home: Option<ScreenId>,
}

impl Ctx<'_> {
    fn target(&self, id: &str, field: &str, name: &str, report: &mut Report) -> Option<ScreenId> {
        match self.index.get(name) {
            Some(t) => Some(*t),
            None => {
                report.error(
                    id,
                    format!("`{field}` names screen `{name}`, which does not exist"),
                );
                None
            }
        }
    }
}

/// Fields each kind accepts, besides `kind`.
fn allowed(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "menu" => &["text", "choices"],
        "info" => &["text"],
        "input" => &["text", "pattern", "error", "retries", "save", "next"],
        "lookup" => &[
            "text", "choices", "source", "key", "missing", "failed", "next",
        ],
        "router" => &["routes", "default"],
        "sms" => &["text", "screen"],
        _ => return None,
    })
}

fn present(raw: &RawScreen) -> Vec<&'static str> {
    let mut v = Vec::new();
    let fields: [(&'static str, bool); 14] = [
        ("screen", raw.screen.is_some()),
        ("text", raw.text.is_some()),
        ("choices", raw.choices.is_some()),
        ("pattern", raw.pattern.is_some()),
        ("error", raw.error.is_some()),
        ("retries", raw.retries.is_some()),
        ("save", raw.save.is_some()),
        ("next", raw.next.is_some()),
        ("source", raw.source.is_some()),
        ("key", raw.key.is_some()),
        ("missing", raw.missing.is_some()),
        ("failed", raw.failed.is_some()),
        ("routes", raw.routes.is_some()),
        ("default", raw.default.is_some()),
    ];
    for (name, is) in fields {
        if is {
            v.push(name);
        }
    }
    v
}

fn required<'r, T>(
    id: &str,
    kind: &str,
    field: &str,
    v: &'r Option<T>,
    report: &mut Report,
) -> Option<&'r T> {
    if v.is_none() {
        report.error(id, format!("a {kind} screen needs `{field}`"));
    }
    v.as_ref()
}

fn build_screen(id: &str, raw: &RawScreen, ctx: &Ctx, report: &mut Report) -> Option<Screen> {
    let Some(allowed) = allowed(&raw.kind) else {
        report.error(
            id,
            format!(
                "unknown kind `{}` (expected menu, info, input, lookup, router or sms)",
                raw.kind
            ),
        );
        return None;
    };
    let before = report.items.len();
    for field in present(raw) {
        if !allowed.contains(&field) {
            report.error(
                id,
                format!("field `{field}` is not allowed on a {} screen", raw.kind),
            );
        }
    }
    let kind_name = raw.kind.as_str();
    let mut choices = Vec::new();
    let mut labels = Vec::new();
    if let Some(raw_choices) = &raw.choices {
        if raw_choices.len() > MAX_CHOICES {
            report.error(
                id,
                format!("{} choices, at most {MAX_CHOICES}", raw_choices.len()),
            );
        }
        for (i, c) in raw_choices.iter().enumerate() {
            if c.label.trim().is_empty() {
                report.error(id, format!("choice {} has an empty label", i + 1));
            }
            if c.label.contains('{') || c.label.contains('\n') {
                report.error(
                    id,
                    format!(
                        "choice {} label must be one line without placeholders",
                        i + 1
                    ),
                );
            }
            labels.push(c.label.trim().to_string());
            choices.push(ctx.target(id, "choices.next", &c.next, report));
        }
    }
    let choices: Option<Vec<ScreenId>> = choices.into_iter().collect();

    let kind = match kind_name {
        "menu" => {
            let choices = required(id, kind_name, "choices", &raw.choices, report).and(choices);
            if raw.choices.as_ref().is_some_and(Vec::is_empty) {
                report.error(id, "a menu screen needs at least one choice");
            }
            choices.map(|choices| Kind::Menu { choices })
        }
        "info" => {
            required(id, kind_name, "text", &raw.text, report);
            Some(Kind::Info)
        }
        "input" => {
            required(id, kind_name, "text", &raw.text, report);
            let pattern = required(id, kind_name, "pattern", &raw.pattern, report);
            let error = required(id, kind_name, "error", &raw.error, report);
            let save = required(id, kind_name, "save", &raw.save, report);
            let next = required(id, kind_name, "next", &raw.next, report)
                .and_then(|n| ctx.target(id, "next", n, report));
            let regex = pattern.and_then(|p| match Regex::new(&format!("^(?:{p})$")) {
                Ok(r) => Some(r),
                Err(e) => {
                    report.error(id, format!("`pattern` does not compile: {e}"));
                    None
                }
            });
            if raw.retries == Some(0) {
                report.error(id, "`retries` must be at least 1");
            }
            match (regex, error, save, next) {
                (Some(regex), Some(error), Some(save), Some(next)) => Some(Kind::Input {
                    regex,
                    error: error.clone(),
                    retries: raw.retries.unwrap_or(MAX_ERRORS),
                    save: save.clone(),
                    next,
                }),
                _ => None,
            }
        }
        "lookup" => {
            let source = required(id, kind_name, "source", &raw.source, report);
            if let Some(s) = source {
                if !ctx.options.sources.contains_key(s) {
                    let mut names: Vec<_> =
                        ctx.options.sources.keys().map(String::as_str).collect();
                    names.sort_unstable();
                    report.error(
                        id,
                        format!(
                            "data source `{s}` is not configured for this tenant (configured: {})",
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        ),
                    );
                }
            }
            let missing = required(id, kind_name, "missing", &raw.missing, report)
                .and_then(|m| ctx.target(id, "missing", m, report));
            let failed = raw
                .failed
                .as_ref()
                .map(|f| ctx.target(id, "failed", f, report));
            let next = raw.next.as_ref().map(|n| ctx.target(id, "next", n, report));
            if raw.text.is_none() && raw.next.is_none() {
                report.error(id, "a lookup screen needs `text` (to show the record) or `next` (to move on silently)");
            }
            if raw.text.is_some() && raw.next.is_some() {
                report.error(id, "a lookup screen has `text` or `next`, not both (use `choices` to go on after showing)");
            }
            if raw.text.is_none() && raw.choices.is_some() {
                report.error(id, "`choices` need `text` on a lookup screen");
            }
            let key = match Template::parse(raw.key.as_deref().unwrap_or("{msisdn}")) {
                Ok(k) => Some(k),
                Err(e) => {
                    report.error(id, format!("`key`: {e}"));
                    None
                }
            };
            // `failed` and `next` are optional, but when given they must name a screen.
            let targets_ok = !matches!(failed, Some(None)) && !matches!(next, Some(None));
            match (source, key, missing, choices.clone(), targets_ok) {
                (Some(source), Some(key), Some(missing), Some(choices), true) => {
                    Some(Kind::Lookup {
                        source: source.clone(),
                        key,
                        choices,
                        missing,
                        failed: failed.flatten(),
                        next: next.flatten(),
                    })
                }
                _ => None,
            }
        }
        "sms" => match (&raw.text, &raw.screen) {
            (Some(_), None) => Some(Kind::Sms { screen: None }),
            (None, Some(target)) => ctx
                .target(id, "screen", target, report)
                .map(|t| Kind::Sms { screen: Some(t) }),
            _ => {
                report.error(id, "an sms screen has `text` (the SMS) or `screen` (send that screen's text), one of them");
                None
            }
        },
        "router" => {
            let default = required(id, kind_name, "default", &raw.default, report)
                .and_then(|d| ctx.target(id, "default", d, report));
            let mut routes = Vec::new();
            for (i, r) in raw.routes.iter().flatten().enumerate() {
                let n = i + 1;
                let next = ctx.target(id, &format!("routes[{n}].next"), &r.next, report);
                let condition = match (&r.open, &r.prefix, &r.var, &r.matches, &r.equals) {
                    (Some(line), None, None, None, None) => {
                        if ctx.hours.contains_key(line) {
                            Some(RouteCondition::Open(line.clone()))
                        } else {
                            report.error(
                                id,
                                format!(
                                    "route {n}: `open` names `{line}`, which is not in [hours]"
                                ),
                            );
                            None
                        }
                    }
                    (None, Some(p), None, None, None) if !p.is_empty() => {
                        Some(RouteCondition::Prefix(p.clone()))
                    }
                    (None, None, Some(v), Some(m), None) => match Regex::new(m) {
                        Ok(re) => Some(RouteCondition::Matches(v.clone(), re)),
                        Err(e) => {
                            report.error(id, format!("route {n}: `matches` does not compile: {e}"));
                            None
                        }
                    },
                    (None, None, Some(v), None, Some(e)) => {
                        Some(RouteCondition::Equals(v.clone(), e.clone()))
                    }
                    _ => {
                        report.error(
                            id,
                            format!("route {n} needs exactly one condition: `open`, `prefix = [..]`, `var` + `matches`, or `var` + `equals`"),
                        );
                        None
                    }
                };
                if let Some(RouteCondition::Matches(v, _) | RouteCondition::Equals(v, _)) =
                    &condition
                {
                    if !ctx.known_vars.contains(v.as_str()) {
                        report.warn(id, format!("route {n}: variable `{v}` is never saved by an input screen nor a data source"));
                    }
                }
                if let (Some(condition), Some(next)) = (condition, next) {
                    routes.push(Route { condition, next });
                }
            }
            if raw.routes.as_ref().is_none_or(Vec::is_empty) {
                report.warn(id, "a router without routes always goes to `default`");
            }
            default.map(|default| Kind::Router { routes, default })
        }
        _ => unreachable!("kinds are checked above"),
    };

    // A menu without `text` still shows its choices; routers and silent lookups show nothing.
    let shown = match kind_name {
        "router" => None,
        "menu" => Some(raw.text.as_deref().unwrap_or("")),
        _ => raw.text.as_deref(),
    };
    let layout = LayoutKind {
        terminal: match kind_name {
            "info" | "sms" => true,
            "lookup" => raw.choices.as_ref().is_none_or(Vec::is_empty),
            _ => false,
        },
        home: ctx.home == ctx.index.get(id).copied(),
    };
    let body = shown.and_then(|text| build_body(id, text, labels, layout, raw, ctx, report));

    if report.items[before..]
        .iter()
        .any(|d| d.severity == Severity::Error)
    {
        return None;
    }
    Some(Screen {
        id: id.to_string(),
        kind: kind?,
        body,
    })
}

fn build_body(
    id: &str,
    text: &str,
    labels: Vec<String>,
    layout: LayoutKind,
    raw: &RawScreen,
    ctx: &Ctx,
    report: &mut Report,
) -> Option<Body> {
    let opts = ctx.options;
    // Placeholders are found in the text as written; each channel's policy applies after.
    let template = match Template::parse(text) {
        Ok(t) => t,
        Err(e) => {
            report.error(id, format!("`text`: {e}"));
            return None;
        }
    };
    for v in template.vars() {
        if !ctx.known_vars.contains(v) {
            report.warn(
                id,
                format!("placeholder {{{v}}} is never saved by an input screen nor a data source"),
            );
        }
    }
    let ussd_labels: Vec<String> = labels
        .iter()
        .map(|l| policy_owned(opts.policy, l))
        .collect();
    let plain = template.as_static().map(|t| policy_owned(opts.policy, t));
    // Choices must fit whatever the text becomes: check them with the text left out.
    let probe_text = plain.as_deref().unwrap_or("");
    let pages = match paginate(probe_text, &ussd_labels, layout, ctx.texts, opts.limits) {
        Ok(p) => p,
        Err(e) => {
            report.error(id, e);
            return None;
        }
    };
    for (i, page) in pages.normal.iter().enumerate() {
        if page_encoding(page) == Encoding::Ucs2 {
            report.warn(
                id,
                format!(
                    "page {} falls to UCS-2 (80 characters a screen instead of 182): {}",
                    i + 1,
                    first_non_gsm(page)
                ),
            );
            break;
        }
    }
    if let (Some(error), Some(first)) = (&raw.error, pages.normal.first()) {
        let shown = format!("{}\n{first}", policy_owned(opts.policy, error));
        if let Err(e) = fit_check(&shown, opts.limits) {
            report.error(
                id,
                format!("`error` above the prompt does not fit on a screen: {e}"),
            );
        }
    }
    match template.as_static() {
        Some(t) => {
            // On SMS, a choice that would send this screen by SMS is left out.
            let targets: Vec<&str> = raw
                .choices
                .iter()
                .flatten()
                .map(|c| c.next.as_str())
                .collect();
            let sms_labels: Vec<String> = labels
                .iter()
                .zip(targets.iter().map(Some).chain(std::iter::repeat(None)))
                .filter(|(_, t)| t.is_none_or(|t| ctx.kinds.get(t) != Some(&"sms")))
                .map(|(l, _)| policy_owned(opts.sms_policy, l))
                .collect();
            let mut pages = pages;
            let plain = policy_owned(opts.sms_policy, t);
            pages.sms = sms_text(&plain, &sms_labels);
            pages.sms_plain = plain.trim_end().to_string();
            Some(Body::Static(pages))
        }
        None => Some(Body::Dynamic {
            text: template,
            choices: labels,
            layout,
        }),
    }
}

fn first_non_gsm(page: &str) -> String {
    page.chars()
        .find(|c| crate::text::gsm7_cost(*c).is_none())
        .map(|c| format!("first character outside GSM-7: {c:?}"))
        .unwrap_or_default()
}

fn check_reachable(screens: &[Screen], home: ScreenId, report: &mut Report) {
    let mut seen = vec![false; screens.len()];
    let mut queue = VecDeque::from([home]);
    seen[usize::from(home.0)] = true;
    while let Some(id) = queue.pop_front() {
        let mut push = |t: ScreenId| {
            if !seen[usize::from(t.0)] {
                seen[usize::from(t.0)] = true;
                queue.push_back(t);
            }
        };
        match &screens[usize::from(id.0)].kind {
            Kind::Menu { choices } => choices.iter().copied().for_each(&mut push),
            Kind::Info => {}
            Kind::Sms { screen } => screen.iter().copied().for_each(&mut push),
            Kind::Input { next, .. } => push(*next),
            Kind::Lookup {
                choices,
                missing,
                failed,
                next,
                ..
            } => {
                choices.iter().copied().for_each(&mut push);
                push(*missing);
                failed.iter().copied().for_each(&mut push);
                next.iter().copied().for_each(&mut push);
            }
            Kind::Router { routes, default } => {
                routes.iter().for_each(|r| push(r.next));
                push(*default);
            }
        }
    }
    for (i, s) in screens.iter().enumerate() {
        if !seen[i] {
            report.warn(&s.id, "no path from home reaches this screen");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml_text: &str, policy: TextPolicy) -> Vec<String> {
        let options = LoadOptions {
            policy,
            sms_policy: policy,
            sources: HashMap::from([("conso".to_string(), vec!["minutes".to_string()])]),
            ..LoadOptions::default()
        };
        let (menu, diags) = load("m.toml", toml_text, &options);
        if diags.iter().any(|d| d.severity == Severity::Error) {
            assert!(menu.is_none(), "a menu with errors is not served");
        }
        diags.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_screen() {
        let text = r#"
[menu]
home = "accueil"

[hours]
"1000" = ["lun-xyz 07:30-15:45"]

[screens.accueil]
kind = "menu"
choices = [
  { label = "Vers nulle part", next = "nowhere" },
  { label = "Saisie", next = "saisie" },
  { label = "Fermé ?", next = "route" },
  { label = "Conso", next = "conso" },
  { label = "Trop long", next = "long" },
]

[screens.saisie]
kind = "input"
text = "Votre code ?"
pattern = "[0-9"
error = "Code invalide."
save = "code"
next = "fin"

[screens.route]
kind = "router"
routes = [{ open = "2000", next = "fin" }]
default = "fin"

[screens.conso]
kind = "lookup"
source = "billing"
text = "{minutes} min"

[screens.long]
kind = "menu"
choices = [{ label = "LONGLABEL", next = "fin" }]

[screens.fin]
kind = "info"
text = "Fin."
colour = "red"

[screens.orphan]
kind = "info"
text = "Personne ne vient ici."

[screens.etrange]
kind = "gauge"
"#
        .replace("LONGLABEL", &"x".repeat(200));
        let all = problems(&text, TextPolicy::Transliterate);
        for needle in [
            "m.toml:hours.1000: error:",
            "m.toml:accueil: error: `choices.next` names screen `nowhere`, which does not exist",
            "m.toml:saisie: error: `pattern` does not compile",
            "m.toml:route: error: route 1: `open` names `2000`, which is not in [hours]",
            "m.toml:conso: error: data source `billing` is not configured for this tenant (configured: conso)",
            "m.toml:conso: error: a lookup screen needs `missing`",
            "m.toml:long: error: choice 1 is too long to fit on a page",
            "m.toml:fin: error: unknown field `colour`",
            "m.toml:etrange: error: unknown kind `gauge`",
        ] {
            assert!(all.iter().any(|p| p.starts_with(needle)), "{needle} in {all:#?}");
        }
    }

    #[test]
    fn warnings_do_not_stop_a_menu() {
        let text = r#"
[menu]
home = "accueil"

[screens.accueil]
kind = "menu"
text = "Reçu : ça coûte 1 000 F"
choices = [{ label = "Fin", next = "fin" }]

[screens.fin]
kind = "info"
text = "Fin."

[screens.orphan]
kind = "info"
text = "Personne ne vient ici."
"#;
        let all = problems(text, TextPolicy::Unicode);
        assert!(
            all.iter()
                .any(|p| p.starts_with("m.toml:orphan: warning: no path from home")),
            "{all:#?}"
        );
        assert!(
            all.iter()
                .any(|p| p.starts_with("m.toml:accueil: warning: page 1 falls to UCS-2")),
            "{all:#?}"
        );
        // Transliterated, the same menu stays GSM-7.
        let all = problems(text, TextPolicy::Transliterate);
        assert!(!all.iter().any(|p| p.contains("UCS-2")), "{all:#?}");
        assert!(
            load("m.toml", text, &LoadOptions::default()).0.is_some(),
            "warnings alone still give a menu"
        );
    }

    #[test]
    fn bad_toml_is_one_clear_error() {
        let all = problems("[menu\nhome = 1", TextPolicy::Transliterate);
        assert_eq!(all.len(), 1, "{all:#?}");
        assert!(
            all[0].starts_with("m.toml: error: invalid TOML"),
            "{all:#?}"
        );
    }
}
