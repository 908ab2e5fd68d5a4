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
//! order). Messages to an agent go to the link in use, the oldest open one,
//! even when a newer link to the same agent opens (the other side dialled at
//! the same moment, say): only when the link in use retires does the next one
//! take over, and then the retiring link's unsent messages move to it, in
//! order, under the same lock, ahead of anything sent later. So messages to
//! one agent keep the order in which `send` was called, across link changes
//! (docs/PROTOCOL.md §8).
//!
//! A responder's link is registered without a route until the initiator has
//! confirmed it (docs/PROTOCOL.md §5a): only a send to that very link uses it.
//!
//! The registry starts no task: when a message needs a new link, it returns
//! a `DialOrder`, and the caller starts the dial once the lock is released.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::event::LinkInfo;
use super::queue::{Cmd, Outgoing, SendOptions, Target, Waiter};
use super::stats::Traffic;
use super::wire::Wire;
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

/// Where a link's commands go.
enum Mailbox {
    /// A dial in progress: no socket yet, so commands wait here.
    Waiting(VecDeque<Cmd>),
    /// The link's wire, which its task reads.
    Live(Arc<Wire>),
}

struct Entry {
    mailbox: Mailbox,
    phase: Phase,
    route: Option<Route>,
    info: Option<LinkInfo>,
    cancel: CancellationToken,
    /// Counts as an anonymous referee link (responder side of an NK).
    anonymous_slot: bool,
}

/// Caps on open links that the registry keeps (docs/PROTOCOL.md §6).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkLimits {
    pub per_agent: usize,
    pub referee: usize,
}

/// A new link: its id, and what cancels it.
pub(crate) struct NewLink {
    pub id: u64,
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
    /// Hand them to another link (nothing of them was written). `cause`:
    /// why this link failed (`None`: it closed in order), the reason a
    /// message is rejected with if no other link can take it.
    Requeue { cause: Option<Error> },
    /// Reject them: the reason applies to any link to that peer.
    Reject(Error),
}

pub struct Registry {
    inner: Mutex<Inner>,
    /// The node's shutdown: every link's cancel token is a child of it.
    shutdown: CancellationToken,
    limits: LinkLimits,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    links: HashMap<u64, Entry>,
    routes: HashMap<Route, Vec<u64>>,
    referee_links: usize,
}

