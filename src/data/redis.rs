//! The `redis` data source: one hash per subscriber (`HSET conso:+687700001 voice_min 48 …`).
//!
//! One `HGETALL` per lookup on a `ConnectionManager` (a multiplexed connection that
//! reconnects by itself), made on the first lookup so that the gateway starts while Redis
//! is down. An empty answer (no such hash) is [`LookupOutcome::Missing`]; an error, or no
//! answer within `timeout_ms`, is [`LookupOutcome::Failed`], logged once.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{FieldMap, KeyTemplate};
use crate::config::RedisSourceConfig;
use crate::menu::LookupOutcome;

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
        self.fields
            .iter()
            .flatten()
            .map(|(name, _)| name.clone())
            .collect()
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
