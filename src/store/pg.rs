//! The node's PostgreSQL as a `Store`: a small pool of connections
//! (deadpool), prepared statements, a deadline on every lookup, and a cache
//! that `LISTEN/NOTIFY` keeps true (`listen`). The three questions are SQL
//! the operator may replace; the defaults work on MyCHIPs' schema.
//!
//! Fails closed: a database that is down or slow gives `StoreUnavailable`
//! within `timeout`, so the handshake that asked is refused before its own
//! deadline; nothing waits on it longer, and the pool reconnects by itself.
//! A query the database refuses (a wrong column, no privilege) gives
//! `LookupFailed` with the server's reason: waiting will not mend it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use futures::future::BoxFuture;
use serde_json::Value;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row};
use tokio_util::sync::CancellationToken;

use super::cache::{Cache, DEFAULT_CAPACITY, DEFAULT_TTL};
use super::{listen, Partner, Store, StoreStats};
use crate::error::{Error, Result};
use crate::proto::{keys, Address, Key};

/// The key an agent id names: `mychips.agents.agent_key` (its Ed25519 public
/// key, filled from the id by a MyCHIPs trigger). `$1` the agent; `$2`, if
/// used, our agent.
pub const DEFAULT_KEY_QUERY: &str = "select agent_key from mychips.agents where agent = $1";
/// A caller may connect by key when it shares a tally with the agent we
/// serve in one of the allowed statuses: `$1` the caller (`part_agent`),
/// `$2` our agent (`hold_agent`), `$3` the statuses.
pub const DEFAULT_PARTNER_QUERY: &str = "select exists (select 1 from mychips.tallies \
     where part_agent = $1 and hold_agent = $2 and status = any($3))";
/// Partners talk over tallies in every status but `void` (docs/PROTOCOL.md §4).
pub const DEFAULT_STATUSES: [&str; 4] = ["draft", "offer", "open", "close"];
/// Checks a ticket without using it up, as MyCHIPs' own peer server does
/// (its tally logic consumes the token later): `$1` the token, `$2` the
/// whole ticket (jsonb), `$3` the caller's agent.
pub const DEFAULT_TICKET_QUERY: &str = "select mychips.token_valid($1)";
/// Checks and uses up a one-time token in one statement (`consumeTickets`),
/// for nodes whose tally logic does not consume tokens itself.
pub const CONSUMING_TICKET_QUERY: &str = "with spent as (update mychips.tokens set used = current_timestamp \
     where token = $1 and not reuse and used is null and expires > current_timestamp returning 1) \
     select exists (select 1 from spent) or exists (select 1 from mychips.tokens \
     where token = $1 and reuse and expires > current_timestamp)";
/// The channel MyCHIPs notifies on after changes to tallies (and users).
pub const DEFAULT_ADMIN_CHANNEL: &str = "mychips_admin";
/// The channel of the optional trigger on `mychips.agents` (sql/agents-notify.sql).
pub const DEFAULT_AGENTS_CHANNEL: &str = "mychips_agents";
/// Default deadline of one lookup: pool wait plus query.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of pooled connections.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// What the bytes in the key column are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// An Ed25519 public key (MyCHIPs' `agent_key`): it must be the key the
    /// agent id encodes, and its X25519 form is used.
    Ed25519,
    /// An X25519 key, used as it is.
    X25519,
}

#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://user:pass@host:port/db` or `host=... dbname=...`.
    pub url: String,
    /// The agent we serve (`hold_agent`).
    pub agent: String,
    pub pool_size: usize,
    /// Deadline of one lookup; also the server's statement timeout.
    pub timeout: Duration,
    pub cache_ttl: Duration,
    pub cache_capacity: usize,
    pub key_query: String,
    pub partner_query: String,
    pub ticket_query: String,
    pub statuses: Vec<String>,
    pub key_format: KeyFormat,
    pub admin_channel: String,
    pub agents_channel: String,
}

impl PgConfig {
    /// MyCHIPs' defaults for the node that serves `agent`.
    pub fn new(url: impl Into<String>, agent: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            agent: agent.into(),
            pool_size: DEFAULT_POOL_SIZE,
            timeout: DEFAULT_TIMEOUT,
            cache_ttl: DEFAULT_TTL,
            cache_capacity: DEFAULT_CAPACITY,
            key_query: DEFAULT_KEY_QUERY.into(),
            partner_query: DEFAULT_PARTNER_QUERY.into(),
            ticket_query: DEFAULT_TICKET_QUERY.into(),
            statuses: DEFAULT_STATUSES.iter().map(|s| (*s).to_owned()).collect(),
            key_format: KeyFormat::Ed25519,
            admin_channel: DEFAULT_ADMIN_CHANNEL.into(),
            agents_channel: DEFAULT_AGENTS_CHANNEL.into(),
        }
    }
}

