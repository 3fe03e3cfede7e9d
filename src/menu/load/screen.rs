//! Stage 2 of loading: one raw screen to a compiled [`Screen`], one function per kind.
//!
//! Each kind checks its own fields and names its problems; `build_screen` does what every
//! kind shares (allowed fields, choices, the body) and calls the kind's function. Adding a
//! screen kind means one function here and one arm in `engine::enter`.

use super::{compile_user_regex, Ctx, RawScreen, Report};
use crate::diagnostic::has_errors;
use crate::menu::model::{
    Body, Kind, LayoutKind, Route, RouteCondition, Screen, ScreenId, MAX_CHOICES, MAX_ERRORS,
};
use crate::menu::render::{fit_check, page_encoding, paginate, policy_owned, sms_text};
use crate::menu::template;
use crate::text::Encoding;

/// Fields each kind accepts, besides `kind`.
fn allowed(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "menu" => &["text", "choices"],
        "info" => &["text"],
        "input" => &["text", "pattern", "error", "retries", "save", "next"],
        "lookup" => &[
            "text", "choices", "source", "key", "missing", "failed", "next", "late",
        ],
        "router" => &["routes", "default"],
        "sms" => &["text", "screen"],
        _ => return None,
    })
}

fn present(raw: &RawScreen) -> Vec<&'static str> {
    let mut v = Vec::new();
    let fields: [(&'static str, bool); 15] = [
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
        ("late", raw.late.is_some()),
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

/// One raw screen to a compiled screen: what every kind shares (allowed fields, choices,
/// the body), and the kind's own checks. `None` when the screen has an error; every error
/// found is reported.
pub(super) fn build_screen(
    id: &str,
    raw: &RawScreen,
    ctx: &Ctx,
    report: &mut Report,
) -> Option<Screen> {
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
    let (choices, labels) = read_choices(id, raw, ctx, report);

    let kind = match kind_name {
        "menu" => menu_kind(id, raw, choices, report),
        "info" => {
            required(id, kind_name, "text", &raw.text, report);
            Some(Kind::Info)
        }
        "input" => input_kind(id, raw, ctx, report),
        "lookup" => lookup_kind(id, raw, choices, ctx, report),
        "sms" => sms_kind(id, raw, ctx, report),
        "router" => router_kind(id, raw, ctx, report),
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

    if has_errors(&report.items[before..]) {
        return None;
    }
    Some(Screen {
        id: id.to_string(),
        kind: kind?,
        body,
    })
}

/// The choices' targets (`None` when one names no screen) and their labels, trimmed.
fn read_choices(
    id: &str,
    raw: &RawScreen,
    ctx: &Ctx,
    report: &mut Report,
) -> (Option<Vec<ScreenId>>, Vec<String>) {
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
    (choices.into_iter().collect(), labels)
}

/// `menu`: numbered choices, at least one.
fn menu_kind(
    id: &str,
    raw: &RawScreen,
    choices: Option<Vec<ScreenId>>,
    report: &mut Report,
) -> Option<Kind> {
    let choices = required(id, "menu", "choices", &raw.choices, report).and(choices);
    if raw.choices.as_ref().is_some_and(Vec::is_empty) {
        report.error(id, "a menu screen needs at least one choice");
    }
    choices.map(|choices| Kind::Menu { choices })
}

/// `input`: free text checked by `pattern`, saved under `save`.
fn input_kind(id: &str, raw: &RawScreen, ctx: &Ctx, report: &mut Report) -> Option<Kind> {
    required(id, "input", "text", &raw.text, report);
    let pattern = required(id, "input", "pattern", &raw.pattern, report);
    let error = required(id, "input", "error", &raw.error, report);
    let save = required(id, "input", "save", &raw.save, report);
    let next = required(id, "input", "next", &raw.next, report)
        .and_then(|n| ctx.target(id, "next", n, report));
    let regex = pattern.and_then(|p| match compile_user_regex(p, format!("^(?:{p})$")) {
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

/// `lookup`: a record from a data source, shown (`text`) or passed on silently (`next`).
fn lookup_kind(
    id: &str,
    raw: &RawScreen,
    choices: Option<Vec<ScreenId>>,
    ctx: &Ctx,
    report: &mut Report,
) -> Option<Kind> {
    let source = required(id, "lookup", "source", &raw.source, report);
    if let Some(s) = source {
        if !ctx.options.sources.contains_key(s) {
            let mut names: Vec<_> = ctx.options.sources.keys().map(String::as_str).collect();
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
    let missing = required(id, "lookup", "missing", &raw.missing, report)
        .and_then(|m| ctx.target(id, "missing", m, report));
    let failed = raw
        .failed
        .as_ref()
        .map(|f| ctx.target(id, "failed", f, report));
    let next = raw.next.as_ref().map(|n| ctx.target(id, "next", n, report));
    if raw.text.is_none() && raw.next.is_none() {
        report.error(
            id,
            "a lookup screen needs `text` (to show the record) or `next` (to move on silently)",
        );
    }
    if raw.text.is_some() && raw.next.is_some() {
        report.error(
            id,
            "a lookup screen has `text` or `next`, not both (use `choices` to go on after showing)",
        );
    }
    if raw.text.is_none() && raw.choices.is_some() {
        report.error(id, "`choices` need `text` on a lookup screen");
    }
    let late_sms = match raw.late.as_deref() {
        None => false,
        Some("sms") => {
            match &raw.text {
                None => report.error(
                    id,
                    "`late = \"sms\"` needs `text`: the SMS is the screen's text, filled from the record",
                ),
                Some(text) => check_late_sms_fits(id, text, ctx, report),
            }
            true
        }
        Some(other) => {
            report.error(
                id,
                format!("`late` is `{other}`: the one late answer is `late = \"sms\"`"),
            );
            false
        }
    };
    let key = match template::parse(raw.key.as_deref().unwrap_or("{msisdn}")) {
        Ok(k) => Some(k),
        Err(e) => {
            report.error(id, format!("`key`: {e}"));
            None
        }
    };
    // `failed` and `next` are optional, but when given they must name a screen.
    let targets_ok = !matches!(failed, Some(None)) && !matches!(next, Some(None));
    match (source, key, missing, choices, targets_ok) {
        (Some(source), Some(key), Some(missing), Some(choices), true) => Some(Kind::Lookup {
            source: source.clone(),
            key,
            choices,
            missing,
            failed: failed.flatten(),
            next: next.flatten(),
            late_sms,
        }),
        _ => None,
    }
}

/// How many characters a placeholder is counted for when a late answer's SMS is measured
/// at load (its value is known only at run time).
const PLACEHOLDER_CHARS: usize = 12;

/// A late answer's SMS (the text, placeholders counted as [`PLACEHOLDER_CHARS`] digits,
/// under the SMS policy) fits in the tenant's `sms_max_segments`.
fn check_late_sms_fits(id: &str, text: &str, ctx: &Ctx, report: &mut Report) {
    let most = ctx.options.sms_max_segments;
    let Ok(template) = template::parse(text) else {
        return; // reported with the body
    };
    let probe = template.render(|_| Some("0".repeat(PLACEHOLDER_CHARS).into()));
    let probe = policy_owned(ctx.options.sms_policy, probe.trim_end());
    let parts = crate::text::sms_segments(&probe).count;
    if most > 0 && parts > most {
        report.error(
            id,
            format!(
                "the late answer by SMS takes {parts} parts (each placeholder counted as {PLACEHOLDER_CHARS} characters), more than the tenant's `sms_max_segments` ({most})"
            ),
        );
    }
}

/// `sms`: its own `text`, or another screen's (`screen`), sent by SMS.
fn sms_kind(id: &str, raw: &RawScreen, ctx: &Ctx, report: &mut Report) -> Option<Kind> {
    match (&raw.text, &raw.screen) {
        (Some(_), None) => Some(Kind::Sms { screen: None }),
        (None, Some(target)) => ctx
            .target(id, "screen", target, report)
            .map(|t| Kind::Sms { screen: Some(t) }),
        _ => {
            report.error(id, "an sms screen has `text` (the SMS) or `screen` (send that screen's text), one of them");
            None
        }
    }
}

/// `router`: branches at once on the first route that holds, else `default`.
fn router_kind(id: &str, raw: &RawScreen, ctx: &Ctx, report: &mut Report) -> Option<Kind> {
    let default = required(id, "router", "default", &raw.default, report)
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
                        format!("route {n}: `open` names `{line}`, which is not in [hours]"),
                    );
                    None
                }
            }
            (None, Some(p), None, None, None) if !p.is_empty() => {
                Some(RouteCondition::Prefix(p.clone()))
            }
            (None, None, Some(v), Some(m), None) => match compile_user_regex(m, m.clone()) {
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
        if let Some(RouteCondition::Matches(v, _) | RouteCondition::Equals(v, _)) = &condition {
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
    let template = match template::parse(text) {
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
