//! A node's protocol settings: the one place their defaults and their valid
//! ranges live (docs/PROTOCOL.md §6). The binding exports these defaults to
//! JavaScript and refuses values outside the ranges instead of clamping them.

use std::time::Duration;

use super::frame::{DEFAULT_MAX_FRAME, DEFAULT_MAX_MESSAGE, MAX_NOISE_MESSAGE, TAG_LEN};
use super::keys::{self, Identity, Key};
use super::payload;
use super::transport::Limits;
use crate::error::{Error, Result};

/// Smallest `max_frame` accepted: below it, a first contact's `I` (keys,
/// tags, a ticket and an address) would not fit.
pub const MIN_FRAME: usize = 1024;
/// Smallest `max_message` accepted.
pub const MIN_MESSAGE: usize = 1024;
/// Largest `max_message` accepted: a legacy peer gets a message as one `T`,
/// whose length must fit the 4-byte frame prefix with room for letter and tag.
pub const MAX_MESSAGE: usize = (u32::MAX as usize) - 1 - TAG_LEN;

/// Settings shared by every connection of a node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our identity. `None` runs in raw mode (docs/PROTOCOL.md §7).
    pub identity: Option<Identity>,
    /// Largest frame body accepted (docs/PROTOCOL.md §6).
    pub max_frame: usize,
    /// Largest reassembled message accepted or sent (docs/PROTOCOL.md §6).
    pub max_message: usize,
    /// A connection not open this long after accept or connect is closed.
    pub handshake_timeout: Duration,
    /// Either side closes a link that carried no frame (either way) this long.
    pub idle_timeout: Option<Duration>,
    /// On a link between native nodes, send an empty `T` after this long
    /// without sending anything, so a quiet link stays open and a dead peer
    /// is noticed. `None`: no keepalives (idle links close).
    pub keepalive: Option<Duration>,
    /// After an orderly close starts, how long to keep reading for the
    /// other side's last frames before giving up on its end of stream.
    pub drain_timeout: Duration,
    /// Answer `Q` referee queries.
    pub referee: bool,
    /// Accept JavaScript (legacy) initiators, whose message 1 can be replayed.
    pub accept_legacy: bool,
    /// Raw mode only: admit every agent that calls with `N`, without asking
    /// the store (simulations that run with no key store at all).
    pub admit_any_agent: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            identity: None,
            max_frame: DEFAULT_MAX_FRAME,
            max_message: DEFAULT_MAX_MESSAGE,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(60)),
            keepalive: None,
            drain_timeout: Duration::from_secs(2),
            referee: false,
            accept_legacy: false,
            admit_any_agent: false,
        }
    }
}

impl Config {
    /// Refuse settings no connection could work with.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        if !(MIN_FRAME..=DEFAULT_MAX_FRAME).contains(&self.max_frame) {
            return bad(format!("maxFrame must be {MIN_FRAME}..{DEFAULT_MAX_FRAME} (one letter plus one Noise message of at most {MAX_NOISE_MESSAGE} bytes)"));
        }
        if !(MIN_MESSAGE..=MAX_MESSAGE).contains(&self.max_message) {
            return bad(format!("maxMessage must be {MIN_MESSAGE}..{MAX_MESSAGE}"));
        }
        if self.handshake_timeout.is_zero() || self.drain_timeout.is_zero() {
            return bad("handshakeTimeout and drainTimeout must be positive".into());
        }
        if self.admit_any_agent && self.identity.is_some() {
            return bad("admitting every agent is for raw mode only".into());
        }
        if self.keepalive.is_some_and(|k| k.is_zero()) {
            return bad("keepalive must be positive".into());
        }
        if let Some(id) = &self.identity {
            if keys::is_weak(&id.public) {
                return Err(Error::WeakKey("our own key is of small order".into()));
            }
            keys::check_agent_id(&id.agent).map_err(|why| Error::InvalidArgument(format!("agent id: {why}")))?;
        }
        Ok(())
    }

    /// What we accept, as we tell native peers (docs/PROTOCOL.md §6).
    pub fn limits(&self) -> Limits {
        Limits { max_message: self.max_message, max_frame: self.max_frame }
    }

    /// The largest frame body taken on a link with a JavaScript peer, which
    /// sends a long message as one oversized `T` (docs/PROTOCOL.md §9).
    pub fn legacy_frame_limit(&self) -> usize {
        self.max_frame.max(self.max_message + 1 + TAG_LEN)
    }

    /// The largest frame body we may write: a node that refuses legacy
    /// callers may still dial a JavaScript node, which gets a long message as
    /// one oversized `T`. `check_outgoing` has already bounded the message.
    pub fn write_limit(&self) -> usize {
        self.max_frame.max(self.max_message + 1 + TAG_LEN)
    }

    /// The rule for a message the application hands us: within the size
    /// limit, and a JSON object (the JavaScript layer only hands us objects,
    /// so the cheap check of its first byte is enough).
    pub fn check_outgoing(&self, message: &[u8]) -> Result<()> {
        if message.len() > self.max_message {
            return Err(Error::InvalidArgument(format!(
                "message of {} bytes exceeds the limit of {} bytes",
                message.len(),
                self.max_message
            )));
        }
        if !payload::opens_object(message) {
            return Err(Error::InvalidArgument("a message must be a JSON object".into()));
        }
        Ok(())
    }

    pub(crate) fn local_private(&self) -> Option<&Key> {
        self.identity.as_ref().map(|i| &i.private)
    }

    pub(crate) fn is_raw(&self) -> bool {
        self.identity.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_refused() {
        assert!(Config::default().validate().is_ok());
        for bad in [
            Config { max_frame: MIN_FRAME - 1, ..Config::default() },
            Config { max_frame: DEFAULT_MAX_FRAME + 1, ..Config::default() },
            Config { max_message: MIN_MESSAGE - 1, ..Config::default() },
            Config { handshake_timeout: Duration::ZERO, ..Config::default() },
            Config { identity: Some(Identity::from_seed(&[1; 32])), admit_any_agent: true, ..Config::default() },
        ] {
            assert!(matches!(bad.validate(), Err(Error::InvalidArgument(_))), "{bad:?}");
        }
    }

    #[test]
    fn outgoing_messages_are_bounded_objects() {
        let cfg = Config { max_message: MIN_MESSAGE, ..Config::default() };
        assert!(cfg.check_outgoing(b" {}").is_ok());
        assert!(cfg.check_outgoing(b"[1]").is_err());
        let long = [b"{\"a\":\"".as_slice(), &[b'x'; MIN_MESSAGE], b"\"}"].concat();
        assert!(matches!(cfg.check_outgoing(&long), Err(Error::InvalidArgument(m)) if m.contains("exceeds")));
    }
}
