//! The error vocabulary shared by every layer, and the stable code strings that
//! JavaScript sees as `err.code` and as the `reason` of events.
//!
//! Variants are grouped by who is to blame (as rustls does): the peer sent bytes
//! we cannot parse, the peer broke a rule or was refused, the environment failed,
//! or the local caller misused the API. Nothing else in the crate invents codes.

use std::fmt;

/// Every way a link, a send or a call can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- the peer sent bytes we cannot parse -------------------------------
    /// A frame with length 0 (docs/PROTOCOL.md §2).
    #[error("received an empty frame")]
    EmptyFrame,
    /// A frame longer than the configured maximum (docs/PROTOCOL.md §2, §6).
    #[error("received a frame larger than the limit of {max} bytes")]
    FrameTooLarge { max: usize },
    /// A header letter that the connection's state does not allow.
    #[error("header letter {letter:?} is not allowed while {state}")]
    UnexpectedLetter { letter: char, state: &'static str },
    /// A handshake payload that is not what the pattern requires.
    #[error("malformed handshake payload: {0}")]
    BadPayload(String),
    /// A transport message that is not one JSON object.
    #[error("received a message that is not a JSON object")]
    BadMessage,
    /// A reassembled message beyond the configured maximum (docs/PROTOCOL.md §3, §6).
    #[error("received a message larger than the limit of {max} bytes")]
    MessageTooLarge { max: usize },
    /// Authenticated decryption failed: a forged, replayed, reordered or corrupt
    /// frame, or the wrong key. Deliberately carries no detail.
    #[error("decryption failed (wrong key, or a forged, replayed or corrupted frame)")]
    Decrypt,
    /// One side encrypts and the other runs in raw mode (docs/PROTOCOL.md §7).
    #[error("encryption mode mismatch: {0}")]
    ModeMismatch(&'static str),

    // --- the peer broke a rule, or one side refused the other --------------
    /// A handshake message 1 whose timestamp is not newer than the last one
    /// accepted from the same static key (docs/PROTOCOL.md §5).
    #[error("replayed handshake: its timestamp is not newer than the last one accepted")]
    Replay,
    /// The static key proven by the handshake is not the claimed agent's key.
    #[error("the key proven in the handshake does not belong to agent {agent}")]
    KeyMismatch { agent: String },
    /// No key is known for the agent: it is not a partner of this node.
    #[error("unknown agent {agent}: no key is known for it")]
    UnknownPeer { agent: String },
    /// The ticket store refused the ticket of an `I` handshake.
    #[error("the ticket was refused")]
    TicketRefused,
    /// A `Q` query reached a node that is not configured as a referee.
    #[error("this node does not answer referee queries")]
    RefereeDisabled,
    /// A legacy (JavaScript) initiator reached a node that refuses legacy peers.
    #[error("legacy (JavaScript) peers are not accepted by this node")]
    LegacyRefused,
    /// The other side closed the connection before the handshake completed,
    /// without saying why (it refused us, does not know our key, or had too
    /// many handshakes pending).
    #[error(
        "the peer closed the connection during the handshake (it refused us, does not know our key, or is too busy)"
    )]
    HandshakeRejected,
    /// The other side refused us and said why, in an authenticated reply.
    #[error("the peer refused the connection: {0}")]
    PeerRefused(String),
    /// A key whose Diffie-Hellman results are all zero (small order), or an
    /// agent id that names one (docs/PROTOCOL.md §5b).
    #[error("weak key: {0}")]
    WeakKey(String),

    // --- the environment ---------------------------------------------------
    /// The handshake did not complete in time (docs/PROTOCOL.md §6).
    #[error("the handshake did not complete within {ms} ms")]
    HandshakeTimeout { ms: u64 },
    /// Nothing could be reached at the address.
    #[error("could not connect to {addr}: {reason}")]
    ConnectFailed { addr: String, reason: String },
    /// The other side reset the TCP connection.
    #[error("the connection was reset by the peer")]
    ConnectionReset,
    /// The connection ended before the message could be written.
    #[error("the connection closed before the message was written")]
    ConnectionClosed,
    /// Any other socket error.
    #[error("socket error: {0}")]
    Io(String),
    /// A key or ticket lookup failed (the callback threw, rejected or timed out).
    #[error("lookup failed: {0}")]
    LookupFailed(String),
    /// The database store cannot answer now (down, slow, restarting); the
    /// handshake that needed it is refused, and the store reconnects by itself.
    #[error("the peer store is unavailable: {0}")]
    StoreUnavailable(String),
    /// Too many inbound connections are still in their handshake (docs/PROTOCOL.md §6).
    #[error("too many pending inbound connections")]
    TooManyPending,
    /// The caps on open links (in total, per agent, per address) are reached
    /// (docs/PROTOCOL.md §6).
    #[error("too many open links: {0}")]
    TooManyLinks(String),
    /// Too many bytes are already queued for this agent: the peer (or the
    /// link to it) is not keeping up. Nothing of the message was written.
    #[error("too much is queued for {agent} already ({queued} bytes); try again once it drains")]
    Backpressure { agent: String, queued: usize },
    /// The socket took nothing for too long: the peer stopped reading.
    #[error("the peer read nothing for {ms} ms")]
    WriteTimeout { ms: u64 },

    // --- local misuse --------------------------------------------------------
    /// A bad argument from the caller.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The call came after `close()`.
    #[error("the peer has been closed")]
    Closed,
    /// An application listener (`onMessage`) threw; the node carried on.
    #[error("an application listener threw: {0}")]
    ListenerFailed(String),
    /// Messages arrived with no `onMessage` listener and the hold buffer was full.
    #[error("messages arrived with no onMessage listener and the hold buffer is full")]
    NoListener,
    /// A bug: a panic caught at the binding, or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Every code `Error::code` can return, for JavaScript and the docs.
