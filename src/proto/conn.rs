//! One connection, as the driver sees it: input in, output out, no I/O
//! (docs/PROTOCOL.md §4).
//!
//! The driver feeds it frame bodies (`handle_frame`), answers to its lookups
//! (`handle_lookup`), the end of the stream (`handle_eof`) and the clock
//! (`handle_timeout`), and takes out frame bodies to write (`poll_transmit`),
//! events (`poll_event`) and the next deadline (`poll_timeout`), in the manner
//! of quinn-proto. The connection never decides who a peer is: it asks, with
//! `Event::Need`, and `policy` judges the `Answer`.
//!
//! Any `Err` returned by a `handle_*` call is final: the connection is closed,
//! and the driver flushes what `poll_transmit` still holds (a refusal `A`, at
//! most) before it drops the socket. The state machine itself lives in
//! `state`, where every transition takes the old state by value and returns
//! the next one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::config::Config;
use super::dial::DialSpec;
use super::event::{Answer, Event, PeerInfo};
use super::frame::{self, Letter};
use super::initiator;
use super::replay::ReplayTable;
use super::state::{Link, State};
use super::transport::Transport;
use crate::error::{CloseReason, Error, Result};

/// How far a closing link's wait for the other side's end may be pushed back
/// by frames still arriving, in `drain_timeout`s from the start of the close:
/// a slow reader finishes, a peer that trickles forever cannot hold a close
/// (or `close()`) open without end.
const DRAIN_EXTENSIONS: u32 = 8;

/// Deadlines, as data (quinn's timer table, in small).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Timers {
    /// Until the link is open (for a responder: confirmed).
    pub handshake: Option<Instant>,
    /// No frame either way for this long closes the link.
    pub idle: Option<Instant>,
    /// Nothing sent for this long sends a keepalive (native links).
    pub keepalive: Option<Instant>,
    /// A closing link waits this long for the other side's end of stream,
    /// counted again from each frame that arrives (a slow reader still
    /// finishes), but never past `drain_limit`.
    pub drain: Option<Instant>,
    pub drain_limit: Option<Instant>,
}

/// What every state transition may read and write besides the state: the
/// settings, the node's replay table, and the queues of output.
pub(super) struct Context {
    pub cfg: Arc<Config>,
    pub replay: Arc<Mutex<ReplayTable>>,
    pub initiator: bool,
    /// The agent the other side claims to be, once a handshake message
    /// named it (not proven until the link opens).
    pub claimed: Option<String>,
    pub transmits: VecDeque<Vec<u8>>,
    pub events: VecDeque<Event>,
    pub timers: Timers,
    /// A close ended at `drain_timeout`, without the other side's end of
    /// stream: what we wrote may not have been read.
    pub drain_expired: bool,
}

impl Context {
    pub fn transmit(&mut self, letter: Letter, message: &[u8]) {
        self.transmits.push_back(frame::body(letter, message));
    }

    pub fn event(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// Traffic on the link, either way: the idle timer starts again (both
    /// roles keep one, docs/PROTOCOL.md §6).
    pub fn touch(&mut self, now: Instant) {
        self.timers.idle = self.cfg.idle_timeout.map(|t| now + t);
    }

    /// We wrote a frame: the keepalive timer starts again too.
    pub fn sent(&mut self, now: Instant) {
        self.touch(now);
        self.timers.keepalive = self.cfg.keepalive.map(|t| now + t);
    }

    /// Initiator: the handshake is done and `A` proved the responder: report
    /// it and become `Open`.
    pub fn open(&mut self, now: Instant, link: Link) -> State {
        self.timers.handshake = None;
        self.events.push_back(Event::Open(link.peer().clone()));
        self.keepalive_if_native(now, &link);
        self.touch(now);
        State::Open(Box::new(link))
    }

    /// Responder: `A` is written; the link waits for the initiator's first
    /// authenticated frame, within the handshake deadline, before it opens.
    pub fn accepted(&mut self, transport: Transport, peer: PeerInfo) -> State {
        self.events.push_back(Event::Accepted(peer.clone()));
        State::Unconfirmed(Box::new(Link::new(transport, peer, None)))
    }

    /// Responder: the initiator proved it holds the keys: the link opens.
    pub fn confirm(&mut self, now: Instant, link: Box<Link>) -> State {
        self.timers.handshake = None;
        self.events.push_back(Event::Open(link.peer().clone()));
        self.keepalive_if_native(now, &link);
        self.touch(now);
        State::Open(link)
    }

    fn keepalive_if_native(&mut self, now: Instant, link: &Link) {
        if link.peer().native {
            self.timers.keepalive = self.cfg.keepalive.map(|t| now + t);
        }
    }

    /// A frame arrived on a closing link: the other side is still sending,
    /// so wait for its end a while longer (bounded by `drain_limit`).
    pub fn drain_progress(&mut self, now: Instant) {
        if let (Some(drain), Some(limit)) = (self.timers.drain.as_mut(), self.timers.drain_limit) {
            *drain = (now + self.cfg.drain_timeout).min(limit);
        }
    }

    /// Stop sending on an open link but keep reading what is in flight.
    pub fn begin_close(&mut self, now: Instant, link: Box<Link>, reason: CloseReason) -> State {
        self.timers.drain = Some(now + self.cfg.drain_timeout);
        self.timers.drain_limit = Some(now + self.cfg.drain_timeout * DRAIN_EXTENSIONS);
        self.events.push_back(Event::Closing(reason));
        State::Draining(link)
    }

    pub fn replay_table(&self) -> Result<MutexGuard<'_, ReplayTable>> {
        self.replay.lock().map_err(|_| Error::Internal("replay table poisoned".into()))
    }
}

