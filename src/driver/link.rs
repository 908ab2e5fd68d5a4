//! One task per TCP connection. It reads frames into the core, writes what
//! the core and the application hand it, asks the store what the core needs
//! to know, and settles every message by what was really written. What it
//! shares with senders (socket, core, write buffer, command queue) lives in
//! its `Wire`; a sender writes there itself when nothing is ahead of it.
//!
//! Reading never waits on writing: both are branches of one `select!`, so
//! two peers that both send a lot never wait on each other. What waits to be
//! written is bounded (past `high_water` the link takes no more messages off
//! its queue, and the queue itself is bounded per agent by the registry's
//! budgets), and a socket that takes nothing for `write_timeout` fails the
//! link: a peer that stops reading costs a bounded amount of memory and time.
//! Reading pauses while a batch of received messages waits for the
//! application to catch up (`Shared::deliveries`). Buffers are released
//! when a link is idle.
//!
//! A message is resolved once its last byte was handed to the socket, and
//! rejected if that never happened; never both, never neither. Closing is
//! orderly where it can be: the side that closes shuts down its write half
//! (FIN) after everything queued is written, and keeps reading until the
//! other side's end of stream. Messages not yet encrypted when a link
//! closes go back to the registry for another link; nothing written is ever
//! sent twice.
//!
//! The wire's lock is held only for work on the core and the buffers; what
//! the core asks of the rest of the node (the registry, the store, reports)
//! is done after it is released (see `wire` for the lock order).

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use futures::future::BoxFuture;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::admission::{LinkSlot, PendingGuard};
use super::event::{DeliveryPermit, EventKind, LinkInfo, PeerEvent};
use super::lookup;
use super::queue::Cmd;
use super::registry::{NewLink, Retire};
use super::shared::Shared;
use super::wire::{Wire, WireState, KEEP_CAPACITY};
use crate::error::{CloseReason, Error, Result};
use crate::proto::{self, frame, Answer, Event, PeerInfo};

/// How far past the frame at hand an open link reads (`read_room`), so that
/// one read takes in many small messages: one read per frame would cost a
/// system call each. Also the most of one frame read at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Frames handled per read before their messages go to the application.
const MAX_READ_BURST: usize = 64;
/// How long a closing link waits for the application to take its last messages.
const LAST_DELIVERY_WAIT: Duration = Duration::from_secs(1);
/// How often a closing link looks whether the other side acknowledged all.
const ACK_POLL: Duration = Duration::from_millis(5);

/// Settles a link whose task panicked: tokio contains the panic, and this
/// guard removes the link from the registry and reports it, so the node
/// keeps serving everyone else. (Sends queued on it are rejected when their
/// channel is dropped.)
pub(crate) struct PanicGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl PanicGuard {
    pub fn new(shared: &Arc<Shared>, id: u64) -> Self {
        Self { shared: shared.clone(), id }
    }
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.registry.remove(self.id);
            let err = Error::Internal("a link task panicked".into());
            self.shared.report(PeerEvent::failure(self.id, None, None, false, &err));
        }
    }
}

/// How a connection came to be. The remote address is taken when the socket
/// is accepted or connected: once a reset arrives, the socket no longer knows it.
pub(crate) enum Origin {
    Accepted { remote: SocketAddr, pending: PendingGuard, slot: LinkSlot },
    Dialled { remote: Option<SocketAddr>, slot: LinkSlot },
}

/// Drive one connection until it ends, then settle everything it held.
pub(crate) async fn run(shared: Arc<Shared>, new: NewLink, wire: Arc<Wire>, origin: Origin) {
    let NewLink { id, cancel } = new;
    let _guard = PanicGuard::new(&shared, id);
    let (remote, pending, slot) = match origin {
        Origin::Accepted { remote, pending, slot } => (Some(remote), Some(pending), slot),
        Origin::Dialled { remote, slot } => (remote, None, slot),
    };
    let evicted = pending.as_ref().map_or_else(CancellationToken::new, |p| p.evicted.clone());
    let mut task = LinkTask {
        shared,
        id,
        wire,
        remote,
        pending,
        _slot: slot,
        rbuf: BytesMut::new(),
        lookup: None,
        inbox: Vec::new(),
        info: None,
        opened: false,
        close_reason: None,
        fin_sent: false,
        fin_queued: false,
    };
    let outcome = task.drive(&cancel, &evicted).await;
    task.settle(outcome).await;
}

