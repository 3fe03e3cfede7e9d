//! The menu engine: menus as data, and the pure state machine that walks them.
//!
//! **Invariant:** nothing in this module does I/O, is `async`, reads the clock or draws a
//! random number. A step takes a [`State`] and an input and returns what to show, or an
//! [`Effect`] (a data lookup) for the caller to carry out and feed back. The caller
//! (`gateway`) owns sessions, data sources and time.
//!
//! - `model`: the compiled menu ([`Menu`], [`Screen`], [`Kind`]), built once at load.
//! - `load`: TOML text to [`Menu`], reporting every problem as `file:screen: message`.
//! - `template`: screen texts and lookup keys with `{placeholder}`s (on [`crate::template`]).
//! - `render`: pagination into USSD pages (through `crate::text`).
//! - `engine`: [`State`], [`start`], [`input`], [`lookup_done`].

mod engine;
mod load;
mod model;
mod render;
mod template;

pub use engine::{
    input, late_sms, lookup_done, start, start_at, Effect, LookupOutcome, State, Step,
};
pub use load::{load, LoadOptions};
pub use model::{
    Channel, Keyword, Kind, Menu, Route, RouteCondition, Screen, ScreenId, SmsRoutes, Texts,
};
pub use template::Template;
