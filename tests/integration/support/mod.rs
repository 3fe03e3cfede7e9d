//! Test support: a gateway on 127.0.0.1:0 with the shipped configuration, and a "phone"
//! that speaks each USSD dialect over real HTTP. The gateway is built by
//! [`tamtam::app::App::build`], the wiring `serve` uses, with a test store, clock and secrets.
//!
//! The other support modules: [`checks`] (fragment checks of conversation scripts),
//! [`scripts`] (the cross-dialect runner), [`golden`] (whole-text golden files), [`kannel`]
//! (a real Kannel on loopback) and [`outbox_fake`] (fake SMS providers, the real binary).

pub mod checks;
pub mod golden;
pub mod kannel;
pub mod outbox_fake;
pub mod scripts;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tamtam::adapters::Dialect;
use tamtam::app::{App, Options};
use tamtam::config::{Config, Overrides};
use tamtam::gateway::{load_tenants, Gateway, Tenant};
use tamtam::message::dial_parts;
use tamtam::session::{MemoryStore, RedisStore, Store};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The Twilio auth token the test gateways use.
pub const TWILIO_TEST_TOKEN: &str = "test-twilio-token";

/// The shipped configuration's `dlr_secret` (the demo's value), which delivery reports
/// carry in their query.
pub const DLR_SECRET: &str = "demo-dlr-secret-change-me";

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Redis the test command started. Missing: the test fails, it does not skip.
pub fn redis_url() -> String {
    std::env::var("TAMTAM_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("TAMTAM_TEST_REDIS_URL is not set: run the suite with scripts/test.sh, which starts redis-server on loopback")
    })
}

/// A key prefix no other test uses.
pub fn unique_prefix(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The shipped configuration, listening on an ephemeral loopback port, without inbound
/// rate limits: scripts make many quick hops from one number and one address
/// (`limits.rs` turns them on).
pub fn shipped_config(redis: Option<String>) -> Config {
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".into()),
        redis_url: redis,
        admin_listen: Some("127.0.0.1:0".into()),
    };
    let mut config = Config::from_file(&root().join("config/tamtam.toml"), &overrides)
        .unwrap_or_else(|p| panic!("shipped config: {p:#?}"));
    config.limits = tamtam::limits::LimitSettings::off();
    config
}

/// The shipped tenants.
pub fn shipped_tenants(config: &Config) -> Vec<Tenant> {
    let (tenants, problems) = load_tenants(config);
    tenants.unwrap_or_else(|| panic!("shipped menus: {problems:#?}"))
}

/// The options of a test gateway: no outbox worker (tests look at what was queued), and
/// the Twilio token [`TWILIO_TEST_TOKEN`] as the only secret.
pub fn test_options() -> Options {
    Options {
        store: None,
        clock: None,
        worker: false,
        secrets: Arc::new(|name| {
            (name == tamtam::server::TWILIO_TOKEN_ENV).then(|| TWILIO_TEST_TOKEN.to_string())
        }),
    }
}

/// The shipped configuration and a session store: memory, or Redis under `prefix`.
fn config_and_store(redis: Option<(&str, &str)>) -> (Config, Store) {
    let mut config = shipped_config(redis.map(|(url, _)| url.to_string()));
    let store = match redis {
        Some((url, prefix)) => {
            config.session.key_prefix = prefix.to_string();
            Store::Redis(RedisStore::open(url, config.session.redis_timeout).unwrap())
        }
        None => Store::Memory(MemoryStore::new()),
    };
    (config, store)
}

/// When conversation scripts happen: Monday 10:00 in Nouméa, when every service with
/// opening hours is open.
pub fn script_time() -> i64 {
    noumea(0, 10, 0)
}

/// A running gateway.
pub struct Server {
    /// The public listener: webhooks, delivery reports, health.
    pub base: String,
    /// The admin listener: `/messages/{id}`, health.
    pub admin: String,
    pub config: Config,
    /// The gateway's outbound queue.
    pub outbox: tamtam::outbox::Outbox,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Starts the shipped configuration with `store` (memory, or Redis under `prefix`).
    pub async fn start(redis: Option<(&str, &str)>) -> Server {
        let (config, store) = config_and_store(redis);
        Server::start_with(config, store).await
    }

