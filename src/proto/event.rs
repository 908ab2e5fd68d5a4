//! What passes between a connection and its driver besides frames: the
//! questions the core asks (`Need`), their answers (`Answer`), and what it
//! reports (`Event`, `PeerInfo`).

use serde_json::Value;

use super::keys::Key;
use super::payload::Address;
use super::suite::Pattern;
use crate::error::{CloseReason, Error};

/// A question the connection needs answered before it can go on.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    /// What key does the node hold for this agent? (First contacts.)
    PeerKey { agent: String },
    /// May this agent open a link by key (KK), and what key is held for it?
    Partner { agent: String },
    /// May this ticket open a link?
    Ticket { ticket: Value, from: Address },
}

/// The driver's answer to a `Need`.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Key(Option<Key>),
    Partner {
        allowed: bool,
        key: Option<Key>,
    },
    Ticket(bool),
    /// The lookup itself failed (callback threw, database down, deadline):
    /// `LookupFailed`, `StoreUnavailable`, or the store's own verdict such
    /// as `KeyMismatch`. It refuses the handshake with that code.
    Failed(Error),
}

/// What we know about the other end once a link is open.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    /// Its agent id; `None` for an anonymous referee query (NK).
    pub agent: Option<String>,
    pub pattern: Pattern,
    /// It runs this implementation (native frames and rules allowed).
    pub native: bool,
    /// The static key the handshake proved (`None` in raw mode and for NK callers).
    pub key: Option<Key>,
    /// We opened this connection.
    pub initiator: bool,
}

/// Output for the driver, besides frames.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Need(Need),
    /// Responder: the handshake completed and `A` is written, but the caller
    /// has not proven it holds the keys yet (it may be replaying a captured
    /// message 1): route nothing to it, report no `open`. Early messages of a
    /// legacy caller may follow, and an explicit reply on this link is taken.
    Accepted(PeerInfo),
    /// The link is open and confirmed: route to it.
    Open(PeerInfo),
    /// A whole application message (JSON object text). `early` marks a legacy
    /// initiator's message that rode in its replayable message 1.
    Message {
        data: Vec<u8>,
        early: bool,
    },
    /// An orderly close began on our side: stop sending, keep reading.
    Closing(CloseReason),
}
