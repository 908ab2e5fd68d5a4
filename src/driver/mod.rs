//! The tokio driver: sockets, tasks, deadlines, and the agent -> link map.
//!
//! It moves bytes between TCP and [`crate::proto::Connection`]s, answers the
//! core's lookups from a [`Store`], and reports to a [`Sink`]. It makes no
//! protocol decisions and parses no frames beyond the length prefix.
//!
//! Modules, each depending only on those listed before it:
//! - `event`, `queue`, `lookup`, `config`, `admission`: the vocabulary (what
//!   is reported, what travels to a link and its budget, the store seam, the
//!   settings, who gets a connection);
//! - `wire`: what a link's task shares with the threads that send on it
//!   (socket, core, write buffer, command queue), and the write-at-once path;
//! - `registry`: agent -> links; says which link a message goes on, and
//!   orders a dial when there is none;
//! - `shared`: what one node's tasks share;
//! - `link`: one connection's task; `dial`, `listener`: how connections start;
//! - this module: `Peer`, the handle the binding holds.
#![forbid(unsafe_code)]

mod admission;
mod config;
mod dial;
mod event;
mod link;
mod listener;
mod lookup;
mod queue;
mod registry;
mod shared;
mod stats;
#[cfg(test)]
mod tests;
mod wire;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::{Error, Result};
use queue::Outgoing;
use shared::Shared;
use wire::{Now, Wire};

pub use crate::store::Store;
pub use config::PeerConfig;
pub use dial::next_timestamp;
pub use event::{DeliveryPermit, EventKind, LinkInfo, PeerEvent, Sink};
pub use queue::{id_runs, Done, SendOptions, Target};
pub use registry::Registry;
pub use stats::{NodeFigures, PeerFigures, Traffic};

/// How `send_with` went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Written to the socket; nobody will hear more of it.
    Written,
    /// Waits for `uncork`, which reports it (by id) or leaves it to `done`.
    Corked,
    /// Its `done` will hear how it ended.
    Pending,
}

/// Figures of a running node.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub store: crate::store::StoreStats,
    /// Inbound connections in their handshake.
    pub pending: usize,
    /// Bytes of messages accepted by `send` and not yet written.
    pub queued_bytes: usize,
    /// Links, handshakes, traffic, and the same per partner.
    pub node: NodeFigures,
}

/// A running node: cheap to clone.
#[derive(Clone)]
pub struct Peer {
    shared: Arc<Shared>,
}

impl Peer {
    /// A node with these settings. Refuses settings it could not run with.
    pub fn new(cfg: PeerConfig, store: Arc<dyn Store>, sink: Arc<dyn Sink>) -> Result<Self> {
        cfg.validate()?;
        Ok(Self { shared: Arc::new(Shared::new(cfg, store, sink, dial::spawn)) })
    }

    /// Bind (at once: the port takes connections when this returns) and
    /// start accepting. Must run inside the tokio runtime's context.
    pub fn listen(&self) -> Result<SocketAddr> {
        self.check_open()?;
        listener::start(self.shared.clone())
    }

    /// Send one message (JSON object text). The message is queued before this
    /// returns, so messages keep the order of the calls; the future resolves
    /// once its frames were handed to the socket. Opens or reuses a link.
    /// Must be called inside the tokio runtime's context (it may dial).
    pub fn send(
        &self,
        target: Target,
        data: Vec<u8>,
        opts: SendOptions,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let (done, result) = Done::oneshot();
        let sent = self.send_with(target, data, opts, done, false);
        async move {
            if sent == Sent::Written {
                return Ok(());
            }
            result.await.unwrap_or(Err(Error::ConnectionClosed))
        }
    }

    /// `send`, reporting the outcome to `done` instead of a future. A send
    /// beyond the agent's queue budget fails at once with `Backpressure`.
    ///
    /// A message with nothing ahead of it on an open link is written to the
    /// socket before this returns: then the result is `Sent::Written` and
    /// `done` is dropped unfired (the caller knows). With `cork`, it waits
    /// in the link's buffer for `uncork` instead (`Sent::Corked`), which
    /// writes everything corked in one go per link. Otherwise `done` hears
    /// later.
    pub fn send_with(&self, target: Target, data: Vec<u8>, opts: SendOptions, done: Done, cork: bool) -> Sent {
        let wire = self.shared.registry.in_use(&target, &opts);
        self.send_on(wire.as_ref(), &target, Cow::Owned(data), &opts, done, cork, Instant::now())
    }

