//! What travels to a link's task: messages to send (`Outgoing`), requests to
//! wait for the link to open (`Cmd::Connect`), and `Done`, which tells the
//! sender how its message ended, exactly once.

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
/// `ConnectionClosed`. So no send is ever left unanswered.
pub struct Done(Option<DoneTo>);

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
        (Self(Some(DoneTo::Oneshot(tx))), rx)
    }

    pub fn queue(id: u64, results: mpsc::UnboundedSender<(u64, Result<()>)>) -> Self {
        Self(Some(DoneTo::Queue { id, results }))
    }

    pub fn complete(mut self, result: Result<()>) {
        self.fire(result);
    }

    fn fire(&mut self, result: Result<()>) {
        match self.0.take() {
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

/// A message on its way to a link.
pub(crate) struct Outgoing {
    pub data: Vec<u8>,
    pub done: Done,
    pub target: Target,
    pub opts: SendOptions,
    /// Links it was handed to that closed before writing it.
    pub attempts: u8,
}

/// What a link's queue carries.
pub(crate) enum Cmd {
    Send(Outgoing),
    /// Answer once the link is open (the address lets a closing link pass
    /// the request on to the next one).
    Connect {
        done: oneshot::Sender<Result<LinkInfo>>,
        target: Target,
        opts: SendOptions,
    },
}

impl Cmd {
    /// Settle a command that will not be carried out.
    pub fn reject(self, err: &Error) {
        match self {
            Cmd::Send(out) => out.done.complete(Err(err.clone())),
            Cmd::Connect { done, .. } => {
                let _ = done.send(Err(err.clone()));
            }
        }
    }
}
