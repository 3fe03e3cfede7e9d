//! Configuration: `config/tamtam.toml` as written, checked and resolved.
//!
//! Reading the file is the caller's job (`Config::from_file`); parsing and checking are
//! pure. Problems come back all at once as [`Diagnostic`]s. Relative paths resolve against
//! the folder holding the configuration file, so the gateway runs from any directory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::adapters::Dialect;
use crate::data::{check_json_pointer, expand_env, is_field_name, FieldMap, KeyTemplate, Secret};
use crate::diagnostic::{Diagnostic, Severity};
use crate::message::dial_parts;
use crate::outbox::SenderConfig;
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
    #[serde(default)]
    outbox: RawOutbox,
    #[serde(default)]
    sender: Vec<SenderConfig>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOutbox {
    base_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    claim_after_secs: Option<u64>,
    status_ttl_secs: Option<u64>,
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
    sender: Option<String>,
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
    sms_sender: Option<String>,
    #[serde(default)]
    source: Vec<RawSource>,
}

/// A `[[tenant.source]]` as written. Options of every kind are read here; which apply to
/// which kind, and unknown ones (`rest`), are checked by `check_source` so that every
/// problem is reported at once.
#[derive(Debug, Deserialize)]
struct RawSource {
    name: String,
    kind: String,
    path: Option<PathBuf>,
    url: Option<String>,
    key: Option<String>,
    fields: Option<BTreeMap<String, String>>,
    timeout_ms: Option<u64>,
    headers: Option<BTreeMap<String, String>>,
    retries: Option<u32>,
    not_found: Option<Vec<u16>>,
    breaker_failures: Option<u32>,
    breaker_open_ms: Option<u64>,
    cache_ms: Option<u64>,
    cache_entries: Option<usize>,
    #[serde(flatten)]
    rest: BTreeMap<String, toml::Value>,
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
    pub outbox: OutboxSettings,
    /// Senders, secrets resolved.
    pub senders: Vec<SenderConfig>,
}

/// How the outbound queue retries and keeps records.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// A message a replica claimed and did not finish for this long is taken over.
    pub claim_after: Duration,
    pub status_ttl: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            claim_after: Duration::from_secs(60),
            status_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
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
    /// The sender that carries replies on asynchronous dialects.
    pub sender: Option<String>,
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
    /// The sender for messages this tenant sends itself (USSD follow-ups).
    pub sms_sender: Option<String>,
    pub sources: Vec<SourceConfig>,
}

/// A data source as configured.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// A CSV file; the first column is the key.
    File { name: String, path: PathBuf },
    /// One Redis hash per subscriber.
    Redis(RedisSourceConfig),
    /// A JSON API.
    Http(HttpSourceConfig),
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::File { name, .. } => name,
            SourceConfig::Redis(r) => &r.name,
            SourceConfig::Http(h) => &h.name,
        }
    }

    /// The kind as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::File { .. } => "file",
            SourceConfig::Redis(_) => "redis",
            SourceConfig::Http(_) => "http",
        }
    }
}

/// Default `timeout_ms` of a `redis` source.
pub const REDIS_SOURCE_TIMEOUT: Duration = Duration::from_millis(500);
/// Default `timeout_ms` of an `http` source.
pub const HTTP_SOURCE_TIMEOUT: Duration = Duration::from_millis(1500);

/// A `redis` source: `HGETALL` of `key` (the lookup key in it).
#[derive(Debug, Clone)]
pub struct RedisSourceConfig {
    pub name: String,
    /// The source's `url`, else the gateway's `redis_url` (a secret: it may hold a password).
    pub url: Secret,
    /// `conso:{key}`.
    pub key: KeyTemplate,
    /// Menu field name to hash field; `None`: every hash field as is.
    pub fields: Option<FieldMap>,
    /// The whole lookup, connecting included.
    pub timeout: Duration,
}

impl RedisSourceConfig {
    /// A source with the defaults: every hash field, `timeout_ms` 500.
    pub fn new(name: &str, url: &str, key: &str) -> Result<RedisSourceConfig, String> {
        Ok(RedisSourceConfig {
            name: name.to_string(),
            url: Secret::new(url),
            key: KeyTemplate::parse(key)?,
            fields: None,
            timeout: REDIS_SOURCE_TIMEOUT,
        })
    }
}

