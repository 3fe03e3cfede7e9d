//! Prometheus metrics: every metric's name and help text, defined once, the recording
//! functions the gateway, server, data sources, session store and outbox call, and the
//! text exposition format `GET /metrics` (admin listener) serves.
//!
//! Why not a crate: the exposition format is a few lines of text, the metrics here are
//! counters and histograms with a handful of label sets, and the hot path wants no
//! allocation per increment. A series is found by the hash of its label values under a
//! read lock (no allocation once it exists; the first increment of a label set allocates
//! it). Counts live in atomics. Labels are bounded: tenant, dialect, channel, outcome,
//! screen id, source, sender, status, reason, encoding, result, operation, each taken
//! from configuration or from a closed vocabulary (`as_str()` of an enum), never from
//! what a caller sent.
//!
//! The registry is process-wide: every gateway in a process (the tests run several) adds
//! to the same series. Values sampled when scraped (queue depth, store sizes, breaker
//! state, limiter refusals) are passed to [`render`] by the caller. The list with each
//! metric's meaning, and funnel queries: the README's "Metrics" section.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, RwLock};
use std::time::Duration;

/// Latency buckets, in seconds: a hop must answer within seconds, a store call within
/// milliseconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A label value for a hop whose tenant is not known (an unknown service code).
pub const NO_TENANT: &str = "none";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Histogram,
}

/// One series: a counter's value, or a histogram's buckets, count and sum.
struct Series {
    labels: Box<[Box<str>]>,
    count: AtomicU64,
    /// Cumulative counts are computed when rendering; these are per bucket.
    buckets: [AtomicU64; BUCKETS.len()],
    sum_nanos: AtomicU64,
}

/// A metric and its series, one per label set.
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    hasher: RandomState,
    series: RwLock<HashMap<u64, Vec<Series>>>,
}

impl Family {
    fn new_with(
        kind: Kind,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        hasher: RandomState,
    ) -> Family {
        Family {
            name,
            help,
            kind,
            labels,
            hasher,
            series: RwLock::new(HashMap::new()),
        }
    }

    fn counter(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Family::new_with(Kind::Counter, name, help, labels, RandomState::new())
    }

    fn histogram(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Family::new_with(Kind::Histogram, name, help, labels, RandomState::new())
    }

