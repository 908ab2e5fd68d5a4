//! The agent -> links map: which link a message goes on, when a new one must
//! be dialled, and where messages go when a link closes before writing them.
//!
//! A link is registered under its agent once its handshake has proven who is
//! at the other end, whichever side opened it, so both directions share one
//! link. Outbound links are registered while still opening, so that several
//! sends before the link is open queue on one connection. Anonymous referee
//! links (NK) are kept apart from the authenticated ones.
//!
//! Order: routing a message and pushing it onto a link's queue happen under
//! one lock, synchronously in the caller (the JavaScript thread, in call
//! order); a closing link takes its unsent messages off its queue and routes
//! them to the next link under the same lock. So messages to one agent keep
//! the order in which `send` was called, across link changes.
//!
//! The registry starts no task: when a message needs a new link, it returns
//! a `DialOrder`, and the caller starts the dial once the lock is released.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::event::LinkInfo;
use super::queue::{Cmd, Outgoing, SendOptions, Target};
use crate::error::{Error, Result};
use crate::proto::Pattern;

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
    tx: mpsc::UnboundedSender<Cmd>,
    phase: Phase,
    route: Option<Route>,
    info: Option<LinkInfo>,
    cancel: CancellationToken,
}

/// A new link's end of its command queue.
pub(crate) struct NewLink {
    pub id: u64,
    pub rx: mpsc::UnboundedReceiver<Cmd>,
    pub cancel: CancellationToken,
}

/// A link the registry created for a message: the caller must dial it.
pub(crate) struct DialOrder {
    pub link: NewLink,
    pub target: Target,
    pub opts: SendOptions,
}

/// What a retiring link does with messages still queued on it.
pub(crate) enum Retire {
    /// Hand them to another link (nothing of them was written).
    Requeue,
    /// Reject them: the reason applies to any link to that peer.
    Reject(Error),
}

pub struct Registry {
    inner: Mutex<Inner>,
    /// The node's shutdown: every link's cancel token is a child of it.
    shutdown: CancellationToken,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    links: HashMap<u64, Entry>,
    routes: HashMap<Route, Vec<u64>>,
}

