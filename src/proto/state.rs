//! The connection's states and the transitions between them
//! (docs/PROTOCOL.md §4, §5a). Every transition takes the state by value and
//! returns the next one, so a state can only be kept by handing it back; an
//! `Err` ends the connection. The handshake steps of each role live in
//! `initiator` and `responder`; this module dispatches to them and owns what
//! both roles share once the handshake is done.

use std::time::Instant;

use super::conn::Context;
use super::event::{Answer, Event, PeerInfo};
use super::frame::{self, Letter};
use super::initiator;
use super::keys::Key;
use super::payload::{self, TicketHello};
use super::responder;
use super::suite::{Handshake, Pattern};
use super::transport::{Limits, Reassembler, Transport};
use crate::error::{CloseReason, Error, Result};

/// A link whose handshake is done: its ciphers, who is at the other end,
/// what that end accepts, and a message being reassembled from fragments.
pub(super) struct Link {
    transport: Transport,
    peer: PeerInfo,
    /// What a native peer accepts; `None` for a JavaScript peer.
    limits: Option<Limits>,
    reassembly: Reassembler,
}

impl Link {
    /// A link to `peer`; `limits` is what a native peer said it accepts.
    pub fn new(mut transport: Transport, peer: PeerInfo, limits: Option<Limits>) -> Self {
        if peer.native {
            transport.set_native();
        }
        Self { transport, peer, limits, reassembly: Reassembler::default() }
    }

    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    pub fn seal(&mut self, message: &[u8], out: &mut bytes::BytesMut) -> Result<()> {
        // A native peer that named no limits takes the protocol's defaults.
        let native = self.peer.native.then(|| self.limits.unwrap_or_else(default_limits));
        self.transport.seal_message(message, native, out)
    }

    /// An empty `T`: a native keepalive, delivered to nobody.
    pub fn keepalive(&mut self) -> Result<Vec<u8>> {
        self.transport.seal(Letter::T, b"")
    }

    /// A `C` for the responder: our limits, as the first transport message.
    pub fn confirmation(&mut self, ours: Limits) -> Result<Vec<u8>> {
        self.transport.seal(Letter::C, &payload::confirm(ours))
    }

    /// The largest frame body we take on this link now.
    pub fn frame_limit(&self, cx: &Context) -> usize {
        if self.peer.native {
            cx.cfg.max_frame
        } else {
            cx.cfg.legacy_frame_limit()
        }
    }

    /// A `T`, `F` or `C` arrived: decrypt it, and act on what it completes.
    fn receive(&mut self, cx: &mut Context, letter: Letter, message: &[u8]) -> Result<()> {
        if letter == Letter::F && !self.peer.native {
            // JavaScript nodes send no F, and their transport messages
            // authenticate no letter: this is a T relabelled on the way.
            return Err(Error::UnexpectedLetter { letter: 'F', state: "open (F is for native peers)" });
        }
        let piece = self.transport.open(letter, message)?;
        if letter == Letter::C {
            self.limits = Some(payload::parse_confirm(&piece)?);
            return Ok(());
        }
        if piece.is_empty() && letter == Letter::T && self.peer.native && self.reassembly.is_idle() {
            return Ok(()); // a keepalive
        }
        if let Some(whole) = self.reassembly.push(piece, letter == Letter::T, cx.cfg.max_message)? {
            payload::check_message(&whole)?;
            cx.event(Event::Message { data: whole, early: false });
        }
        Ok(())
    }
}

fn default_limits() -> Limits {
    Limits { max_message: frame::DEFAULT_MAX_MESSAGE, max_frame: frame::DEFAULT_MAX_FRAME }
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
    /// Responder, after `N`: asking whether the caller is a partner. `K` may arrive meanwhile.
    IdentityKey {
        agent: String,
        early_k: Option<Vec<u8>>,
    },
    /// Responder: key known, waiting for `K`.
    AwaitKey {
        agent: String,
        key: Option<Key>,
    },
    /// Responder: the caller may not connect, but the wire must not say so
    /// before its `K` arrives, as with a caller whose `K` fails to decrypt:
    /// known and unknown agents look alike (docs/PROTOCOL.md §5a).
    Refusing {
        err: Error,
    },
    /// Responder: `A` is sent, and the link waits for the initiator's first
    /// authenticated frame. Until then it routes nothing (docs/PROTOCOL.md §5a).
    Unconfirmed(Box<Link>),
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
            Self::IdentityKey { .. } => "looking up the caller",
            Self::AwaitKey { .. } | Self::Refusing { .. } => "waiting for K",
            Self::Unconfirmed(_) => "waiting for the initiator's confirmation",
            Self::Open(_) => "open",
            Self::Draining(_) => "closing",
            Self::Closed => "closed",
        }
    }

    /// The largest frame body taken now (docs/PROTOCOL.md §6): `max_frame`
    /// until a link is open, more only from a JavaScript peer of an open link.
    pub fn frame_limit(&self, cx: &Context) -> usize {
        match self {
            Self::Open(l) | Self::Draining(l) | Self::Unconfirmed(l) => l.frame_limit(cx),
            _ => cx.cfg.max_frame,
        }
    }

    /// A frame body arrived.
    pub fn on_frame(self, cx: &mut Context, now: Instant, body: &[u8]) -> Result<State> {
        let (byte, message) = frame::split(body)?;
        let letter = Letter::from_byte(byte);
        // Cheap checks first: size, then letter, before any cryptography.
        let limit = self.frame_limit(cx);
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
            (Self::Refusing { err }, Some(Letter::K)) => Err(err),
            (Self::AwaitReply { hs, pattern, agent, key }, Some(Letter::A)) => {
                initiator::reply(cx, now, hs, pattern, agent, key, message)
            }
            // Only the holder of the keys can write this frame: the link is confirmed.
            (Self::Unconfirmed(mut link), Some(l @ (Letter::T | Letter::F | Letter::C))) => {
                if l == Letter::C && !link.peer.native {
                    return Err(Error::UnexpectedLetter { letter: 'C', state: "open (C is for native initiators)" });
                }
                link.receive(cx, l, message)?;
                Ok(cx.confirm(now, link))
            }
            (Self::Open(mut link), Some(l @ (Letter::T | Letter::F))) => {
                cx.touch(now);
                link.receive(cx, l, message)?;
                Ok(Self::Open(link))
            }
            (Self::Draining(mut link), Some(l @ (Letter::T | Letter::F))) => {
                cx.drain_progress(now);
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
            Self::Draining(_) if due(cx.timers.drain) => {
                cx.drain_expired = true;
                Ok(Self::Closed)
            }
            Self::Open(link) if due(cx.timers.idle) => Ok(cx.begin_close(now, link, CloseReason::IdleTimeout)),
            Self::Open(mut link) if due(cx.timers.keepalive) => {
                let body = link.keepalive()?;
                cx.transmits.push_back(body);
                cx.sent(now);
                Ok(Self::Open(link))
            }
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
