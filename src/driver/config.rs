//! A node's settings: the protocol's, plus what only the driver uses.

use crate::error::Result;
use crate::proto;

/// Default cap on inbound connections in their handshake (docs/PROTOCOL.md §6).
pub const DEFAULT_MAX_PENDING: usize = 256;
/// Default cap on the same, per remote IP address.
pub const DEFAULT_MAX_PENDING_PER_IP: usize = 32;
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
    /// The same, per remote IP address.
    pub max_pending_per_ip: usize,
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
        }
    }

    /// Refuse settings the node could not run with.
    pub fn validate(&self) -> Result<()> {
        use crate::error::Error::InvalidArgument;
        if self.agent.is_empty() {
            return Err(InvalidArgument("agent is required".into()));
        }
        if self.max_pending == 0 || self.max_pending_per_ip == 0 {
            return Err(InvalidArgument("maxPending and maxPendingPerIp must be at least 1".into()));
        }
        self.proto.validate()
    }
}
