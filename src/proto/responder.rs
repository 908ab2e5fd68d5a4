//! The responder's side of each handshake (docs/PROTOCOL.md §3-§5): read
//! message 1, ask the store what `policy` needs to know, then accept with an
//! `A` or refuse. Each step takes what its state held and returns the next
//! state.

use std::time::Instant;

use super::conn::Context;
use super::event::{Answer, Event, Need, PeerInfo};
use super::frame::Letter;
use super::keys::{self, Key};
use super::payload::{self, KeyHello, TicketHello};
use super::policy;
use super::state::{handshake, State};
use super::suite::{Handshake, Pattern};
use crate::error::{Error, Result};

/// Read message 1. A failure to decrypt bytes that parse as plaintext means
/// the caller runs in raw mode; a raw node that cannot parse message 1 is
/// most likely talking to an encrypting one. Either way we tell the caller in
/// a plaintext `A` (it would otherwise see only a closed socket), then close.
fn read_hello<T>(
    cx: &mut Context,
    hs: &mut Handshake,
    message: &[u8],
    parse: impl FnOnce(&[u8]) -> Result<T>,
) -> Result<T> {
    let mismatch = |cx: &mut Context, what: &'static str| {
        cx.transmit(Letter::A, &payload::refuse_reply("ERR_MODE_MISMATCH"));
        Error::ModeMismatch(what)
    };
    match hs.read(message) {
        Err(_) if payload::looks_like_plaintext(message) => {
            Err(mismatch(cx, "the peer runs in raw mode and this node encrypts"))
        }
        Err(e) => Err(e),
        Ok(p) => match parse(&p) {
            Err(_) if hs.is_raw() && !payload::looks_like_plaintext(&p) => {
                Err(mismatch(cx, "the peer encrypts and this node runs in raw mode"))
            }
            other => other,
        },
    }
}

/// `I`: a first contact. Refuse replays and unwanted legacy callers before
/// any lookup, then ask for the claimed agent's stored key.
pub(super) fn ticket_hello(cx: &mut Context, message: &[u8]) -> Result<State> {
    let mut hs = handshake(cx, "IK", false, true, None)?;
    let hello = read_hello(cx, &mut hs, message, payload::parse_ticket_hello)?;
    cx.claimed = Some(hello.from.agent.clone());
    keys::check_agent_id(&hello.from.agent).map_err(|why| Error::BadPayload(format!("I: from.agent: {why}")))?;
    let proven = hs.remote_static();
    if proven.as_ref().is_some_and(keys::is_weak) {
        return Err(Error::WeakKey("the caller's static key is of small order".into()));
    }
    match (hello.timestamp, proven) {
        (Some(ts), Some(key)) if !cx.replay_table()?.is_fresh(&key, ts) => return Err(Error::Replay),
        (None, _) if !cx.cfg.accept_legacy => return Err(Error::LegacyRefused),
        (None, Some(key)) if cx.replay_table()?.seen_native(&key) => return Err(downgrade()),
        _ => {}
    }
    if hs.is_raw() {
        // Raw mode proves no key, so there is none to compare: go to the ticket.
        cx.event(Event::Need(Need::Ticket { ticket: hello.ticket.clone(), from: hello.from.clone() }));
        Ok(State::TicketCheck { hs, hello, proven })
    } else {
        cx.event(Event::Need(Need::PeerKey { agent: hello.from.agent.clone() }));
        Ok(State::TicketKey { hs, hello, proven })
    }
}

/// The stored key of the agent an `I` claims to be.
pub(super) fn ticket_key(
    cx: &mut Context,
    hs: Handshake,
    hello: TicketHello,
    proven: Option<Key>,
    answer: Answer,
) -> Result<State> {
    let native = hello.timestamp.is_some();
    let stored = match answer {
        Answer::Key(stored) => stored,
        Answer::Failed(err) => return refuse(cx, hs, native, err),
        other => return Err(unasked(&other)),
    };
    if let Err(e) = policy::check_ticket_caller(&hello.from.agent, proven, stored) {
        return refuse(cx, hs, native, e);
    }
    cx.event(Event::Need(Need::Ticket { ticket: hello.ticket.clone(), from: hello.from.clone() }));
    Ok(State::TicketCheck { hs, hello, proven })
}

/// The ticket store's verdict on an `I`.
pub(super) fn ticket_check(
    cx: &mut Context,
    now: Instant,
    hs: Handshake,
    hello: TicketHello,
    proven: Option<Key>,
    answer: Answer,
) -> Result<State> {
    let native = hello.timestamp.is_some();
    match answer {
        Answer::Ticket(true) => {}
        Answer::Ticket(false) => return refuse(cx, hs, native, Error::TicketRefused),
        Answer::Failed(err) => return refuse(cx, hs, native, err),
        other => return Err(unasked(&other)),
    }
    if let (Some(ts), Some(key)) = (hello.timestamp, proven) {
        // A concurrent handshake may have recorded a newer one meanwhile.
        if !cx.replay_table()?.record(key, ts) {
            return Err(Error::Replay);
        }
    }
    let peer = PeerInfo { agent: Some(hello.from.agent), pattern: Pattern::IK, native, key: proven, initiator: false };
    accept(cx, now, hs, peer, hello.early)
}

