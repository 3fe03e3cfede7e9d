//! Configuration: `config/tamtam.toml` as written, checked and resolved.
//!
//! Reading the file is the caller's job ([`Config::from_file`]); parsing and checking are
//! pure apart from `${NAME}` secrets read from the environment. Problems come back all at
//! once as [`Diagnostic`]s (`file:place: error: message`; a TOML syntax error's place is
//! `LINE:COLUMN`). Relative paths resolve against the folder holding the configuration
//! file, so the gateway runs from any directory, and are shown cleaned (`menus/a.toml`,
//! never `./config/../menus/a.toml`).
//!
//! One file per section, each with its types, its defaults (named constants, written once)
//! and its checks, its tests beside it: `settings.rs` (`[session]`, `[outbox]`),
//! `channel.rs` (`[[channel]]`), `tenant.rs` (`[[tenant]]`), `sender.rs` (`[[sender]]`),
//! `http.rs` (`[http]`), `limits.rs` (`[limits]`).
//! The components own their configuration types where they can: data sources in
//! `crate::data`, senders in `crate::outbox`. This module imports them, never the reverse.

mod channel;
mod http;
mod limits;
mod sender;
mod settings;
mod tenant;
mod version;

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::data::{resolve_path, SourceContext};
use crate::diagnostic::Diagnostic;
use crate::limits::LimitSettings;
use crate::outbox::SenderConfig;

pub use self::channel::Mount;
pub use self::http::HttpLimits;
pub use self::settings::{OutboxSettings, SessionSettings};
pub use self::tenant::TenantConfig;
pub use self::version::{files_of, version_of, version_of_files, VERSION_LEN};
// The data sources' configuration lives with the sources; re-exported here so that
// `config::SourceConfig` keeps naming what a `[[tenant.source]]` becomes.
pub use crate::data::{
    HttpSourceConfig, RedisSourceConfig, SourceConfig, HTTP_SOURCE_TIMEOUT, REDIS_SOURCE_TIMEOUT,
};

/// Where the configuration is read when `TAMTAM_CONFIG` is unset.
pub const DEFAULT_CONFIG: &str = "config/tamtam.toml";
/// Where the gateway listens when neither `TAMTAM_LISTEN` nor `listen` says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Where the operations endpoints listen when neither `TAMTAM_ADMIN_LISTEN` nor
/// `admin_listen` says.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8081";
/// The shortest `dlr_secret` accepted.
const DLR_SECRET_MIN_LEN: usize = 16;
/// `hop_timeout_ms` when unset.
pub const DEFAULT_HOP_TIMEOUT: Duration = Duration::from_millis(4000);
/// `max_body_bytes` when unset.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// The schemes a `redis_url` may have.
const REDIS_SCHEMES: &[&str] = &["redis://", "rediss://", "redis+unix://", "unix://"];

