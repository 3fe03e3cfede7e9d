//! The integration tests: one binary, real HTTP on loopback, a real `redis-server`.
//!
//! Run them with `scripts/test.sh`, which starts Redis and sets `TAMTAM_TEST_REDIS_URL`.
//! Tests that need Redis fail (they never skip) when it is missing.

mod bad_input;
mod checks;
mod conversations;
mod data_sources;
mod delivery_reports;
mod hours;
mod kannel;
mod kannel_e2e;
mod kannel_harness;
mod menus;
mod outbox_async;
mod outbox_fake;
mod outbox_kannel;
mod outbox_process;
mod outbox_queue;
mod outbox_worker;
mod redis_gateway;
mod sessions;
mod shutdown;
mod sms;
mod support;