pub const CODES: &[&str] = &[
    "ERR_EMPTY_FRAME",
    "ERR_FRAME_TOO_LARGE",
    "ERR_UNEXPECTED_LETTER",
    "ERR_BAD_PAYLOAD",
    "ERR_BAD_MESSAGE",
    "ERR_MESSAGE_TOO_LARGE",
    "ERR_DECRYPT",
    "ERR_MODE_MISMATCH",
    "ERR_REPLAY",
    "ERR_KEY_MISMATCH",
    "ERR_UNKNOWN_PEER",
    "ERR_TICKET_REFUSED",
    "ERR_REFEREE_DISABLED",
    "ERR_LEGACY_REFUSED",
    "ERR_HANDSHAKE_REJECTED",
    "ERR_PEER_REFUSED",
    "ERR_WEAK_KEY",
    "ERR_HANDSHAKE_TIMEOUT",
    "ERR_CONNECT_FAILED",
    "ERR_CONNECTION_RESET",
    "ERR_CONNECTION_CLOSED",
    "ERR_IO",
    "ERR_LOOKUP_FAILED",
    "ERR_STORE_UNAVAILABLE",
    "ERR_TOO_MANY_PENDING",
    "ERR_TOO_MANY_LINKS",
    "ERR_BACKPRESSURE",
    "ERR_WRITE_TIMEOUT",
    "ERR_INVALID_ARGUMENT",
    "ERR_CLOSED",
    "ERR_LISTENER",
    "ERR_NO_LISTENER",
    "ERR_INTERNAL",
];

impl Error {
    /// The stable code JavaScript sees (`err.code`, event `reason`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyFrame => "ERR_EMPTY_FRAME",
            Self::FrameTooLarge { .. } => "ERR_FRAME_TOO_LARGE",
            Self::UnexpectedLetter { .. } => "ERR_UNEXPECTED_LETTER",
            Self::BadPayload(_) => "ERR_BAD_PAYLOAD",
            Self::BadMessage => "ERR_BAD_MESSAGE",
            Self::MessageTooLarge { .. } => "ERR_MESSAGE_TOO_LARGE",
            Self::Decrypt => "ERR_DECRYPT",
            Self::ModeMismatch(_) => "ERR_MODE_MISMATCH",
            Self::Replay => "ERR_REPLAY",
            Self::KeyMismatch { .. } => "ERR_KEY_MISMATCH",
            Self::UnknownPeer { .. } => "ERR_UNKNOWN_PEER",
            Self::TicketRefused => "ERR_TICKET_REFUSED",
            Self::RefereeDisabled => "ERR_REFEREE_DISABLED",
            Self::LegacyRefused => "ERR_LEGACY_REFUSED",
            Self::HandshakeRejected => "ERR_HANDSHAKE_REJECTED",
            Self::PeerRefused(_) => "ERR_PEER_REFUSED",
            Self::WeakKey(_) => "ERR_WEAK_KEY",
            Self::HandshakeTimeout { .. } => "ERR_HANDSHAKE_TIMEOUT",
            Self::ConnectFailed { .. } => "ERR_CONNECT_FAILED",
            Self::ConnectionReset => "ERR_CONNECTION_RESET",
            Self::ConnectionClosed => "ERR_CONNECTION_CLOSED",
            Self::Io(_) => "ERR_IO",
            Self::LookupFailed(_) => "ERR_LOOKUP_FAILED",
            Self::StoreUnavailable(_) => "ERR_STORE_UNAVAILABLE",
            Self::TooManyPending => "ERR_TOO_MANY_PENDING",
            Self::TooManyLinks(_) => "ERR_TOO_MANY_LINKS",
            Self::Backpressure { .. } => "ERR_BACKPRESSURE",
            Self::WriteTimeout { .. } => "ERR_WRITE_TIMEOUT",
            Self::InvalidArgument(_) => "ERR_INVALID_ARGUMENT",
            Self::Closed => "ERR_CLOSED",
            Self::ListenerFailed(_) => "ERR_LISTENER",
            Self::NoListener => "ERR_NO_LISTENER",
            Self::Internal(_) => "ERR_INTERNAL",
        }
    }

    /// True when the failure happened before anything of the message reached
    /// the socket, so the message may be sent again on another link.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::TicketRefused
                | Self::KeyMismatch { .. }
                | Self::UnknownPeer { .. }
                | Self::RefereeDisabled
                | Self::LegacyRefused
                | Self::HandshakeRejected
                | Self::PeerRefused(_)
                | Self::Replay
                | Self::StoreUnavailable(_)
                | Self::WeakKey(_)
                | Self::TooManyLinks(_)
        )
    }

    /// Map a socket error to the closest variant.
    pub fn from_io(err: &std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        match err.kind() {
            ConnectionReset | ConnectionAborted | BrokenPipe => Self::ConnectionReset,
            UnexpectedEof => Self::ConnectionClosed,
            _ => Self::Io(err.to_string()),
        }
    }
}

