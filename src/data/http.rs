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

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use super::{json_fields, FieldMap, KeyTemplate};
use crate::config::HttpSourceConfig;
use crate::menu::LookupOutcome;

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
            .then(|| Mutex::new(Cache::new(config.cache_ttl, config.cache_entries.max(1))));
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
        self.fields
            .iter()
            .flatten()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Where the circuit breaker stands now.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Waits until an open breaker lets a trial lookup through (at once when it is not
    /// open). For tests and tools: the wait is the breaker's own deadline, not a guess.
    pub async fn breaker_half_open(&self) {
        while let Some(until) = self.breaker.open_until() {
            tokio::time::sleep_until(until).await;
        }
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

/// Where a circuit breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests go through.
    Closed,
    /// Lookups fail at once, without a request.
    Open,
    /// The open period is over: the next lookup is a trial (or one is under way).
    HalfOpen,
}

#[derive(Debug)]
struct Breaker {
    /// Failed lookups in a row that open it; 0 turns the breaker off.
    threshold: u32,
    open_for: Duration,
    state: Mutex<Inner>,
}

#[derive(Debug, Clone, Copy)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A trial lookup is under way; others fail at once.
    Trial,
}

impl Breaker {
    fn new(threshold: u32, open_for: Duration) -> Breaker {
        Breaker {
            threshold,
            open_for,
            state: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() < until => BreakerState::Open,
            Inner::Open { .. } | Inner::Trial => BreakerState::HalfOpen,
        }
    }

    fn open_until(&self) -> Option<Instant> {
        match *self.lock() {
            Inner::Open { until } if Instant::now() < until => Some(until),
            _ => None,
        }
    }

    /// Lets a lookup through, or not (open, or a trial under way).
    fn admit<'a>(&'a self, tenant: &'a str, source: &'a str) -> Option<Ticket<'a>> {
        let mut state = self.lock();
        let trial = match *state {
            Inner::Closed { .. } => false,
            Inner::Open { until } if Instant::now() >= until => {
                *state = Inner::Trial;
                true
            }
            Inner::Open { .. } | Inner::Trial => return None,
        };
        Some(Ticket {
            breaker: self,
            tenant,
            source,
            trial,
            done: false,
        })
    }

    fn record(&self, ok: bool, tenant: &str, source: &str) {
        if self.threshold == 0 {
            return;
        }
        let mut state = self.lock();
        match (*state, ok) {
            (Inner::Closed { .. }, true) => *state = Inner::Closed { failures: 0 },
            (Inner::Open { .. } | Inner::Trial, true) => {
                *state = Inner::Closed { failures: 0 };
                tracing::info!(
                    tenant = %tenant,
                    source = %source,
                    kind = "http",
                    "circuit breaker closed: the source answers again"
                );
            }
            (Inner::Closed { failures }, false) => {
                let failures = failures + 1;
                if failures >= self.threshold {
                    *state = Inner::Open {
                        until: Instant::now() + self.open_for,
                    };
                    tracing::warn!(
                        tenant = %tenant,
                        source = %source,
                        kind = "http",
                        failures,
                        open_ms = u64::try_from(self.open_for.as_millis()).unwrap_or(u64::MAX),
                        "circuit breaker open: lookups fail at once until a trial succeeds"
                    );
                } else {
                    *state = Inner::Closed { failures };
                }
            }
            (Inner::Trial, false) => {
                *state = Inner::Open {
                    until: Instant::now() + self.open_for,
                };
                tracing::debug!(
                    tenant = %tenant,
                    source = %source,
                    kind = "http",
                    "circuit breaker trial failed: open again"
                );
            }
            // A lookup let through before the breaker opened: it stays open as it is.
            (Inner::Open { .. }, false) => {}
        }
    }
}

/// A lookup let through by the breaker; it must say how it went. A trial dropped without a
/// word (its hop was cancelled) counts as a failure, so the breaker never stays half-open.
struct Ticket<'a> {
    breaker: &'a Breaker,
    tenant: &'a str,
    source: &'a str,
    trial: bool,
    done: bool,
}

