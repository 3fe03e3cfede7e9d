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

pub(super) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let g = &state.gateway;
    let store = g.store().kind();
    let tenants = g.tenants().len();
    let config = config_details(g.reload_status());
    match g.ready().await {
        Ok(()) => json(
            StatusCode::OK,
            serde_json::json!({"status": "ready", "store": store, "tenants": tenants, "config": config}),
        ),
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not ready", "store": store, "error": e.to_string(), "config": config}),
        ),
    }
}

/// `/readyz`'s `config`: the running configuration version and the last reload's result
/// (`null` before the first reload).
fn config_details(status: &crate::gateway::ReloadStatus) -> serde_json::Value {
    let last = status.last_result().map(|r| {
        serde_json::json!({"at_ms": r.at_ms, "ok": r.ok, "problems": r.problems, "version": r.version})
    });
    serde_json::json!({"version": status.version(), "last_reload": last})
}
