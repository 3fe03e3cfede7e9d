//! The operations endpoints, served on the admin listener (`admin_listen`, never the
//! public one): `GET /messages/{id}` (an outbound SMS's status history), `GET /metrics`
//! (Prometheus, `crate::metrics`), and `/healthz` and `/readyz`, which the public router
//! mounts too, for load balancers.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{json, AppState};
use crate::data::{BreakerState, Source};
use crate::session::Store;

/// The operations endpoints, for the admin listener: `GET /messages/{id}`, `/metrics`,
/// `/healthz`, `/readyz`.
pub fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/messages/{id}", get(message_status))
        .route("/metrics", get(metrics))
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

/// How long a scrape waits for the outbound queue's depth (a Redis call) before leaving it
/// out (`tamtam_outbox_stats_up 0`).
const QUEUE_STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /metrics`: the recorded metrics, and what is sampled now: the limiter's refusals,
/// the outbound queue's depth, each HTTP source's breaker, the in-memory store's pools.
/// Every screen of every tenant is listed (at 0 until reached), so a funnel is complete.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    use crate::metrics::Sample;
    let g = &state.gateway;
    let sample = |name, labels: Vec<(&'static str, String)>, value: f64| Sample {
        name,
        labels,
        value,
    };
    let mut samples = Vec::new();
    for (refusal, n) in g.limiter().refusals() {
        let labels = vec![("reason", refusal.as_str().to_string())];
        samples.push(sample("tamtam_limit_refusals_total", labels, n as f64));
    }
    for tenant in g.tenants().iter() {
        let id = &tenant.config.id;
        for screen in &tenant.menu.screens {
            crate::metrics::touch_screen(id, &screen.id);
        }
        for (name, source) in &tenant.sources {
            if let Source::Http(http) = source {
                let value = match http.breaker_state() {
                    BreakerState::Closed => 0.0,
                    BreakerState::HalfOpen => 1.0,
                    BreakerState::Open => 2.0,
                };
                let labels = vec![("tenant", id.clone()), ("source", name.clone())];
                samples.push(sample("tamtam_breaker_state", labels, value));
            }
        }
    }
    if let Store::Memory(m) = g.store() {
        for (pool, len, cap) in m.pools() {
            let labels = || vec![("pool", pool.to_string())];
            samples.push(sample("tamtam_memory_store_entries", labels(), len as f64));
            samples.push(sample("tamtam_memory_store_capacity", labels(), cap as f64));
        }
    }
    if let Some(outbox) = g.outbox() {
        let stats = tokio::time::timeout(QUEUE_STATS_TIMEOUT, outbox.queue.stats()).await;
        let up = match stats {
            Ok(Ok(s)) => {
                for (queue_state, n) in [
                    ("ready", s.ready),
                    ("in_flight", s.in_flight),
                    ("delayed", s.delayed),
                    ("dead", s.dead),
                ] {
                    let labels = vec![("state", queue_state.to_string())];
                    samples.push(sample("tamtam_outbox_messages", labels, n as f64));
                }
                1.0
            }
            _ => 0.0,
        };
        samples.push(sample("tamtam_outbox_stats_up", Vec::new(), up));
    }
    let body = crate::metrics::render(&samples);
    Response::builder()
        .header(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(body.into())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
