//! One connection's protocol state machine, with no I/O (PROTOCOL.md §4).
//!
//! The driver feeds it frame bodies (`handle_frame`), answers to its lookups
//! (`handle_lookup`), the end of the stream (`handle_eof`) and the clock
//! (`handle_timeout`), and takes out frame bodies to write (`poll_transmit`),
//! events (`poll_event`) and the next deadline (`poll_timeout`), in the manner
//! of quinn-proto. The connection never decides who a peer is: it asks, with
//! `Event::Need`, and acts on the `Answer`.
//!
//! Any `Err` returned by a `handle_*` call is final: the connection is closed,
//! and the driver flushes what `poll_transmit` still holds (a refusal `A`, at
//! most) before it drops the socket.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::frame::{self, Letter, DEFAULT_MAX_FRAME, DEFAULT_MAX_MESSAGE, TAG_LEN};
use super::keys::{agent_key, Identity, Key};
use super::payload::{self, Address, KeyHello, Reply, TicketHello};
use super::replay::ReplayTable;
use super::suite::{Handshake, Pattern};
use super::transport::{Reassembler, Transport};
use crate::error::{CloseReason, Error, Result};

/// Settings shared by every connection of a node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our identity. `None` runs in raw mode (PROTOCOL.md §7).
    pub identity: Option<Identity>,
    /// Largest frame body accepted (PROTOCOL.md §6).
    pub max_frame: usize,
    /// Largest reassembled message accepted or sent (PROTOCOL.md §6).
    pub max_message: usize,
    /// A connection not open this long after accept or connect is closed.
    pub handshake_timeout: Duration,
    /// The responder closes a link that carried no frame this long.
    pub idle_timeout: Option<Duration>,
    /// After an orderly close starts, how long to keep reading for the
    /// other side's last frames before giving up on its end of stream.
    pub drain_timeout: Duration,
    /// Answer `Q` referee queries.
    pub referee: bool,
    /// Accept JavaScript (legacy) initiators, whose message 1 can be replayed.
    pub accept_legacy: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            identity: None,
            max_frame: DEFAULT_MAX_FRAME,
            max_message: DEFAULT_MAX_MESSAGE,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(60)),
            drain_timeout: Duration::from_secs(2),
            referee: false,
            accept_legacy: false,
        }
    }
}

impl Config {
    /// The largest frame body the codec must let through: a JavaScript peer
    /// sends a long message as one oversized `T` (PROTOCOL.md §9).
    pub fn codec_limit(&self) -> usize {
        if self.accept_legacy {
            self.max_frame.max(self.max_message + 1 + TAG_LEN)
        } else {
            self.max_frame
        }
    }

    fn local_private(&self) -> Option<&Key> {
        self.identity.as_ref().map(|i| &i.private)
    }
}

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
    /// The responder's static key; `None` only in raw mode.
    pub remote_key: Option<Key>,
    /// A timestamp newer than any we used before (PROTOCOL.md §5).
    pub timestamp: u64,
}

/// A question the connection needs answered before it can go on.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    /// What is this agent's static key? (No key: not a partner.)
    PeerKey { agent: String },
    /// May this ticket open a link?
    Ticket { ticket: Value, from: Address },
}

/// The driver's answer to a `Need`.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Key(Option<Key>),
    Ticket(bool),
    /// The lookup itself failed (callback threw, database down, deadline).
    Failed(String),
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
    /// The handshake completed.
    Open(PeerInfo),
    /// A whole application message (JSON object text). `early` marks a legacy
    /// initiator's message that rode in its replayable message 1.
    Message { data: Vec<u8>, early: bool },
    /// An orderly close began on our side: stop sending, keep reading.
    Closing(CloseReason),
}

struct Link {
    transport: Transport,
    peer: PeerInfo,
    reassembly: Reassembler,
}

