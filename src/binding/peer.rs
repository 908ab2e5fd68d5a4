//! `NativePeer`: the driver's `Peer` as a JavaScript class. The public
//! `NoisePeer` in index.js wraps it (JSON, listeners, callback promises).

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{within_runtime_if_available, Buffer};
use napi_derive::napi;

use super::callbacks::{
    key_from_js, report_results, runs, InputArgs, JsCallback, JsSink, JsStore, SentArgs, SharedStore,
};
use super::error::{to_js, Result};
use super::options::{
    DatabaseOptions, LinkSummary, ListenAddress, LookupRequest, NativeOptions, NativeSendExtra, NativeSendOptions,
    NativeTarget, PeerDefaults, PeerStats,
};
use crate::driver::Done;
use crate::driver::{Peer, PeerConfig, SendOptions, Sent, Target};
use crate::error::Error;
use crate::proto::{self, keys, Answer};
use crate::store::pg::{self, KeyFormat, PgConfig, PgStore};
use crate::store::{Split, Store};

type Checked<T> = std::result::Result<T, Error>;

fn invalid<T>(what: impl Into<String>) -> Checked<T> {
    Err(Error::InvalidArgument(what.into()))
}

/// A whole number in `range`, or the default when absent.
fn count(v: Option<f64>, default: usize, name: &str, range: std::ops::RangeInclusive<usize>) -> Checked<usize> {
    let Some(v) = v else { return Ok(default) };
    // CANNOT TRUNCATE: the value is checked to be a whole number within `range`.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    if v.fract() == 0.0 && v >= *range.start() as f64 && v <= *range.end() as f64 {
        Ok(v as usize)
    } else {
        invalid(format!("{name} must be a whole number {}..{}", range.start(), range.end()))
    }
}

/// A positive number of milliseconds, or the default when absent.
fn duration(v: Option<f64>, default: Duration, name: &str) -> Checked<Duration> {
    match v {
        None => Ok(default),
        Some(v) if v.is_finite() && v > 0.0 && v < 1e12 => Ok(Duration::from_secs_f64(v / 1000.0)),
        Some(_) => invalid(format!("{name} must be a positive number of milliseconds")),
    }
}

/// A timer in milliseconds that 0 turns off.
fn timer(v: Option<f64>, default: Option<Duration>, name: &str) -> Checked<Option<Duration>> {
    match v {
        Some(0.0) => Ok(None),
        None => Ok(default),
        v => duration(v, Duration::ZERO, &format!("{name} (0 for none)")).map(Some),
    }
}

/// The database options -> the PostgreSQL store's settings.
fn database(d: DatabaseOptions, agent: &str, handshake: Duration) -> Checked<PgConfig> {
    let mut cfg = PgConfig::new(d.connection_string, d.agent.unwrap_or_else(|| agent.to_owned()));
    cfg.pool_size = count(d.pool_size, cfg.pool_size, "database.poolSize", 1..=100)?;
    cfg.timeout = duration(d.timeout, cfg.timeout.min(handshake / 2), "database.timeout")?;
    if cfg.timeout >= handshake {
        return invalid("database.timeout must be below handshakeTimeout, so a slow database fails the handshake with ERR_STORE_UNAVAILABLE");
    }
    cfg.cache_ttl = duration(d.cache_ttl, cfg.cache_ttl, "database.cacheTtl")?;
    cfg.cache_capacity = count(d.cache_size, cfg.cache_capacity, "database.cacheSize", 1..=10_000_000)?;
    if let Some(q) = d.key_query {
        cfg.key_query = q;
    }
    if let Some(q) = d.partner_query {
        cfg.partner_query = q;
    }
    match (d.ticket_query, d.consume_tickets.unwrap_or(false)) {
        (Some(q), _) => cfg.ticket_query = q,
        (None, true) => cfg.ticket_query = pg::CONSUMING_TICKET_QUERY.into(),
        (None, false) => {}
    }
    if let Some(s) = d.statuses {
        cfg.statuses = s;
    }
    cfg.key_format = match d.key_format.as_deref() {
        None | Some("ed25519") => KeyFormat::Ed25519,
        Some("x25519") => KeyFormat::X25519,
        Some(other) => return invalid(format!("database.keyFormat must be ed25519 or x25519, not {other}")),
    };
    if let Some(c) = d.channel {
        cfg.admin_channel = c;
    }
    if let Some(c) = d.agents_channel {
        cfg.agents_channel = c;
    }
    Ok(cfg)
}

