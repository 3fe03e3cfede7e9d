//! How tamtam logs: the format (`TAMTAM_LOG_FORMAT`: `text`, the default, or `json`, one
//! object per line for log collectors) and the hashed session id that ties the lines of a
//! hop together without writing the aggregator's session id.
//!
//! A JSON line looks like this (the event's fields flattened beside `message`; `span`
//! holds the fields of the hop's span, when the line was written inside one):
//!
//! ```text
//! {"timestamp":"2026-11-30T06:14:28.037392Z","level":"INFO","message":"hop",
//!  "service":"*144#","outcome":"continue","end":false,"micros":640,
//!  "target":"tamtam::server","span":{"dialect":"africas_talking",
//!  "msisdn":"+225********01","session":"184db9bcd591","tenant":"moov-ci","name":"ussd"}}
//! ```
//!
//! Why an unkeyed hash of the session id (the first 12 hex digits of its SHA-256): the
//! aggregator's session ids are random tokens, so the hash does not give them back, yet
//! every replica computes the same value without sharing a key, and an operator handed a
//! session id by the aggregator's support finds its lines with `tamtam`-independent tools
//! (`printf %s "$ID" | sha256sum | cut -c1-12`). 48 bits make collisions between the
//! sessions of one day negligible. It is computed only when a line is written (the span
//! formats its fields once), never on a hop whose span is disabled. The MSISDN is never
//! hashed: numbers are few enough that an unkeyed hash of one is as good as the number;
//! it is masked instead (`message::mask_msisdn`).

use std::fmt;

use sha2::{Digest, Sha256};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The environment variable choosing the log format.
pub const LOG_FORMAT_ENV: &str = "TAMTAM_LOG_FORMAT";

/// Hex digits of the session hash.
pub const SESSION_HASH_LEN: usize = 12;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (colour only on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Reads a format's name (`text`, `json`; case and surrounding spaces ignored).
    pub fn parse(name: &str) -> Option<LogFormat> {
        match name.trim().to_ascii_lowercase().as_str() {
            "text" | "" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }

    /// The format `TAMTAM_LOG_FORMAT` names: text when unset, `Err` with the value when it
    /// names none.
    pub fn from_env() -> Result<LogFormat, String> {
        match std::env::var(LOG_FORMAT_ENV) {
            Ok(v) => LogFormat::parse(&v).ok_or(v),
            Err(_) => Ok(LogFormat::Text),
        }
    }
}

/// A subscriber writing `format` to `writer` under `filter`; `ansi` colours text lines.
/// The binary installs it globally; tests install it on their thread with a buffer.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// The session id as logs show it: the first [`SESSION_HASH_LEN`] hex digits of its
/// SHA-256, computed when displayed.
pub struct SessionHash<'a>(pub &'a str);

impl fmt::Display for SessionHash<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = Sha256::digest(self.0.as_bytes());
        for b in &digest[..SESSION_HASH_LEN / 2] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_hash_is_the_start_of_the_sha256_in_hex() {
        // printf %s ATUid_1 | sha256sum
        let expected = format!("{:x}", Sha256::digest(b"ATUid_1"));
        let shown = SessionHash("ATUid_1").to_string();
        assert_eq!(shown, expected[..SESSION_HASH_LEN]);
        assert_ne!(shown, SessionHash("ATUid_2").to_string());
    }

    #[test]
    fn formats_are_text_and_json_and_nothing_else() {
        assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse(" JSON "), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), Some(LogFormat::Text));
        assert_eq!(LogFormat::parse(""), Some(LogFormat::Text));
        assert_eq!(LogFormat::parse("logfmt"), None);
    }
}
