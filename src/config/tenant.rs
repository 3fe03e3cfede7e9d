//! The `[[tenant]]` sections: one organisation each, with its menu, language, time zone,
//! USSD service codes and SMS short codes (each owned by one tenant), text policies, and
//! data sources (checked by `crate::data`, which owns their configuration).

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::path::PathBuf;

use serde::Deserialize;

use super::Problems;
use crate::data::{check_source, resolve_path, RawSource, SourceConfig, SourceContext};
use crate::limits::{is_prefix, SMS_PER_SUBSCRIBER_PER_DAY};
use crate::message::dial_parts;
use crate::text::{TextPolicy, UssdLimits};

/// `language` when unset.
pub const DEFAULT_LANGUAGE: &str = "fr";
/// `time_zone` when unset.
pub const DEFAULT_TIME_ZONE: &str = "UTC";
/// `sms_max_segments` when unset.
pub const DEFAULT_SMS_MAX_SEGMENTS: usize = 3;
/// What `sms_max_segments` may be: longer replies cost more than they help.
pub const SMS_MAX_SEGMENTS: RangeInclusive<usize> = 1..=10;
/// What `ussd_max_chars` may be: 182 is the GSM-7 maximum of one USSD screen; below 40 no
/// menu fits.
pub const USSD_MAX_CHARS: RangeInclusive<usize> = 40..=182;

/// A `[[tenant]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenant {
    id: String,
    name: Option<String>,
    menu: PathBuf,
    language: Option<String>,
    time_zone: Option<String>,
    #[serde(default)]
    ussd_codes: Vec<String>,
    #[serde(default)]
    ussd_text: TextPolicy,
    ussd_max_chars: Option<usize>,
    #[serde(default)]
    sms_codes: Vec<String>,
    #[serde(default)]
    sms_text: TextPolicy,
    sms_max_segments: Option<usize>,
    sms_sender: Option<String>,
    #[serde(default)]
    sms_destinations: Vec<String>,
    sms_per_subscriber_per_day: Option<i64>,
    #[serde(default)]
    source: Vec<RawSource>,
}

/// One tenant as configured.
#[derive(Debug, Clone)]
pub struct TenantConfig {
    /// Names the tenant in keys and logs: a-z, 0-9, `-` and `_`.
    pub id: String,
    /// For people (`tamtam check`); the id when unset.
    pub name: String,
    /// The menu file, resolved against the configuration's folder.
    pub menu: PathBuf,
    pub language: String,
    /// IANA name; opening hours are read in it.
    pub time_zone: String,
    /// Service codes as dialled (`*144#`).
    pub ussd_codes: Vec<String>,
    pub ussd_text: TextPolicy,
    /// Characters a USSD screen may hold (`ussd_max_chars` scales both encodings).
    pub ussd_limits: UssdLimits,
    /// SMS short codes (`1088`).
    pub sms_codes: Vec<String>,
    pub sms_text: TextPolicy,
    /// Most SMS parts in one reply; a longer reply is cut and continued by `SUITE`.
    pub sms_max_segments: usize,
    /// The sender for messages this tenant sends itself (USSD follow-ups).
    pub sms_sender: Option<String>,
    /// Prefixes (`+225`) of the numbers this tenant may send SMS to; none: it sends none.
    pub sms_destinations: Vec<String>,
    /// SMS sent to one subscriber in a UTC day; 0: no cap.
    pub sms_per_subscriber_per_day: u32,
    pub sources: Vec<SourceConfig>,
}