/// One connection's task: everything the link owes, beside its wire.
struct LinkTask {
    shared: Arc<Shared>,
    id: u64,
    wire: Arc<Wire>,
    remote: Option<SocketAddr>,
    /// Counts against the pending-inbound caps until the link is open.
    pending: Option<PendingGuard>,
    _slot: LinkSlot,
    /// Bytes read and not yet framed.
    rbuf: BytesMut,
    /// The store lookup the core waits on; dropped (cancelled) with the task.
    lookup: Option<BoxFuture<'static, Answer>>,
    /// Messages to hand to the application in one call.
    inbox: Vec<(Vec<u8>, bool)>,
    info: Option<LinkInfo>,
    /// The link opened (for a responder: was confirmed).
    opened: bool,
    close_reason: Option<CloseReason>,
    /// We tried to end our stream (shutdown of the write half) ...
    fin_sent: bool,
    /// ... and the kernel took the FIN: it counts in the send queue until
    /// acknowledged (`sendq::data_acknowledged`).
    fin_queued: bool,
}

/// What the loop waits for this time round, decided under the wire's lock.
struct Plan {
    closed: bool,
    deadline: Option<Instant>,
    wants_write: bool,
    more: bool,
}

impl LinkTask {
    /// Run until the connection ends: `Ok` for an orderly end.
    async fn drive(&mut self, cancel: &CancellationToken, evicted: &CancellationToken) -> Result<()> {
        let mut cancelled = false;
        let wire = self.wire.clone();
        loop {
            let mut events = Vec::new();
            let plan = {
                let mut st = wire.lock();
                self.take_cmds(&mut st);
                self.pump(&mut st, &mut events);
                wire.write(&mut st)?;
                // Closing: once everything queued is written, say so (FIN)
                // and keep reading until the other side's end.
                if st.conn.is_draining() && st.wbuf.is_empty() && !self.fin_sent {
                    self.fin_sent = true;
                    self.fin_queued = socket2::SockRef::from(&wire.stream).shutdown(std::net::Shutdown::Write).is_ok();
                }
                Plan {
                    closed: st.conn.is_closed(),
                    deadline: self.deadline(&st),
                    wants_write: !st.wbuf.is_empty(),
                    // The socket took everything and more waits: go round
                    // again instead of waiting for a wake-up that will not come.
                    more: !st.cmds.is_empty() && st.conn.can_send() && st.wbuf.len() < self.shared.cfg.high_water,
                }
            };
            self.handle(events)?;
            if plan.closed {
                return Ok(());
            }
            if plan.more {
                // Let the runtime's other tasks in between long runs.
                tokio::task::consume_budget().await;
                continue;
            }
            let now = || Instant::now().into_std();
            let can_read = self.inbox.is_empty();
            if can_read && frame::is_complete(&self.rbuf) {
                // A burst was cut short at `MAX_READ_BURST`: go on with it.
                if self.read()? {
                    return Ok(());
                }
                continue;
            }
            let must_deliver = !self.inbox.is_empty() && self.info.is_some();
            let lookup = &mut self.lookup;
            tokio::select! {
                r = wire.stream.readable(), if can_read => {
                    r.map_err(|e| Error::from_io(&e))?;
                    if self.read()? {
                        return Ok(()); // the other side ended its stream
                    }
                }
                r = wire.stream.writable(), if plan.wants_write => {
                    r.map_err(|e| Error::from_io(&e))?;
                    wire.write(&mut wire.lock())?;
                }
                // A command was queued (taken at the top of the loop).
                () = wire.wake.notified() => {}
                answer = std::future::poll_fn(|cx| match lookup.as_mut() {
                    Some(f) => f.as_mut().poll(cx),
                    None => Poll::Pending,
                }) => {
                    self.lookup = None;
                    wire.lock().conn.handle_lookup(now(), answer)?;
                }
                permit = self.shared.deliveries.clone().acquire_owned(), if must_deliver => {
                    self.deliver(permit.ok());
                }
                () = sleep_until(plan.deadline) => {
                    let mut st = wire.lock();
                    if st.stalled_since.is_some_and(|s| s + self.shared.cfg.write_timeout <= Instant::now()) {
                        let ms = u64::try_from(self.shared.cfg.write_timeout.as_millis()).unwrap_or(u64::MAX);
                        return Err(Error::WriteTimeout { ms });
                    }
                    st.conn.handle_timeout(now())?;
                }
                () = cancel.cancelled(), if !cancelled => {
                    cancelled = true;
                    let mut st = wire.lock();
                    st.conn.close(now());
                    if st.conn.is_closed() {
                        return Err(Error::Closed);
                    }
                }
                () = evicted.cancelled(), if self.pending.is_some() => return Err(Error::TooManyPending),
            }
        }
    }

