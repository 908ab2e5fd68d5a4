//! The tokio driver: sockets, tasks, deadlines, and the agent -> link map.
//!
//! It moves bytes between TCP and [`crate::proto::Connection`]s, answers the
//! core's lookups from a [`Store`], and reports to a [`Sink`]. It makes no
//! protocol decisions and parses no frames beyond the length prefix.
#![forbid(unsafe_code)]

mod link;
mod listener;
mod registry;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::proto::{self, Address, Key, Pattern};

pub use registry::Registry;

/// Answers "whose key is this" and "is this ticket good" for the core.
/// Implementations: JavaScript callbacks (the binding), later the database.
pub trait Store: Send + Sync + 'static {
    /// The static key of a partner agent; `None` when it is not a partner.
    fn peer_key(&self, agent: String) -> BoxFuture<'static, Result<Option<Key>, String>>;
    /// Whether a one-time ticket may open a link for `from`.
    fn check_ticket(&self, ticket: Value, from: Address) -> BoxFuture<'static, Result<bool, String>>;
    /// True when the store has a real key source. In raw mode without one,
    /// every agent is admitted (simulations).
    fn has_keys(&self) -> bool {
        true
    }
}

/// Where the driver reports messages and events. Calls must not block.
pub trait Sink: Send + Sync + 'static {
    /// Messages from one link, in order: JSON object texts, each with its
    /// `early` flag. Batched, so a burst costs one call into JavaScript.
    fn messages(&self, from: &LinkInfo, batch: Vec<(Vec<u8>, bool)>);
    fn event(&self, event: PeerEvent);
}

/// Who sent a message, or whom an event is about.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkInfo {
    /// Process-unique id of the connection.
    pub link: u64,
    /// The peer's agent; `None` for an anonymous referee query.
    pub agent: Option<String>,
    /// The socket's remote address.
    pub remote: SocketAddr,
    pub pattern: Pattern,
    /// The other end runs this implementation.
    pub native: bool,
    /// We opened the connection.
    pub initiator: bool,
    pub encrypted: bool,
}

/// What happened to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A handshake completed.
    Open,
    /// An open link ended.
    Close,
    /// A handshake was refused, by us or by the other side.
    Refused,
    /// A connection failed for another reason (connect, socket, protocol, timeout).
    Error,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Close => "close",
            Self::Refused => "refused",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerEvent {
    pub kind: EventKind,
    pub link: u64,
    pub agent: Option<String>,
    pub remote: Option<SocketAddr>,
    pub pattern: Option<Pattern>,
    pub initiator: bool,
    /// A stable code: `ERR_*` for failures, `IDLE_TIMEOUT` / `PEER_CLOSED` /
    /// `LOCAL_CLOSE` for orderly closes.
    pub reason: Option<String>,
    pub message: Option<String>,
    /// For `Close`: the close was orderly, so every message written on the
    /// link reached the other side's reader.
    pub clean: bool,
    /// For `Close`: messages written on the link over its life.
    pub written: u64,
}

/// Node-level settings.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub agent: String,
    pub host: String,
    pub port: u16,
    pub proto: proto::Config,
    /// Inbound connections still in their handshake, in total (PROTOCOL.md §6).
    pub max_pending: usize,
    /// The same, per remote IP address.
    pub max_pending_per_ip: usize,
}

/// Who hears how a send ended. Told exactly once: by `complete`, or, if the
/// message is dropped on some path nobody foresaw, by the drop, as
/// `ConnectionClosed`. So no send is ever left unanswered.
pub struct Done(Option<DoneTo>);

enum DoneTo {
    Oneshot(tokio::sync::oneshot::Sender<Result<()>>),
    /// Results of many sends share one queue (the binding batches them into
    /// one call into JavaScript).
    Queue { id: u64, results: tokio::sync::mpsc::UnboundedSender<(u64, Result<()>)> },
}

impl Done {
    pub fn oneshot() -> (Self, tokio::sync::oneshot::Receiver<Result<()>>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Self(Some(DoneTo::Oneshot(tx))), rx)
    }

    pub fn queue(id: u64, results: tokio::sync::mpsc::UnboundedSender<(u64, Result<()>)>) -> Self {
        Self(Some(DoneTo::Queue { id, results }))
    }

    pub fn complete(mut self, result: Result<()>) {
        self.fire(result);
    }

    fn fire(&mut self, result: Result<()>) {
        match self.0.take() {
            Some(DoneTo::Oneshot(tx)) => {
                let _ = tx.send(result);
            }
            Some(DoneTo::Queue { id, results }) => {
                let _ = results.send((id, result));
            }
            None => {}
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        self.fire(Err(Error::ConnectionClosed));
    }
}

