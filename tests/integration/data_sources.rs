//! Network data sources against real servers: the `redis` source on the suite's
//! `redis-server`, the `http` source on a small JSON API started here on 127.0.0.1:0 (it
//! counts its requests, and "hangs" by waiting on a semaphore the test never releases),
//! and a whole gateway whose opt-nc consumption comes from that API: per-channel time
//! budgets (a small one gives up where a larger one gets the answer) and late answers by
//! SMS (`late = "sms"`: the END at once, then one SMS, also across ten concurrent copies of
//! the hop; none when the lookup fails). The API "answers late" by waiting for a permit the
//! test gives, never for a time.
//!
//! No sleep synchronises anything: a slow answer is a handler that never answers, and the
//! breaker's open period is skipped by moving tokio's clock (`skip`), never waited for.
//! Time budgets are checked on tokio's paused clock, exactly. Tests on the wall clock
//! (real sockets, where the paused clock would jump past I/O that is about to arrive)
//! assert what happened, never how long it took: a lookup that ignored its budget would
//! never return, and [`bounded`] turns that into a failure.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tamtam::adapters::Dialect;
use tamtam::config::{HttpSourceConfig, RedisSourceConfig, SourceConfig};
use tamtam::data::{BreakerState, HttpSource, RedisSource, Secret};
use tamtam::menu::{Channel, LookupOutcome};
use tamtam::session::{MemoryStore, Store};
use tokio::sync::Semaphore;

use crate::support::outbox_fake::TIMEOUT;
use crate::support::{redis_url, shipped_config, shipped_tenants, unique_prefix, Phone, Server};

/// Awaits `step` on the wall clock, failing the test if it never ends: what a lookup that
/// ignored its budget would do against a server that never answers. The bound is the
/// suite's own `TIMEOUT`, a limit on hanging, not a timing to check.
async fn bounded<T>(what: &str, step: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, step)
        .await
        .unwrap_or_else(|_| panic!("{what} never returned"))
}