/// An `http` source: `GET` of `url` (the key percent-encoded in it), JSON back.
#[derive(Debug, Clone)]
pub struct HttpSourceConfig {
    pub name: String,
    pub url: KeyTemplate,
    /// Header name and value, `${NAME}` already read from the environment.
    pub headers: Vec<(String, Secret)>,
    /// The whole lookup, retries included.
    pub timeout: Duration,
    /// Further attempts after a connect error, a timeout or a 5xx.
    pub retries: u32,
    /// Menu field name to JSON Pointer; `None`: every top-level member as is.
    pub fields: Option<FieldMap>,
    /// Statuses that mean "no such subscriber".
    pub not_found: Vec<u16>,
    /// Failed lookups in a row that open the circuit breaker; 0: no breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before a trial lookup.
    pub breaker_open: Duration,
    /// How long found and missing answers are kept; zero: no cache.
    pub cache_ttl: Duration,
    /// The most answers kept.
    pub cache_entries: usize,
}

impl HttpSourceConfig {
    /// A source with the defaults: `timeout_ms` 1500, `retries` 1, `not_found` [404], breaker
    /// after 5 failures for 30 s, no cache, every top-level member as a field.
    pub fn new(name: &str, url: &str) -> Result<HttpSourceConfig, String> {
        Ok(HttpSourceConfig {
            name: name.to_string(),
            url: KeyTemplate::parse(url)?,
            headers: Vec::new(),
            timeout: HTTP_SOURCE_TIMEOUT,
            retries: 1,
            fields: None,
            not_found: vec![404],
            breaker_failures: 5,
            breaker_open: Duration::from_secs(30),
            cache_ttl: Duration::ZERO,
            cache_entries: 10_000,
        })
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

/// The gateway's `hop_timeout_ms` when unset (data sources are checked against half of it).
const DEFAULT_HOP_TIMEOUT_MS: u64 = 4000;

/// What checking a data source needs from the rest of the configuration.
struct SourceContext<'a> {
    /// The folder relative paths resolve against.
    base: &'a Path,
    /// The gateway's Redis (`redis_url` or `TAMTAM_REDIS_URL`), the default of `redis` sources.
    redis_url: Option<&'a str>,
    /// A lookup gets half of it from the gateway; a source's own `timeout_ms` must fit.
    hop_timeout_ms: u64,
    /// Reads `${NAME}` in header values.
    env: &'a dyn Fn(&str) -> Option<String>,
}

/// The options each kind of source takes.
const FILE_OPTIONS: &[&str] = &["path"];
const REDIS_OPTIONS: &[&str] = &["url", "key", "fields", "timeout_ms"];
const HTTP_OPTIONS: &[&str] = &[
    "url",
    "headers",
    "timeout_ms",
    "retries",
    "fields",
    "not_found",
    "breaker_failures",
    "breaker_open_ms",
    "cache_ms",
    "cache_entries",
];

/// Checks one `[[tenant.source]]`; every problem comes back, each prefixed with the source.
fn check_source(s: RawSource, cx: &SourceContext) -> Result<SourceConfig, Vec<String>> {
    let mut problems = Vec::new();
    let allowed = match s.kind.as_str() {
        "file" => FILE_OPTIONS,
        "redis" => REDIS_OPTIONS,
        "http" => HTTP_OPTIONS,
        other => {
            return Err(vec![format!(
                "data source `{}`: unknown kind `{other}` (expected file, redis or http)",
                s.name
            )])
        }
    };
    let given = [
        ("path", s.path.is_some()),
        ("url", s.url.is_some()),
        ("key", s.key.is_some()),
        ("fields", s.fields.is_some()),
        ("timeout_ms", s.timeout_ms.is_some()),
        ("headers", s.headers.is_some()),
        ("retries", s.retries.is_some()),
        ("not_found", s.not_found.is_some()),
        ("breaker_failures", s.breaker_failures.is_some()),
        ("breaker_open_ms", s.breaker_open_ms.is_some()),
        ("cache_ms", s.cache_ms.is_some()),
        ("cache_entries", s.cache_entries.is_some()),
    ];
    for (option, set) in given {
        if set && !allowed.contains(&option) {
            problems.push(format!(
                "`{option}` is not an option of a {} source (options: {})",
                s.kind,
                allowed.join(", ")
            ));
        }
    }
    for option in s.rest.keys() {
        problems.push(format!(
            "unknown option `{option}` (options of a {} source: {})",
            s.kind,
            allowed.join(", ")
        ));
    }

    // Shared by redis and http.
    let mut timeout = |default: Duration| {
        let t = s.timeout_ms.map_or(default, Duration::from_millis);
        let most = cx.hop_timeout_ms / 2;
        if t.is_zero() {
            problems.push("`timeout_ms` must be at least 1".into());
        } else if t.as_millis() > u128::from(most) {
            problems.push(format!(
                "`timeout_ms` ({}) is more than the gateway gives a lookup: half of `hop_timeout_ms`, {most}",
                t.as_millis()
            ));
        }
        t
    };
    let fields = |problems: &mut Vec<String>, what: &str| {
        s.fields.as_ref().map(|fields| {
            if fields.is_empty() {
                problems.push("`fields` is empty: leave it out to take every field as is".into());
            }
            let mut map = FieldMap::new();
            for (name, from) in fields {
                if !is_field_name(name) {
                    problems.push(format!(
                        "`fields`: `{name}` is not a field name for menus (letters, digits and _)"
                    ));
                }
                if what == "pointer" {
                    if let Err(e) = check_json_pointer(from) {
                        problems.push(format!("`fields.{name}`: {e}"));
                    }
                } else if from.is_empty() {
                    problems.push(format!("`fields.{name}`: the hash field name is empty"));
                }
                map.push((name.clone(), from.clone()));
            }
            map
        })
    };

    let source = match s.kind.as_str() {
        "file" => match &s.path {
            Some(path) => Some(SourceConfig::File {
                name: s.name.clone(),
                path: cx.base.join(path),
            }),
            None => {
                problems.push("a file source needs `path`".into());
                None
            }
        },
        "redis" => {
            let timeout = timeout(REDIS_SOURCE_TIMEOUT);
            let fields = fields(&mut problems, "hash field");
            let url = s.url.as_deref().or(cx.redis_url);
            match url {
                None => problems.push(
                    "a redis source needs `url`, or the gateway's `redis_url` (or TAMTAM_REDIS_URL)"
                        .into(),
                ),
                Some(url) => {
                    // The URL may hold a password: the message never shows it.
                    if let Err(e) = redis::Client::open(url) {
                        problems.push(format!(
                            "`url` is not a Redis URL such as redis://host:6379/0 ({e})"
                        ));
                    }
                }
            }
            let key = match s.key.as_deref() {
                Some(k) => KeyTemplate::parse(k)
                    .map_err(|e| problems.push(format!("`key`: {e}")))
                    .ok(),
                None => {
                    problems.push("a redis source needs `key`, such as \"conso:{key}\"".into());
                    None
                }
            };
            match (url, key) {
                (Some(url), Some(key)) => Some(SourceConfig::Redis(RedisSourceConfig {
                    name: s.name.clone(),
                    url: Secret::new(url),
                    key,
                    fields,
                    timeout,
                })),
                _ => None,
            }
        }
        _ => {
            let timeout = timeout(HTTP_SOURCE_TIMEOUT);
            let fields = fields(&mut problems, "pointer");
            let url = match s.url.as_deref() {
                None => {
                    problems.push("an http source needs `url`, such as \"https://billing.example/v1/usage/{key}\"".into());
                    None
                }
                Some(u) => match KeyTemplate::parse(u) {
                    Err(e) => {
                        problems.push(format!("`url`: {e}"));
                        None
                    }
                    Ok(t) => match reqwest::Url::parse(&t.render_url("0")) {
                        Err(e) => {
                            problems.push(format!("`url`: `{u}` is not a URL ({e})"));
                            None
                        }
                        Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => {
                            problems
                                .push(format!("`url`: `{u}` is not an http:// or https:// URL"));
                            None
                        }
                        Ok(_) => Some(t),
                    },
                },
            };
            let mut headers = Vec::new();
            for (name, value) in s.headers.iter().flatten() {
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    problems.push(format!("`headers`: `{name}` is not a header name"));
                }
                match expand_env(value, cx.env) {
                    Ok(v) => {
                        // The value may be a secret: the message never shows it.
                        if reqwest::header::HeaderValue::from_str(&v).is_err() {
                            problems.push(format!(
                                "`headers.{name}`: the value holds characters a header cannot carry"
                            ));
                        }
                        headers.push((name.clone(), Secret::new(v)));
                    }
                    Err(es) => {
                        problems.extend(es.into_iter().map(|e| format!("`headers.{name}`: {e}")))
                    }
                }
            }
            let retries = s.retries.unwrap_or(1);
            if retries > 5 {
                problems.push("`retries` must be between 0 and 5".into());
            }
            let not_found = s.not_found.clone().unwrap_or_else(|| vec![404]);
            for status in &not_found {
                if !(100..=599).contains(status) || (200..=299).contains(status) {
                    problems.push(format!(
                        "`not_found`: {status} is not an HTTP status meaning \"no record\" (100 to 599, not 2xx)"
                    ));
                }
            }
            let breaker_failures = s.breaker_failures.unwrap_or(5);
            let breaker_open = Duration::from_millis(s.breaker_open_ms.unwrap_or(30_000));
            if breaker_failures > 0 && breaker_open.is_zero() {
                problems.push("`breaker_open_ms` must be at least 1 (set `breaker_failures = 0` to turn the breaker off)".into());
            }
            let cache_entries = s.cache_entries.unwrap_or(10_000);
            if cache_entries == 0 {
                problems.push(
                    "`cache_entries` must be at least 1 (set `cache_ms = 0` to turn the cache off)"
                        .into(),
                );
            }
            url.map(|url| {
                SourceConfig::Http(HttpSourceConfig {
                    name: s.name.clone(),
                    url,
                    headers,
                    timeout,
                    retries,
                    fields,
                    not_found,
                    breaker_failures,
                    breaker_open,
                    cache_ttl: Duration::from_millis(s.cache_ms.unwrap_or(0)),
                    cache_entries,
                })
            })
        }
    };
    match source {
        Some(source) if problems.is_empty() => Ok(source),
        _ => Err(problems
            .into_iter()
            .map(|p| format!("data source `{}`: {p}", s.name))
            .collect()),
    }
}

