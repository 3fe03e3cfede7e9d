//! The composition root: what every command loads, and how the parts of a running
//! gateway are wired together.
//!
//! [`load`] reads the configuration file with its environment overrides, then the tenants
//! and their menus. `serve`, `check`, `simulate` and `outbox` all go through it, so a
//! content team's `tamtam check` judges exactly what `serve` would start.
//!
//! [`App::build`] turns a loaded configuration into a gateway ready to serve: the session
//! store (Redis or memory), the abuse limits, the outbound queue and its worker, and the router. The binary
//! and the integration tests both build through it (tests pass their own store, clock and
//! secrets in [`Options`]), so the tests exercise the real wiring. [`App::serve`] takes
//! the shutdown future from its caller, as mini-redis's `server::run` does: the binary
//! passes Ctrl-C / SIGTERM, tests pass their own.
//!
//! `reload` ([`Reloader`]) loads the tenants anew through [`load`] while the gateway
//! serves (on `SIGHUP`, [`on_sighup`], or when a loaded file changes, [`watch`]) and swaps
//! them in when nothing is wrong.

mod reload;

pub use reload::{on_sighup, watch, Reloader, WATCH_DEBOUNCE};

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::{Config, HttpLimits, Overrides};
pub use crate::diagnostic::has_errors;
use crate::diagnostic::Diagnostic;
use crate::gateway::{load_tenants, Clock, Gateway, ReloadStatus, Tenant, TenantsHandle};
use crate::limits::{Backend, LimitError, Limiter, MemoryLimiter, RedisLimiter};
use crate::outbox::{
    run_worker, MemoryQueue, Outbox, OutboxError, Queue, RedisQueue, Sender, SenderConfig,
    WorkerSettings, DEFAULT_TIMEOUT_MS,
};
use crate::server::{admin_router, router, AppState, Router};
use crate::session::{MemoryStore, RedisStore, Store, StoreError};

/// How long the worker blocks waiting for new messages before it looks at its timers.
const WORKER_WAIT: Duration = Duration::from_secs(2);

/// The most messages a worker claims at once.
const WORKER_MAX_BATCH: usize = 16;

/// What [`load`] read: the checked configuration and its tenants with their menus.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub tenants: Vec<Tenant>,
}

/// Loads the configuration at `path` with `overrides` (the binary passes
/// [`Overrides::from_env`]), then every tenant's menu. Returns every problem found, errors
/// and warnings; the configuration comes back only when none is an error.
pub fn load(path: &Path, overrides: &Overrides) -> (Option<Loaded>, Vec<Diagnostic>) {
    let config = match Config::from_file(path, overrides) {
        Ok(c) => c,
        Err(problems) => return (None, problems),
    };
    let (tenants, problems) = load_tenants(&config);
    (tenants.map(|tenants| Loaded { config, tenants }), problems)
}

/// Reads a secret by name (the Twilio auth token): the binary reads the environment.
pub type Secrets = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The choices [`App::build`] leaves to its caller. [`Options::default`] is what `serve`
/// uses: the configuration's store, the system clock, a worker, secrets from the
/// environment.
pub struct Options {
    /// The session store; `None` opens the configuration's (Redis when `redis_url` is set,
    /// else in memory).
    pub store: Option<Store>,
    /// The clock opening hours are read against; `None` is the system clock.
    pub clock: Option<Clock>,
    /// Whether [`App::serve`] runs the outbox worker. Tests turn it off to look at what
    /// was queued.
    pub worker: bool,
    /// Where channels read their secrets.
    pub secrets: Secrets,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            store: None,
            clock: None,
            worker: true,
            secrets: Arc::new(|name| std::env::var(name).ok()),
        }
    }
}

/// Why a gateway could not be built. The text is the cause's own ("category; detail").
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The session store could not be opened (a bad Redis URL).
    #[error(transparent)]
    Store(StoreError),
    /// The outbound queue could not be opened.
    #[error(transparent)]
    Outbox(OutboxError),
    /// The abuse limits' Redis could not be opened.
    #[error(transparent)]
    Limits(LimitError),
}

/// The outbox worker, ready to run: started by [`App::serve`], stopped after the server.
struct WorkerPlan {
    queue: Queue,
    senders: Arc<HashMap<String, Sender>>,
    settings: WorkerSettings,
}

