//! The `redis` data source: one hash per subscriber (`HSET conso:+687700001 voice_min 48 …`).
//!
//! One `HGETALL` per lookup on a `ConnectionManager` (a multiplexed connection that
//! reconnects by itself), made on the first lookup so that the gateway starts while Redis
//! is down. An empty answer (no such hash) is [`LookupOutcome::Missing`]; an error, or no
//! answer within `timeout_ms`, is [`LookupOutcome::Failed`], logged once.
//!
//! Its configuration ([`RedisSourceConfig`]), defaults and checks are here too.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::config::{RawSource, SourceContext};
use super::{field_names, FieldMap, KeyTemplate, Secret};
use crate::menu::LookupOutcome;

/// Default `timeout_ms` of a `redis` source.
pub const REDIS_SOURCE_TIMEOUT: Duration = Duration::from_millis(500);

/// The options a `redis` source takes.
pub(super) const OPTIONS: &[&str] = &["url", "key", "fields", "timeout_ms"];

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
    /// A source with the defaults: every hash field, [`REDIS_SOURCE_TIMEOUT`].
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

/// Checks a `kind = "redis"` source (options of other kinds are checked by the caller).
pub(super) fn check(
    s: &RawSource,
    cx: &SourceContext,
    problems: &mut Vec<String>,
) -> Option<RedisSourceConfig> {
    let timeout = s.timeout(REDIS_SOURCE_TIMEOUT, cx, problems);
    let fields = s.fields(problems, |from| {
        if from.is_empty() {
            Err("the hash field name is empty".into())
        } else {
            Ok(())
        }
    });
    let url = s.url.as_deref().or(cx.redis_url);
    match url {
        None => problems.push(
            "a redis source needs `url`, or the gateway's `redis_url` (or TAMTAM_REDIS_URL)".into(),
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
    Some(RedisSourceConfig {
        name: s.name.clone(),
        url: Secret::new(url?),
        key: key?,
        fields,
        timeout,
    })
}

/// Subscriber records in Redis hashes.
pub struct RedisSource {
    tenant: String,
    name: String,
    key: KeyTemplate,
    fields: Option<FieldMap>,
    timeout: Duration,
    client: redis::Client,
    /// Made on first use (it needs the runtime), then shared by every lookup.
    conn: Mutex<Option<ConnectionManager>>,
}

impl std::fmt::Debug for RedisSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds the URL, which may hold a password: not shown.
        f.debug_struct("RedisSource")
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("key", &self.key)
            .field("fields", &self.fields)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisSource {
    /// Prepares the source; nothing is connected yet.
    pub fn new(tenant: &str, config: &RedisSourceConfig) -> Result<RedisSource, String> {
        let client = redis::Client::open(config.url.expose())
            .map_err(|e| format!("invalid Redis URL: {e}"))?;
        Ok(RedisSource {
            tenant: tenant.to_string(),
            name: config.name.clone(),
            key: config.key.clone(),
            fields: config.fields.clone(),
            timeout: config.timeout,
            client,
            conn: Mutex::new(None),
        })
    }

    /// The menu fields records carry, when a mapping names them.
    pub fn fields(&self) -> Vec<String> {
        field_names(self.fields.as_ref())
    }

    fn connection(&self) -> Result<ConnectionManager, String> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        // No retry inside the manager: the lookup has `timeout` in all, and the next lookup
        // tries again.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(0)
            .set_max_delay(Duration::from_millis(500));
        let c = self
            .client
            .get_connection_manager_lazy(config)
            .map_err(|e| e.to_string())?;
        *conn = Some(c.clone());
        Ok(c)
    }

    /// Reads the subscriber's hash.
    pub async fn lookup(&self, key: &str) -> LookupOutcome {
        let redis_key = self.key.render(key);
        let read = async {
            let mut conn = self.connection()?;
            redis::cmd("HGETALL")
                .arg(&redis_key)
                .query_async::<BTreeMap<Vec<u8>, Vec<u8>>>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        };
        let hash = match tokio::time::timeout(self.timeout, read).await {
            Ok(Ok(hash)) => hash,
            Ok(Err(cause)) => return self.failed(key, &cause),
            Err(_) => {
                return self.failed(
                    key,
                    &format!("no answer within {} ms", self.timeout.as_millis()),
                )
            }
        };
        if hash.is_empty() {
            return LookupOutcome::Missing;
        }
        let text = |v: &Vec<u8>| String::from_utf8_lossy(v).into_owned();
        let fields = match &self.fields {
            Some(mapping) => mapping
                .iter()
                .filter_map(|(name, field)| {
                    hash.get(field.as_bytes()).map(|v| (name.clone(), text(v)))
                })
                .collect(),
            None => hash.iter().map(|(k, v)| (text(k), text(v))).collect(),
        };
        LookupOutcome::Found(fields)
    }

    fn failed(&self, key: &str, cause: &str) -> LookupOutcome {
        super::lookup_failed(&self.tenant, &self.name, "redis", key, cause)
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::{check_toml, no_env};
    use super::super::SourceConfig;
    use super::*;

    #[test]
    fn a_redis_source_takes_the_gateway_redis_by_default() {
        let text = r#"
name = "conso"
kind = "redis"
key = "conso:{msisdn}"
fields = { minutes = "voice_min", sms = "sms_count" }
"#;
        let Ok(SourceConfig::Redis(r)) = check_toml(text, Some("redis://127.0.0.1:6379"), &no_env)
        else {
            panic!("a redis source")
        };
        assert_eq!(r.url.expose(), "redis://127.0.0.1:6379");
        assert_eq!(r.key.render("+1"), "conso:+1");
        assert_eq!(r.timeout, Duration::from_millis(500));
        assert_eq!(r.timeout, REDIS_SOURCE_TIMEOUT);
        assert_eq!(
            r.fields,
            Some(vec![
                ("minutes".to_string(), "voice_min".to_string()),
                ("sms".to_string(), "sms_count".to_string())
            ])
        );
        let err = check_toml(text, None, &no_env).unwrap_err();
        assert!(
            err[0].contains("needs `url`, or the gateway's `redis_url`"),
            "{err:?}"
        );
        let own = format!("{text}url = \"redis://10.0.0.1:6380/2\"\n");
        let Ok(SourceConfig::Redis(r)) = check_toml(&own, None, &no_env) else {
            panic!("a redis source")
        };
        assert_eq!(r.url.expose(), "redis://10.0.0.1:6380/2");
        let d = RedisSourceConfig::new("conso", "redis://x", "k:{key}").unwrap();
        assert_eq!((d.timeout, d.fields), (r.timeout, None));
    }

    #[test]
    fn every_problem_of_a_redis_source_is_reported() {
        let err = check_toml(
            "name = \"c\"\nkind = \"redis\"\nurl = \"http://x\"\nheaders = {}\nfields = { a = \"\" }\ntimeout_ms = 0\n",
            None,
            &no_env,
        )
        .unwrap_err();
        for needle in [
            "`url` is not a Redis URL",
            "needs `key`",
            "`headers` is not an option of a redis source",
            "`fields.a`: the hash field name is empty",
            "`timeout_ms` must be at least 1",
        ] {
            assert!(
                err.iter().any(|e| e.contains(needle)),
                "{needle} in {err:#?}"
            );
        }
    }
}
