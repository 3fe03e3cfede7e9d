//! Limits in Redis, shared by every replica.
//!
//! A token bucket is one hash (`t`: tokens left, `ts`: when, in Unix milliseconds) changed
//! by one Lua script, so concurrent hops on several replicas never take the same token
//! twice; its key has its own hash tag (`{sub:+225…}`, `{src:1.2.3.4}`), so the script
//! touches one Redis Cluster slot. The caller passes the time: the arithmetic is tested
//! with explicit instants, and a replica whose clock lags never refills a bucket backwards.
//! A daily SMS counter is one `INCR` (and its `PEXPIRE` on creation) in one script, on a
//! key per tenant, subscriber and UTC day.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use super::{BucketKey, LimitError, Rate, DAY_COUNTER_TTL};

/// Takes a token: KEYS[1] the bucket; ARGV: burst, tokens a minute, now (ms), TTL (ms).
/// Returns 1 when a token was taken, 0 when the bucket is empty.
const TAKE: &str = r"
local burst = tonumber(ARGV[1])
local per_minute = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * per_minute / 60000)
  ts = now
end
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return taken
";

/// Counts one SMS: KEYS[1] the day's counter; ARGV[1] its TTL (ms). Returns the count.
const COUNT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
";

/// Buckets and counters in Redis, under the gateway's key prefix.
#[derive(Clone)]
pub struct RedisLimiter {
    conn: ConnectionManager,
    prefix: String,
    take: Script,
    count: Script,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> LimitError {
    LimitError::Unavailable(e.to_string())
}

impl RedisLimiter {
    /// Prepares a limiter on `url` with keys under `prefix`; connects on first use.
    /// `timeout` bounds each call.
    pub fn open(url: &str, prefix: &str, timeout: Duration) -> Result<RedisLimiter, LimitError> {
        let conn = crate::session::lazy_manager(url, timeout).map_err(LimitError::Unavailable)?;
        Ok(RedisLimiter {
            conn,
            prefix: prefix.to_string(),
            take: Script::new(TAKE),
            count: Script::new(COUNT),
        })
    }

    /// The key of a bucket: its own hash tag.
    pub fn bucket_key(&self, key: BucketKey<'_>) -> String {
        match key {
            BucketKey::Subscriber(msisdn) => format!("{}:limit:{{sub:{msisdn}}}", self.prefix),
            BucketKey::Source(ip) => format!("{}:limit:{{src:{ip}}}", self.prefix),
        }
    }

    /// Takes a token from `key`'s bucket at `now_ms` (Unix milliseconds); a new bucket
    /// starts full.
    pub async fn take(
        &self,
        key: BucketKey<'_>,
        rate: Rate,
        now_ms: u64,
    ) -> Result<bool, LimitError> {
        let mut conn = self.conn.clone();
        let taken: i64 = self
            .take
            .key(self.bucket_key(key))
            .arg(rate.burst.max(1))
            .arg(rate.per_minute)
            .arg(now_ms)
            .arg(rate.fill_ms() + 1000)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(taken == 1)
    }

    /// Counts one SMS to `msisdn` from `tenant` on UTC day `day`; returns the day's count.
    pub async fn count_sms(&self, tenant: &str, msisdn: &str, day: i64) -> Result<u64, LimitError> {
        let mut conn = self.conn.clone();
        let key = format!("{}:smsday:{{{tenant}:{msisdn}}}:{day}", self.prefix);
        let ttl = u64::try_from(DAY_COUNTER_TTL.as_millis()).unwrap_or(u64::MAX);
        self.count
            .key(key)
            .arg(ttl)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }
}
