//! tamtam: an SMS/USSD self-service gateway.
//!
//! A subscriber dials `*144#`; an aggregator posts the hop to one of our webhooks in its
//! own dialect; tamtam answers with the next screen of a menu written as data.
//!
//! # Layout
//! - [`text`]: GSM-7 / UCS-2 counting, transliteration, USSD screens, SMS segments.
//! - [`menu`]: menus as data and the pure engine that walks them (no I/O).
//! - [`adapters`]: the wire formats, one file per dialect, to and from [`message`].
//! - [`auth`]: who may call a webhook: secrets, Basic, allow-lists, HMAC (no HTTP here).
//! - [`session`]: the byte store (in memory, Redis), its keys and guarded commits.
//! - [`data`]: data sources for lookups (consumption).
//! - [`outbox`]: the durable outbound SMS queue, its senders and delivery reports.
//! - [`limits`]: abuse limits: rate per subscriber and source, SMS destinations and daily cap.
//! - [`gateway`]: one hop end to end: tenant, session, engine, lookups.
//! - [`server`]: HTTP (axum): the accept loop, the public and admin routers.
//! - [`config`]: `config/tamtam.toml`, checked.
//! - [`app`]: the composition root: what every command loads, and the wiring of a gateway.
//! - [`cli`]: `serve`, `check`, `simulate`, `outbox`.
//! - [`message`], [`diagnostic`], [`template`], [`secret`], [`hours`], [`logs`]: the
//!   vocabulary the rest shares (hops and replies, problem reports, `{placeholder}` texts,
//!   secrets, opening hours, the log format and hashed session ids).

pub mod adapters;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod data;
pub mod diagnostic;
pub mod gateway;
pub mod hours;
pub mod limits;
pub mod logs;
pub mod menu;
pub mod message;
pub mod metrics;
pub mod outbox;
pub mod secret;
pub mod server;
pub mod session;
pub mod template;
pub mod text;
