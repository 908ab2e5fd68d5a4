//! One fuzzed connection against a genuine peer, driven by a `Script`.
//!
//! The fuzzed side ("subject") is a `Connection`, responder or initiator.
//! The peer is the real thing: another `Connection`, or a JavaScript node
//! modelled with snow and the transport cipher as `noise-protocol` does it
//! (docs/PROTOCOL.md §9). Everything the subject writes goes to the peer at
//! once; what the peer writes waits in its outbox until a step delivers it,
//! drops it, tampers with it or replays it. Nothing touches a socket, and
//! the clock moves only when a step moves it.
//!
//! The invariants, checked after every call into the subject (a violation
//! panics, which libFuzzer reports as a crash):
//! - when the subject encrypts, nothing but the peer's genuine frames, in
//!   order and untouched, ever produces `Accepted`, `Open` or a `Message`:
//!   once a frame was forged, tampered with, replayed, reordered or lost,
//!   the link delivers nothing more;
//! - the messages it delivers are the peer's messages, in order, none twice
//!   and none missing in between; the peer gets the subject's messages the
//!   same way; a JavaScript peer never gets a native-only frame or a keepalive;
//! - nothing is delivered before the handshake is done (`Accepted` for a
//!   responder, `Open` for an initiator), and `Open` names the key and agent
//!   of the genuine peer;
//! - a replayed message 1 never becomes an open link, and a native one is
//!   accepted at most once per node;
//! - an error closes the connection for good, and it stays quiet after; a
//!   connection that is not closed always has a deadline, and a timer that
//!   fired is not due again at once;
//! - every frame it writes is within its limits, and one that goes to a
//!   native peer whose limits it knows is within that peer's frame limit.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mychips_noise::proto::config::MIN_FRAME;
use mychips_noise::proto::frame::Letter;
use mychips_noise::proto::replay::ReplayTable;
use mychips_noise::proto::suite::Handshake;
use mychips_noise::proto::transport::Transport;
use mychips_noise::proto::{
    payload, Address, Answer, Config, Connection, Dial, DialSpec, Event, Identity, Need, Pattern, PeerInfo,
};
use mychips_noise::Error;
use serde_json::json;

use crate::script::{flags, letter_of, AnswerKind, DialKind, Mode, Script, Setup, Step};

/// Which end of the connection is fuzzed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Responder,
    Initiator,
}

/// The initiator (`a`), the responder (`b`), and a node neither knows.
pub struct Nodes {
    pub a: Identity,
    pub b: Identity,
    pub stranger: Identity,
}

pub fn nodes() -> &'static Nodes {
    static NODES: OnceLock<Nodes> = OnceLock::new();
    NODES.get_or_init(|| Nodes {
        a: Identity::from_seed(&[1; 32]),
        b: Identity::from_seed(&[2; 32]),
        stranger: Identity::from_seed(&[3; 32]),
    })
}

fn t0() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// The timestamp the genuine initiator puts in its message 1.
pub const TIMESTAMP: u64 = 1_000_000;

/// A key of small order: every Diffie-Hellman result with it is zero.
const WEAK_KEY: [u8; 32] = {
    let mut k = [0u8; 32];
    k[0] = 1;
    k
};

pub fn ticket() -> serde_json::Value {
    json!({ "token": "t-1", "expires": "2030-01-01" })
}

pub fn address(of: &Identity) -> Address {
    Address { agent: of.agent.clone(), host: Some("127.0.0.1".into()), port: Some(65_430) }
}

