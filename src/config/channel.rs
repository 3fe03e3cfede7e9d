//! The `[[channel]]` sections: webhook mounts, each a dialect on a path, and how each
//! authenticates its callers. The type is [`Mount`]: "channel" also names the USSD/SMS
//! split elsewhere (`menu::Channel`).
//!
//! Safe by default: on a listener that is not loopback, a channel must authenticate (a
//! secret, Basic, an allow-list, an HMAC, or Twilio's signature) or say
//! `unauthenticated = true`; [`check_open`] makes anything else a configuration error.
//!
//! Each USSD channel has its own time budget (`hop_timeout_ms`, else the global one): an
//! aggregator gives up on an answer after its own limit (Hubtel asks for one within 5 s,
//! Africa's Talking waits 15 s), and a budget above that limit is an error, since the
//! subscriber would see the aggregator's failure instead of the tenant's polite text.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::Problems;
use crate::adapters::Dialect;
use crate::auth::{ChannelAuth, Cidr, HmacAuth, Secret, DEFAULT_HMAC_WINDOW_SECS};
use crate::data::expand_env;

/// Paths the server keeps for itself.
const RESERVED_PATHS: &[&str] = &["/healthz", "/readyz"];

/// A `[[channel]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannel {
    dialect: String,
    path: String,
    public_url: Option<String>,
    auth_token_env: Option<String>,
    sender: Option<String>,
    secret: Option<String>,
    basic_user: Option<String>,
    basic_password: Option<String>,
    #[serde(default)]
    allow_ips: Vec<String>,
    hmac_key: Option<String>,
    hmac_window_secs: Option<u64>,
    #[serde(default)]
    unauthenticated: bool,
    hop_timeout_ms: Option<u64>,
}

/// A webhook endpoint: the dialect that answers on a path.
#[derive(Debug, Clone)]
pub struct Mount {
    pub dialect: Dialect,
    /// Where the aggregator posts (`/ussd/at`); unique, never a reserved path.
    pub path: String,
    /// The URL the aggregator calls, as it sees it (Twilio signs it).
    pub public_url: Option<String>,
    /// The environment variable holding this channel's auth token (Twilio).
    pub auth_token_env: Option<String>,
    /// The sender that carries replies on asynchronous dialects.
    pub sender: Option<String>,
    /// Who may call it (secrets resolved from `${NAME}`).
    pub auth: ChannelAuth,
    /// How long a hop on this channel may take before the subscriber gets the tenant's
    /// `unavailable` text (a lookup gets half of it): the channel's `hop_timeout_ms`, else
    /// the global one. USSD channels only; SMS webhooks use the global budget.
    pub hop_timeout: Duration,
}

/// The published answer limits of the aggregators whose dialects tamtam speaks, in
/// milliseconds: a channel's budget may not exceed its aggregator's. Hubtel: "respond
/// promptly (<= 5s for USSD applications)" (hubtel/programmable-services-sdk-dotnet,
/// README). Africa's Talking: 10 s to connect, 15 s to answer
/// (help.africastalking.com/en/articles/1284071). tamtam's own JSON dialect has no limit
/// but the operator's gateway's.
pub fn published_limit(dialect: Dialect) -> Option<Duration> {
    match dialect {
        Dialect::Hubtel => Some(Duration::from_millis(5_000)),
        Dialect::AfricasTalking => Some(Duration::from_millis(15_000)),
        _ => None,
    }
}