/// A gateway wired and ready to serve.
pub struct App {
    /// The HTTP routes of the public listener (webhooks, delivery reports, health), with
    /// the gateway inside.
    pub router: Router,
    /// The operations endpoints (`/messages/{id}`, health), for the admin listener.
    pub admin_router: Router,
    /// The outbound queue, when senders are configured.
    pub outbox: Option<Outbox>,
    /// The session store the gateway uses (a cheap handle), for the readiness log.
    store: Store,
    /// Where the gateway's tenants live and its configuration version, for [`App::reloader`].
    tenants_handle: TenantsHandle,
    reload_status: ReloadStatus,
    /// The worker, when senders are configured and [`Options::worker`] asks for one.
    worker: Option<WorkerPlan>,
    /// `id codes; id codes`, for the start-up log line.
    tenants: String,
    senders: usize,
    /// The listener's timeouts and connection cap (`[http]`).
    http: HttpLimits,
}

impl App {
    /// Wires `tenants` under `config`: the session store, the outbound queue and its
    /// worker when senders are configured, and the router.
    pub fn build(
        config: &Config,
        tenants: Vec<Tenant>,
        options: Options,
    ) -> Result<App, StartError> {
        let store = match options.store {
            Some(store) => store,
            None => open_store(config).map_err(StartError::Store)?,
        };
        let mut gateway = Gateway::new(tenants, config, store);
        if let Some(clock) = options.clock {
            gateway = gateway.with_clock(clock);
        }
        gateway = gateway.with_limiter(open_limiter(config).map_err(StartError::Limits)?);
        let outbox = if config.senders.is_empty() {
            None
        } else {
            Some(open_outbox(config).map_err(StartError::Outbox)?)
        };
        if let Some(outbox) = &outbox {
            gateway = gateway.with_outbox(outbox.clone());
        }
        Ok(App::from_gateway(
            config,
            gateway,
            options.worker,
            &*options.secrets,
        ))
    }

    /// Wires a gateway built by the caller (tests that build one by hand). Its outbox, if
    /// it has one, is the one the worker drains.
    pub fn from_gateway(
        config: &Config,
        gateway: Gateway,
        worker: bool,
        secrets: &dyn Fn(&str) -> Option<String>,
    ) -> App {
        let outbox = gateway.outbox().cloned();
        let worker = match (&outbox, worker) {
            (Some(outbox), true) if !config.senders.is_empty() => {
                warn_on_slow_senders(config);
                Some(WorkerPlan {
                    queue: outbox.queue.clone(),
                    senders: Arc::new(
                        config
                            .senders
                            .iter()
                            .map(|s| (s.name.clone(), Sender::new(s.clone())))
                            .collect(),
                    ),
                    settings: worker_settings(config),
                })
            }
            _ => None,
        };
        let tenants = gateway
            .tenants()
            .iter()
            .map(|t| format!("{} {}", t.config.id, t.config.ussd_codes.join(",")))
            .collect::<Vec<_>>()
            .join("; ");
        let store = gateway.store().clone();
        let tenants_handle = gateway.tenants_handle();
        let reload_status = gateway.reload_status().clone();
        // The version of the files the configuration loaded: what `/readyz`, the metrics
        // and the start-up line show until a reload changes it.
        let version = crate::config::version_of(config);
        reload_status.started(&version);
        crate::metrics::config_version(&version);
        let state = Arc::new(AppState::new(gateway, config));
        let mut worker = worker;
        if let Some(w) = &mut worker {
            w.settings.health = state.sender_health.clone();
        }
        App {
            router: router(state.clone(), &config.channels, secrets),
            admin_router: admin_router(state),
            outbox,
            store,
            tenants_handle,
            reload_status,
            worker,
            tenants,
            senders: config.senders.len(),
            http: config.http,
        }
    }

    /// A reloader of this gateway's tenants, which were loaded as `config` from the file at
    /// `path` with `overrides`: a reload reads the same file with the same overrides. It
    /// records the starting version (shown in `/readyz`).
    pub fn reloader(&self, path: &Path, overrides: Overrides, config: &Config) -> Arc<Reloader> {
        Arc::new(Reloader::new(
            path,
            overrides,
            config,
            self.tenants_handle.clone(),
            self.reload_status.clone(),
        ))
    }

