//! `NativePeer`: the driver's `Peer` as a JavaScript class. The public
//! `NoisePeer` in index.js wraps it (JSON, listeners, callback promises).

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{within_runtime_if_available, Buffer};
use napi_derive::napi;

use super::callbacks::{key_from_js, report_results, JsCallback, JsSink, JsStore, Reply, SharedStore};
use super::error::{to_js, Result};
use super::options::{
    Delivery, EventInfo, LinkSummary, ListenAddress, LookupRequest, NativeOptions, NativeSendOptions, NativeTarget,
    SendResult,
};
use crate::driver::Done;
use crate::driver::{Peer, PeerConfig, SendOptions, Target};
use crate::error::Error;
use crate::proto::{self, keys};

fn ms(v: f64, what: &str) -> std::result::Result<Duration, Error> {
    if v.is_finite() && v > 0.0 && v < 1e12 {
        Ok(Duration::from_secs_f64(v / 1000.0))
    } else {
        Err(Error::InvalidArgument(format!("{what} must be a positive number of milliseconds")))
    }
}

fn config(o: NativeOptions) -> std::result::Result<PeerConfig, Error> {
    let identity = match o.private_key {
        None => None,
        Some(k) => {
            let private = keys::key_from_slice(&k)
                .ok_or_else(|| Error::InvalidArgument("privateKey must be 32 bytes (X25519)".into()))?;
            Some(keys::Identity { agent: o.agent.clone(), public: public_of(&private)?, private })
        }
    };
    if o.agent.is_empty() {
        return Err(Error::InvalidArgument("agent is required".into()));
    }
    let port = u16::try_from(o.port).map_err(|_| Error::InvalidArgument("port must be 0..65535".into()))?;
    let max_frame = (o.max_frame as usize).clamp(64, proto::frame::DEFAULT_MAX_FRAME);
    Ok(PeerConfig {
        agent: o.agent,
        host: o.host,
        port,
        proto: proto::Config {
            identity,
            max_frame,
            max_message: (o.max_message as usize).max(1024),
            handshake_timeout: ms(o.handshake_timeout_ms, "handshakeTimeout")?,
            // A timeout of 0 turns the responder's idle timer off.
            idle_timeout: if o.timeout_ms == 0.0 { None } else { Some(ms(o.timeout_ms, "timeout")?) },
            drain_timeout: ms(o.drain_timeout_ms, "drainTimeout")?,
            referee: o.referee,
            accept_legacy: o.accept_legacy,
        },
        max_pending: (o.max_pending as usize).max(1),
        max_pending_per_ip: (o.max_pending_per_ip as usize).max(1),
    })
}

/// The X25519 public key of a private key, by running snow's own DH.
fn public_of(private: &keys::Key) -> std::result::Result<keys::Key, Error> {
    use snow::resolvers::{CryptoResolver, DefaultResolver};
    let mut dh = DefaultResolver
        .resolve_dh(&snow::params::DHChoice::Curve25519)
        .ok_or_else(|| Error::Internal("no X25519".into()))?;
    dh.set(private);
    keys::key_from_slice(dh.pubkey()).ok_or_else(|| Error::Internal("bad public key".into()))
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
        Some(t) => Some(
            serde_json::from_str(&t).map_err(|e| Error::InvalidArgument(format!("ticket is not JSON: {e}")))?,
        ),
    };
    Ok(SendOptions { ticket, referee: o.referee.unwrap_or(false) })
}

#[napi]
pub struct NativePeer {
    peer: Peer,
    store: Arc<JsStore>,
    /// Where sends report how they ended (batched to `onSent`).
    results: tokio::sync::mpsc::UnboundedSender<(u64, crate::Result<()>)>,
}

#[napi]
impl NativePeer {
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "options: NativeOptions, onMessage: (d: Delivery) => void, onEvent: (e: EventInfo) => void, onRequest: (r: LookupRequest) => void, onSent: (results: Array<SendResult>) => void"
    )]
    pub fn new(
        options: NativeOptions,
        on_message: JsCallback<Delivery>,
        on_event: JsCallback<EventInfo>,
        on_request: JsCallback<LookupRequest>,
        on_sent: JsCallback<Vec<SendResult>>,
    ) -> Result<Self> {
        let has_keys = options.has_peer_key;
        let cfg = config(options).map_err(to_js)?;
        let store = Arc::new(JsStore::new(on_request, has_keys));
        let sink = Arc::new(JsSink { on_message, on_event });
        let (results, rx) = tokio::sync::mpsc::unbounded_channel();
        within_runtime_if_available(|| tokio::spawn(report_results(rx, on_sent)));
        Ok(Self { peer: Peer::new(cfg, Arc::new(SharedStore(store.clone())), sink), store, results })
    }

    /// Start listening; resolves with the bound address.
    #[napi]
    pub async fn listen(&self) -> Result<ListenAddress> {
        let addr = self.peer.listen().await.map_err(to_js)?;
        Ok(ListenAddress { host: addr.ip().to_string(), port: u32::from(addr.port()) })
    }

    /// Queue one message (JSON object text) for sending. How it ends (written
    /// to the socket, or why not) is reported once, with `id`, to `onSent`.
    /// Queued before this returns, so messages keep call order. Throws only
    /// for bad arguments.
    #[napi(catch_unwind)]
    pub fn send(&self, id: f64, to: NativeTarget, data: String, options: Option<NativeSendOptions>) -> Result<()> {
        let to = target(to).map_err(to_js)?;
        let opts = send_options(options).map_err(to_js)?;
        let done = Done::queue(id as u64, self.results.clone());
        within_runtime_if_available(|| self.peer.send_with(to, data.into_bytes(), opts, done));
        Ok(())
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
        u32::try_from(self.peer.end(&agent)).unwrap_or(u32::MAX)
    }

    /// Stop listening and close every link.
    #[napi]
    pub async fn close(&self) -> Result<()> {
        self.peer.close().await;
        Ok(())
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
            (Some(e), _, _) => Reply::Failed(e),
            (None, Some(ok), _) => Reply::Ticket(ok),
            (None, None, Some(k)) => match key_from_js(&k) {
                Some(k) => Reply::Key(Some(k)),
                None => Reply::Failed("peerKey returned a key that is not 32 bytes".into()),
            },
            (None, None, None) => Reply::Key(None),
        };
        Ok(self.store.answer(id as u64, reply))
    }
}
