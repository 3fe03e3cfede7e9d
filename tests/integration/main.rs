//! The integration tests: one binary, real HTTP on loopback, a real `redis-server`.
//!
//! Run them with `scripts/test.sh`, which starts Redis and sets `TAMTAM_TEST_REDIS_URL`.
//! Tests that need Redis or Kannel fail (they never skip) when it is missing.
//!
//! Each module below pins down one promise of the gateway; its `//!` says how. The
//! support code they share lives apart, in `support/`.

// Conversations: what a subscriber sees.

// Every USSD script of `tests/conversations/` through every USSD dialect, on both stores:
// the same screens everywhere, and a few whole transcripts equal to `tests/golden/ussd/`.
mod conversations;
// Every SMS script of `tests/sms_conversations/` through every SMS dialect, on both stores;
// retried webhooks answered once; signatures; one golden transcript.
mod sms;
// Opening hours decide "open" or "closed" from the injected clock, never the real one.
mod hours;
// Every shipped menu walked with every key: every screen reachable, every page fits, every
// fact of the source documents shown somewhere.
mod menus;
// Malformed webhooks get a 4xx valid for their dialect; nothing gets a 5xx; no error body
// or INFO log quotes a subscriber's number.
mod bad_input;
// Properties (proptest): every parser and loader answers any input validly and never
// panics; any USSD session through the gateway gets screens that fit.
mod properties;

// Authentication at the edge: forged hops, SMS and delivery reports refused in their
// dialect and changing nothing; every mechanism; trusted proxies; the admin listener.
mod auth;

// Sessions and the gateway's own behaviour.

// The session-store contract on memory and Redis, and records across menu changes.
mod sessions;
// On Redis: sessions survive restarts and move between replicas; a retried hop never
// advances twice; every key has a TTL; a dropped session can be resumed.
mod redis_gateway;
// Copies of a hop or of an SMS sent at once count once (one SMS queued, on memory and
// across two gateways); hops sent together are not lost; a session id is found only under
// its own number; too many inputs at once get a polite END; the memory store keeps its cap.
mod concurrency;
// The "unavailable" answer follows the tenant's USSD text policy (GSM-7 on transliterate).
mod unavailable;
// A hop in flight when the shutdown signal arrives still gets its answer.
mod shutdown;
// The `[http]` limits: half heads and idle connections closed, the connection cap, a slow
// body's 408, `Connection: close` on a 413, `Allow` on a 405, the peer address.
mod http_limits;
// Network data sources (Redis, HTTP) against real servers: timeouts, retries, the breaker;
// per-channel time budgets and late answers by SMS.
mod data_sources;
// What every command loads: `check` and `serve` see the same configuration and overrides.
mod loading;
// Hot reload (direct, SIGHUP to the binary, the file watcher): the next dial shows the new
// text, a broken change keeps the old one and /readyz says so, sessions continue.
mod reload;

// The outbound SMS queue and its delivery.

// The queue's contract on both queues: states, history, provider ids, take-over; dead
// letters requeued and purged; histories capped, details cut, TTL not renewed by reports.
mod outbox_queue;
// The send loop against fake providers: wire formats, delivery reports, retry policy.
mod outbox_worker;
// Asynchronous SMS dialects: acknowledged at once, answered through the sender, once; the
// bodies a real Jasmin 0.11 posts (raw-byte coding, UCS-2, GSM 03.38) are understood.
mod outbox_async;
// Delivery reports on `/dlr/*`: acknowledged in each provider's words; a missing field is a
// 400 naming it; an unknown id is final (404) for our own ids, retried (503) for a
// provider's; unknown words stored as `unknown`, details cut, 200 reports capped, HEAD refused.
mod delivery_reports;
// The real binary on Redis: a killed gateway's messages are sent once by the next;
// `tamtam outbox` shows counts and dead letters; `outbox requeue <id>` sends one again, once.
mod outbox_process;
// The Kannel sender through a real Kannel: exact text and coding, delivery reports.
mod outbox_kannel;

// Abuse limits.

// A subscriber over their rate gets a polite END or no SMS reply and nothing runs; Redis
// buckets at explicit instants, shared by two gateways; SMS only to a tenant's
// destinations, under its daily cap; `tamtam check` on bad limits.
mod limits;

// Through a real Kannel.

// fakesmsc to the gateway and back: the phone gets what the gateway answers; and what
// Kannel itself sends and delivers, which the Kannel adapter is written against.
mod kannel_e2e;

// Operations.

// `GET /metrics`: a scripted session in each screen's funnel, hops, lookups; the text passes
// `promtool check metrics`; a real Prometheus scrapes it and answers a per-screen query.
mod metrics;

// Logs for production: JSON lines, the hop's span (tenant, dialect, hashed session) on
// every line of a hop, nothing raw at INFO; /readyz details (senders' health, version).
mod logs;

// Support code (not tests): the test gateway and phones, the script runner, golden files,
// a real Kannel, fake providers.
mod support;
