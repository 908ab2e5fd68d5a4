//! The connection's states and the transitions between them
//! (docs/PROTOCOL.md §4). Every transition takes the state by value and
//! returns the next one, so a state can only be kept by handing it back; an
//! `Err` ends the connection. The handshake steps of each role live in
//! `initiator` and `responder`; this module dispatches to them and owns what
//! both roles share once a link is open.

use std::time::Instant;

use super::conn::Context;
use super::event::{Answer, Event, PeerInfo};
use super::frame::{self, Letter};
use super::initiator;
use super::keys::Key;
use super::payload::{self, TicketHello};
use super::responder;
use super::suite::{Handshake, Pattern};
use super::transport::{Reassembler, Transport};
use crate::error::{CloseReason, Error, Result};

/// An open link: its ciphers, who is at the other end, and a message being
/// reassembled from fragments.
pub(super) struct Link {
    transport: Transport,
    peer: PeerInfo,
    reassembly: Reassembler,
}

impl Link {
    pub fn new(transport: Transport, peer: PeerInfo) -> Self {
        Self { transport, peer, reassembly: Reassembler::default() }
    }

    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    pub fn seal(&mut self, message: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.transport.seal_message(message, self.peer.native)
    }

    /// A `T` or `F` arrived: decrypt it, and report the message it completes.
    fn receive(&mut self, cx: &mut Context, letter: Letter, message: &[u8]) -> Result<()> {
        let piece = self.transport.open(message)?;
        if let Some(whole) = self.reassembly.push(piece, letter == Letter::T, cx.cfg.max_message)? {
            payload::check_message(&whole)?;
            cx.event(Event::Message { data: whole, early: false });
        }
        Ok(())
    }
}