/// Checks every `[[tenant]]` and its sources; at least one tenant.
pub(super) fn check(
    raw: Vec<RawTenant>,
    cx: &SourceContext,
    problems: &mut Problems,
) -> Vec<TenantConfig> {
    let mut tenants = Vec::new();
    let mut ids = HashSet::new();
    let mut ussd_owner: HashMap<String, String> = HashMap::new();
    let mut sms_owner: HashMap<String, String> = HashMap::new();
    for t in raw {
        let place = format!("tenant {}", t.id);
        let mut error = |message: String| problems.error(&place, message);
        let id_chars =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if t.id.is_empty() || !t.id.chars().all(id_chars) {
            error("a tenant id holds only a-z, 0-9, - and _".into());
        }
        if !ids.insert(t.id.clone()) {
            error("tenant id used twice".into());
        }
        for code in &t.ussd_codes {
            if dial_parts(code).is_none() {
                error(format!("`{code}` is not a USSD service code such as *144#"));
            } else if let Some(other) = ussd_owner.insert(code.clone(), t.id.clone()) {
                error(format!(
                    "service code {code} already belongs to tenant {other}"
                ));
            }
        }
        for code in &t.sms_codes {
            let digits = code.trim_start_matches('+');
            if code.is_empty() || !digits.chars().all(|c| c.is_ascii_alphanumeric()) {
                error(format!(
                    "`{code}` is not an SMS short code or number such as 1088"
                ));
            } else if let Some(other) = sms_owner.insert(code.clone(), t.id.clone()) {
                error(format!("SMS code {code} already belongs to tenant {other}"));
            }
        }
        let sms_max_segments = t.sms_max_segments.unwrap_or(DEFAULT_SMS_MAX_SEGMENTS);
        if !SMS_MAX_SEGMENTS.contains(&sms_max_segments) {
            error(format!(
                "`sms_max_segments` must be between {} and {}",
                SMS_MAX_SEGMENTS.start(),
                SMS_MAX_SEGMENTS.end()
            ));
        }
        for prefix in &t.sms_destinations {
            if !is_prefix(prefix) {
                error(format!(
                    "sms_destinations: `{prefix}` is not a number prefix such as +225"
                ));
            }
        }
        let sms_per_subscriber_per_day = match t.sms_per_subscriber_per_day {
            None => SMS_PER_SUBSCRIBER_PER_DAY,
            Some(n) => u32::try_from(n).unwrap_or_else(|_| {
                error(format!(
                    "`sms_per_subscriber_per_day` must be a whole number from 0 to {}",
                    u32::MAX
                ));
                SMS_PER_SUBSCRIBER_PER_DAY
            }),
        };
        let mut limits = UssdLimits::default();
        if let Some(max) = t.ussd_max_chars {
            if !USSD_MAX_CHARS.contains(&max) {
                error(format!(
                    "`ussd_max_chars` must be between {} and {}",
                    USSD_MAX_CHARS.start(),
                    USSD_MAX_CHARS.end()
                ));
            }
            limits.ucs2 = limits.ucs2 * max / limits.gsm7;
            limits.gsm7 = max;
        }
        let mut sources = Vec::new();
        let mut names = HashSet::new();
        for s in t.source {
            if !names.insert(s.name.clone()) {
                error(format!("data source `{}` defined twice", s.name));
            }
            match check_source(s, cx) {
                Ok(source) => sources.push(source),
                Err(messages) => messages.into_iter().for_each(&mut error),
            }
        }
        let time_zone = t
            .time_zone
            .clone()
            .unwrap_or_else(|| DEFAULT_TIME_ZONE.into());
        if let Err(e) = crate::hours::check_zone(&time_zone) {
            error(format!("time_zone: {e}"));
        }
        tenants.push(TenantConfig {
            name: t.name.unwrap_or_else(|| t.id.clone()),
            menu: resolve_path(cx.base, &t.menu),
            language: t.language.unwrap_or_else(|| DEFAULT_LANGUAGE.into()),
            time_zone,
            ussd_codes: t.ussd_codes,
            ussd_text: t.ussd_text,
            ussd_limits: limits,
            sms_codes: t.sms_codes,
            sms_text: t.sms_text,
            sms_max_segments,
            sms_sender: t.sms_sender,
            sms_destinations: t.sms_destinations,
            sms_per_subscriber_per_day,
            sources,
            id: t.id,
        });
    }
    if tenants.is_empty() {
        problems.error("tenant", "no [[tenant]] configured");
    }
    tenants
}

