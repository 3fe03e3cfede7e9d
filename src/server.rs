//! The HTTP server: the only module that knows axum.
//!
//! Mounts each configured channel (a dialect on a path), reads bodies under the configured
//! limit, hands them to the dialect's adapter and the gateway, and writes the answer. Also
//! `/healthz` (the process is up) and `/readyz` (menus loaded, session store reachable).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use tokio::net::TcpListener;

use std::collections::HashMap;

use crate::adapters::{AdapterError, Dialect, Kind, RawRequest, RawResponse, SmsAuth};
use crate::config::Channel;
use crate::gateway::Gateway;
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
    channels: &[Channel],
    secret: &dyn Fn(&str) -> Option<String>,
) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/messages/{id}", get(message_status))
        .route("/dlr/kannel", any(dlr_kannel))
        .route("/dlr/jasmin", any(dlr_jasmin))
        .route("/dlr/at", any(dlr_at));
    for channel in channels {
        let dialect = channel.dialect;
        router = match dialect.kind() {
            Kind::Ussd => router.route(
                &channel.path,
                any(move |State(state): State<Arc<AppState>>, req: Request| {
                    ussd(state, dialect, req)
                }),
            ),
            Kind::Sms if dialect.needs_sender() => {
                let sender = Arc::new(channel.sender.clone().unwrap_or_default());
                router.route(
                    &channel.path,
                    any(move |State(state): State<Arc<AppState>>, req: Request| {
                        sms_async(state, dialect, sender.clone(), req)
                    }),
                )
            }
            Kind::Sms => {
                let env = channel
                    .auth_token_env
                    .as_deref()
                    .unwrap_or(TWILIO_TOKEN_ENV);
                let auth = Arc::new(SmsAuth {
                    twilio_token: (dialect == Dialect::Twilio)
                        .then(|| secret(env))
                        .flatten()
                        .filter(|t| !t.is_empty()),
                    public_url: channel.public_url.clone(),
                });
                if dialect == Dialect::Twilio && auth.twilio_token.is_none() {
                    tracing::warn!(
                        path = %channel.path,
                        "no Twilio auth token in {env}: every request on this path gets a 403"
                    );
                }
                router.route(
                    &channel.path,
                    any(move |State(state): State<Arc<AppState>>, req: Request| {
                        sms(state, dialect, auth.clone(), req)
                    }),
                )
            }
        };
    }
    router
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such endpoint\n") })
        .with_state(state)
}

/// Serves until `shutdown` completes, then lets in-flight hops finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
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

async fn sms(state: Arc<AppState>, dialect: Dialect, auth: Arc<SmsAuth>, req: Request) -> Response {
    let started = Instant::now();
    let parts = match read(req, state.max_body_bytes).await {
        Ok(p) => p,
        Err(err) => return reject(dialect, &err),
    };
    let inbound = match dialect.parse_sms(&parts.raw(), &auth) {
        Ok(i) => i,
        Err(err) => return reject(dialect, &err),
    };
    let (reply, outcome) = state.gateway.sms(dialect.name(), &inbound).await;
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
    into_response(dialect.render_sms(&reply, &inbound))
}

/// An SMS of an asynchronous dialect: served, its reply queued, then acknowledged. When
/// nothing could be queued the aggregator gets a 503 and retries.
async fn sms_async(
    state: Arc<AppState>,
    dialect: Dialect,
    sender: Arc<String>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let parts = match read(req, state.max_body_bytes).await {
        Ok(p) => p,
        Err(err) => return reject(dialect, &err),
    };
    let raw = parts.raw();
    let inbound = match dialect.parse_sms(&raw, &SmsAuth::default()) {
        Ok(i) => i,
        Err(err) => return reject(dialect, &err),
    };
    let link = dialect.link_id(&raw);
    match state
        .gateway
        .sms_async(dialect.name(), &inbound, &sender, link)
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
            into_response(dialect.ack())
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

/// Reads a delivery report's fields from the query and a form body.
async fn dlr_fields(state: &AppState, req: Request) -> Result<Vec<(String, String)>, AdapterError> {
    let parts = read(req, state.max_body_bytes).await?;
    let mut fields = crate::adapters::form_fields(parts.query.as_deref().unwrap_or("").as_bytes())?;
    fields.extend(crate::adapters::form_fields(&parts.body)?);
    Ok(fields)
}

fn get_field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// Kannel `dlr-url`: `?id=<our id>&status=%d` (1 delivered, 2 failed, 4 buffered, 8
/// submitted to the SMSC, 16 rejected by the SMSC).
async fn dlr_kannel(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let Some(outbox) = state.gateway.outbox() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "no outbound queue\n");
    };
    let fields = match dlr_fields(&state, req).await {
        Ok(f) => f,
        Err(e) => return plain_error(&e),
    };
    let (Some(id), Some(kind)) = (get_field(&fields, "id"), get_field(&fields, "status")) else {
        return plain(StatusCode::BAD_REQUEST, "missing id or status\n");
    };
    let status = match kind.trim() {
        "1" => "delivered",
        "2" => "failed",
        "4" => "buffered",
        "8" => "submitted",
        "16" => "rejected",
        _ => "unknown",
    };
    match outbox
        .report_own(id, status, Some(format!("kannel dlr {kind}")))
        .await
    {
        Ok(true) => plain(StatusCode::OK, "OK\n"),
        Ok(false) => plain(StatusCode::NOT_FOUND, "unknown message\n"),
        Err(e) => {
            tracing::error!(cause = %e, "could not record a delivery report");
            plain(StatusCode::SERVICE_UNAVAILABLE, "retry\n")
        }
    }
}

