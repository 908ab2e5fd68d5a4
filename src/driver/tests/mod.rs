//! The driver without JavaScript: the registry's rules on their own
//! (`registry`), and `Peer`s on real loopback sockets with in-memory stores
//! and sinks (`links`). This module is the harness they share.

mod links;
mod registry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use super::{DeliveryPermit, EventKind, LinkInfo, Peer, PeerConfig, PeerEvent, Sink, Store, Target};
use crate::proto::{self, Address, Identity, Key};
use crate::store::Partner;

#[derive(Default)]
struct Keys(Mutex<HashMap<String, Key>>);

impl Store for Keys {
    fn peer_key(&self, agent: String) -> BoxFuture<'static, crate::Result<Option<Key>>> {
        let key = self.0.lock().map(|m| m.get(&agent).copied()).unwrap_or(None);
        Box::pin(async move { Ok(key) })
    }

    /// Every agent it knows a key for is a partner.
    fn partner(&self, agent: String) -> BoxFuture<'static, crate::Result<Partner>> {
        let key = self.0.lock().map(|m| m.get(&agent).copied()).unwrap_or(None);
        Box::pin(async move { Ok(Partner { allowed: key.is_some(), key }) })
    }

    fn check_ticket(&self, ticket: Value, _from: Address) -> BoxFuture<'static, crate::Result<bool>> {
        Box::pin(async move { Ok(ticket == "good") })
    }
}

#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<(Option<String>, String)>>,
    /// How many messages each call to `messages` handed over.
    batches: Mutex<Vec<usize>>,
    events: Mutex<Vec<PeerEvent>>,
}

impl Sink for Recorder {
    fn messages(&self, from: &LinkInfo, batch: Vec<(Vec<u8>, bool)>, _permit: Option<DeliveryPermit>) {
        self.batches.lock().unwrap_or_else(|p| p.into_inner()).push(batch.len());
        let mut m = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        for (data, _) in batch {
            m.push((from.agent.clone(), String::from_utf8_lossy(&data).into_owned()));
        }
    }

    fn event(&self, event: PeerEvent) {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }
}

pub(super) struct Node {
    pub peer: Peer,
    pub id: Identity,
    seen: Arc<Recorder>,
}

impl Node {
    pub fn target(&self) -> Target {
        let addr = self.peer.local_addr().expect("listening");
        Target {
            agent: Some(self.id.agent.clone()),
            host: Some(addr.ip().to_string()),
            port: Some(addr.port()),
            ..Target::default()
        }
    }

    pub fn messages(&self) -> Vec<String> {
        self.seen.messages.lock().unwrap().iter().map(|(_, m)| m.clone()).collect()
    }

    /// The sizes of the batches messages were delivered in, in order.
    pub fn batches(&self) -> Vec<usize> {
        self.seen.batches.lock().unwrap().clone()
    }

    pub fn events(&self, kind: EventKind) -> Vec<PeerEvent> {
        self.seen.events.lock().unwrap().iter().filter(|e| e.kind == kind).cloned().collect()
    }
}

/// Nodes that all know each other's keys.
pub(super) async fn nodes(n: u8, idle: Option<Duration>) -> Vec<Node> {
    nodes_with(n, idle, |_| {}).await
}

/// `nodes`, with settings changed by `tune`.
pub(super) async fn nodes_with(n: u8, idle: Option<Duration>, tune: impl Fn(&mut PeerConfig)) -> Vec<Node> {
    let keys = Arc::new(Keys::default());
    let mut out = Vec::new();
    for i in 0..n {
        let id = Identity::from_seed(&[i + 1; 32]);
        keys.0.lock().unwrap().insert(id.agent.clone(), id.public);
        let cfg = PeerConfig {
            proto: proto::Config { identity: Some(id.clone()), idle_timeout: idle, ..proto::Config::default() },
            max_pending: 64,
            max_pending_per_ip: 64,
            ..PeerConfig::new(id.agent.clone())
        };
        let mut cfg = cfg;
        tune(&mut cfg);
        let seen = Arc::new(Recorder::default());
        let peer = Peer::new(cfg, keys.clone(), seen.clone()).expect("valid settings");
        peer.listen().expect("listen on loopback");
        out.push(Node { peer, id, seen });
    }
    out
}

pub(super) async fn close_all(nodes: &[Node]) {
    for node in nodes {
        node.peer.close().await;
    }
}

pub(super) async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}
