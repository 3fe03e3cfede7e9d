//! The asynchronous SMS dialects end to end: an incoming SMS (Africa's Talking, Jasmin) is
//! acknowledged at once, its reply goes through the channel's sender to a fake provider,
//! and a retried delivery of the same message is acknowledged without a second send. The
//! bodies a real Jasmin 0.11 posts (coding as a raw byte, UCS-2 and GSM 03.38 content) are
//! understood.

use tamtam::adapters::Dialect;
use tamtam::config::Mount;
use tamtam::outbox::SenderKind;

use crate::outbox_worker::{sender, Worker};
use crate::sms::{send, Via};
use crate::support::outbox_fake::{
    get_message, json_statuses, post_form, wait_message, Answer, FakeProvider, TIMEOUT,
};
use crate::support::Server;

/// The reply the gateway gives `text` to `to` on its synchronous JSON dialect, from
/// another phone of the same tenant: what the asynchronous reply must be.
async fn expected_reply(server: &Server, twin: &str, to: &str, text: &str) -> String {
    let id = format!("twin-{}", tamtam::outbox::new_id());
    let sms = send(server, Via::Json, &id, twin, to, text).await;
    assert_eq!(sms.status, 200);
    sms.text
}

/// Waits (bounded) until the gateway knows our id for the provider's `provider_id`: the
/// in-process worker records the send just after the provider answered, so each recorded
/// send wakes the check.
async fn our_id(server: &Server, sender: &str, provider_id: &str) -> String {
    let queue = &server.outbox.queue;
    // Subscribed before the first check: a send recorded in between still wakes it.
    let mut sends = queue.sends();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(id) = queue
            .resolve_provider_id(sender, provider_id)
            .await
            .unwrap()
        {
            return id;
        }
        tokio::time::timeout_at(deadline, sends.changed())
            .await
            .unwrap_or_else(|_| {
                panic!("the send with provider id {provider_id} was never recorded")
            })
            .expect("the queue outlives the test");
    }
}

/// Nothing waits in the queue: a second send cannot happen any more.
async fn queue_is_empty(server: &Server) {
    let s = server.outbox.queue.stats().await.unwrap();
    assert_eq!(
        (s.ready, s.in_flight, s.delayed, s.dead),
        (0, 0, 0, 0),
        "{s:?}"
    );
}

async fn async_gateway(name: &str) -> (Server, Worker, FakeProvider, FakeProvider) {
    let at = FakeProvider::start(|c| {
        Answer::json(
            201,
            &serde_json::json!({"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: KES 0.8000",
                "Recipients": [{"statusCode": 101, "number": c.field("to"), "status": "Success",
                    "cost": "KES 0.8000", "messageId": format!("ATXid_out{}", c.n)}]}})
            .to_string(),
        )
    })
    .await;
    let jasmin = FakeProvider::start(|c| {
        Answer::text(
            200,
            &format!("Success \"0000000{}-5cfd-4812-90a4-e4d24ffb6e3d\"", c.n),
        )
    })
    .await;
    let mut at_sender = sender(
        "at",
        SenderKind::AfricasTalking,
        &format!("{}/version1/messaging", at.base),
    );
    at_sender.username = Some("sandbox".into());
    at_sender.api_key = Some("at-key".into());
    let mut jasmin_sender = sender(
        "jasmin",
        SenderKind::Jasmin,
        &format!("{}/send", jasmin.base),
    );
    jasmin_sender.username = Some("tamtam".into());
    jasmin_sender.password = Some("secret".into());
    let senders = vec![at_sender, jasmin_sender];

    let url = crate::support::redis_url();
    let mut config = crate::support::shipped_config(Some(url.clone()));
    config.session.key_prefix = crate::support::unique_prefix(name);
    for s in senders.clone() {
        crate::support::replace_sender(&mut config, s);
    }
    crate::support::mount(
        &mut config,
        Mount {
            dialect: Dialect::AtSms,
            path: "/sms/at".into(),
            public_url: None,
            auth_token_env: None,
            auth: Default::default(),
            sender: Some("at".into()),
            hop_timeout: tamtam::config::DEFAULT_HOP_TIMEOUT,
        },
    );
    crate::support::mount(
        &mut config,
        Mount {
            dialect: Dialect::Jasmin,
            path: "/sms/jasmin".into(),
            public_url: None,
            auth_token_env: None,
            auth: Default::default(),
            sender: Some("jasmin".into()),
            hop_timeout: tamtam::config::DEFAULT_HOP_TIMEOUT,
        },
    );
    let store = tamtam::session::Store::Redis(
        tamtam::session::RedisStore::open(&url, config.session.redis_timeout).unwrap(),
    );
    let server = Server::start_with(config, store).await;
    let worker = Worker::start(server.outbox.queue.clone(), senders);
    (server, worker, at, jasmin)
}

