//! Live figures of a node, for an operator to poll (`Peer::stats`).
//!
//! Nothing here is on the message path: per-link figures live in each
//! link's `WireState` (updated under the lock the link takes anyway) and are
//! summed when asked; a link's figures join the node's totals when it ends.
//! Handshake outcomes are counted where every event passes
//! (`Shared::report`), before the rate gate, so a flood the gate summarises
//! is still counted one by one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::event::{EventKind, PeerEvent};
use crate::proto::Pattern;

/// Distinct reason codes kept apart; past this, the rest are summed under
/// `OTHER` (codes are a closed set, but a reason may carry a peer's text).
const MAX_REASONS: usize = 64;

/// Messages and bytes one way or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub messages_in: u64,
    pub bytes_in: u64,
    pub messages_out: u64,
    pub bytes_out: u64,
}

impl Traffic {
    pub fn add(&mut self, other: &Traffic) {
        self.messages_in += other.messages_in;
        self.bytes_in += other.bytes_in;
        self.messages_out += other.messages_out;
        self.bytes_out += other.bytes_out;
    }
}

/// Figures of one partner, over its open links.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerFigures {
    /// `None`: anonymous referee queries, taken together.
    pub agent: Option<String>,
    pub links: usize,
    pub traffic: Traffic,
    /// Bytes accepted by `send` for it and not yet written.
    pub queued_bytes: usize,
}

/// What `Peer::stats` reports beside the store's figures.
#[derive(Debug, Clone, Default)]
pub struct NodeFigures {
    /// Open links by pattern (`KK`, `IK`, `NK`).
    pub open: BTreeMap<&'static str, usize>,
    /// Connections we dialled that have not opened yet.
    pub dialling: usize,
    /// Handshakes that completed, by pattern, since the node started.
    pub accepted: BTreeMap<&'static str, u64>,
    /// Handshakes refused (by us or the other side), by reason code.
    pub refused: BTreeMap<String, u64>,
    /// Connections that failed otherwise (connect, protocol, timeouts), by reason.
    pub failed: BTreeMap<String, u64>,
    /// Open links that ended, by reason.
    pub closed: BTreeMap<String, u64>,
    /// Over the node's life: links that ended, plus those open now.
    pub traffic: Traffic,
    pub peers: Vec<PeerFigures>,
}

/// The counters kept while the node runs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    accepted: [AtomicU64; 3],
    outcomes: Mutex<Outcomes>,
    /// Traffic of links that have ended.
    ended: Mutex<Traffic>,
}

#[derive(Debug, Default)]
struct Outcomes {
    refused: BTreeMap<String, u64>,
    failed: BTreeMap<String, u64>,
    closed: BTreeMap<String, u64>,
}

fn pattern_index(p: Pattern) -> usize {
    match p {
        Pattern::KK => 0,
        Pattern::IK => 1,
        Pattern::NK => 2,
    }
}

const PATTERNS: [Pattern; 3] = [Pattern::KK, Pattern::IK, Pattern::NK];

fn bump(map: &mut BTreeMap<String, u64>, reason: Option<&str>) {
    let reason = reason.unwrap_or("UNKNOWN");
    if let Some(n) = map.get_mut(reason) {
        *n += 1;
    } else if map.len() < MAX_REASONS {
        map.insert(reason.to_owned(), 1);
    } else {
        *map.entry("OTHER".to_owned()).or_default() += 1;
    }
}

impl Counters {
    /// Count one event (every event, before any rate gate).
    pub fn event(&self, e: &PeerEvent) {
        if e.kind == EventKind::Open {
            if let Some(p) = e.pattern {
                self.accepted[pattern_index(p)].fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let mut o = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        let map = match e.kind {
            EventKind::Refused => &mut o.refused,
            EventKind::Close => &mut o.closed,
            _ => &mut o.failed,
        };
        bump(map, e.reason.as_deref());
    }

    /// A link ended: its traffic joins the node's totals.
    pub fn ended(&self, t: &Traffic) {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).add(t);
    }

    /// The counted part of the figures; the caller adds what is open now.
    pub fn snapshot(&self) -> NodeFigures {
        let o = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        NodeFigures {
            accepted: PATTERNS
                .iter()
                .map(|&p| (p.name(), self.accepted[pattern_index(p)].load(Ordering::Relaxed)))
                .collect(),
            refused: o.refused.clone(),
            failed: o.failed.clone(),
            closed: o.closed.clone(),
            traffic: *self.ended.lock().unwrap_or_else(|p| p.into_inner()),
            ..NodeFigures::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, pattern: Option<Pattern>, reason: Option<&str>) -> PeerEvent {
        PeerEvent {
            kind,
            link: 1,
            agent: None,
            remote: None,
            pattern,
            initiator: false,
            reason: reason.map(str::to_owned),
            message: None,
            clean: true,
            written: 0,
            suppressed: 0,
        }
    }

    #[test]
    fn counts_outcomes_by_pattern_and_reason_with_a_bounded_number_of_reasons() {
        let c = Counters::default();
        c.event(&event(EventKind::Open, Some(Pattern::KK), None));
        c.event(&event(EventKind::Open, Some(Pattern::KK), None));
        c.event(&event(EventKind::Open, Some(Pattern::NK), None));
        c.event(&event(EventKind::Refused, None, Some("ERR_UNKNOWN_PEER")));
        c.event(&event(EventKind::Close, Some(Pattern::KK), Some("IDLE_TIMEOUT")));
        for i in 0..200 {
            c.event(&event(EventKind::Error, None, Some(&format!("WEIRD_{i}"))));
        }
        c.ended(&Traffic { messages_in: 2, bytes_in: 20, messages_out: 3, bytes_out: 30 });
        let s = c.snapshot();
        assert_eq!(s.accepted["KK"], 2);
        assert_eq!(s.accepted["NK"], 1);
        assert_eq!(s.accepted["IK"], 0);
        assert_eq!(s.refused["ERR_UNKNOWN_PEER"], 1);
        assert_eq!(s.closed["IDLE_TIMEOUT"], 1);
        assert_eq!(s.failed.len(), MAX_REASONS + 1, "bounded, with OTHER");
        assert_eq!(s.failed.values().sum::<u64>(), 200, "nothing lost");
        assert_eq!(s.traffic.messages_out, 3);
    }
}