/// The whole file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    redis_url: Option<String>,
    max_body_bytes: Option<usize>,
    hop_timeout_ms: Option<u64>,
    #[serde(default)]
    session: settings::RawSession,
    #[serde(default)]
    channel: Vec<channel::RawChannel>,
    #[serde(default)]
    tenant: Vec<tenant::RawTenant>,
    #[serde(default)]
    outbox: settings::RawOutbox,
    #[serde(default)]
    sender: Vec<SenderConfig>,
    admin_listen: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    dlr_secret: Option<String>,
    #[serde(default)]
    http: http::RawHttp,
    #[serde(default)]
    limits: limits::RawLimits,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from, cleaned: every problem found later (a menu's data source,
    /// a network source that cannot be built) is reported against it.
    pub file: String,
    /// The address the server binds; `TAMTAM_LISTEN` wins, so a container can bind
    /// 0.0.0.0 without editing the file.
    pub listen: String,
    /// The Redis for sessions and the outbound queue (`TAMTAM_REDIS_URL` wins). `None`:
    /// both live in this process's memory, so only one replica may run. Also the default
    /// `url` of `redis` data sources.
    pub redis_url: Option<String>,
    /// The largest webhook body read; a larger one gets a 413 before any parsing, so a
    /// client cannot make the gateway buffer without bound.
    pub max_body_bytes: usize,
    /// How long a hop may take before the subscriber gets the tenant's `unavailable`
    /// text: USSD networks drop a session after a few seconds without an answer. A lookup
    /// gets half of it.
    pub hop_timeout: Duration,
    /// How long sessions, dialogues and webhook ids are kept, and how Redis keys are named.
    pub session: SessionSettings,
    /// The webhooks to mount: which dialect answers on which path.
    pub channels: Vec<Mount>,
    /// The organisations served; each owns its service codes, menu and data sources.
    pub tenants: Vec<TenantConfig>,
    /// How the outbound queue retries and how long it keeps statuses.
    pub outbox: OutboxSettings,
    /// The APIs that send SMS, secrets resolved (from `${NAME}`) so that a missing one is
    /// a start-up error, not a failure at the first send. Each `dlr_url` carries
    /// `dlr_secret` in its query (`secret=`), so the reports the provider sends back
    /// authenticate.
    pub senders: Vec<SenderConfig>,
    /// Where the operations endpoints (`/messages/{id}`, `/healthz`, `/readyz`) listen;
    /// `TAMTAM_ADMIN_LISTEN` wins. Never the public listener.
    pub admin_listen: String,
    /// Proxies whose `X-Forwarded-For` is believed when a channel checks `allow_ips`.
    pub trusted_proxies: Vec<crate::auth::Cidr>,
    /// The secret every delivery report must carry (`?secret=` on `/dlr/*`); `None`:
    /// every report is refused.
    pub dlr_secret: Option<crate::auth::Secret>,
    /// The HTTP server's timeouts and its cap on open connections (`[http]`).
    pub http: HttpLimits,
    /// Inbound rate limits per subscriber and per source address (`[limits]`).
    pub limits: LimitSettings,
}

/// Environment overrides, read by the binary and passed in (tests pass their own).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub redis_url: Option<String>,
    pub admin_listen: Option<String>,
}

impl Overrides {
    /// Reads `TAMTAM_LISTEN`, `TAMTAM_REDIS_URL` and `TAMTAM_ADMIN_LISTEN`; an empty value
    /// counts as unset.
    pub fn from_env() -> Overrides {
        let var = |k| {
            std::env::var(k)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        Overrides {
            listen: var("TAMTAM_LISTEN"),
            redis_url: var("TAMTAM_REDIS_URL"),
            admin_listen: var("TAMTAM_ADMIN_LISTEN"),
        }
    }
}

/// Problems found while checking one file, all kept to be reported at once.
struct Problems {
    file: String,
    list: Vec<Diagnostic>,
}

impl Problems {
    fn new(file: &str) -> Problems {
        Problems {
            file: file.to_string(),
            list: Vec::new(),
        }
    }

    /// An error in the section or option `place`.
    fn error(&mut self, place: &str, message: impl Into<String>) {
        self.list.push(Diagnostic::error(
            &self.file,
            Some(place.to_string()),
            message,
        ));
    }
}

impl Config {
    /// Reads and checks the configuration file. The file's name is shown cleaned.
    pub fn from_file(path: &Path, overrides: &Overrides) -> Result<Config, Vec<Diagnostic>> {
        let path = resolve_path(Path::new(""), path);
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            vec![Diagnostic::error(
                &file,
                None,
                format!("cannot read the configuration: {e}"),
            )]
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&file, &text, base, overrides)
    }

