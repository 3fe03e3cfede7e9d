//! The send loop (`run_worker`) against fake providers on loopback: Jasmin and Africa's
//! Talking wire formats and their delivery reports through the gateway, and the retry
//! policy (5xx retried with backoff, 4xx dead at once, time limits and refused
//! connections retried, then dead-lettered after `max_attempts`), on both queues.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tamtam::outbox::{
    now_ms, run_worker, MemoryQueue, OutMessage, Outbox, Queue, Sender, SenderConfig, SenderKind,
    WorkerSettings,
};
use tamtam::session::{RedisStore, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::outbox_queue::redis_queue;
use crate::support::outbox_fake::{
    get_message, json_statuses, post_form, statuses, wait_last, Answer, FakeProvider, RefusingPort,
    TIMEOUT,
};
use crate::support::{redis_url, shipped_config, unique_prefix, Server};

/// A worker running in a task, stopped through its `watch`.
pub struct Worker {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// Worker settings for tests: short waits and backoffs (10 ms, at most 50 ms).
pub fn test_settings(name: &str) -> WorkerSettings {
    WorkerSettings {
        consumer: format!("{name}-{}-{}", std::process::id(), now_ms()),
        batch: 16,
        wait: Duration::from_millis(50),
        claim_after: Duration::from_secs(60),
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        status_ttl: Duration::from_secs(3600),
        health: Default::default(),
    }
}

impl Worker {
    pub fn start(queue: Queue, senders: Vec<SenderConfig>) -> Worker {
        let senders: HashMap<String, Sender> = senders
            .into_iter()
            .map(|c| (c.name.clone(), Sender::new(c)))
            .collect();
        let (stop, stopped) = watch::channel(false);
        let handle = tokio::spawn(run_worker(
            queue,
            Arc::new(senders),
            test_settings("worker"),
            stopped,
        ));
        Worker { stop, handle }
    }

    /// Stops the worker and waits (bounded) until it has stopped.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(TIMEOUT, self.handle)
            .await
            .expect("the worker stops when told")
            .expect("the worker did not panic");
    }
}

/// A sender of `kind` named `name` calling `url`: no rate limit, 5 attempts, 2 s time limit.
pub fn sender(name: &str, kind: SenderKind, url: &str) -> SenderConfig {
    SenderConfig {
        name: name.to_string(),
        kind,
        url: url.to_string(),
        username: None,
        password: None,
        api_key: None,
        headers: BTreeMap::new(),
        rate_per_sec: 0.0,
        max_attempts: Some(5),
        timeout_ms: Some(2000),
        dlr_url: None,
    }
}

/// A message to `to` through `sender`, with a unique id.
pub fn out(sender: &str, to: &str, text: &str) -> OutMessage {
    OutMessage {
        id: tamtam::outbox::new_id(),
        sender: sender.to_string(),
        tenant: "moov-ci".into(),
        from: "144".into(),
        to: to.to_string(),
        text: text.to_string(),
        link_id: None,
        attempts: 0,
    }
}

/// The shipped gateway on Redis under a fresh prefix, with `senders` configured (for the
/// delivery-report routes' default senders); no worker.
pub async fn gateway_with(senders: Vec<SenderConfig>, name: &str) -> Server {
    let url = redis_url();
    let mut config = shipped_config(Some(url.clone()));
    config.session.key_prefix = unique_prefix(name);
    for s in senders {
        crate::support::replace_sender(&mut config, s);
    }
    let store = Store::Redis(RedisStore::open(&url, config.session.redis_timeout).unwrap());
    Server::start_with(config, store).await
}

/// UTF-16BE bytes as lower-case hex (Jasmin's `hex-content`).
fn utf16be_hex(text: &str) -> String {
    text.encode_utf16()
        .flat_map(u16::to_be_bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

const JASMIN_ID_1: &str = "07033084-5cfd-4812-90a4-e4d24ffb6e3d";
const JASMIN_ID_2: &str = "5e2f0a51-8b1c-4c3e-9f57-1d2a3b4c5d6e";

#[tokio::test]
async fn jasmin_sends_gsm_and_ucs2_and_its_delivery_report_is_acknowledged() {
    let fake = FakeProvider::start(|c| {
        let id = if c.n == 1 { JASMIN_ID_1 } else { JASMIN_ID_2 };
        Answer::text(200, &format!("Success \"{id}\""))
    })
    .await;
    let name = "jasmin-out";
    let mut config = sender(name, SenderKind::Jasmin, &format!("{}/send", fake.base));
    config.username = Some("tamtam".into());
    config.password = Some("jpass".into());
    let server = gateway_with(vec![config.clone()], "outbox-jasmin").await;
    // The gateway's own address for delivery reports, as Jasmin reaches it.
    config.dlr_url = Some(server.dlr_url("jasmin"));
    let worker = Worker::start(server.outbox.queue.clone(), vec![config]);

    let gsm = out(
        name,
        "+2250700000001",
        "Votre code : 1234. Numéro SMSC +22501099099",
    );
    server.outbox.accept(&gsm).await.unwrap();
    let req = fake.next_request().await;
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/send"));
    let f = |k: &str| req.field(k);
    assert_eq!(f("username").as_deref(), Some("tamtam"));
    assert_eq!(f("password").as_deref(), Some("jpass"));
    assert_eq!(
        f("to").as_deref(),
        Some("2250700000001"),
        "Jasmin wants no +"
    );
    assert_eq!(f("from").as_deref(), Some("144"));
    assert_eq!(f("coding").as_deref(), Some("0"));
    assert_eq!(f("content").as_deref(), Some(gsm.text.as_str()));
    assert_eq!(f("hex-content"), None);
    assert_eq!(f("dlr").as_deref(), Some("yes"));
    let dlr_url = f("dlr-url").expect("a dlr-url");
    assert_eq!(
        dlr_url,
        format!("{}&sender={name}", server.dlr_url("jasmin"))
    );
    assert_eq!(f("dlr-method").as_deref(), Some("POST"));

    let history = wait_last(&server.outbox, &gsm.id, "sent").await;
    assert_eq!(statuses(&history), ["accepted", "sent"]);
    assert_eq!(history[1].detail.as_deref(), Some(JASMIN_ID_1));
    assert_eq!(
        server
            .outbox
            .queue
            .resolve_provider_id(name, JASMIN_ID_1)
            .await
            .unwrap()
            .as_deref(),
        Some(gsm.id.as_str()),
        "Jasmin's id is mapped to ours"
    );

    // Jasmin posts its report to the dlr-url it was given.
    let (code, body) = post_form(
        &dlr_url,
        &[
            ("id", JASMIN_ID_1),
            ("message_status", "DELIVRD"),
            ("level", "2"),
            ("connector", "smpp1"),
            ("id_smsc", "2"),
            ("sub", "001"),
            ("dlvrd", "001"),
            ("subdate", "2611240300"),
            ("donedate", "2611240301"),
            ("err", "000"),
            ("text", ""),
        ],
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "ACK/Jasmin"));
    let (code, v) = get_message(&server.admin, &gsm.id).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "delivered", "{v}");
    assert_eq!(json_statuses(&v), ["accepted", "sent", "delivered"]);

    // The form the brief documents: the sender named in the body.
    let (code, body) = post_form(
        &server.dlr_url("jasmin"),
        &[
            ("id", JASMIN_ID_1),
            ("message_status", "DELIVRD"),
            ("level", "2"),
            ("sender", name),
        ],
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "ACK/Jasmin"));
    // A report for a message we do not know (yet: it can beat the worker's record of the
    // send) is not acknowledged, so Jasmin tries it again later.
    let (code, body) = post_form(
        &server.dlr_url("jasmin"),
        &[
            ("id", "unknown"),
            ("message_status", "DELIVRD"),
            ("level", "2"),
        ],
    )
    .await;
    assert_eq!(code, 503, "{body}");
    assert_ne!(body, "ACK/Jasmin");

    // UCS-2: coding 8, the text as hex of its UTF-16BE bytes, no `content`.
    let ucs2 = out(name, "+2250700000002", "Reçu ’ç’ ê");
    server.outbox.accept(&ucs2).await.unwrap();
    let req = fake.next_request().await;
    assert_eq!(req.field("coding").as_deref(), Some("8"));
    assert_eq!(
        req.field("hex-content").as_deref(),
        Some(utf16be_hex("Reçu ’ç’ ê").as_str())
    );
    assert_eq!(req.field("content"), None);
    assert_eq!(req.field("to").as_deref(), Some("2250700000002"));
    let history = wait_last(&server.outbox, &ucs2.id, "sent").await;
    assert_eq!(history[1].detail.as_deref(), Some(JASMIN_ID_2));
    assert_eq!(fake.count(), 2, "one request per message");
    worker.stop().await;
}