impl Config {
    /// Reads and checks the configuration file.
    pub fn from_file(path: &Path, overrides: &Overrides) -> Result<Config, Vec<Diagnostic>> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![Diagnostic {
                severity: Severity::Error,
                file: file.clone(),
                place: None,
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
                place: section.map(str::to_string),
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
                        sender: c.sender,
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
                let context = SourceContext {
                    base,
                    redis_url: redis_url.as_deref(),
                    hop_timeout_ms: raw.hop_timeout_ms.unwrap_or(DEFAULT_HOP_TIMEOUT_MS),
                    env: &|name| std::env::var(name).ok(),
                };
                match check_source(s, &context) {
                    Ok(source) => sources.push(source),
                    Err(messages) => {
                        for m in messages {
                            error(Some(&section), m);
                        }
                    }
                }
            }
            let time_zone = t.time_zone.clone().unwrap_or_else(|| "UTC".into());
            if let Err(e) = crate::hours::check_zone(&time_zone) {
                error(Some(&section), format!("time_zone: {e}"));
            }
            tenants.push(TenantConfig {
                name: t.name.unwrap_or_else(|| t.id.clone()),
                menu: base.join(t.menu),
                language: t.language.unwrap_or_else(|| "fr".into()),
                time_zone,
                ussd_codes: t.ussd_codes,
                ussd_text: t.ussd_text,
                ussd_limits: limits,
                sms_codes: t.sms_codes,
                sms_text: t.sms_text,
                sms_max_segments,
                sms_sender: t.sms_sender,
                sources,
                id: t.id,
            });
        }
        if tenants.is_empty() {
            error(Some("tenant"), "no [[tenant]] configured".into());
        }

