//! The HTTP server: the only module that knows axum.
//!
//! Mounts each configured channel (a dialect on a path), reads bodies under the configured
//! limit, hands them to the dialect's adapter and the gateway, and writes the answer. Also
//! `/healthz` (the process is up) and `/readyz` (menus loaded, session store reachable),
//! the delivery-report routes and `GET /messages/{id}`. What a request *means* is the
//! adapters' business (`crate::adapters`): this module only moves bytes and statuses.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
/// The routes of a gateway, as the composition root holds them (axum stays in this module).
pub use axum::Router;
use tokio::net::TcpListener;

use std::collections::HashMap;

use crate::adapters::{
    AdapterError, Dialect, DlrDialect, Family, MessageRef, RawRequest, RawResponse, SmsAuth,
    SmsDialect, UssdDialect,
};
use crate::config::Mount;
use crate::gateway::{Gateway, Outcome};
use crate::message::mask_msisdn;
use crate::outbox::{SenderConfig, SenderKind};

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub gateway: Gateway,
    pub max_body_bytes: usize,
    /// For delivery reports that do not name their sender: the sender of each kind
    /// (`jasmin`, `africas_talking`) to resolve provider ids with.
    pub default_senders: HashMap<SenderKind, String>,
}

impl AppState {
    /// Shared state for `gateway`, with the default senders of `senders`.
    pub fn new(gateway: Gateway, max_body_bytes: usize, senders: &[SenderConfig]) -> AppState {
        let mut default_senders = HashMap::new();
        for s in senders {
            default_senders
                .entry(s.kind)
                .or_insert_with(|| s.name.clone());
        }
        AppState {
            gateway,
            max_body_bytes,
            default_senders,
        }
    }
}

/// The environment variable holding the Twilio auth token when a channel names none.
pub const TWILIO_TOKEN_ENV: &str = "TAMTAM_TWILIO_AUTH_TOKEN";

