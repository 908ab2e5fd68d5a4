//! What the driver reports to the application: messages and link events,
//! through a `Sink`.

use std::net::SocketAddr;

/// One of a bounded number of message batches the application may be
/// behind; dropping it lets a link read again.
pub type DeliveryPermit = tokio::sync::OwnedSemaphorePermit;

use crate::error::Error;
use crate::proto::Pattern;

/// Where the driver reports messages and events. Calls must not block.
pub trait Sink: Send + Sync + 'static {
    /// Messages from one link, in order: JSON object texts, each with its
    /// `early` flag. Batched, so a burst costs one call into JavaScript.
    /// Hold `permit` until the application has taken the batch: while the
    /// permits are out, links read nothing more.
    fn messages(&self, from: &LinkInfo, batch: Vec<(Vec<u8>, bool)>, permit: Option<DeliveryPermit>);
    fn event(&self, event: PeerEvent);
}

/// Who sent a message, or whom an event is about.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkInfo {
    /// Process-unique id of the connection.
    pub link: u64,
    /// The peer's agent; `None` for an anonymous referee query.
    pub agent: Option<String>,
    /// The socket's remote address.
    pub remote: SocketAddr,
    pub pattern: Pattern,
    /// The other end runs this implementation.
    pub native: bool,
    /// We opened the connection.
    pub initiator: bool,
    pub encrypted: bool,
}

/// What happened to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A handshake completed.
    Open,
    /// An open link ended.
    Close,
    /// A handshake was refused, by us or by the other side.
    Refused,
    /// A connection failed for another reason (connect, socket, protocol, timeout).
    Error,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Close => "close",
            Self::Refused => "refused",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerEvent {
    pub kind: EventKind,
    pub link: u64,
    pub agent: Option<String>,
    pub remote: Option<SocketAddr>,
    pub pattern: Option<Pattern>,
    pub initiator: bool,
    /// A stable code: `ERR_*` for failures, `IDLE_TIMEOUT` / `PEER_CLOSED` /
    /// `LOCAL_CLOSE` for orderly closes.
    pub reason: Option<String>,
    pub message: Option<String>,
    /// For `Close`: the close was orderly, so every message written on the
    /// link reached the other side's reader.
    pub clean: bool,
    /// For `Close`: messages written on the link over its life.
    pub written: u64,
    /// Failures of this kind that were not reported one by one (the rate
    /// gate held them back); this event stands for them too.
    pub suppressed: u64,
}

impl PeerEvent {
    /// A link opened; `remote` is the socket's address when it is known.
    pub fn open(info: &LinkInfo, remote: Option<SocketAddr>) -> Self {
        Self {
            kind: EventKind::Open,
            link: info.link,
            agent: info.agent.clone(),
            remote,
            pattern: Some(info.pattern),
            initiator: info.initiator,
            reason: None,
            message: None,
            clean: true,
            written: 0,
            suppressed: 0,
        }
    }

    /// A connection that never opened: `refused` for a refusal, else `error`.
    /// `link` is 0 for failures that concern no link (an accept that failed).
    pub fn failure(link: u64, agent: Option<String>, remote: Option<SocketAddr>, initiator: bool, err: &Error) -> Self {
        Self {
            kind: if err.is_refusal() { EventKind::Refused } else { EventKind::Error },
            link,
            agent,
            remote,
            pattern: None,
            initiator,
            reason: Some(err.code().to_owned()),
            message: Some(err.to_string()),
            clean: false,
            written: 0,
            suppressed: 0,
        }
    }
}
