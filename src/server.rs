//! The HTTP server: the only module that knows axum.
//!
//! Mounts each configured channel (a dialect on a path), reads bodies under the configured
//! limit, hands them to the dialect's adapter and the gateway, and writes the answer. Also
//! `/healthz` (the process is up) and `/readyz` (menus loaded, session store reachable),
//! and the delivery-report routes. The operations endpoints (`GET /messages/{id}`, with
//! `/healthz` and `/readyz` again) are a router of their own ([`admin_router`]), served on
//! the admin listener. What a request *means* is the adapters' business
//! (`crate::adapters`): this module only moves bytes and statuses.
//!
//! Every webhook and delivery report is authenticated before an adapter reads it
//! (`crate::auth` decides; this module hands it the peer address, headers, query, body and
//! the gateway's clock): a refusal is answered in the dialect's 401/403 format, changes
//! nothing, and is logged once per source per minute.
//!
//! [`serve`] runs its own accept loop (`server/listener.rs`) rather than `axum::serve`,
//! which has no knob for what a slow or idle client may cost: it caps open connections (a
//! semaphore, as mini-redis does), closes a connection whose request head is late or which
//! sits idle, hands each request its peer address (`ConnectInfo<SocketAddr>`) and the
//! body-read timeout `read` applies, and shuts down gracefully.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::{to_bytes, Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
/// The routes of a gateway, as the composition root holds them (axum stays in this module).
pub use axum::Router;
pub use listener::serve;
use tracing::Instrument;

use std::collections::HashMap;

use crate::adapters::{
    AdapterError, Dialect, DlrDialect, Family, RawRequest, RawResponse, SmsAuth, SmsDialect,
    UssdDialect,
};
use crate::auth::{ChannelAuth, Cidr, Inbound, Refusal, RefusalLog, Secret, REFUSAL_LOG_CAP};
use crate::config::{Config, HttpLimits, Mount};
use crate::gateway::{sms_span, ussd_span, Gateway, Outcome};
use crate::outbox::{Health, SenderKind};

mod admin;
mod dlr;
mod listener;

pub use self::admin::admin_router;
use self::admin::{healthz, readyz_public};

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub gateway: Gateway,
    pub max_body_bytes: usize,
    /// For delivery reports that do not name their sender: the sender of each kind
    /// (`jasmin`, `africas_talking`) to resolve provider ids with.
    pub default_senders: HashMap<SenderKind, String>,
    /// Proxies whose `X-Forwarded-For` is believed.
    trusted_proxies: Vec<Cidr>,
    /// The secret delivery reports carry; `None` refuses them all.
    dlr_secret: Option<Secret>,
    /// Which refusals are logged (one line per source per minute).
    refusals: RefusalLog,
    /// Each sender's recent health, recorded by the outbox worker, for `/readyz`.
    pub sender_health: Health,
}

impl AppState {
    /// Shared state for `gateway` under `config`: body limit, default senders,
    /// trusted proxies and the delivery-report secret.
    pub fn new(gateway: Gateway, config: &Config) -> AppState {
        let mut default_senders = HashMap::new();
        for s in &config.senders {
            default_senders
                .entry(s.kind)
                .or_insert_with(|| s.name.clone());
        }
        AppState {
            gateway,
            max_body_bytes: config.max_body_bytes,
            default_senders,
            trusted_proxies: config.trusted_proxies.clone(),
            dlr_secret: config.dlr_secret.clone(),
            refusals: RefusalLog::new(REFUSAL_LOG_CAP),
            sender_health: Health::default(),
        }
    }
}

/// The environment variable holding the Twilio auth token when a channel names none.
pub const TWILIO_TOKEN_ENV: &str = "TAMTAM_TWILIO_AUTH_TOKEN";

