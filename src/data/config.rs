//! What every data source's configuration shares: a `[[tenant.source]]` table as written
//! ([`RawSource`]), what checking one needs from the rest of the configuration
//! ([`SourceContext`]), the `fields` mapping ([`FieldMap`]), and the checks more than one
//! kind applies (options that belong to another kind, `timeout_ms`, `fields`). It imports
//! nothing from the kinds, which import it.
//!
//! Each kind owns its configuration type, its defaults and its own checks, in its file
//! (`file.rs`, `redis.rs`, `http.rs`), as outbox senders do; `mod.rs` dispatches on `kind`
//! ([`super::check_source`]). Nothing here reads the environment or the clock: the context
//! carries what the caller (`crate::config`) read.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A menu field name and where its value comes from (a hash field, a JSON Pointer).
pub type FieldMap = Vec<(String, String)>;

/// True when `name` can be a menu placeholder (`{minutes}`): letters, digits and `_`.
pub fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A `[[tenant.source]]` as written. Options of every kind are read here; which apply to
/// which kind, and unknown ones (`rest`), are checked by [`super::check_source`] so that
/// every problem is reported at once.
#[derive(Debug, Deserialize)]
pub struct RawSource {
    pub name: String,
    pub kind: String,
    pub path: Option<PathBuf>,
    pub url: Option<String>,
    pub key: Option<String>,
    pub fields: Option<BTreeMap<String, String>>,
    pub timeout_ms: Option<u64>,
    pub headers: Option<BTreeMap<String, String>>,
    pub retries: Option<u32>,
    pub not_found: Option<Vec<u16>>,
    pub breaker_failures: Option<u32>,
    pub breaker_open_ms: Option<u64>,
    pub cache_ms: Option<u64>,
    pub cache_entries: Option<usize>,
    #[serde(flatten)]
    pub rest: BTreeMap<String, toml::Value>,
}

/// What checking a data source needs from the rest of the configuration.
pub struct SourceContext<'a> {
    /// The folder relative paths resolve against (the configuration file's).
    pub base: &'a Path,
    /// The gateway's Redis (`redis_url` or `TAMTAM_REDIS_URL`), the default of `redis` sources.
    pub redis_url: Option<&'a str>,
    /// The largest hop budget (`hop_timeout_ms`, or a channel's own): a lookup gets half of
    /// its hop's budget, so a source's own `timeout_ms` must fit in half of this one.
    pub hop_timeout: Duration,
    /// Reads `${NAME}` in header values (the environment, or a test's stand-in).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl RawSource {
    /// A problem for every option set here that is not one of `allowed` (an option of
    /// another kind), then for every option no kind knows.
    pub(super) fn misplaced(&self, allowed: &[&str]) -> Vec<String> {
        let given = [
            ("path", self.path.is_some()),
            ("url", self.url.is_some()),
            ("key", self.key.is_some()),
            ("fields", self.fields.is_some()),
            ("timeout_ms", self.timeout_ms.is_some()),
            ("headers", self.headers.is_some()),
            ("retries", self.retries.is_some()),
            ("not_found", self.not_found.is_some()),
            ("breaker_failures", self.breaker_failures.is_some()),
            ("breaker_open_ms", self.breaker_open_ms.is_some()),
            ("cache_ms", self.cache_ms.is_some()),
            ("cache_entries", self.cache_entries.is_some()),
        ];
        let mut problems = Vec::new();
        for (option, set) in given {
            if set && !allowed.contains(&option) {
                problems.push(format!(
                    "`{option}` is not an option of a {} source (options: {})",
                    self.kind,
                    allowed.join(", ")
                ));
            }
        }
        for option in self.rest.keys() {
            problems.push(format!(
                "unknown option `{option}` (options of a {} source: {})",
                self.kind,
                allowed.join(", ")
            ));
        }
        problems
    }

    /// `timeout_ms`, else `default`: at least 1 ms, and within what the gateway gives a
    /// lookup (half of the largest hop budget).
    pub(super) fn timeout(
        &self,
        default: Duration,
        cx: &SourceContext,
        problems: &mut Vec<String>,
    ) -> Duration {
        let t = self.timeout_ms.map_or(default, Duration::from_millis);
        let most = cx.hop_timeout.as_millis() / 2;
        if t.is_zero() {
            problems.push("`timeout_ms` must be at least 1".into());
        } else if t.as_millis() > most {
            problems.push(format!(
                "`timeout_ms` ({}) is more than the gateway gives a lookup: half of the largest hop budget (`hop_timeout_ms`, or a channel's), {most}",
                t.as_millis()
            ));
        }
        t
    }

    /// `fields`, when set: not empty, menu field names only, and each origin checked by
    /// `check_origin` (a JSON Pointer, a hash field name), which says what is wrong.
    pub(super) fn fields(
        &self,
        problems: &mut Vec<String>,
        check_origin: impl Fn(&str) -> Result<(), String>,
    ) -> Option<FieldMap> {
        let fields = self.fields.as_ref()?;
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
            if let Err(e) = check_origin(from) {
                problems.push(format!("`fields.{name}`: {e}"));
            }
            map.push((name.clone(), from.clone()));
        }
        Some(map)
    }
}

