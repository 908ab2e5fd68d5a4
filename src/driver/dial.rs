//! Opening an outbound link: the responder's key (as `proto::policy` rules),
//! the TCP connect, message 1, then the link task.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::event::PeerEvent;
use super::link::{self, Origin, PanicGuard};
use super::lookup;
use super::queue::{SendOptions, Target};
use super::registry::{DialOrder, Retire};
use super::shared::Shared;
use super::wire::Wire;
use crate::error::{Error, Result};
use crate::proto::policy::{self, DialKey};
use crate::proto::{Address, Answer, Connection, Dial, DialSpec, Need};

/// Start the dial the registry ordered, as a task of the node.
pub(crate) fn spawn(shared: &Arc<Shared>, order: DialOrder) {
    shared.tasks.spawn(dial(shared.clone(), order));
}

/// A process-wide source of strictly increasing handshake timestamps
/// (microseconds since the epoch, bumped when two handshakes share one).
pub fn next_timestamp() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    // Microseconds: a burst of handshakes moves ahead of the clock only past
    // a million a second, so a restarted process starts above the last one.
    let now =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

async fn dial(shared: Arc<Shared>, order: DialOrder) {
    let DialOrder { link, target, opts } = order;
    let _guard = PanicGuard::new(&shared, link.id);
    let started = match shared.admission.outbound() {
        Err(e) => Err(e),
        Ok(slot) => tokio::select! {
            r = start(&shared, &target, &opts) => r.map(|s| (s, slot)),
            _ = link.cancel.cancelled() => Err(Error::Closed),
        },
    };
    let started = started.and_then(|((stream, conn, remote), slot)| {
        let wire = Arc::new(Wire::new(stream, conn));
        if shared.registry.install(link.id, &wire) {
            Ok((wire, remote, slot))
        } else {
            Err(Error::Closed)
        }
    });
    match started {
        Ok((wire, remote, slot)) => {
            link::run(shared, link, wire, Origin::Dialled { remote, slot }).await;
        }
        Err(err) => {
            let dials = shared.registry.retire(link.id, Retire::Reject(err.clone()));
            shared.start_dials(dials);
            shared.registry.remove(link.id);
            let remote = format!("{}:{}", target.host.as_deref().unwrap_or(""), target.port.unwrap_or(0)).parse().ok();
            shared.report(PeerEvent::failure(link.id, target.agent.clone(), remote, true, &err));
        }
    }
}

/// Find the key, connect, and write message 1.
async fn start(
    shared: &Arc<Shared>,
    target: &Target,
    opts: &SendOptions,
) -> Result<(TcpStream, Connection, Option<SocketAddr>)> {
    let agent = target.agent.clone().unwrap_or_default();
    let proto = &shared.proto;
    let remote_key = match policy::dial_key(proto, target.key)? {
        DialKey::Raw => None,
        DialKey::Given(k) => Some(k),
        DialKey::Ask => {
            let need = Need::PeerKey { agent: agent.clone() };
            let stored = match lookup::answer(shared.store.clone(), need, proto.handshake_timeout).await {
                Answer::Key(k) => k,
                Answer::Failed(Error::LookupFailed(why)) => {
                    return Err(Error::LookupFailed(format!("key of {agent}: {why}")))
                }
                Answer::Failed(e) => return Err(e),
                other => return Err(Error::Internal(format!("an answer to a question not asked: {other:?}"))),
            };
            Some(policy::key_for_dial(&agent, stored)?)
        }
    };
    let host = target.host.clone().unwrap_or_default();
    let port = target.port.unwrap_or(0);
    let addr = format!("{host}:{port}");
    let connect = tokio::time::timeout(proto.handshake_timeout, TcpStream::connect((host.as_str(), port)));
    let stream = match connect.await {
        Ok(Ok(s)) => s,
        // A reset here means something accepted and then dropped us.
        Ok(Err(e))
            if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted) =>
        {
            return Err(Error::ConnectionReset)
        }
        Ok(Err(e)) => return Err(Error::ConnectFailed { addr, reason: e.to_string() }),
        Err(_) => return Err(Error::ConnectFailed { addr, reason: "timed out".into() }),
    };
    let _ = stream.set_nodelay(true);
    let remote = stream.peer_addr().ok().or_else(|| addr.parse().ok());
    let dial = match (&opts.ticket, opts.referee) {
        (_, true) => Dial::Referee,
        (Some(ticket), false) => {
            let (host, port) = match &shared.cfg.advertise {
                Some((host, port)) => (host.clone(), *port),
                None => (shared.cfg.host.clone(), shared.local_addr().map_or(shared.cfg.port, |a| a.port())),
            };
            let from = Address { agent: shared.cfg.agent.clone(), host: Some(host), port: Some(port) };
            Dial::Ticket { ticket: ticket.clone(), from }
        }
        (None, false) => Dial::Key,
    };
    let spec = DialSpec {
        dial,
        local_agent: shared.cfg.agent.clone(),
        remote_agent: agent,
        remote_key,
        timestamp: next_timestamp(),
    };
    let conn = Connection::initiator(shared.proto.clone(), Instant::now().into_std(), spec)?;
    Ok((stream, conn, remote))
}