/// Jasmin `dlr-url`: `id` (Jasmin's message id), `message_status`; answered `ACK/Jasmin`.
async fn dlr_jasmin(State(state): State<Arc<AppState>>, req: Request) -> Response {
    dlr_provider(
        state,
        req,
        SenderKind::Jasmin,
        "message_status",
        "ACK/Jasmin",
    )
    .await
}

/// Africa's Talking delivery reports: `id` (its message id), `status`, `failureReason`.
async fn dlr_at(State(state): State<Arc<AppState>>, req: Request) -> Response {
    dlr_provider(state, req, SenderKind::AfricasTalking, "status", "OK").await
}

async fn dlr_provider(
    state: Arc<AppState>,
    req: Request,
    kind: SenderKind,
    status_field: &str,
    ack: &'static str,
) -> Response {
    let Some(outbox) = state.gateway.outbox() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "no outbound queue\n");
    };
    let fields = match dlr_fields(&state, req).await {
        Ok(f) => f,
        Err(e) => return plain_error(&e),
    };
    let (Some(pid), Some(raw_status)) =
        (get_field(&fields, "id"), get_field(&fields, status_field))
    else {
        return plain(StatusCode::BAD_REQUEST, "missing id or status\n");
    };
    let sender = get_field(&fields, "sender")
        .map(str::to_string)
        .or_else(|| state.default_senders.get(&kind).cloned())
        .unwrap_or_default();
    let status = provider_status(raw_status);
    let detail = get_field(&fields, "failureReason")
        .or(get_field(&fields, "err"))
        .map(|r| format!("{raw_status}: {r}"))
        .or_else(|| Some(raw_status.to_string()));
    match outbox.report(&sender, pid, &status, detail).await {
        Ok(Some(_)) => plain(StatusCode::OK, ack),
        // Not known (yet): the report can beat the worker's record of the send. Not
        // acknowledged, so the provider tries again (Jasmin: 3 times, 30 s apart).
        Ok(None) => {
            tracing::warn!(sender = %sender, "delivery report for an unknown message; asking for a retry");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "unknown message, retry later\n",
            )
        }
        Err(e) => {
            tracing::error!(cause = %e, "could not record a delivery report");
            plain(StatusCode::SERVICE_UNAVAILABLE, "retry\n")
        }
    }
}

/// A provider's delivery status in tamtam's words.
fn provider_status(raw: &str) -> String {
    match raw.trim().to_ascii_uppercase().as_str() {
        "DELIVRD" | "SUCCESS" | "DELIVERED" => "delivered".into(),
        "ESME_ROK" | "SUBMITTED" | "SENT" | "ACCEPTD" => "submitted".into(),
        "BUFFERED" | "ENROUTE" => "buffered".into(),
        "REJECTED" | "REJECTD" => "rejected".into(),
        "FAILED" | "UNDELIV" | "EXPIRED" | "DELETED" => "failed".into(),
        other => other.to_ascii_lowercase(),
    }
}

fn plain_error(e: &AdapterError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, "text/plain")],
        format!("{e}\n"),
    )
        .into_response()
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

async fn ussd(state: Arc<AppState>, dialect: Dialect, req: Request) -> Response {
    let started = Instant::now();
    let parts = match read(req, state.max_body_bytes).await {
        Ok(p) => p,
        Err(err) => return reject(dialect, &err),
    };
    let inbound = match dialect.parse(&parts.raw()) {
        Ok(i) => i,
        Err(err) => return reject(dialect, &err),
    };
    let (reply, outcome) = state.gateway.ussd(dialect.name(), &inbound).await;
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

fn error_chain<'a>(e: &'a (dyn std::error::Error + 'static)) -> impl Iterator<Item = String> + 'a {
    std::iter::successors(Some(e), |e| e.source()).map(ToString::to_string)
}

fn reject(dialect: Dialect, err: &AdapterError) -> Response {
    tracing::info!(dialect = dialect.name(), error = %err, "rejected webhook");
    into_response(dialect.render_error(err))
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

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
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