impl Registry {
    pub(crate) fn new(shutdown: CancellationToken, limits: LinkLimits) -> Self {
        Self { inner: Mutex::default(), shutdown, limits }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps half-updated
        // in a way that matters more than losing the node, so recover.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register an inbound link, whose peer is not known yet.
    pub(crate) fn add_inbound(&self, wire: Arc<Wire>) -> NewLink {
        self.lock().add(&self.shutdown, None, Mailbox::Live(wire))
    }

    /// A dialled link has its socket: commands queued while it dialled move
    /// to its wire, in order. False if the link is gone.
    pub(crate) fn install(&self, id: u64, wire: &Arc<Wire>) -> bool {
        let mut inner = self.lock();
        let Some(entry) = inner.links.get_mut(&id).filter(|e| e.phase != Phase::Closing) else { return false };
        if let Mailbox::Waiting(queued) = std::mem::replace(&mut entry.mailbox, Mailbox::Live(wire.clone())) {
            let mut st = wire.lock();
            st.cmds.extend(queued);
            drop(st);
            wire.wake.notify_one();
        }
        true
    }

    /// The wire a message for `target` would go on now, if it is open: for
    /// a send that may write at once (`Wire::send_now`). It picks the link
    /// `submit` would.
    pub(crate) fn in_use(&self, target: &Target, opts: &SendOptions) -> Option<Arc<Wire>> {
        let inner = self.lock();
        let id = match target.link {
            Some(id) => id,
            None => {
                let route = Route { agent: target.agent.clone()?, anonymous: opts.referee };
                let ids = inner.routes.get(&route)?;
                *ids.iter().find(|id| inner.links.get(id).is_some_and(|e| e.phase == Phase::Open))?
            }
        };
        match inner.links.get(&id) {
            Some(Entry { mailbox: Mailbox::Live(wire), phase: Phase::Open | Phase::Opening, .. }) => Some(wire.clone()),
            _ => None,
        }
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

    /// A responder's handshake completed but is not confirmed yet: what the
    /// link is, with no route to it.
    pub(crate) fn accepted(&self, id: u64, info: &LinkInfo) {
        if let Some(entry) = self.lock().links.get_mut(&id) {
            entry.info = Some(info.clone());
        }
    }

    /// The link is open (and confirmed): route messages for this agent here,
    /// unless the agent (or anonymous referee callers) already hold as many
    /// links as allowed.
    pub(crate) fn opened(&self, id: u64, info: &LinkInfo) -> Result<()> {
        let mut inner = self.lock();
        inner.unroute(id);
        // An NK link is anonymous on the responder's side (no agent, so no route)
        // and kept apart from authenticated links on the initiator's side.
        let anonymous = info.pattern == Pattern::NK;
        let route = info.agent.clone().map(|agent| Route { agent, anonymous });
        match &route {
            Some(r) => {
                let open = inner.routes.get(r).map_or(0, |ids| {
                    ids.iter().filter(|i| inner.links.get(i).is_some_and(|e| e.phase == Phase::Open)).count()
                });
                if open >= self.limits.per_agent {
                    return Err(Error::TooManyLinks(format!("{} links to one agent", self.limits.per_agent)));
                }
            }
            None if anonymous => {
                if inner.referee_links >= self.limits.referee {
                    return Err(Error::TooManyLinks(format!("{} anonymous referee links", self.limits.referee)));
                }
                inner.referee_links += 1;
            }
            None => {}
        }
        if let Some(entry) = inner.links.get_mut(&id) {
            entry.phase = Phase::Open;
            entry.info = Some(info.clone());
            entry.route = route.clone();
            entry.anonymous_slot = route.is_none() && anonymous;
        }
        if let Some(r) = route {
            inner.routes.entry(r).or_default().push(id);
        }
        Ok(())
    }

    /// The link will send nothing more: take it off its route and settle what
    /// is still queued on it. Unsent messages go to another link (`Requeue`),
    /// or are rejected with the error. Returns the dials to start for them.
    #[must_use]
    pub(crate) fn retire(&self, id: u64, outcome: Retire) -> Vec<DialOrder> {
        let mut dials = Vec::new();
        let mut inner = self.lock();
        inner.unroute(id);
        let cmds = match inner.links.get_mut(&id) {
            Some(entry) => {
                entry.phase = Phase::Closing;
                match &mut entry.mailbox {
                    Mailbox::Waiting(queued) => std::mem::take(queued),
                    Mailbox::Live(wire) => {
                        let mut st = wire.lock();
                        st.retired = true;
                        std::mem::take(&mut st.cmds)
                    }
                }
            }
            None => VecDeque::new(),
        };
        inner.settle(&self.shutdown, cmds, &outcome, &mut dials);
        dials
    }

    pub(crate) fn remove(&self, id: u64) {
        let mut inner = self.lock();
        inner.unroute(id);
        if inner.links.remove(&id).is_some_and(|e| e.anonymous_slot) {
            inner.referee_links = inner.referee_links.saturating_sub(1);
        }
    }

    /// Start an orderly close of every link to `agent`.
    ///
    /// An open link takes nothing new from this moment: a send after `end`
    /// goes to another link, behind the messages that were queued on this
    /// one and not yet encrypted, which move now, in order, as its close
    /// would move them. (What it already encrypted, it still writes.)
    /// Returns how many links there were, and the dials to start.
    pub(crate) fn end_agent(&self, agent: &str) -> (usize, Vec<DialOrder>) {
        let mut inner = self.lock();
        let ids: Vec<u64> = [false, true]
            .into_iter()
            .filter_map(|anonymous| inner.routes.get(&Route { agent: agent.to_owned(), anonymous }))
            .flatten()
            .copied()
            .collect();
        let mut dials = Vec::new();
        let mut n = 0;
        for id in ids {
            let Some(entry) = inner.links.get_mut(&id) else { continue };
            entry.cancel.cancel();
            n += 1;
            if entry.phase != Phase::Open {
                continue; // still opening: it ends, and what waits for it with it
            }
            entry.phase = Phase::Closing;
            let cmds = match &mut entry.mailbox {
                Mailbox::Waiting(queued) => std::mem::take(queued),
                Mailbox::Live(wire) => {
                    let mut st = wire.lock();
                    st.retired = true;
                    std::mem::take(&mut st.cmds)
                }
            };
            inner.unroute(id);
            inner.settle(&self.shutdown, cmds, &Retire::Requeue { cause: None }, &mut dials);
        }
        (n, dials)
    }

    /// Open links with what each has carried, and how many of ours are
    /// still being dialled or in their handshake.
    pub fn figures(&self) -> (Vec<(LinkInfo, Traffic)>, usize) {
        let inner = self.lock();
        let mut open = Vec::new();
        let mut dialling = 0;
        for e in inner.links.values() {
            match (&e.phase, &e.info, &e.mailbox) {
                (Phase::Open, Some(info), Mailbox::Live(wire)) => open.push((info.clone(), wire.lock().traffic())),
                (Phase::Opening, _, Mailbox::Waiting(_)) => dialling += 1,
                (Phase::Opening, _, Mailbox::Live(wire)) if wire.lock().conn.is_initiator() => dialling += 1,
                _ => {}
            }
        }
        (open, dialling)
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
    fn add(&mut self, shutdown: &CancellationToken, route: Option<Route>, mailbox: Mailbox) -> NewLink {
        let cancel = shutdown.child_token();
        self.next_id += 1;
        let id = self.next_id;
        if let Some(r) = &route {
            self.routes.entry(r.clone()).or_default().push(id);
        }
        self.links.insert(
            id,
            Entry { mailbox, phase: Phase::Opening, route, info: None, cancel: cancel.clone(), anonymous_slot: false },
        );
        NewLink { id, cancel }
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

    /// The link a message for `target` goes on: the link in use (the
    /// oldest open one), else one still opening (the newest); creates a
    /// link (and orders its dial) when there is none.
    fn route(
        &mut self,
        shutdown: &CancellationToken,
        target: &Target,
        opts: &SendOptions,
        dials: &mut Vec<DialOrder>,
    ) -> Result<u64> {
        if shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        if let Some(id) = target.link {
            return match self.links.get(&id) {
                Some(e) if e.phase != Phase::Closing => Ok(id),
                _ => Err(Error::ConnectionClosed),
            };
        }
        let agent = target
            .agent
            .clone()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::InvalidArgument("the address has no agent".into()))?;
        let route = Route { agent: agent.clone(), anonymous: opts.referee };
        let ids = self.routes.get(&route).map(Vec::as_slice).unwrap_or_default();
        let live = |id: &&u64, phase| self.links.get(id).is_some_and(|e| e.phase == phase);
        let in_use = ids.iter().find(|id| live(id, Phase::Open));
        if let Some(&id) = in_use.or_else(|| ids.iter().rev().find(|id| live(id, Phase::Opening))) {
            return Ok(id);
        }
        if target.host.is_none() || target.port.is_none() {
            return Err(Error::InvalidArgument(format!("no open link to {agent}, and no host and port to dial")));
        }
        let link = self.add(shutdown, Some(route), Mailbox::Waiting(VecDeque::new()));
        let id = link.id;
        dials.push(DialOrder { link, target: target.clone(), opts: opts.clone() });
        Ok(id)
    }

    /// Put a command on link `id`'s queue; hands it back when the link
    /// takes nothing more.
    fn push(&mut self, id: u64, cmd: Cmd) -> std::result::Result<(), Cmd> {
        match self.links.get_mut(&id).map(|e| &mut e.mailbox) {
            Some(Mailbox::Waiting(queued)) => {
                queued.push_back(cmd);
                Ok(())
            }
            Some(Mailbox::Live(wire)) => wire.push(cmd),
            None => Err(cmd),
        }
    }

    /// What was queued on a link that takes nothing more: to another link
    /// (`Requeue`, within the attempts allowed), or rejected.
    fn settle(
        &mut self,
        shutdown: &CancellationToken,
        cmds: VecDeque<Cmd>,
        outcome: &Retire,
        dials: &mut Vec<DialOrder>,
    ) {
        for cmd in cmds {
            match (cmd, outcome) {
                (Cmd::Send(mut out), Retire::Requeue { cause })
                    if out.attempts + 1 < MAX_ATTEMPTS && out.target.link.is_none() =>
                {
                    out.attempts += 1;
                    out.cause = cause.clone();
                    self.submit(shutdown, *out, dials);
                }
                (Cmd::Connect(w), Retire::Requeue { .. }) if w.target.link.is_none() => {
                    let Waiter { done, target, opts } = *w;
                    self.connect(shutdown, target, opts, done, dials);
                }
                (cmd, Retire::Requeue { cause }) => cmd.reject(cause.as_ref().unwrap_or(&Error::ConnectionClosed)),
                (cmd, Retire::Reject(err)) => cmd.reject(err),
            }
        }
    }

    fn submit(&mut self, shutdown: &CancellationToken, mut out: Outgoing, dials: &mut Vec<DialOrder>) {
        for _ in 0..MAX_ATTEMPTS {
            let id = match self.route(shutdown, &out.target, &out.opts, dials) {
                Ok(r) => r,
                // A message handed back by a closing link that has nowhere
                // else to go: the caller's arguments were fine; what ended
                // that link is the reason.
                Err(Error::InvalidArgument(_)) if out.attempts > 0 => {
                    out.done.complete(Err(out.cause.unwrap_or(Error::ConnectionClosed)));
                    return;
                }
                Err(e) => {
                    out.done.complete(Err(e));
                    return;
                }
            };
            match self.push(id, Cmd::Send(Box::new(out))) {
                Ok(()) => return,
                // The link takes nothing more; it wrote nothing of this message.
                Err(cmd) => {
                    self.unroute(id);
                    if let Some(e) = self.links.get_mut(&id) {
                        e.phase = Phase::Closing;
                    }
                    match cmd {
                        Cmd::Send(o) => out = *o,
                        Cmd::Connect(_) => return,
                    }
                }
            }
        }
        out.done.complete(Err(out.cause.unwrap_or(Error::ConnectionClosed)));
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
            Ok(id) => {
                if let Err(cmd) = self.push(id, Cmd::Connect(Box::new(Waiter { done, target, opts }))) {
                    cmd.reject(&Error::ConnectionClosed);
                }
            }
            Err(e) => {
                let _ = done.send(Err(e));
            }
        }
    }
}
