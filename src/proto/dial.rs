//! How an initiator asks for a connection: the pattern and what it carries.

use serde_json::Value;

use super::keys::Key;
use super::payload::Address;

/// How an initiator opens a connection.
#[derive(Debug, Clone)]
pub enum Dial {
    /// IK with a one-time ticket; `from` is our CHIP address.
    Ticket { ticket: Value, from: Address },
    /// N + KK: the partners know each other's keys.
    Key,
    /// NK: an anonymous referee query.
    Referee,
}

/// Everything an initiator needs to write message 1.
#[derive(Debug, Clone)]
pub struct DialSpec {
    pub dial: Dial,
    /// Our agent id (sent in `N`).
    pub local_agent: String,
    /// The agent we call.
    pub remote_agent: String,
    /// The responder's static key (see `policy::dial_key`); `None` only in raw mode.
    pub remote_key: Option<Key>,
    /// A timestamp newer than any we used before (docs/PROTOCOL.md §5).
    pub timestamp: u64,
}
