//! Delivery reports over real HTTP, the three routes side by side: each acknowledges as its
//! provider expects, says which field is missing, and answers a report for a message it
//! does not know by whether that message can still become known.
//!
//! - `/dlr/kannel` names tamtam's own id, recorded when the message is accepted (before
//!   it is sent): an unknown one never becomes known, so the answer is a final 404.
//! - `/dlr/jasmin` and `/dlr/at` name the provider's id, recorded once the provider has
//!   answered the send: a report can beat that record, so the answer is a 503 and the
//!   provider tries again.
//!
//! And they are kept sane: a status outside the provider's vocabulary is stored as
//! `unknown` (never the word sent), a detail is cleaned of control characters and cut, a
//! flood of reports leaves at most the history's cap, and a `HEAD` is not a report.

use crate::outbox_worker::out;
use tamtam::outbox::{event, DEFAULT_DETAIL_MAX_CHARS, DEFAULT_HISTORY_MAX_ENTRIES};

use crate::support::outbox_fake::{client, get_message, json_statuses, post_form};
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

/// Accepts a message for `sender` and records it as sent with the provider id `pid`, as
/// the worker would (the test gateway runs none).
async fn sent_with_provider_id(server: &Server, sender: &str, pid: &str) -> String {
    let m = out(sender, "+2250700000001", "Bonjour");
    server.outbox.accept(&m).await.unwrap();
    let queue = &server.outbox.queue;
    let mut d = queue
        .claim(
            "dlr-test",
            10,
            std::time::Duration::from_millis(50),
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap();
    assert_eq!(d.len(), 1);
    queue
        .sent(
            &d.remove(0),
            Some(pid),
            &event("sent", None),
            server.outbox.status_ttl,
        )
        .await
        .unwrap();
    m.id
}

#[tokio::test]
async fn a_word_outside_the_provider_s_vocabulary_is_stored_as_unknown_with_its_detail_cut() {
    let server = Server::start(None).await;
    let admin = &server.admin;
    let id = sent_with_provider_id(&server, "jasmin", "j-hacked").await;
    // What an attacker posted: a made-up status and a 60 KB detail with markup and escapes.
    let err = format!(
        "<script>alert(1)</script>\r\n\u{1b}[2J{}",
        "A".repeat(60_000)
    );
    let (code, body) = post_form(
        &server.dlr_url("jasmin"),
        &[
            ("id", "j-hacked"),
            ("message_status", "hacked"),
            ("err", &err),
            ("sender", "jasmin"),
        ],
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "ACK/Jasmin"));
    let (code, v) = get_message(admin, &id).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(json_statuses(&v), ["accepted", "sent", "unknown"], "{v}");
    assert_eq!(v["status"], "unknown", "{v}");
    let detail = v["history"][2]["detail"].as_str().unwrap();
    assert!(
        detail.chars().count() <= DEFAULT_DETAIL_MAX_CHARS,
        "{} chars",
        detail.chars().count()
    );
    assert!(detail.starts_with("hacked: <script>"), "{detail}");
    assert!(!detail.chars().any(char::is_control), "{detail:?}");
    assert!(
        !v.to_string().contains("\"hacked\""),
        "never the raw word: {v}"
    );

    // Kannel's numeric codes: anything else is unknown, and not repeated.
    let own = out("kannel", "+2250700000001", "Bonjour");
    server.outbox.accept(&own).await.unwrap();
    let (code, _) = post_form(
        &format!("{}&id={}&status=hacked", server.dlr_url("kannel"), own.id),
        &[],
    )
    .await;
    assert_eq!(code, 200);
    let (_, v) = get_message(admin, &own.id).await;
    assert_eq!(json_statuses(&v), ["accepted", "unknown"], "{v}");
    assert_eq!(v["history"][1]["detail"], "kannel dlr (not a code)", "{v}");
    server.stop().await;
}

#[tokio::test]
async fn two_hundred_reports_leave_at_most_the_cap_of_entries() {
    let server = Server::start(None).await;
    let admin = &server.admin;
    let id = sent_with_provider_id(&server, "africas_talking", "ATXid_flood").await;
    let reason = "x".repeat(2_000);
    for n in 0..200 {
        let status = if n % 2 == 0 { "Buffered" } else { "Success" };
        let (code, body) = post_form(
            &server.dlr_url("at"),
            &[
                ("id", "ATXid_flood"),
                ("status", status),
                ("failureReason", &reason),
                ("sender", "africas_talking"),
            ],
        )
        .await;
        assert_eq!(code, 200, "report {n}: {body}");
    }
    let (_, v) = get_message(admin, &id).await;
    let history = v["history"].as_array().unwrap();
    assert_eq!(history.len(), DEFAULT_HISTORY_MAX_ENTRIES, "{v}");
    assert!(
        v.to_string().len() < DEFAULT_HISTORY_MAX_ENTRIES * (DEFAULT_DETAIL_MAX_CHARS + 100),
        "the whole answer is bounded: {} bytes",
        v.to_string().len()
    );
    assert_eq!(v["status"], "delivered", "{v}");
    server.stop().await;
}

#[tokio::test]
async fn a_head_request_is_not_a_report() {
    let server = Server::start(None).await;
    let admin = &server.admin;
    let id = sent_with_provider_id(&server, "jasmin", "j-head").await;
    let m = out("kannel", "+2250700000001", "Bonjour");
    server.outbox.accept(&m).await.unwrap();
    for url in [
        format!("{}&id={}&status=1", server.dlr_url("kannel"), m.id),
        format!(
            "{}&id=j-head&message_status=DELIVRD&sender=jasmin",
            server.dlr_url("jasmin")
        ),
        format!(
            "{}&id=j-head&status=Success&sender=jasmin",
            server.dlr_url("at")
        ),
    ] {
        let resp = client().head(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 405, "{url}");
    }
    let (_, v) = get_message(admin, &m.id).await;
    assert_eq!(json_statuses(&v), ["accepted"], "{v}");
    let (_, v) = get_message(admin, &id).await;
    assert_eq!(json_statuses(&v), ["accepted", "sent"], "{v}");
    // The same report as a GET is one.
    let (code, _) = {
        let resp = client()
            .get(format!("{}&id={}&status=1", server.dlr_url("kannel"), m.id))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), ())
    };
    assert_eq!(code, 200);
    let (_, v) = get_message(admin, &m.id).await;
    assert_eq!(json_statuses(&v), ["accepted", "delivered"], "{v}");
    server.stop().await;
}