    /// `send_with` once the open link for `target` (if any) has been looked
    /// up. `data` is copied only if it must wait in a queue: sealed at once,
    /// it is read where it lies.
    #[allow(clippy::too_many_arguments)]
    fn send_on(
        &self,
        wire: Option<&Arc<Wire>>,
        target: &Target,
        data: Cow<'_, [u8]>,
        opts: &SendOptions,
        done: Done,
        cork: bool,
        now: Instant,
    ) -> Sent {
        if let Err(e) = self.check_open().and_then(|()| self.shared.proto.check_outgoing(&data)) {
            done.complete(Err(e));
            return Sent::Pending;
        }
        let mut done = match wire {
            Some(wire) => match wire.send_now(&data, done, cork, self.shared.cfg.high_water, now) {
                Now::Written(done) => {
                    done.disarm();
                    return Sent::Written;
                }
                Now::Writing => return Sent::Pending,
                Now::Corked { first } => {
                    if first {
                        self.shared.corked.lock().unwrap_or_else(|p| p.into_inner()).push(wire.clone());
                    }
                    return Sent::Corked;
                }
                Now::Failed(err, done) => {
                    done.complete(Err(err));
                    return Sent::Pending;
                }
                Now::Later(done) => done,
            },
            None => done,
        };
        let data = data.into_owned();
        let key = match (&target.link, &target.agent) {
            (Some(link), _) => format!("link {link}"),
            (None, Some(agent)) => agent.clone(),
            (None, None) => String::new(),
        };
        match self.shared.budgets.take(&key, data.len()) {
            Ok(budget) => done.hold(budget),
            Err(e) => {
                done.complete(Err(e));
                return Sent::Pending;
            }
        }
        let (target, opts) = (target.clone(), opts.clone());
        let dial = self.shared.registry.submit(Outgoing { data, done, target, opts, attempts: 0, cause: None });
        self.shared.start_dials(dial);
        Sent::Pending
    }

    /// `send_with`, corked, for several messages to one target in call order
    /// (JavaScript gathers the sends of a turn and hands them over at once).
    /// Each is reported to its `done` or written by the next `uncork`.
    pub fn send_corked<'a>(&self, target: &Target, messages: impl IntoIterator<Item = (&'a [u8], Done)>) {
        let opts = SendOptions::default();
        // One look-up for them all: a link that closes meanwhile refuses
        // them (`Now::Later`), and they take the queue, as they would one by
        // one. One clock reading too: they are sent in the same instant.
        let wire = self.shared.registry.in_use(target, &opts);
        let now = Instant::now();
        for (data, done) in messages {
            // Corked, so never `Sent::Written` here: `done` hears, or `uncork` writes it.
            self.send_on(wire.as_ref(), target, Cow::Borrowed(data), &opts, done, true, now);
        }
    }

    /// Write everything corked, one write per link. Returns the ids of the
    /// sends (reported by id) that this wrote; the rest are reported as usual.
    pub fn uncork(&self) -> Vec<u64> {
        let wires = std::mem::take(&mut *self.shared.corked.lock().unwrap_or_else(|p| p.into_inner()));
        let mut ids = Vec::new();
        for wire in wires {
            wire.uncork(&mut ids);
        }
        ids
    }

    /// Open (or reuse) a link without sending; resolves when it is open.
    pub async fn connect(&self, target: Target, opts: SendOptions) -> Result<LinkInfo> {
        self.check_open()?;
        let (done, result) = oneshot::channel();
        let dial = self.shared.registry.connect(target, opts, done);
        self.shared.start_dials(dial);
        result.await.unwrap_or(Err(Error::ConnectionClosed))
    }

    /// Close, in order, every link to `agent`. Returns how many were open.
    pub fn end(&self, agent: &str) -> usize {
        let (n, dials) = self.shared.registry.end_agent(agent);
        self.shared.start_dials(dials);
        n
    }

    /// Stop listening, close every link, and wait for the tasks. Every wait
    /// a task can be in is bounded, and shorter once the node closes (a
    /// link's last writes by `drain_timeout`, its drain as well), so this
    /// ends, and leaves no task behind; the bound here only guards that.
    pub async fn close(&self) {
        self.shared.shutdown.cancel();
        self.shared.store.shutdown();
        self.shared.tasks.close();
        let grace = self.shared.proto.drain_timeout * 3 + Duration::from_secs(2);
        let _ = tokio::time::timeout(grace, self.shared.tasks.wait()).await;
    }

    /// Tasks of the node still running (links, dials, the accept loop).
    pub fn tasks(&self) -> usize {
        self.shared.tasks.len()
    }

    pub fn is_closed(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// Figures of the running node.
    pub fn stats(&self) -> Stats {
        let mut node = self.shared.counters.snapshot();
        let (open, dialling) = self.shared.registry.figures();
        let queued = self.shared.budgets.by_key();
        let mut peers: std::collections::BTreeMap<Option<String>, PeerFigures> = std::collections::BTreeMap::new();
        for (info, traffic) in &open {
            *node.open.entry(info.pattern.name()).or_default() += 1;
            node.traffic.add(traffic);
            let p = peers.entry(info.agent.clone()).or_insert_with(|| PeerFigures {
                agent: info.agent.clone(),
                queued_bytes: info.agent.as_ref().and_then(|a| queued.get(a)).copied().unwrap_or(0),
                ..PeerFigures::default()
            });
            p.links += 1;
            p.traffic.add(traffic);
        }
        node.dialling = dialling;
        node.peers = peers.into_values().collect();
        Stats {
            store: self.shared.store.stats(),
            pending: self.shared.admission.pending(),
            queued_bytes: queued.values().sum(),
            node,
        }
    }

    /// The links open right now.
    pub fn links(&self) -> Vec<LinkInfo> {
        self.shared.registry.open_links()
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addr()
    }

    fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }
}