/// `N`: the caller names itself; find its key (unless raw mode admits all).
pub(super) fn identity(cx: &mut Context, message: &[u8]) -> Result<State> {
    let mut hs = handshake(cx, "N", false, true, None)?;
    let agent = read_hello(cx, &mut hs, message, payload::parse_identity_hello)?;
    cx.claimed = Some(agent.clone());
    keys::check_agent_id(&agent).map_err(|why| Error::BadPayload(format!("N: agent id: {why}")))?;
    if !policy::asks_for_caller(&cx.cfg) {
        return Ok(State::AwaitKey { agent, key: None });
    }
    cx.event(Event::Need(Need::Partner { agent: agent.clone() }));
    Ok(State::IdentityKey { agent, early_k: None })
}

/// Whether the agent an `N` named is a partner, and its key. A `K` that
/// came meanwhile is read now.
pub(super) fn caller_key(
    cx: &mut Context,
    now: Instant,
    agent: String,
    early_k: Option<Vec<u8>>,
    answer: Answer,
) -> Result<State> {
    let key = match answer {
        Answer::Partner { allowed, key } => policy::caller_key(&cx.cfg, &agent, allowed, key),
        Answer::Failed(Error::LookupFailed(why)) => return Err(Error::LookupFailed(format!("partner {agent}: {why}"))),
        Answer::Failed(err) => return Err(err),
        other => return Err(unasked(&other)),
    };
    match (key, early_k) {
        (Ok(key), Some(k)) => key_hello(cx, now, agent, key, &k),
        (Ok(key), None) => Ok(State::AwaitKey { agent, key }),
        (Err(err), Some(_)) => Err(err),
        // Wait for K before closing, as with a K that does not decrypt.
        (Err(err), None) => Ok(State::Refusing { err }),
    }
}

/// `K`: it decrypts only with the right key; then replay and legacy rules.
pub(super) fn key_hello(
    cx: &mut Context,
    now: Instant,
    agent: String,
    key: Option<Key>,
    message: &[u8],
) -> Result<State> {
    let mut hs = handshake(cx, "KK", false, true, key.as_ref())?;
    // With the right key, K decrypts. If not, the N named someone else:
    // forged, or the agent's key changed.
    let hello = hs.read(message).map_err(|_| Error::KeyMismatch { agent: agent.clone() })?;
    let hello = payload::parse_key_hello(&hello)?;
    let native = matches!(hello, KeyHello::Native { .. });
    let key = key.filter(|_| !hs.is_raw());
    let early = match hello {
        KeyHello::Native { timestamp } => {
            if let Some(k) = key {
                if !cx.replay_table()?.record(k, timestamp) {
                    return Err(Error::Replay);
                }
            }
            None
        }
        KeyHello::Legacy { .. } if !cx.cfg.accept_legacy => return Err(Error::LegacyRefused),
        KeyHello::Legacy { .. } if key.is_some_and(|k| cx.replay_table().is_ok_and(|t| t.seen_native(&k))) => {
            return Err(downgrade())
        }
        KeyHello::Legacy { early } => early,
    };
    let peer = PeerInfo { agent: Some(agent), pattern: Pattern::KK, native, key, initiator: false };
    accept(cx, now, hs, peer, early)
}

/// `Q`: an anonymous referee query.
pub(super) fn query(cx: &mut Context, now: Instant, message: &[u8]) -> Result<State> {
    let mut hs = handshake(cx, "NK", false, true, None)?;
    read_hello(cx, &mut hs, message, payload::parse_query_hello)?;
    if !cx.cfg.referee {
        return refuse(cx, hs, true, Error::RefereeDisabled);
    }
    let peer = PeerInfo { agent: None, pattern: Pattern::NK, native: true, key: None, initiator: false };
    accept(cx, now, hs, peer, None)
}

/// An answer of the wrong kind: a bug in the driver or the store.
fn unasked(answer: &Answer) -> Error {
    Error::Internal(format!("an answer to a question not asked: {answer:?}"))
}

/// A legacy handshake from a key that came native before: refused, or the
/// downgrade would reopen replays (docs/PROTOCOL.md §5a).
fn downgrade() -> Error {
    Error::LegacyRefused
}

/// Send `A`; the link waits for the initiator's confirmation before it opens.
fn accept(cx: &mut Context, _now: Instant, mut hs: Handshake, peer: PeerInfo, early: Option<Vec<u8>>) -> Result<State> {
    let reply = hs.write(&payload::accept_reply(peer.native, cx.cfg.limits()))?;
    cx.transmit(Letter::A, &reply);
    // We wrote the last handshake message, so we send with the first key.
    let transport = hs.into_transport(true)?;
    let state = cx.accepted(transport, peer);
    if let Some(data) = early {
        cx.event(Event::Message { data, early: true });
    }
    Ok(state)
}

/// Refuse a handshake. A native initiator is told why, in an `A` that the
/// handshake authenticates; a JavaScript one could not read it, so it just
/// sees the connection close.
fn refuse(cx: &mut Context, mut hs: Handshake, native: bool, err: Error) -> Result<State> {
    if native {
        // Whether we know the claimed agent at all is not the caller's business:
        // a key that is not the agent's, and an agent we know no key for, read alike.
        let code = if let Error::UnknownPeer { .. } = err {
            Error::KeyMismatch { agent: String::new() }.code()
        } else {
            err.code()
        };
        let reply = hs.write(&payload::refuse_reply(code))?;
        cx.transmit(Letter::A, &reply);
    }
    Err(err)
}
