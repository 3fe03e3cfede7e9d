//! The menu and configuration loaders on any text, real files with hostile values, and
//! deep or huge TOML: every problem reported as `file:place: message`, never a panic.

use std::path::Path;

use proptest::prelude::*;
use tamtam::config::{Config, Overrides};
use tamtam::menu::LoadOptions;

use super::inputs::*;
use super::{check, Check};

/// A TOML value of any type, hostile where it can be.
fn toml_value() -> impl Strategy<Value = String> {
    let string = prop_oneof![
        proptest::sample::select(WORDS).prop_map(str::to_string),
        ".{0,40}",
        "[a-z_{}]{0,20}",
        Just("{".to_string()),
        Just("{msisdn}{{}}{".to_string()),
        Just("${TAMTAM_PROPERTY_UNSET}".to_string()),
        Just("(a*)*b".to_string()),
        Just("[".to_string()),
        Just("a{100000}".to_string()),
        Just("0.0.0.0:99999".to_string()),
        Just("lun-dim 25:00-07:61".to_string()),
        long(),
    ]
    .prop_map(|s| serde_json::to_string(&s).expect("a string serialises"));
    prop_oneof![
        4 => string,
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => Just("99999999999999999999".to_string()),
        1 => Just("0".to_string()),
        1 => Just("-1".to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:?}")),
        1 => Just("nan".to_string()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => Just("1979-05-27T07:32:00Z".to_string()),
        1 => Just("[]".to_string()),
        1 => Just("{}".to_string()),
        1 => Just(r#"["*144#", 1, true]"#.to_string()),
        1 => Just(r#"{ label = "x", next = "accueil" }"#.to_string()),
    ]
}

/// `text` with some `key = value` lines given hostile values, some lines dropped or doubled.
fn mutated(text: &'static str) -> impl Strategy<Value = String> {
    let edit = prop_oneof![
        4 => (any::<prop::sample::Index>(), toml_value()).prop_map(|(i, v)| (i, Some(v))),
        1 => (any::<prop::sample::Index>(), Just(None)),
    ];
    (proptest::collection::vec(edit, 1..8), any::<bool>()).prop_map(move |(edits, double)| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for (i, value) in edits {
            let i = i.index(lines.len());
            match value {
                Some(v) => {
                    if let Some((key, _)) = lines[i].split_once(" = ") {
                        lines[i] = format!("{key} = {v}");
                    }
                }
                None if double => {
                    let line = lines[i].clone();
                    lines.insert(i, line);
                }
                None => {
                    lines.remove(i);
                }
            }
        }
        lines.join("\n")
    })
}

/// Deep or wide TOML: `n` nested arrays, inline tables, dotted keys or header parts
/// (the parser stops at about a hundred levels, so `n` up to 300 crosses the limit), or
/// `n` screens. [`toml_nested_up_to_64_kib_is_reported_not_a_crash`] takes the largest.
fn deep_toml(n: usize, shape: usize) -> String {
    match shape {
        0 => format!("a = {}1{}", "[".repeat(n), "]".repeat(n)),
        1 => format!("a = {}1{}", "{ b = ".repeat(n), " }".repeat(n)),
        2 => format!("{} = 1", vec!["a"; n].join(".")),
        3 => format!("[{}]\nx = 1", vec!["s"; n].join(".")),
        _ => (0..n)
            .map(|i| format!("[screens.s{i}]\nkind = \"info\"\ntext = \"{i}\"\n"))
            .collect(),
    }
}

/// Any text a loader might be given.
fn loader_text(real: &'static [&'static str]) -> impl Strategy<Value = String> {
    let files = real.iter().map(|f| mutated(f)).collect::<Vec<_>>();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2000)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        proptest::collection::vec((name(), toml_value()), 0..10).prop_map(|kv| {
            kv.into_iter()
                .map(|(k, v)| format!("{} = {v}\n", serde_json::to_string(&k).unwrap()))
                .collect()
        }),
        proptest::strategy::Union::new(files),
        (1usize..300, 0usize..5).prop_map(|(n, shape)| deep_toml(n, shape)),
    ]
}

