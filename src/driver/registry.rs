//! The agent -> links map: which link a message goes on, when a new one is
//! dialled, and where messages go when a link closes before writing them.
//!
//! A link is registered under its agent once its handshake has proven who is
//! at the other end, whichever side opened it, so both directions share one
//! link. Outbound links are registered while still opening, so that several
//! sends before the link is open queue on one connection. Anonymous referee
//! links (NK) are kept apart from the authenticated ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::link::{self, Cmd, Outgoing};
use super::{LinkInfo, SendOptions, Shared, Target};
use crate::error::{Error, Result};

/// Messages queued per link while it opens (further sends wait for room).
const LINK_QUEUE: usize = 1024;
/// How many links a message may be handed to before its send is rejected.
pub(crate) const MAX_ATTEMPTS: u8 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Route {
    agent: String,
    anonymous: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Opening,
    Open,
    Closing,
}

struct Entry {
    tx: mpsc::Sender<Cmd>,
    phase: Phase,
    route: Option<Route>,
    info: Option<LinkInfo>,
    cancel: CancellationToken,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    links: HashMap<u64, Entry>,
    routes: HashMap<Route, Vec<u64>>,
}

impl Inner {
    fn unroute(&mut self, id: u64) {
        let Some(route) = self.links.get_mut(&id).and_then(|e| e.route.take()) else { return };
        if let Some(ids) = self.routes.get_mut(&route) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                self.routes.remove(&route);
            }
        }
    }
}

#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

/// A new link's end of its command queue.
pub(crate) struct NewLink {
    pub id: u64,
    pub rx: mpsc::Receiver<Cmd>,
    pub cancel: CancellationToken,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps half-updated
        // in a way that matters more than losing the node, so recover.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register a link whose peer is not known yet (inbound, or dialling).
    pub(crate) fn add(&self, shutdown: &CancellationToken, route: Option<(String, bool)>) -> NewLink {
        let (tx, rx) = mpsc::channel(LINK_QUEUE);
        let cancel = shutdown.child_token();
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        let route = route.map(|(agent, anonymous)| Route { agent, anonymous });
        if let Some(r) = &route {
            inner.routes.entry(r.clone()).or_default().push(id);
        }
        inner.links.insert(id, Entry { tx, phase: Phase::Opening, route, info: None, cancel: cancel.clone() });
        NewLink { id, rx, cancel }
    }

    /// The handshake completed: route messages for this agent here.
    pub(crate) fn opened(&self, id: u64, info: &LinkInfo) {
        let mut inner = self.lock();
        inner.unroute(id);
        // An NK link is anonymous on the responder's side (no agent, so no route)
        // and kept apart from authenticated links on the initiator's side.
        let anonymous = info.pattern == crate::proto::Pattern::NK;
        let route = info.agent.clone().map(|agent| Route { agent, anonymous });
        if let Some(entry) = inner.links.get_mut(&id) {
            entry.phase = Phase::Open;
            entry.info = Some(info.clone());
            entry.route = route.clone();
        }
        if let Some(r) = route {
            inner.routes.entry(r).or_default().push(id);
        }
    }

    /// The link is closing: send nothing more through it.
    pub(crate) fn closing(&self, id: u64) {
        let mut inner = self.lock();
        inner.unroute(id);
        if let Some(entry) = inner.links.get_mut(&id) {
            entry.phase = Phase::Closing;
        }
    }

    pub(crate) fn remove(&self, id: u64) {
        let mut inner = self.lock();
        inner.unroute(id);
        inner.links.remove(&id);
    }

    /// Start an orderly close of every link to `agent`.
    pub fn end_agent(&self, agent: &str) -> usize {
        let inner = self.lock();
        let mut n = 0;
        for anonymous in [false, true] {
            let route = Route { agent: agent.to_owned(), anonymous };
            for id in inner.routes.get(&route).into_iter().flatten() {
                if let Some(e) = inner.links.get(id) {
                    e.cancel.cancel();
                    n += 1;
                }
            }
        }
        n
    }