/// Checks every `[[channel]]`: a known dialect, a unique path starting with `/`, the
/// Twilio-only options on Twilio only, a time budget (`hop_timeout`, the global
/// `hop_timeout_ms`, when the channel sets none) on USSD channels only and within the
/// aggregator's published limit; at least one channel.
pub(super) fn check(
    raw: Vec<RawChannel>,
    env: &dyn Fn(&str) -> Option<String>,
    hop_timeout: Duration,
    problems: &mut Problems,
) -> Vec<Mount> {
    let mut mounts = Vec::new();
    let mut paths = HashSet::new();
    for c in raw {
        let Some(dialect) = Dialect::from_name(&c.dialect) else {
            let known: Vec<&str> = Dialect::ALL.iter().map(|d| d.name()).collect();
            problems.error(
                "channel",
                format!(
                    "unknown dialect `{}` (expected one of: {})",
                    c.dialect,
                    known.join(", ")
                ),
            );
            continue;
        };
        if !c.path.starts_with('/') {
            problems.error("channel", format!("path `{}` must start with /", c.path));
        } else if RESERVED_PATHS.contains(&c.path.as_str()) {
            problems.error("channel", format!("path `{}` is reserved", c.path));
        } else if !paths.insert(c.path.clone()) {
            problems.error("channel", format!("path `{}` is mounted twice", c.path));
        }
        if let Some(url) = &c.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.error(
                    "channel",
                    format!("public_url `{url}` must be an http(s) URL"),
                );
            }
        }
        if (c.public_url.is_some() || c.auth_token_env.is_some()) && dialect != Dialect::Twilio {
            problems.error(
                "channel",
                format!(
                    "`public_url` and `auth_token_env` apply to the twilio dialect, not {}",
                    dialect.name()
                ),
            );
        }
        let auth = check_auth(&c, dialect, env, problems);
        let hop_timeout = check_budget(&c, dialect, hop_timeout, problems);
        mounts.push(Mount {
            dialect,
            path: c.path,
            public_url: c.public_url,
            auth_token_env: c.auth_token_env,
            sender: c.sender,
            auth,
            hop_timeout,
        });
    }
    if mounts.is_empty() {
        problems.error("channel", "no [[channel]]: mount at least one dialect");
    }
    mounts
}

/// The budget a data source's `timeout_ms` is checked against: the largest of the global
/// `hop_timeout_ms` (SMS webhooks, the simulator) and every channel's, since every channel
/// reaches every tenant. A source slower than half of a smaller channel's budget is cut
/// there by the gateway (the screen's `failed`, or the tenant's `unavailable` text) and
/// still answers on the channels that wait longer.
pub(super) fn largest_budget(mounts: &[Mount], global: Duration) -> Duration {
    mounts
        .iter()
        .map(|m| m.hop_timeout)
        .fold(global, Duration::max)
}

/// A channel's time budget: its `hop_timeout_ms` (at least 1, on a USSD dialect, within
/// the aggregator's published limit), else `default`.
fn check_budget(
    c: &RawChannel,
    dialect: Dialect,
    default: Duration,
    problems: &mut Problems,
) -> Duration {
    let Some(ms) = c.hop_timeout_ms else {
        return default;
    };
    let path = &c.path;
    let budget = Duration::from_millis(ms);
    if dialect.channel() != crate::message::Channel::Ussd {
        problems.error(
            "channel",
            format!(
                "{path}: `hop_timeout_ms` applies to USSD channels, not {} (SMS webhooks use the global `hop_timeout_ms`)",
                dialect.name()
            ),
        );
    } else if ms == 0 {
        problems.error(
            "channel",
            format!("{path}: `hop_timeout_ms` must be at least 1"),
        );
    } else if let Some(limit) = published_limit(dialect).filter(|l| budget > *l) {
        problems.error(
            "channel",
            format!(
                "{path}: `hop_timeout_ms` ({ms}) is more than {} waits for an answer ({} ms): the subscriber would see its failure, not the tenant's text",
                dialect.name(),
                limit.as_millis()
            ),
        );
    }
    budget
}

