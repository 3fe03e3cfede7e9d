//! The engine as a state machine, without HTTP: a script of commands in, a transcript of
//! whole screens out (rust-analyzer's `check(input, expect)` style).
//!
//! Script commands, one a line:
//! - `dial` / `dial 1 2` starts a session at home (with a direct dial's inputs);
//! - `redial` starts a new session offering to resume the last one;
//! - `keyword NAME` starts on the screen NAME (an SMS keyword);
//! - `sms` / `ussd` switches the channel for the next start;
//! - `caller +33…` sets the caller's number (`+2250700000001` until then);
//! - `now 0 10:00` sets the local time (weekday 0 = Monday) for the next start;
//! - `found k=v …`, `missing`, `failed` answer the lookup the engine asked for;
//! - anything else is one answer of the subscriber.
//!
//! The transcript shows `> command`, then the screen indented, then `[end]` when the
//! session ends, `[lookup SOURCE KEY]` for an effect and `[sms TEXT]` for an outgoing SMS.

use super::*;
use crate::hours::LocalTime;
use crate::menu::{load, LoadOptions};
use crate::text::TextPolicy;
use std::collections::HashMap;

const MSISDN: &str = "+2250700000001";

/// A menu with one screen of every kind.
const MENU: &str = r#"
[menu]
home = "accueil"

[hours]
ligne = ["lun-ven 08:00-17:00"]

[screens.accueil]
kind = "menu"
text = "Accueil"
choices = [
  { label = "Conso", next = "conso" },
  { label = "Infos", next = "infos" },
  { label = "Code", next = "code" },
  { label = "Appeler", next = "horaires" },
  { label = "Recevoir par SMS", next = "envoi" },
]

[screens.conso]
kind = "lookup"
source = "billing"
text = "Crédit {credit} F"
choices = [{ label = "Infos", next = "infos" }]
missing = "inconnu"

[screens.inconnu]
kind = "info"
text = "Numéro inconnu."

[screens.infos]
kind = "info"
text = """
Premier paragraphe des informations, assez long pour remplir une bonne partie de la page.
Deuxième paragraphe des informations, assez long lui aussi pour remplir une page.
Troisième paragraphe, qui continue la fiche sur une autre page encore.
Quatrième paragraphe, qui termine la fiche."""

[screens.code]
kind = "input"
text = "Votre code ?"
pattern = "[0-9]{4}"
error = "Code à 4 chiffres."
retries = 2
save = "code"
next = "merci"

[screens.merci]
kind = "info"
text = "Code {code} reçu."

[screens.horaires]
kind = "router"
routes = [{ open = "ligne", next = "ouvert" }]
default = "ferme"

[screens.ouvert]
kind = "info"
text = "Appelez le 1000."

[screens.ferme]
kind = "info"
text = "Fermé. Rappelez {next_open:ligne}."

[screens.envoi]
kind = "sms"
screen = "inconnu"
"#;

fn menu(toml_text: &str) -> Menu {
    let options = LoadOptions {
        policy: TextPolicy::Transliterate,
        sms_policy: TextPolicy::Transliterate,
        sources: HashMap::from([("billing".to_string(), vec!["credit".to_string()])]),
        ..LoadOptions::default()
    };
    let (menu, problems) = load("t.toml", toml_text, &options);
    menu.unwrap_or_else(|| panic!("{problems:#?}"))
}