    pub fn open_links(&self) -> Vec<LinkInfo> {
        let inner = self.lock();
        let mut v: Vec<LinkInfo> = inner
            .links
            .values()
            .filter(|e| e.phase == Phase::Open)
            .filter_map(|e| e.info.clone())
            .collect();
        v.sort_by_key(|i| i.link);
        v
    }

    /// The queue of the link a message for `target` goes on, dialling a new
    /// link when there is none. Prefers an open link, the newest one.
    fn route(&self, shared: &Arc<Shared>, target: &Target, opts: &SendOptions) -> Result<(u64, mpsc::Sender<Cmd>)> {
        let inner = self.lock();
        if let Some(id) = target.link {
            return match inner.links.get(&id) {
                Some(e) if e.phase != Phase::Closing => Ok((id, e.tx.clone())),
                _ => Err(Error::ConnectionClosed),
            };
        }
        let agent = target
            .agent
            .clone()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::InvalidArgument("the address has no agent".into()))?;
        let route = Route { agent: agent.clone(), anonymous: opts.referee };
        let candidates = inner.routes.get(&route).cloned().unwrap_or_default();
        let pick = |phase| {
            candidates.iter().rev().find(|id| inner.links.get(id).is_some_and(|e| e.phase == phase && !e.tx.is_closed()))
        };
        if let Some(&id) = pick(Phase::Open).or_else(|| pick(Phase::Opening)) {
            if let Some(e) = inner.links.get(&id) {
                return Ok((id, e.tx.clone()));
            }
        }
        if target.host.is_none() || target.port.is_none() {
            return Err(Error::InvalidArgument(format!("no open link to {agent}, and no host and port to dial")));
        }
        drop(inner);
        let new = self.add(&shared.shutdown, Some((agent, opts.referee)));
        let id = new.id;
        let tx = self.lock().links.get(&id).map(|e| e.tx.clone()).ok_or(Error::Closed)?;
        shared.tasks.spawn(link::dial(shared.clone(), new, target.clone(), opts.clone()));
        Ok((id, tx))
    }

    fn forget_if_dead(&self, id: u64) {
        let mut inner = self.lock();
        if inner.links.get(&id).is_some_and(|e| e.tx.is_closed()) {
            inner.unroute(id);
            inner.links.remove(&id);
        }
    }
}

/// Hand a message to a link (dialling one if needed). Every path ends with
/// `out.done` answered, here or by the link.
pub(crate) async fn dispatch(shared: &Arc<Shared>, mut out: Outgoing) {
    loop {
        if shared.shutdown.is_cancelled() {
            let _ = out.done.send(Err(Error::Closed));
            return;
        }
        let (id, tx) = match shared.registry.route(shared, &out.target, &out.opts) {
            Ok(r) => r,
            Err(e) => {
                let _ = out.done.send(Err(e));
                return;
            }
        };
        match tx.send(Cmd::Send(out)).await {
            Ok(()) => return,
            // The link ended between routing and queueing; it wrote nothing
            // of this message, so another link may take it.
            Err(mpsc::error::SendError(cmd)) => {
                shared.registry.forget_if_dead(id);
                match cmd {
                    Cmd::Send(o) => out = o,
                    Cmd::Connect(_) => return,
                }
            }
        }
    }
}

/// Open (or reuse) a link and wait until it is open.
pub(crate) async fn connect(shared: &Arc<Shared>, target: Target, opts: SendOptions) -> Result<LinkInfo> {
    for _ in 0..MAX_ATTEMPTS {
        let (id, tx) = shared.registry.route(shared, &target, &opts)?;
        let (done, result) = oneshot::channel();
        if tx.send(Cmd::Connect(done)).await.is_err() {
            shared.registry.forget_if_dead(id);
            continue;
        }
        return result.await.unwrap_or(Err(Error::ConnectionClosed));
    }
    Err(Error::ConnectionClosed)
}
