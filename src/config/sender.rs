//! The `[[sender]]` sections: the checks of [`SenderConfig`], whose type and defaults
//! belong to the outbox (`outbox/senders.rs`). Names are unique, URLs are http(s), and
//! `${NAME}` in secrets and headers is read from the environment here, once.

use std::collections::HashSet;

use super::Problems;
use crate::data::expand_env;
use crate::outbox::SenderConfig;

/// Checks every `[[sender]]` and resolves its secrets. Gives the senders and their names
/// (which `[[channel]]` and `[[tenant]]` sections refer to).
pub(super) fn check(
    raw: Vec<SenderConfig>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> (Vec<SenderConfig>, HashSet<String>) {
    let mut senders = Vec::new();
    let mut names = HashSet::new();
    for mut s in raw {
        let place = format!("sender {}", s.name);
        if !names.insert(s.name.clone()) {
            problems.error(&place, "sender name used twice");
        }
        if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
            problems.error(&place, format!("url `{}` must be an http(s) URL", s.url));
        }
        for value in [&mut s.username, &mut s.password, &mut s.api_key]
            .into_iter()
            .flatten()
            .chain(s.headers.values_mut())
        {
            match expand_env(value, env) {
                Ok(v) => *value = v,
                Err(why) => why.into_iter().for_each(|w| problems.error(&place, w)),
            }
        }
        if !(s.rate_per_sec >= 0.0 && s.rate_per_sec.is_finite()) {
            problems.error(&place, "`rate_per_sec` must be 0 or more");
        }
        senders.push(s);
    }
    (senders, names)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{parse, problems, MINIMAL};

    #[test]
    fn every_sender_problem_is_reported_and_secrets_are_read_from_the_environment() {
        let all = problems(&format!(
            r#"{MINIMAL}
[[sender]]
name = "k"
kind = "kannel"
url = "ftp://x"
password = "${{TAMTAM_TEST_SURELY_UNSET_VARIABLE}}"
rate_per_sec = -1
[[sender]]
name = "k"
kind = "jasmin"
url = "http://x"
"#
        ));
        for needle in [
            "t.toml:sender k: error: url `ftp://x` must be an http(s) URL",
            "t.toml:sender k: error: environment variable `TAMTAM_TEST_SURELY_UNSET_VARIABLE` is not set",
            "t.toml:sender k: error: `rate_per_sec` must be 0 or more",
            "t.toml:sender k: error: sender name used twice",
        ] {
            assert!(all.contains(&needle.to_string()), "{needle} in {all:#?}");
        }

        // PATH is set wherever tests run.
        let c = parse(&format!(
            "{MINIMAL}\n[[sender]]\nname = \"k\"\nkind = \"http\"\nurl = \"http://x\"\nheaders = {{ X-Path = \"${{PATH}}\" }}\n"
        ))
        .unwrap();
        assert_eq!(
            c.senders[0].headers["X-Path"],
            std::env::var("PATH").unwrap()
        );
    }
}