enum State {
    /// Initiator: message 1 written, waiting for `A`.
    AwaitReply { hs: Handshake, pattern: Pattern, agent: String, key: Option<Key> },
    /// Responder: nothing received yet.
    AwaitHello,
    /// Responder, IK: asking for the stored key of the claimed agent.
    TicketKey { hs: Handshake, hello: TicketHello, proven: Option<Key> },
    /// Responder, IK: asking whether the ticket is good.
    TicketCheck { hs: Handshake, hello: TicketHello, proven: Option<Key> },
    /// Responder, after `N`: asking for the caller's key. `K` may arrive meanwhile.
    IdentityKey { agent: String, early_k: Option<Vec<u8>> },
    /// Responder: key known, waiting for `K`.
    AwaitKey { agent: String, key: Option<Key> },
    Open(Box<Link>),
    /// Closing in order: we send nothing more but still read what was in flight.
    Draining(Box<Link>),
    Closed,
}

impl State {
    fn name(&self) -> &'static str {
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
}

/// Deadlines, as data (quinn's timer table, in small).
#[derive(Debug, Default, Clone, Copy)]
struct Timers {
    handshake: Option<Instant>,
    idle: Option<Instant>,
    drain: Option<Instant>,
}

pub struct Connection {
    cfg: Arc<Config>,
    replay: Arc<Mutex<ReplayTable>>,
    state: State,
    initiator: bool,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    timers: Timers,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("state", &self.state.name())
            .field("initiator", &self.initiator)
            .finish()
    }
}

impl Connection {
    /// Open a connection: message 1 (and `N` before a `K`) is queued at once.
    pub fn initiator(cfg: Arc<Config>, now: Instant, spec: DialSpec) -> Result<Self> {
        let mut conn = Self::new(cfg, Arc::default(), now, true);
        let local = conn.cfg.local_private().copied();
        let remote = spec.remote_key;
        if local.is_some() && remote.is_none() {
            return Err(Error::UnknownPeer { agent: spec.remote_agent });
        }
        let handshake = |pattern: &str, with_local: bool| match local {
            None => Ok(Handshake::raw()),
            Some(ref l) => Handshake::initiator(pattern, with_local.then_some(l), remote.as_ref()),
        };
        let pattern = match &spec.dial {
            Dial::Ticket { ticket, from } => {
                let mut hs = handshake("IK", true)?;
                let msg = hs.write(&payload::ticket_hello(ticket, from, spec.timestamp))?;
                conn.transmits.push_back(frame::body(Letter::I, &msg));
                conn.state = State::AwaitReply { hs, pattern: Pattern::IK, agent: spec.remote_agent, key: remote };
                Pattern::IK
            }
            Dial::Key => {
                let mut n = handshake("N", false)?;
                let msg = n.write(&payload::identity_hello(&spec.local_agent))?;
                conn.transmits.push_back(frame::body(Letter::N, &msg));
                let mut hs = handshake("KK", true)?;
                let msg = hs.write(&payload::key_hello(spec.timestamp))?;
                conn.transmits.push_back(frame::body(Letter::K, &msg));
                conn.state = State::AwaitReply { hs, pattern: Pattern::KK, agent: spec.remote_agent, key: remote };
                Pattern::KK
            }
            Dial::Referee => {
                let mut hs = handshake("NK", false)?;
                let msg = hs.write(&payload::query_hello())?;
                conn.transmits.push_back(frame::body(Letter::Q, &msg));
                conn.state = State::AwaitReply { hs, pattern: Pattern::NK, agent: spec.remote_agent, key: remote };
                Pattern::NK
            }
        };
        debug_assert!(matches!(conn.state, State::AwaitReply { pattern: p, .. } if p == pattern));
        Ok(conn)
    }

    /// Accept a connection. `replay` is the node's table, shared by all responders.
    pub fn responder(cfg: Arc<Config>, replay: Arc<Mutex<ReplayTable>>, now: Instant) -> Self {
        Self::new(cfg, replay, now, false)
    }

    fn new(cfg: Arc<Config>, replay: Arc<Mutex<ReplayTable>>, now: Instant, initiator: bool) -> Self {
        let timers = Timers { handshake: Some(now + cfg.handshake_timeout), ..Timers::default() };
        Self {
            cfg,
            replay,
            state: State::AwaitHello,
            initiator,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timers,
        }
    }

