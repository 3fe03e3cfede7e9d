//! The HTTP APIs that send an SMS: Kannel `sendsms`, Jasmin `/send`, Africa's Talking's
//! messaging API, and a generic JSON endpoint. Each call is classified: sent (with the
//! provider's message id when it gives one), retryable (timeout, connection refused, 5xx),
//! or permanent (4xx, a refusal in the body).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::OutMessage;
use crate::text::{self, Encoding};

/// Which API a sender speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    /// Kannel smsbox `cgi-bin/sendsms` (GET). Delivery reports come back on `dlr_url`.
    Kannel,
    /// Jasmin HTTP API `/send` (POST form).
    Jasmin,
    /// Africa's Talking `version1/messaging` (POST form, `apiKey` header).
    AfricasTalking,
    /// Any endpoint taking `{"id","from","to","text","encoding","link_id"}` as JSON.
    Http,
}

/// One call's time limit when a sender sets no `timeout_ms`, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;
/// Attempts before a message is dead-lettered when a sender sets no `max_attempts`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// A `[[sender]]` of the configuration, secrets already resolved.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderConfig {
    /// What channels (`sender = "…"`) and tenants (`sms_sender`) call it by; a queued
    /// message carries it, so every replica must configure the same names.
    pub name: String,
    /// Which API it speaks.
    pub kind: SenderKind,
    /// The API's URL (Kannel: `http://host:13013/cgi-bin/sendsms`).
    pub url: String,
    /// The account name (Kannel, Jasmin, Africa's Talking).
    pub username: Option<String>,
    /// The account's password (Kannel, Jasmin).
    pub password: Option<String>,
    /// Africa's Talking `apiKey`.
    pub api_key: Option<String>,
    /// Extra HTTP headers (generic sender).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Most messages a second this replica sends through this sender (0: no limit).
    #[serde(default)]
    pub rate_per_sec: f64,
    /// Attempts before a message is dead-lettered ([`DEFAULT_MAX_ATTEMPTS`] when unset).
    pub max_attempts: Option<u32>,
    /// One call's time limit, in milliseconds ([`DEFAULT_TIMEOUT_MS`] when unset).
    pub timeout_ms: Option<u64>,
    /// Where the provider sends delivery reports (our `/dlr/...` URL as it can reach us).
    pub dlr_url: Option<String>,
}

impl SenderConfig {
    /// One call's time limit: `timeout_ms`, or [`DEFAULT_TIMEOUT_MS`].
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))
    }
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later: a timeout, a refused connection, a 5xx.
    #[error("temporary failure; {0}")]
    Retryable(String),
    /// Trying again cannot help: a 4xx, a refusal.
    #[error("permanent failure; {0}")]
    Permanent(String),
}

/// A configured sender, ready to call.
#[derive(Debug)]
pub struct Sender {
    pub config: SenderConfig,
    client: reqwest::Client,
    /// The earliest instant the next message may go, for the rate limit.
    next_slot: Mutex<Instant>,
}

impl Sender {
    pub fn new(config: SenderConfig) -> Sender {
        let client = reqwest::Client::builder()
            .timeout(config.timeout())
            .build()
            .expect("an HTTP client with a timeout always builds");
        Sender {
            config,
            client,
            next_slot: Mutex::new(Instant::now()),
        }
    }

    /// Attempts before dead-lettering.
    pub fn max_attempts(&self) -> u32 {
        self.config
            .max_attempts
            .unwrap_or(DEFAULT_MAX_ATTEMPTS)
            .max(1)
    }