/// Options as JavaScript gave them -> the node's settings, with the Rust
/// defaults for what is absent.
fn config(o: NativeOptions) -> Checked<PeerConfig> {
    let Some(agent) = o.agent.filter(|a| !a.is_empty()) else {
        return invalid("options.agent (our agent id) is required");
    };
    let mut cfg = PeerConfig::new(agent);
    let d = proto::Config::default();
    let identity = match (o.encrypt.unwrap_or(true), o.private_key) {
        (false, _) => None,
        (true, None) => {
            return invalid("keys: { privateKey } is required; for raw mode (no encryption) say encrypt: false")
        }
        (true, Some(k)) => {
            let private = keys::key_from_slice(&k)
                .ok_or_else(|| Error::InvalidArgument("privateKey must be 32 bytes (X25519)".into()))?;
            Some(keys::Identity { agent: cfg.agent.clone(), public: keys::public_from_private(&private), private })
        }
    };
    if let Some(host) = o.host {
        cfg.host = host;
    }
    cfg.port = u16::try_from(count(o.port, 0, "port", 0..=65535)?).unwrap_or(0);
    if let Some(host) = o.advertise_host {
        let port = count(o.advertise_port, usize::from(cfg.port), "address.port", 1..=65535)?;
        cfg.advertise = Some((host, u16::try_from(port).unwrap_or(0)));
    }
    cfg.max_pending = count(o.max_pending, cfg.max_pending, "maxPending", 1..=1_000_000)?;
    cfg.max_pending_per_ip = count(o.max_pending_per_ip, cfg.max_pending_per_ip, "maxPendingPerIp", 1..=1_000_000)?;
    cfg.max_links = count(o.max_links, cfg.max_links, "maxLinks", 1..=10_000_000)?;
    cfg.max_links_per_ip = count(o.max_links_per_ip, cfg.max_links_per_ip, "maxLinksPerIp", 1..=10_000_000)?;
    cfg.max_links_per_agent = count(o.max_links_per_agent, cfg.max_links_per_agent, "maxLinksPerAgent", 1..=1_000)?;
    cfg.max_referee_links = count(o.max_referee_links, cfg.max_referee_links, "maxRefereeLinks", 1..=10_000_000)?;
    let rate = count(o.connect_rate, cfg.connect_rate as usize, "connectRate", 1..=1_000_000)?;
    cfg.connect_rate = u32::try_from(rate).unwrap_or(u32::MAX);
    cfg.max_queued_bytes = count(o.max_queued_bytes, cfg.max_queued_bytes, "maxQueuedBytes", 1024..=u32::MAX as usize)?;
    cfg.write_timeout = duration(o.write_timeout, cfg.write_timeout, "writeTimeout")?;
    cfg.max_backlog = count(o.max_backlog, cfg.max_backlog, "maxBacklog", 1..=1_000_000)?;
    let events = count(o.event_rate, cfg.event_rate as usize, "eventRate", 1..=1_000_000)?;
    cfg.event_rate = u32::try_from(events).unwrap_or(u32::MAX);
    cfg.proto = proto::Config {
        admit_any_agent: identity.is_none() && !o.has_peer_key.unwrap_or(false) && o.database.is_none(),
        identity,
        max_frame: count(
            o.max_frame,
            d.max_frame,
            "maxFrame",
            proto::config::MIN_FRAME..=proto::frame::DEFAULT_MAX_FRAME,
        )?,
        max_message: count(
            o.max_message,
            d.max_message,
            "maxMessage",
            proto::config::MIN_MESSAGE..=proto::config::MAX_MESSAGE,
        )?,
        handshake_timeout: duration(o.handshake_timeout, d.handshake_timeout, "handshakeTimeout")?,
        idle_timeout: timer(o.timeout, d.idle_timeout, "timeout")?,
        keepalive: timer(o.keepalive, d.keepalive, "keepalive")?,
        drain_timeout: duration(o.drain_timeout, d.drain_timeout, "drainTimeout")?,
        referee: o.referee.unwrap_or(d.referee),
        accept_legacy: o.legacy.unwrap_or(d.accept_legacy),
    };
    Ok(cfg)
}

/// The defaults of every option, from the Rust settings (the one source).
pub fn defaults() -> PeerDefaults {
    let cfg = PeerConfig::new("");
    let d = &cfg.proto;
    let ms = |t: Duration| t.as_secs_f64() * 1000.0;
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    PeerDefaults {
        host: cfg.host.clone(),
        port: u32::from(cfg.port),
        encrypt: true,
        timeout: d.idle_timeout.map_or(0.0, ms),
        handshake_timeout: ms(d.handshake_timeout),
        drain_timeout: ms(d.drain_timeout),
        max_frame: n(d.max_frame),
        max_message: n(d.max_message),
        max_pending: n(cfg.max_pending),
        max_pending_per_ip: n(cfg.max_pending_per_ip),
        max_links: n(cfg.max_links),
        max_links_per_ip: n(cfg.max_links_per_ip),
        max_links_per_agent: n(cfg.max_links_per_agent),
        max_referee_links: n(cfg.max_referee_links),
        connect_rate: cfg.connect_rate,
        max_queued_bytes: n(cfg.max_queued_bytes),
        write_timeout: ms(cfg.write_timeout),
        keepalive: d.keepalive.map_or(0.0, ms),
        max_backlog: n(cfg.max_backlog),
        event_rate: cfg.event_rate,
        referee: d.referee,
        legacy: d.accept_legacy,
    }
}