pub struct Connection {
    cx: Context,
    state: State,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("state", &self.state.name()).field("initiator", &self.cx.initiator).finish()
    }
}

impl Connection {
    /// Open a connection: message 1 (and `N` before a `K`) is queued at once.
    pub fn initiator(cfg: Arc<Config>, now: Instant, spec: DialSpec) -> Result<Self> {
        let mut cx = Context::new(cfg, Arc::default(), now, true);
        let state = initiator::start(&mut cx, spec)?;
        Ok(Self { cx, state })
    }

    /// Accept a connection. `replay` is the node's table, shared by all responders.
    pub fn responder(cfg: Arc<Config>, replay: Arc<Mutex<ReplayTable>>, now: Instant) -> Self {
        Self { cx: Context::new(cfg, replay, now, false), state: State::AwaitHello }
    }

    // ---- getters ------------------------------------------------------------

    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// The handshake is done and the link takes messages to send: open, or
    /// (a responder) waiting for confirmation, when only explicit replies on
    /// this link may use it (docs/PROTOCOL.md §5a).
    pub fn can_send(&self) -> bool {
        matches!(self.state, State::Open(_) | State::Unconfirmed(_))
    }

    /// The largest frame body the connection takes now (docs/PROTOCOL.md §6).
    pub fn frame_limit(&self) -> usize {
        self.state.frame_limit(&self.cx)
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// We opened this connection.
    pub fn is_initiator(&self) -> bool {
        self.cx.initiator
    }

    /// The close ended by `drain_timeout`, not by the other side's end of
    /// stream: nothing says it read what we wrote (the close is not clean).
    pub fn drain_expired(&self) -> bool {
        self.cx.drain_expired
    }

    pub fn is_draining(&self) -> bool {
        matches!(self.state, State::Draining(_))
    }

    /// The agent the other side named in its handshake, proven or not: for
    /// reports about connections that never opened.
    pub fn claimed_agent(&self) -> Option<&str> {
        self.cx.claimed.as_deref()
    }

    pub fn peer(&self) -> Option<&PeerInfo> {
        match &self.state {
            State::Open(l) | State::Draining(l) | State::Unconfirmed(l) => Some(l.peer()),
            _ => None,
        }
    }

    // ---- input ----------------------------------------------------------------

    /// A frame body arrived.
    pub fn handle_frame(&mut self, now: Instant, body: &[u8]) -> Result<()> {
        self.step(|state, cx| state.on_frame(cx, now, body))
    }

    /// The answer to the last `Event::Need`.
    pub fn handle_lookup(&mut self, now: Instant, answer: Answer) -> Result<()> {
        self.step(|state, cx| state.on_lookup(cx, now, answer))
    }

    /// The other side ended its stream (TCP FIN).
    pub fn handle_eof(&mut self) -> Result<()> {
        self.step(|state, _| state.on_eof())
    }

    /// The clock reached `poll_timeout()`.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        self.step(|state, cx| state.on_timeout(cx, now))
    }

    /// The application closes the link: stop sending, drain what is in flight.
    pub fn close(&mut self, now: Instant) {
        let _ = self.step(|state, cx| Ok(state.close(cx, now)));
    }

    /// Encrypt one application message into frames for the socket, appended
    /// to `out` (the write buffer; nothing is appended on an error). Only an
    /// open link sends; the driver queues messages until then.
    pub fn send_into(&mut self, now: Instant, message: &[u8], out: &mut bytes::BytesMut) -> Result<()> {
        self.cx.cfg.check_outgoing(message)?;
        let (State::Open(link) | State::Unconfirmed(link)) = &mut self.state else {
            return Err(Error::ConnectionClosed);
        };
        link.seal(message, out)?;
        if link.peer().native {
            self.cx.sent(now);
        } else {
            // No keepalives to a JavaScript node (docs/PROTOCOL.md §5a).
            self.cx.touch(now);
        }
        Ok(())
    }

    /// `send_into`, as frame bodies (without their length prefixes).
    pub fn send(&mut self, now: Instant, message: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut framed = bytes::BytesMut::new();
        self.send_into(now, message, &mut framed)?;
        Ok(super::frame::bodies(framed))
    }

    // ---- output ---------------------------------------------------------------

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.cx.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.cx.events.pop_front()
    }

    /// The next moment `handle_timeout` must be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = &self.cx.timers;
        match self.state {
            State::Closed => None,
            State::Open(_) => [t.idle, t.keepalive].into_iter().flatten().min(),
            State::Draining(_) => t.drain,
            _ => t.handshake,
        }
    }

    // ---- internals --------------------------------------------------------------

    /// Run one transition. The state is moved out for it and only the
    /// transition's `Ok` puts a state back, so an error leaves the connection
    /// closed for good, and no arm can forget to restore it.
    fn step(&mut self, transition: impl FnOnce(State, &mut Context) -> Result<State>) -> Result<()> {
        let state = std::mem::replace(&mut self.state, State::Closed);
        self.state = transition(state, &mut self.cx)?;
        Ok(())
    }
}

impl Context {
    fn new(cfg: Arc<Config>, replay: Arc<Mutex<ReplayTable>>, now: Instant, initiator: bool) -> Self {
        let timers = Timers { handshake: Some(now + cfg.handshake_timeout), ..Timers::default() };
        Self {
            cfg,
            replay,
            initiator,
            claimed: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timers,
            drain_expired: false,
        }
    }
}
