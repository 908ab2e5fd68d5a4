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

mod eof;
mod ik;
mod kk;
mod legacy;
mod letters;
mod limits;
mod misuse;
mod nk;
mod raw;
mod replay;
mod split;
mod timeouts;
mod transport;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::config::Config;
use super::conn::Connection;
use super::dial::{Dial, DialSpec};
use super::event::{Answer, Event, Need, PeerInfo};
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
        // Every agent it holds a key for is a partner.
        Need::Partner { agent } => Answer::Partner { allowed: keys.contains_key(agent), key: keys.get(agent).copied() },
        Need::Ticket { ticket, .. } => Answer::Ticket(ticket_ok(ticket)),
    })
}

/// A store that knows these nodes' keys and accepts every ticket.
fn knows(nodes: &[&Node]) -> Lookup {
    let keys: Vec<(&str, Key)> = nodes.iter().map(|n| (n.agent.as_str(), n.public)).collect();
    store(&keys, |_| true)
}

fn asks_nothing() -> Lookup {
    Box::new(|need| Answer::Failed(Error::LookupFailed(format!("this side should not ask: {need:?}"))))
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

    /// Who the handshake says is at the other end (a responder knows once it
    /// accepted, before the initiator confirms).
    fn peer(&self) -> Option<&PeerInfo> {
        self.events.iter().find_map(|e| match e {
            Event::Open(p) | Event::Accepted(p) => Some(p),
            _ => None,
        })
    }

    /// The link was reported open (for a responder: confirmed).
    fn opened(&self) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Open(_)))
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

/// A JSON object of exactly `len` bytes: `{"p":"aaa…"}`.
fn json_message(len: usize) -> Vec<u8> {
    let mut m = br#"{"p":""#.to_vec();
    m.resize(len - 2, b'a');
    m.extend_from_slice(br#""}"#);
    m
}

/// A responder that has received nothing yet.
fn fresh_responder(of: &Node) -> Connection {
    Connection::responder(Arc::new(of.cfg.clone()), Arc::default(), t0())
}