impl Ticket<'_> {
    fn success(&mut self) {
        self.done = true;
        self.breaker.record(true, self.tenant, self.source);
    }

    fn failure(&mut self) {
        self.done = true;
        self.breaker.record(false, self.tenant, self.source);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.done && self.trial {
            self.breaker.record(false, self.tenant, self.source);
        }
    }
}

/// Found and missing answers per key, for `ttl`, `capacity` at most.
#[derive(Debug)]
struct Cache {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<String, (Instant, LookupOutcome)>,
    /// Keys in the order they were stored, with their expiry: the oldest goes first.
    order: VecDeque<(String, Instant)>,
}

impl Cache {
    fn new(ttl: Duration, capacity: usize) -> Cache {
        Cache {
            ttl,
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&mut self, key: &str, now: Instant) -> Option<LookupOutcome> {
        match self.entries.get(key) {
            Some((expires, outcome)) if *expires > now => Some(outcome.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn put(&mut self, key: &str, outcome: LookupOutcome, now: Instant) {
        // Expired entries first, then the oldest while full. An `order` entry whose expiry
        // differs from the stored one is stale (the key was stored again): just dropped.
        while let Some((k, expires)) = self.order.front() {
            let full = self.entries.len() >= self.capacity || self.order.len() >= 2 * self.capacity;
            if *expires > now && !full {
                break;
            }
            if self.entries.get(k).is_some_and(|(e, _)| e == expires) {
                self.entries.remove(k);
            }
            self.order.pop_front();
        }
        let expires = now + self.ttl;
        self.entries.insert(key.to_string(), (expires, outcome));
        self.order.push_back((key.to_string(), expires));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(v: &str) -> LookupOutcome {
        LookupOutcome::Found(vec![("x".into(), v.into())])
    }

    #[test]
    fn the_cache_expires_entries_and_stays_bounded() {
        let t0 = Instant::now();
        let mut c = Cache::new(Duration::from_secs(10), 3);
        c.put("a", found("1"), t0);
        c.put("b", LookupOutcome::Missing, t0);
        assert_eq!(c.get("a", t0), Some(found("1")));
        assert_eq!(c.get("b", t0), Some(LookupOutcome::Missing));
        assert_eq!(c.get("a", t0 + Duration::from_secs(10)), None);
        c.put("c", found("3"), t0);
        c.put("d", found("4"), t0);
        c.put("e", found("5"), t0);
        assert!(c.entries.len() <= 3, "{c:?}");
        assert_eq!(c.get("e", t0), Some(found("5")));
        // Many keys: never more than the capacity.
        for i in 0..100 {
            c.put(&i.to_string(), found("n"), t0 + Duration::from_millis(i));
            assert!(c.entries.len() <= 3 && c.order.len() <= 6, "{c:?}");
        }
        assert_eq!(
            c.get("99", t0 + Duration::from_millis(99)),
            Some(found("n"))
        );
    }

    #[test]
    fn the_breaker_opens_after_failures_in_a_row_and_closes_after_a_good_trial() {
        let b = Breaker::new(2, Duration::from_secs(3600));
        b.admit("t", "s").unwrap().failure();
        b.admit("t", "s").unwrap().success();
        b.admit("t", "s").unwrap().failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.admit("t", "s").unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.admit("t", "s").is_none());
        // End of the open period: one trial, the others wait.
        *b.lock() = Inner::Open {
            until: Instant::now(),
        };
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let mut trial = b.admit("t", "s").unwrap();
        assert!(b.admit("t", "s").is_none());
        trial.failure();
        assert_eq!(b.state(), BreakerState::Open);
        *b.lock() = Inner::Open {
            until: Instant::now(),
        };
        // A trial dropped unanswered (a cancelled hop) opens it again.
        drop(b.admit("t", "s").unwrap());
        assert_eq!(b.state(), BreakerState::Open);
        *b.lock() = Inner::Open {
            until: Instant::now(),
        };
        b.admit("t", "s").unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_breaker_with_threshold_zero_never_opens() {
        let b = Breaker::new(0, Duration::from_secs(1));
        for _ in 0..10 {
            b.admit("t", "s").unwrap().failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
