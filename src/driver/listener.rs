//! The accept loop, and the caps on inbound connections still in their
//! handshake (PROTOCOL.md §6): beyond them a new connection is closed at once,
//! before any cryptography, so a flood of half-open handshakes cannot starve
//! the partners that are already talking to us.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;

use super::{link, EventKind, PeerEvent, Shared};
use crate::error::{Error, Result};
use crate::proto::Connection;

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
    fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self { counts: Arc::default(), max_total, max_per_ip }
    }

    fn try_acquire(&self, ip: IpAddr) -> Option<PendingGuard> {
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

pub(crate) async fn start(shared: Arc<Shared>) -> Result<SocketAddr> {
    let listener = TcpListener::bind((shared.cfg.host.as_str(), shared.cfg.port))
        .await
        .map_err(|e| Error::Io(format!("cannot listen on {}:{}: {e}", shared.cfg.host, shared.cfg.port)))?;
    let addr = listener.local_addr().map_err(|e| Error::Io(e.to_string()))?;
    if let Ok(mut local) = shared.local.lock() {
        *local = Some(addr);
    }
    let pending = Pending::new(shared.cfg.max_pending, shared.cfg.max_pending_per_ip);
    shared.tasks.spawn(accept_loop(shared.clone(), listener, pending));
    Ok(addr)
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, pending: Pending) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, remote)) => {
                let Some(guard) = pending.try_acquire(remote.ip()) else {
                    drop(stream);
                    shared.sink.event(link::failure_event(0, None, Some(remote), false, &Error::TooManyPending));
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let new = shared.registry.add(&shared.shutdown, None);
                let conn = Connection::responder(shared.proto.clone(), shared.replay.clone(), Instant::now().into_std());
                let origin = link::Origin::Accepted { remote, pending: guard };
                shared.tasks.spawn(link::run(shared.clone(), new, stream, conn, origin));
            }
            Err(e) => {
                // A connection reset before we accepted it, or the process is
                // out of descriptors: report it and keep listening.
                shared.sink.event(PeerEvent {
                    kind: EventKind::Error,
                    link: 0,
                    agent: None,
                    remote: None,
                    pattern: None,
                    initiator: false,
                    reason: Some(Error::from_io(&e).code().to_owned()),
                    message: Some(format!("accept failed: {e}")),
                    clean: false,
                    written: 0,
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