/// Why a link ended, as reported in `closed` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The responder's idle timer fired (docs/PROTOCOL.md §6).
    IdleTimeout,
    /// The other side closed the link in an orderly way.
    PeerClosed,
    /// The application asked (`end` or `close`).
    Local,
}

impl CloseReason {
    pub fn code(self) -> &'static str {
        match self {
            Self::IdleTimeout => "IDLE_TIMEOUT",
            Self::PeerClosed => "PEER_CLOSED",
            Self::Local => "LOCAL_CLOSE",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each variant. The `match` has no wildcard, so adding a variant
    /// fails to compile here until it is listed (and its code is in `CODES`).
    fn every_variant() -> Vec<Error> {
        let all = vec![
            Error::EmptyFrame,
            Error::FrameTooLarge { max: 1 },
            Error::UnexpectedLetter { letter: 'X', state: "s" },
            Error::BadPayload(String::new()),
            Error::BadMessage,
            Error::MessageTooLarge { max: 1 },
            Error::Decrypt,
            Error::ModeMismatch(""),
            Error::Replay,
            Error::KeyMismatch { agent: String::new() },
            Error::UnknownPeer { agent: String::new() },
            Error::TicketRefused,
            Error::RefereeDisabled,
            Error::LegacyRefused,
            Error::HandshakeRejected,
            Error::PeerRefused(String::new()),
            Error::WeakKey(String::new()),
            Error::HandshakeTimeout { ms: 1 },
            Error::ConnectFailed { addr: String::new(), reason: String::new() },
            Error::ConnectionReset,
            Error::ConnectionClosed,
            Error::Io(String::new()),
            Error::LookupFailed(String::new()),
            Error::StoreUnavailable(String::new()),
            Error::TooManyPending,
            Error::TooManyLinks(String::new()),
            Error::Backpressure { agent: String::new(), queued: 0 },
            Error::WriteTimeout { ms: 0 },
            Error::InvalidArgument(String::new()),
            Error::Closed,
            Error::ListenerFailed(String::new()),
            Error::NoListener,
            Error::Internal(String::new()),
        ];
        for e in &all {
            match e {
                Error::EmptyFrame
                | Error::FrameTooLarge { .. }
                | Error::UnexpectedLetter { .. }
                | Error::BadPayload(_)
                | Error::BadMessage
                | Error::MessageTooLarge { .. }
                | Error::Decrypt
                | Error::ModeMismatch(_)
                | Error::Replay
                | Error::KeyMismatch { .. }
                | Error::UnknownPeer { .. }
                | Error::TicketRefused
                | Error::RefereeDisabled
                | Error::LegacyRefused
                | Error::HandshakeRejected
                | Error::PeerRefused(_)
                | Error::WeakKey(_)
                | Error::HandshakeTimeout { .. }
                | Error::ConnectFailed { .. }
                | Error::ConnectionReset
                | Error::ConnectionClosed
                | Error::Io(_)
                | Error::LookupFailed(_)
                | Error::StoreUnavailable(_)
                | Error::TooManyPending
                | Error::TooManyLinks(_)
                | Error::Backpressure { .. }
                | Error::WriteTimeout { .. }
                | Error::InvalidArgument(_)
                | Error::Closed
                | Error::ListenerFailed(_)
                | Error::NoListener
                | Error::Internal(_) => {}
            }
        }
        all
    }

    #[test]
    fn every_code_is_listed_once() {
        let codes: Vec<&str> = every_variant().iter().map(Error::code).collect();
        assert_eq!(codes, CODES, "CODES lists each variant's code, in order");
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len(), "codes are distinct");
    }
}
