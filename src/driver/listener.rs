//! The accept loop: each inbound connection passes admission (a rate per
//! address, caps on pending connections and on links, docs/PROTOCOL.md §6)
//! or is closed at once, before any cryptography; then it gets a responder
//! `Connection` and a link task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::event::{EventKind, PeerEvent};
use super::link::{self, Origin};
use super::shared::Shared;
use super::wire::Wire;
use crate::error::{Error, Result};
use crate::proto::Connection;

/// How long to pause after a failed accept (out of descriptors, say), so a
/// persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Bind now, then accept in a task. The bind is synchronous (as Node's own
/// `server.listen(port)` is), so the port takes connections as soon as this
/// returns. Must run inside the tokio runtime's context.
pub(crate) fn start(shared: Arc<Shared>) -> Result<SocketAddr> {
    let cannot =
        |e: std::io::Error| Error::Io(format!("cannot listen on {}:{}: {e}", shared.cfg.host, shared.cfg.port));
    let mut local = shared.local.lock().map_err(|_| Error::Internal("listen state poisoned".into()))?;
    if local.is_some() {
        return Err(Error::InvalidArgument("the node is already listening".into()));
    }
    let std_listener = std::net::TcpListener::bind((shared.cfg.host.as_str(), shared.cfg.port)).map_err(cannot)?;
    std_listener.set_nonblocking(true).map_err(cannot)?;
    let listener = TcpListener::from_std(std_listener).map_err(cannot)?;
    let addr = listener.local_addr().map_err(|e| Error::Io(e.to_string()))?;
    *local = Some(addr);
    drop(local);
    shared.tasks.spawn(accept_loop(shared.clone(), listener));
    Ok(addr)
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        // One connection's handling must never stop the loop: a panic in it
        // is reported, and the node keeps listening.
        let step = std::panic::AssertUnwindSafe(async { handle(&shared, accepted).await }).catch_unwind().await;
        if step.is_err() {
            let err = Error::Internal("accepting a connection panicked; still listening".into());
            shared.report(PeerEvent::failure(0, None, None, false, &err));
        }
    }
}

async fn handle(shared: &Arc<Shared>, accepted: std::io::Result<(tokio::net::TcpStream, SocketAddr)>) {
    match accepted {
        Ok((stream, remote)) => {
            let (slot, pending) = match shared.admission.admit(remote.ip(), Instant::now().into_std()) {
                Ok(granted) => granted,
                Err(err) => {
                    drop(stream);
                    shared.report(PeerEvent::failure(0, None, Some(remote), false, &err));
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            let conn = Connection::responder(shared.proto.clone(), shared.replay.clone(), Instant::now().into_std());
            let wire = Arc::new(Wire::new(stream, conn));
            let new = shared.registry.add_inbound(wire.clone());
            let origin = Origin::Accepted { remote, pending, slot };
            shared.tasks.spawn(link::run(shared.clone(), new, wire, origin));
        }
        Err(e) => {
            // A connection reset before we accepted it, or the process is
            // out of descriptors: report it and keep listening.
            let mut event = PeerEvent::failure(0, None, None, false, &Error::from_io(&e));
            event.kind = EventKind::Error;
            event.message = Some(format!("accept failed: {e}"));
            shared.report(event);
            tokio::time::sleep(ACCEPT_BACKOFF).await;
        }
    }
}
