//! Walks every shipped menu through the engine, as a subscriber would with every key:
//! every displayed screen must be reached, every page must fit a USSD screen (with the
//! error line too), and every fact of the source documents must be on some screen.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::Deserialize;
use tamtam::gateway::Tenant;
use tamtam::hours::LocalTime;
use tamtam::menu::{self, Channel, Kind, LookupOutcome, ScreenId, State, Step};

use crate::support::{files, name, shipped_config, shipped_tenants};

/// Numbers to walk with: a demo subscriber, an unknown one, and a foreign one.
fn callers(tenant: &str) -> Vec<&'static str> {
    match tenant {
        "moov-ci" => vec!["+2250700000001", "+2250799999999", "+33600000000"],
        "opt-nc" => vec!["+687700001", "+687799999", "+33600000000"],
        _ => vec!["+33600000000"],
    }
}

/// Free-text answers to try on input screens.
const CANDIDATES: &[&str] = &["Orange", "Bouygues Télécom", "SFR", "Free", "x", "1234"];

async fn run(tenant: &Tenant, state: &mut State, msisdn: &str, mut step: Step) -> (String, bool) {
    for _ in 0..16 {
        match step {
            Step::Show { text, end } => return (text, end),
            Step::Lookup(effect) => {
                let outcome = match tenant.sources.get(&effect.source) {
                    Some(s) => s.lookup(&effect.key).await,
                    None => LookupOutcome::Failed,
                };
                step = menu::lookup_done(&tenant.menu, Channel::Ussd, state, msisdn, outcome);
            }
        }
    }
    panic!("{}: too many lookups in one step", tenant.config.id);
}

/// What a walk of one tenant saw.
struct Walk {
    /// Pages shown per screen, by page number.
    pages: HashMap<ScreenId, BTreeMap<u8, String>>,
    problems: Vec<String>,
}

/// A state already explored: caller, time, screen, page and variables.
type Visit = (
    String,
    Option<LocalTime>,
    ScreenId,
    u8,
    Vec<(String, String)>,
);

async fn walk(tenant: &Tenant) -> Walk {
    let menu = &tenant.menu;
    let mut w = Walk {
        pages: HashMap::new(),
        problems: Vec::new(),
    };
    let mut seen: HashSet<Visit> = HashSet::new();
    let mut queue = VecDeque::new();
    // A weekday morning, a weekday night and a Sunday: lines open and closed.
    let times = [
        LocalTime {
            weekday: 0,
            minute: 10 * 60,
        },
        LocalTime {
            weekday: 2,
            minute: 21 * 60,
        },
        LocalTime {
            weekday: 6,
            minute: 12 * 60,
        },
    ];
    for msisdn in callers(&tenant.config.id) {
        for now in times {
            let (mut state, step) =
                menu::start(menu, Channel::Ussd, msisdn, Some(now), Vec::new(), None);
            let (text, end) = run(tenant, &mut state, msisdn, step).await;
            queue.push_back((state, msisdn, text, end));
        }
    }
    let mut steps = 0;
    while let Some((state, msisdn, text, end)) = queue.pop_front() {
        steps += 1;
        assert!(
            steps < 200_000,
            "{}: walk does not terminate",
            tenant.config.id
        );
        let screen = menu.screen(state.screen);
        if !menu.limits.fits(&text) {
            w.problems.push(format!(
                "{}:{} page {}: does not fit: {text:?}",
                menu.file,
                screen.id,
                state.page + 1
            ));
        }
        if !state.flash {
            w.pages
                .entry(state.screen)
                .or_default()
                .insert(state.page, text.clone());
        }
        if end
            || !seen.insert((
                msisdn.to_string(),
                state.now,
                state.screen,
                state.page,
                state.vars.clone(),
            ))
        {
            continue;
        }
        let mut inputs: Vec<String> = vec!["98".into(), "0".into(), "00".into(), "999".into()];
        match &screen.kind {
            Kind::Menu { choices } | Kind::Lookup { choices, .. } => {
                inputs.extend((1..=choices.len()).map(|n| n.to_string()))
            }
            Kind::Input { .. } => inputs.extend(CANDIDATES.iter().map(|s| s.to_string())),
            _ => {}
        }
        for input in inputs {
            let mut next = state.clone();
            let step = menu::input(menu, Channel::Ussd, &mut next, msisdn, &input);
            let (text, end) = run(tenant, &mut next, msisdn, step).await;
            if input == "999" {
                // The error screen must fit too, and never end the session on the first slip.
                if !menu.limits.fits(&text) {
                    w.problems.push(format!(
                        "{}:{}: error screen does not fit: {text:?}",
                        menu.file, screen.id
                    ));
                }
                if end
                    && state.errors == 0
                    && !matches!(screen.kind, Kind::Input { retries: 1, .. })
                {
                    w.problems.push(format!(
                        "{}:{}: one bad answer ended the session",
                        menu.file, screen.id
                    ));
                }
                continue;
            }
            queue.push_back((next, msisdn, text, end));
        }
    }
    w
}

