//! Stage 3 of loading: the `[sms]` section (keywords, fixed short codes, help) to
//! [`SmsRoutes`].
//!
//! A keyword's `match` is compiled inside a wrapper (accents folded, case ignored, the
//! keyword starts the text); a pattern that does not compile is reported in the editor's
//! own words, never the wrapper's (see [`compile_user_regex`]).

use std::collections::HashMap;

use super::{compile_user_regex, RawSms, Report};
use crate::diagnostic::has_errors;
use crate::menu::model::{Keyword, ScreenId, SmsRoutes};
use crate::menu::render::policy_owned;
use crate::text::TextPolicy;

pub(super) fn build_sms(
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
        let regex = match compile_user_regex(&k.pattern, pattern) {
            Ok(r) => Some(r),
            Err(e) => {
                report.error(
                    &at,
                    format!("keyword `{}`: `match` does not compile: {e}", k.name),
                );
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
    if has_errors(&report.items[before..]) {
        return None;
    }
    Some(routes)
}