#[derive(Default)]
pub(super) struct Counters {
    pub cache_hits: AtomicU64,
    pub lookups: AtomicU64,
    pub failures: AtomicU64,
    pub invalidations: AtomicU64,
    pub listens: AtomicU64,
}

pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: PgConfig,
    pool: Pool,
    cache: Arc<Mutex<Cache>>,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
}

impl PgStore {
    /// A store on the database at `cfg.url`. Connects lazily: a database that
    /// is down now makes lookups fail closed until it is up. Starts the
    /// notification task, so it must run inside the tokio runtime.
    pub fn start(cfg: PgConfig) -> Result<Self> {
        let mut pg: tokio_postgres::Config =
            cfg.url.parse().map_err(|e| Error::InvalidArgument(format!("database connection string: {e}")))?;
        let ms = cfg.timeout.as_millis();
        pg.options(format!("-c statement_timeout={ms}"));
        pg.connect_timeout(cfg.timeout);
        pg.application_name("mychips-noise");
        pg.keepalives(true).keepalives_idle(Duration::from_secs(30));
        let manager =
            Manager::from_config(pg.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(cfg.pool_size)
            .wait_timeout(Some(cfg.timeout))
            .create_timeout(Some(cfg.timeout))
            .recycle_timeout(Some(cfg.timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::InvalidArgument(format!("database pool: {e}")))?;
        let inner = Arc::new(Inner {
            cache: Arc::new(Mutex::new(Cache::new(cfg.cache_ttl, cfg.cache_capacity))),
            counters: Arc::default(),
            shutdown: CancellationToken::new(),
            pool,
            cfg,
        });
        let channels = vec![inner.cfg.admin_channel.clone(), inner.cfg.agents_channel.clone()];
        tokio::spawn(listen::run(pg, channels, inner.cache.clone(), inner.counters.clone(), inner.shutdown.clone()));
        Ok(Self { inner })
    }
}

impl Store for PgStore {
    fn peer_key(&self, agent: String) -> BoxFuture<'static, Result<Option<Key>>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.key(&agent).await })
    }

    fn partner(&self, agent: String) -> BoxFuture<'static, Result<Partner>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            // Both questions at once: two statements pipelined on the pool.
            let (key, allowed) = futures::join!(inner.key(&agent), inner.allowed(&agent));
            Ok(Partner { allowed: allowed?, key: key? })
        })
    }

    fn check_ticket(&self, ticket: Value, from: Address) -> BoxFuture<'static, Result<bool>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.ticket(ticket, from).await })
    }

    fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        let n = |v: &AtomicU64| v.load(Ordering::Relaxed);
        StoreStats {
            cache_hits: n(&c.cache_hits),
            lookups: n(&c.lookups),
            failures: n(&c.failures),
            invalidations: n(&c.invalidations),
            listens: n(&c.listens),
            listening: self.inner.cache().is_live(),
        }
    }

    fn caches(&self) -> bool {
        true
    }

    fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.pool.close();
    }
}

impl Inner {
    fn cache(&self) -> MutexGuard<'_, Cache> {
        // The cache holds no invariant a panic could break half-way.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hit(&self) {
        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    async fn key(&self, agent: &str) -> Result<Option<Key>> {
        if let Some(k) = self.cache().key(agent, Instant::now()) {
            self.hit();
            return Ok(k);
        }
        let since = self.cache().generation();
        let agent_s = agent.to_owned();
        let our = self.cfg.agent.clone();
        let row =
            self.query("key", &self.cfg.key_query, move |n| params(n, vec![Box::new(agent_s), Box::new(our)])).await?;
        let key = self.key_from(agent, row.as_ref())?;
        self.cache().put_key(agent, key, since, Instant::now());
        Ok(key)
    }

    async fn allowed(&self, agent: &str) -> Result<bool> {
        if let Some(ok) = self.cache().partner(agent, Instant::now()) {
            self.hit();
            return Ok(ok);
        }
        let since = self.cache().generation();
        let (agent_s, our, statuses) = (agent.to_owned(), self.cfg.agent.clone(), self.cfg.statuses.clone());
        let row = self
            .query("partner", &self.cfg.partner_query, move |n| {
                params(n, vec![Box::new(agent_s), Box::new(our), Box::new(statuses)])
            })
            .await?;
        let ok = truth(row.as_ref(), "partner")?;
        self.cache().put_partner(agent, ok, since, Instant::now());
        Ok(ok)
    }

    async fn ticket(&self, ticket: Value, from: Address) -> Result<bool> {
        // A MyCHIPs ticket is an object whose `token` is what the database
        // knows; a bare string is taken as the token itself.
        let token = match &ticket {
            Value::String(s) => s.clone(),
            Value::Object(m) => match m.get("token") {
                Some(Value::String(s)) => s.clone(),
                _ => return Ok(false),
            },
            _ => return Ok(false),
        };
        let row = self
            .query("ticket", &self.cfg.ticket_query, move |n| {
                params(n, vec![Box::new(token), Box::new(ticket), Box::new(from.agent)])
            })
            .await?;
        truth(row.as_ref(), "ticket")
    }

