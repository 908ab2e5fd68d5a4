//! A node's settings: the protocol's, plus what only the driver uses, with
//! their defaults (docs/PROTOCOL.md §6). The binding exports the defaults.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::proto;

/// Default cap on inbound connections in their handshake.
pub const DEFAULT_MAX_PENDING: usize = 256;
/// Default cap on the same, per remote address (IPv6: per /64).
pub const DEFAULT_MAX_PENDING_PER_IP: usize = 32;
/// Default cap on links, in total.
pub const DEFAULT_MAX_LINKS: usize = 10_000;
/// Default cap on inbound links per remote address (IPv6: per /64).
pub const DEFAULT_MAX_LINKS_PER_IP: usize = 256;
/// Default cap on open links per agent.
pub const DEFAULT_MAX_LINKS_PER_AGENT: usize = 8;
/// Default cap on open anonymous referee links (NK), apart from the rest.
pub const DEFAULT_MAX_REFEREE_LINKS: usize = 256;
/// Default new inbound connections per second from one address (IPv6: /64),
/// and the burst above it.
pub const DEFAULT_CONNECT_RATE: u32 = 100;
/// Default bytes queued for one agent (or one link) before sends are refused
/// with ERR_BACKPRESSURE.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;
/// Default time a link may hold data to write while the socket takes none.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default undelivered message batches the application may be behind before
/// links stop reading.
pub const DEFAULT_MAX_BACKLOG: usize = 1024;
/// Default failure events reported per second; the rest are counted and
/// reported together.
pub const DEFAULT_EVENT_RATE: u32 = 100;
/// Default time a "not a partner" answer of a store without its own cache
/// is remembered.
pub const DEFAULT_REFUSAL_TTL: Duration = Duration::from_secs(1);
/// Default bytes waiting to be written past which a link takes no more
/// messages off its queue until the socket has taken some.
pub const DEFAULT_HIGH_WATER: usize = 256 * 1024;
/// Default listen address.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// Node-level settings.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub agent: String,
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// The address we tell others in a first contact (`from` of `I`), when
    /// it is not the listen address (listening on all interfaces, say).
    pub advertise: Option<(String, u16)>,
    pub proto: proto::Config,
    /// Inbound connections still in their handshake, in total (docs/PROTOCOL.md §6).
    pub max_pending: usize,
    /// The same, per remote address.
    pub max_pending_per_ip: usize,
    /// Links (open or opening, both directions), in total.
    pub max_links: usize,
    /// Inbound links per remote address.
    pub max_links_per_ip: usize,
    /// Open links per agent.
    pub max_links_per_agent: usize,
    /// Open anonymous referee links (NK), counted apart.
    pub max_referee_links: usize,
    /// New inbound connections per second per remote address (and the burst).
    pub connect_rate: u32,
    /// Bytes queued for one agent before sends are refused.
    pub max_queued_bytes: usize,
    /// How long a link may have data to write while the socket takes none.
    pub write_timeout: Duration,
    /// Message batches the application may be behind before links stop reading.
    pub max_backlog: usize,
    /// Failure events reported per second before they are counted instead.
    pub event_rate: u32,
    /// How long a "not a partner" answer is remembered (stores without a cache).
    pub refusal_ttl: Duration,
    /// Bytes waiting to be written past which a link takes no more messages
    /// off its queue until the socket has taken some.
    pub high_water: usize,
}

impl PeerConfig {
    /// Defaults for everything but the agent id.
    pub fn new(agent: impl Into<String>) -> Self {
        Self {
            agent: agent.into(),
            host: DEFAULT_HOST.to_owned(),
            port: 0,
            advertise: None,
            proto: proto::Config::default(),
            max_pending: DEFAULT_MAX_PENDING,
            max_pending_per_ip: DEFAULT_MAX_PENDING_PER_IP,
            max_links: DEFAULT_MAX_LINKS,
            max_links_per_ip: DEFAULT_MAX_LINKS_PER_IP,
            max_links_per_agent: DEFAULT_MAX_LINKS_PER_AGENT,
            max_referee_links: DEFAULT_MAX_REFEREE_LINKS,
            connect_rate: DEFAULT_CONNECT_RATE,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_backlog: DEFAULT_MAX_BACKLOG,
            event_rate: DEFAULT_EVENT_RATE,
            refusal_ttl: DEFAULT_REFUSAL_TTL,
            high_water: DEFAULT_HIGH_WATER,
        }
    }

    /// Refuse settings the node could not run with.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::InvalidArgument(what.to_owned()));
        if self.agent.is_empty() {
            return bad("agent is required");
        }
        let counts = [
            self.max_pending,
            self.max_pending_per_ip,
            self.max_links,
            self.max_links_per_ip,
            self.max_links_per_agent,
            self.max_referee_links,
            self.max_backlog,
        ];
        if counts.contains(&0) || self.connect_rate == 0 || self.event_rate == 0 {
            return bad("the caps (maxPending, maxLinks, ... , connectRate) must be at least 1");
        }
        if self.max_queued_bytes < self.proto.max_message {
            return bad("maxQueuedBytes must hold at least one message of maxMessage bytes");
        }
        if self.write_timeout.is_zero() {
            return bad("writeTimeout must be positive");
        }
        self.proto.validate()
    }
}