/// Builds the router for the configured channels. `secret` reads a secret by name (the
/// binary passes the environment; tests pass their own).
pub fn router(
    state: Arc<AppState>,
    channels: &[Mount],
    secret: &dyn Fn(&str) -> Option<String>,
) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/messages/{id}", get(message_status));
    for (path, dialect) in [
        ("/dlr/kannel", DlrDialect::Kannel),
        ("/dlr/jasmin", DlrDialect::Jasmin),
        ("/dlr/at", DlrDialect::AfricasTalking),
    ] {
        router = router.route(
            path,
            any(move |State(state): State<Arc<AppState>>, req: Request| dlr(state, dialect, req)),
        );
    }
    for channel in channels {
        router = match channel.dialect.family() {
            Family::Ussd(dialect) => router.route(
                &channel.path,
                any(move |State(state): State<Arc<AppState>>, req: Request| {
                    ussd(state, dialect, req)
                }),
            ),
            Family::Sms(dialect) => match dialect.ack() {
                Some(ack) => {
                    let sender = Arc::new(channel.sender.clone().unwrap_or_default());
                    let ack = Arc::new(ack);
                    router.route(
                        &channel.path,
                        any(move |State(state): State<Arc<AppState>>, req: Request| {
                            sms_async(state, dialect, sender.clone(), ack.clone(), req)
                        }),
                    )
                }
                None => {
                    let auth = Arc::new(sms_auth(dialect, channel, secret));
                    router.route(
                        &channel.path,
                        any(move |State(state): State<Arc<AppState>>, req: Request| {
                            sms(state, dialect, auth.clone(), req)
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

/// Serves until `shutdown` completes, then lets in-flight hops finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer's address reaches handlers (`ConnectInfo`) for the per-source limits.
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A request's parts, owned, as adapters read them.
struct Parts {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: axum::body::Bytes,
}

impl Parts {
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

/// Reads a request under the body limit.
async fn read(req: Request, limit: usize) -> Result<Parts, AdapterError> {
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, limit).await.map_err(|e| {
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
    })
}

/// Every webhook's preamble: reads the request under the body limit and lets `parse` read
/// it; a request that cannot be read is logged and answered in `dialect`'s error format.
async fn accept<T>(
    state: &AppState,
    dialect: Dialect,
    req: Request,
    parse: impl FnOnce(&RawRequest) -> Result<T, AdapterError>,
) -> Result<T, Response> {
    let parsed = match read(req, state.max_body_bytes).await {
        Ok(parts) => parse(&parts.raw()),
        Err(err) => Err(err),
    };
    parsed.map_err(|err| {
        // Adapter errors never quote what the client sent (see adapters/error.rs).
        tracing::info!(dialect = dialect.name(), error = %err, "rejected webhook");
        into_response(dialect.render_error(&err))
    })
}

/// The address of the peer that sent `req`, when the server was started with it.
fn peer(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

async fn ussd(state: Arc<AppState>, dialect: UssdDialect, req: Request) -> Response {
    let started = Instant::now();
    let peer = peer(&req);
    let inbound = match accept(&state, dialect.into(), req, |r| dialect.parse(r)).await {
        Ok(i) => i,
        Err(rejected) => return rejected,
    };
    let (reply, outcome) = state
        .gateway
        .ussd_from(peer, dialect.name(), &inbound)
        .await;
    tracing::info!(
        dialect = dialect.name(),
        service = %inbound.service_code,
        msisdn = %mask_msisdn(&inbound.msisdn),
        outcome = outcome.as_str(),
        end = reply.end,
        micros = started.elapsed().as_micros() as u64,
        "hop"
    );
    tracing::debug!(session = %inbound.session_id, text = %reply.text, "reply");
    into_response(dialect.render(&reply, &inbound.session_id))
}

async fn sms(
    state: Arc<AppState>,
    dialect: SmsDialect,
    auth: Arc<SmsAuth>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let peer = peer(&req);
    let inbound = match accept(&state, dialect.into(), req, |r| dialect.parse(r, &auth)).await {
        Ok(sms) => sms.inbound,
        Err(rejected) => return rejected,
    };
    let (reply, outcome) = state.gateway.sms_from(peer, dialect.name(), &inbound).await;
    match outcome {
        Outcome::Limited => return into_response(dialect.render_limited()),
        Outcome::Refused => return into_response(dialect.render_refused()),
        _ => {}
    }
    tracing::info!(
        dialect = dialect.name(),
        to = %inbound.to,
        msisdn = %mask_msisdn(&inbound.from),
        outcome = outcome.as_str(),
        segments = reply.segments,
        encoding = reply.encoding.as_str(),
        micros = started.elapsed().as_micros() as u64,
        "sms"
    );
    tracing::debug!(text = %inbound.text, reply = %reply.text, "sms texts");
    into_response(dialect.render(&reply, &inbound))
}

/// An SMS of an asynchronous dialect: served, its reply queued, then acknowledged with
/// `ack`. When nothing could be queued the aggregator gets a 503 and retries.
async fn sms_async(
    state: Arc<AppState>,
    dialect: SmsDialect,
    sender: Arc<String>,
    ack: Arc<RawResponse>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let auth = SmsAuth::default();
    let peer = peer(&req);
    let sms = match accept(&state, dialect.into(), req, |r| dialect.parse(r, &auth)).await {
        Ok(sms) => sms,
        Err(rejected) => return rejected,
    };
    let inbound = &sms.inbound;
    match state
        .gateway
        .sms_async_from(peer, dialect.name(), inbound, &sender, sms.link_id)
        .await
    {
        Ok((reply, outcome)) => {
            tracing::info!(
                dialect = dialect.name(),
                to = %inbound.to,
                msisdn = %mask_msisdn(&inbound.from),
                outcome = outcome.as_str(),
                segments = reply.segments,
                micros = started.elapsed().as_micros() as u64,
                "sms queued"
            );
            into_response(ack.as_ref().clone())
        }
        Err(e) => {
            tracing::error!(dialect = dialect.name(), cause = %e, "sms not queued; the aggregator will retry");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable, retry\n",
            )
                .into_response()
        }
    }
}

/// The sender kind whose default `[[sender]]` resolves a provider's ids when its report
/// names no sender.
fn sender_kind(dialect: DlrDialect) -> Option<SenderKind> {
    match dialect {
        DlrDialect::Kannel => None,
        DlrDialect::Jasmin => Some(SenderKind::Jasmin),
        DlrDialect::AfricasTalking => Some(SenderKind::AfricasTalking),
    }
}

/// A delivery report: read by its dialect, recorded in the message's history, answered as
/// the provider expects.
///
/// Unknown messages: a provider's id may not be recorded yet (the report can beat the
/// worker's record of the send), so the answer is a 503 and the provider tries again
/// (Jasmin: 3 times, 30 s apart). tamtam's own id (Kannel) is recorded when the message is
/// accepted, before it is sent: an unknown one will never be known, and gets a 404.
async fn dlr(state: Arc<AppState>, dialect: DlrDialect, req: Request) -> Response {
    let Some(outbox) = state.gateway.outbox() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "no outbound queue\n");
    };
    let parsed = match read(req, state.max_body_bytes).await {
        Ok(parts) => dialect.parse(&parts.raw()),
        Err(err) => Err(err),
    };
    let report = match parsed {
        Ok(r) => r,
        Err(err) => {
            tracing::info!(dialect = dialect.name(), error = %err, "rejected delivery report");
            return into_response(dialect.render_error(&err));
        }
    };
    let status = report.status.as_str();
    let detail = Some(report.detail.clone());
    let (known, retry_when_unknown) = match &report.id {
        MessageRef::Own(id) => (outbox.report_own(id, status, detail).await, false),
        MessageRef::Provider { id, sender } => {
            let sender = sender
                .clone()
                .or_else(|| {
                    sender_kind(dialect).and_then(|k| state.default_senders.get(&k).cloned())
                })
                .unwrap_or_default();
            let known = outbox.report(&sender, id, status, detail).await;
            (known.map(|our_id| our_id.is_some()), true)
        }
    };
    match known {
        Ok(true) => into_response(dialect.ack()),
        Ok(false) if retry_when_unknown => {
            tracing::warn!(
                dialect = dialect.name(),
                "delivery report for an unknown message; asking for a retry"
            );
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "unknown message, retry later\n",
            )
        }
        Ok(false) => {
            tracing::warn!(
                dialect = dialect.name(),
                "delivery report for an unknown message"
            );
            text(StatusCode::NOT_FOUND, "unknown message\n")
        }
        Err(e) => {
            tracing::error!(cause = %e, "could not record a delivery report");
            text(StatusCode::SERVICE_UNAVAILABLE, "retry\n")
        }
    }
}

/// `GET /messages/{id}`: a message's status history.
async fn message_status(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let Some(outbox) = state.gateway.outbox() else {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "no outbound queue"}),
        );
    };
    match outbox.status(&id).await {
        Ok(history) if history.is_empty() => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"id": id, "error": "unknown message"}),
        ),
        Ok(history) => {
            let status = crate::outbox::current_status(&history).map(str::to_string);
            json(
                StatusCode::OK,
                serde_json::json!({"id": id, "status": status, "history": history}),
            )
        }
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"id": id, "error": e.to_string()}),
        ),
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

fn text(status: StatusCode, body: &'static str) -> Response {
    into_response(RawResponse::text(status.as_u16(), body))
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    into_response(RawResponse::json(status.as_u16(), &value))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let g = &state.gateway;
    let store = g.store().kind();
    let tenants = g.tenants().len();
    match g.ready().await {
        Ok(()) => json(
            StatusCode::OK,
            serde_json::json!({"status": "ready", "store": store, "tenants": tenants}),
        ),
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not ready", "store": store, "error": e.to_string()}),
        ),
    }
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