    /// Serves the webhooks on `listener` and the operations endpoints on `admin` until
    /// `shutdown` completes, lets in-flight hops finish, then stops the worker and waits
    /// for it.
    pub async fn serve(
        self,
        listener: TcpListener,
        admin: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if let Err(e) = self.store.ping().await {
            tracing::warn!(cause = %e, "session store not reachable yet; /readyz says so until it is");
        }
        let (stop_worker, stopped) = tokio::sync::watch::channel(false);
        let worker = self
            .worker
            .map(|w| tokio::spawn(run_worker(w.queue, w.senders, w.settings, stopped)));
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let admin_local = admin.local_addr();
        if admin_local.as_ref().is_ok_and(|a| !a.ip().is_loopback()) {
            // Open by design (no credentials), so say where: an operator must keep it private.
            tracing::warn!(admin = %admin_local.as_ref().map(|a| a.to_string()).unwrap_or_default(), "the admin listener is unauthenticated and not on loopback: reach it only from a private network");
        }
        let admin_address = admin_local.map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(
            address = %address,
            admin = %admin_address,
            store = self.store.kind(),
            tenants = %self.tenants,
            senders = self.senders,
            config_version = %self.reload_status.version(),
            "tamtam listening"
        );
        // One shutdown signal for both listeners.
        let (stop, stopping) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let admin_served = tokio::spawn(crate::server::serve(
            admin,
            self.admin_router,
            self.http,
            until(stopping.clone()),
        ));
        let mut served =
            crate::server::serve(listener, self.router, self.http, until(stopping)).await;
        match admin_served.await {
            Ok(Err(e)) if served.is_ok() => served = Err(e),
            Err(e) if served.is_ok() => served = Err(std::io::Error::other(e)),
            _ => {}
        }
        let _ = stop_worker.send(true);
        if let Some(w) = worker {
            let _ = w.await;
        }
        served
    }
}

/// The session store of `config`: Redis when `redis_url` is set, else in memory.
pub fn open_store(config: &Config) -> Result<Store, StoreError> {
    Ok(match &config.redis_url {
        Some(url) => Store::Redis(RedisStore::open(url, config.session.redis_timeout)?),
        None => Store::Memory(MemoryStore::with_capacity(
            config.session.memory_capacity,
            config.session.memory_message_ids,
        )),
    })
}

/// The abuse limits of `config`: shared in Redis when `redis_url` is set, else in memory.
pub fn open_limiter(config: &Config) -> Result<Limiter, LimitError> {
    let backend = match &config.redis_url {
        Some(url) => Backend::Redis(RedisLimiter::open(
            url,
            &config.session.key_prefix,
            config.session.redis_timeout,
        )?),
        None => Backend::Memory(MemoryLimiter::new(config.limits.max_buckets)),
    };
    Ok(Limiter::new(config.limits.clone(), backend))
}

/// The outbound queue of `config`: Redis when `redis_url` is set, else in memory.
pub fn open_outbox(config: &Config) -> Result<Outbox, OutboxError> {
    let queue = match &config.redis_url {
        Some(url) => Queue::Redis(RedisQueue::open(
            url,
            &config.session.key_prefix,
            config.session.redis_timeout,
        )?),
        None => Queue::Memory(MemoryQueue::new()),
    }
    .with_history_limits(config.outbox.history);
    Ok(Outbox {
        queue,
        status_ttl: config.outbox.status_ttl,
    })
}

/// Warns about each sender whose time limit is more than half of `claim_after`: a slow
/// send could be taken over by another replica and sent twice.
fn warn_on_slow_senders(config: &Config) {
    for s in &config.senders {
        if config.outbox.claim_after < s.timeout() * 2 {
            tracing::warn!(
                sender = %s.name,
                "timeout_ms is more than half of [outbox] claim_after_secs: a slow send may be taken over by another replica and sent twice"
            );
        }
    }
}

/// The worker settings of `config`, with a consumer name unique to this process.
pub fn worker_settings(config: &Config) -> WorkerSettings {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "tamtam".into());
    // A worker sends its batch one message after another; the whole batch must finish well
    // before `claim_after`, or another replica would take over messages still waiting in
    // it and send them twice. So: at most half of `claim_after` of worst-case sends.
    let slowest = config
        .senders
        .iter()
        .map(SenderConfig::timeout)
        .max()
        .unwrap_or(Duration::from_millis(DEFAULT_TIMEOUT_MS))
        .max(Duration::from_millis(1));
    let batch = usize::try_from(config.outbox.claim_after.as_millis() / 2 / slowest.as_millis())
        .unwrap_or(WORKER_MAX_BATCH)
        .clamp(1, WORKER_MAX_BATCH);
    WorkerSettings {
        consumer: format!("{host}-{}-{}", std::process::id(), crate::outbox::now_ms()),
        batch,
        wait: WORKER_WAIT,
        claim_after: config.outbox.claim_after,
        base_backoff: config.outbox.base_backoff,
        max_backoff: config.outbox.max_backoff,
        status_ttl: config.outbox.status_ttl,
        health: crate::outbox::Health::default(),
    }
}