fn target(t: NativeTarget) -> std::result::Result<Target, Error> {
    let key = match t.key {
        None => None,
        Some(k) => Some(key_from_js(&k).ok_or_else(|| Error::InvalidArgument("key must be 32 bytes (X25519)".into()))?),
    };
    let port = match t.port {
        None => None,
        Some(p) => Some(u16::try_from(p).map_err(|_| Error::InvalidArgument("port must be 0..65535".into()))?),
    };
    Ok(Target { agent: t.agent, host: t.host, port, key, link: t.link.map(|l| l as u64) })
}

fn send_options(o: Option<NativeSendOptions>) -> std::result::Result<SendOptions, Error> {
    let Some(o) = o else { return Ok(SendOptions::default()) };
    let ticket = match o.ticket {
        None => None,
        Some(t) => {
            Some(serde_json::from_str(&t).map_err(|e| Error::InvalidArgument(format!("ticket is not JSON: {e}")))?)
        }
    };
    Ok(SendOptions { ticket, referee: o.referee.unwrap_or(false) })
}

#[napi]
pub struct NativePeer {
    peer: Peer,
    encrypted: bool,
    store: Arc<JsStore>,
    /// Where sends report how they ended (batched to `onSent`).
    results: tokio::sync::mpsc::UnboundedSender<(u64, crate::Result<()>)>,
}

