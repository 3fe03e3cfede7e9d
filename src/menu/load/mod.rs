//! Menu loading: TOML text in, a compiled [`Menu`] and every problem found out.
//!
//! Never stops at the first problem: each screen is read on its own, so one bad screen
//! does not hide the others. Problems read `file:place: message` (see
//! [`crate::diagnostic::Diagnostic`]); the place is a screen, a section, or `LINE:COLUMN`
//! for a TOML syntax error. Pure: the caller reads the file.
//!
//! By stage:
//! - this file: TOML to the raw types, the orchestration, and what the stages share;
//! - `screen`: one raw screen to a compiled screen, one function per kind;
//! - `sms`: the `[sms]` section (keywords, short codes, help);
//! - `check`: checks on the whole menu (built-in phrases fit, every screen reachable).

mod check;
mod screen;
mod sms;

use std::collections::{BTreeMap, HashMap, HashSet};

use regex::Regex;
use serde::Deserialize;

use super::model::{Kind, Menu, Screen, ScreenId, Texts};
use super::render::policy_owned;
use crate::diagnostic::{has_errors, readable, Diagnostic, Severity};
use crate::text::{TextPolicy, UssdLimits};

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
    /// The most parts an SMS of the tenant may take (`sms_max_segments`); a late answer
    /// (`late = "sms"`) must fit. 0: not checked.
    pub sms_max_segments: usize,
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
    too_long: Option<String>,
    sms_sent: Option<String>,
    sms_later: Option<String>,
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
    /// `lookup` screens: `"sms"` sends a late answer by SMS.
    late: Option<String>,
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
        has_errors(&self.items)
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
            report
                .items
                .push(Diagnostic::toml(report.file, toml_text, &e));
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
            .map_err(|e: toml::de::Error| report.error("menu", readable(e.message())))
            .ok(),
        None => {
            report.error(
                "menu",
                "missing [menu] section with `home = \"<screen id>\"`",
            );
            None
        }
    };
    let raw_texts: RawTexts = section(&table, "texts", report);
    let raw_sms: RawSms = section(&table, "sms", report);
    let raw_hours: BTreeMap<String, Vec<String>> = section(&table, "hours", report);
    let hours = parse_hours(&raw_hours, report);
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

    let (raws, index) = read_screens(screens_table, report)?;
    let home = header.and_then(|h| match index.get(&h.home) {
        Some(id) => Some(*id),
        None => {
            report.error("menu", format!("home screen `{}` does not exist", h.home));
            None
        }
    });

    let next_open: Vec<String> = raw_hours.keys().map(|l| format!("next_open:{l}")).collect();
    let known_vars = known_vars(&raws, &next_open, options);

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
        let screen = raw.and_then(|raw| screen::build_screen(id, raw, &ctx, report));
        screens.push(screen);
    }

    check::check_texts(&texts, options.limits, report);
    let sms = sms::build_sms(raw_sms, &index, options.sms_policy, report);
    let home = home?;
    if screens.iter().any(Option::is_none) {
        return None;
    }
    let screens: Vec<Screen> = screens.into_iter().flatten().collect();
    check::check_reachable(&screens, home, report);
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
        too_long: p(&raw.too_long, d.too_long),
        sms_later: p(&raw.sms_later, d.sms_later),
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

/// Raw screens by id; `None` for a screen whose fields do not read.
type RawScreens<'t> = BTreeMap<&'t str, Option<RawScreen>>;

/// The first pass: each screen's id and raw fields, each read on its own (a screen that
/// does not read is `None`, its problem reported). `None` past 65,535 screens.
fn read_screens<'t>(
    screens_table: &'t toml::Table,
    report: &mut Report,
) -> Option<(RawScreens<'t>, HashMap<String, ScreenId>)> {
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
            .map_err(|e| report.error(id, readable(e.message())))
            .ok();
        raws.insert(id.as_str(), raw);
    }
    Some((raws, index))
}

