//! Option, address and event shapes as JavaScript sees them. Doc comments
//! here flow into the generated `binding.d.ts`.

use std::collections::HashMap;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::driver::{LinkInfo, PeerEvent};
use crate::proto::keys::Identity;

/// A node identity.
#[napi(object)]
pub struct Keypair {
    /// Agent id: base64url of the Ed25519 public key.
    pub agent: String,
    /// X25519 public key (32 bytes).
    pub public_key: Buffer,
    /// X25519 private key (32 bytes).
    pub private_key: Buffer,
}

impl From<Identity> for Keypair {
    fn from(id: Identity) -> Self {
        Self { agent: id.agent.clone(), public_key: id.public.to_vec().into(), private_key: id.private.to_vec().into() }
    }
}

/// Settings for a native peer, named as `NoisePeer`'s options. Absent
/// values take the defaults of `defaults()`; values out of range are refused
/// with `ERR_INVALID_ARGUMENT`.
#[napi(object)]
pub struct NativeOptions {
    /// Our agent id (required).
    pub agent: Option<String>,
    pub host: Option<String>,
    pub port: Option<f64>,
    /// The address we tell others in a first contact, when it is not the
    /// listen address.
    pub advertise_host: Option<String>,
    pub advertise_port: Option<f64>,
    /// Our X25519 private key; required unless `encrypt` is false.
    pub private_key: Option<Buffer>,
    /// False runs in raw mode (no encryption), for simulations.
    pub encrypt: Option<bool>,
    /// Responder idle timeout in ms; 0 turns it off.
    pub timeout: Option<f64>,
    pub handshake_timeout: Option<f64>,
    pub drain_timeout: Option<f64>,
    pub max_frame: Option<f64>,
    pub max_message: Option<f64>,
    pub max_pending: Option<f64>,
    pub max_pending_per_ip: Option<f64>,
    /// Links in total, inbound per address, open per agent, anonymous referee links.
    pub max_links: Option<f64>,
    pub max_links_per_ip: Option<f64>,
    pub max_links_per_agent: Option<f64>,
    pub max_referee_links: Option<f64>,
    /// New inbound connections per second per address.
    pub connect_rate: Option<f64>,
    /// Bytes queued for one agent before sends fail with ERR_BACKPRESSURE.
    pub max_queued_bytes: Option<f64>,
    /// ms a link may hold data the socket does not take before it fails.
    pub write_timeout: Option<f64>,
    /// ms without sending after which a native link sends a keepalive; 0: none.
    pub keepalive: Option<f64>,
    /// Message batches the application may be behind before links stop reading.
    pub max_backlog: Option<f64>,
    /// Failure events reported per second; the rest are counted together.
    pub event_rate: Option<f64>,
    pub referee: Option<bool>,
    pub legacy: Option<bool>,
    /// The application supplied a `peerKey` callback.
    pub has_peer_key: Option<bool>,
    /// The application supplied a `checkTicket` callback.
    pub has_check_ticket: Option<bool>,
    /// Read keys, tally partners and tickets from the node's PostgreSQL.
    pub database: Option<DatabaseOptions>,
}

/// The PostgreSQL store. Each question is SQL that may be replaced; the
/// defaults work on MyCHIPs' schema. A callback given beside it (`peerKey`,
/// `checkTicket`) answers its own question instead.
#[napi(object)]
pub struct DatabaseOptions {
    /// `postgres://user:password@host:port/database`, or `host=... dbname=...`.
    pub connection_string: String,
    /// The agent whose tallies count (`hold_agent`); default: our agent.
    pub agent: Option<String>,
    /// Pooled connections. Default 4.
    pub pool_size: Option<f64>,
    /// Deadline of one lookup in ms (pool wait plus query; also the
    /// statement timeout). Default 2000, or half the handshake timeout if
    /// that is shorter; must be below the handshake timeout.
    pub timeout: Option<f64>,
    /// How long a cached key or partner decision lives, ms. Default 60000.
    pub cache_ttl: Option<f64>,
    /// Cached entries of each kind at most. Default 10000.
    pub cache_size: Option<f64>,
    /// The agent's key: `$1` the agent, `$2` our agent. One bytea (or base64url text) column.
    pub key_query: Option<String>,
    /// May the caller connect by key: `$1` the caller, `$2` our agent, `$3` the statuses. One boolean.
    pub partner_query: Option<String>,
    /// Is the ticket valid: `$1` the token, `$2` the ticket (jsonb), `$3` the caller's agent. One boolean.
    pub ticket_query: Option<String>,
    /// Tally statuses that let a partner connect. Default draft, offer, open, close.
    pub statuses: Option<Vec<String>>,
    /// What the key column holds: `ed25519` (MyCHIPs' agent_key, the default) or `x25519`.
    pub key_format: Option<String>,
    /// Use a ticket up when it is checked (default false: MyCHIPs' tally logic does that).
    pub consume_tickets: Option<bool>,
    /// Channel of the change notifications. Default `mychips_admin`.
    pub channel: Option<String>,
    /// Channel of the optional agents trigger (sql/agents-notify.sql). Default `mychips_agents`.
    pub agents_channel: Option<String>,
}

