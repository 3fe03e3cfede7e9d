//! What the gateway keeps between hops, and how engine state becomes bytes and back.
//!
//! The store (`crate::session`) knows keys and bytes only; the meaning of the bytes is
//! here, next to the shell that reads and writes them. Every record is versioned JSON: a
//! record of another version, or a damaged one, reads as absent (the subscriber starts
//! over rather than the hop failing). Records name screens by id, not by index, so a
//! session survives a deploy that reorders a menu file; a screen that disappeared sends
//! the subscriber home.

use serde::{Deserialize, Serialize};

use crate::menu::{Menu, State};
use crate::message::Reply;

/// Version of every record this build writes.
pub const RECORD_VERSION: u8 = 1;

/// Where a subscriber is, as stored. Screens by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    pub screen: String,
    #[serde(default)]
    pub page: u8,
    #[serde(default)]
    pub history: Vec<String>,
    #[serde(default)]
    pub errors: u8,
    #[serde(default)]
    pub vars: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Box<StateRecord>>,
}

impl StateRecord {
    /// Records `state` (its pending inputs are always empty between hops).
    pub fn from_state(state: &State, menu: &Menu) -> StateRecord {
        let name = |id| menu.screen(id).id.clone();
        StateRecord {
            screen: name(state.screen),
            page: state.page,
            history: state.history.iter().map(|id| name(*id)).collect(),
            errors: state.errors,
            vars: state.vars.clone(),
            resume: state
                .resume
                .as_ref()
                .map(|r| Box::new(StateRecord::from_state(r, menu))),
        }
    }

    /// Rebuilds the state; a screen the menu no longer has becomes home.
    pub fn to_state(&self, menu: &Menu) -> State {
        let found = menu.find(&self.screen);
        let mut state = State::at(found.unwrap_or(menu.home));
        // The page and error count belong to the stored screen: kept only if it still exists.
        if found.is_some() {
            state.page = self.page;
            state.errors = self.errors;
        }
        state.history = self.history.iter().filter_map(|h| menu.find(h)).collect();
        state.vars = self.vars.clone();
        state.resume = self.resume.as_ref().map(|r| Box::new(r.to_state(menu)));
        state
    }
}

/// The last reply of a session, kept so that a retried hop gets the same screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedReply {
    pub text: String,
    pub end: bool,
}

impl From<&Reply> for SavedReply {
    fn from(reply: &Reply) -> SavedReply {
        SavedReply {
            text: reply.text.clone(),
            end: reply.end,
        }
    }
}

impl From<SavedReply> for Reply {
    fn from(saved: SavedReply) -> Reply {
        Reply {
            text: saved.text,
            end: saved.end,
        }
    }
}

/// A USSD session as stored under its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Format version.
    pub v: u8,
    /// Where the subscriber is; `None` once the session ended (the record then only
    /// answers retried hops with the final screen).
    pub state: Option<StateRecord>,
    /// The last hop's sequence number, for dialects that send one.
    #[serde(default)]
    pub seq: Option<u64>,
    /// Inputs consumed so far, for dialects that send the whole path (Africa's Talking).
    #[serde(default)]
    pub consumed: u32,
    /// The last reply.
    pub reply: SavedReply,
}

impl SessionRecord {
    /// A record of this build's version.
    pub fn new(
        state: Option<StateRecord>,
        seq: Option<u64>,
        consumed: u32,
        reply: SavedReply,
    ) -> SessionRecord {
        SessionRecord {
            v: RECORD_VERSION,
            state,
            seq,
            consumed,
            reply,
        }
    }

    /// Serializes to JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a session record always serializes")
    }

    /// Parses stored bytes; a record of another version or a damaged one reads as absent.
    pub fn from_bytes(bytes: &[u8]) -> Option<SessionRecord> {
        serde_json::from_slice::<SessionRecord>(bytes)
            .ok()
            .filter(|r| r.v == RECORD_VERSION)
    }
}

/// The state a dropped session left, kept per subscriber for "resume".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeRecord {
    pub v: u8,
    /// The aggregator session it came from (a new dial has another one).
    pub session: String,
    pub state: StateRecord,
}

impl ResumeRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a resume record always serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<ResumeRecord> {
        serde_json::from_slice::<ResumeRecord>(bytes)
            .ok()
            .filter(|r| r.v == RECORD_VERSION)
    }
}

/// An SMS dialogue as stored: where the subscriber is (if a screen waits for an answer)
/// and what `SUITE` sends next (if the last reply was cut).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsRecord {
    pub v: u8,
    #[serde(default)]
    pub state: Option<StateRecord>,
    #[serde(default)]
    pub rest: Option<String>,
}

impl SmsRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an SMS record always serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<SmsRecord> {
        serde_json::from_slice::<SmsRecord>(bytes)
            .ok()
            .filter(|r| r.v == RECORD_VERSION)
    }
}