/// Builds the public router for the configured channels, with `/healthz` and `/readyz`
/// for load balancers; operations endpoints are on [`admin_router`] only. `secret` reads a
/// secret by name (the binary passes the environment; tests pass their own). Each channel
/// open to anyone is logged at WARN.
pub fn router(
    state: Arc<AppState>,
    channels: &[Mount],
    secret: &dyn Fn(&str) -> Option<String>,
) -> Router {
    if state.dlr_secret.is_none() {
        tracing::warn!("no dlr_secret: every delivery report on /dlr/* is refused");
    }
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz_public));
    for (path, dialect) in [
        ("/dlr/kannel", DlrDialect::Kannel),
        ("/dlr/jasmin", DlrDialect::Jasmin),
        ("/dlr/at", DlrDialect::AfricasTalking),
    ] {
        router = router.route(
            path,
            any(move |State(state): State<Arc<AppState>>, req: Request| {
                dlr::dlr(state, dialect, req)
            }),
        );
    }
    for channel in channels {
        if channel.auth.is_open() {
            tracing::warn!(
                path = %channel.path,
                dialect = channel.dialect.name(),
                "unauthenticated channel: anyone who reaches this listener can call it"
            );
        }
        let auth = Arc::new(channel.auth.clone());
        router = match channel.dialect.family() {
            Family::Ussd(dialect) => {
                let budget = channel.hop_timeout;
                router.route(
                    &channel.path,
                    any(move |State(state): State<Arc<AppState>>, req: Request| {
                        ussd(state, dialect, auth.clone(), budget, req)
                    }),
                )
            }
            Family::Sms(dialect) => match dialect.ack() {
                Some(ack) => {
                    let sender = Arc::new(channel.sender.clone().unwrap_or_default());
                    let ack = Arc::new(ack);
                    router.route(
                        &channel.path,
                        any(move |State(state): State<Arc<AppState>>, req: Request| {
                            sms_async(
                                state,
                                dialect,
                                auth.clone(),
                                sender.clone(),
                                ack.clone(),
                                req,
                            )
                        }),
                    )
                }
                None => {
                    let signature = Arc::new(sms_auth(dialect, channel, secret));
                    router.route(
                        &channel.path,
                        any(move |State(state): State<Arc<AppState>>, req: Request| {
                            sms(state, dialect, auth.clone(), signature.clone(), req)
                        }),
                    )
                }
            },
        };
    }
    router
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such endpoint\n") })
        .with_state(state)
}

/// What a synchronous SMS channel needs to authenticate its webhooks (Twilio's token).
fn sms_auth(
    dialect: SmsDialect,
    channel: &Mount,
    secret: &dyn Fn(&str) -> Option<String>,
) -> SmsAuth {
    let twilio = dialect == SmsDialect::Twilio;
    let env = channel
        .auth_token_env
        .as_deref()
        .unwrap_or(TWILIO_TOKEN_ENV);
    let auth = SmsAuth {
        twilio_token: twilio
            .then(|| secret(env))
            .flatten()
            .filter(|t| !t.is_empty()),
        public_url: channel.public_url.clone(),
    };
    if twilio && auth.twilio_token.is_none() {
        tracing::warn!(
            path = %channel.path,
            "no Twilio auth token in {env}: every request on this path gets a 403"
        );
    }
    auth
}

/// A request's parts, owned, as adapters read them.
struct Parts {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: axum::body::Bytes,
    /// The TCP peer, when the server recorded it.
    peer: Option<IpAddr>,
}

