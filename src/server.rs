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

use crate::adapters::{AdapterError, Dialect, RawRequest, RawResponse};
use crate::config::Channel;
use crate::gateway::Gateway;
use crate::message::mask_msisdn;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub gateway: Gateway,
    pub max_body_bytes: usize,
}

/// Builds the router for the configured channels.
pub fn router(state: Arc<AppState>, channels: &[Channel]) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    for channel in channels {
        let dialect = channel.dialect;
        router = router.route(
            &channel.path,
            any(move |State(state): State<Arc<AppState>>, req: Request| ussd(state, dialect, req)),
        );
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

async fn ussd(state: Arc<AppState>, dialect: Dialect, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let body = match to_bytes(req.into_body(), state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            // `to_bytes` wraps http-body-util's `LengthLimitError` ("length limit exceeded").
            let err = if error_chain(&e).any(|m| m.contains("length limit")) {
                AdapterError::TooLarge(state.max_body_bytes)
            } else {
                AdapterError::Malformed(format!("could not read the body; {e}"))
            };
            return reject(dialect, &err);
        }
    };
    let inbound = match dialect.parse(&RawRequest {
        method: &method,
        body: &body,
    }) {
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
    (
        status,
        [(header::CONTENT_TYPE, raw.content_type)],
        Body::from(raw.body),
    )
        .into_response()
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
