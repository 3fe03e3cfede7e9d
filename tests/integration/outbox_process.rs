//! The real `tamtam` binary on a real Redis: a gateway killed (SIGKILL) in the middle of a
//! send leaves its messages to the next process, which sends each exactly once more; two
//! processes share one queue without sending anything twice; `tamtam outbox` shows what
//! waits and what was given up on; `tamtam outbox requeue <id>` sends a dead letter again,
//! once, and `purge` forgets one.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tamtam::outbox::{event, now_ms};
use tokio::time::Instant;

use crate::outbox_queue::{message, redis_queue};
use crate::support::outbox_fake::{
    child_config, http_sender_toml, jasmin_channel_toml, jasmin_mo, json_statuses, statuses,
    tamtam_bin, wait_message, Answer, FakeProvider, GatewayProcess, TempDir, TIMEOUT,
};
use crate::support::{redis_url, unique_prefix};

const TTL: Duration = Duration::from_secs(3600);

/// The fake answers 200 with `{"id": "p-<our id>"}`.
fn ok(c: &crate::support::outbox_fake::Captured) -> Answer {
    Answer::json(
        200,
        &serde_json::json!({"id": format!("p-{}", c.message_id())}).to_string(),
    )
}

/// How many of `answered` were a 200 for message `id`.
fn answered_ok(fake: &FakeProvider, id: &str) -> usize {
    fake.answered()
        .iter()
        .filter(|(c, status)| *status == 200 && c.message_id() == id)
        .count()
}

#[tokio::test]
async fn a_gateway_killed_mid_send_leaves_its_messages_to_the_next_which_sends_each_once() {
    let redis = redis_url();
    let prefix = unique_prefix("outbox-crash");
    // Phase 1: the provider takes every request and never answers.
    let answer = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&answer);
    let fake = FakeProvider::start(move |c| {
        if flag.load(Ordering::SeqCst) {
            ok(c)
        } else {
            Answer::Hold
        }
    })
    .await;
    let dir = TempDir::new("crash");
    let extra = http_sender_toml("fake", &format!("{}/send", fake.base), 60_000)
        + &jasmin_channel_toml("fake");
    let config = child_config(&dir.0, &prefix, 1, &extra);
    let queue = redis_queue(&prefix);

    let mut first = GatewayProcess::start(&config, &redis).await;
    // A: accepted, claimed, and handed to the provider, which holds it.
    let (code, body) = jasmin_mo(&first.base, "crash-mo-a", "2250700000801", "144", "SIM").await;
    assert_eq!((code, body.as_str()), (200, "ACK/Jasmin"));
    let held = fake.next_request().await;
    let id_a = held.message_id();
    assert_eq!(held.json()["to"], "+2250700000801");
    assert!(
        held.json()["text"].as_str().unwrap_or("").contains("MEMO"),
        "{:?}",
        held.json()
    );
    // B: accepted while the only worker waits on A, so never claimed by this process.
    let (code, body) = jasmin_mo(&first.base, "crash-mo-b", "2250700000802", "144", "SIM").await;
    assert_eq!((code, body.as_str()), (200, "ACK/Jasmin"));
    let s = queue.stats().await.unwrap();
    assert_eq!(
        (s.ready, s.in_flight, s.delayed, s.dead),
        (1, 1, 0, 0),
        "A in flight, B waiting: {s:?}"
    );
    let pid = first.pid();
    first.kill();
    assert_eq!(fake.count(), 1, "process {pid} sent only A");

    // Phase 2: another process on the same Redis and prefix; the provider now answers.
    answer.store(true, Ordering::SeqCst);
    let second = GatewayProcess::start(&config, &redis).await;
    // B at once (never read), A once `claim_after_secs` (1 s) has passed.
    let mut resent: Vec<String> = Vec::new();
    for _ in 0..2 {
        resent.push(fake.next_request().await.message_id());
    }
    assert!(resent.contains(&id_a), "A sent again: {resent:?}");
    let id_b = resent
        .iter()
        .find(|id| **id != id_a)
        .unwrap_or_else(|| panic!("B never sent: {resent:?}"))
        .clone();
    for id in [&id_a, &id_b] {
        let v = wait_message(&second.admin, id, "sent", |s| s.iter().any(|x| x == "sent")).await;
        assert_eq!(
            json_statuses(&v),
            ["accepted", "sent"],
            "exactly one sent: {v}\n{}",
            second.log_tail()
        );
        assert_eq!(v["history"][1]["detail"], format!("p-{id}"), "{v}");
        assert_eq!(answered_ok(&fake, id), 1, "{id}: one answered send");
    }
    let for_b = fake
        .requests()
        .iter()
        .filter(|c| c.message_id() == id_b)
        .count();
    assert_eq!(for_b, 1, "B was sent by the second process only");
    assert_eq!(fake.count(), 3, "A twice (held, then answered), B once");
    // Nothing left anywhere: no further send can happen.
    let s = queue.stats().await.unwrap();
    assert_eq!(
        (s.ready, s.in_flight, s.delayed, s.dead),
        (0, 0, 0, 0),
        "{s:?}"
    );
}

