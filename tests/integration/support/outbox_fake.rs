//! Support for the outbound-queue tests: a scriptable fake provider (an HTTP server on
//! loopback that records every request and answers as the test says, or never), bounded
//! waits on a message's status history, and the real `tamtam` binary as a child process
//! with a configuration written to a temp dir.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tamtam::outbox::{Outbox, StatusEvent};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::support::root;

/// How long any single wait of these tests may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// How often a status history is read again while waiting for a change (no event exists
/// for it outside the process that writes it).
const POLL: Duration = Duration::from_millis(20);

/// One request the fake provider received.
#[derive(Debug, Clone)]
pub struct Captured {
    /// 1 for the first request this fake received, 2 for the next…
    pub n: usize,
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Captured {
    /// The body read as a form.
    pub fn form(&self) -> Vec<(String, String)> {
        tamtam::adapters::form_fields(&self.body)
            .unwrap_or_else(|e| panic!("the request body is not a form ({e}): {self:?}"))
    }

    /// A form field of the body.
    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body read as JSON (the generic `http` sender).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the request body is not JSON ({e}): {self:?}"))
    }

    /// Our message id in a generic `http` sender's request.
    pub fn message_id(&self) -> String {
        self.json()["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {self:?}"))
            .to_string()
    }
}

/// What the fake provider does with a request.
pub enum Answer {
    /// Answers with this status, body and content type.
    Reply(u16, String, &'static str),
    /// Never answers: the handler waits forever (the client times out or goes away).
    Hold,
}

impl Answer {
    pub fn text(status: u16, body: &str) -> Answer {
        Answer::Reply(status, body.to_string(), "text/plain")
    }
    pub fn json(status: u16, body: &str) -> Answer {
        Answer::Reply(status, body.to_string(), "application/json")
    }
}

type Script = dyn Fn(&Captured) -> Answer + Send + Sync;

struct FakeState {
    script: Box<Script>,
    /// Every request, in the order received.
    received: Mutex<Vec<Captured>>,
    /// Requests answered, with the status given.
    answered: Mutex<Vec<(Captured, u16)>>,
    events: mpsc::UnboundedSender<Captured>,
}

/// A provider's HTTP API on 127.0.0.1, answering as the script says.
pub struct FakeProvider {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    state: Arc<FakeState>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Captured>>,
    task: JoinHandle<()>,
}

impl FakeProvider {
    /// Starts a fake whose answers come from `script`, called once per request.
    pub async fn start(script: impl Fn(&Captured) -> Answer + Send + Sync + 'static) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(FakeState {
            script: Box::new(script),
            received: Mutex::new(Vec::new()),
            answered: Mutex::new(Vec::new()),
            events: tx,
        });
        let shared = Arc::clone(&state);
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = Arc::clone(&shared);
                async move { handle(state, method, uri, headers, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeProvider {
            base,
            state,
            events: tokio::sync::Mutex::new(rx),
            task,
        }
    }

    /// The next request received (in arrival order), waiting at most [`TIMEOUT`].
    pub async fn next_request(&self) -> Captured {
        let mut rx = self.events.lock().await;
        match tokio::time::timeout(TIMEOUT, rx.recv()).await {
            Ok(Some(c)) => c,
            Ok(None) => panic!("the fake provider stopped"),
            Err(_) => panic!(
                "the fake provider at {} got no request within {TIMEOUT:?} (got {} so far)",
                self.base,
                self.count()
            ),
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }

    /// Every request answered so far, with its status.
    pub fn answered(&self) -> Vec<(Captured, u16)> {
        self.state.answered.lock().unwrap().clone()
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    state: Arc<FakeState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let captured = {
        let mut received = state.received.lock().unwrap();
        let c = Captured {
            n: received.len() + 1,
            method: method.as_str().to_string(),
            path: uri.path().to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        };
        received.push(c.clone());
        c
    };
    let answer = (state.script)(&captured);
    let _ = state.events.send(captured.clone());
    match answer {
        Answer::Hold => {
            // Never answers: the sender's time limit or its death ends the exchange.
            std::future::pending::<()>().await;
            unreachable!()
        }
        Answer::Reply(status, body, content_type) => {
            state.answered.lock().unwrap().push((captured, status));
            (
                StatusCode::from_u16(status).unwrap(),
                [(axum::http::header::CONTENT_TYPE, content_type)],
                body,
            )
                .into_response()
        }
    }
}

/// A loopback address where nothing listens: the port is bound (so no one else takes it
/// while the guard lives) but not listening, so a connection is refused at once.
pub struct RefusingPort {
    _socket: tokio::net::TcpSocket,
    pub url: String,
}

impl RefusingPort {
    pub fn new(path: &str) -> RefusingPort {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        RefusingPort {
            _socket: socket,
            url: format!("http://{addr}{path}"),
        }
    }
}

/// The statuses of a history, oldest first.
pub fn statuses(history: &[StatusEvent]) -> Vec<String> {
    history.iter().map(|e| e.status.clone()).collect()
}

/// Waits (bounded) until message `id`'s history satisfies `done`; returns it.
pub async fn wait_history(
    outbox: &Outbox,
    id: &str,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<StatusEvent> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let history = outbox.status(id).await.expect("status history");
        if done(&statuses(&history)) {
            return history;
        }
        if Instant::now() >= deadline {
            panic!("message {id}: waited {TIMEOUT:?} for {what}; history: {history:#?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the last status of message `id` is `status`.
pub async fn wait_last(outbox: &Outbox, id: &str, status: &str) -> Vec<StatusEvent> {
    wait_history(outbox, id, &format!("last status {status}"), |s| {
        s.last().is_some_and(|l| l == status)
    })
    .await
}

/// `GET {base}/messages/{id}`: the status code and the JSON body.
pub async fn get_message(base: &str, id: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{base}/messages/{id}"))
        .send()
        .await
        .expect("the gateway answers");
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let v = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET /messages/{id} is not JSON ({e}): {body}"));
    (status, v)
}

/// The statuses in a `GET /messages/{id}` answer.
pub fn json_statuses(v: &Value) -> Vec<String> {
    v["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|e| e["status"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (bounded) until `GET /messages/{id}` on `base` satisfies `done`; returns the body.
pub async fn wait_message(
    base: &str,
    id: &str,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (code, v) = get_message(base, id).await;
        if code == 200 && done(&json_statuses(&v)) {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("message {id}: waited {TIMEOUT:?} for {what}; last answer {code} {v:#}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// An HTTP client whose every call is bounded by [`TIMEOUT`].
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(TIMEOUT).build().unwrap()
}

/// Percent-encodes a form value.
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A form body from pairs.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// POSTs a form; returns the status and the body.
pub async fn post_form(url: &str, pairs: &[(&str, &str)]) -> (u16, String) {
    let resp = client()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

// ---------------------------------------------------------------------------------------
// The real binary

/// A folder under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tamtam-outbox-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Replaces the value of the first line starting with `key =` after the line `[section]`.
fn set_in_section(text: &str, section: &str, key: &str, value: &str) -> String {
    let mut in_section = false;
    let mut done = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_section = t == format!("[{section}]");
        }
        if in_section && !done && t.starts_with(&format!("{key} =")) {
            out.push(format!("{key} = {value}"));
            done = true;
        } else {
            out.push(line.to_string());
        }
    }
    assert!(
        done,
        "config/tamtam.toml has no `{key} =` line in [{section}]: update the outbox tests"
    );
    out.join("\n") + "\n"
}

/// The shipped `config/tamtam.toml`, with absolute paths, `key_prefix = prefix`,
/// `claim_after_secs`, 50 ms backoffs, and `extra` appended (senders, channels).
pub fn child_config(dir: &Path, prefix: &str, claim_after_secs: u64, extra: &str) -> PathBuf {
    let shipped = std::fs::read_to_string(root().join("config/tamtam.toml")).unwrap();
    // Relative paths in the shipped file resolve against config/: make them absolute.
    let absolute = shipped.replace("\"../", &format!("\"{}/", root().display()));
    let mut text = set_in_section(&absolute, "session", "key_prefix", &format!("{prefix:?}"));
    text = set_in_section(
        &text,
        "outbox",
        "claim_after_secs",
        &claim_after_secs.to_string(),
    );
    text = set_in_section(&text, "outbox", "base_backoff_ms", "50");
    text = set_in_section(&text, "outbox", "max_backoff_ms", "200");
    text.push('\n');
    text.push_str(extra);
    let path = dir.join("tamtam.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A `tamtam` process: `serve` with a config file, on a loopback port of its own.
pub struct GatewayProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The admin listener (`/messages/{id}`), `http://127.0.0.1:PORT`.
    pub admin: String,
    tail: Arc<Mutex<VecDeque<String>>>,
}

/// The `tamtam` binary cargo built for these tests.
pub fn tamtam_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tamtam")
}

impl GatewayProcess {
    /// Starts `tamtam serve` with `config` on Redis `redis`, and waits (bounded) until it
    /// logs that it listens.
    pub async fn start(config: &Path, redis: &str) -> GatewayProcess {
        let mut child = Command::new(tamtam_bin())
            .arg("serve")
            .env("TAMTAM_CONFIG", config)
            .env("TAMTAM_LISTEN", "127.0.0.1:0")
            .env("TAMTAM_ADMIN_LISTEN", "127.0.0.1:0")
            .env("TAMTAM_REDIS_URL", redis)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the tamtam binary");
        let stderr = child.stderr.take().unwrap();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (addr_tx, mut addr_rx) = watch::channel(None::<Result<String, ()>>);
        let thread_tail = Arc::clone(&tail);
        std::thread::spawn(move || {
            let re =
                regex::Regex::new(r"address=(127\.0\.0\.1:\d+) admin=(127\.0\.0\.1:\d+)").unwrap();
            let ansi = regex::Regex::new(r"\x1b\[[0-9;]*m").unwrap();
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let clean = ansi.replace_all(line.trim_end(), "").into_owned();
                if clean.contains("tamtam listening") {
                    if let Some(c) = re.captures(&clean) {
                        let _ = addr_tx.send(Some(Ok(format!("{} {}", &c[1], &c[2]))));
                    }
                }
                let mut t = thread_tail.lock().unwrap();
                if t.len() == 60 {
                    t.pop_front();
                }
                t.push_back(clean);
            }
            // The process closed stderr: it exited.
            addr_tx.send_if_modified(|v| {
                if v.is_none() {
                    *v = Some(Err(()));
                    true
                } else {
                    false
                }
            });
        });
        let got = tokio::time::timeout(TIMEOUT, addr_rx.wait_for(|v| v.is_some()))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|v| v.clone()));
        let mut process = GatewayProcess {
            child,
            base: String::new(),
            admin: String::new(),
            tail,
        };
        match got {
            Some(Ok(addrs)) => {
                let (public, admin) = addrs.split_once(' ').unwrap_or((&addrs, ""));
                process.base = format!("http://{public}");
                process.admin = format!("http://{admin}");
            }
            Some(Err(())) => process.fail("tamtam exited before listening"),
            None => process.fail(&format!("tamtam did not listen within {TIMEOUT:?}")),
        }
        process
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, by pid, and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Fails the test with `why` and the process's last log lines.
    pub fn fail(&mut self, why: &str) -> ! {
        self.kill();
        let tail: Vec<String> = self.tail.lock().unwrap().iter().cloned().collect();
        panic!(
            "tamtam process {}: {why}\n--- its last log lines\n{}",
            self.child.id(),
            tail.join("\n")
        )
    }

    /// The last log lines, for messages.
    pub fn log_tail(&self) -> String {
        self.tail
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `[[sender]]` of kind `http` named `name` posting to `url`, as TOML.
pub fn http_sender_toml(name: &str, url: &str, timeout_ms: u64) -> String {
    format!(
        "\n[[sender]]\nname = {name:?}\nkind = \"http\"\nurl = {url:?}\nmax_attempts = 5\ntimeout_ms = {timeout_ms}\n"
    )
}

/// A Jasmin MO channel on `/test/jasmin` (the demo `/sms/jasmin` stays as shipped)
/// replying through `sender`, as TOML.
pub fn jasmin_channel_toml(sender: &str) -> String {
    format!("\n[[channel]]\ndialect = \"jasmin\"\npath = \"/test/jasmin\"\nsender = {sender:?}\n")
}

/// A Jasmin MO (`id`, `from`, `to`, `content`, `coding=0`) posted to `{base}/test/jasmin`.
pub async fn jasmin_mo(base: &str, id: &str, from: &str, to: &str, content: &str) -> (u16, String) {
    post_form(
        &format!("{base}/test/jasmin"),
        &[
            ("id", id),
            ("from", from),
            ("to", to),
            ("origin-connector", "smpp1"),
            ("priority", "1"),
            ("coding", "0"),
            ("validity", ""),
            ("content", content),
        ],
    )
    .await
}
