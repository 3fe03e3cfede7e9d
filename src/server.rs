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

use crate::adapters::{AdapterError, Dialect, Kind, RawRequest, RawResponse, SmsAuth};
use crate::config::Channel;
use crate::gateway::Gateway;
use crate::message::mask_msisdn;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub gateway: Gateway,
    pub max_body_bytes: usize,
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
        .route("/readyz", get(readyz));
    for channel in channels {
        let dialect = channel.dialect;
        router = match dialect.kind() {
            Kind::Ussd => router.route(
                &channel.path,
                any(move |State(state): State<Arc<AppState>>, req: Request| {
                    ussd(state, dialect, req)
                }),
            ),
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