#[tokio::test]
async fn africas_talking_sends_with_its_api_key_and_link_id_and_reads_delivery_reports() {
    let fake = FakeProvider::start(|c| {
        let (number, id) = if c.n == 1 {
            ("+254711082300", "ATXid_1")
        } else {
            ("+254711082301", "ATXid_2")
        };
        Answer::json(
            201,
            &serde_json::json!({"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: KES 0.8000",
                "Recipients": [{"statusCode": 101, "number": number, "status": "Success",
                    "cost": "KES 0.8000", "messageId": id}]}})
            .to_string(),
        )
    })
    .await;
    let name = "at-out";
    let mut config = sender(
        name,
        SenderKind::AfricasTalking,
        &format!("{}/version1/messaging", fake.base),
    );
    config.username = Some("sandbox".into());
    config.api_key = Some("at-api-key-123".into());
    let server = gateway_with(vec![config.clone()], "outbox-at").await;
    let worker = Worker::start(server.outbox.queue.clone(), vec![config]);

    let mut premium = out(name, "+254711082300", "Votre consommation : 48 min");
    premium.from = "21525".into();
    premium.link_id = Some("SampleLinkId123".into());
    server.outbox.accept(&premium).await.unwrap();
    let req = fake.next_request().await;
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/version1/messaging")
    );
    assert_eq!(req.header("apikey"), Some("at-api-key-123"));
    assert_eq!(req.header("accept"), Some("application/json"));
    assert_eq!(req.field("username").as_deref(), Some("sandbox"));
    assert_eq!(req.field("to").as_deref(), Some("+254711082300"));
    assert_eq!(req.field("from").as_deref(), Some("21525"));
    assert_eq!(req.field("message").as_deref(), Some(premium.text.as_str()));
    assert_eq!(req.field("linkId").as_deref(), Some("SampleLinkId123"));
    let history = wait_last(&server.outbox, &premium.id, "sent").await;
    assert_eq!(statuses(&history), ["accepted", "sent"]);
    assert_eq!(history[1].detail.as_deref(), Some("ATXid_1"));

    // Without a linkId, none is sent.
    let plain = out(name, "+254711082301", "Bonjour");
    server.outbox.accept(&plain).await.unwrap();
    let req = fake.next_request().await;
    assert_eq!(req.field("linkId"), None, "{:?}", req.form());
    assert_eq!(req.field("to").as_deref(), Some("+254711082301"));
    wait_last(&server.outbox, &plain.id, "sent").await;

    // Africa's Talking's delivery reports name no sender: the gateway's AT sender is used.
    let (code, body) = post_form(
        &server.dlr_url("at"),
        &[
            ("id", "ATXid_1"),
            ("status", "Success"),
            ("phoneNumber", "+254711082300"),
            ("networkCode", "63902"),
            ("retryCount", "0"),
        ],
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "OK"));
    let (_, v) = get_message(&server.admin, &premium.id).await;
    assert_eq!(v["status"], "delivered", "{v}");
    assert_eq!(json_statuses(&v), ["accepted", "sent", "delivered"]);

    let (code, _) = post_form(
        &server.dlr_url("at"),
        &[
            ("id", "ATXid_2"),
            ("status", "Failed"),
            ("failureReason", "UserInBlacklist"),
            ("phoneNumber", "+254711082301"),
            ("networkCode", "63902"),
            ("retryCount", "0"),
        ],
    )
    .await;
    assert_eq!(code, 200);
    let (_, v) = get_message(&server.admin, &plain.id).await;
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["history"][2]["detail"], "Failed: UserInBlacklist", "{v}");
    assert_eq!(fake.count(), 2);
    worker.stop().await;
}

