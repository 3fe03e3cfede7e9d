//! Who may call a webhook: the checks every inbound request passes before any adapter reads
//! it, kept apart from HTTP (no axum here; `server` hands in the parts it read).
//!
//! A `[[channel]]` combines any of: a shared secret (the `X-Tamtam-Secret` header, or a
//! `secret` query parameter for aggregators that only let you set a URL), HTTP Basic
//! (credentials in the callback URL), a source-address allow-list of CIDRs (the address is
//! the TCP peer, or the `X-Forwarded-For` entry a trusted proxy added), and an HMAC-SHA256
//! over a timestamp and the body for tamtam's own JSON dialects, with a replay window. Every
//! mechanism a channel configures must pass. Twilio's signature is checked by its adapter.
//!
//! Secrets are [`Secret`]s: compared in constant time, never shown by `Debug` or `Display`.
//! A refusal says which mechanism refused and why ([`Refusal`]), never what was sent.
//! [`RefusalLog`] keeps the log to one line per source address per minute.

mod net;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use self::net::{source_address, Cidr};
use crate::secret::constant_time_eq;
pub use crate::secret::Secret;

/// The header carrying a channel's shared secret.
pub const SECRET_HEADER: &str = "x-tamtam-secret";
/// The query parameter carrying a shared secret (a channel's, or the delivery reports').
pub const SECRET_PARAM: &str = "secret";
/// The header carrying the HMAC's timestamp (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-tamtam-timestamp";
/// The header carrying the HMAC (`sha256=` and lowercase hex, or the hex alone).
pub const SIGNATURE_HEADER: &str = "x-tamtam-signature";
/// How far a signed request's timestamp may be from now, either way, in seconds.
pub const DEFAULT_HMAC_WINDOW_SECS: u64 = 300;
/// The most source addresses [`RefusalLog`] remembers.
pub const REFUSAL_LOG_CAP: usize = 1024;
/// How long [`RefusalLog`] stays quiet about one source after logging it, in seconds.
const REFUSAL_LOG_PERIOD_SECS: i64 = 60;

/// The HMAC-SHA256 mechanism: a key and the replay window.
#[derive(Debug, Clone)]
pub struct HmacAuth {
    pub key: Secret,
    pub window_secs: u64,
}

/// How one channel authenticates its callers. Every mechanism set must pass.
#[derive(Debug, Clone, Default)]
pub struct ChannelAuth {
    /// A shared secret, in [`SECRET_HEADER`] or the [`SECRET_PARAM`] query parameter.
    pub secret: Option<Secret>,
    /// HTTP Basic: user name and password.
    pub basic: Option<(String, Secret)>,
    /// Source addresses allowed (empty: any).
    pub allow: Vec<Cidr>,
    /// HMAC-SHA256 over `timestamp.body` (tamtam's JSON dialects).
    pub hmac: Option<HmacAuth>,
    /// The dialect checks a signature of its own (Twilio).
    pub signed_by_dialect: bool,
    /// Said explicitly: this channel takes anyone's requests.
    pub unauthenticated: bool,
}

impl ChannelAuth {
    /// Whether anyone who reaches the listener may call this channel.
    pub fn is_open(&self) -> bool {
        self.mechanisms().is_empty()
    }

    /// The mechanisms in force, for logs and `check` (`secret, allow_ips`).
    pub fn mechanisms(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.secret.is_some() {
            m.push("secret");
        }
        if self.basic.is_some() {
            m.push("basic");
        }
        if !self.allow.is_empty() {
            m.push("allow_ips");
        }
        if self.hmac.is_some() {
            m.push("hmac");
        }
        if self.signed_by_dialect {
            m.push("signature");
        }
        m
    }

    /// Checks `request` against every mechanism set; `source` is the caller's address as
    /// [`source_address`] found it.
    pub fn check(&self, request: &Inbound, source: Option<IpAddr>) -> Result<(), Refusal> {
        if !self.allow.is_empty() {
            match source {
                Some(ip) if self.allow.iter().any(|c| c.contains(ip)) => {}
                Some(_) => return Err(Refusal::Wrong("source address not allowed")),
                None => return Err(Refusal::Wrong("source address unknown")),
            }
        }
        if let Some(secret) = &self.secret {
            check_secret(secret, request)?;
        }
        if let Some((user, password)) = &self.basic {
            check_basic(user, password, request)?;
        }
        if let Some(hmac) = &self.hmac {
            check_hmac(hmac, request)?;
        }
        Ok(())
    }
}

/// What the checks read of a request.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// Header names in lowercase, as HTTP libraries give them.
    pub headers: &'a [(String, String)],
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    /// Unix seconds now.
    pub now: i64,
}

impl Inbound<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter called `name`, percent-decoded (`+` is a space).
    fn param(&self, name: &str) -> Option<Vec<u8>> {
        self.query?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| {
                let v = v.replace('+', " ");
                percent_encoding::percent_decode_str(&v).collect()
            })
        })
    }
}