impl Parts {
    /// What authentication reads, at `now` (Unix seconds).
    fn inbound(&self, now: i64) -> Inbound<'_> {
        Inbound {
            headers: &self.headers,
            query: self.query.as_deref(),
            body: &self.body,
            now,
        }
    }

    fn raw(&self) -> RawRequest<'_> {
        RawRequest {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// Reads a request under the body limit, within the listener's body-read timeout.
async fn read(req: Request, limit: usize) -> Result<Parts, AdapterError> {
    let (parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let timeout = parts
        .extensions
        .get::<listener::BodyReadTimeout>()
        .map_or(HttpLimits::default().body_read_timeout, |t| t.0);
    // A declared length over the limit is refused before waiting for any of it.
    if body.size_hint().lower() > limit as u64 {
        return Err(AdapterError::TooLarge(limit));
    }
    let body = tokio::time::timeout(timeout, to_bytes(body, limit));
    let body = body.await.map_err(|_| {
        AdapterError::BodyTimeout(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
    })?;
    let body = body.map_err(|e| {
        // `to_bytes` wraps http-body-util's `LengthLimitError` ("length limit exceeded").
        if error_chain(&e).any(|m| m.contains("length limit")) {
            AdapterError::TooLarge(limit)
        } else {
            AdapterError::Malformed(format!("could not read the body; {e}"))
        }
    })?;
    let headers = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    Ok(Parts {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers,
        body,
        peer,
    })
}

impl AppState {
    /// Checks `parts` against `check` (given the caller's address); a refusal becomes the
    /// [`AdapterError`] its dialect renders, and is logged once per source per minute.
    fn authenticate(
        &self,
        what: &'static str,
        parts: &Parts,
        check: impl FnOnce(&Inbound, Option<IpAddr>) -> Result<(), Refusal>,
    ) -> Result<Option<IpAddr>, AdapterError> {
        let now = self.gateway.now();
        let source = crate::auth::source_address(parts.peer, &parts.headers, &self.trusted_proxies);
        check(&parts.inbound(now), source).map(|()| source).map_err(|refusal| {
            crate::metrics::auth_refused(refusal.reason());
            if self.refusals.should_log(source, now) {
                // Never the credentials: the reason names the mechanism only.
                tracing::warn!(
                    what,
                    path = %parts.path,
                    source = %source.map_or_else(|| "unknown".to_string(), |ip| ip.to_string()),
                    reason = refusal.reason(),
                    "refused an unauthenticated request; more from this source within a minute are not logged"
                );
            }
            match refusal {
                Refusal::Missing(why) => AdapterError::Unauthorized(why.to_string()),
                Refusal::Wrong(why) => AdapterError::Forbidden(why.to_string()),
            }
        })
    }
}

/// Every webhook's preamble: reads the request under the body limit and lets `parse` read
/// it; a request that cannot be read is logged and answered in `dialect`'s error format.
async fn accept<T>(
    state: &AppState,
    dialect: Dialect,
    auth: &ChannelAuth,
    req: Request,
    parse: impl FnOnce(&RawRequest) -> Result<T, AdapterError>,
) -> Result<(T, Option<IpAddr>), Response> {
    let parsed = match read(req, state.max_body_bytes).await {
        Ok(parts) => match state.authenticate("webhook", &parts, |r, ip| auth.check(r, ip)) {
            // The caller's address (through trusted proxies) is also what rate limits count.
            Ok(source) => parse(&parts.raw()).map(|parsed| (parsed, source)),
            Err(refused) => {
                let mut response = into_response(dialect.render_error(&refused));
                if matches!(refused, AdapterError::Unauthorized(_)) && auth.basic.is_some() {
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        axum::http::HeaderValue::from_static("Basic realm=\"tamtam\""),
                    );
                }
                return Err(response);
            }
        },
        Err(err) => Err(err),
    };
    parsed.map_err(|err| {
        // Adapter errors never quote what the client sent (see adapters/error.rs).
        tracing::info!(dialect = dialect.name(), error = %err, "rejected webhook");
        rejection(dialect.render_error(&err), &err, allowed_methods(dialect))
    })
}

/// A USSD hop, within `budget`: the time budget of the channel it came on.
async fn ussd(
    state: Arc<AppState>,
    dialect: UssdDialect,
    auth: Arc<ChannelAuth>,
    budget: std::time::Duration,
    req: Request,
) -> Response {
    let started = Instant::now();
    let (inbound, peer) =
        match accept(&state, dialect.into(), &auth, req, |r| dialect.parse(r)).await {
            Ok(accepted) => accepted,
            Err(rejected) => return rejected,
        };
    // The hop's span (dialect, tenant, masked number, hashed session) around the gateway's
    // work and this line, so every line of the hop carries the same fields.
    let span = ussd_span(dialect.name(), &inbound);
    let (reply, outcome, late) = state
        .gateway
        .ussd_from(peer, dialect.name(), &inbound, budget)
        .instrument(span.clone())
        .await;
    if let Some(late) = late {
        // The answer by SMS, off the hop: the subscriber has their END already.
        let state = state.clone();
        tokio::spawn(async move { state.gateway.finish_late(late).await }.instrument(span.clone()));
    }
    span.in_scope(|| {
        tracing::info!(
            service = %inbound.service_code,
            outcome = outcome.as_str(),
            end = reply.end,
            micros = started.elapsed().as_micros() as u64,
            "hop"
        );
        tracing::debug!(session = %inbound.session_id, text = %reply.text, "reply");
    });
    into_response(dialect.render(&reply, &inbound.session_id))
}

async fn sms(
    state: Arc<AppState>,
    dialect: SmsDialect,
    auth: Arc<ChannelAuth>,
    signature: Arc<SmsAuth>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let parse = |r: &RawRequest| dialect.parse(r, &signature);
    let (inbound, peer) = match accept(&state, dialect.into(), &auth, req, parse).await {
        Ok((sms, peer)) => (sms.inbound, peer),
        Err(rejected) => return rejected,
    };
    let span = sms_span(dialect.name(), &inbound);
    let (reply, outcome) = state
        .gateway
        .sms_from(peer, dialect.name(), &inbound)
        .instrument(span.clone())
        .await;
    match outcome {
        Outcome::Limited => return into_response(dialect.render_limited()),
        Outcome::Refused => return into_response(dialect.render_refused()),
        _ => {}
    }
    span.in_scope(|| {
        tracing::info!(
            to = %inbound.to,
            outcome = outcome.as_str(),
            segments = reply.segments,
            encoding = reply.encoding.as_str(),
            micros = started.elapsed().as_micros() as u64,
            "sms"
        );
        tracing::debug!(text = %inbound.text, reply = %reply.text, "sms texts");
    });
    into_response(dialect.render(&reply, &inbound))
}

/// An SMS of an asynchronous dialect: served, its reply queued, then acknowledged with
/// `ack`. When nothing could be queued the aggregator gets a 503 and retries.
async fn sms_async(
    state: Arc<AppState>,
    dialect: SmsDialect,
    auth: Arc<ChannelAuth>,
    sender: Arc<String>,
    ack: Arc<RawResponse>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let none = SmsAuth::default();
    let (sms, peer) = match accept(&state, dialect.into(), &auth, req, |r| {
        dialect.parse(r, &none)
    })
    .await
    {
        Ok(accepted) => accepted,
        Err(rejected) => return rejected,
    };
    let inbound = &sms.inbound;
    let span = sms_span(dialect.name(), inbound);
    let served = state
        .gateway
        .sms_async_from(peer, dialect.name(), inbound, &sender, sms.link_id)
        .instrument(span.clone())
        .await;
    let _in_span = span.enter();
    match served {
        Ok((reply, outcome)) => {
            tracing::info!(
                to = %inbound.to,
                outcome = outcome.as_str(),
                segments = reply.segments,
                micros = started.elapsed().as_micros() as u64,
                "sms queued"
            );
            into_response(ack.as_ref().clone())
        }
        Err(e) => {
            tracing::error!(cause = %e, "sms not queued; the aggregator will retry");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable, retry\n",
            )
                .into_response()
        }
    }
}

/// An error and its sources, outermost first.
fn error_chain<'a>(e: &'a (dyn std::error::Error + 'static)) -> impl Iterator<Item = String> + 'a {
    std::iter::successors(Some(e), |e| e.source()).map(ToString::to_string)
}

fn into_response(raw: RawResponse) -> Response {
    let status = StatusCode::from_u16(raw.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, raw.content_type)],
        Body::from(raw.body),
    )
        .into_response();
    for (name, value) in raw.headers {
        if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

/// A rejected request's answer: `raw` (the dialect's error body), with `Allow` on a 405,
/// and `Connection: close` when the body was not read whole (413, 408), so the client knows
/// the connection ends with this answer.
fn rejection(raw: RawResponse, err: &AdapterError, allow: &'static str) -> Response {
    let mut response = into_response(raw);
    let headers = response.headers_mut();
    match err {
        AdapterError::Method(_) => {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        AdapterError::TooLarge(_) | AdapterError::BodyTimeout(_) => {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        _ => {}
    }
    response
}

/// The methods a webhook of `dialect` accepts, for `Allow` (the adapters answer any other
/// with [`AdapterError::Method`]; a test below keeps the two in step).
fn allowed_methods(dialect: Dialect) -> &'static str {
    match dialect.family() {
        Family::Sms(SmsDialect::Kannel | SmsDialect::Jasmin) => "GET, POST",
        Family::Sms(_) | Family::Ussd(_) => "POST",
    }
}

/// The methods delivery reports come with (Kannel's `dlr-url` is a GET, Jasmin's a GET or
/// a POST, Africa's Talking's a POST).
const DLR_METHODS: &str = "GET, POST";

fn text(status: StatusCode, body: &'static str) -> Response {
    into_response(RawResponse::text(status.as_u16(), body))
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    into_response(RawResponse::json(status.as_u16(), &value))
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(cause = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(cause = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight hops");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every method an adapter refuses with a 405 is missing from the `Allow` we send, and
    /// every method it takes is in it.
    #[test]
    fn allow_names_exactly_the_methods_each_dialect_takes() {
        let auth = SmsAuth::default();
        for dialect in Dialect::ALL {
            let allow = allowed_methods(dialect);
            for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
                let req = RawRequest {
                    method,
                    path: "/",
                    query: None,
                    headers: &[],
                    body: b"",
                };
                let refused = match dialect.family() {
                    Family::Ussd(d) => matches!(d.parse(&req), Err(AdapterError::Method(_))),
                    Family::Sms(d) => {
                        matches!(d.parse(&req, &auth), Err(AdapterError::Method(_)))
                    }
                };
                let listed = allow.split(", ").any(|m| m == method);
                assert_eq!(
                    refused,
                    !listed,
                    "{} {method}: Allow {allow}",
                    dialect.name()
                );
            }
        }
    }

    #[test]
    fn a_rejection_says_allow_on_405_and_close_on_413_and_408() {
        let raw = || RawResponse::text(400, "no\n");
        let r = rejection(raw(), &AdapterError::Method("PUT".into()), "POST");
        assert_eq!(r.headers()[header::ALLOW], "POST");
        assert!(r.headers().get(header::CONNECTION).is_none());
        for err in [AdapterError::TooLarge(1), AdapterError::BodyTimeout(1)] {
            let r = rejection(raw(), &err, "POST");
            assert_eq!(r.headers()[header::CONNECTION], "close", "{err}");
        }
        let r = rejection(raw(), &AdapterError::MissingField("x"), "POST");
        assert!(r.headers().get(header::CONNECTION).is_none());
        assert!(r.headers().get(header::ALLOW).is_none());
    }
}
