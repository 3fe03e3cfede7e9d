//! Configuration: `config/tamtam.toml` as written, checked and resolved.
//!
//! Reading the file is the caller's job (`Config::from_file`); parsing and checking are
//! pure. Problems come back all at once as [`Diagnostic`]s. Relative paths resolve against
//! the folder holding the configuration file, so the gateway runs from any directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::adapters::Dialect;
use crate::menu::{Diagnostic, Severity};
use crate::text::{TextPolicy, UssdLimits};

/// Where the configuration is read when `TAMTAM_CONFIG` is unset.
pub const DEFAULT_CONFIG: &str = "config/tamtam.toml";
/// Where the gateway listens when neither `TAMTAM_LISTEN` nor `listen` says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    redis_url: Option<String>,
    max_body_bytes: Option<usize>,
    hop_timeout_ms: Option<u64>,
    #[serde(default)]
    session: RawSession,
    #[serde(default)]
    channel: Vec<RawChannel>,
    #[serde(default)]
    tenant: Vec<RawTenant>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSession {
    ttl_secs: Option<u64>,
    resume_window_secs: Option<u64>,
    ended_ttl_secs: Option<u64>,
    sms_ttl_secs: Option<u64>,
    dedupe_ttl_secs: Option<u64>,
    key_prefix: Option<String>,
    redis_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    dialect: String,
    path: String,
    public_url: Option<String>,
    auth_token_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
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
    #[serde(default)]
    source: Vec<RawSource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: String,
    kind: String,
    path: Option<PathBuf>,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from, for messages.
    pub file: String,
    pub listen: String,
    pub redis_url: Option<String>,
    pub max_body_bytes: usize,
    pub hop_timeout: Duration,
    pub session: SessionSettings,
    pub channels: Vec<Channel>,
    pub tenants: Vec<TenantConfig>,
}

/// Session timings and naming.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub ttl: Duration,
    pub resume_window: Duration,
    pub ended_ttl: Duration,
    /// Time to live of an SMS dialogue after its last message.
    pub sms_ttl: Duration,
    /// How long a webhook's message id is remembered to answer its retries.
    pub dedupe_ttl: Duration,
    pub key_prefix: String,
    pub redis_timeout: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            ttl: Duration::from_secs(180),
            resume_window: Duration::from_secs(300),
            ended_ttl: Duration::from_secs(30),
            sms_ttl: Duration::from_secs(15 * 60),
            dedupe_ttl: Duration::from_secs(24 * 3600),
            key_prefix: "tamtam".into(),
            redis_timeout: Duration::from_millis(1000),
        }
    }
}

/// A webhook endpoint.
#[derive(Debug, Clone)]
pub struct Channel {
    pub dialect: Dialect,
    pub path: String,
    /// The URL the aggregator calls, as it sees it (Twilio signs it).
    pub public_url: Option<String>,
    /// The environment variable holding this channel's auth token (Twilio).
    pub auth_token_env: Option<String>,
}

/// One tenant as configured.
#[derive(Debug, Clone)]
pub struct TenantConfig {
    pub id: String,
    pub name: String,
    pub menu: PathBuf,
    pub language: String,
    pub time_zone: String,
    /// Service codes as dialled (`*144#`).
    pub ussd_codes: Vec<String>,
    pub ussd_text: TextPolicy,
    pub ussd_limits: UssdLimits,
    /// SMS short codes (`1088`).
    pub sms_codes: Vec<String>,
    pub sms_text: TextPolicy,
    /// Most SMS parts in one reply; a longer reply is cut and continued by `SUITE`.
    pub sms_max_segments: usize,
    pub sources: Vec<SourceConfig>,
}

/// A data source as configured.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// A CSV file; the first column is the key.
    File { name: String, path: PathBuf },
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::File { name, .. } => name,
        }
    }
}

/// Environment overrides, read by the binary and passed in (tests pass their own).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub redis_url: Option<String>,
}