#[tokio::test]
async fn two_gateway_processes_share_one_queue_without_duplicates() {
    let redis = redis_url();
    let prefix = unique_prefix("outbox-share");
    let fake = FakeProvider::start(ok).await;
    let dir = TempDir::new("share");
    let extra = http_sender_toml("fake", &format!("{}/send", fake.base), 5_000)
        + &jasmin_channel_toml("fake");
    // No take-over here: only the consumer group shares the work.
    let config = child_config(&dir.0, &prefix, 60, &extra);
    let one = GatewayProcess::start(&config, &redis).await;
    let two = GatewayProcess::start(&config, &redis).await;
    const N: usize = 40;
    for n in 0..N {
        let base = if n % 2 == 0 { &one.base } else { &two.base };
        let (code, body) = jasmin_mo(
            base,
            &format!("share-{n}"),
            &format!("22507000010{n:02}"),
            "144",
            "SIM",
        )
        .await;
        assert_eq!((code, body.as_str()), (200, "ACK/Jasmin"), "MO {n}");
    }
    for _ in 0..N {
        fake.next_request().await;
    }
    // Wait until both processes have recorded every send (the queue drains).
    let queue = redis_queue(&prefix);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let s = queue.stats().await.unwrap();
        if (s.ready, s.in_flight, s.delayed, s.dead) == (0, 0, 0, 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the queue never drained: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ids: Vec<String> = fake.requests().iter().map(|c| c.message_id()).collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), N, "{N} sends in total");
    assert_eq!(distinct.len(), N, "each message once");
    for id in &ids {
        let (_, v) = crate::support::outbox_fake::get_message(&one.admin, id).await;
        assert_eq!(json_statuses(&v), ["accepted", "sent"], "{v}");
    }
}