/// `path` resolved against `base` and cleaned lexically (`config/../menus/a.toml` becomes
/// `menus/a.toml`, `./a.csv` becomes `a.csv`), so that messages show the path a reader
/// would write. Lexical, like Go's `filepath.Clean`: symbolic links are not followed, and
/// a `..` that would climb above a relative start is kept.
pub fn resolve_path(base: &Path, path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in base.join(path).components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Checks one source written as TOML, as configured in `/etc/tamtam` with the default hop
/// timeout, `redis_url` as the gateway's Redis and `env` as the environment.
#[cfg(test)]
pub(super) fn check_toml(
    toml_text: &str,
    redis_url: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<super::SourceConfig, Vec<String>> {
    let raw: RawSource = toml::from_str(toml_text).expect("a source table");
    super::check_source(
        raw,
        &SourceContext {
            base: Path::new("/etc/tamtam"),
            redis_url,
            hop_timeout: Duration::from_millis(4000),
            env,
        },
    )
}

/// An environment where nothing is set.
#[cfg(test)]
pub(super) fn no_env(_: &str) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_source_resolves_its_path_and_needs_one() {
        let Ok(super::super::SourceConfig::File { name, path }) = check_toml(
            "name = \"conso\"\nkind = \"file\"\npath = \"../data/c.csv\"\n",
            None,
            &no_env,
        ) else {
            panic!("a file source")
        };
        assert_eq!(
            (name.as_str(), path.as_path()),
            ("conso", Path::new("/etc/data/c.csv"))
        );
        let err = check_toml(
            "name = \"c\"\nkind = \"file\"\nurl = \"x\"\n",
            None,
            &no_env,
        )
        .unwrap_err();
        assert_eq!(
            err,
            vec![
                "data source `c`: `url` is not an option of a file source (options: path)",
                "data source `c`: a file source needs `path`",
            ]
        );
    }

    #[test]
    fn paths_are_resolved_against_the_base_and_cleaned() {
        for (base, path, expect) in [
            ("config", "../menus/opt.toml", "menus/opt.toml"),
            ("./config", "./data/conso.csv", "config/data/conso.csv"),
            ("/etc/tamtam", "../menus/t.toml", "/etc/menus/t.toml"),
            ("/etc/tamtam", "/srv/menus/t.toml", "/srv/menus/t.toml"),
            ("", "../menus/t.toml", "../menus/t.toml"),
            ("config", "../../menus/t.toml", "../menus/t.toml"),
            ("/", "../t.toml", "/t.toml"),
            ("config", "..", "."),
        ] {
            assert_eq!(
                resolve_path(Path::new(base), Path::new(path)),
                Path::new(expect),
                "{base} + {path}"
            );
        }
    }
}
