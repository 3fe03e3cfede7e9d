//! The `[http]` section: how long the server waits for a client and how many clients it
//! serves at once. Every listener is served with these limits (`server::serve` takes them),
//! so a client that opens connections and sends nothing, or half a request, costs a bounded
//! number of sockets for a bounded time. Each default is a named constant, used by both
//! `Default` and the check.

use std::time::Duration;

use serde::Deserialize;

use super::Problems;

/// `[http] header_read_timeout_ms`: a request head (request line and headers) must arrive
/// whole within this long after its first byte; aggregators send it in one packet.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `[http] body_read_timeout_ms`: a webhook body must arrive whole within this long after
/// its head; a slower one gets a 408 in the dialect's format.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `[http] keep_alive_idle_ms`: a connection with no request under way is closed after
/// this long without a byte (nginx's `keepalive_timeout` is 75 s; clients pool for less).
pub const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(60);
/// `[http] max_connections`: open connections served at once; the next ones wait in the
/// kernel's backlog. Below the usual open-file limit (1024), with room for Redis and
/// senders.
pub const MAX_CONNECTIONS: usize = 512;

/// `[http]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    header_read_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    keep_alive_idle_ms: Option<u64>,
    max_connections: Option<usize>,
}

/// The limits a listener serves its clients under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// The most a request head may take from its first byte; then the connection is closed.
    pub header_read_timeout: Duration,
    /// The most a request body may take after its head; then a 408.
    pub body_read_timeout: Duration,
    /// How long a connection with no request under way is kept open without a byte.
    pub keep_alive_idle: Duration,
    /// How many connections are served at once.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            keep_alive_idle: KEEP_ALIVE_IDLE,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

fn ms(v: Option<u64>, default: Duration) -> Duration {
    v.map_or(default, Duration::from_millis)
}

/// Checks `[http]`: every timeout at least 1 ms, at least one connection.
pub(super) fn check(raw: RawHttp, problems: &mut Problems) -> HttpLimits {
    let limits = HttpLimits {
        header_read_timeout: ms(raw.header_read_timeout_ms, HEADER_READ_TIMEOUT),
        body_read_timeout: ms(raw.body_read_timeout_ms, BODY_READ_TIMEOUT),
        keep_alive_idle: ms(raw.keep_alive_idle_ms, KEEP_ALIVE_IDLE),
        max_connections: raw.max_connections.unwrap_or(MAX_CONNECTIONS),
    };
    for (name, v) in [
        ("header_read_timeout_ms", limits.header_read_timeout),
        ("body_read_timeout_ms", limits.body_read_timeout),
        ("keep_alive_idle_ms", limits.keep_alive_idle),
    ] {
        if v.is_zero() {
            problems.error("http", format!("`{name}` must be at least 1"));
        }
    }
    if limits.max_connections == 0 {
        problems.error("http", "`max_connections` must be at least 1");
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::super::tests::{parse, problems, MINIMAL};
    use super::*;

    #[test]
    fn unset_limits_take_their_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.http, HttpLimits::default());
        assert_eq!(c.http.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.http.body_read_timeout, Duration::from_secs(10));
        assert_eq!(c.http.keep_alive_idle, Duration::from_secs(60));
        assert_eq!(c.http.max_connections, 512);
    }

    #[test]
    fn written_limits_are_read_in_their_units() {
        let c = parse(&format!(
            "{MINIMAL}[http]\nheader_read_timeout_ms = 250\nbody_read_timeout_ms = 300\nkeep_alive_idle_ms = 400\nmax_connections = 3\n"
        ))
        .unwrap();
        assert_eq!(
            c.http,
            HttpLimits {
                header_read_timeout: Duration::from_millis(250),
                body_read_timeout: Duration::from_millis(300),
                keep_alive_idle: Duration::from_millis(400),
                max_connections: 3,
            }
        );
    }

    #[test]
    fn zero_limits_are_all_reported_at_once() {
        let all = problems(&format!(
            "{MINIMAL}[http]\nheader_read_timeout_ms = 0\nbody_read_timeout_ms = 0\nkeep_alive_idle_ms = 0\nmax_connections = 0\n"
        ));
        for name in [
            "header_read_timeout_ms",
            "body_read_timeout_ms",
            "keep_alive_idle_ms",
            "max_connections",
        ] {
            let needle = format!("t.toml:http: error: `{name}` must be at least 1");
            assert!(all.contains(&needle), "{needle} in {all:#?}");
        }
    }
}