/// Runs the binary with `args` and `env` (and without `remove`), bounded in time.
async fn run_tamtam(
    args: &[&str],
    env: &[(&str, &str)],
    remove: &[&str],
) -> (bool, String, String) {
    let mut cmd = Command::new(tamtam_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in remove {
        cmd.env_remove(k);
    }
    let child = cmd.spawn().expect("starting the tamtam binary");
    let pid = child.id();
    match tokio::time::timeout(
        TIMEOUT,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    {
        Ok(done) => {
            let out = done.unwrap().unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
        Err(_) => {
            // Ours, by pid.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("tamtam {args:?} (pid {pid}) did not finish within {TIMEOUT:?}");
        }
    }
}

#[tokio::test]
async fn the_outbox_command_lists_counts_and_dead_letters() {
    let redis = redis_url();
    let prefix = unique_prefix("outbox-cli");
    let queue = redis_queue(&prefix);
    let stamp = now_ms();
    let push = |m: tamtam::outbox::OutMessage| {
        let q = queue.clone();
        async move {
            q.push(&m, &event("accepted", None), TTL).await.unwrap();
            let mut d = q
                .claim("cli-test", 1, Duration::from_millis(50), TTL)
                .await
                .unwrap();
            assert_eq!(d.len(), 1);
            d.remove(0)
        }
    };
    // One waiting for a retry, one dead, one in flight, one ready.
    let delayed = push(message(&format!("cli-delayed-{stamp}"), "kannel")).await;
    queue
        .retry_at(
            &delayed,
            now_ms() + 3_600_000,
            &event("retrying", None),
            TTL,
        )
        .await
        .unwrap();
    let mut dead = push(message(&format!("cli-dead-{stamp}"), "kannel")).await;
    dead.message.attempts = 5;
    let reason = "gave up after 5 attempts; HTTP 503: Service Unavailable";
    queue
        .dead(&dead, reason, &event("dead", Some(reason.into())), TTL)
        .await
        .unwrap();
    let _in_flight = push(message(&format!("cli-flight-{stamp}"), "kannel")).await;
    let ready = message(&format!("cli-ready-{stamp}"), "kannel");
    queue
        .push(&ready, &event("accepted", None), TTL)
        .await
        .unwrap();

    let dir = TempDir::new("cli");
    let config = child_config(&dir.0, &prefix, 60, "");
    let config = config.to_str().unwrap();
    let (ok, stdout, stderr) = run_tamtam(
        &["outbox"],
        &[("TAMTAM_CONFIG", config), ("TAMTAM_REDIS_URL", &redis)],
        &[],
    )
    .await;
    assert!(ok, "tamtam outbox failed: {stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("ready 1  in flight 1  waiting for a retry 1  dead 1"),
        "{stdout}"
    );
    let masked = tamtam::message::mask_msisdn(&dead.message.to);
    assert!(!masked.contains("0700000001"), "{masked}");
    let expected_start = format!(
        "dead {} sender=kannel tenant=moov-ci to={masked} attempts=5 at=",
        dead.message.id
    );
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[1].starts_with(&expected_start) && lines[1].ends_with(&format!(": {reason}")),
        "{stdout}"
    );
    // The time as RFC 3339, in UTC.
    let at = lines[1][expected_start.len()..]
        .split_once("Z: ")
        .map(|(t, _)| format!("{t}Z"))
        .unwrap_or_default();
    let parsed: jiff::Timestamp = at
        .parse()
        .unwrap_or_else(|e| panic!("{at:?} is not RFC 3339 ({e}): {stdout}"));
    assert!(
        parsed.as_millisecond() >= i64::try_from(stamp).unwrap(),
        "{at} is when it died"
    );
    assert!(!stdout.contains("+2250700000001"), "numbers are masked");

    // The in-memory queue cannot be inspected from outside: said, and a failure.
    let (ok, stdout, stderr) = run_tamtam(
        &["outbox"],
        &[("TAMTAM_CONFIG", config)],
        &["TAMTAM_REDIS_URL"],
    )
    .await;
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("no Redis configured"), "{stderr}");
}

#[tokio::test]
async fn a_dead_letter_requeued_with_the_command_is_sent_again_exactly_once() {
    let redis = redis_url();
    let prefix = unique_prefix("outbox-requeue-cli");
    // The provider refuses (a 4xx: dead-lettered at once) until told otherwise.
    let accept = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&accept);
    let fake = FakeProvider::start(move |c| {
        if flag.load(Ordering::SeqCst) {
            ok(c)
        } else {
            Answer::json(400, r#"{"error": "no route"}"#)
        }
    })
    .await;
    let dir = TempDir::new("requeue");
    let extra = http_sender_toml("fake", &format!("{}/send", fake.base), 5_000)
        + &jasmin_channel_toml("fake");
    let config = child_config(&dir.0, &prefix, 60, &extra);
    let mut gateway = GatewayProcess::start(&config, &redis).await;
    let (code, body) = jasmin_mo(&gateway.base, "requeue-mo", "2250700000901", "144", "SIM").await;
    assert_eq!((code, body.as_str()), (200, "ACK/Jasmin"));
    let id = fake.next_request().await.message_id();
    let v = wait_message(&gateway.admin, &id, "dead", |s| {
        s.iter().any(|x| x == "dead")
    })
    .await;
    assert_eq!(json_statuses(&v), ["accepted", "dead"], "{v}");
    let queue = redis_queue(&prefix);
    assert_eq!(queue.stats().await.unwrap().dead, 1);

    accept.store(true, Ordering::SeqCst);
    let config_path = config.to_str().unwrap();
    let env = [
        ("TAMTAM_CONFIG", config_path),
        ("TAMTAM_REDIS_URL", redis.as_str()),
    ];
    let (ok_, stdout, stderr) = run_tamtam(&["outbox", "requeue", &id], &env, &[]).await;
    assert!(ok_, "tamtam outbox requeue failed: {stdout}\n{stderr}");
    assert_eq!(
        stdout,
        format!("requeued {id}\n1 dead letter(s) requeued\n"),
        "{stderr}"
    );

    let resent = fake.next_request().await;
    assert_eq!(resent.message_id(), id, "the same message, by its id");
    let v = wait_message(&gateway.admin, &id, "sent", |s| {
        s.iter().any(|x| x == "sent")
    })
    .await;
    assert_eq!(
        json_statuses(&v),
        ["accepted", "dead", "requeued", "sent"],
        "the history is kept: {v}\n{}",
        gateway.log_tail()
    );
    assert_eq!(v["status"], "sent", "{v}");
    // Sent once: nothing is left anywhere that could be sent again.
    let s = queue.stats().await.unwrap();
    assert_eq!(
        (s.ready, s.in_flight, s.delayed, s.dead),
        (0, 0, 0, 0),
        "{s:?}"
    );
    assert_eq!(answered_ok(&fake, &id), 1, "one answered send");
    assert_eq!(fake.count(), 2, "refused once, then sent once");

    // Nothing left to requeue: said, and a failure.
    let (ok_, stdout, stderr) = run_tamtam(&["outbox", "requeue", &id], &env, &[]).await;
    assert!(!ok_, "{stdout}");
    assert!(stderr.contains(&format!("no dead letter {id}")), "{stderr}");
    // `purge --all --sender` forgets only that sender's (no worker runs any more).
    gateway.kill();
    let other = message(&format!("purge-{}", now_ms()), "kannel");
    queue
        .push(&other, &event("accepted", None), TTL)
        .await
        .unwrap();
    let mut d = queue
        .claim("purge-test", 1, Duration::from_millis(50), TTL)
        .await
        .unwrap();
    let d = d.remove(0);
    assert_eq!(d.message.id, other.id);
    queue
        .dead(&d, "HTTP 400", &event("dead", None), TTL)
        .await
        .unwrap();
    let (ok_, stdout, _) =
        run_tamtam(&["outbox", "purge", "--all", "--sender", "fake"], &env, &[]).await;
    assert!(ok_, "{stdout}");
    assert_eq!(stdout, "0 dead letter(s) purged\n");
    let (ok_, stdout, _) = run_tamtam(
        &["outbox", "purge", "--all", "--sender", "kannel"],
        &env,
        &[],
    )
    .await;
    assert!(ok_, "{stdout}");
    assert_eq!(
        stdout,
        format!("purged {}\n1 dead letter(s) purged\n", other.id)
    );
    assert_eq!(queue.stats().await.unwrap().dead, 0);
    assert_eq!(
        statuses(&queue.history(&other.id).await.unwrap()),
        ["accepted", "dead", "purged"]
    );
}