    /// Like [`Server::start`], with the clock stopped at `unix_seconds`, so that what
    /// opening hours show never depends on when the test runs.
    pub async fn start_at(redis: Option<(&str, &str)>, unix_seconds: i64) -> Server {
        let (config, store) = config_and_store(redis);
        let options = Options {
            store: Some(store),
            clock: Some(tamtam::gateway::Clock(Arc::new(move || unix_seconds))),
            ..test_options()
        };
        Server::build(config, options).await
    }

    /// Starts `config` with `store`, wired as `serve` wires it ([`App::build`]) but
    /// without the outbox worker: tests look at what was queued.
    pub async fn start_with(config: Config, store: Store) -> Server {
        Server::build(
            config,
            Options {
                store: Some(store),
                ..test_options()
            },
        )
        .await
    }

    /// Starts the shipped configuration on the memory store, served under `limits`.
    pub async fn start_with_limits(limits: tamtam::config::HttpLimits) -> Server {
        let (mut config, store) = config_and_store(None);
        config.http = limits;
        Server::start_with(config, store).await
    }

    /// Builds the shipped tenants under `config` with `options`, and serves them.
    pub async fn build(config: Config, options: Options) -> Server {
        let tenants = shipped_tenants(&config);
        let app = App::build(&config, tenants, options).expect("the test gateway builds");
        Server::serve_app(config, app).await
    }

    /// Serves `gateway` (built by hand) on an ephemeral loopback port, with `outbox`.
    pub async fn serve_gateway(
        config: Config,
        gateway: Gateway,
        outbox: tamtam::outbox::Outbox,
    ) -> Server {
        let gateway = gateway.with_outbox(outbox);
        let app = App::from_gateway(&config, gateway, false, &*test_options().secrets);
        Server::serve_app(config, app).await
    }