    /// Runs `f` on the series of `values` (one per label, in order), creating it at 0.
    fn with(&self, values: &[&str], f: impl Fn(&Series)) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let hash = self.hasher.hash_one(values);
        let same = |s: &Series| s.labels.iter().map(|l| &**l).eq(values.iter().copied());
        {
            let map = self.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = map.get(&hash).and_then(|v| v.iter().find(|s| same(s))) {
                return f(s);
            }
        }
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        let bucket = map.entry(hash).or_default();
        if let Some(s) = bucket.iter().find(|s| same(s)) {
            return f(s);
        }
        let series = Series {
            labels: values.iter().map(|v| Box::<str>::from(*v)).collect(),
            count: AtomicU64::new(0),
            buckets: Default::default(),
            sum_nanos: AtomicU64::new(0),
        };
        f(&series);
        bucket.push(series);
    }

    /// Adds `n` to a counter.
    pub fn add(&self, values: &[&str], n: u64) {
        self.with(values, |s| {
            s.count.fetch_add(n, Ordering::Relaxed);
        });
    }

    /// Adds one to a counter.
    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1)
    }

    /// Makes the series exist (at 0), so a funnel shows screens nobody reached yet.
    pub fn touch(&self, values: &[&str]) {
        self.add(values, 0)
    }

    /// Records one duration in a histogram.
    pub fn observe(&self, values: &[&str], took: Duration) {
        let secs = took.as_secs_f64();
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.with(values, |s| {
            s.count.fetch_add(1, Ordering::Relaxed);
            s.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
            if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
                s.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// The value of a counter's series (0 when absent), for tests.
    pub fn value(&self, values: &[&str]) -> u64 {
        let map = self.series.read().unwrap_or_else(|e| e.into_inner());
        let hash = self.hasher.hash_one(values);
        map.get(&hash)
            .and_then(|v| {
                v.iter()
                    .find(|s| s.labels.iter().map(|l| &**l).eq(values.iter().copied()))
            })
            .map_or(0, |s| s.count.load(Ordering::Relaxed))
    }

    fn render(&self, out: &mut String) {
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, kind);
        let map = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<&Series> = map.values().flatten().collect();
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        for s in all {
            let labels = label_text(self.labels, &s.labels);
            match self.kind {
                Kind::Counter => {
                    let _ = writeln!(
                        out,
                        "{}{{{}}} {}",
                        self.name,
                        labels,
                        s.count.load(Ordering::Relaxed)
                    );
                }
                Kind::Histogram => {
                    let mut cumulative = 0;
                    let sep = if labels.is_empty() { "" } else { "," };
                    for (i, b) in BUCKETS.iter().enumerate() {
                        cumulative += s.buckets[i].load(Ordering::Relaxed);
                        let _ = writeln!(
                            out,
                            "{}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}",
                            self.name
                        );
                    }
                    let count = s.count.load(Ordering::Relaxed);
                    let sum = s.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
                    let _ = writeln!(
                        out,
                        "{}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}",
                        self.name
                    );
                    let _ = writeln!(out, "{}_sum{{{labels}}} {sum}", self.name);
                    let _ = writeln!(out, "{}_count{{{labels}}} {count}", self.name);
                }
            }
        }
    }
}

/// `a="x",b="y"`, values escaped as the exposition format says.
fn label_text(names: &[&str], values: &[Box<str>]) -> String {
    let mut out = String::new();
    for (i, (n, v)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(n);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

/// Every metric recorded as it happens. Names follow Prometheus conventions: the
/// `tamtam_` prefix, `_total` counters, `_seconds` histograms.
pub struct Registry {
    pub hops: Family,
    pub hop_duration: Family,
    pub replays: Family,
    pub auth_refusals: Family,
    pub screen_views: Family,
    pub screen_ends: Family,
    pub screen_left: Family,
    pub screen_invalid: Family,
    pub lookups: Family,
    pub lookup_duration: Family,
    pub store_errors: Family,
    pub store_duration: Family,
    pub sends: Family,
    pub delivery_reports: Family,
    pub sms_parts: Family,
    pub config_reloads: Family,
    config: RwLock<(String, Option<bool>)>,
}

/// The process's metrics.
pub static METRICS: LazyLock<Registry> = LazyLock::new(|| {
    Registry {
    hops: Family::counter(
        "tamtam_hops_total",
        "USSD hops and SMS served, by channel, dialect, tenant and outcome.",
        &["channel", "dialect", "tenant", "outcome"],
    ),
    hop_duration: Family::histogram(
        "tamtam_hop_duration_seconds",
        "Time the gateway took to answer a hop or an SMS (store, engine, lookups, queueing).",
        &["channel", "dialect"],
    ),
    replays: Family::counter(
        "tamtam_retries_replayed_total",
        "Retried hops and webhooks answered from the stored reply without running again.",
        &["channel", "dialect"],
    ),
    auth_refusals: Family::counter(
        "tamtam_auth_refusals_total",
        "Webhooks and delivery reports refused by authentication, by reason (the mechanism that refused).",
        &["reason"],
    ),
    screen_views: Family::counter(
        "tamtam_screen_views_total",
        "Times a screen was shown (USSD), by tenant and screen id.",
        &["tenant", "screen"],
    ),
    screen_ends: Family::counter(
        "tamtam_screen_ends_total",
        "USSD sessions that ended on this screen by the menu's own END.",
        &["tenant", "screen"],
    ),
    screen_left: Family::counter(
        "tamtam_screen_left_total",
        "USSD sessions left on this screen: released or timed out by the network, or found abandoned by the subscriber's next dial.",
        &["tenant", "screen"],
    ),
    screen_invalid: Family::counter(
        "tamtam_screen_invalid_answers_total",
        "Invalid answers given on this screen.",
        &["tenant", "screen"],
    ),
    lookups: Family::counter(
        "tamtam_lookups_total",
        "Data source lookups, by tenant, source and outcome (found, missing, failed).",
        &["tenant", "source", "outcome"],
    ),
    lookup_duration: Family::histogram(
        "tamtam_lookup_duration_seconds",
        "Time a data source lookup took, timeouts included.",
        &["tenant", "source"],
    ),
    store_errors: Family::counter(
        "tamtam_session_store_errors_total",
        "Redis session store calls that failed, by operation (get, write, commit).",
        &["operation"],
    ),
    store_duration: Family::histogram(
        "tamtam_session_store_duration_seconds",
        "Time a Redis session store call took, by operation (the in-memory store is not timed).",
        &["operation"],
    ),
    sends: Family::counter(
        "tamtam_sms_sends_total",
        "Outbound SMS send attempts, by sender and result (sent, retry, refused, gave_up).",
        &["sender", "result"],
    ),
    delivery_reports: Family::counter(
        "tamtam_delivery_reports_total",
        "Delivery reports received, by dialect and status.",
        &["dialect", "status"],
    ),
    sms_parts: Family::counter(
        "tamtam_sms_parts_total",
        "SMS parts leaving: synchronous replies and messages a sender's provider accepted, by encoding (gsm7, ucs2).",
        &["encoding"],
    ),
    config_reloads: Family::counter(
        "tamtam_config_reload_total",
        "Configuration reloads, by result (success, failure).",
        &["result"],
    ),
    config: RwLock::new((String::new(), None)),
}
});

impl Registry {
    fn families(&self) -> [&Family; 16] {
        [
            &self.hops,
            &self.hop_duration,
            &self.replays,
            &self.auth_refusals,
            &self.screen_views,
            &self.screen_ends,
            &self.screen_left,
            &self.screen_invalid,
            &self.lookups,
            &self.lookup_duration,
            &self.store_errors,
            &self.store_duration,
            &self.sends,
            &self.delivery_reports,
            &self.sms_parts,
            &self.config_reloads,
        ]
    }
}

/// One hop or SMS served. `replay` outcomes also count as retries replayed.
pub fn hop(channel: &str, dialect: &str, tenant: &str, outcome: &str, took: Duration) {
    let m = &*METRICS;
    m.hops.inc(&[channel, dialect, tenant, outcome]);
    m.hop_duration.observe(&[channel, dialect], took);
    if outcome == "replay" {
        m.replays.inc(&[channel, dialect]);
    }
}

/// A hop or an SMS for a code no tenant owns.
pub fn unknown_service(channel: &str, dialect: &str, took: Duration) {
    hop(channel, dialect, NO_TENANT, "unknown_service", took);
}

/// A USSD screen shown after a hop; `ended` when the menu ended the session there;
/// `invalid` answers given on the screen during the hop.
pub fn screen(tenant: &str, screen: &str, ended: bool, invalid: u32) {
    let m = &*METRICS;
    m.screen_views.inc(&[tenant, screen]);
    if ended {
        m.screen_ends.inc(&[tenant, screen]);
    }
    if invalid > 0 {
        m.screen_invalid.add(&[tenant, screen], u64::from(invalid));
    }
}

/// A USSD session left on `screen` without the menu ending it.
pub fn screen_left(tenant: &str, screen: &str) {
    METRICS.screen_left.inc(&[tenant, screen]);
}

/// Makes a screen's funnel series exist at 0.
pub fn touch_screen(tenant: &str, screen: &str) {
    let m = &*METRICS;
    for f in [
        &m.screen_views,
        &m.screen_ends,
        &m.screen_left,
        &m.screen_invalid,
    ] {
        f.touch(&[tenant, screen]);
    }
}

/// One lookup and how long it took.
pub fn lookup(tenant: &str, source: &str, outcome: &str, took: Duration) {
    let m = &*METRICS;
    m.lookups.inc(&[tenant, source, outcome]);
    m.lookup_duration.observe(&[tenant, source], took);
}

/// One session store call.
pub fn store_call(operation: &str, ok: bool, took: Duration) {
    let m = &*METRICS;
    m.store_duration.observe(&[operation], took);
    if !ok {
        m.store_errors.inc(&[operation]);
    }
}

/// Runs one call of the Redis session store, timing it and counting its failure.
pub async fn store_timed<T, E>(
    operation: &str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = std::time::Instant::now();
    let result = call.await;
    store_call(operation, result.is_ok(), started.elapsed());
    result
}

/// A webhook refused by authentication (`missing` or `wrong`).
pub fn auth_refused(reason: &str) {
    METRICS.auth_refusals.inc(&[reason]);
}

/// One send attempt's result (`sent`, `retry`, `failed`).
pub fn send(sender: &str, result: &str) {
    METRICS.sends.inc(&[sender, result]);
}

/// A message the sender's provider accepted, with its parts by encoding.
pub fn sent(sender: &str, text: &str) {
    send(sender, "sent");
    let parts = crate::text::sms_segments(text);
    sms_parts(parts.encoding.as_str(), parts.count as u64);
}

/// A delivery report read.
pub fn delivery_report(dialect: &str, status: &str) {
    METRICS.delivery_reports.inc(&[dialect, status]);
}

/// SMS parts leaving, by encoding.
pub fn sms_parts(encoding: &str, parts: u64) {
    METRICS.sms_parts.add(&[encoding], parts);
}

/// The configuration now serving (e.g. a hash of the loaded files), set at start-up.
pub fn config_version(version: &str) {
    let mut c = METRICS.config.write().unwrap_or_else(|e| e.into_inner());
    c.0 = version.to_string();
}

/// The result of a configuration reload, for the hot-reload code: counts it and, when it
/// succeeded, records the new version.
pub fn reload_result(ok: bool, version: &str) {
    let m = &*METRICS;
    m.config_reloads
        .inc(&[if ok { "success" } else { "failure" }]);
    let mut c = m.config.write().unwrap_or_else(|e| e.into_inner());
    if ok {
        c.0 = version.to_string();
    }
    c.1 = Some(ok);
}

/// A value sampled when scraped: a gauge (or a counter kept elsewhere, such as the
/// limiter's refusals), its labels and value.
pub struct Sample {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// The sampled metrics' help texts and types, defined once; [`render`] writes a sample
/// under its name's header.
pub const SAMPLED: &[(&str, &str, &str)] = &[
    (
        "tamtam_limit_refusals_total",
        "counter",
        "Requests and SMS refused by the abuse limits, by reason (subscriber_rate, source_rate, destination, daily_cap).",
    ),
    (
        "tamtam_outbox_messages",
        "gauge",
        "Outbound queue depth, by state (ready, in_flight, delayed, dead); one queue serves every sender.",
    ),
    (
        "tamtam_outbox_stats_up",
        "gauge",
        "1 when the outbound queue's depth could be read at this scrape, else 0.",
    ),
    (
        "tamtam_breaker_state",
        "gauge",
        "A data source's circuit breaker: 0 closed, 1 half-open, 2 open.",
    ),
    (
        "tamtam_memory_store_entries",
        "gauge",
        "Entries in the in-memory session store's pools (conversations, message_ids).",
    ),
    (
        "tamtam_memory_store_capacity",
        "gauge",
        "Capacity of the in-memory session store's pools.",
    ),
];

/// The whole exposition text: recorded metrics, then `samples` (grouped by name), then
/// the configuration's version and last reload.
pub fn render(samples: &[Sample]) -> String {
    let m = &*METRICS;
    let mut out = String::with_capacity(16 * 1024);
    for f in m.families() {
        f.render(&mut out);
    }
    for (name, kind, help) in SAMPLED {
        let mut mine = samples.iter().filter(|s| s.name == *name).peekable();
        if mine.peek().is_none() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in mine {
            let names: Vec<&str> = s.labels.iter().map(|(n, _)| *n).collect();
            let values: Vec<Box<str>> = s.labels.iter().map(|(_, v)| v.as_str().into()).collect();
            let _ = writeln!(out, "{name}{{{}}} {}", label_text(&names, &values), s.value);
        }
    }
    let (version, last) = m.config.read().unwrap_or_else(|e| e.into_inner()).clone();
    let version = [Box::<str>::from(version.as_str())];
    let _ = writeln!(
        out,
        "# HELP tamtam_config_info The configuration serving, by version (a hash of the loaded files).\n# TYPE tamtam_config_info gauge\ntamtam_config_info{{{}}} 1",
        label_text(&["version"], &version)
    );
    if let Some(ok) = last {
        let _ = writeln!(
            out,
            "# HELP tamtam_config_last_reload_success 1 when the last configuration reload succeeded, 0 when it failed.\n# TYPE tamtam_config_last_reload_success gauge\ntamtam_config_last_reload_success {}",
            u8::from(ok)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_and_a_histogram_render_in_the_exposition_format() {
        let c = Family::counter("t_things_total", "Things.", &["kind"]);
        c.inc(&["a\"b"]);
        c.add(&["a\"b"], 2);
        c.inc(&["z"]);
        assert_eq!(c.value(&["a\"b"]), 3);
        let h = Family::histogram("t_wait_seconds", "Waits.", &["op"]);
        h.observe(&["get"], Duration::from_millis(3));
        h.observe(&["get"], Duration::from_secs(60));
        let mut out = String::new();
        c.render(&mut out);
        h.render(&mut out);
        assert!(out.contains("# TYPE t_things_total counter\n"), "{out}");
        assert!(out.contains("t_things_total{kind=\"a\\\"b\"} 3\n"), "{out}");
        assert!(out.contains("t_wait_seconds_bucket{op=\"get\",le=\"0.0025\"} 0\n"));
        assert!(out.contains("t_wait_seconds_bucket{op=\"get\",le=\"0.005\"} 1\n"));
        assert!(out.contains("t_wait_seconds_bucket{op=\"get\",le=\"5\"} 1\n"));
        assert!(out.contains("t_wait_seconds_bucket{op=\"get\",le=\"+Inf\"} 2\n"));
        assert!(out.contains("t_wait_seconds_count{op=\"get\"} 2\n"));
        assert!(
            out.contains("t_wait_seconds_sum{op=\"get\"} 60.003\n"),
            "{out}"
        );
    }

    #[test]
    fn a_reload_result_sets_the_version_and_the_last_result() {
        reload_result(true, "abc123");
        let out = render(&[]);
        assert!(
            out.contains("tamtam_config_info{version=\"abc123\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("tamtam_config_last_reload_success 1\n"),
            "{out}"
        );
        assert!(METRICS.config_reloads.value(&["success"]) >= 1);
    }
}
