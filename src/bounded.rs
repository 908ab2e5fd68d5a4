//! A least-recently-used map with a cap that allocates as it fills.
//!
//! `lru::LruCache::new(cap)` reserves its whole table up front: a node's
//! replay table (100,000 keys) and caches then cost hundreds of KiB before
//! the first peer arrives, in every `NoisePeer` of a process. This one grows
//! with its contents and evicts the least recently used entry at the cap.

use std::borrow::Borrow;
use std::hash::Hash;

use lru::LruCache;

#[derive(Debug)]
pub struct BoundedLru<K: Hash + Eq, V> {
    map: LruCache<K, V>,
    cap: usize,
}

impl<K: Hash + Eq, V> BoundedLru<K, V> {
    /// At most `cap` entries (at least one).
    pub fn new(cap: usize) -> Self {
        Self { map: LruCache::unbounded(), cap: cap.max(1) }
    }

    /// Insert or replace, as the most recently used; evicts the least
    /// recently used entry when a new key would pass the cap.
    pub fn put(&mut self, key: K, value: V) -> Option<V> {
        if self.map.len() >= self.cap && !self.map.contains(&key) {
            self.map.pop_lru();
        }
        self.map.put(key, value)
    }

    /// The value, marked as recently used.
    pub fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    /// The value for `key`, made with `make` if absent (evicting at the cap).
    pub fn get_or_insert_mut(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if self.map.len() >= self.cap && !self.map.contains(&key) {
            self.map.pop_lru();
        }
        self.map.get_or_insert_mut(key, make)
    }

    /// The value, without marking it used.
    pub fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.peek(key)
    }

    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains(key)
    }

    pub fn pop<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.pop(key)
    }

    pub fn iter(&self) -> lru::Iter<'_, K, V> {
        self.map.iter()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forget everything, and give the memory back.
    pub fn clear(&mut self) {
        self.map = LruCache::unbounded();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_evicts_the_least_recently_used_at_its_cap() {
        let mut m = BoundedLru::new(2);
        m.put("a", 1);
        m.put("b", 2);
        assert_eq!(m.get("a"), Some(&1)); // "b" is now the least recently used
        m.put("c", 3);
        assert_eq!((m.len(), m.peek("b"), m.peek("a"), m.peek("c")), (2, None, Some(&1), Some(&3)));
        m.put("a", 10);
        assert_eq!(m.len(), 2, "replacing a key evicts nothing");
        *m.get_or_insert_mut("d", || 4) += 1;
        assert_eq!((m.peek("c"), m.peek("d")), (None, Some(&5)));
    }

    #[test]
    fn it_reserves_nothing_up_front() {
        let m: BoundedLru<u64, u64> = BoundedLru::new(100_000);
        assert!(m.is_empty());
        assert!(m.map.cap().get() > 100_000, "an unbounded map under the hood");
    }
}