    /// Serves `app` on an ephemeral loopback port until the test stops it.
    async fn serve_app(config: Config, app: App) -> Server {
        let outbox = app
            .outbox
            .clone()
            .expect("the shipped configuration has senders, so an outbound queue");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = format!("http://{}", admin_listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.serve(listener, admin_listener, async {
            let _ = rx.await;
        }));
        Server {
            base,
            admin,
            outbox,
            config,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Path of the first channel of `dialect`.
    pub fn url(&self, dialect: Dialect) -> String {
        let c = self
            .config
            .channels
            .iter()
            .find(|c| c.dialect == dialect)
            .expect("dialect mounted in the shipped config");
        format!("{}{}", self.base, c.path)
    }

    /// `/dlr/{route}` on the public listener with the delivery-report secret, ready for
    /// more query (`&id=...`).
    pub fn dlr_url(&self, route: &str) -> String {
        format!("{}/dlr/{route}?secret={DLR_SECRET}", self.base)
    }

    /// Messages waiting in this gateway's outbound queue (no worker runs in tests).
    pub async fn outbox_ready(&self) -> u64 {
        self.outbox.queue.stats().await.expect("queue stats").ready
    }

    /// Sends the shutdown signal without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops the server and waits until it has stopped.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The tenant's own service code in a dial string: `*144*3#` gives `*144#`.
pub fn base_code(config: &Config, dialled: &str) -> String {
    let parts = dial_parts(dialled).expect("a dial string");
    for n in (1..=parts.len()).rev() {
        let code = format!("*{}#", parts[..n].join("*"));
        if config.tenants.iter().any(|t| t.ussd_codes.contains(&code)) {
            return code;
        }
    }
    panic!("no tenant for {dialled}");
}

/// A screen as the phone got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screen {
    pub status: u16,
    pub text: String,
    pub end: bool,
}

/// A subscriber's phone talking to the gateway through one aggregator's dialect.
pub struct Phone {
    pub dialect: Dialect,
    url: String,
    client: reqwest::Client,
    pub session_id: String,
    pub msisdn: String,
    /// What is dialled (may be a direct dial).
    pub dialled: String,
    /// The tenant's service code.
    pub code: String,
    /// Africa's Talking: every input so far.
    path: Vec<String>,
    pub seq: u64,
}

impl Phone {
    pub fn new(server: &Server, dialect: Dialect, dialled: &str, msisdn: &str) -> Phone {
        static N: AtomicU64 = AtomicU64::new(0);
        Phone {
            dialect,
            url: server.url(dialect),
            client: reqwest::Client::new(),
            session_id: format!(
                "sess-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
            msisdn: msisdn.to_string(),
            dialled: dialled.to_string(),
            code: base_code(&server.config, dialled),
            path: Vec::new(),
            seq: 0,
        }
    }

    /// Points this phone at another gateway (a replica), keeping its session.
    pub fn via(&mut self, server: &Server) {
        self.url = server.url(self.dialect);
    }

    /// Dials.
    pub async fn dial(&mut self) -> Screen {
        self.seq = 1;
        self.path.clear();
        let body = match self.dialect {
            Dialect::AfricasTalking => {
                // A direct dial reaches Africa's Talking as the service code plus pre-filled text.
                let extra: Vec<String> = dial_parts(&self.dialled).unwrap()
                    [dial_parts(&self.code).unwrap().len()..]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                self.path = extra;
                self.at_body()
            }
            Dialect::Hubtel => serde_json::json!({
                "Type": "Initiation",
                "SessionId": self.session_id,
                "Mobile": self.msisdn.trim_start_matches('+'),
                "Message": self.dialled,
                "ServiceCode": self.code.trim_matches(|c| c == '*' || c == '#'),
                "Operator": "mtn",
                "Sequence": "1",
                "ClientState": "",
            })
            .to_string(),
            Dialect::Json => serde_json::json!({
                "session_id": self.session_id,
                "msisdn": self.msisdn,
                "service_code": self.dialled,
            })
            .to_string(),
            other => panic!("{} is not a USSD dialect", other.name()),
        };
        self.post(body).await
    }

    /// Sends one answer.
    pub async fn send(&mut self, input: &str) -> Screen {
        self.seq += 1;
        self.path.push(input.to_string());
        let body = self.answer_body(input);
        self.post(body).await
    }

    /// Moves to the next hop without sending it, and gives its body, for tests that send
    /// copies of one hop at once ([`Phone::post_copies`]).
    pub fn next_body(&mut self, input: &str) -> String {
        self.seq += 1;
        self.path.push(input.to_string());
        self.answer_body(input)
    }

    /// Posts `body` once to each of `urls` (one per copy, a replica's or this phone's), all
    /// at once; the screens in the order of `urls`.
    pub async fn post_copies(&self, body: &str, urls: &[String]) -> Vec<Screen> {
        let requests: Vec<(String, String)> =
            urls.iter().map(|u| (u.clone(), body.to_string())).collect();
        self.post_all(requests).await
    }

    /// Posts each `(url, body)` at once; the screens in the order given.
    pub async fn post_all(&self, requests: Vec<(String, String)>) -> Vec<Screen> {
        let mut posts = tokio::task::JoinSet::new();
        for (i, (url, body)) in requests.into_iter().enumerate() {
            let (client, dialect) = (self.client.clone(), self.dialect);
            let content_type = match dialect {
                Dialect::AfricasTalking => "application/x-www-form-urlencoded",
                _ => "application/json",
            };
            posts.spawn(async move {
                let resp = client
                    .post(&url)
                    .header("content-type", content_type)
                    .body(body)
                    .send()
                    .await
                    .expect("the gateway answers");
                let status = resp.status().as_u16();
                (
                    i,
                    parse_screen(dialect, status, &resp.text().await.unwrap()),
                )
            });
        }
        let mut screens: Vec<(usize, Screen)> = posts.join_all().await;
        screens.sort_by_key(|(i, _)| *i);
        screens.into_iter().map(|(_, s)| s).collect()
    }

    /// Sends the last hop again, exactly as before (an aggregator's retry).
    pub async fn retry(&mut self, input: &str) -> Screen {
        let body = self.answer_body(input);
        self.post(body).await
    }

    fn at_body(&self) -> String {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        format!(
            "sessionId={}&serviceCode={}&phoneNumber={}&networkCode=99999&text={}",
            enc(&self.session_id),
            enc(&self.code),
            enc(&self.msisdn),
            enc(&self.path.join("*"))
        )
    }

    fn answer_body(&self, input: &str) -> String {
        match self.dialect {
            Dialect::AfricasTalking => self.at_body(),
            // Alternate the two documented forms of Sequence: string and number.
            Dialect::Hubtel => {
                let seq = if self.seq.is_multiple_of(2) {
                    Value::from(self.seq)
                } else {
                    Value::from(self.seq.to_string())
                };
                serde_json::json!({
                    "Type": "Response",
                    "SessionId": self.session_id,
                    "Mobile": self.msisdn.trim_start_matches('+'),
                    "Message": input,
                    "ServiceCode": self.code.trim_matches(|c| c == '*' || c == '#'),
                    "Operator": "mtn",
                    "Sequence": seq,
                })
                .to_string()
            }
            Dialect::Json => serde_json::json!({
                "session_id": self.session_id,
                "msisdn": self.msisdn,
                "service_code": self.code,
                "input": input,
                "seq": self.seq,
            })
            .to_string(),
            other => panic!("{} is not a USSD dialect", other.name()),
        }
    }

    /// Hangs up.
    pub async fn release(&mut self) -> Screen {
        let body = match self.dialect {
            Dialect::AfricasTalking => panic!("Africa's Talking does not send a release"),
            Dialect::Hubtel => serde_json::json!({
                "Type": "Release", "SessionId": self.session_id,
                "Mobile": self.msisdn.trim_start_matches('+'), "Message": "",
                "ServiceCode": self.code.trim_matches(|c| c == '*' || c == '#'),
            })
            .to_string(),
            Dialect::Json => serde_json::json!({
                "session_id": self.session_id, "msisdn": self.msisdn,
                "service_code": self.code, "type": "end",
            })
            .to_string(),
            other => panic!("{} is not a USSD dialect", other.name()),
        };
        self.post(body).await
    }

    async fn post(&self, body: String) -> Screen {
        let content_type = match self.dialect {
            Dialect::AfricasTalking => "application/x-www-form-urlencoded",
            _ => "application/json",
        };
        let resp = self
            .client
            .post(&self.url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the gateway answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        parse_screen(self.dialect, status, &text)
    }
}

/// Reads a reply in `dialect`'s format, failing the test when it is not well formed.
pub fn parse_screen(dialect: Dialect, status: u16, body: &str) -> Screen {
    match dialect {
        Dialect::AfricasTalking => {
            let (end, text) = if let Some(t) = body.strip_prefix("CON ") {
                (false, t)
            } else if let Some(t) = body.strip_prefix("END ") {
                (true, t)
            } else {
                panic!("Africa's Talking reply must start with CON or END: {body:?}")
            };
            Screen {
                status,
                text: text.to_string(),
                end,
            }
        }
        Dialect::Hubtel => {
            let v: Value = serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("Hubtel reply is not JSON ({e}): {body}"));
            let end = match v["Type"].as_str() {
                Some("Response") => false,
                Some("Release") => true,
                other => panic!("Hubtel reply Type must be Response or Release, got {other:?}"),
            };
            Screen {
                status,
                text: v["Message"].as_str().expect("Message").to_string(),
                end,
            }
        }
        Dialect::Json => {
            let v: Value = serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("JSON reply is not JSON ({e}): {body}"));
            let end = match v["action"].as_str() {
                Some("continue") => false,
                Some("end") => true,
                other => panic!("JSON reply action must be continue or end, got {other:?}"),
            };
            Screen {
                status,
                text: v["text"].as_str().expect("text").to_string(),
                end,
            }
        }
        other => panic!("{} is not a USSD dialect", other.name()),
    }
}

/// Every file with `ext` in a folder of the repository, sorted.
pub fn files(folder: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(folder))
        .unwrap_or_else(|e| panic!("{folder}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// A file's name, for messages.
pub fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Unix seconds of a Nouméa local time (UTC+11, no daylight saving) on the week of
/// Monday 2026-11-23: `weekday` 0 is that Monday.
pub fn noumea(weekday: i64, hour: i64, minute: i64) -> i64 {
    // 2026-11-23T00:00:00+11:00 = 2026-11-22T13:00:00Z = 1 795 352 400.
    1_795_352_400 + weekday * 86_400 + hour * 3_600 + minute * 60
}

impl Server {
    /// The shipped configuration in memory, with the clock stopped at `unix_seconds`.
    pub async fn start_at_time(unix_seconds: i64) -> Server {
        Server::start_at(None, unix_seconds).await
    }
}

/// Mounts `channel` in place of any channel on its path (the shipped configuration
/// already mounts the demo paths).
pub fn mount(config: &mut Config, channel: tamtam::config::Mount) {
    config.channels.retain(|c| c.path != channel.path);
    config.channels.push(channel);
}

/// Adds `sender` in place of the shipped sender of its name or kind, so delivery reports
/// that name no sender resolve to this one.
pub fn replace_sender(config: &mut Config, sender: tamtam::outbox::SenderConfig) {
    config
        .senders
        .retain(|s| s.name != sender.name && s.kind != sender.kind);
    config.senders.push(sender);
}

/// Log lines written while a test runs, read back with [`Captured::text`]: the writer of a
/// `tracing_subscriber::fmt()` subscriber (`.with_writer(move || captured.clone())`).
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
