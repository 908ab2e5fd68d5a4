//! The protocol core as a script: two `Connection`s, a simulated clock, no
//! sockets (STYLE.md §1, §8; quinn's `Pair`).
//!
//! `Pair` moves frame bodies from one side's `poll_transmit` (and `send`) to
//! the other's `handle_frame`, answers `Event::Need`s with a pluggable lookup,
//! and records what each side saw: its events, its lookups, every body it
//! wrote, and its first error. Once a side has failed, the harness stops
//! delivering to it (the driver would have dropped the socket) but still
//! flushes what it wrote (a refusal `A`). The clock only moves when a test
//! moves it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::conn::{Answer, Config, Connection, Dial, DialSpec, Event, Need, PeerInfo};
use super::frame::{self, Letter, DEFAULT_MAX_FRAME, DEFAULT_MAX_MESSAGE, MAX_NOISE_MESSAGE};
use super::keys::{Identity, Key};
use super::payload::{self, Address};
use super::replay::ReplayTable;
use super::suite::{self, Handshake, Pattern};
use super::transport::Transport;
use crate::error::{CloseReason, Error, Result};

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Bound on `drive` steps; a 1 MiB message is 17 frames, so this is generous.
const MAX_STEPS: usize = 10_000;

/// The one reading of the real clock; everything else is offsets from it.
fn t0() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

// ---- nodes, dials, lookups -----------------------------------------------------

/// A node as the tests see it: its config, and the identity its peers know.
/// A raw node keeps an agent id and a key too, so that stores can name it.
#[derive(Clone)]
struct Node {
    cfg: Config,
    agent: String,
    public: Key,
    private: Key,
}

impl Node {
    fn with(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.cfg);
        self
    }
}

fn node(seed: u8) -> Node {
    let id = Identity::from_seed(&[seed; 32]);
    Node {
        agent: id.agent.clone(),
        public: id.public,
        private: id.private,
        cfg: Config { identity: Some(id), ..Config::default() },
    }
}

fn raw_node(seed: u8) -> Node {
    node(seed).with(|c| c.identity = None)
}

fn address(of: &Node) -> Address {
    Address { agent: of.agent.clone(), host: Some("127.0.0.1".into()), port: Some(65_430) }
}

fn ticket() -> Value {
    json!({ "token": "t-1", "expires": "2030-01-01" })
}

/// IK with a ticket, `from` naming `init`.
fn by_ticket(init: &Node) -> Dial {
    Dial::Ticket { ticket: ticket(), from: address(init) }
}

fn spec(init: &Node, resp: &Node, dial: Dial, timestamp: u64) -> DialSpec {
    DialSpec {
        dial,
        local_agent: init.agent.clone(),
        remote_agent: resp.agent.clone(),
        remote_key: Some(resp.public),
        timestamp,
    }
}

type Lookup = Box<dyn FnMut(&Need) -> Answer>;

/// A store: agent -> key, and a ticket predicate.
fn store(keys: &[(&str, Key)], ticket_ok: impl Fn(&Value) -> bool + 'static) -> Lookup {
    let keys: HashMap<String, Key> = keys.iter().map(|(a, k)| ((*a).to_owned(), *k)).collect();
    Box::new(move |need| match need {
        Need::PeerKey { agent } => Answer::Key(keys.get(agent).copied()),
        Need::Ticket { ticket, .. } => Answer::Ticket(ticket_ok(ticket)),
    })
}

/// A store that knows these nodes' keys and accepts every ticket.
fn knows(nodes: &[&Node]) -> Lookup {
    let keys: Vec<(&str, Key)> = nodes.iter().map(|n| (n.agent.as_str(), n.public)).collect();
    store(&keys, |_| true)
}

fn asks_nothing() -> Lookup {
    Box::new(|need| Answer::Failed(format!("this side should not ask: {need:?}")))
}

// ---- the harness -----------------------------------------------------------------

/// One end: a connection, its lookup, and everything it did.
struct Side {
    conn: Connection,
    lookup: Lookup,
    /// Answer `Need`s as soon as they appear; otherwise a test calls `answer`.
    auto_answer: bool,
    /// Bodies written and not yet delivered.
    outbox: VecDeque<Vec<u8>>,
    /// Every body this side wrote, in order.
    wire: Vec<Vec<u8>>,
    /// Every lookup it asked for, in order.
    needs: Vec<Need>,
    pending: VecDeque<Need>,
    /// Every other event (Open, Message, Closing), in order.
    events: Vec<Event>,
    /// The first error any `handle_*` call returned.
    error: Option<Error>,
}

impl Side {
    fn new(conn: Connection, lookup: Lookup) -> Self {
        Self {
            conn,
            lookup,
            auto_answer: true,
            outbox: VecDeque::new(),
            wire: Vec::new(),
            needs: Vec::new(),
            pending: VecDeque::new(),
            events: Vec::new(),
            error: None,
        }
    }

    fn responder(of: &Node, replay: &Arc<Mutex<ReplayTable>>, lookup: Lookup) -> Self {
        Self::new(Connection::responder(Arc::new(of.cfg.clone()), replay.clone(), t0()), lookup)
    }

    fn collect(&mut self) {
        while let Some(body) = self.conn.poll_transmit() {
            self.wire.push(body.clone());
            self.outbox.push_back(body);
        }
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Need(need) => {
                    self.needs.push(need.clone());
                    self.pending.push_back(need);
                }
                other => self.events.push(other),
            }
        }
    }

    fn record(&mut self, now: Instant, result: Result<()>) {
        self.collect();
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
        if self.auto_answer {
            self.answer(now);
        }
    }

    fn frame(&mut self, now: Instant, body: &[u8]) {
        let r = self.conn.handle_frame(now, body);
        self.record(now, r);
    }

    /// Answer every pending lookup with this side's store.
    fn answer(&mut self, now: Instant) {
        while let Some(need) = self.pending.pop_front() {
            let answer = (self.lookup)(&need);
            let r = self.conn.handle_lookup(now, answer);
            self.collect();
            if let Err(e) = r {
                self.error.get_or_insert(e);
            }
        }
    }

    fn timeout(&mut self, now: Instant) {
        let r = self.conn.handle_timeout(now);
        self.record(now, r);
    }

    fn eof(&mut self, now: Instant) {
        let r = self.conn.handle_eof();
        self.record(now, r);
    }

    /// Queue an application message; its frames go out on the next `drive`.
    fn send(&mut self, now: Instant, message: &[u8]) -> Result<()> {
        let frames = self.conn.send(now, message)?;
        self.wire.extend(frames.iter().cloned());
        self.outbox.extend(frames);
        Ok(())
    }

    /// Take what this side wrote but has not been delivered.
    fn take_outbox(&mut self) -> Vec<Vec<u8>> {
        self.collect();
        self.outbox.drain(..).collect()
    }

    fn peer(&self) -> Option<&PeerInfo> {
        self.events.iter().find_map(|e| match e {
            Event::Open(p) => Some(p),
            _ => None,
        })
    }

    fn messages(&self) -> Vec<(String, bool)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message { data, early } => Some((String::from_utf8_lossy(data).into_owned(), *early)),
                _ => None,
            })
            .collect()
    }

    fn closings(&self) -> Vec<CloseReason> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Closing(r) => Some(*r),
                _ => None,
            })
            .collect()
    }
}