/// Checks that each tenant's `sms_sender` is a `[[sender]]`.
pub(super) fn check_senders(
    tenants: &[TenantConfig],
    senders: &HashSet<String>,
    problems: &mut Problems,
) {
    for t in tenants {
        if let Some(name) = &t.sms_sender {
            if !senders.contains(name) {
                problems.error(
                    &format!("tenant {}", t.id),
                    format!("sms_sender `{name}` is not a [[sender]]"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{parse, problems, CHANNEL};

    #[test]
    fn every_tenant_problem_is_reported_with_its_tenant() {
        let all = problems(&format!(
            r#"{CHANNEL}
[[tenant]]
id = "A"
menu = "a.toml"
ussd_codes = ["144", "*1#"]
sms_codes = ["10 88"]
ussd_max_chars = 200
sms_max_segments = 0
time_zone = "Mars/Olympus"
sms_sender = "nobody"
sms_destinations = ["+225", "33", "+2 25"]
sms_per_subscriber_per_day = -3
[[tenant]]
id = "b"
menu = "b.toml"
ussd_codes = ["*1#"]
sms_codes = ["1088"]
[[tenant.source]]
name = "conso"
kind = "ldap"
[[tenant.source]]
name = "conso"
kind = "file"
path = "c.csv"
[[tenant]]
id = "b"
menu = "c.toml"
sms_codes = ["1088"]
"#
        ));
        for needle in [
            "t.toml:tenant A: error: a tenant id holds only a-z, 0-9, - and _",
            "t.toml:tenant A: error: `144` is not a USSD service code such as *144#",
            "t.toml:tenant A: error: `10 88` is not an SMS short code",
            "t.toml:tenant A: error: `ussd_max_chars` must be between 40 and 182",
            "t.toml:tenant A: error: `sms_max_segments` must be between 1 and 10",
            "t.toml:tenant A: error: time_zone: ",
            "t.toml:tenant A: error: sms_sender `nobody` is not a [[sender]]",
            "t.toml:tenant A: error: sms_destinations: `33` is not a number prefix such as +225",
            "t.toml:tenant A: error: sms_destinations: `+2 25` is not a number prefix such as +225",
            "t.toml:tenant A: error: `sms_per_subscriber_per_day` must be a whole number from 0 to 4294967295",
            "t.toml:tenant b: error: service code *1# already belongs to tenant A",
            "t.toml:tenant b: error: data source `conso`: unknown kind `ldap`",
            "t.toml:tenant b: error: data source `conso` defined twice",
            "t.toml:tenant b: error: tenant id used twice",
            "t.toml:tenant b: error: SMS code 1088 already belongs to tenant b",
        ] {
            assert!(
                all.iter().any(|p| p.starts_with(needle)),
                "{needle} in {all:#?}"
            );
        }
    }

    #[test]
    fn a_tenant_takes_its_defaults_and_ussd_max_chars_scales_both_encodings() {
        let c = parse(&format!(
            "{CHANNEL}\n[[tenant]]\nid = \"t\"\nmenu = \"t.toml\"\nussd_max_chars = 91\n"
        ))
        .unwrap();
        let t = &c.tenants[0];
        assert_eq!(
            (t.name.as_str(), t.language.as_str(), t.time_zone.as_str()),
            ("t", "fr", "UTC")
        );
        assert_eq!(t.sms_max_segments, 3);
        assert!(t.sms_destinations.is_empty(), "sends to no one unless told");
        assert_eq!(t.sms_per_subscriber_per_day, 10);
        let d = crate::text::UssdLimits::default();
        assert_eq!(t.ussd_limits.gsm7, 91);
        assert_eq!(t.ussd_limits.ucs2, d.ucs2 * 91 / d.gsm7);
    }

    #[test]
    fn a_configuration_without_a_tenant_is_refused() {
        let all = problems(CHANNEL);
        assert!(
            all.contains(&"t.toml:tenant: error: no [[tenant]] configured".to_string()),
            "{all:#?}"
        );
    }
}