    /// Waits for this sender's next free slot under its rate limit.
    pub async fn pace(&self) {
        if self.config.rate_per_sec <= 0.0 {
            return;
        }
        let gap = Duration::from_secs_f64(1.0 / self.config.rate_per_sec);
        let slot = {
            let mut next = self.next_slot.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + gap;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Sends one message. `Ok` carries the provider's message id when it gives one.
    pub async fn send(&self, m: &OutMessage) -> Result<Option<String>, SendError> {
        match self.config.kind {
            SenderKind::Kannel => self.kannel(m).await,
            SenderKind::Jasmin => self.jasmin(m).await,
            SenderKind::AfricasTalking => self.africas_talking(m).await,
            SenderKind::Http => self.http(m).await,
        }
    }

    async fn kannel(&self, m: &OutMessage) -> Result<Option<String>, SendError> {
        let c = &self.config;
        let ucs2 = text::measure(&m.text).encoding == Encoding::Ucs2;
        let mut query: Vec<(&str, String)> = vec![
            ("username", c.username.clone().unwrap_or_default()),
            ("password", c.password.clone().unwrap_or_default()),
            ("from", m.from.clone()),
            ("to", m.to.clone()),
            ("text", m.text.clone()),
            ("charset", "UTF-8".into()),
            ("coding", if ucs2 { "2" } else { "0" }.into()),
        ];
        if let Some(dlr) = &c.dlr_url {
            // Kannel substitutes %d with the report's type; our id rides along.
            let sep = if dlr.contains('?') { '&' } else { '?' };
            query.push(("dlr-mask", "31".into()));
            query.push(("dlr-url", format!("{dlr}{sep}id={}&status=%d", m.id)));
        }
        // 202 "0: Accepted for delivery" or "3: Queued for later delivery".
        call(self.client.get(&c.url).query(&query)).await?;
        Ok(None)
    }

    async fn jasmin(&self, m: &OutMessage) -> Result<Option<String>, SendError> {
        let c = &self.config;
        let ucs2 = text::measure(&m.text).encoding == Encoding::Ucs2;
        let mut form: Vec<(&str, String)> = vec![
            ("username", c.username.clone().unwrap_or_default()),
            ("password", c.password.clone().unwrap_or_default()),
            ("to", m.to.trim_start_matches('+').to_string()),
            ("from", m.from.clone()),
        ];
        if ucs2 {
            // UCS-2 (data coding 8) travels as hex of the UTF-16BE bytes.
            let hex: String = m
                .text
                .encode_utf16()
                .flat_map(u16::to_be_bytes)
                .map(|b| format!("{b:02x}"))
                .collect();
            form.push(("coding", "8".into()));
            form.push(("hex-content", hex));
        } else {
            form.push(("coding", "0".into()));
            form.push(("content", m.text.clone()));
        }
        if let Some(dlr) = &c.dlr_url {
            // The sender's name rides along, so the report finds its message.
            let sep = if dlr.contains('?') { '&' } else { '?' };
            form.push(("dlr", "yes".into()));
            form.push(("dlr-url", format!("{dlr}{sep}sender={}", c.name)));
            form.push(("dlr-level", "3".into()));
            form.push(("dlr-method", "POST".into()));
        }
        let body = call(self.client.post(&c.url).form(&form)).await?;
        // `Success "07033084-5cfd-4812-90a4-e4d24ffb6e3d"`
        let id = body
            .trim()
            .strip_prefix("Success")
            .map(|rest| rest.trim().trim_matches('"').to_string())
            .filter(|id| !id.is_empty());
        match id {
            Some(id) => Ok(Some(id)),
            None => Err(SendError::Permanent(format!(
                "unexpected Jasmin answer: {}",
                clip(&body)
            ))),
        }
    }

    async fn africas_talking(&self, m: &OutMessage) -> Result<Option<String>, SendError> {
        let c = &self.config;
        let mut form: Vec<(&str, String)> = vec![
            ("username", c.username.clone().unwrap_or_default()),
            ("to", m.to.clone()),
            ("message", m.text.clone()),
            ("from", m.from.clone()),
        ];
        if let Some(link) = &m.link_id {
            form.push(("linkId", link.clone()));
        }
        let body = call(
            self.client
                .post(&c.url)
                .header("apiKey", c.api_key.clone().unwrap_or_default())
                .header("Accept", "application/json")
                .form(&form),
        )
        .await?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|_| SendError::Permanent(format!("not JSON: {}", clip(&body))))?;
        let r = &v["SMSMessageData"]["Recipients"][0];
        let code = r["statusCode"].as_u64().unwrap_or(0);
        match code {
            // Processed, Sent, Queued.
            100..=102 => Ok(r["messageId"].as_str().map(str::to_string)),
            // Internal server error, gateway error: the provider may succeed later.
            500 | 501 => Err(SendError::Retryable(format!(
                "Africa's Talking status {code} {}",
                r["status"].as_str().unwrap_or("")
            ))),
            _ => Err(SendError::Permanent(format!(
                "Africa's Talking status {code} {}",
                r["status"]
                    .as_str()
                    .unwrap_or(v["SMSMessageData"]["Message"].as_str().unwrap_or(""))
            ))),
        }
    }

    async fn http(&self, m: &OutMessage) -> Result<Option<String>, SendError> {
        let c = &self.config;
        let body = serde_json::json!({
            "id": m.id,
            "from": m.from,
            "to": m.to,
            "text": m.text,
            "encoding": text::measure(&m.text).encoding.as_str(),
            "link_id": m.link_id,
        });
        let mut req = self
            .client
            .post(&c.url)
            .header("content-type", "application/json");
        for (k, v) in &c.headers {
            req = req.header(k, v);
        }
        let text = call(req.body(body.to_string())).await?;
        Ok(serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_string)))
    }
}

