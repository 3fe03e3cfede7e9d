//! The `[[channel]]` sections: webhook mounts, each a dialect on a path. The type is
//! [`Mount`]: "channel" also names the USSD/SMS split elsewhere (`menu::Channel`).

use std::collections::HashSet;

use serde::Deserialize;

use super::Problems;
use crate::adapters::Dialect;

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
}

/// Checks every `[[channel]]`: a known dialect, a unique path starting with `/`, the
/// Twilio-only options on Twilio only; at least one channel.
pub(super) fn check(raw: Vec<RawChannel>, problems: &mut Problems) -> Vec<Mount> {
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
        mounts.push(Mount {
            dialect,
            path: c.path,
            public_url: c.public_url,
            auth_token_env: c.auth_token_env,
            sender: c.sender,
        });
    }
    if mounts.is_empty() {
        problems.error("channel", "no [[channel]]: mount at least one dialect");
    }
    mounts
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