impl Overrides {
    /// Reads `TAMTAM_LISTEN` and `TAMTAM_REDIS_URL`; an empty value counts as unset.
    pub fn from_env() -> Overrides {
        let var = |k| {
            std::env::var(k)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        Overrides {
            listen: var("TAMTAM_LISTEN"),
            redis_url: var("TAMTAM_REDIS_URL"),
        }
    }
}

/// Splits `*144*3#` into its parts (`["144", "3"]`); `None` when it is not a dial string.
pub fn dial_parts(code: &str) -> Option<Vec<&str>> {
    let inner = code.trim().strip_prefix('*')?.strip_suffix('#')?;
    let parts: Vec<&str> = inner.split('*').collect();
    parts
        .iter()
        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        .then_some(parts)
}

impl Config {
    /// Reads and checks the configuration file.
    pub fn from_file(path: &Path, overrides: &Overrides) -> Result<Config, Vec<Diagnostic>> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![Diagnostic {
                severity: Severity::Error,
                file: file.clone(),
                screen: None,
                message: format!("cannot read the configuration: {e}"),
            }]
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&file, &text, base, overrides)
    }

    /// Parses and checks configuration text; relative paths resolve against `base`.
    pub fn parse(
        file: &str,
        text: &str,
        base: &Path,
        overrides: &Overrides,
    ) -> Result<Config, Vec<Diagnostic>> {
        let mut problems = Vec::new();
        let mut error = |section: Option<&str>, message: String| {
            problems.push(Diagnostic {
                severity: Severity::Error,
                file: file.to_string(),
                screen: section.map(str::to_string),
                message,
            })
        };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let section = e
                    .span()
                    .map(|s| format!("byte {}", s.start))
                    .unwrap_or_default();
                error(
                    (!section.is_empty()).then_some(section.as_str()),
                    format!("invalid configuration: {}", e.message()),
                );
                return Err(problems);
            }
        };

        let listen = overrides
            .listen
            .clone()
            .or(raw.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        if listen.parse::<std::net::SocketAddr>().is_err() {
            error(
                Some("listen"),
                format!("`{listen}` is not an address:port such as 127.0.0.1:8080"),
            );
        }
        let redis_url = overrides.redis_url.clone().or(raw.redis_url);
        if let Some(url) = &redis_url {
            if !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("redis+unix://")
                || url.starts_with("unix://"))
            {
                error(
                    Some("redis_url"),
                    format!("`{url}` is not a Redis URL (redis://host:port)"),
                );
            }
        }

        let d = SessionSettings::default();
        let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
        let session = SessionSettings {
            ttl: secs(raw.session.ttl_secs, d.ttl),
            resume_window: secs(raw.session.resume_window_secs, d.resume_window),
            ended_ttl: secs(raw.session.ended_ttl_secs, d.ended_ttl),
            sms_ttl: secs(raw.session.sms_ttl_secs, d.sms_ttl),
            dedupe_ttl: secs(raw.session.dedupe_ttl_secs, d.dedupe_ttl),
            key_prefix: raw.session.key_prefix.unwrap_or(d.key_prefix),
            redis_timeout: raw
                .session
                .redis_timeout_ms
                .map_or(d.redis_timeout, Duration::from_millis),
        };
        if session.ttl.is_zero() {
            error(Some("session"), "`ttl_secs` must be at least 1".into());
        }
        for (name, v) in [
            ("sms_ttl_secs", session.sms_ttl),
            ("dedupe_ttl_secs", session.dedupe_ttl),
        ] {
            if v.is_zero() {
                error(Some("session"), format!("`{name}` must be at least 1"));
            }
        }
        if session.ended_ttl.is_zero() {
            error(
                Some("session"),
                "`ended_ttl_secs` must be at least 1".into(),
            );
        }

        let mut channels = Vec::new();
        let mut paths = HashMap::new();
        for c in raw.channel {
            match Dialect::from_name(&c.dialect) {
                Some(dialect) => {
                    if !c.path.starts_with('/') {
                        error(
                            Some("channel"),
                            format!("path `{}` must start with /", c.path),
                        );
                    } else if matches!(c.path.as_str(), "/healthz" | "/readyz") {
                        error(Some("channel"), format!("path `{}` is reserved", c.path));
                    } else if paths.insert(c.path.clone(), ()).is_some() {
                        error(
                            Some("channel"),
                            format!("path `{}` is mounted twice", c.path),
                        );
                    }
                    if let Some(url) = &c.public_url {
                        if !(url.starts_with("http://") || url.starts_with("https://")) {
                            error(
                                Some("channel"),
                                format!("public_url `{url}` must be an http(s) URL"),
                            );
                        }
                    }
                    if (c.public_url.is_some() || c.auth_token_env.is_some())
                        && dialect != Dialect::Twilio
                    {
                        error(
                            Some("channel"),
                            format!(
                                "`public_url` and `auth_token_env` apply to the twilio dialect, not {}",
                                dialect.name()
                            ),
                        );
                    }
                    channels.push(Channel {
                        dialect,
                        path: c.path,
                        public_url: c.public_url,
                        auth_token_env: c.auth_token_env,
                    });
                }
                None => error(
                    Some("channel"),
                    format!(
                        "unknown dialect `{}` (expected one of: {})",
                        c.dialect,
                        Dialect::ALL
                            .iter()
                            .map(|d| d.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
        if channels.is_empty() {
            error(
                Some("channel"),
                "no [[channel]]: mount at least one dialect".into(),
            );
        }

        let mut tenants = Vec::new();
        let mut ids = HashMap::new();
        let mut codes: HashMap<String, String> = HashMap::new();
        let mut sms_codes_all: HashMap<String, String> = HashMap::new();
        for t in raw.tenant {
            let section = format!("tenant {}", t.id);
            if t.id.is_empty()
                || !t
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                error(
                    Some(&section),
                    "a tenant id holds only a-z, 0-9, - and _".into(),
                );
            }
            if ids.insert(t.id.clone(), ()).is_some() {
                error(Some(&section), "tenant id used twice".into());
            }
            for code in &t.ussd_codes {
                if dial_parts(code).is_none() {
                    error(
                        Some(&section),
                        format!("`{code}` is not a USSD service code such as *144#"),
                    );
                } else if let Some(other) = codes.insert(code.clone(), t.id.clone()) {
                    error(
                        Some(&section),
                        format!("service code {code} already belongs to tenant {other}"),
                    );
                }
            }
            for code in &t.sms_codes {
                if code.is_empty()
                    || !code
                        .trim_start_matches('+')
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric())
                {
                    error(
                        Some(&section),
                        format!("`{code}` is not an SMS short code or number such as 1088"),
                    );
                } else if let Some(other) = sms_codes_all.insert(code.clone(), t.id.clone()) {
                    error(
                        Some(&section),
                        format!("SMS code {code} already belongs to tenant {other}"),
                    );
                }
            }
            let sms_max_segments = t.sms_max_segments.unwrap_or(3);
            if !(1..=10).contains(&sms_max_segments) {
                error(
                    Some(&section),
                    "`sms_max_segments` must be between 1 and 10".into(),
                );
            }
            let mut limits = UssdLimits::default();
            if let Some(max) = t.ussd_max_chars {
                if !(40..=182).contains(&max) {
                    error(
                        Some(&section),
                        "`ussd_max_chars` must be between 40 and 182".into(),
                    );
                }
                limits.ucs2 = limits.ucs2 * max / limits.gsm7;
                limits.gsm7 = max;
            }
            let mut sources = Vec::new();
            let mut names = HashMap::new();
            for s in t.source {
                if names.insert(s.name.clone(), ()).is_some() {
                    error(
                        Some(&section),
                        format!("data source `{}` defined twice", s.name),
                    );
                }
                match (s.kind.as_str(), s.path) {
                    ("file", Some(path)) => sources.push(SourceConfig::File {
                        name: s.name,
                        path: base.join(path),
                    }),
                    ("file", None) => error(
                        Some(&section),
                        format!("data source `{}`: a file source needs `path`", s.name),
                    ),
                    (other, _) => error(
                        Some(&section),
                        format!(
                            "data source `{}`: unknown kind `{other}` (expected file)",
                            s.name
                        ),
                    ),
                }
            }
            tenants.push(TenantConfig {
                name: t.name.unwrap_or_else(|| t.id.clone()),
                menu: base.join(t.menu),
                language: t.language.unwrap_or_else(|| "fr".into()),
                time_zone: t.time_zone.unwrap_or_else(|| "UTC".into()),
                ussd_codes: t.ussd_codes,
                ussd_text: t.ussd_text,
                ussd_limits: limits,
                sms_codes: t.sms_codes,
                sms_text: t.sms_text,
                sms_max_segments,
                sources,
                id: t.id,
            });
        }
        if tenants.is_empty() {
            error(Some("tenant"), "no [[tenant]] configured".into());
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            file: file.to_string(),
            listen,
            redis_url,
            max_body_bytes: raw.max_body_bytes.unwrap_or(64 * 1024),
            hop_timeout: Duration::from_millis(raw.hop_timeout_ms.unwrap_or(4000)),
            session,
            channels,
            tenants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_parts_accepts_only_dial_strings() {
        assert_eq!(dial_parts("*144#"), Some(vec!["144"]));
        assert_eq!(dial_parts("*144*3*1#"), Some(vec!["144", "3", "1"]));
        assert_eq!(dial_parts("144"), None);
        assert_eq!(dial_parts("*144"), None);
        assert_eq!(dial_parts("**#"), None);
        assert_eq!(dial_parts("*14a#"), None);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
listen = "nowhere"
[[channel]]
dialect = "smoke-signals"
path = "/x"
[[tenant]]
id = "A"
menu = "a.toml"
ussd_codes = ["144", "*1#"]
[[tenant]]
id = "b"
menu = "b.toml"
ussd_codes = ["*1#"]
[[tenant.source]]
name = "conso"
kind = "ldap"
"#;
        let problems =
            Config::parse("t.toml", text, Path::new("."), &Overrides::default()).unwrap_err();
        let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
        for needle in [
            "nowhere",
            "smoke-signals",
            "a tenant id",
            "`144` is not a USSD service code",
            "*1# already belongs to tenant A",
            "unknown kind `ldap`",
        ] {
            assert!(
                all.iter().any(|p| p.contains(needle)),
                "{needle} in {all:#?}"
            );
        }
        assert!(all.iter().all(|p| p.starts_with("t.toml:")), "{all:#?}");
    }

    #[test]
    fn overrides_win_and_paths_resolve_against_the_file() {
        let text = r#"
listen = "127.0.0.1:1"
[[channel]]
dialect = "json"
path = "/ussd/json"
[[tenant]]
id = "t"
menu = "../menus/t.toml"
ussd_codes = ["*1#"]
"#;
        let o = Overrides {
            listen: Some("0.0.0.0:9".into()),
            redis_url: Some("redis://127.0.0.1:6379".into()),
        };
        let c = Config::parse("c.toml", text, Path::new("/etc/tamtam"), &o).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9");
        assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(c.tenants[0].menu, Path::new("/etc/tamtam/../menus/t.toml"));
        assert_eq!(c.max_body_bytes, 65536);
        assert_eq!(c.session.ttl, Duration::from_secs(180));
    }
}