impl Registry {
    pub fn new(shutdown: CancellationToken) -> Self {
        Self { inner: Mutex::default(), shutdown }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps half-updated
        // in a way that matters more than losing the node, so recover.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register an inbound link, whose peer is not known yet.
    pub(crate) fn add_inbound(&self) -> NewLink {
        self.lock().add(&self.shutdown, None)
    }

    /// Put a message on the queue of its link, in call order. Answers
    /// `out.done` itself when no link can take it. Returns the dial to start
    /// when it created a link.
    pub(crate) fn submit(&self, out: Outgoing) -> Option<DialOrder> {
        let mut dials = Vec::new();
        self.lock().submit(&self.shutdown, out, &mut dials);
        dials.pop()
    }

    /// Queue a request to hear when the link to `target` is open.
    pub(crate) fn connect(
        &self,
        target: Target,
        opts: SendOptions,
        done: oneshot::Sender<Result<LinkInfo>>,
    ) -> Option<DialOrder> {
        let mut dials = Vec::new();
        self.lock().connect(&self.shutdown, target, opts, done, &mut dials);
        dials.pop()
    }

    /// The handshake completed: route messages for this agent here.
    pub(crate) fn opened(&self, id: u64, info: &LinkInfo) {
        let mut inner = self.lock();
        inner.unroute(id);
        // An NK link is anonymous on the responder's side (no agent, so no route)
        // and kept apart from authenticated links on the initiator's side.
        let anonymous = info.pattern == Pattern::NK;
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

    /// The link will send nothing more: take it off its route and settle what
    /// is still queued on it. Unsent messages go to another link (`Requeue`),
    /// or are rejected with the error. Returns the dials to start for them.
    #[must_use]
    pub(crate) fn retire(&self, id: u64, cmds: &mut mpsc::UnboundedReceiver<Cmd>, outcome: Retire) -> Vec<DialOrder> {
        let mut dials = Vec::new();
        let mut inner = self.lock();
        inner.unroute(id);
        if let Some(entry) = inner.links.get_mut(&id) {
            entry.phase = Phase::Closing;
        }
        cmds.close();
        while let Ok(cmd) = cmds.try_recv() {
            match (cmd, &outcome) {
                (Cmd::Send(mut out), Retire::Requeue)
                    if out.attempts + 1 < MAX_ATTEMPTS && out.target.link.is_none() =>
                {
                    out.attempts += 1;
                    inner.submit(&self.shutdown, out, &mut dials);
                }
                (Cmd::Connect { done, target, opts }, Retire::Requeue) if target.link.is_none() => {
                    inner.connect(&self.shutdown, target, opts, done, &mut dials);
                }
                (cmd, Retire::Requeue) => cmd.reject(&Error::ConnectionClosed),
                (cmd, Retire::Reject(err)) => cmd.reject(err),
            }
        }
        dials
    }

    pub(crate) fn remove(&self, id: u64) {
        let mut inner = self.lock();
        inner.unroute(id);
        inner.links.remove(&id);
    }

    /// Start an orderly close of every link to `agent`. The links keep their
    /// route until they retire, so what is sent meanwhile queues behind the
    /// messages already on them and moves, in order, to the next link.
    pub fn end_agent(&self, agent: &str) -> usize {
        let inner = self.lock();
        let mut n = 0;
        for anonymous in [false, true] {
            for id in inner.routes.get(&Route { agent: agent.to_owned(), anonymous }).into_iter().flatten() {
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
        let mut v: Vec<LinkInfo> =
            inner.links.values().filter(|e| e.phase == Phase::Open).filter_map(|e| e.info.clone()).collect();
        v.sort_by_key(|i| i.link);
        v
    }
}

impl Inner {
    fn add(&mut self, shutdown: &CancellationToken, route: Option<Route>) -> NewLink {
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = shutdown.child_token();
        self.next_id += 1;
        let id = self.next_id;
        if let Some(r) = &route {
            self.routes.entry(r.clone()).or_default().push(id);
        }
        self.links.insert(id, Entry { tx, phase: Phase::Opening, route, info: None, cancel: cancel.clone() });
        NewLink { id, rx, cancel }
    }

    fn unroute(&mut self, id: u64) {
        let Some(route) = self.links.get_mut(&id).and_then(|e| e.route.take()) else { return };
        if let Some(ids) = self.routes.get_mut(&route) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                self.routes.remove(&route);
            }
        }
    }

    /// The queue of the link a message for `target` goes on. Prefers an open
    /// link, the newest one, then one still opening; creates a link (and
    /// orders its dial) when there is none.
    fn route(
        &mut self,
        shutdown: &CancellationToken,
        target: &Target,
        opts: &SendOptions,
        dials: &mut Vec<DialOrder>,
    ) -> Result<(u64, mpsc::UnboundedSender<Cmd>)> {
        if shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        if let Some(id) = target.link {
            return match self.links.get(&id) {
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
        let live = |phase| {
            self.routes
                .get(&route)
                .into_iter()
                .flatten()
                .rev()
                .copied()
                .find(|id| self.links.get(id).is_some_and(|e| e.phase == phase && !e.tx.is_closed()))
        };
        if let Some(id) = live(Phase::Open).or_else(|| live(Phase::Opening)) {
            if let Some(e) = self.links.get(&id) {
                return Ok((id, e.tx.clone()));
            }
        }
        if target.host.is_none() || target.port.is_none() {
            return Err(Error::InvalidArgument(format!("no open link to {agent}, and no host and port to dial")));
        }
        let link = self.add(shutdown, Some(route));
        let id = link.id;
        let tx = self.links.get(&id).map(|e| e.tx.clone()).ok_or(Error::Closed)?;
        dials.push(DialOrder { link, target: target.clone(), opts: opts.clone() });
        Ok((id, tx))
    }

    fn submit(&mut self, shutdown: &CancellationToken, mut out: Outgoing, dials: &mut Vec<DialOrder>) {
        for _ in 0..MAX_ATTEMPTS {
            let (id, tx) = match self.route(shutdown, &out.target, &out.opts, dials) {
                Ok(r) => r,
                Err(e) => {
                    out.done.complete(Err(e));
                    return;
                }
            };
            match tx.send(Cmd::Send(out)) {
                Ok(()) => return,
                // The link's task has ended; it wrote nothing of this message.
                Err(mpsc::error::SendError(cmd)) => {
                    self.unroute(id);
                    self.links.remove(&id);
                    match cmd {
                        Cmd::Send(o) => out = o,
                        Cmd::Connect { .. } => return,
                    }
                }
            }
        }
        out.done.complete(Err(Error::ConnectionClosed));
    }

    fn connect(
        &mut self,
        shutdown: &CancellationToken,
        target: Target,
        opts: SendOptions,
        done: oneshot::Sender<Result<LinkInfo>>,
        dials: &mut Vec<DialOrder>,
    ) {
        match self.route(shutdown, &target, &opts, dials) {
            Ok((_, tx)) => {
                if let Err(mpsc::error::SendError(cmd)) = tx.send(Cmd::Connect { done, target, opts }) {
                    cmd.reject(&Error::ConnectionClosed);
                }
            }
            Err(e) => {
                let _ = done.send(Err(e));
            }
        }
    }
}
