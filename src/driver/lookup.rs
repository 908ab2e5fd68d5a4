//! Where the node's knowledge of its peers plugs in: the core's questions
//! (`proto::Need`) go to a `crate::store::Store`, each under a deadline, and
//! any failure becomes `Answer::Failed` with its code, which refuses the
//! handshake that asked. The rules that judge the answers live in
//! `proto::policy`, not here.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::proto::{Answer, Need};
use crate::store::Store;

/// Ask `store` what `need` asks, waiting at most `deadline`.
pub(crate) async fn answer(store: Arc<dyn Store>, need: Need, deadline: Duration) -> Answer {
    let ask = async {
        match need {
            Need::PeerKey { agent } => store.peer_key(agent).await.map(Answer::Key),
            Need::Partner { agent } => {
                store.partner(agent).await.map(|p| Answer::Partner { allowed: p.allowed, key: p.key })
            }
            Need::Ticket { ticket, from } => store.check_ticket(ticket, from).await.map(Answer::Ticket),
        }
    };
    match tokio::time::timeout(deadline, ask).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => Answer::Failed(e),
        Err(_) => Answer::Failed(Error::LookupFailed("timed out".into())),
    }
}
