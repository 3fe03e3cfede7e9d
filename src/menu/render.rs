//! Pagination: from a screen's text and choices to USSD pages (and one SMS text).
//!
//! A page never splits a choice or a word. Each page but the last ends with `98. Suite`;
//! every page that waits for an answer keeps room for the "invalid choice" line, so the
//! error screen always fits too. All measuring goes through `crate::text`.

use std::ops::Range;

use super::model::{LayoutKind, Pages, Texts, BACK, HOME, MORE};
use crate::text::{self, Encoding, TextPolicy, UssdLimits};

/// A screen as one SMS: its text, then its choices one a line. No pages, no navigation line.
pub(crate) fn sms_text(body: &str, labels: &[String]) -> String {
    let mut out = body.trim_end().to_string();
    for (i, label) in labels.iter().enumerate() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("{}. {label}", i + 1));
    }
    out
}

/// Splits a screen into pages. Fails only when a single choice cannot fit on a page.
pub(crate) fn paginate(
    body: &str,
    choices: &[String],
    kind: LayoutKind,
    texts: &Texts,
    limits: UssdLimits,
) -> Result<Pages, String> {
    let more_line = format!("{MORE}. {}", texts.more);
    let nav_line = format!("{BACK}. {} {HOME}. {}", texts.back, texts.home_label);

    let mut lines: Vec<String> = Vec::new();
    for line in body.lines() {
        lines.push(line.trim_end().to_string());
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let first_choice = lines.len();
    for (i, label) in choices.iter().enumerate() {
        lines.push(format!("{}. {}", i + 1, label));
    }

    let all = lines.join("\n") + &more_line + &nav_line + &texts.invalid_choice;
    let encoding = text::measure(&all).encoding;
    let room = limits.for_encoding(encoding);
    let units = |s: &str| text::units_in(s, encoding);
    let reserve_error = units(&texts.invalid_choice) + 1;
    let nav_cost = units(&nav_line) + 1;
    let more_cost = units(&more_line) + 1;

    // Room for content on a page that waits for an answer and on the last page.
    let waiting_room =
        |nav: bool| room.saturating_sub(reserve_error + if nav { nav_cost } else { 0 });
    let last_room = |nav: bool| {
        if kind.terminal {
            room
        } else {
            waiting_room(nav)
        }
    };
    let middle_room = |page: usize| waiting_room(!kind.home || page > 0).saturating_sub(more_cost);

    // Wrap text lines to the smallest room a page can have; choices stay whole.
    let min_room = middle_room(0).min(middle_room(1));
    let mut items: Vec<String> = Vec::new();
    // Index in `items` of the first choice (text lines may wrap into several items).
    let mut first_choice_item = usize::MAX;
    for (i, line) in lines.iter().enumerate() {
        if i >= first_choice {
            first_choice_item = first_choice_item.min(items.len());
            if units(line) > min_room {
                return Err(format!(
                    "choice {} is too long to fit on a page ({} characters, at most {min_room})",
                    i - first_choice + 1,
                    units(line)
                ));
            }
            items.push(line.clone());
        } else if units(line) > min_room {
            items.extend(text::wrap(line, min_room, encoding));
        } else {
            items.push(line.clone());
        }
    }

    let cost = |r: Range<usize>, items: &[String]| -> usize {
        let n = r.len();
        items[r].iter().map(|s| units(s)).sum::<usize>() + n.saturating_sub(1)
    };

    let mut pages: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    loop {
        // Skip blank lines at the top of a page after the first.
        while !pages.is_empty() && i < items.len() && items[i].is_empty() {
            i += 1;
        }
        let page = pages.len();
        let nav = !kind.home || page > 0;
        if cost(i..items.len(), &items) <= last_room(nav) {
            pages.push(i..items.len());
            break;
        }
        let budget = middle_room(page);
        let mut j = i;
        let mut used = 0;
        while j < items.len() {
            let add = units(&items[j]) + usize::from(j > i);
            if used + add > budget {
                break;
            }
            used += add;
            j += 1;
        }
        if j == i {
            j = i + 1;
        }
        pages.push(i..j);
        i = j;
    }

    // A last page of choices alone loses their context: bring the text lines that end the
    // page before onto it, as many as fit (the earlier page keeps at least one line).
    if let [.., before, last] = pages.as_mut_slice() {
        // (The last of two or more pages is never the first: it shows the nav line.)
        if last.start >= first_choice_item {
            while before.len() > 1
                && before.end <= first_choice_item
                && cost(before.end - 1..last.end, &items) <= last_room(true)
            {
                before.end -= 1;
                last.start -= 1;
            }
        }
    }

    let count = pages.len();
    let normal = pages
        .into_iter()
        .enumerate()
        .map(|(p, r)| {
            let last = p + 1 == count;
            let mut page = items[r]
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("\n");
            if !last {
                push_line(&mut page, &more_line);
            }
            let ends = last && kind.terminal;
            if !ends && (!kind.home || p > 0) {
                push_line(&mut page, &nav_line);
            }
            page
        })
        .collect();
    Ok(Pages {
        normal,
        sms: String::new(),
        sms_plain: String::new(),
    })
}

fn push_line(page: &mut String, line: &str) {
    if !page.is_empty() {
        page.push('\n');
    }
    page.push_str(line);
}

/// Applies the policy to a text, then checks one screen holds it.
pub(crate) fn fit_check(s: &str, limits: UssdLimits) -> Result<(), String> {
    let m = text::measure(s);
    let room = limits.for_encoding(m.encoding);
    if m.units > room {
        Err(format!(
            "{} characters in {}, a screen holds {room}",
            m.units,
            m.encoding.as_str()
        ))
    } else {
        Ok(())
    }
}

/// The encoding a page travels in.
pub(crate) fn page_encoding(s: &str) -> Encoding {
    text::measure(s).encoding
}

/// Applies a policy, owning the result.
pub(crate) fn policy_owned(policy: TextPolicy, s: &str) -> String {
    policy.apply(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts() -> Texts {
        Texts::default()
    }

    #[test]
    fn short_menu_is_one_page_with_nav() {
        let pages = paginate(
            "Titre",
            &["Un".into(), "Deux".into()],
            LayoutKind {
                terminal: false,
                home: false,
            },
            &texts(),
            UssdLimits::default(),
        )
        .unwrap();
        assert_eq!(
            pages.normal,
            ["Titre\n1. Un\n2. Deux\n0. Retour 00. Accueil"]
        );
    }

    #[test]
    fn long_menu_splits_between_choices_and_every_page_fits() {
        let choices: Vec<String> = (0..20)
            .map(|i| format!("Un choix assez long numéro {i}"))
            .collect();
        let limits = UssdLimits::default();
        let t = texts();
        let pages = paginate(
            "Choisissez",
            &choices,
            LayoutKind {
                terminal: false,
                home: true,
            },
            &t,
            limits,
        )
        .unwrap();
        assert!(pages.normal.len() > 2);
        let all = pages.normal.join("\n");
        for (i, c) in choices.iter().enumerate() {
            assert!(
                all.contains(&format!("{}. {c}", i + 1)),
                "choice {i} kept whole"
            );
        }
        for (p, page) in pages.normal.iter().enumerate() {
            let with_error = format!("{}\n{page}", t.invalid_choice);
            assert!(
                limits.fits(&with_error),
                "page {p} with error fits: {with_error:?}"
            );
            assert_eq!(
                page.ends_with("98. Suite") || page.contains("98. Suite\n"),
                p + 1 < pages.normal.len()
            );
        }
        assert!(
            !pages.normal[0].contains("00. Accueil"),
            "home's first page has no nav"
        );
        assert!(pages.normal[1].contains("00. Accueil"));
    }

    #[test]
    fn long_info_splits_between_words_and_last_page_ends() {
        let word = "information";
        let body = vec![word; 60].join(" ");
        let limits = UssdLimits::default();
        let pages = paginate(
            &body,
            &[],
            LayoutKind {
                terminal: true,
                home: false,
            },
            &texts(),
            limits,
        )
        .unwrap();
        assert!(pages.normal.len() >= 4);
        let mut words = 0;
        for (p, page) in pages.normal.iter().enumerate() {
            assert!(limits.fits(page));
            let last = p + 1 == pages.normal.len();
            assert_eq!(page.contains("98. Suite"), !last);
            assert_eq!(page.contains("00. Accueil"), !last);
            for line in page
                .lines()
                .filter(|l| !l.starts_with("98.") && !l.starts_with("0."))
            {
                for w in line.split(' ') {
                    assert_eq!(w, word, "words are never cut");
                    words += 1;
                }
            }
        }
        assert_eq!(words, 60);
    }

    #[test]
    fn the_last_page_keeps_text_with_its_choices() {
        let body = format!(
            "{}\n{}\n{}",
            "a ".repeat(70).trim(),
            "b ".repeat(70).trim(),
            "c ".repeat(40).trim()
        );
        let pages = paginate(
            &body,
            &["Recevoir par SMS".into()],
            LayoutKind {
                terminal: false,
                home: false,
            },
            &texts(),
            UssdLimits::default(),
        )
        .unwrap();
        let last = pages.normal.last().unwrap();
        assert!(last.contains("1. Recevoir par SMS"));
        assert!(
            !last.starts_with("1. ") && last.contains("c c c"),
            "text comes with the choice: {last:?}"
        );
        for page in &pages.normal {
            assert!(UssdLimits::default().fits(&format!("{}\n{page}", texts().invalid_choice)));
        }
    }

    #[test]
    fn too_long_choice_is_reported() {
        let err = paginate(
            "",
            &["x".repeat(200)],
            LayoutKind {
                terminal: false,
                home: false,
            },
            &texts(),
            UssdLimits::default(),
        )
        .unwrap_err();
        assert!(err.contains("choice 1"), "{err}");
    }

    #[test]
    fn ucs2_screen_uses_the_smaller_room() {
        let body = "ç ".repeat(60);
        let limits = UssdLimits::default();
        let pages = paginate(
            &body,
            &[],
            LayoutKind {
                terminal: true,
                home: false,
            },
            &texts(),
            limits,
        )
        .unwrap();
        assert!(pages.normal.len() >= 2);
        for page in &pages.normal {
            assert!(text::units_in(page, Encoding::Ucs2) <= 80, "{page:?}");
        }
    }
}