    /// Encrypt queued messages into the write buffer, up to `high_water`,
    /// and answer requests to hear when the link is open.
    fn take_cmds(&self, st: &mut WireState) {
        while st.conn.can_send() && st.wbuf.len() < self.shared.cfg.high_water {
            let Some(cmd) = st.cmds.pop_front() else { break };
            match cmd {
                Cmd::Send(out) => st.queue_message(&out.data, out.done),
                Cmd::Connect(w) => {
                    let _ = w.done.send(self.info.clone().filter(|_| self.opened).ok_or(Error::ConnectionClosed));
                }
            }
        }
    }

    /// Take what the core produced: frames into the write buffer, messages
    /// into the inbox, the rest into `events` (handled once the lock is
    /// released).
    fn pump(&mut self, st: &mut WireState, events: &mut Vec<Event>) {
        while let Some(f) = st.conn.poll_transmit() {
            st.queue_frame(&f);
        }
        while let Some(event) = st.conn.poll_event() {
            match event {
                Event::Message { data, early } => {
                    st.messages_read += 1;
                    self.inbox.push((data, early));
                }
                other => events.push(other),
            }
        }
    }

    /// The earlier of the core's next deadline and the write-progress one.
    fn deadline(&self, st: &WireState) -> Option<Instant> {
        let core = st.conn.poll_timeout().map(Instant::from_std);
        let stall = st.stalled_since.map(|s| s + self.shared.cfg.write_timeout);
        [core, stall].into_iter().flatten().min()
    }

    /// Read what the socket has, and handle the frames it completes. True at
    /// the end of the other side's stream.
    fn read(&mut self) -> Result<bool> {
        // Frames left over from a burst cut short are handled before more
        // is read: the socket may have nothing more to say.
        if !frame::is_complete(&self.rbuf) {
            let room = read_room(&self.rbuf, self.opened);
            self.rbuf.reserve(room);
            // No more than `room`, however much the buffer has grown: what
            // is read waits in memory until the application takes it.
            match self.wire.stream.try_read_buf(&mut (&mut self.rbuf).limit(room)) {
                Ok(0) => {
                    if !self.rbuf.is_empty() {
                        // The stream ended inside a frame: a sender cut off
                        // mid-write, not an orderly end.
                        return Err(Error::ConnectionClosed);
                    }
                    self.wire.lock().conn.handle_eof()?;
                    self.close_reason.get_or_insert(CloseReason::PeerClosed);
                    return Ok(true);
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    trim(&mut self.rbuf);
                    return Ok(false);
                }
                Err(e) => return Err(Error::from_io(&e)),
            }
        }
        let mut events = Vec::new();
        let burst = {
            let wire = self.wire.clone();
            let mut st = wire.lock();
            let mut burst = Ok(());
            for _ in 0..MAX_READ_BURST {
                // The limit follows the state: `max_frame` until the link is open.
                let before = self.rbuf.len();
                let body = match frame::decode(&mut self.rbuf, st.conn.frame_limit()) {
                    Ok(Some(body)) => body,
                    Ok(None) => break,
                    Err(e) => {
                        burst = Err(e);
                        break;
                    }
                };
                st.bytes_read += (before - self.rbuf.len()) as u64;
                let handled = st.conn.handle_frame(Instant::now().into_std(), &body);
                self.pump(&mut st, &mut events);
                if let Err(e) = handled {
                    burst = Err(e);
                    break;
                }
                if st.conn.is_closed() {
                    break;
                }
            }
            burst
        };
        trim(&mut self.rbuf);
        // What the frames before a bad one did still happened (a link
        // confirmed and opened, say): act on it before failing the link.
        self.handle(events)?;
        burst?;
        Ok(false)
    }