#[tokio::test]
async fn every_screen_is_reachable_and_every_page_fits() {
    let config = shipped_config(None);
    let tenants = shipped_tenants(&config);
    assert_eq!(tenants.len(), 3);
    let mut problems = Vec::new();
    for tenant in &tenants {
        let w = walk(tenant).await;
        problems.extend(w.problems);
        for (i, screen) in tenant.menu.screens.iter().enumerate() {
            let shown = screen.is_shown();
            if shown && !w.pages.contains_key(&ScreenId(i as u16)) {
                problems.push(format!(
                    "{}:{}: never reached by a subscriber",
                    tenant.menu.file, screen.id
                ));
            }
            if let Some(pages) = screen.static_pages() {
                let seen = w.pages.get(&ScreenId(i as u16)).map_or(0, BTreeMap::len);
                if seen < pages.len() {
                    problems.push(format!(
                        "{}:{}: {seen} of {} pages reached",
                        tenant.menu.file,
                        screen.id,
                        pages.len()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Facts {
    facts: Vec<String>,
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn every_fact_of_the_source_documents_is_on_a_screen() {
    let config = shipped_config(None);
    let tenants = shipped_tenants(&config);
    let mut missing = Vec::new();
    let mut checked = 0;
    let fact_files = files("tests/facts", "toml");
    assert_eq!(fact_files.len(), tenants.len(), "one facts file per tenant");
    for path in fact_files {
        let file = name(&path);
        let tenant_id = file.trim_end_matches(".toml");
        let tenant = tenants
            .iter()
            .find(|t| t.config.id == tenant_id)
            .unwrap_or_else(|| panic!("{file}: no tenant {tenant_id}"));
        let facts: Facts = toml::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let w = walk(tenant).await;
        let t = &tenant.menu.texts;
        let footer = [
            format!("98. {}", t.more),
            format!("0. {} 00. {}", t.back, t.home_label),
        ];
        // Each screen's pages, joined without their navigation lines.
        let screens: Vec<String> = w
            .pages
            .values()
            .map(|pages| {
                let lines: Vec<&str> = pages
                    .values()
                    .flat_map(|p| p.lines())
                    .filter(|l| !footer.iter().any(|f| f == l))
                    .collect();
                squash(&lines.join(" "))
            })
            .collect();
        for fact in &facts.facts {
            let want = squash(&tenant.menu.policy.apply(fact));
            if !screens.iter().any(|s| s.contains(&want)) {
                missing.push(format!(
                    "{file}: {fact:?} is on no screen of {}",
                    tenant.menu.file
                ));
            }
            checked += 1;
        }
    }
    assert!(
        missing.is_empty(),
        "{} fact(s) missing:\n{}",
        missing.len(),
        missing.join("\n")
    );
    assert!(checked >= 100, "only {checked} facts listed");
}

#[test]
fn shipped_menus_have_no_warning() {
    let config = shipped_config(None);
    let (_, problems) = tamtam::gateway::load_tenants(&config);
    let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(all.is_empty(), "{}", all.join("\n"));
}