/// A JSON object of about `len` bytes (at least its fixed part), unique by `n`.
pub fn message(len: u16, n: u64) -> Vec<u8> {
    let mut m = format!(r#"{{"n":{n},"p":""#).into_bytes();
    let len = usize::from(len).max(m.len() + 2);
    m.resize(len - 2, b'a');
    m.extend_from_slice(br#""}"#);
    m
}

fn config(identity: Option<&Identity>, setup: &Setup, small: bool) -> Config {
    let mut c = Config {
        identity: identity.cloned(),
        accept_legacy: setup.has(flags::ACCEPT_LEGACY),
        referee: setup.has(flags::REFEREE),
        admit_any_agent: identity.is_none() && setup.has(flags::ADMIT_ANY),
        ..Config::default()
    };
    if small {
        c.max_frame = MIN_FRAME;
        c.max_message = 4096;
    }
    if setup.has(flags::KEEPALIVE) {
        c.keepalive = Some(Duration::from_secs(1));
    }
    if setup.has(flags::SHORT_IDLE) {
        c.idle_timeout = Some(Duration::from_secs(3));
    }
    c
}

/// What a store answers to `need`.
fn answer(need: &Need, kind: AnswerKind) -> Answer {
    let n = nodes();
    let ours = |agent: &String| *agent == n.a.agent;
    match (kind, need) {
        (AnswerKind::Correct | AnswerKind::Deny, Need::PeerKey { agent }) => {
            Answer::Key(ours(agent).then_some(n.a.public).filter(|_| kind == AnswerKind::Correct))
        }
        (AnswerKind::Correct, Need::Partner { agent }) => {
            Answer::Partner { allowed: ours(agent), key: ours(agent).then_some(n.a.public) }
        }
        (AnswerKind::Correct | AnswerKind::WrongKey | AnswerKind::WeakKey, Need::Ticket { .. }) => Answer::Ticket(true),
        (AnswerKind::Deny, Need::Partner { .. }) => Answer::Partner { allowed: false, key: None },
        (AnswerKind::Deny, Need::Ticket { .. }) => Answer::Ticket(false),
        (AnswerKind::WrongKey, Need::PeerKey { .. }) => Answer::Key(Some(n.stranger.public)),
        (AnswerKind::WrongKey, Need::Partner { .. }) => Answer::Partner { allowed: true, key: Some(n.stranger.public) },
        (AnswerKind::WeakKey, Need::PeerKey { .. }) => Answer::Key(Some(WEAK_KEY)),
        (AnswerKind::WeakKey, Need::Partner { .. }) => Answer::Partner { allowed: true, key: Some(WEAK_KEY) },
        (AnswerKind::Failed, _) => Answer::Failed(Error::LookupFailed("the store is down".into())),
        (AnswerKind::WrongVariant, Need::PeerKey { .. }) => Answer::Ticket(true),
        (AnswerKind::WrongVariant, Need::Partner { .. }) => Answer::Key(Some(n.a.public)),
        (AnswerKind::WrongVariant, Need::Ticket { .. }) => Answer::Partner { allowed: true, key: None },
    }
}

// ---- the genuine peer --------------------------------------------------------------

/// A JavaScript initiator: message 1 with its first application message in
/// it, then `T` frames; it ignores letters it does not expect.
struct JsInitiator {
    hs: Option<Handshake>,
    transport: Option<Transport>,
}

/// A JavaScript responder: reads `I`, or `N` then `K`, answers `A` with an
/// empty payload, then `T` frames; it ignores letters it does not expect.
struct JsResponder {
    named: bool,
    transport: Option<Transport>,
}

enum PeerConn {
    Native(Connection),
    JsInit(JsInitiator),
    JsResp(JsResponder),
}

struct Peer {
    conn: PeerConn,
    /// Frames written and not yet delivered, with their place in the stream.
    outbox: VecDeque<(usize, Vec<u8>)>,
    /// Every frame it wrote.
    wire: Vec<Vec<u8>>,
    /// The application messages it sent, in order.
    sent: Vec<Vec<u8>>,
    /// The application messages delivered to it, in order.
    received: Vec<Vec<u8>>,
    /// A JavaScript initiator's message 1 payload (early data for the responder).
    hello: Option<Vec<u8>>,
    /// Its lookups waiting for an `Answer` step (a native responder with `MANUAL`).
    pending: VecDeque<Need>,
    manual: bool,
    /// It failed: the socket would be gone.
    dead: bool,
    count: u64,
}

impl Peer {
    fn new(conn: PeerConn, manual: bool) -> Self {
        Self {
            conn,
            outbox: VecDeque::new(),
            wire: Vec::new(),
            sent: Vec::new(),
            received: Vec::new(),
            hello: None,
            pending: VecDeque::new(),
            manual,
            dead: false,
            count: 1_000_000,
        }
    }

    fn write(&mut self, body: Vec<u8>) {
        self.outbox.push_back((self.wire.len(), body.clone()));
        self.wire.push(body);
    }

    /// Take what a native peer wrote and reported; answer its lookups
    /// unless they wait for steps.
    fn collect(&mut self, now: Instant, result: Result<(), Error>) {
        if result.is_err() {
            self.dead = true;
        }
        loop {
            let PeerConn::Native(conn) = &mut self.conn else { return };
            let mut bodies = Vec::new();
            while let Some(b) = conn.poll_transmit() {
                bodies.push(b);
            }
            while let Some(e) = conn.poll_event() {
                match e {
                    Event::Need(need) => self.pending.push_back(need),
                    Event::Message { data, early } => {
                        assert!(!early, "the subject never sends early data");
                        self.received.push(data);
                    }
                    Event::Open(_) | Event::Accepted(_) | Event::Closing(_) => {}
                }
            }
            for b in bodies {
                self.write(b);
            }
            if self.manual || self.dead {
                return;
            }
            let Some(need) = self.pending.pop_front() else { return };
            self.answer(now, AnswerKind::Correct, &need);
        }
    }

    fn answer(&mut self, now: Instant, kind: AnswerKind, need: &Need) {
        let PeerConn::Native(conn) = &mut self.conn else { return };
        let r = conn.handle_lookup(now, answer(need, kind));
        self.collect(now, r);
    }

    /// A frame from the subject.
    fn take(&mut self, now: Instant, body: &[u8]) {
        if self.dead {
            return;
        }
        match &mut self.conn {
            PeerConn::Native(conn) => {
                let r = conn.handle_frame(now, body);
                self.collect(now, r);
            }
            PeerConn::JsInit(js) => {
                let (letter, msg) = (body[0], &body[1..]);
                assert!(letter != b'F' && letter != b'C', "a native-only frame went to a JavaScript node");
                match (letter, js.hs.take(), js.transport.as_mut()) {
                    (b'A', Some(mut hs), None) => match hs.read(msg).and_then(|_| hs.into_transport(false)) {
                        Ok(t) => js.transport = Some(t),
                        Err(_) => self.dead = true,
                    },
                    (b'T', None, Some(t)) => match t.open(Letter::T, msg) {
                        Ok(plain) => {
                            assert!(!plain.is_empty(), "a JavaScript node got an empty T (a keepalive)");
                            self.received.push(plain);
                        }
                        Err(_) => self.dead = true,
                    },
                    (_, hs, _) => js.hs = hs,
                }
            }
            PeerConn::JsResp(js) => {
                let (letter, msg) = (body[0], &body[1..]);
                assert!(letter != b'F' && letter != b'C', "a native-only frame went to a JavaScript node");
                let (a, b) = (&nodes().a, &nodes().b);
                let read = |pattern: &str, remote: Option<&[u8; 32]>| -> Result<Handshake, Error> {
                    let mut hs = Handshake::responder(pattern, Some(&b.private), remote)?;
                    hs.read(msg)?;
                    Ok(hs)
                };
                let accepted = match (letter, js.transport.as_mut(), js.named) {
                    (b'I', None, _) => read("IK", None),
                    (b'K', None, true) => read("KK", Some(&a.public)),
                    (b'N', None, false) => {
                        let named = Handshake::responder("N", Some(&b.private), None)
                            .and_then(|mut hs| payload::parse_identity_hello(&hs.read(msg)?));
                        match named {
                            Ok(who) => js.named = who == a.agent,
                            Err(_) => self.dead = true,
                        }
                        return;
                    }
                    (b'T', Some(t), _) => {
                        match t.open(Letter::T, msg) {
                            Ok(plain) => {
                                assert!(!plain.is_empty(), "a JavaScript node got an empty T (a keepalive)");
                                self.received.push(plain);
                            }
                            Err(_) => self.dead = true,
                        }
                        return;
                    }
                    _ => return, // a JavaScript node ignores what it does not expect
                };
                // It answers with an empty payload, which is what it sends.
                let reply = accepted.and_then(|mut hs| {
                    let a = hs.write(b"")?;
                    Ok((a, hs.into_transport(true)?))
                });
                match reply {
                    Ok((a, t)) => {
                        js.transport = Some(t);
                        let mut body = vec![b'A'];
                        body.extend_from_slice(&a);
                        self.write(body);
                    }
                    Err(_) => self.dead = true,
                }
            }
        }
    }

    /// The peer's application sends a message.
    fn send(&mut self, now: Instant, len: u16) {
        if self.dead {
            return;
        }
        self.count += 1;
        let msg = message(len, self.count);
        match &mut self.conn {
            PeerConn::Native(conn) => {
                if let Ok(frames) = conn.send(now, &msg) {
                    self.sent.push(msg);
                    for f in frames {
                        self.write(f);
                    }
                }
            }
            PeerConn::JsInit(JsInitiator { transport: Some(t), .. })
            | PeerConn::JsResp(JsResponder { transport: Some(t), .. }) => {
                // A JavaScript node sends a message of any size as one T.
                if let Ok(body) = t.seal(Letter::T, &msg) {
                    self.sent.push(msg);
                    self.write(body);
                }
            }
            _ => {}
        }
    }

    fn tick(&mut self, now: Instant) {
        for _ in 0..4 {
            if self.dead {
                return;
            }
            let PeerConn::Native(conn) = &mut self.conn else { return };
            match conn.poll_timeout() {
                Some(t) if t <= now => {
                    let r = conn.handle_timeout(now);
                    self.collect(now, r);
                }
                _ => return,
            }
        }
    }
}

// ---- the world: subject, peer, clock and checks ---------------------------------------------

/// Where a call into the subject came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Frame,
    Lookup,
    /// A timer, the end of the stream, or the application closing the link:
    /// none of them may deliver, accept or open anything.
    Quiet,
}

/// What a run ended with (the seed generator checks that real sessions work).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub accepted: bool,
    pub opened: bool,
    /// Messages the subject delivered / the peer received.
    pub delivered: usize,
    pub peer_received: usize,
    pub error: Option<String>,
    /// Every frame body the peer wrote, and the subject wrote, in order.
    pub peer_wire: Vec<Vec<u8>>,
    pub subject_wire: Vec<Vec<u8>>,
}

