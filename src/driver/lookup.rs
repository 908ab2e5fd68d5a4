//! The seam where the node's knowledge of its peers plugs in: a `Store`
//! answers the core's questions (`proto::Need`), each under a deadline, and
//! any failure becomes `Answer::Failed`, which the core counts as a refusal.
//! The rules that judge the answers live in `proto::policy`, not here.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::proto::{Address, Answer, Key, Need};

/// Answers "whose key is this" and "is this ticket good".
/// Implementations: JavaScript callbacks (the binding), later the database.
pub trait Store: Send + Sync + 'static {
    /// The static key of a partner agent; `None` when it is not a partner.
    fn peer_key(&self, agent: String) -> BoxFuture<'static, Result<Option<Key>, String>>;
    /// Whether a one-time ticket may open a link for `from`.
    fn check_ticket(&self, ticket: Value, from: Address) -> BoxFuture<'static, Result<bool, String>>;
}

/// Ask `store` what `need` asks, waiting at most `deadline`.
pub(crate) async fn answer(store: &dyn Store, need: Need, deadline: Duration) -> Answer {
    match need {
        Need::PeerKey { agent } => match tokio::time::timeout(deadline, store.peer_key(agent)).await {
            Ok(Ok(key)) => Answer::Key(key),
            Ok(Err(e)) => Answer::Failed(e),
            Err(_) => Answer::Failed("timed out".into()),
        },
        Need::Ticket { ticket, from } => match tokio::time::timeout(deadline, store.check_ticket(ticket, from)).await {
            Ok(Ok(ok)) => Answer::Ticket(ok),
            Ok(Err(e)) => Answer::Failed(e),
            Err(_) => Answer::Failed("timed out".into()),
        },
    }
}
