//! The operations endpoints, served on the admin listener (`admin_listen`, never the
//! public one): `GET /messages/{id}` (an outbound SMS's status history), and `/healthz`
//! and `/readyz`, which the public router mounts too, for load balancers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::{json, AppState};

/// The operations endpoints, for the admin listener: `GET /messages/{id}`, `/healthz`,
/// `/readyz`.
pub fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/messages/{id}", get(message_status))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such endpoint\n") })
        .with_state(state)
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

pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 while the session store answers, 503 when it does not. The body
/// says why, and more: `store` (its kind), `store_status` (`ok` or the error), `tenants`,
/// `config_version` (a hash of the files the configuration loads, see
/// `config::version_of`; a reload changes it), `senders` (each sender's last send as the worker saw it:
/// `ok` or `degraded`, when, failures in a row, the last error; a degraded sender leaves
/// the gateway ready: hops still work, and the queue keeps its messages) and `queue` (the
/// outbound queue's depth, or its error).
pub(super) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    readiness(&state, true).await
}

/// `GET /readyz` on the public listener, for load balancers: the same answer without the
/// senders' last error texts, which quote the providers' answers (they may name a number).
pub(super) async fn readyz_public(State(state): State<Arc<AppState>>) -> Response {
    readiness(&state, false).await
}

/// The readiness answer; `errors` includes the senders' last error texts.
async fn readiness(state: &AppState, errors: bool) -> Response {
    let g = &state.gateway;
    let store = g.store().kind();
    let tenants = g.tenants().len();
    let ready = g.ready().await;
    let senders: serde_json::Map<String, serde_json::Value> = state
        .sender_health
        .snapshot()
        .into_iter()
        .map(|(name, h)| {
            let health = serde_json::json!({
                "status": h.status(),
                "at_ms": h.at_ms,
                "consecutive_failures": h.consecutive_failures,
                "last_error": if errors { h.last_error } else { None },
            });
            (name, health)
        })
        .collect();
    let queue = match g.outbox() {
        None => serde_json::Value::Null,
        Some(outbox) => match outbox.queue.stats().await {
            Ok(q) => serde_json::json!({
                "ready": q.ready, "in_flight": q.in_flight, "delayed": q.delayed, "dead": q.dead,
            }),
            Err(e) => serde_json::json!({"error": e.to_string()}),
        },
    };
    let mut body = serde_json::json!({
        "store": store,
        "tenants": tenants,
        "config_version": g.reload_status().version(),
        "config": config_details(g.reload_status()),
        "senders": senders,
        "queue": queue,
    });
    let status = match ready {
        Ok(()) => {
            body["status"] = "ready".into();
            body["store_status"] = "ok".into();
            StatusCode::OK
        }
        Err(e) => {
            body["status"] = "not ready".into();
            body["store_status"] = e.to_string().into();
            body["error"] = e.to_string().into();
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    json(status, body)
}

/// `/readyz`'s `config`: the running configuration version and the last reload's result
/// (`null` before the first reload).
fn config_details(status: &crate::gateway::ReloadStatus) -> serde_json::Value {
    let last = status.last_result().map(|r| {
        serde_json::json!({"at_ms": r.at_ms, "ok": r.ok, "problems": r.problems, "version": r.version})
    });
    serde_json::json!({"version": status.version(), "last_reload": last})
}