    /// Parses and checks configuration text; relative paths resolve against `base`.
    /// Sections are checked in the order of the file's documentation, and every problem
    /// of every section comes back.
    pub fn parse(
        file: &str,
        text: &str,
        base: &Path,
        overrides: &Overrides,
    ) -> Result<Config, Vec<Diagnostic>> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| vec![Diagnostic::toml(file, text, &e)])?;
        let mut problems = Problems::new(file);
        let env = |name: &str| std::env::var(name).ok();

        let listen = check_listen(overrides.listen.clone().or(raw.listen), &mut problems);
        let redis_url =
            check_redis_url(overrides.redis_url.clone().or(raw.redis_url), &mut problems);
        let hop_timeout = raw
            .hop_timeout_ms
            .map_or(DEFAULT_HOP_TIMEOUT, Duration::from_millis);
        let session = settings::check_session(raw.session, &mut problems);
        let channels = channel::check(raw.channel, &env, hop_timeout, &mut problems);
        channel::check_open(&channels, &listen, &mut problems);
        let admin_listen = check_admin_listen(
            overrides.admin_listen.clone().or(raw.admin_listen),
            &listen,
            &mut problems,
        );
        let trusted_proxies = check_proxies(&raw.trusted_proxies, &mut problems);
        let sources = SourceContext {
            base,
            redis_url: redis_url.as_deref(),
            hop_timeout: channel::largest_budget(&channels, hop_timeout),
            env: &env,
        };
        let tenants = tenant::check(raw.tenant, &sources, &mut problems);
        let (mut senders, sender_names) = sender::check(raw.sender, &env, &mut problems);
        let dlr_secret = check_dlr_secret(raw.dlr_secret, &mut senders, &env, &mut problems);
        tenant::check_senders(&tenants, &sender_names, &mut problems);
        channel::check_senders(&channels, &sender_names, &mut problems);
        let outbox = settings::check_outbox(raw.outbox, &mut problems);
        let http = http::check(raw.http, &mut problems);
        let limits = limits::check(raw.limits, &mut problems);

        if !problems.list.is_empty() {
            return Err(problems.list);
        }
        Ok(Config {
            file: file.to_string(),
            listen,
            redis_url,
            max_body_bytes: raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            hop_timeout,
            session,
            channels,
            tenants,
            outbox,
            senders,
            admin_listen,
            trusted_proxies,
            dlr_secret,
            http,
            limits,
        })
    }
}

/// `admin_listen` (or its override), else [`DEFAULT_ADMIN_LISTEN`]: an address and a port,
/// not the public listener's.
fn check_admin_listen(admin: Option<String>, listen: &str, problems: &mut Problems) -> String {
    let admin = admin.unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.to_string());
    match admin.parse::<std::net::SocketAddr>() {
        Err(_) => problems.error(
            "admin_listen",
            format!("`{admin}` is not an address:port such as 127.0.0.1:8081"),
        ),
        Ok(a) if a.port() != 0 && listen.parse::<std::net::SocketAddr>().ok() == Some(a) => {
            problems.error(
                "admin_listen",
                format!(
                    "`{admin}` is the public listener: give the operations endpoints their own"
                ),
            );
        }
        Ok(_) => {}
    }
    admin
}

/// `trusted_proxies`: CIDR blocks.
fn check_proxies(raw: &[String], problems: &mut Problems) -> Vec<crate::auth::Cidr> {
    raw.iter()
        .filter_map(|b| {
            crate::auth::Cidr::parse(b)
                .map_err(|e| problems.error("trusted_proxies", e))
                .ok()
        })
        .collect()
}