    // ---- getters ------------------------------------------------------------

    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// We opened this connection.
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    pub fn is_draining(&self) -> bool {
        matches!(self.state, State::Draining(_))
    }

    pub fn peer(&self) -> Option<&PeerInfo> {
        match &self.state {
            State::Open(l) | State::Draining(l) => Some(&l.peer),
            _ => None,
        }
    }

    // ---- input ----------------------------------------------------------------

    /// A frame body arrived.
    pub fn handle_frame(&mut self, now: Instant, body: &[u8]) -> Result<()> {
        let result = self.on_frame(now, body);
        self.settle(result)
    }

    /// The answer to the last `Event::Need`.
    pub fn handle_lookup(&mut self, now: Instant, answer: Answer) -> Result<()> {
        let result = self.on_lookup(now, answer);
        self.settle(result)
    }

    /// The other side ended its stream (TCP FIN).
    pub fn handle_eof(&mut self) -> Result<()> {
        let result = match std::mem::replace(&mut self.state, State::Closed) {
            State::Open(link) | State::Draining(link) if link.reassembly.is_idle() => Ok(()),
            State::Open(_) | State::Draining(_) => Err(Error::ConnectionClosed),
            State::Closed => Ok(()),
            State::AwaitReply { .. } => Err(Error::HandshakeRejected),
            _ => Err(Error::ConnectionClosed),
        };
        self.settle(result)
    }

