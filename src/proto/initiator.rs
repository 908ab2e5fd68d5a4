//! The initiator's side of each handshake (docs/PROTOCOL.md §3, §4): write
//! message 1 (`I`, or `N` then `K`, or `Q`) and read the responder's `A`.

use std::time::Instant;

use super::conn::Context;
use super::dial::{Dial, DialSpec};
use super::event::PeerInfo;
use super::frame::Letter;
use super::keys::Key;
use super::payload::{self, Reply};
use super::state::{handshake, Link, State};
use super::suite::{Handshake, Pattern};
use crate::error::{Error, Result};

/// Queue message 1 (and `N` before a `K`) and wait for the reply.
pub(super) fn start(cx: &mut Context, spec: DialSpec) -> Result<State> {
    let remote = spec.remote_key;
    if !cx.cfg.is_raw() && remote.is_none() {
        return Err(Error::UnknownPeer { agent: spec.remote_agent });
    }
    cx.claimed = Some(spec.remote_agent.clone());
    let remote_ref = remote.as_ref();
    let (pattern, letter, hs, msg) = match &spec.dial {
        Dial::Ticket { ticket, from } => {
            let mut hs = handshake(cx, "IK", true, true, remote_ref)?;
            let msg = hs.write(&payload::ticket_hello(ticket, from, spec.timestamp))?;
            (Pattern::IK, Letter::I, hs, msg)
        }
        Dial::Key => {
            let mut n = handshake(cx, "N", true, false, remote_ref)?;
            let id = n.write(&payload::identity_hello(&spec.local_agent))?;
            cx.transmit(Letter::N, &id);
            let mut hs = handshake(cx, "KK", true, true, remote_ref)?;
            let msg = hs.write(&payload::key_hello(spec.timestamp))?;
            (Pattern::KK, Letter::K, hs, msg)
        }
        Dial::Referee => {
            let mut hs = handshake(cx, "NK", true, false, remote_ref)?;
            let msg = hs.write(&payload::query_hello())?;
            (Pattern::NK, Letter::Q, hs, msg)
        }
    };
    cx.transmit(letter, &msg);
    Ok(State::AwaitReply { hs, pattern, agent: spec.remote_agent, key: remote })
}

/// `A`: accepted (native or legacy), or refused with a reason.
pub(super) fn reply(
    cx: &mut Context,
    now: Instant,
    mut hs: Handshake,
    pattern: Pattern,
    agent: String,
    key: Option<Key>,
    message: &[u8],
) -> Result<State> {
    let reply = match hs.read(message) {
        Ok(p) => payload::parse_reply(&p),
        // A refusal in plaintext can only be the mode-mismatch notice.
        Err(_) => match payload::parse_reply(message) {
            Reply::Refused(code) if code == "ERR_MODE_MISMATCH" => {
                return Err(Error::ModeMismatch("the peer runs in raw mode and this node encrypts"))
            }
            _ => return Err(Error::Decrypt),
        },
    };
    let limits = match reply {
        Reply::Native(limits) => Some(limits),
        Reply::Legacy => None,
        Reply::Refused(code) => return Err(refusal(&code, hs.is_raw(), &agent)),
    };
    // Raw mode proves no key, whatever we dialled with.
    let key = key.filter(|_| !hs.is_raw());
    // The responder wrote the last message, so it sends with the first key.
    let transport = hs.into_transport(false)?;
    let peer = PeerInfo { agent: Some(agent), pattern, native: limits.is_some(), key, initiator: true };
    let mut link = Link::new(transport, peer, limits);
    if limits.is_some() {
        // Our first transport message proves to the responder that we hold the
        // keys, so it may route to this link (docs/PROTOCOL.md §5a).
        let c = link.confirmation(cx.cfg.limits())?;
        cx.transmits.push_back(c);
        cx.sent(now);
    }
    Ok(cx.open(now, link))
}

/// The error for a refusal code from an authenticated `A`.
fn refusal(code: &str, raw: bool, agent: &str) -> Error {
    match code {
        "ERR_TICKET_REFUSED" => Error::TicketRefused,
        "ERR_REFEREE_DISABLED" => Error::RefereeDisabled,
        "ERR_MODE_MISMATCH" if raw => Error::ModeMismatch("the peer encrypts and this node runs in raw mode"),
        "ERR_KEY_MISMATCH" => Error::PeerRefused(format!("{code}: it holds another key for us than the one we used")),
        "ERR_UNKNOWN_PEER" => Error::PeerRefused(format!("{code}: it does not know our key")),
        other => Error::PeerRefused(format!("{other} (from {agent})")),
    }
}