/// What a store has done, for an operator to watch.
#[napi(object)]
pub struct StoreStatsInfo {
    /// Lookups answered from the cache.
    pub cache_hits: f64,
    /// Lookups that went to the database (or the application's callbacks).
    pub lookups: f64,
    /// Lookups that failed (store unavailable, error, timeout).
    pub failures: f64,
    /// Cache drops by a notification or a reconnect.
    pub invalidations: f64,
    /// Times the notification connection was (re)established.
    pub listens: f64,
    /// The notification connection is up (the cache is in use).
    pub listening: bool,
}

impl From<crate::store::StoreStats> for StoreStatsInfo {
    fn from(s: crate::store::StoreStats) -> Self {
        Self {
            cache_hits: s.cache_hits as f64,
            lookups: s.lookups as f64,
            failures: s.failures as f64,
            invalidations: s.invalidations as f64,
            listens: s.listens as f64,
            listening: s.listening,
        }
    }
}

/// Messages and bytes (whole frames, handshakes included) each way.
#[napi(object)]
pub struct TrafficInfo {
    pub messages_in: f64,
    pub bytes_in: f64,
    pub messages_out: f64,
    pub bytes_out: f64,
}

impl From<crate::driver::Traffic> for TrafficInfo {
    fn from(t: crate::driver::Traffic) -> Self {
        Self {
            messages_in: t.messages_in as f64,
            bytes_in: t.bytes_in as f64,
            messages_out: t.messages_out as f64,
            bytes_out: t.bytes_out as f64,
        }
    }
}

/// Links open now, and those on their way.
#[napi(object)]
pub struct LinkCounts {
    /// Open links by pattern (`KK`, `IK`, `NK`).
    pub open: HashMap<String, u32>,
    /// Connections we dialled that are not open yet.
    pub dialling: u32,
    /// Connections to us in their handshake.
    pub pending: u32,
}

/// How connections ended, since the node started (counted before the
/// event rate gate: a summarised flood is counted one by one).
#[napi(object)]
pub struct HandshakeCounts {
    /// Completed, by pattern.
    pub accepted: HashMap<String, f64>,
    /// Refused by us or the other side, by reason code.
    pub refused: HashMap<String, f64>,
    /// Failed otherwise (connect, protocol, timeout), by reason code.
    pub failed: HashMap<String, f64>,
    /// Open links that ended, by reason.
    pub closed: HashMap<String, f64>,
}

/// One partner's figures, over its open links.
#[napi(object)]
pub struct PeerFiguresInfo {
    /// Null: anonymous referee queries, together.
    pub agent: Option<String>,
    pub links: u32,
    pub traffic: TrafficInfo,
    /// Bytes accepted by `send` for it and not yet written.
    pub queued_bytes: f64,
}

/// Figures of a running node: cheap enough to poll every second.
#[napi(object)]
pub struct PeerStats {
    pub links: LinkCounts,
    pub handshakes: HandshakeCounts,
    /// Over the node's life (links that ended and those open now).
    pub traffic: TrafficInfo,
    /// Bytes accepted by `send` and not yet written, all partners.
    pub queued_bytes: f64,
    pub peers: Vec<PeerFiguresInfo>,
    pub store: StoreStatsInfo,
}

impl From<crate::driver::Stats> for PeerStats {
    fn from(s: crate::driver::Stats) -> Self {
        let counts = |m: std::collections::BTreeMap<String, u64>| m.into_iter().map(|(k, v)| (k, v as f64)).collect();
        let n = s.node;
        Self {
            links: LinkCounts {
                open: n.open.into_iter().map(|(k, v)| (k.to_owned(), v as u32)).collect(),
                dialling: n.dialling as u32,
                pending: s.pending as u32,
            },
            handshakes: HandshakeCounts {
                accepted: n.accepted.into_iter().map(|(k, v)| (k.to_owned(), v as f64)).collect(),
                refused: counts(n.refused),
                failed: counts(n.failed),
                closed: counts(n.closed),
            },
            traffic: n.traffic.into(),
            queued_bytes: s.queued_bytes as f64,
            peers: n
                .peers
                .into_iter()
                .map(|p| PeerFiguresInfo {
                    agent: p.agent,
                    links: p.links as u32,
                    traffic: p.traffic.into(),
                    queued_bytes: p.queued_bytes as f64,
                })
                .collect(),
            store: s.store.into(),
        }
    }
}

/// The defaults of every `NoisePeer` option that has one.
#[napi(object)]
pub struct PeerDefaults {
    pub host: String,
    pub port: u32,
    pub encrypt: bool,
    /// Responder idle timeout, ms.
    pub timeout: f64,
    pub handshake_timeout: f64,
    pub drain_timeout: f64,
    pub max_frame: u32,
    pub max_message: u32,
    pub max_pending: u32,
    pub max_pending_per_ip: u32,
    pub max_links: u32,
    pub max_links_per_ip: u32,
    pub max_links_per_agent: u32,
    pub max_referee_links: u32,
    pub connect_rate: u32,
    pub max_queued_bytes: u32,
    /// ms.
    pub write_timeout: f64,
    /// ms; 0: none.
    pub keepalive: f64,
    pub max_backlog: u32,
    pub event_rate: u32,
    pub referee: bool,
    pub legacy: bool,
}

