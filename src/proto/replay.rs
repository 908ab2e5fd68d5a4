//! Replay protection for handshake message 1 (docs/PROTOCOL.md §5, §5a).
//!
//! Noise gives the responder no fresh contribution in message 1, so whoever
//! captured an `I` or `K` could send it again. A native initiator puts a
//! strictly increasing timestamp (microseconds since the epoch) in it; we
//! keep, per initiator static key, the newest timestamp we accepted and
//! refuse any message 1 that is not newer — the way WireGuard refuses
//! replayed initiations.
//!
//! The table is a cheap filter, not the defence (key confirmation is): a
//! node that restarts forgets it. So it also refuses any timestamp from
//! before the process started (less a margin for clocks that differ), and
//! a key it has seen native is never accepted as legacy again (the downgrade
//! would reopen replays).
//!
//! Entries are recorded only for handshakes that were accepted (the key was a
//! partner's, or the ticket was good), so strangers cannot fill the table. It
//! is still bounded: past `capacity` the least recently used entry is
//! forgotten, which re-opens a replay window only for that key's old,
//! already-spent messages.

use crate::bounded::BoundedLru;

use super::keys::Key;

/// Default number of initiator keys remembered.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug)]
pub struct ReplayTable {
    newest: BoundedLru<Key, u64>,
    /// Timestamps at or below this are refused from every key.
    floor: u64,
}

impl Default for ReplayTable {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, 0)
    }
}

impl ReplayTable {
    /// `floor`: the oldest timestamp still taken (the process start, less a
    /// margin for clock differences between nodes).
    pub fn new(capacity: usize, floor: u64) -> Self {
        Self { newest: BoundedLru::new(capacity), floor }
    }

    /// True when `timestamp` is newer than the floor and than anything
    /// accepted from `key`.
    pub fn is_fresh(&self, key: &Key, timestamp: u64) -> bool {
        timestamp > self.floor && self.newest.peek(key).is_none_or(|&newest| timestamp > newest)
    }

    /// Remember an accepted native handshake. Returns false (and records
    /// nothing) if it is not fresh, for example because a concurrent
    /// handshake from the same key already recorded a newer one.
    pub fn record(&mut self, key: Key, timestamp: u64) -> bool {
        if !self.is_fresh(&key, timestamp) {
            return false;
        }
        self.newest.put(key, timestamp);
        true
    }

    /// The key was accepted native before: a legacy handshake from it is a downgrade.
    pub fn seen_native(&self, key: &Key) -> bool {
        self.newest.contains(key)
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
        assert!(t.seen_native(&k) && !t.seen_native(&[2u8; 32]));
    }

    #[test]
    fn nothing_from_before_the_floor_passes() {
        let mut t = ReplayTable::new(10, 1000);
        assert!(!t.is_fresh(&[1u8; 32], 1000), "a message from before a restart");
        assert!(!t.record([1u8; 32], 999));
        assert!(t.record([1u8; 32], 1001));
    }

    #[test]
    fn bounded_by_capacity_least_recently_used_first() {
        let mut t = ReplayTable::new(2, 0);
        t.record([0u8; 32], 10);
        t.record([1u8; 32], 10);
        t.record([0u8; 32], 11); // key 0 is now the most recently used
        t.record([2u8; 32], 10);
        assert_eq!(t.len(), 2);
        assert!(!t.is_fresh(&[0u8; 32], 11), "kept: used recently");
        assert!(t.is_fresh(&[1u8; 32], 10), "forgotten: the least recently used");
    }
}
