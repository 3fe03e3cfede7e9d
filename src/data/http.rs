//! The `http` data source: a JSON API, such as an operator's billing system.
//!
//! A lookup is one `GET` of the URL template with the key percent-encoded in it, with the
//! configured headers. Within `timeout_ms` in all:
//! - a `not_found` status (404 by default) is [`LookupOutcome::Missing`];
//! - a 2xx with a JSON body is [`LookupOutcome::Found`], its fields picked by JSON Pointer;
//! - a connect error, an attempt with no answer in its share of the time, or a 5xx is tried
//!   again, `retries` times at most, each attempt getting an equal share of what is left of
//!   the budget; any other status or a body that is not JSON fails at once.
//!
//! A **circuit breaker** spares a sick API and the subscribers waiting on it:
//! `breaker_failures` failed lookups in a row open it; while open, lookups fail at once
//! without a request; after `breaker_open_ms` one trial lookup goes through (half-open):
//! a success closes it, a failure opens it again. Opening and closing are logged once each.
//!
//! A short **cache** (`cache_ms`, off by default) keeps found and missing answers per key,
//! `cache_entries` at most, oldest first out; failures are never cached.
//!
//! The breaker and the cache are in `breaker.rs` and `cache.rs`, tested on tokio's paused
//! clock. This file holds the source, its configuration ([`HttpSourceConfig`]), the one copy
//! of its defaults, and its checks.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use super::breaker::{Breaker, BreakerState};
use super::cache::Cache;
use super::config::{RawSource, SourceContext};
use super::{
    check_json_pointer, expand_env, field_names, json_fields, FieldMap, KeyTemplate, Secret,
};
use crate::menu::LookupOutcome;

/// Default `timeout_ms` of an `http` source.
pub const HTTP_SOURCE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Default `retries`.
pub const DEFAULT_RETRIES: u32 = 1;
/// The most `retries` allowed: more would only split the time budget into useless slivers.
pub const MAX_RETRIES: u32 = 5;
/// Default `not_found`.
pub const DEFAULT_NOT_FOUND: &[u16] = &[404];
/// Default `breaker_failures`.
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// Default `breaker_open_ms`.
pub const DEFAULT_BREAKER_OPEN: Duration = Duration::from_secs(30);
/// Default `cache_ms`: no cache.
pub const DEFAULT_CACHE_TTL: Duration = Duration::ZERO;
/// Default `cache_entries`.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;

/// The options an `http` source takes.
pub(super) const OPTIONS: &[&str] = &[
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
    /// A source with the defaults (the `DEFAULT_*` constants above, and
    /// [`HTTP_SOURCE_TIMEOUT`]): every top-level member as a field, no header.
    pub fn new(name: &str, url: &str) -> Result<HttpSourceConfig, String> {
        Ok(HttpSourceConfig {
            name: name.to_string(),
            url: KeyTemplate::parse(url)?,
            headers: Vec::new(),
            timeout: HTTP_SOURCE_TIMEOUT,
            retries: DEFAULT_RETRIES,
            fields: None,
            not_found: DEFAULT_NOT_FOUND.to_vec(),
            breaker_failures: DEFAULT_BREAKER_FAILURES,
            breaker_open: DEFAULT_BREAKER_OPEN,
            cache_ttl: DEFAULT_CACHE_TTL,
            cache_entries: DEFAULT_CACHE_ENTRIES,
        })
    }
}