/// Where to send.
#[napi(object)]
pub struct NativeTarget {
    pub agent: Option<String>,
    pub host: Option<String>,
    pub port: Option<u32>,
    pub key: Option<Buffer>,
    pub link: Option<f64>,
}

/// How to open a link if one is needed.
#[napi(object)]
pub struct NativeSendOptions {
    /// JSON text of the ticket (first contact, IK).
    pub ticket: Option<String>,
    pub referee: Option<bool>,
}

/// What a send rarely needs beside agent, host and port: passed only when
/// there is some, so the common send crosses into Rust with no object.
#[napi(object)]
pub struct NativeSendExtra {
    /// The agent's X25519 key, when the caller knows it.
    pub key: Option<Buffer>,
    /// Send on this link only.
    pub link: Option<f64>,
    /// JSON text of the ticket (first contact, IK).
    pub ticket: Option<String>,
    pub referee: Option<bool>,
}

/// Who a message came from.
#[napi(object)]
pub struct FromInfo {
    pub agent: Option<String>,
    pub host: String,
    pub port: u32,
    pub pattern: String,
    pub link: f64,
    pub native: bool,
    pub initiator: bool,
    pub encrypted: bool,
}

impl From<&LinkInfo> for FromInfo {
    fn from(i: &LinkInfo) -> Self {
        Self {
            agent: i.agent.clone(),
            host: i.remote.ip().to_string(),
            port: u32::from(i.remote.port()),
            pattern: i.pattern.name().to_owned(),
            link: i.link as f64,
            native: i.native,
            initiator: i.initiator,
            encrypted: i.encrypted,
        }
    }
}

/// A connection event.
#[napi(object)]
pub struct EventInfo {
    /// `open`, `close`, `refused` or `error`.
    #[napi(js_name = "type")]
    pub kind: String,
    /// The link's process-unique id (0 for events about no link, e.g. accept failures).
    pub link: f64,
    /// The peer's agent, when known.
    pub agent: Option<String>,
    /// The socket's remote address.
    pub host: Option<String>,
    pub port: Option<u32>,
    /// `IK`, `KK` or `NK`, once the link is open.
    pub pattern: Option<String>,
    /// We opened the connection.
    pub initiator: bool,
    /// `ERR_*` for failures; `IDLE_TIMEOUT`, `PEER_CLOSED` or `LOCAL_CLOSE` for orderly closes.
    pub reason: Option<String>,
    /// Human-readable detail.
    pub message: Option<String>,
    /// For `close`: the close was orderly, so every message written reached the other side's reader.
    pub clean: bool,
    /// For `close`: messages written on the link over its life.
    pub written: f64,
    /// Other failures held back before this one and not reported one by one
    /// (the node reports at most `eventRate` a second): this event stands for
    /// `1 + suppressed` failures.
    pub suppressed: f64,
}

impl From<PeerEvent> for EventInfo {
    fn from(e: PeerEvent) -> Self {
        Self {
            kind: e.kind.as_str().to_owned(),
            link: e.link as f64,
            agent: e.agent,
            host: e.remote.map(|r| r.ip().to_string()),
            port: e.remote.map(|r| u32::from(r.port())),
            pattern: e.pattern.map(|p| p.name().to_owned()),
            initiator: e.initiator,
            reason: e.reason,
            message: e.message,
            clean: e.clean,
            written: e.written as f64,
            suppressed: e.suppressed as f64,
        }
    }
}

/// A send that failed, and why.
#[napi(object)]
pub struct SendFailure {
    pub id: f64,
    pub code: String,
    pub message: String,
}

/// A question for the application's key or ticket store.
#[napi(object)]
pub struct LookupRequest {
    pub id: f64,
    /// `peerKey` or `checkTicket`.
    pub kind: String,
    pub agent: Option<String>,
    /// JSON text of the ticket.
    pub ticket: Option<String>,
    /// JSON text of the initiator's claimed CHIP address.
    pub from: Option<String>,
}

/// A link that is open.
#[napi(object)]
pub struct LinkSummary {
    pub link: f64,
    pub agent: Option<String>,
    pub host: String,
    pub port: u32,
    pub pattern: String,
    pub native: bool,
    pub initiator: bool,
}

impl From<LinkInfo> for LinkSummary {
    fn from(i: LinkInfo) -> Self {
        let f = FromInfo::from(&i);
        Self {
            link: f.link,
            agent: f.agent,
            host: f.host,
            port: f.port,
            pattern: f.pattern,
            native: f.native,
            initiator: f.initiator,
        }
    }
}

/// The address a peer listens on.
#[napi(object)]
pub struct ListenAddress {
    pub host: String,
    pub port: u32,
}
