//! Logs for production: the JSON format (`TAMTAM_LOG_FORMAT=json`), the hop's span (tenant,
//! dialect, hashed session id) on every line of a hop in both formats, no raw session id or
//! MSISDN at INFO or above; and `/readyz` details (store, senders' health, configuration
//! version, queue depth).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tamtam::adapters::Dialect;
use tamtam::app::Options;
use tamtam::logs::{LogFormat, SessionHash};
use tamtam::session::{MemoryStore, RedisStore, Store};
use tracing_subscriber::EnvFilter;

use crate::outbox_worker::out;
use crate::support::outbox_fake::{tamtam_bin, wait_last, RefusingPort, TempDir};
use crate::support::Captured;
use crate::support::{root, shipped_config, test_options, Phone, Server};

const SESSION: &str = "ATUid_logs_7f3a9c2e11d04b6";
const MSISDN: &str = "+2250717000042";

/// One hop on moov-ci through Africa's Talking while the session store refuses
/// connections (so the gateway logs an error inside the hop), with the logs of this thread
/// (the test runtime runs the server here too) written in `format` at INFO.
async fn hop_with_logs(format: LogFormat) -> String {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber =
        tamtam::logs::subscriber(format, EnvFilter::new("info"), move || sink.clone(), false);
    let _logs = tracing::subscriber::set_default(subscriber);
    let nobody = RefusingPort::new("");
    let redis = nobody.url.replace("http://", "redis://");
    let store = RedisStore::open(&redis, Duration::from_millis(300)).unwrap();
    let server = Server::start_with(shipped_config(None), Store::Redis(store)).await;
    let mut phone = Phone::new(&server, Dialect::AfricasTalking, "*144#", MSISDN);
    phone.session_id = SESSION.to_string();
    let screen = phone.dial().await;
    assert!(screen.end, "the store is down: {screen:?}");
    server.stop().await;
    captured.text()
}

/// The lines whose message is `message`.
fn lines_with<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["message"] == message).collect()
}

#[tokio::test]
async fn json_logs_tie_every_line_of_a_hop_together_without_the_session_id_or_the_number() {
    let text = hop_with_logs(LogFormat::Json).await;
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let hop = lines_with(&lines, "hop");
    let inner = lines_with(&lines, "session store failed");
    assert_eq!((hop.len(), inner.len()), (1, 1), "{text}");
    let hash = SessionHash(SESSION).to_string();
    for line in [hop[0], inner[0]] {
        let span = &line["span"];
        assert_eq!(span["session"], hash.as_str(), "{line}");
        assert_eq!(span["tenant"], "moov-ci", "{line}");
        assert_eq!(span["dialect"], Dialect::AfricasTalking.name(), "{line}");
        assert_eq!(
            span["msisdn"],
            tamtam::message::mask_msisdn(MSISDN),
            "{line}"
        );
    }
    assert_eq!(hop[0]["level"], "INFO");
    assert_eq!(inner[0]["level"], "ERROR");
    assert_eq!(hop[0]["outcome"], "store_down", "{}", hop[0]);
    assert!(!text.contains(SESSION), "raw session id logged:\n{text}");
    assert!(!text.contains(&MSISDN[1..]), "raw number logged:\n{text}");
}

#[tokio::test]
async fn text_logs_carry_the_hops_span_on_the_per_hop_line_too() {
    let text = hop_with_logs(LogFormat::Text).await;
    let hash = SessionHash(SESSION).to_string();
    for message in ["session store failed", "hop"] {
        let line = text
            .lines()
            .find(|l| l.ends_with(message) || l.contains(&format!(" {message} ")))
            .unwrap_or_else(|| panic!("no `{message}` line:\n{text}"));
        assert!(
            line.contains(&format!("session={hash}")) && line.contains("tenant=moov-ci"),
            "{line}"
        );
    }
    assert!(
        !text.contains(SESSION) && !text.contains(&MSISDN[1..]),
        "{text}"
    );
}