/// `[hours]`: each line's rules to a schedule (a line that does not parse is reported).
fn parse_hours(
    raw: &BTreeMap<String, Vec<String>>,
    report: &mut Report,
) -> HashMap<String, crate::hours::Schedule> {
    let mut hours = HashMap::new();
    for (line, rules) in raw {
        let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
        match crate::hours::Schedule::parse(&rules) {
            Ok(s) => {
                hours.insert(line.clone(), s);
            }
            Err(e) => report.error(&format!("hours.{line}"), e),
        }
    }
    hours
}

/// An optional section (`[texts]`, `[sms]`, `[hours]`): its default when absent or wrong
/// (a wrong one is reported).
fn section<T: Default + serde::de::DeserializeOwned>(
    table: &toml::Table,
    name: &str,
    report: &mut Report,
) -> T {
    match table.get(name) {
        Some(v) => v
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| report.error(name, readable(e.message())))
            .unwrap_or_default(),
        None => T::default(),
    }
}

/// The names a placeholder or a route may use: saved inputs, data-source fields, the
/// caller's number and `next_open:LINE` for each line of `[hours]`.
fn known_vars<'a>(
    raws: &'a RawScreens,
    next_open: &'a [String],
    options: &'a LoadOptions,
) -> HashSet<&'a str> {
    let mut known: HashSet<&str> = raws
        .values()
        .flatten()
        .filter_map(|r| r.save.as_deref())
        .collect();
    known.insert("msisdn");
    known.extend(next_open.iter().map(String::as_str));
    for fields in options.sources.values() {
        known.extend(fields.iter().map(String::as_str));
    }
    known
}

/// Compiles a pattern the editor wrote, inside tamtam's `wrapped` form of it. The pattern
/// must compile on its own first, so a problem is reported in the pattern as written, never
/// in the wrapper (`unclosed character class (character 1)`, then the pattern and a caret
/// on lines of their own), and a pattern cannot leave its wrapper's group (`A)|(B`).
fn compile_user_regex(pattern: &str, wrapped: String) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| regex_problem(&e))?;
    Regex::new(&wrapped).map_err(|e| regex_problem(&e))
}