/// Plays `script` on `menu_toml` and compares the whole transcript with `expected`.
#[track_caller]
fn check(menu_toml: &str, script: &str, expected: &str) {
    let menu = menu(menu_toml);
    let mut channel = Channel::Ussd;
    let mut now = None;
    let mut msisdn = MSISDN.to_string();
    let mut state: Option<State> = None;
    let mut out = String::new();
    for command in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        out.push_str(&format!("> {command}\n"));
        let words: Vec<&str> = command.split_whitespace().collect();
        let step = match words.as_slice() {
            ["ussd"] => {
                channel = Channel::Ussd;
                continue;
            }
            ["sms"] => {
                channel = Channel::Sms;
                continue;
            }
            ["caller", number] => {
                msisdn = number.to_string();
                continue;
            }
            ["now", day, time] => {
                let (h, m) = time.split_once(':').unwrap();
                now = Some(LocalTime {
                    weekday: day.parse().unwrap(),
                    minute: h.parse::<u16>().unwrap() * 60 + m.parse::<u16>().unwrap(),
                });
                continue;
            }
            ["dial", prefill @ ..] => {
                let prefill = prefill.iter().map(|s| s.to_string()).collect();
                let (s, step) = start(&menu, channel, &msisdn, now, prefill, None);
                state = Some(s);
                step
            }
            ["redial"] => {
                let previous = state.take();
                let (s, step) = start(&menu, channel, &msisdn, now, Vec::new(), previous);
                state = Some(s);
                step
            }
            ["keyword", name] => {
                let screen = menu.find(name).unwrap();
                let (s, step) = start_at(&menu, channel, &msisdn, now, screen);
                state = Some(s);
                step
            }
            ["found", fields @ ..] => {
                let fields = fields
                    .iter()
                    .map(|f| {
                        let (k, v) = f.split_once('=').unwrap();
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                let outcome = LookupOutcome::Found(fields);
                lookup_done(&menu, channel, state.as_mut().unwrap(), &msisdn, outcome)
            }
            ["missing"] => lookup_done(
                &menu,
                channel,
                state.as_mut().unwrap(),
                &msisdn,
                LookupOutcome::Missing,
            ),
            ["failed"] => lookup_done(
                &menu,
                channel,
                state.as_mut().unwrap(),
                &msisdn,
                LookupOutcome::Failed,
            ),
            _ => input(&menu, channel, state.as_mut().unwrap(), &msisdn, command),
        };
        match step {
            Step::Show { text, end } => {
                for line in text.lines() {
                    out.push_str(&format!("  {line}\n"));
                }
                if end {
                    out.push_str("  [end]\n");
                }
            }
            Step::Lookup(effect) => {
                out.push_str(&format!("  [lookup {} {}]\n", effect.source, effect.key));
            }
        }
        if let Some(s) = state.as_mut() {
            for sms in s.outgoing.drain(..) {
                out.push_str(&format!("  [sms {sms}]\n"));
            }
        }
    }
    let expected = dedent(expected);
    assert!(
        out.trim_end() == expected.trim_end(),
        "transcript differs.\n--- expected\n{expected}\n--- actual\n{out}"
    );
}

/// Removes the indentation the expected transcripts share (they sit inside Rust code).
fn dedent(s: &str) -> String {
    let indent = s
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{}\n", &l[indent.min(l.len())..]))
        .collect()
}

#[test]
fn a_choice_enters_its_screen_and_pages_go_forward_with_98_and_back_with_0() {
    check(
        MENU,
        "dial\n2\n98\n0\n98\n98",
        "
        > dial
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 2
          Premier paragraphe des informations, assez long pour remplir une bonne partie de la page.
          98. Suite
          0. Retour 00. Accueil
        > 98
          Deuxième paragraphe des informations, assez long lui aussi pour remplir une page.
          98. Suite
          0. Retour 00. Accueil
        > 0
          Premier paragraphe des informations, assez long pour remplir une bonne partie de la page.
          98. Suite
          0. Retour 00. Accueil
        > 98
          Deuxième paragraphe des informations, assez long lui aussi pour remplir une page.
          98. Suite
          0. Retour 00. Accueil
        > 98
          Troisième paragraphe, qui continue la fiche sur une autre page encore.
          Quatrième paragraphe, qui termine la fiche.
          [end]
        ",
    );
}

#[test]
fn back_0_returns_to_the_screen_before_and_home_00_goes_home_from_anywhere() {
    check(
        MENU,
        "dial\n1\nfound credit=1500\n0\n1\nfound credit=1500\n1\n00",
        "
        > dial
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 1
          [lookup billing +2250700000001]
        > found credit=1500
          Crédit 1500 F
          1. Infos
          0. Retour 00. Accueil
        > 0
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 1
          [lookup billing +2250700000001]
        > found credit=1500
          Crédit 1500 F
          1. Infos
          0. Retour 00. Accueil
        > 1
          Premier paragraphe des informations, assez long pour remplir une bonne partie de la page.
          98. Suite
          0. Retour 00. Accueil
        > 00
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        ",
    );
}

#[test]
fn back_0_on_home_stays_on_home() {
    check(
        MENU,
        "dial\n0",
        "
        > dial
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 0
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        ",
    );
}

#[test]
fn an_invalid_choice_shows_the_screen_again_under_the_error_line() {
    check(
        MENU,
        "dial\n9\n1\nfound credit=1500",
        "
        > dial
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 9
          Choix invalide.
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 1
          [lookup billing +2250700000001]
        > found credit=1500
          Crédit 1500 F
          1. Infos
          0. Retour 00. Accueil
        ",
    );
}

#[test]
fn three_invalid_choices_in_a_row_end_the_session() {
    check(
        MENU,
        "dial\n9\n98\n8",
        "
        > dial
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 9
          Choix invalide.
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 98
          Choix invalide.
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 8
          Trop d'erreurs. Composez à nouveau le code pour recommencer.
          [end]
        ",
    );
}

#[test]
fn an_input_is_checked_saved_and_used_in_the_next_screen() {
    check(
        MENU,
        "dial\n3\nabc\n1234",
        "
        > dial
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 3
          Votre code ?
          0. Retour 00. Accueil
        > abc
          Code à 4 chiffres.
          Votre code ?
          0. Retour 00. Accueil
        > 1234
          Code 1234 recu.
          [end]
        ",
    );
}

#[test]
fn an_input_ends_the_session_after_its_own_retries() {
    check(
        MENU,
        "dial\n3\nabc\n12",
        "
        > dial
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 3
          Votre code ?
          0. Retour 00. Accueil
        > abc
          Code à 4 chiffres.
          Votre code ?
          0. Retour 00. Accueil
        > 12
          Trop d'erreurs. Composez à nouveau le code pour recommencer.
          [end]
        ",
    );
}

#[test]
fn a_dropped_session_is_offered_to_resume_where_it_was() {
    check(
        MENU,
        "dial\n3\nredial\n5\n1\n1234",
        "
        > dial
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 3
          Votre code ?
          0. Retour 00. Accueil
        > redial
          Vous n'aviez pas terminé.
          1. Reprendre
          2. Recommencer
        > 5
          Choix invalide.
          Vous n'aviez pas terminé.
          1. Reprendre
          2. Recommencer
        > 1
          Votre code ?
          0. Retour 00. Accueil
        > 1234
          Code 1234 recu.
          [end]
        ",
    );
}

#[test]
fn a_dropped_session_can_be_restarted_from_home() {
    check(
        MENU,
        "dial\n2\nredial\n2",
        "
        > dial
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 2
          Premier paragraphe des informations, assez long pour remplir une bonne partie de la page.
          98. Suite
          0. Retour 00. Accueil
        > redial
          Vous n'aviez pas terminé.
          1. Reprendre
          2. Recommencer
        > 2
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        ",
    );
}

#[test]
fn only_a_session_that_went_past_home_is_worth_resuming() {
    let menu = menu(MENU);
    let (mut state, _) = start(&menu, Channel::Ussd, MSISDN, None, Vec::new(), None);
    assert!(!state.worth_resuming(&menu), "home, first page");
    input(&menu, Channel::Ussd, &mut state, MSISDN, "3");
    assert!(state.worth_resuming(&menu), "on the code prompt");
    let (asking, _) = start(&menu, Channel::Ussd, MSISDN, None, Vec::new(), Some(state));
    assert!(
        !asking.worth_resuming(&menu),
        "while the resume question shows"
    );
}

#[test]
fn invalid_answers_are_counted_in_the_state_as_data_for_the_caller() {
    let menu = menu(MENU);
    let (mut state, _) = start(&menu, Channel::Ussd, MSISDN, None, Vec::new(), None);
    assert_eq!(state.invalid, 0);
    input(&menu, Channel::Ussd, &mut state, MSISDN, "9");
    input(&menu, Channel::Ussd, &mut state, MSISDN, "98");
    assert_eq!(state.invalid, 2, "two invalid answers on home");
    input(&menu, Channel::Ussd, &mut state, MSISDN, "3");
    assert_eq!(state.invalid, 2, "a valid answer counts nothing");
}

#[test]
fn a_direct_dial_applies_its_inputs_as_if_typed() {
    check(
        MENU,
        "dial 3\ndial 3 1234\ndial 2 98",
        "
        > dial 3
          Votre code ?
          0. Retour 00. Accueil
        > dial 3 1234
          Code 1234 recu.
          [end]
        > dial 2 98
          Deuxième paragraphe des informations, assez long lui aussi pour remplir une page.
          98. Suite
          0. Retour 00. Accueil
        ",
    );
}

#[test]
fn a_direct_dial_pauses_for_a_lookup_and_goes_on_after_it() {
    check(
        MENU,
        "dial 1 1\nfound credit=1500",
        "
        > dial 1 1
          [lookup billing +2250700000001]
        > found credit=1500
          Premier paragraphe des informations, assez long pour remplir une bonne partie de la page.
          98. Suite
          0. Retour 00. Accueil
        ",
    );
}

#[test]
fn a_lookup_is_returned_as_an_effect_and_its_outcome_picks_the_screen() {
    check(
        MENU,
        "dial\n1\nmissing\ndial\n1\nfailed",
        "
        > dial
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 1
          [lookup billing +2250700000001]
        > missing
          Numéro inconnu.
          [end]
        > dial
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 1
          [lookup billing +2250700000001]
        > failed
          Service momentanément indisponible. Réessayez plus tard.
          [end]
        ",
    );
}

#[test]
fn an_sms_screen_queues_the_sms_and_ends_the_ussd_session() {
    check(
        MENU,
        "dial\n5",
        "
        > dial
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
          5. Recevoir par SMS
        > 5
          Vous allez recevoir un SMS.
          [end]
          [sms Numéro inconnu.]
        ",
    );
}

#[test]
fn on_sms_a_screen_is_one_text_without_pages_or_sms_only_choices() {
    check(
        MENU,
        "sms\ndial\nkeyword infos\nkeyword conso\nfound credit=1500",
        "
        > sms
        > dial
          Accueil
          1. Conso
          2. Infos
          3. Code
          4. Appeler
        > keyword infos
          Premier paragraphe des informations, assez long pour remplir une bonne partie de la page.
          Deuxième paragraphe des informations, assez long lui aussi pour remplir une page.
          Troisième paragraphe, qui continue la fiche sur une autre page encore.
          Quatrième paragraphe, qui termine la fiche.
          [end]
        > keyword conso
          [lookup billing +2250700000001]
        > found credit=1500
          Crédit 1500 F
          1. Infos
        ",
    );
}

#[test]
fn a_router_follows_opening_hours() {
    check(
        MENU,
        "now 0 10:00\ndial 4\nnow 5 10:00\ndial 4",
        "
        > now 0 10:00
        > dial 4
          Appelez le 1000.
          [end]
        > now 5 10:00
        > dial 4
          Fermé. Rappelez lundi à 8h.
          [end]
        ",
    );
}
/// Routers on a saved variable and on the caller's number.
const ROUTERS: &str = r#"
[menu]
home = "pays"

[screens.pays]
kind = "router"
routes = [{ prefix = ["+225"], next = "operateur" }]
default = "etranger"

[screens.etranger]
kind = "info"
text = "Service réservé à la Côte d'Ivoire."

[screens.operateur]
kind = "input"
text = "Votre opérateur ?"
pattern = "[a-zA-Z ]{2,20}"
error = "Un nom, par exemple Orange."
save = "op"
next = "verif"

[screens.verif]
kind = "router"
routes = [
  { var = "op", matches = "(?i)orange|moov", next = "couvert" },
  { var = "op", equals = "MTN", next = "bientot" },
]
default = "non_couvert"

[screens.couvert]
kind = "info"
text = "{op} : couvert."

[screens.bientot]
kind = "info"
text = "{op} : bientôt."

[screens.non_couvert]
kind = "info"
text = "{op} : non couvert."
"#;

#[test]
fn routers_branch_on_the_callers_number_and_on_saved_variables() {
    check(
        ROUTERS,
        "dial\nmoov\ndial\nMTN\ndial\nmtn\ndial Free\ncaller +33600000000\ndial",
        "
        > dial
          Votre opérateur ?
          0. Retour 00. Accueil
        > moov
          moov : couvert.
          [end]
        > dial
          Votre opérateur ?
          0. Retour 00. Accueil
        > MTN
          MTN : bientot.
          [end]
        > dial
          Votre opérateur ?
          0. Retour 00. Accueil
        > mtn
          mtn : non couvert.
          [end]
        > dial Free
          Free : non couvert.
          [end]
        > caller +33600000000
        > dial
          Service réservé à la Cote d'Ivoire.
          [end]
        ",
    );
}

/// A late answer by SMS (issue 11, part 4): the screen the lookup leads to, rendered for
/// SMS (no choices, SMS policy); the `missing` screen when there is no record; nothing when
/// the lookup failed or the session no longer waits on a lookup.
#[test]
fn a_late_answer_is_the_lookups_screen_as_an_sms_and_nothing_when_it_failed() {
    let menu = menu(MENU);
    let (mut state, _) = start(&menu, Channel::Ussd, MSISDN, None, Vec::new(), None);
    let step = input(&menu, Channel::Ussd, &mut state, MSISDN, "1");
    assert!(matches!(step, Step::Lookup(_)), "{step:?}");
    let found = LookupOutcome::Found(vec![("credit".into(), "1 500".into())]);
    assert_eq!(
        late_sms(&menu, &state, MSISDN, found).as_deref(),
        Some("Crédit 1 500 F"),
        "the text alone, without the choices"
    );
    assert_eq!(
        late_sms(&menu, &state, MSISDN, LookupOutcome::Missing).as_deref(),
        Some("Numéro inconnu.")
    );
    assert_eq!(late_sms(&menu, &state, MSISDN, LookupOutcome::Failed), None);
    let home = State::at(menu.home);
    let found = LookupOutcome::Found(vec![("credit".into(), "1".into())]);
    assert_eq!(late_sms(&menu, &home, MSISDN, found), None, "not waiting");
}
