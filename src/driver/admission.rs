//! Who gets a connection, before any cryptography (docs/PROTOCOL.md §6):
//! a rate of new connections per remote address, caps on connections still
//! in their handshake (in total and per address), and caps on links in total
//! and per address. Addresses are counted per IPv4 address and per IPv6 /64,
//! the block a single host usually has.
//!
//! When the pending table is full, the oldest pending connection makes room
//! for the new one. A flood of connections that send nothing (or too little)
//! thus churns through the table while honest handshakes, which finish in a
//! round trip, get through; an address at its own cap cannot push others out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::bounded::BoundedLru;
use tokio_util::sync::CancellationToken;

use super::config::PeerConfig;
use crate::error::{Error, Result};

/// An address as counted: IPv4 whole, IPv6 by its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl Source {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    Self::V6(prefix)
                }
            },
        }
    }
}

/// Sources remembered by the rate limiter.
const RATE_SOURCES: usize = 65_536;

struct PendingEntry {
    source: Source,
    since: Instant,
    evict: CancellationToken,
}

#[derive(Default)]
struct Tables {
    next: u64,
    pending: HashMap<u64, PendingEntry>,
    pending_per_source: HashMap<Source, usize>,
    links: usize,
    links_per_source: HashMap<Source, usize>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub(crate) struct Admission {
    tables: Mutex<Tables>,
    rates: Mutex<BoundedLru<Source, Bucket>>,
    max_pending: usize,
    max_pending_per_source: usize,
    max_links: usize,
    max_links_per_source: usize,
    rate: f64,
}

/// A link's place in the count of links; freed when dropped.
pub(crate) struct LinkSlot {
    admission: Arc<Admission>,
    source: Option<Source>,
}

/// An inbound connection's place in the pending table, held until its
/// handshake completes; freed when dropped. `evicted` fires when a newer
/// connection took its place.
pub(crate) struct PendingGuard {
    admission: Arc<Admission>,
    id: u64,
    pub evicted: CancellationToken,
}

impl Admission {
    pub fn new(cfg: &PeerConfig) -> Self {
        Self {
            tables: Mutex::default(),
            rates: Mutex::new(BoundedLru::new(RATE_SOURCES)),
            max_pending: cfg.max_pending,
            max_pending_per_source: cfg.max_pending_per_ip,
            max_links: cfg.max_links,
            max_links_per_source: cfg.max_links_per_ip,
            rate: f64::from(cfg.connect_rate),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new inbound connection from `ip`: its link slot and pending slot,
    /// or the reason it is closed at once.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<(LinkSlot, PendingGuard)> {
        let source = Source::of(ip);
        if !self.take_token(source, now) {
            return Err(Error::TooManyPending);
        }
        let mut t = self.lock();
        if t.pending_per_source.get(&source).copied().unwrap_or(0) >= self.max_pending_per_source {
            return Err(Error::TooManyPending);
        }
        if t.links_per_source.get(&source).copied().unwrap_or(0) >= self.max_links_per_source {
            return Err(Error::TooManyLinks(format!("{} links from one address", self.max_links_per_source)));
        }
        if t.pending.len() >= self.max_pending {
            // Make room: the oldest pending connection goes.
            let oldest = t.pending.iter().min_by_key(|(_, e)| e.since).map(|(id, _)| *id);
            match oldest.and_then(|id| t.pending.remove(&id)) {
                Some(e) => {
                    decrement(&mut t.pending_per_source, e.source);
                    e.evict.cancel();
                }
                None => return Err(Error::TooManyPending),
            }
        }
        if t.links >= self.max_links {
            return Err(Error::TooManyLinks(format!("{} links in all", self.max_links)));
        }
        t.links += 1;
        *t.links_per_source.entry(source).or_default() += 1;
        t.next += 1;
        let id = t.next;
        let evicted = CancellationToken::new();
        t.pending.insert(id, PendingEntry { source, since: now, evict: evicted.clone() });
        *t.pending_per_source.entry(source).or_default() += 1;
        drop(t);
        Ok((
            LinkSlot { admission: self.clone(), source: Some(source) },
            PendingGuard { admission: self.clone(), id, evicted },
        ))
    }

    /// A slot for a link we dial.
    pub fn outbound(self: &Arc<Self>) -> Result<LinkSlot> {
        let mut t = self.lock();
        if t.links >= self.max_links {
            return Err(Error::TooManyLinks(format!("{} links in all", self.max_links)));
        }
        t.links += 1;
        Ok(LinkSlot { admission: self.clone(), source: None })
    }

    /// Pending inbound connections right now.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    fn take_token(&self, source: Source, now: Instant) -> bool {
        let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        let burst = self.rate * 2.0;
        let bucket = rates.get_or_insert_mut(source, || Bucket { tokens: burst, at: now });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn decrement(map: &mut HashMap<Source, usize>, source: Source) {
    if let Some(n) = map.get_mut(&source) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&source);
        }
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut t = self.admission.lock();
        if let Some(e) = t.pending.remove(&self.id) {
            decrement(&mut t.pending_per_source, e.source);
        }
    }
}