/// Checks a `kind = "http"` source (options of other kinds are checked by the caller).
/// Header values have `${NAME}` read through `cx.env`; messages never show a value.
pub(super) fn check(
    s: &RawSource,
    cx: &SourceContext,
    problems: &mut Vec<String>,
) -> Option<HttpSourceConfig> {
    let timeout = s.timeout(HTTP_SOURCE_TIMEOUT, cx, problems);
    let fields = s.fields(problems, check_json_pointer);
    let url = match s.url.as_deref() {
        None => {
            problems.push(
                "an http source needs `url`, such as \"https://billing.example/v1/usage/{key}\""
                    .into(),
            );
            None
        }
        Some(u) => check_url(u).map_err(|e| problems.push(e)).ok(),
    };
    let mut headers = Vec::new();
    for (name, value) in s.headers.iter().flatten() {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(format!("`headers`: `{name}` is not a header name"));
        }
        match expand_env(value, cx.env) {
            Ok(v) => {
                // The value may be a secret: the message never shows it.
                if HeaderValue::from_str(&v).is_err() {
                    problems.push(format!(
                        "`headers.{name}`: the value holds characters a header cannot carry"
                    ));
                }
                headers.push((name.clone(), Secret::new(v)));
            }
            Err(es) => problems.extend(es.into_iter().map(|e| format!("`headers.{name}`: {e}"))),
        }
    }
    let retries = s.retries.unwrap_or(DEFAULT_RETRIES);
    if retries > MAX_RETRIES {
        problems.push(format!("`retries` must be between 0 and {MAX_RETRIES}"));
    }
    let not_found = s
        .not_found
        .clone()
        .unwrap_or_else(|| DEFAULT_NOT_FOUND.to_vec());
    for status in &not_found {
        if !(100..=599).contains(status) || (200..=299).contains(status) {
            problems.push(format!(
                "`not_found`: {status} is not an HTTP status meaning \"no record\" (100 to 599, not 2xx)"
            ));
        }
    }
    let breaker_failures = s.breaker_failures.unwrap_or(DEFAULT_BREAKER_FAILURES);
    let breaker_open = s
        .breaker_open_ms
        .map_or(DEFAULT_BREAKER_OPEN, Duration::from_millis);
    if breaker_failures > 0 && breaker_open.is_zero() {
        problems.push("`breaker_open_ms` must be at least 1 (set `breaker_failures = 0` to turn the breaker off)".into());
    }
    let cache_entries = s.cache_entries.unwrap_or(DEFAULT_CACHE_ENTRIES);
    if cache_entries == 0 {
        problems.push(
            "`cache_entries` must be at least 1 (set `cache_ms = 0` to turn the cache off)".into(),
        );
    }
    Some(HttpSourceConfig {
        name: s.name.clone(),
        url: url?,
        headers,
        timeout,
        retries,
        fields,
        not_found,
        breaker_failures,
        breaker_open,
        cache_ttl: s.cache_ms.map_or(DEFAULT_CACHE_TTL, Duration::from_millis),
        cache_entries,
    })
}

/// Checks `url`: a key template that gives an http:// or https:// URL.
fn check_url(u: &str) -> Result<KeyTemplate, String> {
    let t = KeyTemplate::parse(u).map_err(|e| format!("`url`: {e}"))?;
    let parsed = reqwest::Url::parse(&t.render_url("0"))
        .map_err(|e| format!("`url`: `{u}` is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`url`: `{u}` is not an http:// or https:// URL"));
    }
    Ok(t)
}

/// The largest response body read; a larger one fails the lookup.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// A JSON API as a data source.
#[derive(Debug)]
pub struct HttpSource {
    tenant: String,
    name: String,
    url: KeyTemplate,
    /// Values marked sensitive: their `Debug` shows no secret.
    headers: HeaderMap,
    timeout: Duration,
    retries: u32,
    fields: Option<FieldMap>,
    not_found: Vec<u16>,
    client: reqwest::Client,
    breaker: Breaker,
    cache: Option<Mutex<Cache>>,
}

/// How one attempt went.
enum Attempt {
    Found(Vec<(String, String)>),
    Missing,
    /// Worth another attempt: connect error, timeout, 5xx.
    Retry(String),
    /// Not worth another attempt: another status, a body that is not JSON.
    Fail(String),
}