struct World {
    setup: Setup,
    role: Role,
    now: Instant,
    cfg: Arc<Config>,
    /// The genuine peer's limits, as it tells them.
    peer_cfg: Arc<Config>,
    conn: Connection,
    peer: Peer,
    replay: Arc<Mutex<ReplayTable>>,
    /// Genuine frames delivered so far (for `Redeliver`).
    history: Vec<Vec<u8>>,
    /// The place in the peer's stream of the next frame to deliver.
    next: usize,
    /// Something other than the peer's next genuine frame reached the
    /// subject: from here on an encrypting subject delivers nothing.
    broken: bool,
    pending: VecDeque<Need>,
    sent: Vec<Vec<u8>>,
    count: u64,
    out: Outcome,
    early_seen: bool,
    /// The subject was closed after the last call.
    closed: bool,
    a_written: usize,
    c_written: usize,
    /// A native `I` or `K` was accepted by some connection of this node.
    native_hello_accepted: bool,
    /// `ReplayHello` steps run so far (each costs a handshake).
    replays: u8,
}

impl World {
    fn new(role: Role, setup: Setup) -> Self {
        let n = nodes();
        let now = t0();
        let replay: Arc<Mutex<ReplayTable>> = Arc::default();
        let (self_id, peer_id) = match role {
            Role::Responder => (&n.b, &n.a),
            Role::Initiator => (&n.a, &n.b),
        };
        let cfg = Arc::new(config(setup.mode.self_encrypts().then_some(self_id), &setup, setup.has(flags::SMALL)));
        let peer_cfg =
            Arc::new(config(setup.mode.peer_encrypts().then_some(peer_id), &setup, setup.has(flags::PEER_SMALL)));
        let manual = setup.has(flags::MANUAL);
        let dial = match (setup.dial, setup.mode) {
            (DialKind::Ticket, _) => Dial::Ticket { ticket: ticket(), from: address(&n.a) },
            // A JavaScript node sends no Q.
            (DialKind::Referee, Mode::Legacy) | (DialKind::Key, _) => Dial::Key,
            (DialKind::Referee, _) => Dial::Referee,
        };
        let spec = |encrypts: bool| DialSpec {
            dial: dial.clone(),
            local_agent: n.a.agent.clone(),
            remote_agent: n.b.agent.clone(),
            remote_key: encrypts.then_some(n.b.public),
            timestamp: TIMESTAMP,
        };

        let (conn, mut peer) = match role {
            Role::Responder => {
                let conn = Connection::responder(cfg.clone(), replay.clone(), now);
                let peer = if setup.mode == Mode::Legacy {
                    js_initiator(&dial)
                } else {
                    // Cannot fail: an encrypting initiator is given the key.
                    let c = Connection::initiator(peer_cfg.clone(), now, spec(setup.mode.peer_encrypts()))
                        .unwrap_or_else(|e| panic!("the genuine initiator starts: {e}"));
                    Peer::new(PeerConn::Native(c), false)
                };
                (conn, peer)
            }
            Role::Initiator => {
                let conn = Connection::initiator(cfg.clone(), now, spec(setup.mode.self_encrypts()))
                    .unwrap_or_else(|e| panic!("the subject starts: {e}"));
                let peer = if setup.mode == Mode::Legacy {
                    Peer::new(PeerConn::JsResp(JsResponder { named: false, transport: None }), false)
                } else {
                    Peer::new(PeerConn::Native(Connection::responder(peer_cfg.clone(), Arc::default(), now)), manual)
                };
                (conn, peer)
            }
        };
        peer.collect(now, Ok(()));
        let mut w = World {
            setup,
            role,
            now,
            cfg,
            peer_cfg,
            conn,
            peer,
            replay,
            history: Vec::new(),
            next: 0,
            broken: false,
            pending: VecDeque::new(),
            sent: Vec::new(),
            count: 0,
            out: Outcome::default(),
            early_seen: false,
            closed: false,
            a_written: 0,
            c_written: 0,
            native_hello_accepted: false,
            replays: 0,
        };
        w.after(Ok(()), Origin::Quiet);
        w
    }