/// Moves tokio's clock `by` at once (the test runs on one thread: the clock is this
/// runtime's). Real I/O needs the clock running, so it is paused only for the jump.
async fn skip(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

// ---------------------------------------------------------------------------------------
// A JSON API that counts its requests.

/// What the API answers to one request.
#[derive(Debug, Clone)]
enum Answer {
    Json(Value),
    Status(u16),
    /// Never answers (waits on a semaphore nobody releases).
    Hang,
    /// Once the test lets it (a permit of the semaphore), answers this document, or a 500
    /// for `None`.
    Released(Option<Value>),
}

struct Api {
    /// Requests received, answered or not.
    hits: AtomicUsize,
    /// Answers for the next requests, in order; then `default`.
    script: Mutex<VecDeque<Answer>>,
    default: Mutex<Answer>,
    /// Each request's path and query, and its `Authorization` header.
    seen: Mutex<Vec<(String, Option<String>)>>,
    /// Zero permits: a hanging handler waits here until the test ends.
    gate: Semaphore,
}

struct MockApi {
    api: Arc<Api>,
    base: String,
    server: tokio::task::JoinHandle<()>,
}

impl MockApi {
    async fn start(default: Answer) -> MockApi {
        let api = Arc::new(Api {
            hits: AtomicUsize::new(0),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            seen: Mutex::new(Vec::new()),
            gate: Semaphore::new(0),
        });
        let app = axum::Router::new().fallback(answer).with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        MockApi { api, base, server }
    }

    fn hits(&self) -> usize {
        self.api.hits.load(Ordering::SeqCst)
    }

    fn then(&self, answers: &[Answer]) {
        self.api
            .script
            .lock()
            .unwrap()
            .extend(answers.iter().cloned());
    }

    fn always(&self, answer: Answer) {
        *self.api.default.lock().unwrap() = answer;
    }

    fn seen(&self) -> Vec<(String, Option<String>)> {
        self.api.seen.lock().unwrap().clone()
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        // Lets hanging handlers go, and stops the server.
        self.api.gate.close();
        self.server.abort();
    }
}

async fn answer(State(api): State<Arc<Api>>, request: Request) -> Response {
    api.hits.fetch_add(1, Ordering::SeqCst);
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let auth = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    api.seen.lock().unwrap().push((target, auth));
    let next = api.script.lock().unwrap().pop_front();
    let next = next.unwrap_or_else(|| api.default.lock().unwrap().clone());
    match next {
        Answer::Json(v) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response(),
        Answer::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
        Answer::Hang => {
            // Returns only when the test is over (the semaphore is closed).
            let _ = api.gate.acquire().await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        Answer::Released(v) => {
            if let Ok(permit) = api.gate.acquire().await {
                permit.forget();
            }
            match v {
                Some(v) => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    v.to_string(),
                )
                    .into_response(),
                None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
    }
}

/// A usage document as a billing API might send it.
fn usage(minutes: u64) -> Value {
    json!({
        "usage": { "voice": { "minutes": minutes }, "sms": 12, "data": { "mb": 4096.5 } },
        "balance": "2750",
        "active": true,
    })
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// An http source on `api` with short timings for tests.
fn http_config(api: &MockApi) -> HttpSourceConfig {
    let mut c =
        HttpSourceConfig::new("conso", &format!("{}/v1/usage/{{msisdn}}", api.base)).unwrap();
    c.fields = Some(pairs(&[
        ("minutes", "/usage/voice/minutes"),
        ("sms", "/usage/sms"),
        ("data_mb", "/usage/data/mb"),
        ("credit", "/balance"),
        ("active", "/active"),
        ("plan", "/plan/name"),
    ]));
    c.timeout = Duration::from_millis(600);
    c
}

fn http_source(config: &HttpSourceConfig) -> HttpSource {
    HttpSource::new("test", config).unwrap()
}

/// A port nothing listens on: bound, then let go.
fn refused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------
// redis

async fn redis_hset(key: &str, fields: &[(&str, &str)]) {
    let mut conn = redis::Client::open(redis_url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key);
    for (f, v) in fields {
        cmd.arg(f).arg(v);
    }
    cmd.query_async::<()>(&mut conn).await.unwrap();
    redis::cmd("PEXPIRE")
        .arg(key)
        .arg(60_000)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn redis_source_finds_a_hash_and_maps_its_fields() {
    let prefix = unique_prefix("conso");
    redis_hset(
        &format!("{prefix}:+687700001"),
        &[("voice_min", "48"), ("sms_count", "60"), ("extra", "x")],
    )
    .await;
    let mut config =
        RedisSourceConfig::new("conso", &redis_url(), &format!("{prefix}:{{key}}")).unwrap();
    config.fields = Some(pairs(&[
        ("minutes", "voice_min"),
        ("sms", "sms_count"),
        ("credit", "balance"),
    ]));
    let source = RedisSource::new("test", &config).unwrap();
    assert_eq!(
        source.lookup("+687700001").await,
        LookupOutcome::Found(pairs(&[("minutes", "48"), ("sms", "60")])),
        "mapped fields only; a hash field that is not there is absent"
    );

    // Without a mapping, every hash field as is; {msisdn} is the key too.
    let mut config =
        RedisSourceConfig::new("conso", &redis_url(), &format!("{prefix}:{{msisdn}}")).unwrap();
    config.fields = None;
    let source = RedisSource::new("test", &config).unwrap();
    let LookupOutcome::Found(mut fields) = source.lookup("+687700001").await else {
        panic!("found")
    };
    fields.sort();
    assert_eq!(
        fields,
        pairs(&[("extra", "x"), ("sms_count", "60"), ("voice_min", "48")])
    );
}

#[tokio::test]
async fn redis_source_without_the_hash_is_missing() {
    let prefix = unique_prefix("conso");
    let config =
        RedisSourceConfig::new("conso", &redis_url(), &format!("{prefix}:{{key}}")).unwrap();
    let source = RedisSource::new("test", &config).unwrap();
    assert_eq!(source.lookup("+687700999").await, LookupOutcome::Missing);
}

/// A refused Redis is a failed lookup, within the source's budget (paused clock: the
/// refusal itself is immediate).
#[tokio::test(start_paused = true)]
async fn redis_source_that_refuses_connections_fails_within_its_timeout() {
    let config = RedisSourceConfig::new(
        "conso",
        &format!("redis://127.0.0.1:{}", refused_port()),
        "conso:{key}",
    )
    .unwrap();
    let source = RedisSource::new("test", &config).unwrap();
    for _ in 0..2 {
        let started = tokio::time::Instant::now();
        assert_eq!(source.lookup("+687700001").await, LookupOutcome::Failed);
        let took = started.elapsed();
        assert!(
            took <= config.timeout,
            "a refused Redis fails within its timeout: {took:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// http

#[tokio::test]
async fn http_source_maps_json_fields_by_pointer() {
    let api = MockApi::start(Answer::Json(usage(48))).await;
    let mut config = http_config(&api);
    config.headers = vec![(
        "Authorization".to_string(),
        Secret::new("Bearer test-token"),
    )];
    let source = http_source(&config);
    assert_eq!(
        source.lookup("+687700001").await,
        LookupOutcome::Found(pairs(&[
            ("minutes", "48"),
            ("sms", "12"),
            ("data_mb", "4096.5"),
            ("credit", "2750"),
            ("active", "true"),
        ])),
        "numbers and booleans as text; a pointer that leads nowhere leaves the field absent"
    );
    assert_eq!(
        api.seen(),
        vec![(
            "/v1/usage/%2B687700001".to_string(),
            Some("Bearer test-token".to_string())
        )],
        "the key is percent-encoded and the headers are sent"
    );
}

#[tokio::test]
async fn http_source_not_found_status_is_missing_and_not_retried() {
    let api = MockApi::start(Answer::Status(404)).await;
    let source = http_source(&http_config(&api));
    assert_eq!(source.lookup("+687700999").await, LookupOutcome::Missing);
    assert_eq!(api.hits(), 1);

    // Another 4xx fails, and is not retried either.
    api.always(Answer::Status(400));
    assert_eq!(source.lookup("+687700999").await, LookupOutcome::Failed);
    assert_eq!(api.hits(), 2);

    // The statuses that mean "missing" are configurable.
    let mut config = http_config(&api);
    config.not_found = vec![404, 410];
    api.always(Answer::Status(410));
    assert_eq!(
        http_source(&config).lookup("+687700999").await,
        LookupOutcome::Missing
    );
}

#[tokio::test]
async fn http_source_retries_a_server_error() {
    let api = MockApi::start(Answer::Json(usage(7))).await;
    api.then(&[Answer::Status(500)]);
    let source = http_source(&http_config(&api));
    let LookupOutcome::Found(fields) = source.lookup("+687700001").await else {
        panic!("the retry succeeds")
    };
    assert!(fields.contains(&("minutes".to_string(), "7".to_string())));
    assert_eq!(api.hits(), 2, "one 500, one 200");

    // Without retries the 500 is a failure.
    let mut config = http_config(&api);
    config.retries = 0;
    api.then(&[Answer::Status(503)]);
    assert_eq!(
        http_source(&config).lookup("+687700001").await,
        LookupOutcome::Failed
    );
    assert_eq!(api.hits(), 3);
}

/// On real sockets: a hanging API really gives up (its budget is checked exactly on the
/// paused clock below), and the attempt that timed out was tried again.
#[tokio::test]
async fn http_source_that_does_not_answer_gives_up_and_retries_once() {
    let api = MockApi::start(Answer::Hang).await;
    let config = http_config(&api);
    let source = http_source(&config);
    let outcome = bounded("a lookup on a hanging API", source.lookup("+687700001")).await;
    assert_eq!(outcome, LookupOutcome::Failed);
    assert_eq!(api.hits(), 2, "the attempt that timed out was tried again");
}

#[tokio::test(start_paused = true)]
async fn http_source_that_does_not_answer_gives_up_at_its_budget_exactly() {
    let api = MockApi::start(Answer::Hang).await;
    for retries in [0, 1, 3] {
        let mut config = http_config(&api);
        config.retries = retries;
        let source = http_source(&config);
        let started = tokio::time::Instant::now();
        assert_eq!(source.lookup("+687700001").await, LookupOutcome::Failed);
        let took = started.elapsed();
        assert!(
            took <= config.timeout,
            "{retries} retries: {took:?} within {:?}",
            config.timeout
        );
    }
}

#[tokio::test(start_paused = true)]
async fn http_source_that_refuses_connections_fails_within_its_timeout() {
    let mut config = HttpSourceConfig::new(
        "conso",
        &format!("http://127.0.0.1:{}/{{key}}", refused_port()),
    )
    .unwrap();
    config.timeout = Duration::from_millis(600);
    let source = http_source(&config);
    let started = tokio::time::Instant::now();
    assert_eq!(source.lookup("+687700001").await, LookupOutcome::Failed);
    assert!(started.elapsed() <= config.timeout);
}

#[tokio::test]
async fn http_source_speaks_tls_to_https_urls() {
    // The API speaks plain HTTP: the TLS handshake fails, so no request reaches it.
    let api = MockApi::start(Answer::Json(usage(1))).await;
    let mut config = http_config(&api);
    config.url = HttpSourceConfig::new(
        "conso",
        &format!("{}/{{key}}", api.base.replace("http://", "https://")),
    )
    .unwrap()
    .url;
    assert_eq!(
        http_source(&config).lookup("+687700001").await,
        LookupOutcome::Failed
    );
    assert_eq!(api.hits(), 0);
}

#[tokio::test]
async fn http_source_breaker_opens_spares_the_api_and_closes_after_a_good_trial() {
    let api = MockApi::start(Answer::Status(500)).await;
    let mut config = http_config(&api);
    config.retries = 0;
    config.breaker_failures = 3;
    config.breaker_open = Duration::from_secs(30);
    let source = http_source(&config);

    for n in 1..=3 {
        assert_eq!(source.breaker_state(), BreakerState::Closed);
        assert_eq!(source.lookup("+687700001").await, LookupOutcome::Failed);
        assert_eq!(api.hits(), n);
    }
    assert_eq!(source.breaker_state(), BreakerState::Open);
    for _ in 0..5 {
        assert_eq!(source.lookup("+687700001").await, LookupOutcome::Failed);
    }
    assert_eq!(api.hits(), 3, "no request while the breaker is open");

    // Half-open: one trial; it fails, the breaker opens again.
    wait_half_open(&source, config.breaker_open).await;
    assert_eq!(source.lookup("+687700001").await, LookupOutcome::Failed);
    assert_eq!(api.hits(), 4);
    assert_eq!(source.breaker_state(), BreakerState::Open);
    assert_eq!(source.lookup("+687700001").await, LookupOutcome::Failed);
    assert_eq!(api.hits(), 4);

    // The API is back: the next trial succeeds and closes it.
    api.always(Answer::Json(usage(5)));
    wait_half_open(&source, config.breaker_open).await;
    assert!(matches!(
        source.lookup("+687700001").await,
        LookupOutcome::Found(_)
    ));
    assert_eq!(api.hits(), 5);
    assert_eq!(source.breaker_state(), BreakerState::Closed);
    assert!(matches!(
        source.lookup("+687700002").await,
        LookupOutcome::Found(_)
    ));
    assert_eq!(api.hits(), 6);
}

/// Skips the breaker's open period on tokio's clock (the exact edge is pinned by the
/// breaker's unit tests, `src/data/breaker.rs`).
async fn wait_half_open(source: &HttpSource, open: Duration) {
    assert_eq!(source.breaker_state(), BreakerState::Open);
    skip(open).await;
    assert_eq!(source.breaker_state(), BreakerState::HalfOpen);
}

#[tokio::test]
async fn http_source_cache_serves_found_and_missing_without_a_request() {
    let api = MockApi::start(Answer::Json(usage(9))).await;
    let mut config = http_config(&api);
    config.retries = 0;
    config.cache_ttl = Duration::from_secs(60);
    let source = http_source(&config);

    let first = source.lookup("+687700001").await;
    assert!(matches!(first, LookupOutcome::Found(_)));
    assert_eq!(source.lookup("+687700001").await, first);
    assert_eq!(api.hits(), 1, "the second lookup came from the cache");

    api.always(Answer::Status(404));
    assert_eq!(source.lookup("+687700002").await, LookupOutcome::Missing);
    assert_eq!(source.lookup("+687700002").await, LookupOutcome::Missing);
    assert_eq!(api.hits(), 2, "missing answers are cached too");

    // Failures are not cached.
    api.always(Answer::Status(500));
    assert_eq!(source.lookup("+687700003").await, LookupOutcome::Failed);
    assert_eq!(source.lookup("+687700003").await, LookupOutcome::Failed);
    assert_eq!(api.hits(), 4);
    // The cached key still answers while the API fails.
    assert_eq!(source.lookup("+687700001").await, first);
    assert_eq!(api.hits(), 4);
}

// ---------------------------------------------------------------------------------------
// A whole gateway: opt-nc's consumption from the API.

/// The shipped gateway (in-memory sessions) with opt-nc's `conso` source replaced by an http
/// source on `api`.
async fn gateway_with_http_conso(api: &MockApi) -> Server {
    let config = config_with_http_conso(api, Duration::from_millis(1000));
    Server::start_with(config, Store::Memory(MemoryStore::new())).await
}

/// The shipped configuration with opt-nc's `conso` source replaced by an http source on
/// `api`, whose own time limit is `timeout`.
fn config_with_http_conso(api: &MockApi, timeout: Duration) -> tamtam::config::Config {
    let mut config = shipped_config(None);
    let tenant = config
        .tenants
        .iter_mut()
        .find(|t| t.id == "opt-nc")
        .expect("the opt-nc tenant");
    let conso = tenant
        .sources
        .iter_mut()
        .find(|s| s.name() == "conso")
        .expect("opt-nc's conso source");
    let mut http =
        HttpSourceConfig::new("conso", &format!("{}/v1/usage/{{key}}", api.base)).unwrap();
    http.fields = Some(pairs(&[
        ("minutes", "/usage/voice/minutes"),
        ("sms", "/usage/sms"),
        ("data_mb", "/usage/data/mb"),
        ("credit", "/balance"),
    ]));
    http.timeout = timeout;
    *conso = SourceConfig::Http(http);
    config
}

#[tokio::test]
async fn ussd_consumption_comes_from_the_http_source() {
    let api = MockApi::start(Answer::Json(usage(321))).await;
    let server = gateway_with_http_conso(&api).await;
    for dialect in [Dialect::AfricasTalking, Dialect::Hubtel, Dialect::Json] {
        let mut phone = Phone::new(&server, dialect, "*100#", "+687700001");
        let home = phone.dial().await;
        assert!(home.text.contains("1. Ma consommation"), "{home:?}");
        phone.send("1").await;
        let conso = phone.send("1").await;
        assert_eq!(conso.status, 200);
        for line in [
            "Appels : 321 min",
            "SMS : 12",
            "Internet : 4096.5 Mo",
            "Crédit : 2750 F",
        ] {
            assert!(conso.text.contains(line), "{line} in {conso:?}");
        }
        assert!(conso.end, "{conso:?}");
    }
    assert!(api
        .seen()
        .iter()
        .all(|(path, _)| path == "/v1/usage/%2B687700001"));
}

#[tokio::test]
async fn ussd_consumption_with_a_hanging_api_ends_politely() {
    let api = MockApi::start(Answer::Hang).await;
    let server = gateway_with_http_conso(&api).await;
    let tenants = shipped_tenants(&server.config);
    let opt = tenants.iter().find(|t| t.config.id == "opt-nc").unwrap();
    let unavailable = opt.menu.texts(Channel::Ussd).unavailable.clone();
    for dialect in [Dialect::AfricasTalking, Dialect::Json] {
        let mut phone = Phone::new(&server, dialect, "*100#", "+687700001");
        phone.dial().await;
        phone.send("1").await;
        let screen = bounded("a hop waiting on a hanging API", phone.send("1")).await;
        assert_eq!(screen.status, 200, "{screen:?}");
        assert!(screen.end, "a polite END: {screen:?}");
        assert_eq!(screen.text, unavailable);
    }
}

/// Part 3 of issue 11: each channel's budget. The Hubtel channel gives a hop 400 ms (a
/// lookup 200), the JSON channel 4 s (a lookup 2 s); the API answers only when the test
/// lets it, which it does once the Hubtel hop has answered. The Hubtel subscriber gets the
/// tenant's `unavailable` text (the JSON hop is still waiting then, or the API would have
/// answered Hubtel too), and the JSON subscriber, whose hop is still within its budget,
/// gets the consumption.
#[tokio::test]
async fn a_channel_with_a_small_budget_gives_up_where_a_larger_one_still_gets_the_answer() {
    let api = MockApi::start(Answer::Released(Some(usage(321)))).await;
    let mut config = config_with_http_conso(&api, Duration::from_millis(2000));
    for channel in &mut config.channels {
        match channel.dialect {
            Dialect::Hubtel => channel.hop_timeout = Duration::from_millis(400),
            Dialect::Json => channel.hop_timeout = Duration::from_millis(4000),
            _ => {}
        }
    }
    let server = Server::start_with(config, Store::Memory(MemoryStore::new())).await;
    let tenants = shipped_tenants(&server.config);
    let opt = tenants.iter().find(|t| t.config.id == "opt-nc").unwrap();
    let unavailable = opt.menu.texts(Channel::Ussd).unavailable.clone();

    let mut patient = Phone::new(&server, Dialect::Json, "*100#", "+687700001");
    patient.dial().await;
    patient.send("1").await;
    let waiting = tokio::spawn(async move { patient.send("1").await });

    let mut hurried = Phone::new(&server, Dialect::Hubtel, "*100#", "+687700002");
    hurried.dial().await;
    hurried.send("1").await;
    let cut = bounded("a hop on the small budget", hurried.send("1")).await;
    assert!(cut.end, "{cut:?}");
    assert_eq!(cut.text, unavailable, "the small budget gave up: {cut:?}");

    // Now the API answers every request waiting on it.
    api.api.gate.add_permits(8);
    let conso = bounded("a hop on the large budget", waiting)
        .await
        .expect("the patient hop");
    assert_eq!(conso.status, 200);
    assert!(conso.text.contains("Appels : 321 min"), "{conso:?}");
    assert!(conso.end, "{conso:?}");
}

// ---------------------------------------------------------------------------------------
// Late answers by SMS (issue 11, part 4).

/// The shipped gateway whose opt-nc consumption comes from `api` (its own limit 2 s) on a
/// copy of opt-nc's menu where the consumption screen says `late = "sms"`, opt-nc sending
/// through the `kannel` sender; the JSON channel gives a hop 400 ms (a lookup 200 ms).
async fn gateway_with_late_conso(api: &MockApi) -> Server {
    let mut config = config_with_http_conso(api, Duration::from_millis(2000));
    for tenant in &mut config.tenants {
        for source in &mut tenant.sources {
            if let SourceConfig::Http(http) = source {
                // One request a lookup, so each answer the API gives is one lookup's.
                http.retries = 0;
            }
        }
    }
    let menu = std::fs::read_to_string(crate::support::root().join("menus/opt-nc.toml")).unwrap();
    let late = menu.replacen(
        "missing = \"conso_inconnu\"",
        "missing = \"conso_inconnu\"\nlate = \"sms\"",
        1,
    );
    assert_ne!(late, menu, "the consumption screen of opt-nc");
    let path = std::env::temp_dir().join(format!("{}.toml", unique_prefix("opt-nc-late")));
    std::fs::write(&path, late).unwrap();
    let tenant = config
        .tenants
        .iter_mut()
        .find(|t| t.id == "opt-nc")
        .unwrap();
    tenant.menu = path;
    tenant.sms_sender = Some("kannel".into());
    for channel in &mut config.channels {
        if channel.dialect == Dialect::Json {
            channel.hop_timeout = Duration::from_millis(400);
        }
    }
    Server::start_with(config, Store::Memory(MemoryStore::new())).await
}

/// Takes every SMS queued, waiting (bounded) for the first.
async fn queued(server: &Server) -> Vec<tamtam::outbox::OutMessage> {
    let claimed = server
        .outbox
        .queue
        .claim("late-test", 16, TIMEOUT, TIMEOUT)
        .await
        .expect("the queue");
    claimed.into_iter().map(|d| d.message).collect()
}

#[tokio::test]
async fn a_late_lookup_ends_the_session_at_once_and_sends_the_answer_once_by_sms() {
    let api = MockApi::start(Answer::Released(Some(usage(321)))).await;
    let server = gateway_with_late_conso(&api).await;
    let mut phone = Phone::new(&server, Dialect::Json, "*100#", "+687700001");
    phone.dial().await;
    phone.send("1").await;
    // Ten copies of the hop that runs the lookup, all at once.
    let body = phone.next_body("1");
    let url = server.url(Dialect::Json);
    let screens = bounded(
        "ten copies of a late hop",
        phone.post_copies(&body, &vec![url; 10]),
    )
    .await;
    for screen in &screens {
        assert_eq!(screen.status, 200, "{screen:?}");
        assert!(screen.end, "{screen:?}");
        assert_eq!(
            screen.text, "Vous recevrez la réponse par SMS.",
            "{screen:?}"
        );
    }
    assert_eq!(server.outbox_ready().await, 0, "nothing before the answer");

    // The API answers: one SMS, with the consumption, to the caller.
    api.api.gate.add_permits(32);
    let sent = queued(&server).await;
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].to, "+687700001");
    assert_eq!(sent[0].from, "1088");
    assert_eq!(sent[0].sender, "kannel");
    assert!(sent[0].text.contains("Appels : 321 min"), "{sent:#?}");
    assert!(!sent[0].text.contains("Retour"), "no choices: {sent:#?}");
    assert_eq!(server.outbox_ready().await, 0, "once: {sent:#?}");

    // A retry of the hop gets the same END and changes nothing.
    let again = phone.retry("1").await;
    assert_eq!(again.text, "Vous recevrez la réponse par SMS.");
}

#[tokio::test]
async fn a_late_lookup_that_fails_sends_nothing() {
    let api = MockApi::start(Answer::Released(None)).await;
    let server = gateway_with_late_conso(&api).await;
    let mut failing = Phone::new(&server, Dialect::Json, "*100#", "+687700001");
    failing.dial().await;
    failing.send("1").await;
    let late = bounded("a late hop", failing.send("1")).await;
    assert_eq!(late.text, "Vous recevrez la réponse par SMS.", "{late:?}");
    // The API fails it: its answer was picked when the request arrived.
    assert_eq!(api.hits(), 1);
    api.api.gate.add_permits(1);
    // A second subscriber's late lookup, answered: the only SMS in the queue is theirs.
    api.always(Answer::Released(Some(usage(7))));
    let mut answered = Phone::new(&server, Dialect::Json, "*100#", "+687700002");
    answered.dial().await;
    answered.send("1").await;
    bounded("a late hop", answered.send("1")).await;
    api.api.gate.add_permits(8);
    let sent = queued(&server).await;
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].to, "+687700002", "{sent:#?}");
    assert!(sent[0].text.contains("Appels : 7 min"), "{sent:#?}");
}