/// A channel's authentication: secrets read from the environment, blocks parsed, HMAC on
/// tamtam's JSON dialects only, Basic as a pair, nothing alongside `unauthenticated`.
fn check_auth(
    c: &RawChannel,
    dialect: Dialect,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> ChannelAuth {
    let path = &c.path;
    let mut secret = |option: &str, value: &Option<String>| -> Option<Secret> {
        let value = value.as_deref()?;
        match expand_env(value, env) {
            Ok(v) if v.is_empty() => {
                problems.error("channel", format!("{path}: `{option}` is empty"));
                None
            }
            Ok(v) => Some(Secret::new(v)),
            Err(why) => {
                for w in why {
                    problems.error("channel", format!("{path}: `{option}`: {w}"));
                }
                None
            }
        }
    };
    let shared = secret("secret", &c.secret);
    let password = secret("basic_password", &c.basic_password);
    let key = secret("hmac_key", &c.hmac_key);
    let basic = match (&c.basic_user, password) {
        (Some(user), Some(password)) => Some((user.clone(), password)),
        (None, None) => None,
        _ => {
            problems.error(
                "channel",
                format!("{path}: HTTP Basic needs both `basic_user` and `basic_password`"),
            );
            None
        }
    };
    let mut allow = Vec::new();
    for block in &c.allow_ips {
        match Cidr::parse(block) {
            Ok(cidr) => allow.push(cidr),
            Err(e) => problems.error("channel", format!("{path}: `allow_ips`: {e}")),
        }
    }
    let json = matches!(dialect, Dialect::Json | Dialect::SmsJson);
    if (c.hmac_key.is_some() || c.hmac_window_secs.is_some()) && !json {
        problems.error(
            "channel",
            format!(
                "{path}: `hmac_key` applies to tamtam's JSON dialects (json, sms_json), not {}",
                dialect.name()
            ),
        );
    }
    let auth = ChannelAuth {
        secret: shared,
        basic,
        allow,
        hmac: key.filter(|_| json).map(|key| HmacAuth {
            key,
            window_secs: c.hmac_window_secs.unwrap_or(DEFAULT_HMAC_WINDOW_SECS),
        }),
        signed_by_dialect: dialect == Dialect::Twilio,
        unauthenticated: c.unauthenticated,
    };
    if c.unauthenticated && !auth.is_open() {
        problems.error(
            "channel",
            format!(
                "{path}: `unauthenticated = true` with {}: choose one",
                auth.mechanisms().join(", ")
            ),
        );
    }
    auth
}

/// On a listener that is not loopback, every channel authenticates or says
/// `unauthenticated = true`.
pub(super) fn check_open(mounts: &[Mount], listen: &str, problems: &mut Problems) {
    let Ok(address) = listen.parse::<SocketAddr>() else {
        return; // reported by check_listen
    };
    if address.ip().is_loopback() {
        return;
    }
    for c in mounts {
        if c.auth.is_open() && !c.auth.unauthenticated {
            problems.error(
                "channel",
                format!(
                    "{}: no authentication on the non-loopback listener {listen}: set `secret`, `basic_user`/`basic_password`, `allow_ips` or `hmac_key`, or say `unauthenticated = true`",
                    c.path
                ),
            );
        }
    }
}

/// Checks that each mount's `sender` is a `[[sender]]`, and that asynchronous dialects
/// have one.
pub(super) fn check_senders(mounts: &[Mount], senders: &HashSet<String>, problems: &mut Problems) {
    for c in mounts {
        match (&c.sender, c.dialect.needs_sender()) {
            (Some(name), _) if !senders.contains(name) => problems.error(
                "channel",
                format!("{}: sender `{name}` is not a [[sender]]", c.path),
            ),
            (None, true) => problems.error(
                "channel",
                format!(
                    "{}: the {} dialect replies through a sender: add `sender = \"<name>\"`",
                    c.path,
                    c.dialect.name()
                ),
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{problems, TENANT};

    #[test]
    fn every_mount_problem_is_reported() {
        let all = problems(&format!(
            r#"
[[channel]]
dialect = "smoke-signals"
path = "/x"
[[channel]]
dialect = "json"
path = "ussd"
[[channel]]
dialect = "json"
path = "/healthz"
[[channel]]
dialect = "json"
path = "/a"
public_url = "ftp://x"
[[channel]]
dialect = "hubtel"
path = "/a"
[[channel]]
dialect = "jasmin"
path = "/j"
[[channel]]
dialect = "kannel"
path = "/k"
sender = "nobody"
{TENANT}"#
        ));
        for needle in [
            "t.toml:channel: error: unknown dialect `smoke-signals` (expected one of: ",
            "t.toml:channel: error: path `ussd` must start with /",
            "t.toml:channel: error: path `/healthz` is reserved",
            "t.toml:channel: error: public_url `ftp://x` must be an http(s) URL",
            "t.toml:channel: error: `public_url` and `auth_token_env` apply to the twilio dialect, not json",
            "t.toml:channel: error: path `/a` is mounted twice",
            "t.toml:channel: error: /j: the jasmin dialect replies through a sender: add `sender = \"<name>\"`",
            "t.toml:channel: error: /k: sender `nobody` is not a [[sender]]",
        ] {
            assert!(
                all.iter().any(|p| p.starts_with(needle)),
                "{needle} in {all:#?}"
            );
        }
    }

    use super::super::tests::{parse, MINIMAL};
    use crate::config::{Config, Overrides};
    use std::path::Path;

    /// `text` as `t.toml`, listening on `listen`.
    fn problems_on(listen: &str, text: &str) -> Vec<String> {
        let o = Overrides {
            listen: Some(listen.into()),
            ..Overrides::default()
        };
        match Config::parse("t.toml", text, Path::new("."), &o) {
            Ok(_) => Vec::new(),
            Err(p) => p.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn an_open_channel_on_a_public_listener_is_an_error_naming_it() {
        let open = format!("[[channel]]\ndialect = \"hubtel\"\npath = \"/ussd/hubtel\"\n{MINIMAL}");
        assert_eq!(problems_on("127.0.0.1:8080", &open), Vec::<String>::new());
        assert_eq!(problems_on("[::1]:8080", &open), Vec::<String>::new());
        let all = problems_on("0.0.0.0:8080", &open);
        assert_eq!(all.len(), 2, "{all:#?}");
        for path in ["/ussd/hubtel", "/ussd/json"] {
            let needle = format!("t.toml:channel: error: {path}: no authentication on the non-loopback listener 0.0.0.0:8080");
            assert!(
                all.iter().any(|p| p.starts_with(&needle)),
                "{needle} in {all:#?}"
            );
        }
        // Said explicitly, or authenticated: accepted.
        let said = format!(
            "[[channel]]\ndialect = \"hubtel\"\npath = \"/ussd/hubtel\"\nunauthenticated = true\n[[channel]]\ndialect = \"twilio\"\npath = \"/sms/twilio\"\n[[channel]]\ndialect = \"json\"\npath = \"/ussd/json\"\nallow_ips = [\"10.0.0.0/8\"]\n{TENANT}"
        );
        assert_eq!(problems_on("0.0.0.0:8080", &said), Vec::<String>::new());
    }

    #[test]
    fn every_authentication_problem_is_reported() {
        let all = problems(&format!(
            r#"
trusted_proxies = ["10.0.0.0/40"]
[[channel]]
dialect = "hubtel"
path = "/a"
hmac_key = "k"
allow_ips = ["10.0.0.1", "nonsense"]
[[channel]]
dialect = "json"
path = "/b"
basic_user = "u"
[[channel]]
dialect = "json"
path = "/c"
secret = "${{TAMTAM_TEST_SURELY_UNSET_VARIABLE}}"
[[channel]]
dialect = "json"
path = "/d"
secret = "s"
unauthenticated = true
{TENANT}"#
        ));
        for needle in [
            "t.toml:trusted_proxies: error: `10.0.0.0/40`: the prefix length must be 0 to 32",
            "t.toml:channel: error: /a: `hmac_key` applies to tamtam's JSON dialects (json, sms_json), not hubtel",
            "t.toml:channel: error: /a: `allow_ips`: `nonsense` is not an address or a CIDR block",
            "t.toml:channel: error: /b: HTTP Basic needs both `basic_user` and `basic_password`",
            "t.toml:channel: error: /c: `secret`: environment variable `TAMTAM_TEST_SURELY_UNSET_VARIABLE` is not set",
            "t.toml:channel: error: /d: `unauthenticated = true` with secret: choose one",
        ] {
            assert!(all.iter().any(|p| p.starts_with(needle)), "{needle} in {all:#?}");
        }
    }

    #[test]
    fn channel_secrets_are_read_from_the_environment_and_dlr_urls_carry_the_dlr_secret() {
        let c = parse(&format!(
            "dlr_secret = \"0123456789abcdef\"\n[[channel]]\ndialect = \"json\"\npath = \"/j\"\nhmac_key = \"${{PATH}}\"\nsecret = \"plain\"\n[[sender]]\nname = \"k\"\nkind = \"kannel\"\nurl = \"http://x\"\ndlr_url = \"http://gw/dlr/kannel\"\n{TENANT}"
        ))
        .unwrap();
        let auth = &c.channels[0].auth;
        assert_eq!(auth.mechanisms(), ["secret", "hmac"]);
        assert!(auth
            .hmac
            .as_ref()
            .unwrap()
            .key
            .matches(std::env::var("PATH").unwrap().as_bytes()));
        assert_eq!(auth.hmac.as_ref().unwrap().window_secs, 300);
        assert_eq!(
            c.senders[0].dlr_url.as_deref(),
            Some("http://gw/dlr/kannel?secret=0123456789abcdef")
        );
        assert_eq!(c.admin_listen, "127.0.0.1:8081");

        let all = problems(&format!(
            "dlr_secret = \"short%\"\n[[sender]]\nname = \"k\"\nkind = \"kannel\"\nurl = \"http://x\"\ndlr_url = \"http://gw/dlr/kannel\"\n{MINIMAL}"
        ));
        assert!(
            all.iter()
                .any(|p| p.starts_with("t.toml:dlr_secret: error: must be at least 16 characters")),
            "{all:#?}"
        );
        let all = problems(&format!(
            "admin_listen = \"127.0.0.1:8080\"\n[[sender]]\nname = \"k\"\nkind = \"kannel\"\nurl = \"http://x\"\ndlr_url = \"http://gw/dlr/kannel\"\n{MINIMAL}"
        ));
        for needle in [
            "t.toml:sender k: error: `dlr_url` needs a top-level `dlr_secret`",
            "t.toml:admin_listen: error: `127.0.0.1:8080` is the public listener",
        ] {
            assert!(
                all.iter().any(|p| p.starts_with(needle)),
                "{needle} in {all:#?}"
            );
        }
    }

    #[test]
    fn each_ussd_channel_has_its_own_budget_within_its_aggregators_limit() {
        let c = parse(&format!(
            "hop_timeout_ms = 3000\n[[channel]]\ndialect = \"hubtel\"\npath = \"/h\"\nhop_timeout_ms = 2000\n[[channel]]\ndialect = \"africas_talking\"\npath = \"/at\"\nhop_timeout_ms = 15000\n{MINIMAL}"
        ))
        .unwrap();
        let budget = |path: &str| {
            c.channels
                .iter()
                .find(|m| m.path == path)
                .map(|m| m.hop_timeout.as_millis())
        };
        assert_eq!(budget("/h"), Some(2000));
        assert_eq!(budget("/at"), Some(15000), "Africa's Talking waits 15 s");
        assert_eq!(budget("/ussd/json"), Some(3000), "unset: the global budget");
        assert_eq!(c.hop_timeout.as_millis(), 3000);

        let all = problems(&format!(
            "[[channel]]\ndialect = \"hubtel\"\npath = \"/h\"\nhop_timeout_ms = 5001\n[[channel]]\ndialect = \"africas_talking\"\npath = \"/at\"\nhop_timeout_ms = 16000\n[[channel]]\ndialect = \"kannel\"\npath = \"/k\"\nhop_timeout_ms = 1000\n[[channel]]\ndialect = \"json\"\npath = \"/j\"\nhop_timeout_ms = 0\n{TENANT}"
        ));
        for needle in [
            "t.toml:channel: error: /h: `hop_timeout_ms` (5001) is more than hubtel waits for an answer (5000 ms)",
            "t.toml:channel: error: /at: `hop_timeout_ms` (16000) is more than africas_talking waits for an answer (15000 ms)",
            "t.toml:channel: error: /k: `hop_timeout_ms` applies to USSD channels, not kannel",
            "t.toml:channel: error: /j: `hop_timeout_ms` must be at least 1",
        ] {
            assert!(
                all.iter().any(|p| p.starts_with(needle)),
                "{needle} in {all:#?}"
            );
        }
    }

    #[test]
    fn a_data_source_is_checked_against_the_largest_budget_of_the_channels() {
        let with = |channel_budget: &str| {
            problems(&format!(
                "hop_timeout_ms = 2000\n[[channel]]\ndialect = \"africas_talking\"\npath = \"/at\"\n{channel_budget}\n[[tenant]]\nid = \"t\"\nmenu = \"t.toml\"\nussd_codes = [\"*1#\"]\n[[tenant.source]]\nname = \"conso\"\nkind = \"http\"\nurl = \"http://billing.example/{{key}}\"\ntimeout_ms = 3000\n"
            ))
        };
        let all = with("");
        assert!(
            all.iter().any(|p| p.contains(
                "data source `conso`: `timeout_ms` (3000) is more than the gateway gives a lookup"
            )),
            "half of the global 2000: {all:#?}"
        );
        assert_eq!(
            with("hop_timeout_ms = 8000"),
            Vec::<String>::new(),
            "half of the Africa's Talking channel's 8000"
        );
    }

    #[test]
    fn a_configuration_without_a_channel_is_refused() {
        let all = problems(TENANT);
        assert!(
            all.contains(
                &"t.toml:channel: error: no [[channel]]: mount at least one dialect".to_string()
            ),
            "{all:#?}"
        );
    }
}
