//! Delivery reports on `/dlr/*`: the secret in the URL checked first, the report read by
//! its dialect (`crate::adapters::DlrDialect`), recorded in the message's history, and
//! answered as the provider expects.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;

use super::{into_response, read, rejection, text, AppState, DLR_METHODS};
use crate::adapters::{DlrDialect, MessageRef};
use crate::outbox::SenderKind;

/// The sender kind whose default `[[sender]]` resolves a provider's ids when its report
/// names no sender.
fn sender_kind(dialect: DlrDialect) -> Option<SenderKind> {
    match dialect {
        DlrDialect::Kannel => None,
        DlrDialect::Jasmin => Some(SenderKind::Jasmin),
        DlrDialect::AfricasTalking => Some(SenderKind::AfricasTalking),
    }
}

/// A delivery report: authenticated by the `secret` in its URL's query, read by its
/// dialect, recorded in the message's history, answered as the provider expects. A report
/// without the secret is refused before it is read and changes nothing.
///
/// Unknown messages: a provider's id may not be recorded yet (the report can beat the
/// worker's record of the send), so the answer is a 503 and the provider tries again
/// (Jasmin: 3 times, 30 s apart). tamtam's own id (Kannel) is recorded when the message is
/// accepted, before it is sent: an unknown one will never be known, and gets a 404.
pub(super) async fn dlr(state: Arc<AppState>, dialect: DlrDialect, req: Request) -> Response {
    let Some(outbox) = state.gateway.outbox() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "no outbound queue\n");
    };
    let parsed = match read(req, state.max_body_bytes).await {
        Ok(parts) => state
            .authenticate("delivery report", &parts, |r, _| {
                crate::auth::check_dlr(state.dlr_secret.as_ref(), r)
            })
            .and_then(|_| dialect.parse(&parts.raw())),
        Err(err) => Err(err),
    };
    let report = match parsed {
        Ok(r) => r,
        Err(err) => {
            tracing::info!(dialect = dialect.name(), error = %err, "rejected delivery report");
            return rejection(dialect.render_error(&err), &err, DLR_METHODS);
        }
    };
    let status = report.status.as_str();
    crate::metrics::delivery_report(dialect.name(), status);
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
