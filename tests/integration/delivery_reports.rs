//! Delivery reports over real HTTP, the three routes side by side: each acknowledges as its
//! provider expects, says which field is missing, and answers a report for a message it
//! does not know by whether that message can still become known.
//!
//! - `/dlr/kannel` names tamtam's own id, recorded when the message is accepted (before
//!   it is sent): an unknown one never becomes known, so the answer is a final 404.
//! - `/dlr/jasmin` and `/dlr/at` name the provider's id, recorded once the provider has
//!   answered the send: a report can beat that record, so the answer is a 503 and the
//!   provider tries again.

use crate::outbox_worker::out;
use crate::support::outbox_fake::{get_message, json_statuses, post_form};
use crate::support::Server;

#[tokio::test]
async fn a_kannel_report_for_an_accepted_message_is_recorded_with_kannel_s_code() {
    let server = Server::start(None).await;
    let m = out("kannel", "+2250700000001", "Bonjour");
    server.outbox.accept(&m).await.unwrap();
    let url = format!("{}&id={}&status=8", server.dlr_url("kannel"), m.id);
    let (code, body) = post_form(&url, &[]).await;
    assert_eq!((code, body.as_str()), (200, "OK\n"));
    let (code, v) = get_message(&server.admin, &m.id).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(json_statuses(&v), ["accepted", "submitted"], "{v}");
    assert_eq!(v["history"][1]["detail"], "kannel dlr 8", "{v}");
    server.stop().await;
}

#[tokio::test]
async fn a_report_for_an_unknown_message_is_final_for_our_ids_and_retried_for_a_provider_s() {
    let server = Server::start(None).await;
    let (code, body) = post_form(
        &format!("{}&id=never-accepted&status=1", server.dlr_url("kannel")),
        &[],
    )
    .await;
    assert_eq!((code, body.as_str()), (404, "unknown message\n"));
    for (route, status_field) in [("jasmin", "message_status"), ("at", "status")] {
        let (code, body) = post_form(
            &server.dlr_url(route),
            &[("id", "not-recorded-yet"), (status_field, "DELIVRD")],
        )
        .await;
        assert_eq!(
            (code, body.as_str()),
            (503, "unknown message, retry later\n"),
            "{route}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_report_without_its_id_or_status_is_a_400_naming_the_field() {
    let server = Server::start(None).await;
    for (route, pairs, field) in [
        ("kannel", vec![("id", "x")], "status"),
        (
            "jasmin",
            vec![("id", "x"), ("status", "DELIVRD")],
            "message_status",
        ),
        ("at", vec![("status", "Success")], "id"),
    ] {
        let (code, body) = post_form(&server.dlr_url(route), &pairs).await;
        assert_eq!(code, 400, "{route}: {body}");
        assert_eq!(body, format!("missing field `{field}`\n"), "{route}");
    }
    server.stop().await;
}