#[napi]
impl NativePeer {
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "options: NativeOptions, onInput: (link: number, messages?: string, early?: Array<number>, from?: FromInfo, event?: EventInfo) => void, onRequest: (r: LookupRequest) => void, onSent: (written: Array<number>, failed?: Array<SendFailure>) => void"
    )]
    pub fn new(
        mut options: NativeOptions,
        on_input: JsCallback<InputArgs>,
        on_request: JsCallback<LookupRequest>,
        on_sent: JsCallback<SentArgs>,
    ) -> Result<Self> {
        let (has_peer_key, has_check_ticket) =
            (options.has_peer_key.unwrap_or(false), options.has_check_ticket.unwrap_or(false));
        let db = options.database.take();
        let cfg = config(options).map_err(to_js)?;
        let db = db.map(|d| database(d, &cfg.agent, cfg.proto.handshake_timeout)).transpose().map_err(to_js)?;
        let encrypted = cfg.proto.identity.is_some();
        let js_store = Arc::new(JsStore::new(on_request));
        let js: Arc<dyn Store> = Arc::new(SharedStore(js_store.clone()));
        // A callback the application gave answers its question; the database answers the rest.
        let store: Arc<dyn Store> = match db {
            None => js,
            Some(db) => {
                let pg: Arc<dyn Store> = Arc::new(within_runtime_if_available(|| PgStore::start(db)).map_err(to_js)?);
                let keys = if has_peer_key { js.clone() } else { pg.clone() };
                let tickets = if has_check_ticket { js } else { pg };
                Arc::new(Split { keys, tickets })
            }
        };
        let sink = Arc::new(JsSink::new(on_input));
        let (results, rx) = tokio::sync::mpsc::unbounded_channel();
        within_runtime_if_available(|| tokio::spawn(report_results(rx, on_sent)));
        let peer = Peer::new(cfg, store, sink).map_err(to_js)?;
        Ok(Self { peer, encrypted, store: js_store, results })
    }

    /// Bind and start listening, now; returns the bound address.
    #[napi(catch_unwind)]
    pub fn listen(&self) -> Result<ListenAddress> {
        let addr = within_runtime_if_available(|| self.peer.listen()).map_err(to_js)?;
        Ok(ListenAddress { host: addr.ip().to_string(), port: u32::from(addr.port()) })
    }

    /// Send one message (JSON object text), in call order. Returns 1: it was
    /// written to the socket before this returned, and nothing more will be
    /// said about it; 2: corked (`cork`), to be written by `uncork`, which
    /// returns it (or `onSent` reports it); 0: `onSent` reports how it
    /// ended, once, with `id`. Throws only for bad arguments.
    // Flat arguments on purpose: the hot path crosses with no JavaScript
    // object to read field by field.
    #[allow(clippy::too_many_arguments)]
    #[napi(catch_unwind)]
    pub fn send(
        &self,
        id: f64,
        agent: Option<String>,
        host: Option<String>,
        port: Option<u32>,
        data: String,
        extra: Option<NativeSendExtra>,
        cork: bool,
    ) -> Result<u32> {
        let (key, link, options) = match extra {
            None => (None, None, None),
            Some(e) => (e.key, e.link, Some(NativeSendOptions { ticket: e.ticket, referee: e.referee })),
        };
        let to = target(NativeTarget { agent, host, port, key, link }).map_err(to_js)?;
        let opts = send_options(options).map_err(to_js)?;
        let done = Done::queue(id as u64, self.results.clone());
        let sent = within_runtime_if_available(|| self.peer.send_with(to, data.into_bytes(), opts, done, cork));
        Ok(match sent {
            Sent::Pending => 0,
            Sent::Written => 1,
            Sent::Corked => 2,
        })
    }

    /// Consecutive sends to one address, corked (`send` with `cork`, no
    /// extra): the sends of one turn after its first, gathered by JavaScript
    /// into one call. `texts` is their `count` JSON texts joined by line
    /// breaks (JSON text has none of its own), with ids `first` and on. Each
    /// is written by the next `uncork` (which returns it) or reported to
    /// `onSent`. Throws only for bad arguments, before sending any.
    #[napi(catch_unwind)]
    pub fn send_corked(
        &self,
        first: f64,
        count: u32,
        agent: Option<String>,
        host: Option<String>,
        port: Option<u32>,
        texts: String,
    ) -> Result<()> {
        let texts: Vec<&str> = texts.split('\n').collect();
        if texts.len() != count as usize {
            return Err(to_js(Error::InvalidArgument(format!("{count} JSON texts, one per line, expected"))));
        }
        let to = target(NativeTarget { agent, host, port, key: None, link: None }).map_err(to_js)?;
        let messages =
            (first as u64..).zip(texts).map(|(id, text)| (text.as_bytes(), Done::queue(id, self.results.clone())));
        within_runtime_if_available(|| self.peer.send_corked(&to, messages));
        Ok(())
    }

    /// Write every message corked since the last call, one write per link.
    /// Returns the ids of the sends this wrote, as runs `[first, count, ...]`
    /// (the rest are reported to `onSent` as usual).
    #[napi(catch_unwind)]
    pub fn uncork(&self) -> Vec<f64> {
        runs(self.peer.uncork())
    }

    /// Open (or reuse) a link without sending.
    #[napi]
    pub async fn connect(&self, to: NativeTarget, options: Option<NativeSendOptions>) -> Result<LinkSummary> {
        let to = target(to).map_err(to_js)?;
        let opts = send_options(options).map_err(to_js)?;
        self.peer.connect(to, opts).await.map(LinkSummary::from).map_err(to_js)
    }

    /// Close, in order, the links to an agent; returns how many.
    #[napi(catch_unwind)]
    pub fn end(&self, agent: String) -> u32 {
        // In the runtime: messages queued on the ended links may dial another.
        u32::try_from(within_runtime_if_available(|| self.peer.end(&agent))).unwrap_or(u32::MAX)
    }

    /// Stop listening and close every link.
    #[napi]
    pub async fn close(&self) -> Result<()> {
        self.peer.close().await;
        Ok(())
    }

    /// Figures of the running node.
    #[napi(catch_unwind)]
    pub fn stats(&self) -> PeerStats {
        self.peer.stats().into()
    }

    /// True when the node encrypts (false in raw mode).
    #[napi(getter)]
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// The links open right now.
    #[napi(catch_unwind)]
    pub fn links(&self) -> Vec<LinkSummary> {
        self.peer.links().into_iter().map(LinkSummary::from).collect()
    }

    /// Answer a lookup request: a key (or null), a ticket verdict, or an error.
    #[napi(catch_unwind)]
    pub fn answer(&self, id: f64, key: Option<Buffer>, ok: Option<bool>, error: Option<String>) -> Result<bool> {
        let reply = match (error, ok, key) {
            (Some(e), _, _) => Answer::Failed(Error::LookupFailed(e)),
            (None, Some(ok), _) => Answer::Ticket(ok),
            (None, None, Some(k)) => match key_from_js(&k) {
                Some(k) => Answer::Key(Some(k)),
                None => Answer::Failed(Error::LookupFailed("peerKey returned a key that is not 32 bytes".into())),
            },
            (None, None, None) => Answer::Key(None),
        };
        Ok(self.store.answer(id as u64, reply))
    }
}