pub(super) enum State {
    /// Initiator: message 1 written, waiting for `A`.
    AwaitReply {
        hs: Handshake,
        pattern: Pattern,
        agent: String,
        key: Option<Key>,
    },
    /// Responder: nothing received yet.
    AwaitHello,
    /// Responder, IK: asking for the stored key of the claimed agent.
    TicketKey {
        hs: Handshake,
        hello: TicketHello,
        proven: Option<Key>,
    },
    /// Responder, IK: asking whether the ticket is good.
    TicketCheck {
        hs: Handshake,
        hello: TicketHello,
        proven: Option<Key>,
    },
    /// Responder, after `N`: asking for the caller's key. `K` may arrive meanwhile.
    IdentityKey {
        agent: String,
        early_k: Option<Vec<u8>>,
    },
    /// Responder: key known, waiting for `K`.
    AwaitKey {
        agent: String,
        key: Option<Key>,
    },
    Open(Box<Link>),
    /// Closing in order: we send nothing more but still read what was in flight.
    Draining(Box<Link>),
    Closed,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            Self::AwaitReply { .. } => "waiting for the handshake reply",
            Self::AwaitHello => "waiting for a handshake",
            Self::TicketKey { .. } | Self::TicketCheck { .. } => "checking a ticket",
            Self::IdentityKey { .. } => "looking up the caller's key",
            Self::AwaitKey { .. } => "waiting for K",
            Self::Open(_) => "open",
            Self::Draining(_) => "closing",
            Self::Closed => "closed",
        }
    }

    /// A frame body arrived.
    pub fn on_frame(self, cx: &mut Context, now: Instant, body: &[u8]) -> Result<State> {
        let (byte, message) = frame::split(body)?;
        let letter = Letter::from_byte(byte);
        // Cheap checks first: size, then letter, before any cryptography.
        let legacy_transport = matches!((&self, letter),
            (Self::Open(l) | Self::Draining(l), Some(Letter::T)) if !l.peer.native);
        let limit = if legacy_transport { cx.cfg.codec_limit() } else { cx.cfg.max_frame };
        if body.len() > limit {
            return Err(Error::FrameTooLarge { max: limit });
        }
        match (self, letter) {
            (Self::AwaitHello, Some(Letter::I)) => responder::ticket_hello(cx, message),
            (Self::AwaitHello, Some(Letter::N)) => responder::identity(cx, message),
            (Self::AwaitHello, Some(Letter::Q)) => responder::query(cx, now, message),
            (Self::IdentityKey { agent, early_k: None }, Some(Letter::K)) => {
                Ok(Self::IdentityKey { agent, early_k: Some(message.to_vec()) })
            }
            (Self::AwaitKey { agent, key }, Some(Letter::K)) => responder::key_hello(cx, now, agent, key, message),
            (Self::AwaitReply { hs, pattern, agent, key }, Some(Letter::A)) => {
                initiator::reply(cx, now, hs, pattern, agent, key, message)
            }
            (Self::Open(mut link), Some(l @ (Letter::T | Letter::F))) => {
                cx.touch(now);
                link.receive(cx, l, message)?;
                Ok(Self::Open(link))
            }
            (Self::Draining(mut link), Some(l @ (Letter::T | Letter::F))) => {
                link.receive(cx, l, message)?;
                Ok(Self::Draining(link))
            }
            (state, _) => Err(Error::UnexpectedLetter { letter: char::from(byte), state: state.name() }),
        }
    }

    /// The answer to the last `Event::Need`.
    pub fn on_lookup(self, cx: &mut Context, now: Instant, answer: Answer) -> Result<State> {
        match self {
            Self::TicketKey { hs, hello, proven } => responder::ticket_key(cx, hs, hello, proven, answer),
            Self::TicketCheck { hs, hello, proven } => responder::ticket_check(cx, now, hs, hello, proven, answer),
            Self::IdentityKey { agent, early_k } => responder::caller_key(cx, now, agent, early_k, answer),
            state => Err(Error::Internal(format!("lookup answer {answer:?} while {}", state.name()))),
        }
    }

    /// The other side ended its stream.
    pub fn on_eof(self) -> Result<State> {
        match self {
            Self::Open(link) | Self::Draining(link) if link.reassembly.is_idle() => Ok(Self::Closed),
            Self::Open(_) | Self::Draining(_) => Err(Error::ConnectionClosed),
            Self::Closed => Ok(Self::Closed),
            Self::AwaitReply { .. } => Err(Error::HandshakeRejected),
            _ => Err(Error::ConnectionClosed),
        }
    }

    /// The clock reached the deadline of the current state.
    pub fn on_timeout(self, cx: &mut Context, now: Instant) -> Result<State> {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        match self {
            Self::Draining(_) if due(cx.timers.drain) => Ok(Self::Closed),
            Self::Open(link) if due(cx.timers.idle) => Ok(cx.begin_close(now, link, CloseReason::IdleTimeout)),
            state @ (Self::Open(_) | Self::Draining(_) | Self::Closed) => Ok(state),
            _ if due(cx.timers.handshake) => {
                let ms = u64::try_from(cx.cfg.handshake_timeout.as_millis()).unwrap_or(u64::MAX);
                Err(Error::HandshakeTimeout { ms })
            }
            state => Ok(state),
        }
    }

    /// The application closes the link.
    pub fn close(self, cx: &mut Context, now: Instant) -> State {
        match self {
            Self::Open(link) => cx.begin_close(now, link, CloseReason::Local),
            state @ Self::Draining(_) => state,
            _ => Self::Closed,
        }
    }
}

/// Build the handshake state for `pattern`, or the raw pass-through.
pub(super) fn handshake(
    cx: &Context,
    pattern: &str,
    initiator: bool,
    with_local: bool,
    remote: Option<&Key>,
) -> Result<Handshake> {
    match cx.cfg.local_private() {
        None => Ok(Handshake::raw()),
        Some(local) if initiator => Handshake::initiator(pattern, with_local.then_some(local), remote),
        Some(local) => Handshake::responder(pattern, Some(local), remote),
    }
}
