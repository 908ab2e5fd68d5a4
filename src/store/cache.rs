//! The store's cache of keys and partner decisions: pure, with time passed
//! in, so its rules are tested without a database.
//!
//! Rules:
//! - entries live at most `ttl`, and the cache holds at most `capacity`
//!   entries of each kind (least recently used go first);
//! - a change to tallies drops every partner decision, and every "no key"
//!   (a new partner usually comes with a new agent row); a change to agents
//!   drops every key; a reconnect of the notification connection drops all;
//! - while the notification connection is down the cache is not used at
//!   all, since invalidations would be missed;
//! - an answer read from the database is kept only if no invalidation came
//!   while it was being read (`Generation`), so a lookup that started before
//!   a change never stores what the change made stale;
//! - tickets are never cached.

use std::time::{Duration, Instant};

use crate::bounded::BoundedLru;

use crate::proto::Key;

/// Default for how long an entry lives.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Default bound on entries of each kind.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// The cache's state when a lookup started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

/// What changed in the database, as its notifications tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Tallies,
    Agents,
    /// Anything else, or a payload we cannot read: drop everything.
    Unknown,
}

pub struct Cache {
    keys: BoundedLru<String, (Option<Key>, Instant)>,
    partners: BoundedLru<String, (bool, Instant)>,
    ttl: Duration,
    generation: u64,
    live: bool,
}

impl Cache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { keys: BoundedLru::new(capacity), partners: BoundedLru::new(capacity), ttl, generation: 0, live: false }
    }

    /// Use the cache (the notification connection is up) or not. Either way
    /// what it held is dropped: it may have missed notifications.
    pub fn set_live(&mut self, live: bool) {
        self.clear();
        self.live = live;
    }

    pub fn is_live(&self) -> bool {
        self.live
    }

    pub fn generation(&self) -> Generation {
        Generation(self.generation)
    }

    /// A cached key answer (`Some(None)`: cached as "no key").
    pub fn key(&mut self, agent: &str, now: Instant) -> Option<Option<Key>> {
        if !self.live {
            return None;
        }
        Self::fresh(&mut self.keys, agent, now)
    }

    pub fn partner(&mut self, agent: &str, now: Instant) -> Option<bool> {
        if !self.live {
            return None;
        }
        Self::fresh(&mut self.partners, agent, now)
    }

    pub fn put_key(&mut self, agent: &str, key: Option<Key>, since: Generation, now: Instant) {
        if self.live && since.0 == self.generation {
            self.keys.put(agent.to_owned(), (key, now + self.ttl));
        }
    }

    pub fn put_partner(&mut self, agent: &str, allowed: bool, since: Generation, now: Instant) {
        if self.live && since.0 == self.generation {
            self.partners.put(agent.to_owned(), (allowed, now + self.ttl));
        }
    }

    /// The database says something changed.
    pub fn changed(&mut self, change: Change) {
        self.generation += 1;
        match change {
            Change::Tallies => {
                self.partners.clear();
                let unknown: Vec<String> =
                    self.keys.iter().filter(|(_, (k, _))| k.is_none()).map(|(a, _)| a.clone()).collect();
                for agent in unknown {
                    self.keys.pop(&agent);
                }
            }
            Change::Agents => self.keys.clear(),
            Change::Unknown => self.clear(),
        }
    }

    fn clear(&mut self) {
        self.generation += 1;
        self.keys.clear();
        self.partners.clear();
    }

    fn fresh<V: Copy>(map: &mut BoundedLru<String, (V, Instant)>, agent: &str, now: Instant) -> Option<V> {
        match map.get(agent) {
            Some(&(v, expires)) if now < expires => Some(v),
            Some(_) => {
                map.pop(agent);
                None
            }
            None => None,
        }
    }
}

/// Read a `mychips_admin`-style payload: `{"target":"tallies", ...}`.
pub fn change_of(payload: &str) -> Change {
    let target = serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v.get("target").and_then(|t| t.as_str()).map(str::to_owned));
    match target.as_deref() {
        Some("tallies") => Change::Tallies,
        Some("agents") => Change::Agents,
        _ => Change::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: Key = [7; 32];

    fn live() -> (Cache, Instant) {
        let mut c = Cache::new(Duration::from_secs(10), 3);
        c.set_live(true);
        (c, Instant::now())
    }

    #[test]
    fn entries_are_kept_until_their_ttl() {
        let (mut c, t) = live();
        let g = c.generation();
        c.put_key("a", Some(K), g, t);
        c.put_partner("a", true, g, t);
        assert_eq!(c.key("a", t + Duration::from_secs(9)), Some(Some(K)));
        assert_eq!(c.partner("a", t + Duration::from_secs(9)), Some(true));
        assert_eq!(c.key("a", t + Duration::from_secs(10)), None);
        assert_eq!(c.partner("a", t + Duration::from_secs(11)), None);
        assert_eq!(c.key("b", t), None, "never asked");
    }

    #[test]
    fn a_tally_change_drops_decisions_and_unknown_keys_only() {
        let (mut c, t) = live();
        let g = c.generation();
        c.put_key("known", Some(K), g, t);
        c.put_key("stranger", None, g, t);
        c.put_partner("known", true, g, t);
        c.changed(Change::Tallies);
        assert_eq!(c.partner("known", t), None);
        assert_eq!(c.key("stranger", t), None);
        assert_eq!(c.key("known", t), Some(Some(K)));
        c.changed(Change::Agents);
        assert_eq!(c.key("known", t), None);
    }

    #[test]
    fn an_answer_read_across_a_change_is_not_kept() {
        let (mut c, t) = live();
        let before = c.generation();
        c.changed(Change::Tallies); // arrives while the query runs
        c.put_partner("a", true, before, t);
        assert_eq!(c.partner("a", t), None, "stale: the tally may be void by now");
        c.put_partner("a", false, c.generation(), t);
        assert_eq!(c.partner("a", t), Some(false));
    }

    #[test]
    fn nothing_is_used_while_notifications_are_down_and_a_reconnect_forgets_all() {
        let mut c = Cache::new(Duration::from_secs(10), 3);
        let t = Instant::now();
        c.put_key("a", Some(K), c.generation(), t);
        assert_eq!(c.key("a", t), None, "not live yet");
        c.set_live(true);
        c.put_key("a", Some(K), c.generation(), t);
        assert_eq!(c.key("a", t), Some(Some(K)));
        c.set_live(false);
        assert_eq!(c.key("a", t), None);
        c.set_live(true);
        assert_eq!(c.key("a", t), None, "a reconnect starts empty");
    }

    #[test]
    fn capacity_is_bounded_least_recently_used_first() {
        let (mut c, t) = live();
        let g = c.generation();
        for a in ["a", "b", "c"] {
            c.put_partner(a, true, g, t);
        }
        assert_eq!(c.partner("a", t), Some(true)); // a is now the most recent
        c.put_partner("d", true, g, t);
        assert_eq!(c.partner("b", t), None, "b was the least recently used");
        assert_eq!(c.partner("a", t), Some(true));
    }

    #[test]
    fn payloads_name_what_changed() {
        assert_eq!(change_of(r#"{"target":"tallies", "oper":"UPDATE", "time":"x"}"#), Change::Tallies);
        assert_eq!(change_of(r#"{"target":"agents","oper":"INSERT"}"#), Change::Agents);
        assert_eq!(change_of(r#"{"target":"users","oper":"INSERT"}"#), Change::Unknown);
        assert_eq!(change_of("not json"), Change::Unknown);
    }
}