/// A small menu with every screen kind, SMS keywords and opening hours: what the loader
/// reads, in few lines (a shipped menu takes a tenth of a second to load in a debug build,
/// too slow for hundreds of cases; they are loaded whole by `tests/integration/menus.rs`).
const SMALL_MENU: &str = r#"[menu]
home = "accueil"
[texts]
invalid_choice = "Choix invalide."
[hours]
"1000" = ["lun-ven 07:30-15:45"]
[sms]
keywords = [
  { name = "CONSO", match = "CONSO|SOLDE", screen = "conso" },
]
[screens.accueil]
kind = "menu"
text = "Service client {msisdn}"
choices = [
  { label = "Opérateur", next = "operateur" },
  { label = "Consommation", next = "conso" },
  { label = "Horaires", next = "route" },
  { label = "Par SMS", next = "par_sms" },
]
[screens.operateur]
kind = "input"
text = "Quel est votre opérateur ?"
pattern = "[A-Za-z -]{2,30}"
error = "Tapez un nom."
retries = 3
save = "operateur"
next = "merci"
[screens.merci]
kind = "info"
text = "Merci {operateur}. Ouvert {next_open:1000}."
[screens.conso]
kind = "lookup"
source = "conso"
key = "{msisdn}"
text = "Crédit : {credit} F"
missing = "inconnu"
failed = "inconnu"
choices = [{ label = "Accueil", next = "accueil" }]
[screens.inconnu]
kind = "info"
text = "Numéro inconnu."
[screens.route]
kind = "router"
routes = [
  { open = "1000", next = "merci" },
  { prefix = ["+22507"], next = "inconnu" },
  { var = "operateur", matches = "(?i)orange", next = "merci" },
  { var = "operateur", equals = "pro", next = "merci" },
]
default = "inconnu"
[screens.par_sms]
kind = "sms"
screen = "merci"
"#;

const MENUS: &[&str] = &[SMALL_MENU];

/// Every diagnostic is `file:place: message`, and there is one when loading failed.
fn diagnostics_are_readable(file: &str, problems: &[tamtam::diagnostic::Diagnostic]) -> Check {
    for p in problems {
        let line = p.to_string();
        prop_assert!(line.starts_with(&format!("{file}:")), "{line}");
        prop_assert!(!p.message.trim().is_empty(), "{line}");
    }
    Ok(())
}

#[test]
fn the_menu_loader_reports_any_text_and_never_panics() {
    let options = LoadOptions {
        sources: [("conso".to_string(), vec!["credit".to_string()])]
            .into_iter()
            .collect(),
        ..LoadOptions::default()
    };
    check(loader_text(MENUS), |text| {
        let (menu, problems) = tamtam::menu::load("m.toml", &text, &options);
        diagnostics_are_readable("m.toml", &problems)?;
        let errors = problems
            .iter()
            .filter(|p| p.severity == tamtam::diagnostic::Severity::Error)
            .count();
        prop_assert_eq!(menu.is_some(), errors == 0, "{:?}", problems);
        Ok(())
    });
}

#[test]
fn the_configuration_loader_reports_any_text_and_never_panics() {
    const CONFIG: &[&str] = &[include_str!("../../../config/tamtam.toml")];
    check(loader_text(CONFIG), |text| {
        match Config::parse("c.toml", &text, Path::new("."), &Overrides::default()) {
            Ok(_) => Ok(()),
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                diagnostics_are_readable("c.toml", &problems)
            }
        }
    });
}

#[test]
fn toml_nested_up_to_64_kib_is_reported_not_a_crash() {
    // Each shape at about 64 KiB: nesting far past the parser's limit, and 1,500 screens.
    for (shape, n) in [
        (0, 32_000),
        (1, 10_000),
        (2, 32_000),
        (3, 32_000),
        (4, 1_500),
    ] {
        let text = deep_toml(n, shape);
        assert!(
            text.len() <= 80 * 1024,
            "shape {shape}: {} bytes",
            text.len()
        );
        let (menu, problems) = tamtam::menu::load("m.toml", &text, &LoadOptions::default());
        assert!(menu.is_none() && !problems.is_empty(), "shape {shape}");
        assert!(
            problems[0].to_string().starts_with("m.toml"),
            "{}",
            problems[0]
        );
        let config = Config::parse("c.toml", &text, Path::new("."), &Overrides::default());
        let Err(problems) = config else {
            panic!("shape {shape} read as a configuration")
        };
        assert!(
            problems[0].to_string().starts_with("c.toml"),
            "{}",
            problems[0]
        );
    }
}
