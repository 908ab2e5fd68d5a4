//! What travels to a link's task: messages to send (`Outgoing`), requests to
//! wait for the link to open (`Cmd::Connect`), and `Done`, which tells the
//! sender how its message ended, exactly once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::event::LinkInfo;
use crate::error::{Error, Result};
use crate::proto::Key;

/// Where to send: an agent's address, or one particular link.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub agent: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// The agent's X25519 key, when the caller knows it.
    pub key: Option<Key>,
    /// Send on this link only (how a referee answers an anonymous query).
    pub link: Option<u64>,
}

/// How to open a link, when one must be opened.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// First contact: IK with this one-time ticket.
    pub ticket: Option<Value>,
    /// Anonymous referee query (NK).
    pub referee: bool,
}

/// Who hears how a send ended. Told exactly once: by `complete`, or, if the
/// message is dropped on some path nobody foresaw, by the drop, as
/// `ConnectionClosed`. So no send is ever left unanswered. It also holds the
/// message's share of its agent's queue budget, given back when it settles.
pub struct Done {
    to: Option<DoneTo>,
    budget: Option<BudgetGuard>,
}

enum DoneTo {
    Oneshot(oneshot::Sender<Result<()>>),
    /// Results of many sends share one queue (the binding batches them into
    /// one call into JavaScript).
    Queue {
        id: u64,
        results: mpsc::UnboundedSender<(u64, Result<()>)>,
    },
}

impl Done {
    pub fn oneshot() -> (Self, oneshot::Receiver<Result<()>>) {
        let (tx, rx) = oneshot::channel();
        (Self { to: Some(DoneTo::Oneshot(tx)), budget: None }, rx)
    }

    pub fn queue(id: u64, results: mpsc::UnboundedSender<(u64, Result<()>)>) -> Self {
        Self { to: Some(DoneTo::Queue { id, results }), budget: None }
    }

    /// Hold this share of a queue budget until the send settles.
    pub(crate) fn hold(&mut self, budget: BudgetGuard) {
        self.budget = Some(budget);
    }

    pub fn complete(mut self, result: Result<()>) {
        self.fire(result);
    }

    /// Drop without telling anyone: the caller learned the outcome itself
    /// (a message written before `send` returned).
    pub fn disarm(mut self) {
        self.to = None;
        self.budget = None;
    }

    /// For a send reported by id: disarm it and give the id, so that the
    /// caller reports it (with others, in one go).
    pub fn take_id(&mut self) -> Option<u64> {
        match self.to {
            Some(DoneTo::Queue { id, .. }) => {
                self.to = None;
                self.budget = None;
                Some(id)
            }
            _ => None,
        }
    }

    fn fire(&mut self, result: Result<()>) {
        self.budget = None;
        match self.to.take() {
            Some(DoneTo::Oneshot(tx)) => {
                let _ = tx.send(result);
            }
            Some(DoneTo::Queue { id, results }) => {
                let _ = results.send((id, result));
            }
            None => {}
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        self.fire(Err(Error::ConnectionClosed));
    }
}

/// How many bytes may wait to be written, per agent (or per link, for a
/// message to one link): a peer that does not read, or a link that is slow,
/// makes further sends to it fail with `Backpressure` instead of growing a
/// queue without bound (docs/PROTOCOL.md §6).
pub(crate) struct Budgets {
    limit: usize,
    queued: Mutex<HashMap<String, usize>>,
}

/// Bytes taken from a budget; given back when dropped.
pub(crate) struct BudgetGuard {
    budgets: Arc<Budgets>,
    key: String,
    bytes: usize,
}

impl Budgets {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { limit, queued: Mutex::default() })
    }

    /// Take `bytes` for `key`, or refuse when they would pass the limit.
    pub fn take(self: &Arc<Self>, key: &str, bytes: usize) -> Result<BudgetGuard> {
        let mut q = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        let held = q.get(key).copied().unwrap_or(0);
        if held + bytes > self.limit {
            return Err(Error::Backpressure { agent: key.to_owned(), queued: held });
        }
        q.insert(key.to_owned(), held + bytes);
        Ok(BudgetGuard { budgets: self.clone(), key: key.to_owned(), bytes })
    }

    /// Bytes held now, by key.
    pub fn by_key(&self) -> HashMap<String, usize> {
        self.queued.lock().map(|q| q.clone()).unwrap_or_default()
    }
}

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        let mut q = self.budgets.queued.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = q.get_mut(&self.key) {
            *held = held.saturating_sub(self.bytes);
            if *held == 0 {
                q.remove(&self.key);
            }
        }
    }
}

/// A message on its way to a link.
pub(crate) struct Outgoing {
    pub data: Vec<u8>,
    pub done: Done,
    pub target: Target,
    pub opts: SendOptions,
    /// Links it was handed to that closed before writing it.
    pub attempts: u8,
    /// Why the last of those failed (`None`: it closed in order, or there
    /// was none): the reason it is rejected with if no link takes it.
    pub cause: Option<Error>,
}

/// Send ids as runs of consecutive ids, `(first, count)`, in their order:
/// the sends of a turn have consecutive ids and are mostly settled together.
/// Only what is consecutive is merged; each id is counted once per time it
/// appears.
pub fn id_runs(ids: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for id in ids {
        match out.last_mut() {
            Some((first, count)) if first.checked_add(*count) == Some(id) => *count += 1,
            _ => out.push((id, 1)),
        }
    }
    out
}

/// A request to hear when a link is open (the address lets a closing link
/// pass it on to the next one).
pub(crate) struct Waiter {
    pub done: oneshot::Sender<Result<LinkInfo>>,
    pub target: Target,
    pub opts: SendOptions,
}

/// What a link's queue carries. Boxed, so that a queue of these stays small
/// whatever each carries.
pub(crate) enum Cmd {
    Send(Box<Outgoing>),
    Connect(Box<Waiter>),
}

impl Cmd {
    /// Settle a command that will not be carried out.
    pub fn reject(self, err: &Error) {
        match self {
            Cmd::Send(out) => out.done.complete(Err(err.clone())),
            Cmd::Connect(w) => {
                let _ = w.done.send(Err(err.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::id_runs;

    #[test]
    fn ids_become_runs_of_consecutive_ids_in_their_order() {
        assert!(id_runs([]).is_empty());
        assert_eq!(id_runs([7]), vec![(7, 1)]);
        assert_eq!(id_runs(1..=500), vec![(1, 500)]);
        // A gap, a step back and a repeat each start a run: nothing is merged
        // that was not consecutive, and every id is counted once.
        assert_eq!(id_runs([1, 2, 3, 10, 11, 5, 5]), vec![(1, 3), (10, 2), (5, 1), (5, 1)]);
        assert_eq!(id_runs([u64::MAX - 1, u64::MAX, 0]), vec![(u64::MAX - 1, 2), (0, 1)]);
    }
}