/// The regex crate's error, as "what (character N)" and the pattern with a caret under it.
fn regex_problem(e: &regex::Error) -> String {
    let regex::Error::Syntax(full) = e else {
        return e.to_string();
    };
    let lines: Vec<&str> = full.lines().collect();
    let what = lines
        .iter()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or(full.as_str());
    // One-line patterns read: header, "    PATTERN", "    ^^^", "error: WHAT".
    if let [_, pattern_line, carets, last] = lines.as_slice() {
        if last.starts_with("error: ") && carets.trim_start().starts_with('^') {
            let column = carets.chars().take_while(|c| *c == ' ').count() - 3;
            return format!("{what} (character {column})\n{pattern_line}\n{carets}");
        }
    }
    what.to_string()
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
        if has_errors(&diags) {
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
    fn a_late_answer_by_sms_is_checked_at_load() {
        let text = r#"
[menu]
home = "accueil"

[screens.accueil]
kind = "menu"
choices = [
  { label = "Conso", next = "conso" },
  { label = "Silencieux", next = "silencieux" },
  { label = "Autre", next = "autre" },
  { label = "Long", next = "long" },
]

[screens.conso]
kind = "lookup"
source = "conso"
text = "Appels : {minutes} min"
missing = "fin"
late = "sms"

[screens.silencieux]
kind = "lookup"
source = "conso"
next = "fin"
missing = "fin"
late = "sms"

[screens.autre]
kind = "lookup"
source = "conso"
text = "{minutes}"
missing = "fin"
late = "pigeon"

[screens.long]
kind = "lookup"
source = "conso"
text = "LONG {minutes}"
missing = "fin"
late = "sms"

[screens.fin]
kind = "info"
text = "Fin."
"#
        .replace("LONG", &"x ".repeat(120));
        let options = LoadOptions {
            sources: HashMap::from([("conso".to_string(), vec!["minutes".to_string()])]),
            sms_max_segments: 1,
            ..LoadOptions::default()
        };
        let (menu, diags) = load("m.toml", &text, &options);
        let all: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert!(menu.is_none());
        for needle in [
            "m.toml:silencieux: error: `late = \"sms\"` needs `text`",
            "m.toml:autre: error: `late` is `pigeon`: the one late answer is `late = \"sms\"`",
            "m.toml:long: error: the late answer by SMS takes 2 parts (each placeholder counted as 12 characters), more than the tenant's `sms_max_segments` (1)",
        ] {
            assert!(all.iter().any(|p| p.starts_with(needle)), "{needle} in {all:#?}");
        }
        assert!(
            !all.iter().any(|p| p.starts_with("m.toml:conso:")),
            "{all:#?}"
        );
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
            all[0].starts_with("m.toml:1:6: error: invalid TOML: unclosed table, expected `]`"),
            "{all:#?}"
        );
        assert!(!all[0].contains('\n'), "one line: {all:#?}");
    }

    #[test]
    fn a_long_list_of_expected_fields_goes_on_a_line_of_its_own() {
        let text = "[menu]\nhome = \"a\"\n\n[screens.a]\nkind = \"info\"\ntext = \"x\"\ncolour = \"red\"\n";
        let all = problems(text, TextPolicy::Transliterate);
        assert_eq!(all.len(), 1, "{all:#?}");
        let (first, second) = all[0].split_once('\n').expect("two lines");
        assert_eq!(first, "m.toml:a: error: unknown field `colour`");
        assert!(
            second.starts_with("    expected one of `screen`, `kind`"),
            "{second}"
        );
    }

    #[test]
    fn a_toml_error_inside_a_value_names_its_key() {
        let text = "[menu]\nhome = \"a\"\n\n[screens.a]\nkind = \"info\"\ntext = \"pas fermé\n";
        let all = problems(text, TextPolicy::Transliterate);
        assert_eq!(all.len(), 1, "{all:#?}");
        assert!(all[0].starts_with("m.toml:6:"), "{all:#?}");
        assert!(all[0].contains("`text` in [screens.a]: "), "{all:#?}");
    }

    #[test]
    fn a_toml_syntax_error_gives_line_column_key_and_table() {
        let text =
            "[menu]\nhome = \"a\"\n\n[screens.a]\nkind = \"info\"\ntext = \"x\"\ntext = \"y\"\n";
        let all = problems(text, TextPolicy::Transliterate);
        assert_eq!(
            all,
            ["m.toml:7:1: error: invalid TOML: duplicate key `text` in [screens.a]"]
        );
    }

    #[test]
    fn a_pattern_that_does_not_compile_is_quoted_as_written_with_a_caret() {
        let text = r#"
[menu]
home = "saisie"

[screens.saisie]
kind = "input"
text = "Votre code ?"
pattern = "[0-9"
error = "Code invalide."
save = "code"
next = "saisie"

[sms]
keywords = [{ name = "SOLDE", match = "SOLDE|(CONSO", screen = "saisie" }]
"#;
        let all = problems(text, TextPolicy::Transliterate);
        assert!(
            all.contains(
                &"m.toml:saisie: error: `pattern` does not compile: unclosed character class (character 1)\n    [0-9\n    ^"
                    .to_string()
            ),
            "{all:#?}"
        );
        assert!(
            all.contains(
                &"m.toml:sms.keywords[1]: error: keyword `SOLDE`: `match` does not compile: unclosed group (character 7)\n    SOLDE|(CONSO\n          ^"
                    .to_string()
            ),
            "{all:#?}"
        );
        assert!(
            !all.iter().any(|p| p.contains("(?i)") || p.contains("^(?:")),
            "{all:#?}"
        );
    }

    #[test]
    fn a_pattern_that_escapes_its_group_is_refused_in_plain_words() {
        let text = r#"
[menu]
home = "a"

[screens.a]
kind = "info"
text = "x"

[sms]
keywords = [{ name = "A", match = "A)|(B", screen = "a" }]
"#;
        let all = problems(text, TextPolicy::Transliterate);
        assert!(
            all.iter().any(|p| p.starts_with(
                "m.toml:sms.keywords[1]: error: keyword `A`: `match` does not compile: "
            ) && p.contains("unopened group")),
            "{all:#?}"
        );
    }
}