    fn encrypts(&self) -> bool {
        self.setup.mode.self_encrypts()
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Deliver => {
                if let Some(f) = self.peer.outbox.pop_front() {
                    self.genuine(f);
                }
            }
            // Lost or reordered frames break the stream when the next one is delivered.
            Step::Drop => {
                let _ = self.peer.outbox.pop_front();
            }
            Step::Swap => {
                if self.peer.outbox.len() >= 2 {
                    self.peer.outbox.swap(0, 1);
                }
            }
            Step::Flip { at, mask } => {
                if let Some((_, mut f)) = self.peer.outbox.pop_front() {
                    let i = usize::from(*at) % f.len();
                    f[i] ^= (*mask).max(1);
                    self.forged(&f);
                }
            }
            Step::Truncate { keep } => {
                if let Some((seq, mut f)) = self.peer.outbox.pop_front() {
                    if usize::from(*keep) < f.len() {
                        f.truncate(usize::from(*keep));
                        self.forged(&f);
                    } else {
                        self.genuine((seq, f));
                    }
                }
            }
            Step::Append { bytes } => {
                if let Some((seq, mut f)) = self.peer.outbox.pop_front() {
                    if bytes.is_empty() {
                        self.genuine((seq, f));
                    } else {
                        f.extend_from_slice(bytes);
                        self.forged(&f);
                    }
                }
            }
            Step::Relabel { letter } => {
                if let Some((seq, mut f)) = self.peer.outbox.pop_front() {
                    let l = letter_of(*letter);
                    if f[0] == l {
                        self.genuine((seq, f));
                    } else {
                        f[0] = l;
                        self.forged(&f);
                    }
                }
            }
            Step::Redeliver { index } => {
                if !self.history.is_empty() {
                    let f = self.history[usize::from(*index) % self.history.len()].clone();
                    self.forged(&f);
                }
            }
            Step::Inject { bytes } => self.forged(bytes),
            Step::InjectLetter { letter, bytes } => {
                let mut f = vec![letter_of(*letter)];
                f.extend_from_slice(bytes);
                self.forged(&f);
            }
            Step::PeerSend { len } => self.peer.send(self.now, *len),
            Step::LocalSend { len } => self.local_send(*len),
            Step::Advance { ms } => self.advance(*ms),
            Step::Eof => {
                let r = self.conn.handle_eof();
                self.after(r, Origin::Quiet);
            }
            Step::Close => {
                self.conn.close(self.now);
                self.after(Ok(()), Origin::Quiet);
            }
            Step::Answer { kind } => self.answer_step(*kind),
            Step::ReplayHello => self.replay_hello(),
        }
    }

    /// Deliver a frame the peer wrote, untouched: genuine if it is the next
    /// one in the peer's stream, else the stream is broken.
    fn genuine(&mut self, (seq, f): (usize, Vec<u8>)) {
        if seq == self.next {
            self.next += 1;
        } else {
            self.broken = true;
        }
        self.history.push(f.clone());
        self.deliver(&f);
    }

    fn forged(&mut self, f: &[u8]) {
        self.broken = true;
        self.deliver(f);
    }

    fn deliver(&mut self, body: &[u8]) {
        let r = self.conn.handle_frame(self.now, body);
        self.after(r, Origin::Frame);
    }

    fn local_send(&mut self, len: u16) {
        self.count += 1;
        let msg = message(len, self.count);
        let (could, was_closed) = (self.conn.can_send(), self.conn.is_closed());
        match self.conn.send(self.now, &msg) {
            Ok(frames) => {
                assert!(could, "sent on a link that could not send");
                self.sent.push(msg);
                for f in frames {
                    self.check_written(&f, true);
                    self.peer.take(self.now, &f);
                }
            }
            Err(e) => {
                assert!(
                    matches!(e, Error::ConnectionClosed | Error::InvalidArgument(_) | Error::MessageTooLarge { .. }),
                    "a refused send says why: {e:?}"
                );
                assert!(
                    could || !matches!(e, Error::MessageTooLarge { .. }),
                    "only a link that could send refuses for size"
                );
                assert_eq!(self.conn.is_closed(), was_closed, "a refused send changes nothing");
            }
        }
        self.check_peer();
    }

    fn advance(&mut self, ms: u16) {
        self.now += Duration::from_millis(u64::from(ms));
        for _ in 0..4 {
            match self.conn.poll_timeout() {
                Some(t) if t <= self.now => {
                    let r = self.conn.handle_timeout(self.now);
                    self.after(r, Origin::Quiet);
                    if let Some(next) = self.conn.poll_timeout() {
                        assert!(next > self.now, "a timer that fired is due again at once ({:?})", self.conn);
                    }
                }
                _ => break,
            }
        }
        self.peer.tick(self.now);
    }

    fn answer_step(&mut self, kind: AnswerKind) {
        if !self.setup.has(flags::MANUAL) {
            return;
        }
        match self.role {
            Role::Responder => {
                if self.conn.is_closed() {
                    return; // the driver drops a closed connection's lookups
                }
                if let Some(need) = self.pending.pop_front() {
                    let r = self.conn.handle_lookup(self.now, answer(&need, kind));
                    self.after(r, Origin::Lookup);
                }
            }
            Role::Initiator => {
                if let Some(need) = self.peer.pending.pop_front() {
                    self.peer.answer(self.now, kind, &need);
                }
            }
        }
    }

    /// After any call into the subject: take its output, check it, and
    /// answer its lookups unless steps answer them.
    fn after(&mut self, mut result: Result<(), Error>, origin: Origin) {
        loop {
            let mut bodies = Vec::new();
            while let Some(b) = self.conn.poll_transmit() {
                bodies.push(b);
            }
            let mut events = Vec::new();
            while let Some(e) = self.conn.poll_event() {
                events.push(e);
            }
            for e in events {
                self.check_event(e, origin);
            }
            for b in bodies {
                self.check_written(&b, false);
                self.peer.take(self.now, &b);
            }
            self.check_peer();
            if let Err(e) = &result {
                self.out.error.get_or_insert_with(|| format!("{e:?}"));
                assert!(self.conn.is_closed(), "an error closes the connection: {e:?}");
                assert_eq!(self.conn.poll_timeout(), None, "a closed connection has no deadline");
            }
            if self.setup.has(flags::MANUAL) || self.conn.is_closed() {
                break;
            }
            let Some(need) = self.pending.pop_front() else { break };
            result = self.conn.handle_lookup(self.now, answer(&need, AnswerKind::Correct));
        }
        if self.closed {
            assert!(self.conn.is_closed(), "a closed connection stays closed");
        }
        self.closed = self.conn.is_closed();
        if !self.conn.is_closed() {
            assert!(self.conn.poll_timeout().is_some(), "a live connection always has a deadline: {:?}", self.conn);
        }
        if !(self.conn.can_send() || self.conn.is_draining()) {
            assert_eq!(
                self.conn.frame_limit(),
                self.cfg.max_frame,
                "before the link is open, frames are bounded by max_frame"
            );
        }
    }

    /// The identity an encrypted handshake proves to the subject.
    fn expect_peer(&self, p: &PeerInfo) {
        let n = nodes();
        let legacy = self.setup.mode == Mode::Legacy;
        let pattern = match self.setup.dial {
            DialKind::Ticket => Pattern::IK,
            DialKind::Referee if !legacy => Pattern::NK,
            _ => Pattern::KK,
        };
        let peer = if self.role == Role::Responder { &n.a } else { &n.b };
        let (agent, key) = if pattern == Pattern::NK && self.role == Role::Responder {
            (None, None)
        } else {
            (Some(peer.agent.clone()), Some(peer.public))
        };
        let want = PeerInfo { agent, pattern, native: !legacy, key, initiator: self.role == Role::Initiator };
        assert_eq!(*p, want, "the handshake names the genuine peer");
    }

    fn check_event(&mut self, e: Event, origin: Origin) {
        let enc = self.encrypts();
        let responder = self.role == Role::Responder;
        assert!(!self.closed, "a closed connection is quiet: {e:?}");
        match e {
            Event::Need(need) => {
                assert!(responder, "an initiator asks nothing");
                assert!(origin != Origin::Quiet, "{need:?} asked by a timer");
                self.pending.push_back(need);
            }
            Event::Accepted(p) => {
                assert!(responder && !self.out.accepted && !self.out.opened, "Accepted once, before Open");
                assert!(origin != Origin::Quiet, "accepted by a timer");
                if enc {
                    assert!(!self.broken, "a forged, tampered, replayed or reordered handshake was accepted");
                    assert!(self.setup.mode != Mode::PeerRaw, "a raw peer was accepted by an encrypting node");
                    self.expect_peer(&p);
                    if p.native && p.pattern != Pattern::NK {
                        assert!(!self.native_hello_accepted, "a native message 1 was accepted twice");
                        self.native_hello_accepted = true;
                    }
                }
                self.out.accepted = true;
            }
            Event::Open(p) => {
                assert!(!self.out.opened, "Open once");
                assert!(!responder || self.out.accepted, "a responder opens only after it accepted");
                assert!(origin == Origin::Frame, "only a frame opens a link");
                if enc {
                    assert!(!self.broken, "a forged, tampered, replayed or reordered frame opened the link");
                    assert!(self.setup.mode != Mode::PeerRaw, "a raw peer was accepted by an encrypting node");
                    self.expect_peer(&p);
                }
                self.out.opened = true;
            }
            Event::Message { data, early: true } => {
                assert!(
                    responder && self.out.accepted && !self.out.opened && !self.early_seen,
                    "early data only at Accepted"
                );
                assert!(self.cfg.accept_legacy, "early data only when legacy peers are accepted");
                assert!(origin != Origin::Quiet);
                if enc {
                    assert!(!self.broken && self.setup.mode == Mode::Legacy, "early data from a forged handshake");
                    assert_eq!(Some(&data), self.peer.hello.as_ref(), "early data is the JavaScript node's message 1");
                }
                self.early_seen = true;
            }
            Event::Message { data, early: false } => {
                if responder {
                    assert!(self.out.accepted, "a message before the handshake was done");
                } else {
                    assert!(self.out.opened, "a message before the link was open");
                }
                assert_eq!(origin, Origin::Frame, "only a frame delivers a message");
                assert!(payload::check_message(&data).is_ok(), "a delivered message is one JSON object");
                if enc {
                    assert!(!self.broken, "a forged, tampered, replayed or reordered frame delivered a message");
                    let i = self.out.delivered;
                    assert!(i < self.peer.sent.len(), "delivered a message the peer never sent");
                    assert!(data == self.peer.sent[i], "message {i} is not the peer's message {i}");
                }
                self.out.delivered += 1;
            }
            Event::Closing(_) => {
                assert!(self.out.opened, "only an open link closes in order");
            }
        }
    }

    /// A frame the subject wrote (`sent`: from `send`, else from `poll_transmit`).
    fn check_written(&mut self, body: &[u8], sent: bool) {
        self.out.subject_wire.push(body.to_vec());
        assert!(!body.is_empty() && body.len() <= self.cfg.write_limit(), "a frame within our write limit");
        let letter = body[0];
        let allowed: &[u8] = match (self.role, sent) {
            (_, true) => b"TF",
            (Role::Responder, false) => b"AT",
            (Role::Initiator, false) => b"INKQCT",
        };
        assert!(allowed.contains(&letter), "{:?} wrote {:?}", self.role, char::from(letter));
        match letter {
            b'A' => self.a_written += 1,
            b'C' => self.c_written += 1,
            _ => {}
        }
        assert!(self.a_written <= 1 && self.c_written <= 1, "one A, one C");
        // Once the subject knows a native peer's limits (from A or C), it keeps to them.
        if self.out.opened && self.setup.mode == Mode::Native && !self.broken {
            assert!(body.len() <= self.peer_cfg.max_frame, "a frame beyond the native peer's frame limit");
        }
        if letter == b'F' {
            assert!(self.conn.peer().is_some_and(|p| p.native), "F only to a native peer");
        }
    }

    /// The peer got the subject's messages, in order, none twice.
    fn check_peer(&mut self) {
        let got = &self.peer.received;
        assert!(got.len() <= self.sent.len(), "the peer got more messages than were sent");
        for (i, m) in got.iter().enumerate().skip(self.out.peer_received) {
            assert!(*m == self.sent[i], "the peer's message {i} is not the one sent");
        }
        self.out.peer_received = got.len();
    }

    /// A captured session replayed to a new connection of the same node.
    fn replay_hello(&mut self) {
        // Two replays show what a third would; each costs a handshake.
        if self.role != Role::Responder || self.replays >= 2 {
            return;
        }
        self.replays += 1;
        let enc = self.encrypts();
        let mut conn = Connection::responder(self.cfg.clone(), self.replay.clone(), self.now);
        for f in self.peer.wire.clone() {
            if conn.is_closed() {
                break;
            }
            let mut r = conn.handle_frame(self.now, &f);
            loop {
                while conn.poll_transmit().is_some() {}
                let mut need = None;
                while let Some(e) = conn.poll_event() {
                    match e {
                        Event::Need(n) => need = Some(n),
                        Event::Accepted(p) => {
                            if enc && p.native && p.pattern != Pattern::NK {
                                assert!(!self.native_hello_accepted, "a replayed native message 1 was accepted");
                                self.native_hello_accepted = true;
                            }
                        }
                        Event::Open(_) => assert!(!enc, "a replayed message 1 became an open link"),
                        Event::Message { early: false, .. } => assert!(!enc, "a replayed session delivered a message"),
                        Event::Message { data, early: true } => {
                            if enc {
                                assert_eq!(Some(&data), self.peer.hello.as_ref());
                            }
                        }
                        Event::Closing(_) => {}
                    }
                }
                match (r, need) {
                    (Ok(()), Some(n)) => r = conn.handle_lookup(self.now, answer(&n, AnswerKind::Correct)),
                    _ => break,
                }
            }
        }
    }
}