/// `dlr_secret`: read from `${NAME}`, long enough, and safe in a URL as it is (providers
/// call the URL back verbatim: Kannel would read `%` as one of its escapes). Appended to
/// every sender's `dlr_url`; a `dlr_url` without a `dlr_secret` is an error, since the
/// reports it brings would all be refused.
fn check_dlr_secret(
    raw: Option<String>,
    senders: &mut [SenderConfig],
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<crate::auth::Secret> {
    let secret = match raw.map(|r| crate::data::expand_env(&r, env)) {
        None => None,
        Some(Err(why)) => {
            why.into_iter()
                .for_each(|w| problems.error("dlr_secret", w));
            None
        }
        Some(Ok(v)) => {
            let safe = v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if v.len() < DLR_SECRET_MIN_LEN || !safe {
                problems.error(
                    "dlr_secret",
                    format!("must be at least {DLR_SECRET_MIN_LEN} characters among A-Z a-z 0-9 - . _ ~ (it travels in a URL)"),
                );
            }
            Some(v)
        }
    };
    for s in senders.iter_mut() {
        let Some(url) = &mut s.dlr_url else { continue };
        match &secret {
            Some(v) => {
                let sep = if url.contains('?') { '&' } else { '?' };
                url.push(sep);
                url.push_str(crate::auth::SECRET_PARAM);
                url.push('=');
                url.push_str(v);
            }
            None => problems.error(
                &format!("sender {}", s.name),
                "`dlr_url` needs a top-level `dlr_secret`: delivery reports without it are refused",
            ),
        }
    }
    secret.map(crate::auth::Secret::new)
}

/// `listen` (or its override), else [`DEFAULT_LISTEN`]: an address and a port.
fn check_listen(listen: Option<String>, problems: &mut Problems) -> String {
    let listen = listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    if listen.parse::<std::net::SocketAddr>().is_err() {
        problems.error(
            "listen",
            format!("`{listen}` is not an address:port such as 127.0.0.1:8080"),
        );
    }
    listen
}

/// `redis_url` (or its override), when set: a Redis scheme.
fn check_redis_url(url: Option<String>, problems: &mut Problems) -> Option<String> {
    if let Some(url) = &url {
        if !REDIS_SCHEMES.iter().any(|s| url.starts_with(s)) {
            problems.error(
                "redis_url",
                format!("`{url}` is not a Redis URL (redis://host:port)"),
            );
        }
    }
    url
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One mount, for tests about other sections.
    pub const CHANNEL: &str = "[[channel]]\ndialect = \"json\"\npath = \"/ussd/json\"\n";
    /// One tenant, for tests about other sections.
    pub const TENANT: &str = "[[tenant]]\nid = \"t\"\nmenu = \"t.toml\"\nussd_codes = [\"*1#\"]\n";
    /// The smallest configuration that passes: one mount, one tenant.
    pub const MINIMAL: &str = "[[channel]]\ndialect = \"json\"\npath = \"/ussd/json\"\n[[tenant]]\nid = \"t\"\nmenu = \"t.toml\"\nussd_codes = [\"*1#\"]\n";

    /// Parses `text` as `t.toml` in `.` with no override.
    pub fn parse(text: &str) -> Result<Config, Vec<Diagnostic>> {
        Config::parse("t.toml", text, Path::new("."), &Overrides::default())
    }

    /// Every problem `text` has, as `tamtam check` prints them; none when it passes.
    pub fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    fn has(all: &[String], needle: &str) -> bool {
        all.iter().any(|p| p.contains(needle))
    }

    #[test]
    fn the_minimal_configuration_passes() {
        assert_eq!(problems(MINIMAL), Vec::<String>::new());
        assert_eq!(format!("{CHANNEL}{TENANT}"), MINIMAL);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
listen = "nowhere"
redis_url = "http://x"
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
        let all = problems(text);
        for needle in [
            "t.toml:listen: error: `nowhere` is not an address:port",
            "t.toml:redis_url: error: `http://x` is not a Redis URL",
            "smoke-signals",
            "a tenant id",
            "`144` is not a USSD service code",
            "*1# already belongs to tenant A",
            "unknown kind `ldap`",
        ] {
            assert!(has(&all, needle), "{needle} in {all:#?}");
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
unauthenticated = true
[[tenant]]
id = "t"
menu = "../menus/t.toml"
ussd_codes = ["*1#"]
"#;
        let o = Overrides {
            listen: Some("0.0.0.0:9".into()),
            redis_url: Some("redis://127.0.0.1:6379".into()),
            admin_listen: Some("127.0.0.1:9".into()),
        };
        let c = Config::parse("c.toml", text, Path::new("/etc/tamtam"), &o).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9");
        assert_eq!(c.admin_listen, "127.0.0.1:9");
        assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        // Resolved against the file's folder, and shown cleaned.
        assert_eq!(c.tenants[0].menu, Path::new("/etc/menus/t.toml"));
        assert_eq!(c.max_body_bytes, 65536);
        assert_eq!(c.hop_timeout, Duration::from_millis(4000));
        assert_eq!(c.session.ttl, Duration::from_secs(180));
    }

    #[test]
    fn the_shipped_configuration_passes_with_cleaned_paths() {
        let c = Config::from_file(
            Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/config/../config/tamtam.toml"
            )),
            &Overrides::default(),
        )
        .unwrap();
        assert!(!c.file.contains(".."), "{}", c.file);
        assert!(c.file.ends_with("/config/tamtam.toml"), "{}", c.file);
        for t in &c.tenants {
            let menu = t.menu.display().to_string();
            assert!(!menu.contains("..") && !menu.contains("/./"), "{menu}");
            assert!(t.menu.exists(), "{menu}");
        }
        let missing =
            Config::from_file(Path::new("./config/../nowhere.toml"), &Overrides::default())
                .unwrap_err();
        assert!(
            missing[0]
                .to_string()
                .starts_with("nowhere.toml: error: cannot read the configuration: "),
            "{missing:?}"
        );
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
        let all = problems(text);
        for needle in [
            "nowhere",
            "t.toml:tenant t: error: data source `conso`: `timeout_ms` (1500) is more than the gateway gives a lookup: half of the largest hop budget (`hop_timeout_ms`, or a channel's), 500",
            "t.toml:tenant t: error: data source `conso`: `headers.Authorization`: environment variable `TAMTAM_TEST_SURELY_UNSET_VARIABLE` is not set",
            "t.toml:tenant t: error: data source `hash`: a redis source needs `url`",
            "t.toml:tenant t: error: data source `hash`: unknown option `unknown`",
        ] {
            assert!(has(&all, needle), "{needle} in {all:#?}");
        }
    }

    #[test]
    fn a_toml_syntax_error_gives_its_line_column_and_key() {
        let text = "listen = \"127.0.0.1:1\"\n[session]\nttl_secs = 10\nttl_secs = 20\n";
        assert_eq!(
            problems(text),
            vec!["t.toml:4:1: error: invalid TOML: duplicate key `ttl_secs` in [session]"]
        );

        // A value the schema refuses: placed at the value, in characters (é counts one).
        assert_eq!(
            problems("# é\n[session]\nttl_secs = \"long\"\n"),
            vec!["t.toml:3:12: error: invalid TOML: `ttl_secs` in [session]: invalid type: string \"long\", expected u64"]
        );

        // An unknown option: placed at its key, which toml names already.
        let all = problems(&format!("{MINIMAL}[outbox]\nretries = 3\n"));
        assert_eq!(all.len(), 1, "{all:#?}");
        assert!(
            all[0].starts_with(
                "t.toml:9:1: error: invalid TOML: in [outbox]: unknown field `retries`\n    expected one of"
            ),
            "{all:#?}"
        );

        // Broken syntax before any table.
        let all = problems("listen = localhost\n");
        assert!(
            all[0].starts_with("t.toml:1:10: error: invalid TOML: `listen`: "),
            "{all:#?}"
        );
    }

    /// The options serde knows for the table `table` (written as TOML), read from its
    /// "unknown field" message: the list stays right when a field is added.
    fn options_of(prefix: &str) -> Vec<String> {
        let text = format!("{prefix}surely_not_an_option = 1\n");
        let e = toml::from_str::<RawConfig>(&text).unwrap_err();
        let message = e.message();
        assert!(message.starts_with("unknown field"), "{message}");
        message
            .split('`')
            .skip(3)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_option_the_code_reads_is_documented_in_the_shipped_file() {
        let shipped =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/tamtam.toml"))
                .unwrap();
        let mut options = Vec::new();
        for prefix in [
            "",
            "[session]\n",
            "[outbox]\n",
            "[http]\n",
            "[limits]\n",
            "[[channel]]\n",
            "[[tenant]]\n",
            "[[sender]]\nname = \"s\"\nkind = \"http\"\nurl = \"http://x\"\n",
        ] {
            let found = options_of(prefix);
            assert!(found.len() >= 4, "{prefix}: {found:?}");
            options.extend(found);
        }
        for kind in crate::data::SOURCE_KINDS {
            options.extend(
                crate::data::source_options(kind)
                    .unwrap()
                    .iter()
                    .map(|o| o.to_string()),
            );
        }
        for option in options {
            let written = shipped.contains(&format!("\n{option} ="))
                || shipped.contains(&format!("# {option} ="))
                || shipped.contains(&format!("{option}]]"))
                || shipped.contains(&format!("[{option}]"));
            assert!(written, "`{option}` is not in config/tamtam.toml");
        }
    }
}