        // Senders: names unique, secrets from the environment, referenced names exist.
        let mut senders = Vec::new();
        let mut sender_names = HashMap::new();
        for mut s in raw.sender {
            let section = format!("sender {}", s.name);
            if sender_names.insert(s.name.clone(), ()).is_some() {
                error(Some(&section), "sender name used twice".into());
            }
            if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
                error(
                    Some(&section),
                    format!("url `{}` must be an http(s) URL", s.url),
                );
            }
            let env = |n: &str| std::env::var(n).ok();
            for value in [&mut s.username, &mut s.password, &mut s.api_key]
                .into_iter()
                .flatten()
                .chain(s.headers.values_mut())
            {
                match crate::data::expand_env(value, &env) {
                    Ok(v) => *value = v,
                    Err(why) => {
                        for w in why {
                            error(Some(&section), w);
                        }
                    }
                }
            }
            if !(s.rate_per_sec >= 0.0 && s.rate_per_sec.is_finite()) {
                error(Some(&section), "`rate_per_sec` must be 0 or more".into());
            }
            senders.push(s);
        }
        for t in &tenants {
            if let Some(name) = &t.sms_sender {
                if !sender_names.contains_key(name) {
                    error(
                        Some(&format!("tenant {}", t.id)),
                        format!("sms_sender `{name}` is not a [[sender]]"),
                    );
                }
            }
        }
        for c in &channels {
            match (&c.sender, c.dialect.needs_sender()) {
                (Some(name), _) if !sender_names.contains_key(name) => error(
                    Some("channel"),
                    format!("{}: sender `{name}` is not a [[sender]]", c.path),
                ),
                (None, true) => error(
                    Some("channel"),
                    format!(
                        "{}: the {} dialect replies through a sender: add `sender = \"<name>\"`",
                        c.path,
                        c.dialect.name()
                    ),
                ),
                _ => {}
            }
        }
        let d = OutboxSettings::default();
        let ms = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_millis);
        let outbox = OutboxSettings {
            base_backoff: ms(raw.outbox.base_backoff_ms, d.base_backoff),
            max_backoff: ms(raw.outbox.max_backoff_ms, d.max_backoff),
            claim_after: secs(raw.outbox.claim_after_secs, d.claim_after),
            status_ttl: secs(raw.outbox.status_ttl_secs, d.status_ttl),
        };

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            outbox,
            senders,
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

    /// Checks one source written as TOML, with `env` as the environment.
    fn source(
        toml_text: &str,
        redis_url: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SourceConfig, Vec<String>> {
        let raw: RawSource = toml::from_str(toml_text).unwrap();
        check_source(
            raw,
            &SourceContext {
                base: Path::new("/etc/tamtam"),
                redis_url,
                hop_timeout_ms: 4000,
                env,
            },
        )
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_redis_source_takes_the_gateway_redis_by_default() {
        let text = r#"
name = "conso"
kind = "redis"
key = "conso:{msisdn}"
fields = { minutes = "voice_min", sms = "sms_count" }
"#;
        let Ok(SourceConfig::Redis(r)) = source(text, Some("redis://127.0.0.1:6379"), &no_env)
        else {
            panic!("a redis source")
        };
        assert_eq!(r.url.expose(), "redis://127.0.0.1:6379");
        assert_eq!(r.key.render("+1"), "conso:+1");
        assert_eq!(r.timeout, Duration::from_millis(500));
        assert_eq!(
            r.fields,
            Some(vec![
                ("minutes".to_string(), "voice_min".to_string()),
                ("sms".to_string(), "sms_count".to_string())
            ])
        );
        let err = source(text, None, &no_env).unwrap_err();
        assert!(
            err[0].contains("needs `url`, or the gateway's `redis_url`"),
            "{err:?}"
        );
        let own = format!("{text}url = \"redis://10.0.0.1:6380/2\"\n");
        let Ok(SourceConfig::Redis(r)) = source(&own, None, &no_env) else {
            panic!("a redis source")
        };
        assert_eq!(r.url.expose(), "redis://10.0.0.1:6380/2");
    }

    #[test]
    fn an_http_source_reads_its_options_with_defaults() {
        let text = r#"
name = "conso"
kind = "http"
url = "https://billing.example/v1/usage/{msisdn}"
headers = { Authorization = "Bearer ${BILLING_TOKEN}", X-Operator = "opt" }
fields = { minutes = "/usage/voice/minutes", credit = "/balance" }
"#;
        let env = |n: &str| (n == "BILLING_TOKEN").then(|| "s3cret".to_string());
        let Ok(SourceConfig::Http(h)) = source(text, None, &env) else {
            panic!("an http source")
        };
        assert_eq!(
            h.url.render_url("+687700001"),
            "https://billing.example/v1/usage/%2B687700001"
        );
        assert_eq!(h.headers[0].0, "Authorization");
        assert_eq!(h.headers[0].1.expose(), "Bearer s3cret");
        assert_eq!(h.headers[1].1.expose(), "opt");
        assert!(!format!("{h:?}").contains("s3cret"), "{h:?}");
        assert_eq!(h.timeout, Duration::from_millis(1500));
        assert_eq!(h.retries, 1);
        assert_eq!(h.not_found, vec![404]);
        assert_eq!(h.breaker_failures, 5);
        assert_eq!(h.breaker_open, Duration::from_secs(30));
        assert_eq!(h.cache_ttl, Duration::ZERO);
        assert_eq!(h.cache_entries, 10_000);
        let d = HttpSourceConfig::new("conso", "http://x/{key}").unwrap();
        assert_eq!(
            (
                d.timeout,
                d.retries,
                d.not_found,
                d.breaker_failures,
                d.cache_entries
            ),
            (
                h.timeout,
                h.retries,
                h.not_found.clone(),
                h.breaker_failures,
                h.cache_entries
            )
        );
    }

    #[test]
    fn every_problem_of_a_source_is_reported_and_secrets_are_not() {
        let text = r#"
name = "conso"
kind = "http"
url = "ftp://billing.example/{key}"
headers = { Authorization = "Bearer ${BILLING_TOKEN} ${OTHER_TOKEN}", "bad header" = "x" }
fields = { minutes = "usage/voice", "bad name" = "/x" }
timeout_ms = 2500
retries = 9
not_found = [200, 404]
path = "x.csv"
key = "conso:{key}"
colour = "blue"
"#;
        let env = |n: &str| (n == "OTHER_TOKEN").then(|| "s3cret".to_string());
        let err = source(text, None, &env).unwrap_err();
        for needle in [
            "is not an http:// or https:// URL",
            "environment variable `BILLING_TOKEN` is not set",
            "`bad header` is not a header name",
            "`fields.minutes`: `usage/voice` is not a JSON Pointer",
            "`bad name` is not a field name",
            "`timeout_ms` (2500) is more than the gateway gives a lookup",
            "`retries` must be between 0 and 5",
            "`not_found`: 200",
            "`path` is not an option of a http source",
            "`key` is not an option of a http source",
            "unknown option `colour`",
        ] {
            assert!(
                err.iter().any(|e| e.contains(needle)),
                "{needle} in {err:#?}"
            );
        }
        assert!(
            err.iter().all(|e| e.starts_with("data source `conso`: ")),
            "{err:#?}"
        );
        assert!(err.iter().all(|e| !e.contains("s3cret")), "{err:#?}");

        for (url, needle) in [
            ("not a url/{key}", "is not a URL"),
            ("http://billing.example/usage", "never uses the key"),
            (
                "http://billing.example/{line}",
                "unknown placeholder `{line}`",
            ),
        ] {
            let text = format!("name = \"c\"\nkind = \"http\"\nurl = \"{url}\"\n");
            let err = source(&text, None, &no_env).unwrap_err();
            assert!(
                err.iter().any(|e| e.contains(needle)),
                "{needle} in {err:#?}"
            );
        }
        let err = source(
            "name = \"c\"\nkind = \"redis\"\nurl = \"http://x\"\nheaders = {}\n",
            None,
            &no_env,
        )
        .unwrap_err();
        for needle in [
            "`url` is not a Redis URL",
            "needs `key`",
            "`headers` is not an option of a redis source",
        ] {
            assert!(
                err.iter().any(|e| e.contains(needle)),
                "{needle} in {err:#?}"
            );
        }
    }

    #[test]
    fn source_problems_come_with_the_rest_of_the_configuration() {
        let text = r#"
listen = "nowhere"
hop_timeout_ms = 1000
[[channel]]
dialect = "json"
path = "/ussd/json"
[[tenant]]
id = "t"
menu = "t.toml"
ussd_codes = ["*1#"]
[[tenant.source]]
name = "conso"
kind = "http"
url = "http://billing.example/{key}"
headers = { Authorization = "Bearer ${TAMTAM_TEST_SURELY_UNSET_VARIABLE}" }
[[tenant.source]]
name = "hash"
kind = "redis"
key = "conso:{key}"
unknown = 1
"#;
        let problems =
            Config::parse("t.toml", text, Path::new("."), &Overrides::default()).unwrap_err();
        let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
        for needle in [
            "nowhere",
            "t.toml:tenant t: error: data source `conso`: `timeout_ms` (1500) is more than the gateway gives a lookup: half of `hop_timeout_ms`, 500",
            "t.toml:tenant t: error: data source `conso`: `headers.Authorization`: environment variable `TAMTAM_TEST_SURELY_UNSET_VARIABLE` is not set",
            "t.toml:tenant t: error: data source `hash`: a redis source needs `url`",
            "t.toml:tenant t: error: data source `hash`: unknown option `unknown`",
        ] {
            assert!(all.iter().any(|p| p.contains(needle)), "{needle} in {all:#?}");
        }
    }
}
