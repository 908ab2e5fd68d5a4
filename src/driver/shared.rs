//! What one node's tasks share: settings, the store and sink, the registry,
//! admission, queue budgets, the replay table, the shutdown signal and the
//! task tracker, and the gate that keeps failure events from flooding the
//! application.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admission::Admission;
use super::config::PeerConfig;
use super::event::{EventGate, EventKind, PeerEvent, Sink};
use super::lookup::Refusals;
use super::queue::Budgets;
use super::registry::{DialOrder, LinkLimits, Registry};
use super::wire::Wire;
use crate::proto::{self, replay::ReplayTable};
use crate::store::Store;

/// How far another node's clock may be behind ours: handshake timestamps
/// from before our start, less this, are refused as replays (docs/PROTOCOL.md §5).
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

pub(crate) struct Shared {
    pub cfg: PeerConfig,
    pub proto: Arc<proto::Config>,
    pub store: Arc<dyn Store>,
    pub sink: Arc<dyn Sink>,
    pub registry: Registry,
    pub admission: Arc<Admission>,
    pub budgets: Arc<Budgets>,
    /// Message batches the application may be behind; a link waits for a
    /// permit before it hands over a batch, and reads nothing meanwhile.
    pub deliveries: Arc<Semaphore>,
    pub replay: Arc<Mutex<ReplayTable>>,
    /// Recent refusals, when the store keeps no cache of its own.
    pub refusals: Option<Refusals>,
    /// Handshake outcomes and the traffic of links that ended.
    pub counters: super::stats::Counters,
    /// Wires holding corked messages, to write on `uncork`.
    pub corked: Mutex<Vec<Arc<Wire>>>,
    /// Cancelled by `close()`: every task below watches it.
    pub shutdown: CancellationToken,
    /// Our listening address, once bound (the `from` of our tickets).
    pub local: Mutex<Option<SocketAddr>>,
    pub tasks: TaskTracker,
    gate: Mutex<EventGate>,
    /// Starts a dial the registry ordered. A function pointer, so that links
    /// (which requeue messages when they close) need not know how to dial.
    dialer: fn(&Arc<Shared>, DialOrder),
}

impl Shared {
    pub fn new(
        cfg: PeerConfig,
        store: Arc<dyn Store>,
        sink: Arc<dyn Sink>,
        dialer: fn(&Arc<Shared>, DialOrder),
    ) -> Self {
        let shutdown = CancellationToken::new();
        let start_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
        let floor = u64::try_from(start_us.saturating_sub(CLOCK_SKEW.as_micros())).unwrap_or(0);
        let limits = LinkLimits { per_agent: cfg.max_links_per_agent, referee: cfg.max_referee_links };
        Self {
            proto: Arc::new(cfg.proto.clone()),
            registry: Registry::new(shutdown.clone(), limits),
            admission: Arc::new(Admission::new(&cfg)),
            budgets: Budgets::new(cfg.max_queued_bytes),
            deliveries: Arc::new(Semaphore::new(cfg.max_backlog)),
            replay: Arc::new(Mutex::new(ReplayTable::new(proto::replay::DEFAULT_CAPACITY, floor))),
            refusals: (!store.caches()).then(|| Refusals::new(cfg.refusal_ttl)),
            corked: Mutex::default(),
            counters: super::stats::Counters::default(),
            gate: Mutex::new(EventGate::new(cfg.event_rate)),
            cfg,
            store,
            sink,
            shutdown,
            local: Mutex::new(None),
            tasks: TaskTracker::new(),
            dialer,
        }
    }

    /// Start the dials the registry ordered (never under its lock).
    pub fn start_dials(self: &Arc<Self>, orders: impl IntoIterator<Item = DialOrder>) {
        for order in orders {
            (self.dialer)(self, order);
        }
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local.lock().ok().and_then(|g| *g)
    }

    /// Report an event; failures of connections that never opened go through
    /// the rate gate.
    pub fn report(&self, event: PeerEvent) {
        self.counters.event(&event);
        let gated = matches!(event.kind, EventKind::Refused | EventKind::Error) && event.pattern.is_none();
        if !gated {
            self.sink.event(event);
            return;
        }
        let (flush, pass) = self.gate.lock().unwrap_or_else(|p| p.into_inner()).admit(Instant::now(), &event);
        if let Some(held) = flush {
            self.sink.event(held);
        }
        if pass {
            self.sink.event(event);
        }
    }
}