/// Retries, time limits, refusals and dead letters on `queue`.
async fn retry_policy(queue: Queue, tag: &str) {
    let outbox = Outbox {
        queue: queue.clone(),
        status_ttl: Duration::from_secs(3600),
    };
    let ok = |id: &str| Answer::json(200, &format!("{{\"id\":\"p-{id}\"}}"));
    // 500 twice, then 200.
    let flaky = FakeProvider::start(move |c| {
        if c.n <= 2 {
            Answer::text(500, "Internal Server Error")
        } else {
            ok(&c.message_id())
        }
    })
    .await;
    let refuses = FakeProvider::start(|_| Answer::text(400, "Bad Request: invalid number")).await;
    let down = FakeProvider::start(|_| Answer::text(503, "Service Unavailable")).await;
    let silent = FakeProvider::start(|_| Answer::Hold).await;
    let nobody = RefusingPort::new("/send");
    let kannel_nobody = RefusingPort::new("/cgi-bin/sendsms");

    let mut senders = vec![
        sender("flaky", SenderKind::Http, &flaky.base),
        sender("refuses", SenderKind::Http, &refuses.base),
        sender("down", SenderKind::Http, &down.base),
        sender("silent", SenderKind::Http, &silent.base),
        sender("nobody", SenderKind::Http, &nobody.url),
        sender("kannel-nobody", SenderKind::Kannel, &kannel_nobody.url),
    ];
    for s in &mut senders {
        s.max_attempts = Some(3);
    }
    senders[3].max_attempts = Some(2);
    senders[3].timeout_ms = Some(200);
    // Kannel's sendsms takes its password, the number and the text in the URL.
    senders[5].username = Some("tamtam".into());
    senders[5].password = Some("s3cr3t-pass".into());
    senders[5].max_attempts = Some(2);
    let worker = Worker::start(queue.clone(), senders);

    let m_flaky = out("flaky", "+2250700000011", "flaky");
    let m_refuses = out("refuses", "+2250700000012", "refused");
    let m_down = out("down", "+2250700000013", "down");
    let m_silent = out("silent", "+2250700000014", "silent");
    let m_nobody = out("nobody", "+2250700000015", "nobody");
    let m_kannel = out("kannel-nobody", "+2250700000016", "texte confidentiel 4242");
    for m in [
        &m_flaky, &m_refuses, &m_down, &m_silent, &m_nobody, &m_kannel,
    ] {
        outbox.accept(m).await.unwrap();
    }

    let h = wait_last(&outbox, &m_flaky.id, "sent").await;
    assert_eq!(
        statuses(&h),
        ["accepted", "retrying", "retrying", "sent"],
        "{tag}: {h:#?}"
    );
    assert!(
        h[1].detail.as_deref().unwrap_or("").contains("HTTP 500"),
        "{tag}: {h:#?}"
    );
    assert_eq!(
        h[3].detail.as_deref(),
        Some(format!("p-{}", m_flaky.id).as_str())
    );
    assert_eq!(flaky.count(), 3, "{tag}: three attempts");
    assert!(flaky
        .requests()
        .iter()
        .all(|r| r.message_id() == m_flaky.id));

    let h = wait_last(&outbox, &m_refuses.id, "dead").await;
    assert_eq!(statuses(&h), ["accepted", "dead"], "{tag}: {h:#?}");
    assert_eq!(refuses.count(), 1, "{tag}: a 4xx is not retried");
    // Counted by sender and result (the memory and Redis runs share the names: at least).
    let sends = |s: &str, r: &str| tamtam::metrics::METRICS.sends.value(&[s, r]);
    assert!(
        sends("flaky", "retry") >= 2 && sends("flaky", "sent") >= 1,
        "{tag}"
    );
    assert!(sends("refuses", "refused") >= 1, "{tag}");

    let h = wait_last(&outbox, &m_down.id, "dead").await;
    assert_eq!(
        statuses(&h),
        ["accepted", "retrying", "retrying", "dead"],
        "{tag}: {h:#?}"
    );
    assert_eq!(down.count(), 3, "{tag}: max_attempts requests exactly");

    let h = wait_last(&outbox, &m_silent.id, "dead").await;
    assert_eq!(
        statuses(&h),
        ["accepted", "retrying", "dead"],
        "{tag}: {h:#?}"
    );
    assert_eq!(silent.count(), 2, "{tag}: each attempt timed out");
    assert_eq!(silent.answered().len(), 0);

    let h = wait_last(&outbox, &m_nobody.id, "dead").await;
    assert_eq!(
        statuses(&h),
        ["accepted", "retrying", "retrying", "dead"],
        "{tag}: {h:#?}"
    );

    let kannel_history = wait_last(&outbox, &m_kannel.id, "dead").await;
    assert_eq!(
        statuses(&kannel_history),
        ["accepted", "retrying", "dead"],
        "{tag}"
    );

    let letters = queue.dead_letters(100).await.unwrap();
    let reason = |id: &str| {
        letters
            .iter()
            .find(|l| l.message.id == id)
            .unwrap_or_else(|| panic!("{tag}: no dead letter for {id}: {letters:#?}"))
            .clone()
    };
    let r = reason(&m_refuses.id);
    assert_eq!(r.reason, "HTTP 400: Bad Request: invalid number", "{tag}");
    assert_eq!(r.message.attempts, 1, "{tag}: refused at the first attempt");
    let r = reason(&m_down.id);
    assert!(
        r.reason.starts_with("gave up after 3 attempts; HTTP 503"),
        "{tag}: {}",
        r.reason
    );
    assert_eq!(r.message.attempts, 3, "{tag}: every attempt counted");
    let r = reason(&m_silent.id);
    assert!(
        r.reason.starts_with("gave up after 2 attempts;"),
        "{tag}: {}",
        r.reason
    );
    assert!(r.reason.contains("timed out"), "{tag}: {}", r.reason);
    let r = reason(&m_nobody.id);
    assert!(
        r.reason.starts_with("gave up after 3 attempts;"),
        "{tag}: {}",
        r.reason
    );
    assert!(r.reason.contains("cannot connect"), "{tag}: {}", r.reason);
    assert!(r.reason.contains("refused"), "{tag}: {}", r.reason);

    // What a failed Kannel call records and logs names neither the password nor the
    // subscriber nor the text (they travel in sendsms's URL).
    let r = reason(&m_kannel.id);
    let recorded: Vec<&str> = kannel_history
        .iter()
        .filter_map(|e| e.detail.as_deref())
        .chain([r.reason.as_str()])
        .collect();
    for text in &recorded {
        for secret in ["s3cr3t", "2250700000016", "confidentiel", "sendsms?"] {
            assert!(!text.contains(secret), "{tag}: {secret:?} in {text:?}");
        }
    }
    assert!(r.reason.contains("cannot connect"), "{tag}: {}", r.reason);
    assert_eq!(letters.len(), 5, "{tag}: {letters:#?}");

    let s = queue.stats().await.unwrap();
    assert_eq!(
        (s.ready, s.in_flight, s.delayed, s.dead),
        (0, 0, 0, 5),
        "{tag}: {s:?}"
    );
    worker.stop().await;
}

#[tokio::test]
async fn retries_and_dead_letters_on_the_memory_queue() {
    retry_policy(Queue::Memory(MemoryQueue::new()), "memory").await;
}

#[tokio::test]
async fn retries_and_dead_letters_on_the_redis_queue() {
    retry_policy(redis_queue(&unique_prefix("outbox-retries")), "redis").await;
}
