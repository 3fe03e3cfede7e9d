//! Stage 4 of loading: checks on the menu as a whole, once every screen is built: the
//! built-in phrases fit on a screen, and every screen is reachable from home.
//!
//! (Per-screen fit checks, pages and `error` lines, run as each screen's body is built in
//! `screen.rs`, where the pages are.)

use std::collections::VecDeque;

use super::Report;
use crate::menu::model::{Kind, Screen, ScreenId, Texts};
use crate::menu::render::fit_check;
use crate::text::UssdLimits;

pub(super) fn check_texts(texts: &Texts, limits: UssdLimits, report: &mut Report) {
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
        ("too_long", &texts.too_long),
        ("sms_later", &texts.sms_later),
    ] {
        if let Err(e) = fit_check(text, limits) {
            report.error("texts", format!("`{name}` does not fit on a screen: {e}"));
        }
    }
}

pub(super) fn check_reachable(screens: &[Screen], home: ScreenId, report: &mut Report) {
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