impl HttpSource {
    /// Prepares the client; nothing is connected yet.
    pub fn new(tenant: &str, config: &HttpSourceConfig) -> Result<HttpSource, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a header name"))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| format!("the value of header `{name}` is not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tamtam/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let cache = (!config.cache_ttl.is_zero())
            .then(|| Mutex::new(Cache::new(config.cache_ttl, config.cache_entries)));
        Ok(HttpSource {
            tenant: tenant.to_string(),
            name: config.name.clone(),
            url: config.url.clone(),
            headers,
            timeout: config.timeout,
            retries: config.retries,
            fields: config.fields.clone(),
            not_found: config.not_found.clone(),
            client,
            breaker: Breaker::new(config.breaker_failures, config.breaker_open),
            cache,
        })
    }

    /// The menu fields records carry, when a mapping names them.
    pub fn fields(&self) -> Vec<String> {
        field_names(self.fields.as_ref())
    }

    /// Where the circuit breaker stands now.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Looks the key up: cache, breaker, then the API.
    pub async fn lookup(&self, key: &str) -> LookupOutcome {
        if let Some(hit) = self.cache_get(key) {
            return hit;
        }
        let Some(mut ticket) = self.breaker.admit(&self.tenant, &self.name) else {
            return self.failed(key, "circuit breaker open: no request sent");
        };
        let url = self.url.render_url(key);
        let deadline = Instant::now() + self.timeout;
        let attempts = self.retries + 1;
        let mut cause = String::new();
        let mut made = 0;
        for n in 0..attempts {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            made += 1;
            let share = (deadline - now) / (attempts - n);
            let outcome = match tokio::time::timeout(share, self.attempt(&url)).await {
                Ok(a) => a,
                Err(_) => Attempt::Retry(format!("no answer within {} ms", share.as_millis())),
            };
            match outcome {
                Attempt::Found(fields) => {
                    ticket.success();
                    let found = LookupOutcome::Found(fields);
                    self.cache_put(key, &found);
                    return found;
                }
                Attempt::Missing => {
                    ticket.success();
                    self.cache_put(key, &LookupOutcome::Missing);
                    return LookupOutcome::Missing;
                }
                Attempt::Retry(c) => cause = c,
                Attempt::Fail(c) => {
                    cause = c;
                    break;
                }
            }
        }
        ticket.failure();
        if made > 1 {
            cause = format!("{cause} (after {made} attempts)");
        }
        self.failed(key, &cause)
    }

    async fn attempt(&self, url: &str) -> Attempt {
        let response = match self
            .client
            .get(url)
            .headers(self.headers.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let retry = e.is_connect() || e.is_timeout();
                let cause = error_chain(e);
                return if retry {
                    Attempt::Retry(cause)
                } else {
                    Attempt::Fail(cause)
                };
            }
        };
        let status = response.status();
        if self.not_found.contains(&status.as_u16()) {
            return Attempt::Missing;
        }
        if status.is_server_error() {
            return Attempt::Retry(format!("status {status}"));
        }
        if !status.is_success() {
            return Attempt::Fail(format!("status {status}"));
        }
        let body = match read_body(response).await {
            Ok(b) => b,
            Err(cause) => return Attempt::Fail(cause),
        };
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(doc) => Attempt::Found(json_fields(&doc, self.fields.as_ref())),
            Err(e) => Attempt::Fail(format!("the response is not JSON: {e}")),
        }
    }

    fn failed(&self, key: &str, cause: &str) -> LookupOutcome {
        super::lookup_failed(&self.tenant, &self.name, "http", key, cause)
    }

    fn cache_get(&self, key: &str) -> Option<LookupOutcome> {
        let cache = self.cache.as_ref()?;
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key, Instant::now())
    }

    fn cache_put(&self, key: &str, outcome: &LookupOutcome) {
        if let Some(cache) = &self.cache {
            let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.put(key, outcome.clone(), Instant::now());
        }
    }
}

/// An error and its causes on one line, without the URL (it holds the subscriber's number).
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Reads a body of at most [`MAX_BODY_BYTES`].
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(format!(
            "the response is larger than {MAX_BODY_BYTES} bytes"
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(error_chain)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!(
                "the response is larger than {MAX_BODY_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::super::config::{check_toml, no_env};
    use super::super::SourceConfig;
    use super::*;

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
        let Ok(SourceConfig::Http(h)) = check_toml(text, None, &env) else {
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
                d.breaker_open,
                d.cache_ttl,
                d.cache_entries
            ),
            (
                h.timeout,
                h.retries,
                h.not_found.clone(),
                h.breaker_failures,
                h.breaker_open,
                h.cache_ttl,
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
breaker_open_ms = 0
cache_entries = 0
path = "x.csv"
key = "conso:{key}"
colour = "blue"
"#;
        let env = |n: &str| (n == "OTHER_TOKEN").then(|| "s3cret".to_string());
        let err = check_toml(text, None, &env).unwrap_err();
        for needle in [
            "is not an http:// or https:// URL",
            "environment variable `BILLING_TOKEN` is not set",
            "`bad header` is not a header name",
            "`fields.minutes`: `usage/voice` is not a JSON Pointer",
            "`bad name` is not a field name",
            "`timeout_ms` (2500) is more than the gateway gives a lookup",
            "`retries` must be between 0 and 5",
            "`not_found`: 200",
            "`breaker_open_ms` must be at least 1",
            "`cache_entries` must be at least 1",
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
            let err = check_toml(&text, None, &no_env).unwrap_err();
            assert!(
                err.iter().any(|e| e.contains(needle)),
                "{needle} in {err:#?}"
            );
        }
    }
}