/// Sends a prepared request and classifies the answer; returns the body of a 2xx.
async fn call(req: reqwest::RequestBuilder) -> Result<String, SendError> {
    let resp = req.send().await.map_err(transport)?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    classify(status, &body)?;
    Ok(body)
}

/// A provider's answer cut short for a failure reason, with anything that looks like a
/// phone number masked: reasons reach logs, dead letters and `GET /messages/{id}`.
fn clip(s: &str) -> String {
    let short: String = s.chars().take(200).collect();
    crate::message::mask_numbers(&short)
}

fn transport(e: reqwest::Error) -> SendError {
    // Timeouts, refused connections, resets: all worth another try. The URL is left out: a
    // Kannel `sendsms` URL carries the password, the number and the text, and this reason
    // goes to logs, dead letters and `GET /messages/{id}`. reqwest's own words do not say
    // which failure it was: say it, with the causes.
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    };
    let e = e.without_url();
    let mut why = format!("{what}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        why.push_str(&format!(": {s}"));
        source = s.source();
    }
    SendError::Retryable(why)
}

/// 2xx is sent; 5xx (and 429) retry; other statuses are permanent.
fn classify(status: u16, body: &str) -> Result<(), SendError> {
    match status {
        200..=299 => Ok(()),
        429 | 500..=599 => Err(SendError::Retryable(format!(
            "HTTP {status}: {}",
            clip(body)
        ))),
        _ => Err(SendError::Permanent(format!(
            "HTTP {status}: {}",
            clip(body)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_mask_numbers() {
        let r = clip(r#"{"error":"UserInBlacklist","number":"+254711082300"}"#);
        assert!(!r.contains("254711082300"), "{r}");
        assert!(r.contains("+254*******00"), "{r}");
        assert_eq!(clip("HTTP 503 busy"), "HTTP 503 busy");
    }

    #[test]
    fn statuses_are_classified() {
        assert!(classify(202, "0: Accepted for delivery").is_ok());
        assert!(matches!(
            classify(503, "Temporal failure"),
            Err(SendError::Retryable(_))
        ));
        assert!(matches!(classify(429, ""), Err(SendError::Retryable(_))));
        assert!(matches!(
            classify(403, "Authorization failed"),
            Err(SendError::Permanent(_))
        ));
        assert!(matches!(
            classify(412, "No route found"),
            Err(SendError::Permanent(_))
        ));
    }

    fn config() -> SenderConfig {
        SenderConfig {
            name: "s".into(),
            kind: SenderKind::Http,
            url: "http://127.0.0.1:1/".into(),
            username: None,
            password: None,
            api_key: None,
            headers: BTreeMap::new(),
            rate_per_sec: 0.0,
            max_attempts: None,
            timeout_ms: None,
            dlr_url: None,
        }
    }

    #[test]
    fn unset_limits_take_the_defaults_and_set_ones_are_kept() {
        let unset = Sender::new(config());
        assert_eq!(unset.config.timeout(), Duration::from_millis(5000));
        assert_eq!(unset.max_attempts(), 5);
        let set = Sender::new(SenderConfig {
            timeout_ms: Some(1200),
            max_attempts: Some(0),
            ..config()
        });
        assert_eq!(set.config.timeout(), Duration::from_millis(1200));
        // Zero attempts would never send: one at least.
        assert_eq!(set.max_attempts(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_spaces_messages() {
        let s = Sender::new(SenderConfig {
            rate_per_sec: 4.0,
            ..config()
        });
        let start = Instant::now();
        for _ in 0..5 {
            s.pace().await;
        }
        // Five messages at 4 a second: the fifth goes 1 s after the first.
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
    }
}
