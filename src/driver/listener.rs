//! The accept loop: each inbound connection gets a pending slot (or is
//! closed at once when the caps are reached), a responder `Connection` and a
//! link task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;

use super::event::{EventKind, PeerEvent};
use super::link::{self, Origin};
use super::pending::Pending;
use super::shared::Shared;
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
                    shared.sink.event(PeerEvent::failure(0, None, Some(remote), false, &Error::TooManyPending));
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let new = shared.registry.add_inbound();
                let conn =
                    Connection::responder(shared.proto.clone(), shared.replay.clone(), Instant::now().into_std());
                let origin = Origin::Accepted { remote, pending: guard };
                shared.tasks.spawn(link::run(shared.clone(), new, stream, conn, origin));
            }
            Err(e) => {
                // A connection reset before we accepted it, or the process is
                // out of descriptors: report it and keep listening.
                let mut event = PeerEvent::failure(0, None, None, false, &Error::from_io(&e));
                event.kind = EventKind::Error;
                event.message = Some(format!("accept failed: {e}"));
                shared.sink.event(event);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
