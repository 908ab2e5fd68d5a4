//! What the driver reports to the application: messages and link events,
//! through a `Sink`.

use std::net::SocketAddr;
use std::time::Instant;

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
    /// How many other failures the rate gate held back before this one and
    /// reports only through this count (0 for an event reported on its own):
    /// this event plus `suppressed` is the number of failures it stands for.
    pub suppressed: u64,
}

/// Failure events (refusals, errors of connections that never opened) are
/// what a stranger can make us produce at will: at most `rate` a second are
/// reported one by one; the rest are counted, and the latest of them is
/// reported with `suppressed` set once the rate allows again.
#[derive(Debug)]
pub struct EventGate {
    rate: f64,
    tokens: f64,
    at: Option<Instant>,
    held: Option<PeerEvent>,
}

impl EventGate {
    pub fn new(rate: u32) -> Self {
        let rate = f64::from(rate);
        Self { rate, tokens: rate, at: None, held: None }
    }

    /// Offer a failure event at `now`: returns the held summary to report
    /// first (if the gate reopened) and whether to report `event` itself.
    pub fn admit(&mut self, now: Instant, event: &PeerEvent) -> (Option<PeerEvent>, bool) {
        let elapsed = self.at.map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            (self.held.take(), true)
        } else {
            // The held event is the latest; it counts the ones before it.
            let suppressed = self.held.as_ref().map_or(0, |h| h.suppressed + 1);
            self.held = Some(PeerEvent { suppressed, ..event.clone() });
            (None, false)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn refusal(port: u16) -> PeerEvent {
        let remote = SocketAddr::from(([127, 0, 0, 1], port));
        PeerEvent::failure(0, None, Some(remote), false, &Error::UnknownPeer { agent: "x".into() })
    }

    #[test]
    fn the_gate_passes_its_rate_then_counts_the_rest_into_one_event() {
        let mut gate = EventGate::new(3);
        let t0 = Instant::now();
        let mut reported = Vec::new();
        for port in 1..=10 {
            let (held, pass) = gate.admit(t0, &refusal(port));
            reported.extend(held);
            if pass {
                reported.push(refusal(port));
            }
        }
        assert_eq!(reported.len(), 3, "three a second pass at once");
        // A second later the gate has room again: the summary comes first.
        let (held, pass) = gate.admit(t0 + Duration::from_secs(1), &refusal(11));
        let held = held.expect("the held summary");
        assert!(pass);
        assert_eq!(held.remote.map(|r| r.port()), Some(10), "the latest held event stands for the rest");
        assert_eq!(held.suppressed, 6, "events 4..=9 are counted in it");
        let total: u64 = reported.iter().chain([&held, &refusal(11)]).map(|e| 1 + e.suppressed).sum();
        assert_eq!(total, 11, "each failure is counted exactly once");
    }
}
