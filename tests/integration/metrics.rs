//! `GET /metrics` on the admin listener: a scripted session shows in the per-screen funnel
//! (views, END, left, invalid answers), in hops by outcome and in lookups; the text passes
//! `promtool check metrics`; and a real Prometheus, started on loopback with its own
//! configuration, scrapes the test gateway and answers a per-screen query through its
//! HTTP API.
//!
//! `promtool` and `prometheus` (Debian package `prometheus`) come from `PROMTOOL` and
//! `TAMTAM_TEST_PROMETHEUS` (set by `scripts/test.sh`), else `PATH`; the tests fail, never
//! skip, when they are missing. The registry is process-wide and other tests run at the
//! same time, so the checks compare counts before and after (they only grow).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::Server;

/// The value of the series `series` (`name{labels}` exactly as rendered), 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().expect("a number"))
}

async fn scrape(server: &Server) -> String {
    let response = reqwest::get(format!("{}/metrics", server.admin))
        .await
        .expect("the admin listener answers");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// One hop in tamtam's JSON dialect on `*144#` (moov-ci); the reply's `action`.
async fn hop(server: &Server, body: Value) -> String {
    let reply: Value = reqwest::Client::new()
        .post(format!("{}/ussd/json", server.base))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["action"].as_str().expect("an action").to_string()
}

/// A session left on `sim` after an invalid answer (released by the network), and a
/// direct dial that ends on `conso` after a lookup. `n` makes the session ids unique.
async fn scripted_session(server: &Server, n: &str) {
    let msisdn = "+2250700000042";
    let a = format!("metrics-a-{n}");
    let start = json!({"session_id": a, "msisdn": msisdn, "service_code": "*144#"});
    assert_eq!(hop(server, start).await, "continue");
    let one =
        json!({"session_id": a, "msisdn": msisdn, "service_code": "*144#", "input": "1", "seq": 2});
    assert_eq!(hop(server, one).await, "continue");
    let wrong =
        json!({"session_id": a, "msisdn": msisdn, "service_code": "*144#", "input": "9", "seq": 3});
    assert_eq!(hop(server, wrong).await, "continue");
    let end = json!({"session_id": a, "msisdn": msisdn, "service_code": "*144#", "type": "end", "seq": 4});
    assert_eq!(hop(server, end).await, "end");
    let b = format!("metrics-b-{n}");
    let dial = json!({"session_id": b, "msisdn": msisdn, "service_code": "*144*7#"});
    assert_eq!(hop(server, dial).await, "end");
}

#[tokio::test]
async fn a_scripted_session_shows_in_each_screens_funnel_and_promtool_accepts_the_text() {
    let server = Server::start(None).await;
    let before = scrape(&server).await;
    scripted_session(&server, "funnel").await;
    let nobody =
        json!({"session_id": "metrics-c", "msisdn": "+2250700000042", "service_code": "*999#"});
    assert_eq!(hop(&server, nobody).await, "end");
    let after = scrape(&server).await;
    let grew = |series: &str, by: f64| {
        let (b, a) = (value(&before, series), value(&after, series));
        assert!(a >= b + by, "{series}: {b} then {a}\n{after}");
    };
    grew(
        r#"tamtam_screen_views_total{tenant="moov-ci",screen="accueil"}"#,
        1.0,
    );
    // Shown after "1", and again with the error line after "9".
    grew(
        r#"tamtam_screen_views_total{tenant="moov-ci",screen="sim"}"#,
        2.0,
    );
    grew(
        r#"tamtam_screen_invalid_answers_total{tenant="moov-ci",screen="sim"}"#,
        1.0,
    );
    grew(
        r#"tamtam_screen_left_total{tenant="moov-ci",screen="sim"}"#,
        1.0,
    );
    grew(
        r#"tamtam_screen_ends_total{tenant="moov-ci",screen="conso"}"#,
        1.0,
    );
    grew(
        r#"tamtam_hops_total{channel="ussd",dialect="json",tenant="moov-ci",outcome="continue"}"#,
        3.0,
    );
    grew(
        r#"tamtam_hops_total{channel="ussd",dialect="json",tenant="moov-ci",outcome="released"}"#,
        1.0,
    );
    grew(
        r#"tamtam_hops_total{channel="ussd",dialect="json",tenant="moov-ci",outcome="end"}"#,
        1.0,
    );
    grew(
        r#"tamtam_lookups_total{tenant="moov-ci",source="conso",outcome="found"}"#,
        1.0,
    );
    grew(
        r#"tamtam_hop_duration_seconds_count{channel="ussd",dialect="json"}"#,
        5.0,
    );
    grew(
        r#"tamtam_lookup_duration_seconds_count{tenant="moov-ci",source="conso"}"#,
        1.0,
    );
    // Every screen is listed, reached or not; sampled values are there.
    assert!(
        after.contains(r#"tamtam_screen_views_total{tenant="opt-nc","#),
        "{after}"
    );
    assert!(after.contains("tamtam_memory_store_capacity{pool=\"conversations\"} "));
    assert!(after.contains("tamtam_limit_refusals_total{reason=\"subscriber_rate\"} "));
    assert!(after.contains("tamtam_outbox_messages{state=\"ready\"} "));
    assert!(after.contains("tamtam_config_info{version=\""), "{after}");

    let checked = promtool_check(&after);
    assert!(
        checked.status.success(),
        "promtool check metrics: {checked:?}\n{after}"
    );
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_gateway_and_answers_a_per_screen_query() {
    let server = Server::start(None).await;
    scripted_session(&server, "prometheus").await;
    let prometheus = Prometheus::start(server.admin.trim_start_matches("http://"));
    let query = r#"tamtam_screen_left_total{tenant="moov-ci",screen="sim"}"#;
    let client = reqwest::Client::new();
    // Waiting on an outside process: it scrapes every second; bounded.
    let mut found = None;
    for _ in 0..300 {
        let answer = client
            .get(format!("{}/api/v1/query", prometheus.url))
            .query(&[("query", query)])
            .send()
            .await;
        if let Ok(answer) = answer {
            let body: Value = answer.json().await.unwrap_or_default();
            if let Some(sample) = body["data"]["result"].get(0) {
                found = Some(sample.clone());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sample = found.unwrap_or_else(|| panic!("Prometheus never returned {query}"));
    assert_eq!(sample["metric"]["screen"], "sim");
    let v: f64 = sample["value"][1].as_str().unwrap().parse().unwrap();
    assert!(v >= 1.0, "{sample}");
    // The funnel of the tenant as Prometheus reads it (for the record, in the output).
    for metric in ["views", "ends", "left", "invalid_answers"] {
        let q = format!("sum by (screen) (tamtam_screen_{metric}_total{{tenant=\"moov-ci\"}}) > 0");
        let body: Value = client
            .get(format!("{}/api/v1/query", prometheus.url))
            .query(&[("query", q.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        eprintln!("{q}: {}", body["data"]["result"]);
    }
}

/// A binary named by `var`, else found on `PATH`; missing is a failure, not a skip.
fn binary(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("{name} not found ({var} unset, not on PATH): install Debian's `prometheus` package, or run scripts/test.sh")
        })
}

fn promtool_check(text: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(binary("PROMTOOL", "promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A Prometheus server on a free loopback port, with its own configuration and storage in
/// a temporary directory, scraping `target` every second; killed (by its pid) when dropped.
struct Prometheus {
    url: String,
    child: Child,
    dir: PathBuf,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tamtam-prometheus-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: tamtam\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary("TAMTAM_TEST_PROMETHEUS", "prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn on_redis_store_calls_sms_parts_delivery_reports_and_refusals_are_counted() {
    let prefix = crate::support::unique_prefix("metrics");
    let url = crate::support::redis_url();
    let server = Server::start(Some((url.as_str(), prefix.as_str()))).await;
    let before = scrape(&server).await;
    scripted_session(&server, "redis").await;
    let sms: Value = reqwest::Client::new()
        .post(format!("{}/sms/json", server.base))
        .json(&json!({"id": format!("{prefix}-m1"), "from": "+2250700000042", "to": "144", "text": "SIM"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let encoding = sms["encoding"].as_str().expect("an encoding").to_string();
    let refused = reqwest::get(format!("{}/dlr/kannel?id=x&status=1", server.base))
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let unknown = reqwest::get(format!(
        "{}&id={prefix}-nope&status=1",
        server.dlr_url("kannel")
    ))
    .await
    .unwrap();
    assert_eq!(unknown.status(), 404);
    let after = scrape(&server).await;
    let grew = |series: &str, by: f64| {
        let (b, a) = (value(&before, series), value(&after, series));
        assert!(a >= b + by, "{series}: {b} then {a}\n{after}");
    };
    grew(
        r#"tamtam_session_store_duration_seconds_count{operation="get"}"#,
        5.0,
    );
    grew(
        r#"tamtam_session_store_duration_seconds_count{operation="commit"}"#,
        3.0,
    );
    grew(
        r#"tamtam_session_store_duration_seconds_count{operation="write"}"#,
        1.0,
    );
    grew(
        r#"tamtam_hop_duration_seconds_count{channel="sms",dialect="sms_json"}"#,
        1.0,
    );
    grew(
        &format!("tamtam_sms_parts_total{{encoding=\"{encoding}\"}}"),
        1.0,
    );
    grew(
        r#"tamtam_auth_refusals_total{reason="missing delivery-report secret"}"#,
        1.0,
    );
    // The Redis store has no in-memory pools to report.
    assert!(!after.contains("tamtam_memory_store_entries"), "{after}");
}