#[tokio::test]
async fn africas_talking_incoming_sms_is_answered_through_the_sender_once() {
    let (server, worker, at, jasmin) = async_gateway("outbox-async-at").await;
    let expected = expected_reply(&server, "+2250700000777", "144", "SIM").await;
    assert!(expected.contains("MEMO"), "{expected}");
    let mo = [
        ("from", "+2250700000701"),
        ("to", "144"),
        ("text", "SIM"),
        ("id", "ATXid_mo_1"),
        ("linkId", "SampleLinkId123"),
        ("date", "2026-11-24 03:00:00"),
        ("networkCode", "62303"),
    ];
    let url = format!("{}/sms/at", server.base);
    let (code, body) = post_form(&url, &mo).await;
    assert_eq!((code, body.as_str()), (200, "OK"), "answered at once");

    let req = at.next_request().await;
    assert_eq!(req.path, "/version1/messaging");
    assert_eq!(req.header("apikey"), Some("at-key"));
    assert_eq!(req.field("linkId").as_deref(), Some("SampleLinkId123"));
    assert_eq!(req.field("to").as_deref(), Some("+2250700000701"));
    assert_eq!(req.field("from").as_deref(), Some("144"));
    assert_eq!(req.field("message").as_deref(), Some(expected.as_str()));

    let id = our_id(&server, "at", "ATXid_out1").await;
    let v = wait_message(&server.admin, &id, "sent", |s| {
        s.last().is_some_and(|l| l == "sent")
    })
    .await;
    assert_eq!(json_statuses(&v), ["accepted", "sent"]);

    // Africa's Talking delivers the same message again: acknowledged, not sent again.
    let (code, body) = post_form(&url, &mo).await;
    assert_eq!((code, body.as_str()), (200, "OK"));
    queue_is_empty(&server).await;
    assert_eq!(at.count(), 1, "one send for one incoming message");
    assert_eq!(jasmin.count(), 0);
    let (_, v) = get_message(&server.admin, &id).await;
    assert_eq!(json_statuses(&v), ["accepted", "sent"]);
    worker.stop().await;
}

#[tokio::test]
async fn jasmin_incoming_sms_is_acknowledged_and_answered_through_the_sender_once() {
    let (server, worker, at, jasmin) = async_gateway("outbox-async-jasmin").await;
    let expected = expected_reply(&server, "+2250700000778", "144", "SIM").await;
    let mo = [
        ("id", "5e2f0a51-mo-1"),
        ("from", "2250700000702"),
        ("to", "144"),
        ("origin-connector", "smpp1"),
        ("priority", "1"),
        ("coding", "0"),
        ("validity", ""),
        ("content", "SIM"),
        ("binary", "53494d"),
    ];
    let url = format!("{}/sms/jasmin", server.base);
    let (code, body) = post_form(&url, &mo).await;
    assert_eq!((code, body.as_str()), (200, "ACK/Jasmin"));

    let req = jasmin.next_request().await;
    assert_eq!(req.path, "/send");
    assert_eq!(req.field("to").as_deref(), Some("2250700000702"));
    assert_eq!(req.field("from").as_deref(), Some("144"));
    assert_eq!(req.field("coding").as_deref(), Some("0"));
    assert_eq!(req.field("content").as_deref(), Some(expected.as_str()));
    assert_eq!(req.field("username").as_deref(), Some("tamtam"));

    let id = our_id(&server, "jasmin", "00000001-5cfd-4812-90a4-e4d24ffb6e3d").await;
    wait_message(&server.admin, &id, "sent", |s| {
        s.last().is_some_and(|l| l == "sent")
    })
    .await;

    // Jasmin retries a message it thinks was not acknowledged: ACK again, no second send.
    let (code, body) = post_form(&url, &mo).await;
    assert_eq!((code, body.as_str()), (200, "ACK/Jasmin"));
    queue_is_empty(&server).await;
    assert_eq!(jasmin.count(), 1);
    assert_eq!(at.count(), 0);

    // The Jasmin delivery report for it, through the route Jasmin calls.
    let (code, body) = post_form(
        &server.dlr_url("jasmin"),
        &[
            ("id", "00000001-5cfd-4812-90a4-e4d24ffb6e3d"),
            ("message_status", "DELIVRD"),
            ("level", "2"),
            ("sender", "jasmin"),
        ],
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "ACK/Jasmin"));
    let (_, v) = get_message(&server.admin, &id).await;
    assert_eq!(json_statuses(&v), ["accepted", "sent", "delivered"]);
    worker.stop().await;
}