#[test]
fn the_binary_logs_json_lines_when_asked() {
    let dir = TempDir::new("json-logs");
    let mut child = Command::new(tamtam_bin())
        .arg("serve")
        .current_dir(&dir.0)
        .env("TAMTAM_CONFIG", root().join("config/tamtam.toml"))
        .env("TAMTAM_LISTEN", "127.0.0.1:0")
        .env("TAMTAM_ADMIN_LISTEN", "127.0.0.1:0")
        .env_remove("TAMTAM_REDIS_URL")
        .env("RUST_LOG", "info")
        .env("TAMTAM_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the tamtam binary");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    // Bounded: the start-up lines end with "tamtam listening"; a closed pipe ends it too.
    for line in stderr.lines().take(100) {
        let Ok(line) = line else { break };
        let parsed: Result<Value, _> = serde_json::from_str(&line);
        let listening = parsed
            .as_ref()
            .is_ok_and(|v| v["message"] == "tamtam listening");
        seen.push((line, parsed));
        if listening {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    for (line, parsed) in &seen {
        assert!(parsed.is_ok(), "not JSON: {line}");
    }
    let last = seen.last().and_then(|(_, p)| p.as_ref().ok());
    let last = last.unwrap_or_else(|| panic!("no start-up line: {seen:?}"));
    assert_eq!(last["message"], "tamtam listening", "{seen:?}");
    assert_eq!(last["level"], "INFO");
    let version = last["config_version"].as_str().unwrap_or_default();
    assert_eq!(version.len(), tamtam::config::VERSION_LEN, "{last}");
}

#[test]
fn an_unknown_log_format_stops_the_binary_with_a_clear_message() {
    let out = Command::new(tamtam_bin())
        .arg("check")
        .env("TAMTAM_CONFIG", root().join("config/tamtam.toml"))
        .env("TAMTAM_LOG_FORMAT", "logfmt")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TAMTAM_LOG_FORMAT") && stderr.contains("json"),
        "{stderr}"
    );
}

async fn readyz(server: &Server) -> (u16, Value) {
    let r = reqwest::get(format!("{}/readyz", server.admin))
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn readyz_says_degraded_for_a_failing_sender_and_stays_ready() {
    let refusing = RefusingPort::new("/cgi-bin/sendsms");
    let mut config = shipped_config(None);
    let kannel = config.senders.iter_mut().find(|s| s.name == "kannel");
    kannel.expect("the shipped kannel sender").url = refusing.url.clone();
    let options = Options {
        store: Some(Store::Memory(MemoryStore::new())),
        worker: true,
        ..test_options()
    };
    let server = Server::build(config, options).await;
    let (status, before) = readyz(&server).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["senders"], serde_json::json!({}), "nothing sent yet");

    let message = out("kannel", "+2250700000001", "Bonjour");
    server.outbox.accept(&message).await.unwrap();
    // The worker records the sender's health before it schedules the retry.
    wait_last(&server.outbox, &message.id, "retrying").await;
    let (status, body) = readyz(&server).await;
    assert_eq!(
        status, 200,
        "a degraded sender leaves the gateway ready: {body}"
    );
    assert_eq!(body["status"], "ready");
    assert_eq!(body["store_status"], "ok");
    let kannel = &body["senders"]["kannel"];
    assert_eq!(kannel["status"], "degraded", "{body}");
    assert!(kannel["consecutive_failures"].as_u64() >= Some(1), "{body}");
    assert!(
        kannel["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert!(kannel["at_ms"].as_u64() > Some(0), "{body}");
    assert_eq!(body["queue"]["delayed"], 1, "{body}");
    // The public listener's answer (load balancers) leaves out the providers' error texts.
    let public = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(public.status().as_u16(), 200);
    let public: Value = public.json().await.unwrap();
    assert_eq!(
        public["senders"]["kannel"]["status"], "degraded",
        "{public}"
    );
    assert_eq!(
        public["senders"]["kannel"]["last_error"],
        Value::Null,
        "{public}"
    );
    let version = body["config_version"].as_str().unwrap();
    assert_eq!(version, tamtam::config::version_of(&server.config));
    server.stop().await;
}

#[tokio::test]
async fn readyz_is_503_with_the_store_error_when_the_store_is_down() {
    let nobody = RefusingPort::new("");
    let redis = nobody.url.replace("http://", "redis://");
    let store = RedisStore::open(&redis, Duration::from_millis(300)).unwrap();
    let server = Server::start_with(shipped_config(None), Store::Redis(store)).await;
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["store"], "redis");
    assert!(
        body["store_status"].as_str().is_some_and(|e| e != "ok"),
        "{body}"
    );
    assert_eq!(body["tenants"], 3);
    assert_eq!(
        body["config_version"].as_str().map(str::len),
        Some(tamtam::config::VERSION_LEN)
    );
    server.stop().await;
}

#[test]
fn the_configuration_version_changes_with_a_menu_and_not_otherwise() {
    let config = shipped_config(None);
    let shipped = tamtam::config::version_of(&config);
    assert_eq!(shipped, tamtam::config::version_of(&config), "stable");
    let dir = TempDir::new("version");
    let menu = dir.0.join("moov-ci.toml");
    let mut text = std::fs::read_to_string(&config.tenants[0].menu).unwrap();
    let mut changed = config.clone();
    changed.tenants[0].menu = menu.clone();
    std::fs::write(&menu, &text).unwrap();
    assert_eq!(
        tamtam::config::version_of(&changed),
        shipped,
        "same contents"
    );
    text.push_str("\n# a comment\n");
    std::fs::write(&menu, &text).unwrap();
    assert_ne!(tamtam::config::version_of(&changed), shipped);
}
