//! Replay protection for handshake message 1 (docs/PROTOCOL.md §5).
//!
//! Noise gives the responder no fresh contribution in message 1, so whoever
//! captured an `I` or `K` could send it again. A native initiator puts a
//! strictly increasing timestamp in it; we keep, per initiator static key, the
//! newest timestamp we accepted and refuse any message 1 that is not newer —
//! the way WireGuard refuses replayed initiations.
//!
//! Entries are recorded only for handshakes that were accepted (the key was a
//! partner's, or the ticket was good), so strangers cannot fill the table. It
//! is still bounded: past `capacity` the oldest entry is forgotten, which
//! re-opens a replay window only for that key's old, already-spent messages.

use std::collections::{HashMap, VecDeque};

use super::keys::Key;

/// Default number of initiator keys remembered.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug)]
pub struct ReplayTable {
    newest: HashMap<Key, u64>,
    order: VecDeque<Key>,
    capacity: usize,
}

impl Default for ReplayTable {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl ReplayTable {
    pub fn new(capacity: usize) -> Self {
        Self { newest: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// True when `timestamp` is newer than anything accepted from `key`.
    pub fn is_fresh(&self, key: &Key, timestamp: u64) -> bool {
        self.newest.get(key).is_none_or(|&newest| timestamp > newest)
    }

    /// Remember an accepted handshake. Returns false (and records nothing) if a
    /// concurrent handshake from the same key already recorded a newer one.
    pub fn record(&mut self, key: Key, timestamp: u64) -> bool {
        if !self.is_fresh(&key, timestamp) {
            return false;
        }
        if self.newest.insert(key, timestamp).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.newest.remove(&old);
                }
            }
        }
        true
    }

    pub fn len(&self) -> usize {
        self.newest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.newest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_strictly_newer_timestamps_pass() {
        let mut t = ReplayTable::default();
        let k = [1u8; 32];
        assert!(t.is_fresh(&k, 5));
        assert!(t.record(k, 5));
        assert!(!t.is_fresh(&k, 5), "the same message again");
        assert!(!t.is_fresh(&k, 4), "an older one");
        assert!(t.is_fresh(&k, 6));
        assert!(t.is_fresh(&[2u8; 32], 1), "other keys are independent");
        assert!(!t.record(k, 3));
    }

    #[test]
    fn bounded_by_capacity() {
        let mut t = ReplayTable::new(2);
        for i in 0..5u8 {
            t.record([i; 32], 10);
        }
        assert_eq!(t.len(), 2);
        assert!(!t.is_fresh(&[4u8; 32], 10));
        assert!(t.is_fresh(&[0u8; 32], 10), "the oldest was forgotten");
    }
}