struct Pair {
    now: Instant,
    init: Side,
    resp: Side,
    replay: Arc<Mutex<ReplayTable>>,
}

impl Pair {
    /// `init` dials `resp`; `resp`'s store knows `init` and takes any ticket.
    fn new(init: &Node, resp: &Node, dial: Dial) -> Result<Self> {
        Self::with(init, resp, spec(init, resp, dial, 1_000), Arc::default())
    }

    fn with(init: &Node, resp: &Node, spec: DialSpec, replay: Arc<Mutex<ReplayTable>>) -> Result<Self> {
        let now = t0();
        let conn = Connection::initiator(Arc::new(init.cfg.clone()), now, spec)?;
        let mut pair = Self {
            now,
            init: Side::new(conn, asks_nothing()),
            resp: Side::responder(resp, &replay, knows(&[init])),
            replay,
        };
        pair.init.collect();
        Ok(pair)
    }

    /// Move frames both ways, one at a time, until nothing moves.
    fn drive(&mut self) {
        for _ in 0..MAX_STEPS {
            if !self.step() {
                return;
            }
        }
        panic!("the pair did not settle in {MAX_STEPS} steps");
    }

    fn step(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        for forward in [true, false] {
            let (from, to) = if forward { (&mut self.init, &mut self.resp) } else { (&mut self.resp, &mut self.init) };
            from.collect();
            if let Some(body) = from.outbox.pop_front() {
                moved = true;
                if !to.conn.is_closed() {
                    to.frame(now, &body);
                }
            }
        }
        moved
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    fn assert_open(&self) {
        assert_eq!((&self.init.error, &self.resp.error), (&None, &None), "no errors");
        assert!(
            self.init.conn.is_open() && self.resp.conn.is_open(),
            "both open: {:?} / {:?}",
            self.init.conn,
            self.resp.conn
        );
    }
}

/// Dial, drive, and check that both sides opened.
fn open(init: &Node, resp: &Node, dial: Dial) -> Result<Pair> {
    let mut pair = Pair::new(init, resp, dial)?;
    pair.drive();
    pair.assert_open();
    Ok(pair)
}

fn letters(bodies: &[Vec<u8>]) -> String {
    bodies.iter().map(|b| b.first().map_or('?', |&l| char::from(l))).collect()
}

/// Deterministic noise for garbage tests (xorshift64).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

// ---- IK: first contact with a ticket -------------------------------------------------

#[test]
fn ik_with_good_ticket_opens_and_carries_messages_both_ways() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;

    assert_eq!(letters(&pair.init.wire), "I");
    assert_eq!(letters(&pair.resp.wire), "A");
    assert_eq!(
        pair.resp.needs,
        vec![Need::PeerKey { agent: a.agent.clone() }, Need::Ticket { ticket: ticket(), from: address(&a) }]
    );
    let expect = |agent: &Node, initiator| PeerInfo {
        agent: Some(agent.agent.clone()),
        pattern: Pattern::IK,
        native: true,
        key: Some(agent.public),
        initiator,
    };
    assert_eq!(pair.resp.peer(), Some(&expect(&a, false)), "the key the handshake proved");
    assert_eq!(pair.init.peer(), Some(&expect(&b, true)));
    assert_eq!(pair.resp.conn.peer(), pair.resp.peer());

