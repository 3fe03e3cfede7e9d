//! Tenants: each configured organisation with its loaded menu and open data sources.
//!
//! A [`Tenant`] keeps its [`TenantConfig`] whole (codes, limits, sender, time zone) and
//! adds what was built from it. [`load_tenants`] reads every menu and data file and
//! reports every problem at once, loader style: the tenants come back only when nothing
//! is wrong.
//!
//! [`Tenants`] is one loaded version of all of them with their code indexes, built once;
//! the gateway holds it behind an `ArcSwap` ([`TenantsHandle`]) so a reload swaps a new
//! version in atomically: a hop takes one lock-free load ([`Gateway::resolve`] gives a
//! [`TenantRef`]) and finishes on the version it started with.
//!
//! [`Gateway::resolve`]: super::Gateway::resolve

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{Config, SourceConfig, TenantConfig};
use crate::data::Source;
use crate::diagnostic::{has_errors, Diagnostic};
use crate::menu::{self, LoadOptions, Menu};
use crate::message::dial_parts;

/// One organisation served by the gateway.
#[derive(Debug)]
pub struct Tenant {
    /// The tenant as configured: id, codes, text policies, SMS sender, time zone.
    pub config: TenantConfig,
    /// Its menu, compiled from `config.menu`.
    pub menu: Menu,
    /// Its data sources by name, opened from `config.sources`.
    pub sources: HashMap<String, Source>,
}

/// One version of every tenant, with the indexes a hop resolves codes through.
#[derive(Debug)]
pub struct Tenants {
    list: Vec<Tenant>,
    /// Service code parts (`144`, `144*5`) to tenant index.
    pub(super) by_code: HashMap<String, usize>,
    /// Parts of the longest service code, so resolving a dial string stays linear.
    pub(super) longest_code: usize,
    /// SMS short codes to tenant index.
    pub(super) by_sms_code: HashMap<String, usize>,
}

impl Tenants {
    /// Indexes `list` by USSD service code and SMS short code.
    pub fn new(list: Vec<Tenant>) -> Tenants {
        let mut by_code = HashMap::new();
        let mut by_sms_code = HashMap::new();
        let mut longest_code = 1;
        for (i, t) in list.iter().enumerate() {
            for code in &t.config.sms_codes {
                by_sms_code.insert(code.clone(), i);
            }
            for code in &t.config.ussd_codes {
                if let Some(parts) = dial_parts(code) {
                    longest_code = longest_code.max(parts.len());
                    by_code.insert(parts.join("*"), i);
                }
            }
        }
        Tenants {
            list,
            by_code,
            longest_code,
            by_sms_code,
        }
    }

    /// The tenant with id `id`.
    pub fn by_id(&self, id: &str) -> Option<&Tenant> {
        self.list.iter().find(|t| t.config.id == id)
    }
}

impl std::ops::Deref for Tenants {
    type Target = [Tenant];
    fn deref(&self) -> &[Tenant] {
        &self.list
    }
}

/// Where the running version of the tenants lives: shared by the gateway (which reads it
/// once a hop) and the reloader (which swaps a new one in). Cloning shares it.
pub type TenantsHandle = Arc<ArcSwap<Tenants>>;

/// One tenant of one version: keeps that version alive while a hop or an SMS uses it.
#[derive(Debug, Clone)]
pub struct TenantRef {
    tenants: Arc<Tenants>,
    index: usize,
}

impl TenantRef {
    pub(super) fn new(tenants: Arc<Tenants>, index: usize) -> TenantRef {
        TenantRef { tenants, index }
    }
}

impl std::ops::Deref for TenantRef {
    type Target = Tenant;
    fn deref(&self) -> &Tenant {
        &self.tenants.list[self.index]
    }
}

/// Reads every tenant's menu and data files. Returns the tenants when nothing is wrong,
/// and every problem found in any case.
pub fn load_tenants(config: &Config) -> (Option<Vec<Tenant>>, Vec<Diagnostic>) {
    let mut problems = Vec::new();
    let tenants: Vec<Tenant> = config
        .tenants
        .iter()
        .filter_map(|t| load_tenant(config, t, &mut problems))
        .collect();
    let ok = !has_errors(&problems);
    (ok.then_some(tenants), problems)
}

/// One tenant: its data sources, then its menu (which checks lookups against their fields).
fn load_tenant(
    config: &Config,
    t: &TenantConfig,
    problems: &mut Vec<Diagnostic>,
) -> Option<Tenant> {
    let sources = open_sources(config, t, problems);
    let options = LoadOptions {
        policy: t.ussd_text,
        sms_policy: t.sms_text,
        limits: t.ussd_limits,
        sms_max_segments: t.sms_max_segments,
        sources: t
            .sources
            .iter()
            .map(|s| {
                let fields = sources
                    .get(s.name())
                    .map(Source::fields)
                    .unwrap_or_default();
                (s.name().to_string(), fields)
            })
            .collect(),
    };
    let file = t.menu.display().to_string();
    let (menu, diags) = match std::fs::read_to_string(&t.menu) {
        Ok(text) => menu::load(&file, &text, &options),
        Err(e) => (
            None,
            vec![Diagnostic::error(
                file.clone(),
                None,
                format!("cannot read the menu of tenant {}: {e}", t.id),
            )],
        ),
    };
    problems.extend(diags);
    let menu = menu?;
    check_sms_sending(&menu, t, &file, problems);
    Some(Tenant {
        config: t.clone(),
        menu,
        sources,
    })
}

/// Opens the tenant's data sources; a source that cannot open is a problem, not a panic.
fn open_sources(
    config: &Config,
    t: &TenantConfig,
    problems: &mut Vec<Diagnostic>,
) -> HashMap<String, Source> {
    let mut sources = HashMap::new();
    for s in &t.sources {
        match Source::from_config(&t.id, s) {
            Ok(source) => {
                sources.insert(s.name().to_string(), source);
            }
            Err(e) => problems.push(Diagnostic::error(
                // A file's problem is in that file; a network source's in the config.
                match s {
                    SourceConfig::File { path, .. } => path.display().to_string(),
                    _ => config.file.clone(),
                },
                None,
                format!("data source `{}` of tenant {}: {e}", s.name(), t.id),
            )),
        }
    }
    sources
}

/// A menu that sends SMS (an `sms` screen, a `late = "sms"` lookup) needs a sender and a
/// short code to send from.
fn check_sms_sending(menu: &Menu, t: &TenantConfig, file: &str, problems: &mut Vec<Diagnostic>) {
    let Some(screen) = menu.screens.iter().find(|s| {
        matches!(
            s.kind,
            menu::Kind::Sms { .. } | menu::Kind::Lookup { late_sms: true, .. }
        )
    }) else {
        return;
    };
    let place = || Some(screen.id.clone());
    if t.sms_sender.is_none() {
        problems.push(Diagnostic::error(
            file,
            place(),
            format!(
                "this screen sends an SMS, but tenant {} has no `sms_sender`",
                t.id
            ),
        ));
    }
    if t.sms_codes.is_empty() {
        problems.push(Diagnostic::error(
            file,
            place(),
            format!(
                "this screen sends an SMS, but tenant {} has no `sms_codes` to send it from",
                t.id
            ),
        ));
    }
}