/// The bodies a real Jasmin 0.11 posts: `coding` as the raw byte (`%08`, `%00`), UCS-2
/// "CONSO", and GSM 03.38 "crédit restant" (`%05` is `é`), a keyword of the same screen.
#[tokio::test]
async fn the_bodies_a_real_jasmin_0_11_posts_get_the_conso_reply() {
    let (server, worker, at, jasmin) = async_gateway("outbox-async-jasmin-011").await;
    let msisdn = "+2250700000001";
    let expected = expected_reply(&server, msisdn, "144", "CONSO").await;
    assert!(
        expected.contains("Consommation du mois en cours"),
        "the CONSO screen: {expected}"
    );
    let url = format!("{}/sms/jasmin", server.base);
    let bodies = [
        "id=6f6a2b5c-8d2e-4d7a-9d27-2b8f0c1e4a11&from=2250700000001&to=144&origin-connector=smppc01&priority=%00&coding=%08&validity=none&content=%00C%00O%00N%00S%00O&binary=0043004f004e0053004f",
        "id=0c9d7e31-5b1a-4f8e-8a0b-77d2f1a3c5e9&from=2250700000001&to=144&origin-connector=smppc01&priority=%00&coding=%00&validity=none&content=cr%05dit+restant&binary=6372056469742072657374616e74",
    ];
    for (n, body) in bodies.iter().enumerate() {
        let resp = crate::support::outbox_fake::client()
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(*body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "body {n}");
        assert_eq!(resp.text().await.unwrap(), "ACK/Jasmin", "body {n}");
        let req = jasmin.next_request().await;
        assert_eq!(
            req.field("to").as_deref(),
            Some("2250700000001"),
            "body {n}"
        );
        assert_eq!(
            req.field("content").as_deref(),
            Some(expected.as_str()),
            "body {n}: the CONSO reply"
        );
    }
    worker.stop().await;
    assert_eq!(jasmin.count(), 2);
    assert_eq!(at.count(), 0);
}

/// When the reply cannot be queued (the queue's Redis is unreachable), the aggregator is
/// not told the message was handled: it gets a 503 and retries.
#[tokio::test]
async fn an_incoming_sms_that_cannot_be_queued_is_refused_with_a_503() {
    // The queue's Redis is a port where nothing listens; sessions are in memory.
    let nobody = crate::support::outbox_fake::RefusingPort::new("");
    let redis_nowhere = nobody.url.replace("http://", "redis://");
    let mut config = crate::support::shipped_config(None);
    crate::support::mount(
        &mut config,
        Mount {
            dialect: Dialect::Jasmin,
            path: "/sms/jasmin".into(),
            public_url: None,
            auth_token_env: None,
            auth: Default::default(),
            sender: Some("jasmin".into()),
            hop_timeout: tamtam::config::DEFAULT_HOP_TIMEOUT,
        },
    );
    crate::support::replace_sender(
        &mut config,
        sender("jasmin", SenderKind::Jasmin, "http://127.0.0.1:9/send"),
    );
    let tenants = crate::support::shipped_tenants(&config);
    let outbox = tamtam::outbox::Outbox {
        queue: tamtam::outbox::Queue::Redis(
            tamtam::outbox::RedisQueue::open(
                &redis_nowhere,
                "nowhere",
                std::time::Duration::from_millis(300),
            )
            .unwrap(),
        ),
        status_ttl: std::time::Duration::from_secs(60),
    };
    let gateway = tamtam::gateway::Gateway::new(
        tenants,
        &config,
        tamtam::session::Store::Memory(tamtam::session::MemoryStore::new()),
    )
    .with_outbox(outbox.clone());
    let server = Server::serve_gateway(config, gateway, outbox).await;
    let mo = [
        ("id", "mo-unqueued-1"),
        ("from", "2250700000703"),
        ("to", "144"),
        ("coding", "0"),
        ("content", "SIM"),
    ];
    let url = format!("{}/sms/jasmin", server.base);
    let (code, body) = post_form(&url, &mo).await;
    assert_eq!(code, 503, "{body}");
    assert_ne!(body, "ACK/Jasmin");
    // Jasmin retries: nothing was recorded, so the retry is served afresh (and refused
    // again while the queue is down) rather than acknowledged with its reply lost.
    let (code, body) = post_form(&url, &mo).await;
    assert_eq!(code, 503, "a retry is not taken for a success: {body}");
}