/// Why a request was refused: which mechanism, in words that never quote what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials where some were needed: a 401.
    Missing(&'static str),
    /// Credentials that do not match, or a source not allowed: a 403.
    Wrong(&'static str),
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Missing(_) => 401,
            Refusal::Wrong(_) => 403,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing(r) | Refusal::Wrong(r) => r,
        }
    }
}

fn check_secret(secret: &Secret, request: &Inbound) -> Result<(), Refusal> {
    let offered = match request.header(SECRET_HEADER) {
        Some(h) => h.as_bytes().to_vec(),
        None => request
            .param(SECRET_PARAM)
            .ok_or(Refusal::Missing("missing shared secret"))?,
    };
    if secret.matches(&offered) {
        Ok(())
    } else {
        Err(Refusal::Wrong("wrong shared secret"))
    }
}

fn check_basic(user: &str, password: &Secret, request: &Inbound) -> Result<(), Refusal> {
    let header = request
        .header("authorization")
        .ok_or(Refusal::Missing("missing Basic credentials"))?;
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))
        .ok_or(Refusal::Missing("missing Basic credentials"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| Refusal::Wrong("unreadable Basic credentials"))?;
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return Err(Refusal::Wrong("unreadable Basic credentials"));
    };
    // Both compared, whatever the first gives, so timing does not tell which was wrong.
    let user_ok = constant_time_eq(user.as_bytes(), &decoded[..colon]);
    let password_ok = password.matches(&decoded[colon + 1..]);
    if user_ok & password_ok {
        Ok(())
    } else {
        Err(Refusal::Wrong("wrong Basic credentials"))
    }
}

fn check_hmac(hmac: &HmacAuth, request: &Inbound) -> Result<(), Refusal> {
    let timestamp = request
        .header(TIMESTAMP_HEADER)
        .ok_or(Refusal::Missing("missing X-Tamtam-Timestamp"))?;
    let signature = request
        .header(SIGNATURE_HEADER)
        .ok_or(Refusal::Missing("missing X-Tamtam-Signature"))?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Refusal::Wrong("X-Tamtam-Timestamp is not Unix seconds"))?;
    if request.now.abs_diff(at) > hmac.window_secs {
        return Err(Refusal::Wrong(
            "X-Tamtam-Timestamp outside the replay window",
        ));
    }
    let hex = signature.trim();
    let hex = hex.strip_prefix("sha256=").unwrap_or(hex);
    let Some(offered) = from_hex(hex) else {
        return Err(Refusal::Wrong("X-Tamtam-Signature is not hex"));
    };
    let mut mac = mac(&hmac.key, timestamp.trim());
    mac.update(request.body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&offered)
        .map_err(|_| Refusal::Wrong("wrong X-Tamtam-Signature"))
}

fn mac(key: &Secret, timestamp: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac
}

/// The signature a caller sends: lowercase hex of HMAC-SHA256(key, `timestamp.body`), as
/// `printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$key"` prints it.
pub fn hmac_signature(key: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = mac(&Secret::new(key), &timestamp.to_string());
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Delivery reports: the secret tamtam puts in the callback URL it gives providers
/// ([`SECRET_PARAM`] in the query). `None` refuses every report.
pub fn check_dlr(secret: Option<&Secret>, request: &Inbound) -> Result<(), Refusal> {
    let Some(secret) = secret else {
        return Err(Refusal::Wrong("no dlr_secret configured"));
    };
    let offered = request
        .param(SECRET_PARAM)
        .ok_or(Refusal::Missing("missing delivery-report secret"))?;
    if secret.matches(&offered) {
        Ok(())
    } else {
        Err(Refusal::Wrong("wrong delivery-report secret"))
    }
}

/// Decides which refusals are logged: one line per source address per minute, in a map of
/// at most `cap` addresses (when it is full of recent ones, unknown sources share one line
/// a minute).
#[derive(Debug)]
pub struct RefusalLog {
    cap: usize,
    inner: Mutex<RefusalLogInner>,
}

#[derive(Debug, Default)]
struct RefusalLogInner {
    last: HashMap<Option<IpAddr>, i64>,
    overflow: Option<i64>,
}

impl RefusalLog {
    pub fn new(cap: usize) -> RefusalLog {
        RefusalLog {
            cap: cap.max(1),
            inner: Mutex::new(RefusalLogInner::default()),
        }
    }

    /// Whether a refusal from `source` at `now` (Unix seconds) is logged.
    pub fn should_log(&self, source: Option<IpAddr>, now: i64) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let recent = |at: i64| now.saturating_sub(at) < REFUSAL_LOG_PERIOD_SECS;
        if let Some(&at) = inner.last.get(&source) {
            if recent(at) {
                return false;
            }
            inner.last.insert(source, now);
            return true;
        }
        if inner.last.len() >= self.cap {
            inner.last.retain(|_, at| recent(*at));
        }
        if inner.last.len() < self.cap {
            inner.last.insert(source, now);
            return true;
        }
        match inner.overflow {
            Some(at) if recent(at) => false,
            _ => {
                inner.overflow = Some(now);
                true
            }
        }
    }

    /// How many sources are remembered (for tests of the cap).
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.last.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