    /// The clock reached `poll_timeout()`.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        let result = match &self.state {
            State::Open(_) | State::Draining(_) | State::Closed => Ok(()),
            _ if due(self.timers.handshake) => {
                let ms = u64::try_from(self.cfg.handshake_timeout.as_millis()).unwrap_or(u64::MAX);
                Err(Error::HandshakeTimeout { ms })
            }
            _ => Ok(()),
        };
        if result.is_ok() {
            if due(self.timers.drain) && self.is_draining() {
                self.state = State::Closed;
            } else if due(self.timers.idle) && self.is_open() {
                self.begin_close(now, CloseReason::IdleTimeout);
            }
        }
        self.settle(result)
    }

    /// The application closes the link: stop sending, drain what is in flight.
    pub fn close(&mut self, now: Instant) {
        match self.state {
            State::Open(_) => self.begin_close(now, CloseReason::Local),
            State::Draining(_) | State::Closed => {}
            _ => self.state = State::Closed,
        }
    }

    /// Encrypt one application message into frame bodies for the socket. Only
    /// an open link sends; the driver queues messages until then.
    pub fn send(&mut self, now: Instant, message: &[u8]) -> Result<Vec<Vec<u8>>> {
        if message.len() > self.cfg.max_message {
            return Err(Error::InvalidArgument(format!(
                "message of {} bytes exceeds the limit of {} bytes",
                message.len(),
                self.cfg.max_message
            )));
        }
        if !payload::opens_object(message) {
            return Err(Error::InvalidArgument("a message must be a JSON object".into()));
        }
        let State::Open(link) = &mut self.state else { return Err(Error::ConnectionClosed) };
        let frames = link.transport.seal_message(message, link.peer.native)?;
        self.touch(now);
        Ok(frames)
    }

    // ---- output ---------------------------------------------------------------

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next moment `handle_timeout` must be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Closed => None,
            State::Open(_) => self.timers.idle,
            State::Draining(_) => self.timers.drain,
            _ => self.timers.handshake,
        }
    }

    // ---- internals --------------------------------------------------------------

    /// Any error closes the connection for good.
    fn settle(&mut self, result: Result<()>) -> Result<()> {
        if result.is_err() {
            self.state = State::Closed;
        }
        result
    }

    fn touch(&mut self, now: Instant) {
        if !self.initiator {
            self.timers.idle = self.cfg.idle_timeout.map(|t| now + t);
        }
    }

    fn begin_close(&mut self, now: Instant, reason: CloseReason) {
        if let State::Open(link) = std::mem::replace(&mut self.state, State::Closed) {
            self.state = State::Draining(link);
            self.timers.drain = Some(now + self.cfg.drain_timeout);
            self.events.push_back(Event::Closing(reason));
        }
    }

    fn is_raw(&self) -> bool {
        self.cfg.identity.is_none()
    }

    fn on_frame(&mut self, now: Instant, body: &[u8]) -> Result<()> {
        let (byte, message) = frame::split(body)?;
        let letter = Letter::from_byte(byte);
        // Cheap checks first: size, then letter, before any cryptography.
        let legacy_transport = matches!((&self.state, letter),
            (State::Open(l) | State::Draining(l), Some(Letter::T)) if !l.peer.native);
        let limit = if legacy_transport { self.cfg.codec_limit() } else { self.cfg.max_frame };
        if body.len() > limit {
            return Err(Error::FrameTooLarge { max: limit });
        }
        let state = std::mem::replace(&mut self.state, State::Closed);
        match (state, letter) {
            (State::AwaitHello, Some(Letter::I)) => self.on_ticket_hello(message),
            (State::AwaitHello, Some(Letter::N)) => self.on_identity(message),
            (State::AwaitHello, Some(Letter::Q)) => self.on_query(now, message),
            (State::IdentityKey { agent, early_k: None }, Some(Letter::K)) => {
                self.state = State::IdentityKey { agent, early_k: Some(message.to_vec()) };
                Ok(())
            }
            (State::AwaitKey { agent, key }, Some(Letter::K)) => self.on_key_hello(now, agent, key, message),
            (State::AwaitReply { hs, pattern, agent, key }, Some(Letter::A)) => {
                self.on_reply(now, hs, pattern, agent, key, message)
            }
            (State::Open(link), Some(l @ (Letter::T | Letter::F))) => {
                self.state = State::Open(link);
                self.touch(now);
                self.on_transport(l, message)
            }
            (State::Draining(link), Some(l @ (Letter::T | Letter::F))) => {
                self.state = State::Draining(link);
                self.on_transport(l, message)
            }
            (state, _) => Err(Error::UnexpectedLetter { letter: char::from(byte), state: state.name() }),
        }
    }

    fn on_transport(&mut self, letter: Letter, message: &[u8]) -> Result<()> {
        let max = self.cfg.max_message;
        let (State::Open(link) | State::Draining(link)) = &mut self.state else {
            return Err(Error::Internal("transport frame outside an open link".into()));
        };
        let piece = link.transport.open(message)?;
        if let Some(whole) = link.reassembly.push(piece, letter == Letter::T, max)? {
            payload::check_message(&whole)?;
            self.events.push_back(Event::Message { data: whole, early: false });
        }
        Ok(())
    }

    /// Read message 1 of a responder handshake. A failure to decrypt bytes that
    /// parse as plaintext means the caller runs in raw mode; a raw node that
    /// cannot parse message 1 is most likely talking to an encrypting one.
    /// Either way we tell the caller in a plaintext `A` (it would otherwise see
    /// only a closed socket), then close.
    fn read_hello<T>(
        &mut self,
        hs: &mut Handshake,
        message: &[u8],
        parse: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<T> {
        let mismatch = |this: &mut Self, what: &'static str| {
            this.transmits.push_back(frame::body(Letter::A, &payload::refuse_reply("ERR_MODE_MISMATCH")));
            Error::ModeMismatch(what)
        };
        match hs.read(message) {
            Err(_) if payload::looks_like_plaintext(message) => {
                Err(mismatch(self, "the peer runs in raw mode and this node encrypts"))
            }
            Err(e) => Err(e),
            Ok(p) => match parse(&p) {
                Err(_) if hs.is_raw() && !payload::looks_like_plaintext(&p) => {
                    Err(mismatch(self, "the peer encrypts and this node runs in raw mode"))
                }
                other => other,
            },
        }
    }

    fn on_ticket_hello(&mut self, message: &[u8]) -> Result<()> {
        let mut hs = match self.cfg.local_private() {
            Some(k) => Handshake::responder("IK", Some(k), None)?,
            None => Handshake::raw(),
        };
        let hello = self.read_hello(&mut hs, message, payload::parse_ticket_hello)?;
        let proven = hs.remote_static();
        match (hello.timestamp, proven) {
            (Some(ts), Some(key)) if !self.replay_table()?.is_fresh(&key, ts) => return Err(Error::Replay),
            (None, _) if !self.cfg.accept_legacy => return Err(Error::LegacyRefused),
            _ => {}
        }
        if hs.is_raw() {
            // Raw mode proves no key, so there is none to compare: go to the ticket.
            self.events.push_back(Event::Need(Need::Ticket { ticket: hello.ticket.clone(), from: hello.from.clone() }));
            self.state = State::TicketCheck { hs, hello, proven };
        } else {
            self.events.push_back(Event::Need(Need::PeerKey { agent: hello.from.agent.clone() }));
            self.state = State::TicketKey { hs, hello, proven };
        }
        Ok(())
    }

    fn on_identity(&mut self, message: &[u8]) -> Result<()> {
        let mut hs = match self.cfg.local_private() {
            Some(k) => Handshake::responder("N", Some(k), None)?,
            None => Handshake::raw(),
        };
        let agent = self.read_hello(&mut hs, message, payload::parse_identity_hello)?;
        self.events.push_back(Event::Need(Need::PeerKey { agent: agent.clone() }));
        self.state = State::IdentityKey { agent, early_k: None };
        Ok(())
    }

    fn on_query(&mut self, now: Instant, message: &[u8]) -> Result<()> {
        let mut hs = match self.cfg.local_private() {
            Some(k) => Handshake::responder("NK", Some(k), None)?,
            None => Handshake::raw(),
        };
        self.read_hello(&mut hs, message, payload::parse_query_hello)?;
        if !self.cfg.referee {
            return self.refuse(hs, true, Error::RefereeDisabled);
        }
        let peer = PeerInfo { agent: None, pattern: Pattern::NK, native: true, key: None, initiator: false };
        self.accept(now, hs, peer, None)
    }

    fn on_key_hello(&mut self, now: Instant, agent: String, key: Option<Key>, message: &[u8]) -> Result<()> {
        let mut hs = match self.cfg.local_private() {
            Some(k) => Handshake::responder("KK", Some(k), key.as_ref())?,
            None => Handshake::raw(),
        };
        // With the right key, K decrypts. If not, the N named someone else:
        // forged, or the agent's key changed.
        let hello = hs.read(message).map_err(|_| Error::KeyMismatch { agent: agent.clone() })?;
        let hello = payload::parse_key_hello(&hello)?;
        let native = matches!(hello, KeyHello::Native { .. });
        let early = match hello {
            KeyHello::Native { timestamp } => {
                if let Some(k) = key.filter(|_| !hs.is_raw()) {
                    if !self.replay_table()?.record(k, timestamp) {
                        return Err(Error::Replay);
                    }
                }
                None
            }
            KeyHello::Legacy { .. } if !self.cfg.accept_legacy => return Err(Error::LegacyRefused),
            KeyHello::Legacy { early } => early,
        };
        let peer = PeerInfo {
            agent: Some(agent),
            pattern: Pattern::KK,
            native,
            key: key.filter(|_| !hs.is_raw()),
            initiator: false,
        };
        self.accept(now, hs, peer, early)
    }

    fn on_reply(
        &mut self,
        now: Instant,
        mut hs: Handshake,
        pattern: Pattern,
        agent: String,
        key: Option<Key>,
        message: &[u8],
    ) -> Result<()> {
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
        let native = match reply {
            Reply::Native => true,
            Reply::Legacy => false,
            Reply::Refused(code) => return Err(refusal(&code, hs.is_raw(), &agent)),
        };
        // Raw mode proves no key, whatever we dialled with.
        let key = key.filter(|_| !hs.is_raw());
        // The responder wrote the last message, so it sends with the first key.
        let transport = hs.into_transport(false)?;
        let peer = PeerInfo { agent: Some(agent), pattern, native, key, initiator: true };
        self.open(now, transport, peer);
        Ok(())
    }

    fn on_lookup(&mut self, now: Instant, answer: Answer) -> Result<()> {
        let state = std::mem::replace(&mut self.state, State::Closed);
        match (state, answer) {
            (State::TicketKey { hs, hello, .. }, Answer::Failed(why))
            | (State::TicketCheck { hs, hello, .. }, Answer::Failed(why)) => {
                let native = hello.timestamp.is_some();
                self.refuse(hs, native, Error::LookupFailed(why))
            }
            (State::TicketKey { hs, hello, proven }, Answer::Key(stored)) => {
                let native = hello.timestamp.is_some();
                let agent = hello.from.agent.clone();
                // The proven key must be the claimed agent's: the one its id
                // names, and the stored one when the store has one.
                let derived = agent_key(&agent);
                if derived.is_none() && stored.is_none() {
                    return self.refuse(hs, native, Error::UnknownPeer { agent });
                }
                if [derived, stored].iter().flatten().any(|k| Some(*k) != proven) {
                    return self.refuse(hs, native, Error::KeyMismatch { agent });
                }
                self.events.push_back(Event::Need(Need::Ticket { ticket: hello.ticket.clone(), from: hello.from.clone() }));
                self.state = State::TicketCheck { hs, hello, proven };
                Ok(())
            }
            (State::TicketCheck { hs, hello, .. }, Answer::Ticket(false)) => {
                self.refuse(hs, hello.timestamp.is_some(), Error::TicketRefused)
            }
            (State::TicketCheck { hs, hello, proven }, Answer::Ticket(true)) => {
                if let (Some(ts), Some(key)) = (hello.timestamp, proven) {
                    // A concurrent handshake may have recorded a newer one meanwhile.
                    if !self.replay_table()?.record(key, ts) {
                        return Err(Error::Replay);
                    }
                }
                let peer = PeerInfo {
                    agent: Some(hello.from.agent.clone()),
                    pattern: Pattern::IK,
                    native: hello.timestamp.is_some(),
                    key: proven,
                    initiator: false,
                };
                self.accept(now, hs, peer, hello.early)
            }
            (State::IdentityKey { agent, .. }, Answer::Key(None)) => Err(Error::UnknownPeer { agent }),
            (State::IdentityKey { agent, .. }, Answer::Failed(why)) => {
                Err(Error::LookupFailed(format!("key of {agent}: {why}")))
            }
            (State::IdentityKey { agent, early_k }, Answer::Key(key @ Some(_))) => {
                let key = if self.is_raw() { None } else { key };
                match early_k {
                    Some(k) => self.on_key_hello(now, agent, key, &k),
                    None => {
                        self.state = State::AwaitKey { agent, key };
                        Ok(())
                    }
                }
            }
            (state, answer) => {
                let name = state.name();
                self.state = state;
                Err(Error::Internal(format!("lookup answer {answer:?} while {name}")))
            }
        }
    }

    /// Send `A` and open the link.
    fn accept(&mut self, now: Instant, mut hs: Handshake, peer: PeerInfo, early: Option<Vec<u8>>) -> Result<()> {
        let reply = hs.write(&payload::accept_reply(peer.native))?;
        self.transmits.push_back(frame::body(Letter::A, &reply));
        // We wrote the last handshake message, so we send with the first key.
        let transport = hs.into_transport(true)?;
        self.open(now, transport, peer);
        if let Some(data) = early {
            self.events.push_back(Event::Message { data, early: true });
        }
        Ok(())
    }

    /// Refuse a handshake. A native initiator is told why, in an `A` that the
    /// handshake authenticates; a JavaScript one could not read it, so it just
    /// sees the connection close.
    fn refuse(&mut self, mut hs: Handshake, native: bool, err: Error) -> Result<()> {
        if native {
            let reply = hs.write(&payload::refuse_reply(err.code()))?;
            self.transmits.push_back(frame::body(Letter::A, &reply));
        }
        Err(err)
    }

    fn open(&mut self, now: Instant, transport: Transport, peer: PeerInfo) {
        self.timers.handshake = None;
        self.events.push_back(Event::Open(peer.clone()));
        self.state = State::Open(Box::new(Link { transport, peer, reassembly: Reassembler::default() }));
        self.touch(now);
    }

    fn replay_table(&self) -> Result<std::sync::MutexGuard<'_, ReplayTable>> {
        self.replay.lock().map_err(|_| Error::Internal("replay table poisoned".into()))
    }
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
