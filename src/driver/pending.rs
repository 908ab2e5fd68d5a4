//! Caps on inbound connections still in their handshake, in total and per
//! remote IP (docs/PROTOCOL.md §6): beyond them a new connection is closed
//! at once, before any cryptography, so a flood of half-open handshakes
//! cannot starve the partners that are already talking to us.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Counts of pending inbound connections, shared by the accept loop and links.
#[derive(Clone)]
pub(crate) struct Pending {
    counts: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_ip: usize,
}

/// Held by a link until its handshake completes or it ends.
pub(crate) struct PendingGuard {
    pending: Pending,
    ip: IpAddr,
}

impl Pending {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self { counts: Arc::default(), max_total, max_per_ip }
    }

    /// A slot for a connection from `ip`, or `None` when the caps are reached.
    pub fn try_acquire(&self, ip: IpAddr) -> Option<PendingGuard> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mine = c.per_ip.get(&ip).copied().unwrap_or(0);
        if c.total >= self.max_total || mine >= self.max_per_ip {
            return None;
        }
        c.total += 1;
        c.per_ip.insert(ip, mine + 1);
        Some(PendingGuard { pending: self.clone(), ip })
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut c = self.pending.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_in_total_and_per_ip_and_free_on_drop() {
        let p = Pending::new(3, 2);
        let (a, b) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]));
        let a1 = p.try_acquire(a);
        let a2 = p.try_acquire(a);
        assert!(a1.is_some() && a2.is_some());
        assert!(p.try_acquire(a).is_none(), "per IP");
        let b1 = p.try_acquire(b);
        assert!(b1.is_some());
        assert!(p.try_acquire(b).is_none(), "in total");
        drop(a1);
        assert!(p.try_acquire(b).is_some(), "a slot came free");
    }
}