/// Where to send: an agent's address, or one particular link.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub agent: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// The agent's X25519 key, when the caller knows it.
    pub key: Option<Key>,
    /// Send on this link only (how a referee answers an anonymous query).
    pub link: Option<u64>,
}

/// How to open a link, when one must be opened.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// First contact: IK with this one-time ticket.
    pub ticket: Option<Value>,
    /// Anonymous referee query (NK).
    pub referee: bool,
}

/// A process-wide source of strictly increasing handshake timestamps
/// (milliseconds since the epoch, bumped when two handshakes share one).
pub fn next_timestamp() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// State shared by the listener, the links and the handle.
pub(crate) struct Shared {
    pub cfg: PeerConfig,
    pub proto: Arc<proto::Config>,
    pub store: Arc<dyn Store>,
    pub sink: Arc<dyn Sink>,
    pub registry: Registry,
    pub replay: Arc<Mutex<proto::replay::ReplayTable>>,
    /// Cancelled by `close()`: every task below watches it.
    pub shutdown: CancellationToken,
    /// Our listening address, once bound (the `from` of our tickets).
    pub local: Mutex<Option<SocketAddr>>,
    pub tasks: tokio_util::task::TaskTracker,
}

/// A running node: cheap to clone.
#[derive(Clone)]
pub struct Peer {
    shared: Arc<Shared>,
}

impl Peer {
    pub fn new(cfg: PeerConfig, store: Arc<dyn Store>, sink: Arc<dyn Sink>) -> Self {
        let proto = Arc::new(cfg.proto.clone());
        Self {
            shared: Arc::new(Shared {
                cfg,
                proto,
                store,
                sink,
                registry: Registry::default(),
                replay: Arc::default(),
                shutdown: CancellationToken::new(),
                local: Mutex::new(None),
                tasks: tokio_util::task::TaskTracker::new(),
            }),
        }
    }

    /// Bind and start accepting. Must run inside the tokio runtime.
    pub async fn listen(&self) -> Result<SocketAddr> {
        self.check_open()?;
        listener::start(self.shared.clone()).await
    }

    /// Send one message (JSON object text). The message is queued before this
    /// returns, so messages keep the order of the calls; the future resolves
    /// once its frames were handed to the socket. Opens or reuses a link.
    /// Must be called inside the tokio runtime's context (it may dial).
    pub fn send(&self, target: Target, data: Vec<u8>, opts: SendOptions) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let (done, result) = Done::oneshot();
        self.send_with(target, data, opts, done);
        async move { result.await.unwrap_or(Err(Error::ConnectionClosed)) }
    }

    /// `send`, reporting the outcome to `done` instead of a future.
    pub fn send_with(&self, target: Target, data: Vec<u8>, opts: SendOptions, done: Done) {
        if let Err(e) = self.check_open() {
            done.complete(Err(e));
        } else if data.len() > self.shared.proto.max_message {
            done.complete(Err(Error::InvalidArgument(format!(
                "message of {} bytes exceeds the limit of {} bytes",
                data.len(),
                self.shared.proto.max_message
            ))));
        } else {
            registry::submit(&self.shared, link::Outgoing { data, done, target, opts, attempts: 0 });
        }
    }

    /// Open (or reuse) a link without sending; resolves when it is open.
    pub async fn connect(&self, target: Target, opts: SendOptions) -> Result<LinkInfo> {
        self.check_open()?;
        registry::connect(&self.shared, target, opts).await
    }

    /// Close, in order, every link to `agent`. Returns how many were open.
    pub fn end(&self, agent: &str) -> usize {
        self.shared.registry.end_agent(agent)
    }

    /// Stop listening, close every link, and wait (bounded) for the tasks.
    pub async fn close(&self) {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        let grace = self.shared.proto.drain_timeout + Duration::from_secs(1);
        let _ = tokio::time::timeout(grace, self.shared.tasks.wait()).await;
    }

    pub fn is_closed(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// The links open right now.
    pub fn links(&self) -> Vec<LinkInfo> {
        self.shared.registry.open_links()
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local.lock().ok().and_then(|g| *g)
    }

    fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }
}