    let now = pair.now;
    pair.init.send(now, br#"{"n":1}"#)?;
    pair.resp.send(now, br#"{"n":2}"#)?;
    pair.init.send(now, br#"{"n":3}"#)?;
    pair.drive();
    assert_eq!(pair.resp.messages(), vec![(r#"{"n":1}"#.into(), false), (r#"{"n":3}"#.into(), false)]);
    assert_eq!(pair.init.messages(), vec![(r#"{"n":2}"#.into(), false)]);
    assert!(pair.init.wire[1..].iter().all(|b| b[0] == b'T'));
    assert!(!pair.init.wire.iter().any(|b| b.windows(7).any(|w| w == br#"{"n":1}"#)), "transport bodies are encrypted");
    Ok(())
}

#[test]
fn ik_ticket_hello_is_never_delivered_as_a_message() -> TestResult {
    let (a, b) = (node(1), node(2));
    let pair = open(&a, &b, by_ticket(&a))?;
    assert_eq!(pair.resp.events.len(), 1, "only Open: {:?}", pair.resp.events);
    assert_eq!(pair.init.events.len(), 1, "only Open: {:?}", pair.init.events);
    Ok(())
}

#[test]
fn ik_refused_ticket_is_reported_to_both_sides() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, by_ticket(&a))?;
    pair.resp.lookup = store(&[(&a.agent, a.public)], |_| false);
    pair.drive();
    assert_eq!(pair.resp.error, Some(Error::TicketRefused));
    assert_eq!(pair.init.error, Some(Error::TicketRefused), "told in an authenticated A");
    assert_eq!(letters(&pair.resp.wire), "A");
    assert!(pair.init.conn.is_closed() && pair.resp.conn.is_closed());
    assert!(pair.init.events.is_empty() && pair.resp.events.is_empty(), "nothing opened or delivered");
    Ok(())
}

#[test]
fn ik_from_agent_that_is_not_the_proven_key_is_key_mismatch() -> TestResult {
    let (a, b, c) = (node(1), node(2), node(3));
    // `a` dials with its own key but claims to be `c`.
    let dial = Dial::Ticket { ticket: ticket(), from: address(&c) };
    let mut pair = Pair::new(&a, &b, dial)?;
    pair.resp.lookup = knows(&[&a, &c]);
    pair.drive();
    assert!(
        matches!(&pair.resp.error, Some(Error::KeyMismatch { agent }) if *agent == c.agent),
        "{:?}",
        pair.resp.error
    );
    assert!(
        matches!(&pair.init.error, Some(Error::PeerRefused(why)) if why.contains("ERR_KEY_MISMATCH")),
        "{:?}",
        pair.init.error
    );
    assert_eq!(pair.resp.needs, vec![Need::PeerKey { agent: c.agent.clone() }], "the ticket is never checked");
    assert!(pair.init.events.is_empty() && pair.resp.events.is_empty());
    Ok(())
}

#[test]
fn ik_first_contact_opens_with_an_empty_store() -> TestResult {
    // The agent id names its key, so a stranger with a good ticket needs no stored key.
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, by_ticket(&a))?;
    pair.resp.lookup = knows(&[]);
    pair.drive();
    pair.assert_open();
    assert_eq!(pair.resp.peer().and_then(|p| p.key), Some(a.public));
    Ok(())
}

#[test]
fn ik_first_contact_claiming_another_agent_is_key_mismatch() -> TestResult {
    // The store knows neither: only the agent id itself can expose the claim.
    let (a, b, c) = (node(1), node(2), node(3));
    let mut pair = Pair::new(&a, &b, Dial::Ticket { ticket: ticket(), from: address(&c) })?;
    pair.resp.lookup = knows(&[]);
    pair.drive();
    assert!(
        matches!(&pair.resp.error, Some(Error::KeyMismatch { agent }) if *agent == c.agent),
        "{:?}",
        pair.resp.error
    );
    assert!(matches!(&pair.init.error, Some(Error::PeerRefused(why)) if why.contains("ERR_KEY_MISMATCH")));
    assert!(pair.resp.events.is_empty());
    Ok(())
}

/// A node with a plain X25519 pair, whose agent id names no key (PROTOCOL.md §1).
fn plain_node(seed: u8, agent: &str) -> Node {
    let mut n = node(seed);
    n.agent = agent.to_owned();
    if let Some(id) = n.cfg.identity.as_mut() {
        id.agent = agent.to_owned();
    }
    n
}

#[test]
fn ik_plain_key_agent_needs_its_key_in_the_store() -> TestResult {
    let (a, b) = (plain_node(1, "sim-node-1"), node(2));
    let known = open(&a, &b, by_ticket(&a))?;
    assert_eq!(known.resp.peer().and_then(|p| p.agent.clone()), Some("sim-node-1".into()));

    let mut unknown = Pair::new(&a, &b, by_ticket(&a))?;
    unknown.resp.lookup = knows(&[]);
    unknown.drive();
    assert!(matches!(&unknown.resp.error, Some(Error::UnknownPeer { agent }) if agent == "sim-node-1"));
    assert!(matches!(&unknown.init.error, Some(Error::PeerRefused(why)) if why.contains("ERR_UNKNOWN_PEER")));
    Ok(())
}

#[test]
fn kk_plain_key_agents_open() -> TestResult {
    let (a, b) = (plain_node(1, "sim-node-1"), plain_node(2, "sim-node-2"));
    let pair = open(&a, &b, Dial::Key)?;
    assert_eq!(pair.resp.peer().and_then(|p| p.key), Some(a.public));
    Ok(())
}

#[test]
fn ik_refused_when_store_holds_another_key_for_the_agent() -> TestResult {
    let (a, b, other) = (node(1), node(2), node(9));
    let mut pair = Pair::new(&a, &b, by_ticket(&a))?;
    pair.resp.lookup = store(&[(&a.agent, other.public)], |_| true);
    pair.drive();
    assert!(matches!(pair.resp.error, Some(Error::KeyMismatch { .. })), "{:?}", pair.resp.error);
    assert!(matches!(&pair.init.error, Some(Error::PeerRefused(why)) if why.contains("ERR_KEY_MISMATCH")));
    assert!(pair.resp.events.is_empty());
    Ok(())
}

#[test]
fn ik_failed_lookup_is_refused_with_its_code() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, by_ticket(&a))?;
    pair.resp.lookup = Box::new(|_| Answer::Failed("database down".into()));
    pair.drive();
    assert_eq!(pair.resp.error, Some(Error::LookupFailed("database down".into())));
    assert!(matches!(&pair.init.error, Some(Error::PeerRefused(why)) if why.contains("ERR_LOOKUP_FAILED")));
    Ok(())
}

// ---- KK: N then K ------------------------------------------------------------------

#[test]
fn kk_opens_when_store_knows_the_key() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, Dial::Key)?;
    assert_eq!(letters(&pair.init.wire), "NK");
    assert_eq!(pair.resp.needs, vec![Need::PeerKey { agent: a.agent.clone() }]);
    let p = pair.resp.peer().ok_or("no Open")?;
    assert_eq!(
        (p.agent.as_deref(), p.pattern, p.native, p.key),
        (Some(a.agent.as_str()), Pattern::KK, true, Some(a.public))
    );
    assert_eq!(pair.init.peer().map(|p| (p.pattern, p.native)), Some((Pattern::KK, true)));
    let now = pair.now;
    pair.init.send(now, br#"{"kk":true}"#)?;
    pair.drive();
    assert_eq!(pair.resp.messages(), vec![(r#"{"kk":true}"#.into(), false)]);
    Ok(())
}

#[test]
fn kk_opens_when_k_arrives_while_the_key_is_looked_up() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, Dial::Key)?;
    pair.resp.auto_answer = false;
    pair.drive();
    assert_eq!(pair.resp.pending.len(), 1, "N asked for the key; K is held meanwhile");
    assert!(pair.resp.error.is_none() && !pair.resp.conn.is_open());
    let now = pair.now;
    pair.resp.answer(now);
    pair.drive();
    pair.assert_open();
    Ok(())
}

#[test]
fn kk_second_k_while_looking_up_is_refused() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, Dial::Key)?;
    pair.resp.auto_answer = false;
    pair.drive();
    let k = pair.init.wire[1].clone();
    pair.resp.frame(pair.now, &k);
    assert!(matches!(pair.resp.error, Some(Error::UnexpectedLetter { letter: 'K', .. })), "{:?}", pair.resp.error);
    assert!(pair.resp.conn.is_closed());
    Ok(())
}

#[test]
fn kk_unknown_agent_is_refused_and_initiator_sees_rejection() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, Dial::Key)?;
    pair.resp.lookup = knows(&[]);
    pair.drive();
    assert!(matches!(&pair.resp.error, Some(Error::UnknownPeer { agent }) if *agent == a.agent));
    assert!(pair.resp.wire.is_empty(), "KK cannot answer before reading K");
    assert_eq!(pair.init.error, None, "the initiator only sees the socket close");
    let now = pair.now;
    pair.init.eof(now);
    assert_eq!(pair.init.error, Some(Error::HandshakeRejected));
    assert!(pair.init.events.is_empty() && pair.resp.events.is_empty());
    Ok(())
}

#[test]
fn kk_forged_n_is_key_mismatch() -> TestResult {
    let (a, b, x) = (node(1), node(2), node(3));
    // N names X, but K is made with a's key.
    let mut s = spec(&a, &b, Dial::Key, 1_000);
    s.local_agent = x.agent.clone();
    let mut pair = Pair::with(&a, &b, s, Arc::default())?;
    pair.resp.lookup = knows(&[&a, &x]);
    pair.drive();
    assert!(
        matches!(&pair.resp.error, Some(Error::KeyMismatch { agent }) if *agent == x.agent),
        "{:?}",
        pair.resp.error
    );
    assert!(pair.resp.events.is_empty() && pair.resp.wire.is_empty());
    assert!(pair.replay.lock().map_err(|e| e.to_string())?.is_empty(), "nothing recorded for a forgery");
    Ok(())
}

#[test]
fn kk_failed_lookup_closes_without_reply() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, Dial::Key)?;
    pair.resp.lookup = Box::new(|_| Answer::Failed("timeout".into()));
    pair.drive();
    assert!(matches!(&pair.resp.error, Some(Error::LookupFailed(why)) if why.contains("timeout")));
    assert!(pair.resp.wire.is_empty());
    Ok(())
}

#[test]
fn initiator_without_the_responder_key_is_unknown_peer() {
    let (a, b) = (node(1), node(2));
    let mut s = spec(&a, &b, Dial::Key, 1);
    s.remote_key = None;
    let err = Connection::initiator(Arc::new(a.cfg.clone()), t0(), s).err();
    assert!(matches!(err, Some(Error::UnknownPeer { agent }) if agent == b.agent));
}

// ---- NK: referee queries -----------------------------------------------------------

#[test]
fn nk_referee_query_opens_with_anonymous_caller() -> TestResult {
    let (a, referee) = (node(1), node(2).with(|c| c.referee = true));
    let mut pair = Pair::new(&a, &referee, Dial::Referee)?;
    pair.resp.lookup = asks_nothing();
    pair.drive();
    pair.assert_open();
    assert_eq!(letters(&pair.init.wire), "Q");
    assert!(pair.resp.needs.is_empty(), "the caller's key is not asked for");
    let p = pair.resp.peer().ok_or("no Open")?;
    assert_eq!((&p.agent, p.pattern, p.key, p.native), (&None, Pattern::NK, None, true));
    let p = pair.init.peer().ok_or("no Open")?;
    assert_eq!((p.agent.as_deref(), p.key), (Some(referee.agent.as_str()), Some(referee.public)));
    let now = pair.now;
    pair.init.send(now, br#"{"query":1}"#)?;
    pair.drive();
    pair.resp.send(now, br#"{"answer":1}"#)?;
    pair.drive();
    assert_eq!(pair.init.messages(), vec![(r#"{"answer":1}"#.into(), false)]);
    Ok(())
}

#[test]
fn nk_refused_when_referee_disabled() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, Dial::Referee)?;
    pair.drive();
    assert_eq!(pair.resp.error, Some(Error::RefereeDisabled));
    assert_eq!(pair.init.error, Some(Error::RefereeDisabled));
    assert!(pair.init.events.is_empty() && pair.resp.events.is_empty());
    Ok(())
}

// ---- replay of message 1 -----------------------------------------------------------

#[test]
fn ik_replayed_hello_is_refused_before_any_lookup() -> TestResult {
    let (a, b) = (node(1), node(2));
    let pair = open(&a, &b, by_ticket(&a))?;
    let captured = pair.init.wire[0].clone();
    let mut fresh = Side::responder(&b, &pair.replay, knows(&[&a]));
    fresh.frame(pair.now, &captured);
    assert_eq!(fresh.error, Some(Error::Replay));
    assert!(fresh.needs.is_empty(), "refused before any lookup");
    assert!(fresh.wire.is_empty() && fresh.events.is_empty(), "no reply, nothing delivered");
    assert!(fresh.conn.is_closed());
    Ok(())
}

#[test]
fn kk_replayed_hello_is_refused() -> TestResult {
    let (a, b) = (node(1), node(2));
    let pair = open(&a, &b, Dial::Key)?;
    let mut fresh = Side::responder(&b, &pair.replay, knows(&[&a]));
    for body in &pair.init.wire[..2] {
        fresh.frame(pair.now, body);
    }
    assert_eq!(fresh.error, Some(Error::Replay));
    assert!(fresh.wire.is_empty() && fresh.events.is_empty());
    Ok(())
}

#[test]
fn ik_older_timestamp_is_refused_and_newer_accepted() -> TestResult {
    let (a, b) = (node(1), node(2));
    let replay: Arc<Mutex<ReplayTable>> = Arc::default();
    let mut first = Pair::with(&a, &b, spec(&a, &b, by_ticket(&a), 1_000), replay.clone())?;
    first.drive();
    first.assert_open();

    let mut older = Pair::with(&a, &b, spec(&a, &b, by_ticket(&a), 999), replay.clone())?;
    older.drive();
    assert_eq!(older.resp.error, Some(Error::Replay));
    assert!(older.resp.needs.is_empty());
    older.init.eof(older.now);
    assert_eq!(older.init.error, Some(Error::HandshakeRejected));

    let mut newer = Pair::with(&a, &b, spec(&a, &b, by_ticket(&a), 1_001), replay)?;
    newer.drive();
    newer.assert_open();
    Ok(())
}

#[test]
fn kk_older_timestamp_is_refused_and_newer_accepted() -> TestResult {
    let (a, b) = (node(1), node(2));
    let replay: Arc<Mutex<ReplayTable>> = Arc::default();
    let mut first = Pair::with(&a, &b, spec(&a, &b, Dial::Key, 50), replay.clone())?;
    first.drive();
    first.assert_open();
    let mut older = Pair::with(&a, &b, spec(&a, &b, Dial::Key, 49), replay.clone())?;
    older.drive();
    assert_eq!(older.resp.error, Some(Error::Replay));
    let mut newer = Pair::with(&a, &b, spec(&a, &b, Dial::Key, 51), replay)?;
    newer.drive();
    newer.assert_open();
    Ok(())
}

#[test]
fn refused_handshake_does_not_advance_the_replay_clock() -> TestResult {
    let (a, b) = (node(1), node(2));
    let replay: Arc<Mutex<ReplayTable>> = Arc::default();
    let mut refused = Pair::with(&a, &b, spec(&a, &b, by_ticket(&a), 5_000), replay.clone())?;
    refused.resp.lookup = store(&[(&a.agent, a.public)], |_| false);
    refused.drive();
    assert_eq!(refused.resp.error, Some(Error::TicketRefused));
    let mut later = Pair::with(&a, &b, spec(&a, &b, by_ticket(&a), 1_000), replay)?;
    later.drive();
    later.assert_open();
    Ok(())
}

#[test]
fn timestamps_are_per_initiator_key() -> TestResult {
    let (a, c, b) = (node(1), node(3), node(2));
    let replay: Arc<Mutex<ReplayTable>> = Arc::default();
    let mut first = Pair::with(&a, &b, spec(&a, &b, by_ticket(&a), 1_000), replay.clone())?;
    first.drive();
    first.assert_open();
    let mut other = Pair::with(&c, &b, spec(&c, &b, by_ticket(&c), 1), replay)?;
    other.drive();
    other.assert_open();
    Ok(())
}

// ---- transport: replay, reorder, bad messages ----------------------------------------

#[test]
fn replayed_transport_frame_fails_to_decrypt_and_closes() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let now = pair.now;
    pair.init.send(now, br#"{"once":true}"#)?;
    let t = pair.init.take_outbox().pop().ok_or("no T")?;
    pair.resp.frame(now, &t);
    pair.resp.frame(now, &t);
    assert_eq!(pair.resp.error, Some(Error::Decrypt));
    assert!(pair.resp.conn.is_closed());
    assert_eq!(pair.resp.messages().len(), 1, "nothing is delivered twice");
    Ok(())
}

#[test]
fn reordered_transport_frames_fail_to_decrypt() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let now = pair.now;
    pair.init.send(now, br#"{"n":1}"#)?;
    pair.init.send(now, br#"{"n":2}"#)?;
    let frames = pair.init.take_outbox();
    pair.resp.frame(now, &frames[1]);
    assert_eq!(pair.resp.error, Some(Error::Decrypt));
    assert!(pair.resp.conn.is_closed() && pair.resp.messages().is_empty());
    Ok(())
}

#[test]
fn received_message_that_is_not_an_object_is_bad_message() -> TestResult {
    // The sender refuses to send one, so seal it by hand in raw mode.
    let (a, b) = (raw_node(1), raw_node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    pair.resp.frame(pair.now, b"T[1,2,3]");
    assert_eq!(pair.resp.error, Some(Error::BadMessage));
    assert!(pair.resp.conn.is_closed() && pair.resp.messages().is_empty());
    Ok(())
}

// ---- legacy (JavaScript) initiators ----------------------------------------------------

/// A legacy IK message 1 as a JavaScript node writes it: its first
/// application message, with ticket, from and target, no `native`, no `ts`.
fn legacy_ticket_payload(from: &Node) -> Vec<u8> {
    json!({ "ticket": ticket(), "from": address(from), "target": "tally", "action": "draft" }).to_string().into_bytes()
}

fn legacy_ik(a: &Node, b: &Node, payload: &[u8]) -> Result<(Handshake, Vec<u8>)> {
    let mut hs = Handshake::initiator("IK", Some(&a.private), Some(&b.public))?;
    let msg = hs.write(payload)?;
    Ok((hs, frame::body(Letter::I, &msg)))
}

#[test]
fn legacy_ik_is_refused_unless_legacy_accepted() -> TestResult {
    let (a, b) = (node(1), node(2));
    let (_, i) = legacy_ik(&a, &b, &legacy_ticket_payload(&a))?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    resp.frame(t0(), &i);
    assert_eq!(resp.error, Some(Error::LegacyRefused));
    assert!(resp.needs.is_empty() && resp.events.is_empty());
    assert!(resp.wire.is_empty(), "a JavaScript node could not read a refusal");
    Ok(())
}

#[test]
fn legacy_ik_accepted_delivers_its_payload_once_as_early_data() -> TestResult {
    let (a, b) = (node(1), node(2).with(|c| c.accept_legacy = true));
    let hello = legacy_ticket_payload(&a);
    let (mut hs, i) = legacy_ik(&a, &b, &hello)?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    let now = t0();
    resp.frame(now, &i);
    assert_eq!(resp.error, None);
    let p = resp.peer().ok_or("no Open")?;
    assert_eq!((p.pattern, p.native, p.key), (Pattern::IK, false, Some(a.public)));
    assert_eq!(resp.messages(), vec![(String::from_utf8(hello)?, true)]);
    assert!(matches!(resp.events[0], Event::Open(_)), "Open comes before the early message");

    // The A carries an empty payload, which a JavaScript application never sees.
    let reply = resp.take_outbox();
    assert_eq!(letters(&reply), "A");
    assert_eq!(hs.read(&reply[0][1..])?, b"");

    // Then ordinary transport both ways.
    let mut t = hs.into_transport(false)?;
    resp.frame(now, &t.seal(Letter::T, br#"{"target":"tally","n":2}"#)?);
    assert_eq!(resp.messages().len(), 2);
    assert_eq!(resp.messages()[1], (r#"{"target":"tally","n":2}"#.into(), false));
    resp.send(now, br#"{"ok":1}"#)?;
    let back = resp.take_outbox();
    assert_eq!(t.open(&back[0][1..])?, br#"{"ok":1}"#);
    Ok(())
}

#[test]
fn legacy_peer_gets_long_messages_as_one_t_and_may_send_one() -> TestResult {
    let (a, b) = (node(1), node(2).with(|c| c.accept_legacy = true));
    let (mut hs, i) = legacy_ik(&a, &b, &legacy_ticket_payload(&a))?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    let now = t0();
    resp.frame(now, &i);
    let reply = resp.take_outbox();
    hs.read(&reply[0][1..])?;
    let mut t = hs.into_transport(false)?;

    let big = json_message(100 * 1024);
    resp.send(now, &big)?;
    let out = resp.take_outbox();
    assert_eq!(letters(&out), "T", "no F to a JavaScript node");
    assert!(out[0].len() > DEFAULT_MAX_FRAME);
    assert_eq!(t.open(&out[0][1..])?, big);

    let oversized = t.seal(Letter::T, &big)?;
    assert!(oversized.len() > DEFAULT_MAX_FRAME);
    resp.frame(now, &oversized);
    assert_eq!(resp.error, None, "a legacy T may exceed max_frame up to max_message");
    assert_eq!(resp.messages().last().map(|m| m.0.len()), Some(big.len()));
    Ok(())
}

fn legacy_kk(a: &Node, b: &Node, payload: &[u8]) -> Result<(Handshake, Vec<Vec<u8>>)> {
    let mut n = Handshake::initiator("N", None, Some(&b.public))?;
    let n = frame::body(Letter::N, &n.write(&payload::identity_hello(&a.agent))?);
    let mut hs = Handshake::initiator("KK", Some(&a.private), Some(&b.public))?;
    let k = frame::body(Letter::K, &hs.write(payload)?);
    Ok((hs, vec![n, k]))
}

#[test]
fn legacy_kk_object_payload_is_delivered_as_early_data() -> TestResult {
    let (a, b) = (node(1), node(2).with(|c| c.accept_legacy = true));
    let hello = br#"{"target":"chit","to":"x","from":"y"}"#;
    let (mut hs, frames) = legacy_kk(&a, &b, hello)?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    for f in &frames {
        resp.frame(t0(), f);
    }
    assert_eq!(resp.error, None);
    let p = resp.peer().ok_or("no Open")?;
    assert_eq!((p.pattern, p.native), (Pattern::KK, false));
    assert_eq!(resp.messages(), vec![(String::from_utf8(hello.to_vec())?, true)]);
    let reply = resp.take_outbox();
    assert_eq!(hs.read(&reply[0][1..])?, b"", "empty A payload to a legacy initiator");
    Ok(())
}

#[test]
fn legacy_kk_empty_object_delivers_nothing() -> TestResult {
    let (a, b) = (node(1), node(2).with(|c| c.accept_legacy = true));
    for hello in [&b"{}"[..], b"", b"null"] {
        let (_, frames) = legacy_kk(&a, &b, hello)?;
        let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
        for f in &frames {
            resp.frame(t0(), f);
        }
        assert_eq!(resp.error, None, "{hello:?}");
        assert!(resp.peer().is_some_and(|p| !p.native));
        assert!(resp.messages().is_empty(), "{hello:?} is not handed on");
    }
    Ok(())
}

#[test]
fn legacy_kk_is_refused_unless_legacy_accepted() -> TestResult {
    let (a, b) = (node(1), node(2));
    let (_, frames) = legacy_kk(&a, &b, br#"{"target":"chit"}"#)?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    for f in &frames {
        resp.frame(t0(), f);
    }
    assert_eq!(resp.error, Some(Error::LegacyRefused));
    assert!(resp.wire.is_empty() && resp.events.is_empty());
    Ok(())
}

#[test]
fn native_initiator_sees_a_legacy_responder_and_sends_no_fragments() -> TestResult {
    // A JavaScript responder accepts with an empty A: build one by hand.
    let (a, b) = (node(1), node(2));
    let mut init = Side::new(
        Connection::initiator(Arc::new(a.cfg.clone()), t0(), spec(&a, &b, by_ticket(&a), 7))?,
        asks_nothing(),
    );
    let i = init.take_outbox().pop().ok_or("no I")?;
    let mut hs = Handshake::responder("IK", Some(&b.private), None)?;
    let hello: Value = serde_json::from_slice(&hs.read(&i[1..])?)?;
    assert!(hello.get("target").is_none(), "a JavaScript application ignores our I");
    init.frame(t0(), &frame::body(Letter::A, &hs.write(b"")?));
    assert_eq!(init.error, None);
    assert!(init.peer().is_some_and(|p| !p.native));
    init.send(t0(), &json_message(100_000))?;
    assert_eq!(letters(&init.take_outbox()), "T");
    Ok(())
}

// ---- split direction ---------------------------------------------------------------------

#[test]
fn responder_sends_with_the_first_split_key() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut snow_init = snow::Builder::new(suite::params("IK"))
        .local_private_key(&a.private)?
        .remote_public_key(&b.public)?
        .build_initiator()?;
    let mut buf = vec![0u8; 65_535];
    let n = snow_init.write_message(&payload::ticket_hello(&ticket(), &address(&a), 3), &mut buf)?;
    let mut resp = Side::responder(&b, &Arc::default(), knows(&[&a]));
    let now = t0();
    resp.frame(now, &frame::body(Letter::I, &buf[..n]));
    assert!(resp.conn.is_open(), "{:?}", resp.error);
    let reply = resp.take_outbox();
    let n = snow_init.read_message(&reply[0][1..], &mut buf)?;
    assert_eq!(payload::parse_reply(&buf[..n]), payload::Reply::Native);
    assert!(snow_init.is_handshake_finished());
    let (k1, k2) = snow_init.dangerously_get_raw_split();

    resp.send(now, br#"{"from":"responder"}"#)?;
    let t = resp.take_outbox().pop().ok_or("no T")?;
    assert_eq!(Transport::new(&k2, &k1).open(&t[1..])?, br#"{"from":"responder"}"#, "responder sends with k1");
    assert_eq!(Transport::new(&k1, &k2).open(&t[1..]), Err(Error::Decrypt), "not with k2 (the Noise spec's way)");

    let mut ours = Transport::new(&k2, &k1);
    resp.frame(now, &ours.seal(Letter::T, br#"{"from":"initiator"}"#)?);
    assert_eq!(resp.messages(), vec![(r#"{"from":"initiator"}"#.into(), false)], "initiator sends with k2");
    Ok(())
}

// ---- letters per state ---------------------------------------------------------------------

const ALL_BYTES: &[u8] = b"INKQATFX\0";

type Build = fn() -> Result<Connection>;

fn fresh_responder(of: &Node) -> Connection {
    Connection::responder(Arc::new(of.cfg.clone()), Arc::default(), t0())
}

/// A connection whose initiator-written message 1 has been read (and, with
/// `answers`, that many lookups answered by a store that knows everyone).
fn responder_after(dial: Dial, frames: usize, answers: usize) -> Result<Connection> {
    let (a, b) = (node(1), node(2));
    let mut init = Connection::initiator(Arc::new(a.cfg.clone()), t0(), spec(&a, &b, dial, 1))?;
    let mut resp = fresh_responder(&b);
    for _ in 0..frames {
        let body = init.poll_transmit().ok_or_else(|| Error::Internal("no frame".into()))?;
        resp.handle_frame(t0(), &body)?;
    }
    let mut lookup = knows(&[&a]);
    for _ in 0..answers {
        let need = std::iter::from_fn(|| resp.poll_event())
            .find_map(|e| match e {
                Event::Need(n) => Some(n),
                _ => None,
            })
            .ok_or_else(|| Error::Internal("no Need".into()))?;
        resp.handle_lookup(t0(), lookup(&need))?;
    }
    Ok(resp)
}

fn open_side(initiator: bool) -> Result<Connection> {
    let (a, b) = (node(1), node(2));
    let pair = open(&a, &b, by_ticket(&a))?;
    Ok(if initiator { pair.init.conn } else { pair.resp.conn })
}

/// (state, allowed letters, how to get there)
fn states() -> Vec<(&'static str, &'static [u8], Build)> {
    vec![
        ("responder, fresh", b"INQ", || Ok(fresh_responder(&node(2)))),
        ("responder, after N", b"K", || responder_after(Dial::Key, 1, 0)),
        ("responder, after N, key known", b"K", || responder_after(Dial::Key, 1, 1)),
        ("responder, after I, asking for the key", b"", || responder_after(by_ticket(&node(1)), 1, 0)),
        ("responder, after I, asking about the ticket", b"", || responder_after(by_ticket(&node(1)), 1, 1)),
        ("initiator, awaiting A", b"A", || {
            let (a, b) = (node(1), node(2));
            Connection::initiator(Arc::new(a.cfg.clone()), t0(), spec(&a, &b, Dial::Key, 1))
        }),
        ("initiator, open", b"TF", || open_side(true)),
        ("responder, open", b"TF", || open_side(false)),
        ("responder, draining", b"TF", || {
            let mut c = open_side(false)?;
            c.close(t0());
            Ok(c)
        }),
        ("closed", b"", || {
            let mut c = open_side(false)?;
            c.handle_eof()?;
            Ok(c)
        }),
    ]
}

#[test]
fn letters_not_allowed_in_a_state_are_refused_and_close_the_connection() -> TestResult {
    let mut checked = 0;
    for (state, allowed, build) in states() {
        for &byte in ALL_BYTES.iter().filter(|b| !allowed.contains(b)) {
            let mut conn = build()?;
            let mut body = vec![byte];
            body.extend_from_slice(&noise(u64::from(byte), 64));
            let r = conn.handle_frame(t0(), &body);
            assert!(
                matches!(r, Err(Error::UnexpectedLetter { letter, .. }) if letter == char::from(byte)),
                "{state}, letter {:?}: {r:?}",
                char::from(byte)
            );
            assert!(conn.is_closed(), "{state}, letter {:?}", char::from(byte));
            assert_eq!(conn.poll_timeout(), None, "{state}: a closed connection has no timer");
            checked += 1;
        }
    }
    assert_eq!(checked, 78, "10 states × 9 letters, less the 12 allowed ones");
    Ok(())
}

#[test]
fn empty_frame_is_refused_in_every_state() -> TestResult {
    for (state, _, build) in states() {
        let mut conn = build()?;
        assert_eq!(conn.handle_frame(t0(), b""), Err(Error::EmptyFrame), "{state}");
        assert!(conn.is_closed(), "{state}");
    }
    Ok(())
}

#[test]
fn frame_over_max_frame_is_refused_before_its_letter_is_read() -> TestResult {
    for (state, _, build) in states() {
        let mut conn = build()?;
        let mut body = vec![b'T'; DEFAULT_MAX_FRAME + 1];
        body[0] = b'I';
        assert_eq!(conn.handle_frame(t0(), &body), Err(Error::FrameTooLarge { max: DEFAULT_MAX_FRAME }), "{state}");
        assert!(conn.is_closed());
        let mut conn = build()?;
        let body = vec![b'T'; DEFAULT_MAX_FRAME + 1];
        assert_eq!(conn.handle_frame(t0(), &body), Err(Error::FrameTooLarge { max: DEFAULT_MAX_FRAME }), "{state}");
    }
    Ok(())
}

#[test]
fn random_bytes_after_an_allowed_letter_are_an_error_never_a_panic() -> TestResult {
    let (a, b) = (node(1), node(2));
    for (state, allowed, build) in states() {
        for &byte in allowed {
            for (i, len) in
                [0usize, 1, 15, 16, 31, 32, 33, 47, 48, 64, 95, 96, 200, 1_000, 65_535].into_iter().enumerate()
            {
                let conn = build()?;
                let mut side = Side::new(conn, knows(&[&a, &b]));
                let mut body = vec![byte];
                body.extend_from_slice(&noise(i as u64 * 31 + u64::from(byte), len));
                side.frame(t0(), &body);
                assert!(side.error.is_some(), "{state}, {:?} + {len} random bytes", char::from(byte));
                assert!(side.conn.is_closed(), "{state}, {:?} + {len}", char::from(byte));
                assert!(
                    !side.events.iter().any(|e| matches!(e, Event::Open(_) | Event::Message { .. })),
                    "{state}: nothing opens or is delivered"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn random_bytes_in_raw_mode_never_panic() -> TestResult {
    let (a, b) = (raw_node(1), raw_node(2));
    let mut init = Connection::initiator(Arc::new(a.cfg.clone()), t0(), spec(&a, &b, Dial::Key, 1))?;
    let n = init.poll_transmit().ok_or("no N")?;
    for len in [0usize, 1, 2, 10, 100, 1_000] {
        for (letter, prefix) in [(b'I', None), (b'N', None), (b'Q', None), (b'K', Some(&n))] {
            let mut side = Side::new(fresh_responder(&b), knows(&[&a]));
            if let Some(n) = prefix {
                side.frame(t0(), n);
            }
            let mut body = vec![letter];
            body.extend_from_slice(&noise(len as u64, len));
            side.frame(t0(), &body);
            assert!(side.error.is_some(), "raw {:?} + {len} random bytes", char::from(letter));
            assert!(!side.events.iter().any(|e| matches!(e, Event::Open(_))));
        }
    }
    Ok(())
}

#[test]
fn truncated_first_messages_are_refused_without_panic() -> TestResult {
    let (a, b) = (node(1), node(2).with(|c| c.referee = true));
    for dial in [by_ticket(&a), Dial::Key, Dial::Referee] {
        let mut init = Connection::initiator(Arc::new(a.cfg.clone()), t0(), spec(&a, &b, dial, 1))?;
        let first = init.poll_transmit().ok_or("no message 1")?;
        for len in 0..first.len() {
            let mut side = Side::new(fresh_responder(&b), knows(&[&a]));
            side.frame(t0(), &first[..len]);
            let what = format!("{:?} cut to {len} bytes: {:?}", char::from(first[0]), side.error);
            match (len, &side.error) {
                (0, Some(Error::EmptyFrame)) | (_, Some(Error::Decrypt)) => assert!(side.wire.is_empty(), "{what}"),
                // The ephemeral key is random: a cut of a byte or two that happen
                // to be ASCII digits parses as JSON, which reads as a raw-mode
                // peer and earns it the plaintext mode-mismatch notice.
                (1..=3, Some(Error::ModeMismatch(_))) => assert_eq!(letters(&side.wire), "A", "{what}"),
                _ => panic!("{what}"),
            }
            assert!(side.needs.is_empty() && side.events.is_empty(), "{what}");
        }
    }
    Ok(())
}

#[test]
fn truncated_reply_and_transport_frames_are_refused_without_panic() -> TestResult {
    let (a, b) = (node(1), node(2));
    let pair = open(&a, &b, by_ticket(&a))?;
    let reply = pair.resp.wire[0].clone();
    for len in 1..reply.len() {
        let mut init = Connection::initiator(Arc::new(a.cfg.clone()), t0(), spec(&a, &b, by_ticket(&a), 1))?;
        assert!(init.handle_frame(t0(), &reply[..len]).is_err(), "A cut to {len}");
        assert!(init.is_closed());
    }
    let (mut pair, msg) = (open(&a, &b, by_ticket(&a))?, br#"{"x":1}"#);
    pair.init.send(pair.now, msg)?;
    let t = pair.init.take_outbox().pop().ok_or("no T")?;
    for len in 1..t.len() {
        let mut resp = open_side(false)?;
        assert_eq!(resp.handle_frame(t0(), &t[..len]), Err(Error::Decrypt), "T cut to {len}");
    }
    Ok(())
}

// ---- timeouts ------------------------------------------------------------------------------

#[test]
fn handshake_not_complete_in_time_times_out_on_both_roles() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, Dial::Key)?;
    pair.resp.auto_answer = false; // the lookup never comes back
    pair.drive();
    for side in [&mut pair.init, &mut pair.resp] {
        let deadline = side.conn.poll_timeout().ok_or("no handshake timer")?;
        assert_eq!(deadline, t0() + Duration::from_secs(5));
        side.timeout(deadline - Duration::from_millis(1));
        assert_eq!(side.error, None, "not yet");
        side.timeout(deadline);
        assert_eq!(side.error, Some(Error::HandshakeTimeout { ms: 5_000 }));
        assert!(side.conn.is_closed() && side.conn.poll_timeout().is_none());
    }
    Ok(())
}

#[test]
fn idle_responder_closes_in_order_and_drains() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let idle = Duration::from_secs(60);
    assert_eq!(pair.resp.conn.poll_timeout(), Some(pair.now + idle));

    // Traffic pushes the deadline back.
    pair.advance(Duration::from_secs(30));
    let now = pair.now;
    pair.init.send(now, br#"{"n":1}"#)?;
    pair.drive();
    assert_eq!(pair.resp.conn.poll_timeout(), Some(now + idle));

    let deadline = now + idle;
    pair.resp.timeout(deadline - Duration::from_millis(1));
    assert!(pair.resp.conn.is_open() && pair.resp.closings().is_empty());
    pair.now = deadline;
    pair.resp.timeout(deadline);
    assert_eq!(pair.resp.closings(), vec![CloseReason::IdleTimeout]);
    assert!(pair.resp.conn.is_draining() && pair.resp.error.is_none());
    assert_eq!(pair.resp.send(deadline, br#"{"late":1}"#), Err(Error::ConnectionClosed), "stop sending");

    // What was in flight is still read.
    pair.init.send(deadline, br#"{"n":2}"#)?;
    pair.drive();
    assert_eq!(pair.resp.messages().last(), Some(&(r#"{"n":2}"#.into(), false)));

    let drain = pair.resp.conn.poll_timeout().ok_or("no drain timer")?;
    assert_eq!(drain, deadline + Duration::from_secs(2));
    pair.resp.timeout(drain);
    assert!(pair.resp.conn.is_closed() && pair.resp.error.is_none());
    assert_eq!(pair.resp.closings().len(), 1);
    Ok(())
}

#[test]
fn initiator_has_no_idle_timer() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, Dial::Key)?;
    assert_eq!(pair.init.conn.poll_timeout(), None);
    let now = pair.now;
    pair.init.send(now, br#"{"n":1}"#)?;
    pair.drive();
    assert_eq!(pair.init.conn.poll_timeout(), None);
    pair.init.timeout(now + Duration::from_secs(3_600));
    assert!(pair.init.conn.is_open() && pair.init.events.len() == 1);
    Ok(())
}

#[test]
fn no_idle_timeout_when_disabled() -> TestResult {
    let (a, b) = (node(1), node(2).with(|c| c.idle_timeout = None));
    let pair = open(&a, &b, by_ticket(&a))?;
    assert_eq!(pair.resp.conn.poll_timeout(), None);
    Ok(())
}

#[test]
fn local_close_drains_then_eof_closes() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let now = pair.now;
    pair.init.conn.close(now);
    pair.init.collect();
    assert_eq!(pair.init.closings(), vec![CloseReason::Local]);
    assert_eq!(pair.init.conn.poll_timeout(), Some(now + Duration::from_secs(2)));
    pair.resp.send(now, br#"{"last":1}"#)?;
    pair.drive();
    assert_eq!(pair.init.messages(), vec![(r#"{"last":1}"#.into(), false)]);
    pair.init.eof(now);
    assert!(pair.init.conn.is_closed() && pair.init.error.is_none());
    Ok(())
}

// ---- end of stream ---------------------------------------------------------------------------

#[test]
fn eof_while_open_closes_cleanly() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, Dial::Key)?;
    let now = pair.now;
    pair.init.eof(now);
    pair.resp.eof(now);
    assert_eq!((&pair.init.error, &pair.resp.error), (&None, &None));
    assert!(pair.init.conn.is_closed() && pair.resp.conn.is_closed());
    Ok(())
}

#[test]
fn eof_during_handshake_is_a_rejection_for_the_initiator() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, by_ticket(&a))?;
    pair.init.eof(pair.now);
    assert_eq!(pair.init.error, Some(Error::HandshakeRejected));
    assert!(pair.init.conn.is_closed());
    Ok(())
}

#[test]
fn eof_in_the_middle_of_a_fragmented_message_is_an_error() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let now = pair.now;
    pair.init.send(now, &json_message(200_000))?;
    let frames = pair.init.take_outbox();
    pair.resp.frame(now, &frames[0]);
    pair.resp.eof(now);
    assert_eq!(pair.resp.error, Some(Error::ConnectionClosed));
    assert!(pair.resp.messages().is_empty());
    Ok(())
}

// ---- fragmentation and limits -------------------------------------------------------------

/// A JSON object of exactly `len` bytes: `{"p":"aaa…"}`.
fn json_message(len: usize) -> Vec<u8> {
    let mut m = br#"{"p":""#.to_vec();
    m.resize(len - 2, b'a');
    m.extend_from_slice(br#""}"#);
    m
}

#[test]
fn one_mib_message_goes_as_fragments_and_arrives_whole() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let msg = json_message(DEFAULT_MAX_MESSAGE);
    serde_json::from_slice::<Value>(&msg)?;
    let now = pair.now;
    pair.init.send(now, &msg)?;
    let frames = pair.init.outbox.clone();
    let shape = letters(&Vec::from(frames.clone()));
    assert!(shape.len() > 16 && shape.ends_with('T') && shape[..shape.len() - 1].chars().all(|c| c == 'F'), "{shape}");
    assert!(frames.iter().all(|f| f.len() <= DEFAULT_MAX_FRAME), "each frame at most 65,536 bytes");
    assert!(frames.iter().all(|f| f.len() - 1 <= MAX_NOISE_MESSAGE));
    pair.drive();
    assert_eq!(pair.resp.error, None);
    let got = pair.resp.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.as_bytes(), &msg[..]);

    // And the other way, then a short one to show the reassembler reset.
    pair.resp.send(now, &msg)?;
    pair.resp.send(now, br#"{"after":1}"#)?;
    pair.drive();
    assert_eq!(pair.init.messages().len(), 2);
    assert_eq!(pair.init.messages()[1].0, r#"{"after":1}"#);
    Ok(())
}

#[test]
fn message_over_max_message_is_refused_by_send() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    let r = pair.init.send(pair.now, &json_message(DEFAULT_MAX_MESSAGE + 1));
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    assert!(pair.init.outbox.is_empty() && pair.init.conn.is_open(), "nothing sent, link intact");
    Ok(())
}

#[test]
fn reassembled_message_over_receiver_limit_is_refused() -> TestResult {
    let (a, b) = (node(1).with(|c| c.max_message = 2 * DEFAULT_MAX_MESSAGE), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    pair.init.send(pair.now, &json_message(DEFAULT_MAX_MESSAGE + 1_024))?;
    pair.drive();
    assert_eq!(pair.resp.error, Some(Error::MessageTooLarge { max: DEFAULT_MAX_MESSAGE }));
    assert!(pair.resp.conn.is_closed() && pair.resp.messages().is_empty());
    Ok(())
}

// ---- raw mode --------------------------------------------------------------------------------

#[test]
fn raw_mode_opens_every_pattern_and_carries_plaintext() -> TestResult {
    let (a, b) = (raw_node(1), raw_node(2).with(|c| c.referee = true));
    for (dial, pattern) in [(by_ticket(&a), Pattern::IK), (Dial::Key, Pattern::KK), (Dial::Referee, Pattern::NK)] {
        let mut pair = open(&a, &b, dial)?;
        let p = pair.resp.peer().ok_or("no Open")?;
        assert_eq!((p.pattern, p.key), (pattern, None), "raw mode proves no key");
        assert_eq!(pair.init.peer().map(|p| p.key), Some(None), "raw mode proves no key");
        let now = pair.now;
        pair.init.send(now, br#"{"hello":"raw"}"#)?;
        pair.drive();
        assert_eq!(pair.init.wire.last().map(Vec::as_slice), Some(&br#"T{"hello":"raw"}"#[..]));
        assert_eq!(pair.resp.messages(), vec![(r#"{"hello":"raw"}"#.into(), false)]);
        pair.resp.send(now, br#"{"back":1}"#)?;
        pair.drive();
        assert_eq!(pair.init.messages(), vec![(r#"{"back":1}"#.into(), false)], "{pattern:?}");
    }
    Ok(())
}

#[test]
fn raw_initiator_and_encrypting_responder_both_report_mode_mismatch() -> TestResult {
    let (a, b) = (raw_node(1), node(2).with(|c| c.referee = true));
    for dial in [by_ticket(&a), Dial::Key, Dial::Referee] {
        let mut pair = Pair::new(&a, &b, dial.clone())?;
        pair.drive();
        assert!(matches!(pair.resp.error, Some(Error::ModeMismatch(_))), "{dial:?}: {:?}", pair.resp.error);
        assert!(matches!(pair.init.error, Some(Error::ModeMismatch(_))), "{dial:?}: {:?}", pair.init.error);
        assert!(pair.resp.needs.is_empty() && pair.init.events.is_empty() && pair.resp.events.is_empty());
    }
    Ok(())
}

#[test]
fn encrypting_initiator_and_raw_responder_both_report_mode_mismatch() -> TestResult {
    let (a, b) = (node(1), raw_node(2).with(|c| c.referee = true));
    for dial in [by_ticket(&a), Dial::Key, Dial::Referee] {
        let mut pair = Pair::new(&a, &b, dial.clone())?;
        pair.drive();
        assert!(matches!(pair.resp.error, Some(Error::ModeMismatch(_))), "{dial:?}: {:?}", pair.resp.error);
        assert!(matches!(pair.init.error, Some(Error::ModeMismatch(_))), "{dial:?}: {:?}", pair.init.error);
        assert!(pair.init.events.is_empty() && pair.resp.events.is_empty());
    }
    Ok(())
}

// ---- local misuse --------------------------------------------------------------------------

#[test]
fn send_before_open_is_connection_closed() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = Pair::new(&a, &b, by_ticket(&a))?;
    assert_eq!(pair.init.send(pair.now, br#"{"early":1}"#), Err(Error::ConnectionClosed));
    let mut resp = fresh_responder(&b);
    assert_eq!(resp.send(t0(), b"{}").map(|_| ()), Err(Error::ConnectionClosed));
    Ok(())
}

#[test]
fn non_object_message_is_invalid_argument() -> TestResult {
    let (a, b) = (node(1), node(2));
    let mut pair = open(&a, &b, by_ticket(&a))?;
    for bad in [&b"[1]"[..], b"42", b"\"s\"", b"", b"   ", b"null"] {
        let r = pair.init.send(pair.now, bad);
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{bad:?}: {r:?}");
    }
    assert!(pair.init.conn.is_open() && pair.init.outbox.is_empty());
    Ok(())
}

#[test]
fn lookup_answer_nobody_asked_for_is_an_internal_error() -> TestResult {
    let (_, b) = (node(1), node(2));
    let mut resp = fresh_responder(&b);
    assert!(matches!(resp.handle_lookup(t0(), Answer::Ticket(true)), Err(Error::Internal(_))));
    assert!(resp.is_closed());
    Ok(())
}