    /// Run one statement (the `what` query) under the lookup deadline: the
    /// first row, if any.
    async fn query(
        &self,
        what: &str,
        sql: &str,
        args: impl FnOnce(usize) -> Vec<Box<dyn ToSql + Sync + Send>>,
    ) -> Result<Option<Row>> {
        self.counters.lookups.fetch_add(1, Ordering::Relaxed);
        let run = async {
            let client: Object = self.pool.get().await.map_err(|e| unavailable(format!("no connection: {e}")))?;
            let stmt = client.prepare_cached(sql).await.map_err(|e| statement_failed(what, &e))?;
            let args = args(stmt.params().len());
            let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
            client.query_opt(&stmt, &refs).await.map_err(|e| statement_failed(what, &e))
        };
        let result = match tokio::time::timeout(self.cfg.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(unavailable(format!("no answer within {} ms", self.cfg.timeout.as_millis()))),
        };
        if result.is_err() {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// The X25519 key from the key column (bytea, or base64url text).
    fn key_from(&self, agent: &str, row: Option<&Row>) -> Result<Option<Key>> {
        let Some(row) = row else { return Ok(None) };
        let bytes: Option<Vec<u8>> = match row.columns().first().map(|c| c.type_().clone()) {
            Some(Type::BYTEA) => row.try_get(0).map_err(|e| bad_row("key", &e))?,
            Some(Type::TEXT | Type::VARCHAR) => {
                let text: Option<String> = row.try_get(0).map_err(|e| bad_row("key", &e))?;
                text.map(|t| {
                    keys::decode(&t)
                        .ok_or_else(|| Error::LookupFailed(format!("the stored key of {agent} is not base64url")))
                })
                .transpose()?
            }
            _ => return Err(Error::LookupFailed("the key query must return one bytea or text column".into())),
        };
        let Some(bytes) = bytes else { return Ok(None) };
        let key: Key = keys::key_from_slice(&bytes)
            .ok_or_else(|| Error::LookupFailed(format!("the stored key of {agent} is not 32 bytes")))?;
        match self.cfg.key_format {
            KeyFormat::X25519 => Ok(Some(key)),
            KeyFormat::Ed25519 => {
                // The stored key must be the very key the agent id encodes.
                if keys::decode(agent).is_some_and(|id| id.len() == 32 && id != bytes) {
                    return Err(Error::KeyMismatch { agent: agent.to_owned() });
                }
                keys::ed25519_to_x25519(&key)
                    .map(Some)
                    .ok_or_else(|| Error::LookupFailed(format!("the stored key of {agent} is not an Ed25519 point")))
            }
        }
    }
}

/// The first `n` of the parameters a question offers (`$1`, `$2`, ...), so
/// that a replacement query may use fewer of them.
fn params(n: usize, mut offered: Vec<Box<dyn ToSql + Sync + Send>>) -> Vec<Box<dyn ToSql + Sync + Send>> {
    offered.truncate(n);
    offered
}

/// A yes/no answer: the first column of the first row, true; no row is no.
fn truth(row: Option<&Row>, what: &str) -> Result<bool> {
    match row {
        None => Ok(false),
        Some(r) => r.try_get::<_, Option<bool>>(0).map(|b| b.unwrap_or(false)).map_err(|e| bad_row(what, &e)),
    }
}

fn unavailable(why: String) -> Error {
    Error::StoreUnavailable(why)
}

/// SQLSTATE classes in which the server refuses the statement itself: syntax
/// or access (42: a wrong table or column, no privilege), data (22: a bad
/// cast), feature (0A), cardinality (21), routine exceptions (2F, 38, 39) and
/// an exception the query raised (P0).
const QUERY_FAULTS: [&str; 8] = ["42", "22", "0A", "21", "2F", "38", "39", "P0"];

/// A statement that failed. The server refusing the statement is a broken
/// query (`LookupFailed`, which no waiting mends: the operator must fix the
/// query or the schema); anything else (no connection, a shutdown, a
/// cancelled or slow statement, a lack of resources) is the database being
/// unavailable for now.
fn statement_failed(what: &str, e: &tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) if QUERY_FAULTS.iter().any(|class| db.code().code().starts_with(class)) => Error::LookupFailed(
            format!("the {what} query is refused by the database: {} (SQLSTATE {})", db.message(), db.code().code()),
        ),
        _ => unavailable(format!("the {what} query: {e}")),
    }
}

fn bad_row(what: &str, e: &tokio_postgres::Error) -> Error {
    Error::LookupFailed(format!("the {what} query returned something unexpected: {e}"))
}