    /// Act on what the core said, outside the wire's lock: a lookup to
    /// start, the link accepted, open or closing.
    fn handle(&mut self, events: Vec<Event>) -> Result<()> {
        for event in events {
            match event {
                Event::Need(need) => self.ask(need),
                Event::Accepted(peer) => {
                    let info = self.link_info(&peer);
                    self.shared.registry.accepted(self.id, &info);
                    self.info = Some(info);
                }
                Event::Open(peer) => self.opened(&peer)?,
                Event::Message { data, early } => self.inbox.push((data, early)),
                Event::Closing(reason) => {
                    self.close_reason = Some(reason);
                    let dials = self.shared.registry.retire(self.id, Retire::Requeue { cause: None });
                    self.shared.start_dials(dials);
                }
            }
        }
        Ok(())
    }

    /// Start the lookup the core needs; a refusal of a moment ago answers at once.
    fn ask(&mut self, need: proto::Need) {
        let now = Instant::now().into_std();
        if let Some(answer) = self.shared.refusals.as_ref().and_then(|r| r.recall(&need, now)) {
            self.lookup = Some(Box::pin(std::future::ready(answer)));
            return;
        }
        let deadline = self.shared.proto.handshake_timeout;
        let shared = self.shared.clone();
        if shared.refusals.is_none() || !matches!(need, proto::Need::Partner { .. }) {
            // Dropped with the link: a lookup nobody waits for is cancelled.
            self.lookup = Some(Box::pin(async move { lookup::answer(shared.store.clone(), need, deadline).await }));
            return;
        }
        // A stranger that sends N and hangs up must still leave its "no"
        // behind, or each knock would cost a lookup: this one runs to its
        // end (bounded by the deadline and by `close()`) even if the link is
        // gone by then. Only for stores without a cache of their own, which
        // are the application's callbacks: a call into JavaScript cannot be
        // taken back once made, so waiting for its answer costs a small task,
        // not more work. Database lookups are cancelled with their link.
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            tokio::select! {
                answer = lookup::answer(shared.store.clone(), need.clone(), deadline) => {
                    if let Some(r) = &shared.refusals {
                        r.note(&need, &answer, Instant::now().into_std());
                    }
                    let _ = tx.send(answer);
                }
                () = shared.shutdown.cancelled() => {}
            }
        });
        self.lookup = Some(Box::pin(async move { rx.await.unwrap_or(proto::Answer::Failed(Error::Closed)) }));
    }

    fn link_info(&self, peer: &PeerInfo) -> LinkInfo {
        LinkInfo {
            link: self.id,
            agent: peer.agent.clone(),
            remote: self.remote.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            pattern: peer.pattern,
            native: peer.native,
            initiator: peer.initiator,
            encrypted: self.shared.proto.identity.is_some(),
        }
    }

    fn opened(&mut self, peer: &PeerInfo) -> Result<()> {
        let info = self.link_info(peer);
        self.shared.registry.opened(self.id, &info)?;
        self.pending = None;
        self.opened = true;
        self.shared.report(PeerEvent::open(&info, self.remote));
        self.info = Some(info);
        Ok(())
    }

    fn deliver(&mut self, permit: Option<DeliveryPermit>) {
        if let (Some(info), false) = (&self.info, self.inbox.is_empty()) {
            self.shared.sink.messages(info, std::mem::take(&mut self.inbox), permit);
        }
    }

    /// Write what the wire holds, until it is empty, the socket fails, or
    /// the write timeout (shorter once the node is closing) passes.
    async fn flush(&mut self) -> bool {
        let bound = if self.shared.shutdown.is_cancelled() {
            self.shared.proto.drain_timeout
        } else {
            self.shared.cfg.write_timeout
        };
        let until = Instant::now() + bound;
        loop {
            {
                let mut st = self.wire.lock();
                if self.wire.write(&mut st).is_err() {
                    return false;
                }
                if st.wbuf.is_empty() {
                    return true;
                }
            }
            let ready = tokio::time::timeout_at(until, self.wire.stream.writable()).await;
            if !matches!(ready, Ok(Ok(()))) {
                return false;
            }
        }
    }

    /// The connection has ended: leave nothing this link held unanswered.
    async fn settle(mut self, outcome: Result<()>) {
        // Messages that arrived intact before whatever ended the link are
        // still delivered.
        {
            let wire = self.wire.clone();
            let mut st = wire.lock();
            while let Some(event) = st.conn.poll_event() {
                if let Event::Message { data, early } = event {
                    st.messages_read += 1;
                    self.inbox.push((data, early));
                }
            }
            while let Some(f) = st.conn.poll_transmit() {
                st.queue_frame(&f);
            }
        }
        if !self.inbox.is_empty() {
            let permit = tokio::time::timeout(LAST_DELIVERY_WAIT, self.shared.deliveries.clone().acquire_owned()).await;
            self.deliver(permit.ok().and_then(std::result::Result::ok));
        }
        self.pending = None;
        self.lookup = None;
        // Unsent messages of a link that was open go to the next link; those
        // of a link that never opened share its fate (the next try would too).
        let retire = match &outcome {
            Ok(()) if self.opened => Retire::Requeue { cause: None },
            Ok(()) => Retire::Reject(Error::ConnectionClosed),
            Err(e) if self.opened && !e.is_refusal() => Retire::Requeue { cause: Some(e.clone()) },
            Err(e) => Retire::Reject(e.clone()),
        };
        let dials = self.shared.registry.retire(self.id, retire);
        self.shared.start_dials(dials);
        // After an orderly end, what was queued is still written (the other
        // side reads until our FIN). After a failure, only a link that never
        // opened writes on (a refusal `A`, at most); messages are rejected.
        let flushed =
            if outcome.is_ok() || !self.opened { self.flush().await } else { self.wire.lock().wbuf.is_empty() };
        if flushed && !self.fin_sent {
            self.fin_sent = true;
            self.fin_queued = socket2::SockRef::from(&self.wire.stream).shutdown(std::net::Shutdown::Write).is_ok();
        }
        // Handed to the kernel is not yet received: after an orderly end,
        // wait (bounded by drainTimeout) until the other side's TCP has
        // acknowledged everything, or the close is not clean.
        let acknowledged = !(outcome.is_ok() && flushed)
            || acknowledged(&self.wire.stream, self.shared.proto.drain_timeout, self.fin_queued).await;
        let flushed = flushed && acknowledged;
        let failure = outcome.clone().err().unwrap_or(Error::ConnectionClosed);
        let inflight: Vec<_> = self.wire.lock().inflight.drain(..).collect();
        for m in inflight {
            m.done.complete(Err(failure.clone()));
        }
        self.shared.registry.remove(self.id);
        self.shared.counters.ended(&self.wire.lock().traffic());
        let event = self.end_event(&outcome, flushed);
        self.shared.report(event);
    }

    /// `close` for a link that was open; `refused` or `error` for one that
    /// never was. A close is clean when it was orderly and everything queued
    /// was written before our FIN.
    fn end_event(&self, outcome: &Result<()>, flushed: bool) -> PeerEvent {
        let Some(info) = self.info.as_ref().filter(|_| self.opened) else {
            let err = outcome.clone().err().unwrap_or(Error::Closed);
            let st = self.wire.lock();
            let agent = st.conn.claimed_agent().map(str::to_owned);
            return PeerEvent::failure(self.id, agent, self.remote, st.conn.is_initiator(), &err);
        };
        let drain_expired = self.wire.lock().conn.drain_expired();
        PeerEvent {
            kind: EventKind::Close,
            link: self.id,
            agent: info.agent.clone(),
            remote: self.remote,
            pattern: Some(info.pattern),
            initiator: info.initiator,
            reason: Some(match outcome {
                Ok(()) => self.close_reason.unwrap_or(CloseReason::PeerClosed).code().to_owned(),
                Err(e) => e.code().to_owned(),
            }),
            message: match outcome {
                Err(e) => Some(e.to_string()),
                Ok(()) if drain_expired => {
                    Some("the other side did not end its stream within drainTimeout: it may not have read everything written".into())
                }
                Ok(()) => None,
            },
            // Orderly, everything written, and the other side said so by
            // ending its stream (not cut short by drainTimeout).
            clean: outcome.is_ok() && flushed && !drain_expired,
            written: self.wire.lock().messages_written,
            suppressed: 0,
        }
    }
}