impl Drop for LinkSlot {
    fn drop(&mut self) {
        let mut t = self.admission.lock();
        t.links = t.links.saturating_sub(1);
        if let Some(source) = self.source {
            decrement(&mut t.links_per_source, source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn admission(max_pending: usize, per_ip: usize) -> Arc<Admission> {
        let cfg = PeerConfig { max_pending, max_pending_per_ip: per_ip, connect_rate: 1000, ..PeerConfig::new("a") };
        Arc::new(Admission::new(&cfg))
    }

    const A: [u8; 4] = [127, 0, 0, 1];
    const B: [u8; 4] = [127, 0, 0, 2];

    #[test]
    fn per_address_caps_hold_and_free_on_drop() {
        let adm = admission(10, 2);
        let t = Instant::now();
        let a1 = adm.admit(IpAddr::from(A), t).ok();
        let a2 = adm.admit(IpAddr::from(A), t).ok();
        assert!(a1.is_some() && a2.is_some());
        assert!(matches!(adm.admit(IpAddr::from(A), t), Err(Error::TooManyPending)), "per address");
        assert!(adm.admit(IpAddr::from(B), t).is_ok(), "another address");
        drop(a1);
        assert!(adm.admit(IpAddr::from(A), t).is_ok(), "a slot came free");
    }

    #[test]
    fn a_full_table_evicts_its_oldest_entry_for_a_new_address() {
        let adm = admission(2, 2);
        let t = Instant::now();
        let (_l1, old) = adm.admit(IpAddr::from(A), t).unwrap();
        let (_l2, newer) = adm.admit(IpAddr::from(A), t + Duration::from_millis(1)).unwrap();
        let honest = adm.admit(IpAddr::from(B), t + Duration::from_millis(2));
        assert!(honest.is_ok(), "the table made room");
        assert!(old.evicted.is_cancelled(), "the oldest went");
        assert!(!newer.evicted.is_cancelled());
        assert_eq!(adm.pending(), 2);
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::of(a), Source::of(b));
        assert_ne!(Source::of(a), Source::of(c));
        assert_eq!(Source::of("::ffff:127.0.0.1".parse().unwrap()), Source::of(IpAddr::from(A)));
    }

    #[test]
    fn new_connections_per_address_are_rate_limited() {
        let cfg = PeerConfig { connect_rate: 5, ..PeerConfig::new("a") };
        let adm = Arc::new(Admission::new(&cfg));
        let t = Instant::now();
        let taken: usize = (0..20).filter(|_| adm.admit(IpAddr::from(A), t).is_ok()).count();
        assert_eq!(taken, 10, "the burst is twice the rate");
        assert!(adm.admit(IpAddr::from(B), t).is_ok(), "other addresses are not held back");
        assert!(adm.admit(IpAddr::from(A), t + Duration::from_millis(400)).is_ok(), "tokens come back with time");
    }

    #[test]
    fn links_are_capped_in_total() {
        let cfg = PeerConfig { max_links: 1, ..PeerConfig::new("a") };
        let adm = Arc::new(Admission::new(&cfg));
        let slot = adm.outbound().unwrap();
        assert!(matches!(adm.outbound(), Err(Error::TooManyLinks(_))));
        assert!(matches!(adm.admit(IpAddr::from(A), Instant::now()), Err(Error::TooManyLinks(_))));
        drop(slot);
        assert!(adm.outbound().is_ok());
    }
}