fn js_initiator(dial: &Dial) -> Peer {
    let n = nodes();
    let (a, b) = (&n.a, &n.b);
    let mut frames = Vec::new();
    let mut build = || -> Result<(Handshake, Vec<u8>), Error> {
        match dial {
            Dial::Ticket { ticket, from } => {
                let hello = json!({ "ticket": ticket, "from": from, "target": "tally", "action": "draft" });
                let hello = hello.to_string().into_bytes();
                let mut hs = Handshake::initiator("IK", Some(&a.private), Some(&b.public))?;
                let mut i = vec![b'I'];
                i.extend_from_slice(&hs.write(&hello)?);
                frames.push(i);
                Ok((hs, hello))
            }
            _ => {
                let mut id = Handshake::initiator("N", None, Some(&b.public))?;
                let mut nf = vec![b'N'];
                nf.extend_from_slice(&id.write(&payload::identity_hello(&a.agent))?);
                frames.push(nf);
                let hello = br#"{"target":"tally","action":"open"}"#.to_vec();
                let mut hs = Handshake::initiator("KK", Some(&a.private), Some(&b.public))?;
                let mut k = vec![b'K'];
                k.extend_from_slice(&hs.write(&hello)?);
                frames.push(k);
                Ok((hs, hello))
            }
        }
    };
    let (hs, hello) = build().unwrap_or_else(|e| panic!("a JavaScript initiator starts: {e}"));
    let mut peer = Peer::new(PeerConn::JsInit(JsInitiator { hs: Some(hs), transport: None }), false);
    peer.hello = Some(hello);
    for f in frames {
        peer.write(f);
    }
    peer
}

/// Run a script against the fuzzed `role`; panics on a broken invariant.
pub fn run(role: Role, script: &Script) -> Outcome {
    let mut w = World::new(role, script.setup);
    for step in &script.steps {
        w.step(step);
    }
    w.out.peer_wire = std::mem::take(&mut w.peer.wire);
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setup_builds_valid_configs() {
        for f in 0..=u8::MAX {
            let setup = Setup { mode: Mode::Native, dial: DialKind::Key, flags: f };
            for id in [None, Some(&nodes().a)] {
                for small in [false, true] {
                    let c = config(id, &setup, small);
                    assert!(c.validate().is_ok(), "{c:?}");
                }
            }
        }
    }
}