/// True once the other side's TCP has acknowledged every byte of data
/// written (our own FIN, when `fin_queued`, need not be), false if not within
/// `bound`; true where the platform cannot tell.
async fn acknowledged(stream: &tokio::net::TcpStream, bound: Duration, fin_queued: bool) -> bool {
    let until = Instant::now() + bound;
    loop {
        if crate::sendq::data_acknowledged(crate::sendq::unacknowledged(stream), fin_queued) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(ACK_POLL).await;
    }
}

/// How much the next read may take into `buf`: the rest of the frame at
/// hand, at most `READ_CHUNK`, and for an open link `READ_CHUNK` more (many
/// small messages in one read). Before the link is open the other side is a
/// stranger: its bytes get no more room than their frame asks for. Either
/// way the room shrinks as a frame fills, so reads into a buffer holding part
/// of a frame do not make it grow again.
fn read_room(buf: &[u8], opened: bool) -> usize {
    let rest = frame::wanted(buf).clamp(frame::PREFIX, READ_CHUNK);
    if opened {
        rest + READ_CHUNK
    } else {
        rest
    }
}

/// For a read buffer whose socket has nothing more for now: an empty one is
/// given back (an idle link keeps none). One holding part of a frame is
/// kept as it is: shrinking it would copy the part again each time a peer
/// sends the rest a byte at a time.
fn trim(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > KEEP_CAPACITY {
        *buf = BytesMut::new();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Buf, BytesMut};

    use super::{read_room, trim, READ_CHUNK};

    /// Reads of `step` bytes each into a buffer, as `LinkTask::read` makes
    /// them (room, read, and the wait for more that trims), for `total`
    /// bytes; how many times the buffer's memory moved.
    fn moves_while_reading(opened: bool, total: usize, step: usize) -> usize {
        let mut buf = BytesMut::new();
        let mut moves = 0;
        let mut at = buf.as_ptr();
        let mut wire = (total as u32 - 4).to_be_bytes().to_vec(); // one frame's length prefix
        wire.resize(total, 9);
        for chunk in wire.chunks(step) {
            let room = read_room(&buf, opened);
            buf.reserve(room);
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            trim(&mut buf); // the socket has nothing more for now
            if buf.as_ptr() != at {
                moves += 1;
                at = buf.as_ptr();
            }
        }
        moves
    }

    #[test]
    fn a_frame_trickled_a_byte_at_a_time_is_not_copied_once_per_byte() {
        // 60 KiB, one byte per read: the buffer grows a few times, as a
        // vector does, and is not copied again for each byte (which would
        // cost about 60,000 × 30 KiB of copying for one frame).
        for opened in [false, true] {
            let moves = moves_while_reading(opened, 60 * 1024, 1);
            assert!(moves <= 16, "opened {opened}: the buffer moved {moves} times");
        }
    }

    #[test]
    fn a_waiting_read_buffer_is_given_back_when_empty_and_kept_inside_a_frame() {
        // Empty after a read of READ_CHUNK: nothing kept.
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        trim(&mut buf);
        assert_eq!(buf.capacity(), 0);
        // Part of a frame held: kept where it is, bytes as they were.
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        buf.extend_from_slice(&[7; 300]);
        buf.advance(100);
        let before = buf.as_ptr();
        trim(&mut buf);
        assert_eq!((buf.as_ptr(), &buf[..]), (before, &[7; 200][..]));
    }

    #[test]
    fn a_stranger_gets_room_for_its_frame_and_an_open_link_a_chunk_more() {
        // A stranger's first read is a length prefix, no more; then the rest
        // of the frame it announced.
        assert_eq!(read_room(&[], false), 4);
        let mut part = 100u32.to_be_bytes().to_vec();
        part.extend_from_slice(&[0; 30]);
        assert_eq!(read_room(&part, false), 70);
        // An open link: the same, and a chunk more for the frames behind it.
        assert_eq!(read_room(&[], true), 4 + READ_CHUNK);
        assert_eq!(read_room(&part, true), 70 + READ_CHUNK);
        // A frame announced larger than a chunk: a chunk of it at a time.
        assert_eq!(read_room(&(1u32 << 20).to_be_bytes(), false), READ_CHUNK);
        assert_eq!(read_room(&(1u32 << 20).to_be_bytes(), true), 2 * READ_CHUNK);
    }
}
