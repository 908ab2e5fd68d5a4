//! What one node's tasks share: settings, the store and sink, the registry,
//! the replay table, the shutdown signal and the task tracker.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::PeerConfig;
use super::event::Sink;
use super::registry::{DialOrder, Registry};
use crate::proto::{self, replay::ReplayTable};
use crate::store::Store;

pub(crate) struct Shared {
    pub cfg: PeerConfig,
    pub proto: Arc<proto::Config>,
    pub store: Arc<dyn Store>,
    pub sink: Arc<dyn Sink>,
    pub registry: Registry,
    pub replay: Arc<Mutex<ReplayTable>>,
    /// Cancelled by `close()`: every task below watches it.
    pub shutdown: CancellationToken,
    /// Our listening address, once bound (the `from` of our tickets).
    pub local: Mutex<Option<SocketAddr>>,
    pub tasks: TaskTracker,
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
        Self {
            proto: Arc::new(cfg.proto.clone()),
            cfg,
            store,
            sink,
            registry: Registry::new(shutdown.clone()),
            replay: Arc::default(),
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
}
