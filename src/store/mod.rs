//! Decisions about peers: whose key is this, may this agent connect, is this
//! ticket good (docs/PROTOCOL.md §4). A `Store` answers; the driver asks it
//! under a deadline on the core's behalf, and `proto::policy` judges the
//! answers. Stores know nothing of frames, letters or napi.
//!
//! - `pg`: the node's PostgreSQL (MyCHIPs' schema by default), with a cache
//!   (`cache`) kept true by `LISTEN/NOTIFY` on a connection of its own
//!   (`listen`);
//! - JavaScript callbacks (the binding's `JsStore`);
//! - `Split`: one store for keys and partners, another for tickets.
#![forbid(unsafe_code)]

pub mod cache;
mod listen;
pub mod pg;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::error::Result;
use crate::proto::{Address, Key};

/// What a store knows about an agent that calls with `N` (KK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Partner {
    /// It may open a link by key: it shares a live relation (a tally) with us.
    pub allowed: bool,
    /// The key the store holds for it, if any.
    pub key: Option<Key>,
}

/// Counters an operator can read to see a store work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Lookups answered from the cache.
    pub cache_hits: u64,
    /// Lookups that asked the database (or the application, for callbacks).
    pub lookups: u64,
    /// Lookups that failed (store unavailable, query error, timeout).
    pub failures: u64,
    /// Times the cache was dropped (wholly or in part) by a notification or a reconnect.
    pub invalidations: u64,
    /// Times the notification connection was (re)established.
    pub listens: u64,
    /// The notification connection is up, so the cache is in use.
    pub listening: bool,
}

impl std::ops::Add for StoreStats {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            cache_hits: self.cache_hits + o.cache_hits,
            lookups: self.lookups + o.lookups,
            failures: self.failures + o.failures,
            invalidations: self.invalidations + o.invalidations,
            listens: self.listens + o.listens,
            listening: self.listening || o.listening,
        }
    }
}

/// Answers the core's questions about peers. Errors carry their code:
/// `StoreUnavailable` for a database that is down or slow, `LookupFailed`
/// for anything else (a query the database refuses, an unusable answer);
/// either refuses the handshake that asked.
pub trait Store: Send + Sync + 'static {
    /// The key the node holds for `agent` (IK callers, and agents we dial).
    /// `None`: it holds none, and the key the agent id names is used.
    fn peer_key(&self, agent: String) -> BoxFuture<'static, Result<Option<Key>>>;
    /// Whether `agent` may open a link by key (KK), and the key held for it.
    fn partner(&self, agent: String) -> BoxFuture<'static, Result<Partner>>;
    /// Whether a one-time ticket may open a link for `from` (IK).
    fn check_ticket(&self, ticket: Value, from: Address) -> BoxFuture<'static, Result<bool>>;
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }
    /// The store keeps its own cache, refusals included (so the driver need not).
    fn caches(&self) -> bool {
        false
    }
    /// The node is closing: stop background work.
    fn shutdown(&self) {}
}

/// Keys and partners from one store, tickets from another (for example the
/// database for keys and tallies, a JavaScript callback for tickets).
pub struct Split {
    pub keys: Arc<dyn Store>,
    pub tickets: Arc<dyn Store>,
}

impl Store for Split {
    fn peer_key(&self, agent: String) -> BoxFuture<'static, Result<Option<Key>>> {
        self.keys.peer_key(agent)
    }

    fn partner(&self, agent: String) -> BoxFuture<'static, Result<Partner>> {
        self.keys.partner(agent)
    }

    fn check_ticket(&self, ticket: Value, from: Address) -> BoxFuture<'static, Result<bool>> {
        self.tickets.check_ticket(ticket, from)
    }

    fn stats(&self) -> StoreStats {
        if Arc::ptr_eq(&self.keys, &self.tickets) {
            self.keys.stats()
        } else {
            self.keys.stats() + self.tickets.stats()
        }
    }

    fn caches(&self) -> bool {
        self.keys.caches()
    }

    fn shutdown(&self) {
        self.keys.shutdown();
        self.tickets.shutdown();
    }
}
