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

/// Recent "not a partner" answers, for stores that keep no cache of their
/// own: a stranger who repeats the same `N` costs one lookup per `ttl`, not
/// one per connection (docs/PROTOCOL.md §6). Bounded; least recently used go.
pub(crate) struct Refusals {
    recent: std::sync::Mutex<crate::bounded::BoundedLru<String, std::time::Instant>>,
    ttl: Duration,
}

/// Agents remembered as refused.
const REFUSALS: usize = 4096;

impl Refusals {
    pub fn new(ttl: Duration) -> Self {
        Self { recent: std::sync::Mutex::new(crate::bounded::BoundedLru::new(REFUSALS)), ttl }
    }

    /// The answer to `need` if it was "no" a moment ago.
    pub fn recall(&self, need: &Need, now: std::time::Instant) -> Option<Answer> {
        let Need::Partner { agent } = need else { return None };
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        match recent.get(agent) {
            Some(&until) if now < until => Some(Answer::Partner { allowed: false, key: None }),
            Some(_) => {
                recent.pop(agent);
                None
            }
            None => None,
        }
    }

    /// Remember a "no" to `need`.
    pub fn note(&self, need: &Need, answer: &Answer, now: std::time::Instant) {
        if let (Need::Partner { agent }, Answer::Partner { allowed: false, .. }) = (need, answer) {
            self.recent.lock().unwrap_or_else(|p| p.into_inner()).put(agent.clone(), now + self.ttl);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_recalled_for_its_ttl_only() {
        let r = Refusals::new(Duration::from_secs(1));
        let t = std::time::Instant::now();
        let need = Need::Partner { agent: "x".into() };
        assert_eq!(r.recall(&need, t), None);
        r.note(&need, &Answer::Partner { allowed: true, key: None }, t);
        assert_eq!(r.recall(&need, t), None, "a yes is not remembered");
        r.note(&need, &Answer::Partner { allowed: false, key: None }, t);
        assert_eq!(r.recall(&need, t), Some(Answer::Partner { allowed: false, key: None }));
        assert_eq!(r.recall(&need, t + Duration::from_secs(2)), None, "forgotten after its ttl");
        assert_eq!(r.recall(&Need::PeerKey { agent: "x".into() }, t), None, "keys are not refusals");
    }
}
