//! One task per TCP connection: socket -> core -> socket, plus a writer task.
//!
//! Reading never waits on writing: frames to write go through a bounded queue
//! to a writer task, and the link task keeps reading while the queue is full
//! (otherwise two peers that both send a lot could each wait for the other to
//! read). A `send` resolves when the writer has flushed its frames.
//!
//! Closing is orderly where it can be: the side that closes shuts down its
//! write half (FIN) and keeps reading until the other side's end of stream,
//! so frames that were already in flight are still delivered. Messages that
//! were queued on the link but not yet encrypted go back to the registry for
//! another link; nothing written is ever sent twice.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::listener::PendingGuard;
use super::registry::{NewLink, Retire};
use super::{Done, EventKind, LinkInfo, PeerEvent, SendOptions, Shared, Target};
use crate::error::{CloseReason, Error, Result};
use crate::proto::{self, frame, Answer, Connection, Dial, DialSpec, Event, Need, PeerInfo};

/// Frame batches waiting for the writer before the link stops taking sends.
const MAX_QUEUED_WRITES: usize = 64;
/// Frames already received that are handled in one turn, so that their
/// messages reach JavaScript in one call.
const MAX_READ_BURST: usize = 64;

/// A message on its way to a link.
pub(crate) struct Outgoing {
    pub data: Vec<u8>,
    pub done: Done,
    pub target: Target,
    pub opts: SendOptions,
    pub attempts: u8,
}

pub(crate) enum Cmd {
    Send(Outgoing),
    /// Answer once the link is open (the address lets a closing link pass
    /// the request on to the next one).
    Connect { done: oneshot::Sender<Result<LinkInfo>>, target: Target, opts: SendOptions },
}

/// Settles a link whose task panicked: tokio contains the panic, and this
/// guard removes the link from the registry and reports it, so the node
/// keeps serving everyone else. (Sends queued on it are rejected when their
/// channel is dropped.)
struct PanicGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.registry.remove(self.id);
            let err = Error::Internal("a link task panicked".into());
            self.shared.sink.event(failure_event(self.id, None, None, false, &err));
        }
    }
}

/// Frames for the writer, and who to tell once they are flushed.
struct WriteItem {
    frames: Vec<Vec<u8>>,
    done: Option<Done>,
}

/// Open an outbound link: find the key, connect, write message 1, run.
pub(crate) async fn dial(shared: Arc<Shared>, new: NewLink, target: Target, opts: SendOptions) {
    let _guard = PanicGuard { shared: shared.clone(), id: new.id };
    let started = tokio::select! {
        r = start_dial(&shared, &target, &opts) => r,
        _ = new.cancel.cancelled() => Err(Error::Closed),
    };
    match started {
        Ok((stream, conn, remote)) => {
            let peer = Dialled { agent: target.agent.clone(), remote };
            run(shared, new, stream, conn, Origin::Dialled(peer)).await;
        }
        Err(err) => {
            let NewLink { id, mut rx, .. } = new;
            shared.registry.retire(&shared, id, &mut rx, Retire::Reject(err.clone()));
            shared.registry.remove(id);
            let remote = format!("{}:{}", target.host.as_deref().unwrap_or(""), target.port.unwrap_or(0)).parse().ok();
            shared.sink.event(failure_event(id, target.agent.clone(), remote, true, &err));
        }
    }
}

async fn start_dial(shared: &Arc<Shared>, target: &Target, opts: &SendOptions) -> Result<(TcpStream, Connection, Option<SocketAddr>)> {
    let agent = target.agent.clone().unwrap_or_default();
    let proto = &shared.proto;
    // The responder's key: given, else the store's, else the one its agent id names.
    let remote_key = match (&proto.identity, target.key) {
        (None, _) => None,
        (Some(_), Some(k)) => Some(k),
        (Some(_), None) => {
            let stored = tokio::time::timeout(proto.handshake_timeout, shared.store.peer_key(agent.clone()))
                .await
                .map_err(|_| Error::LookupFailed(format!("key of {agent}: timed out")))?
                .map_err(|e| Error::LookupFailed(format!("key of {agent}: {e}")))?;
            Some(stored.or_else(|| proto::keys::agent_key(&agent)).ok_or(Error::UnknownPeer { agent: agent.clone() })?)
        }
    };
    let host = target.host.clone().unwrap_or_default();
    let port = target.port.unwrap_or(0);
    let addr = format!("{host}:{port}");
    let connect = tokio::time::timeout(proto.handshake_timeout, TcpStream::connect((host.as_str(), port)));
    let stream = match connect.await {
        Ok(Ok(s)) => s,
        // A reset here means something accepted and then dropped us.
        Ok(Err(e)) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted) => {
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
            let local = shared.local.lock().ok().and_then(|g| *g);
            let from = proto::Address {
                agent: shared.cfg.agent.clone(),
                host: Some(shared.cfg.host.clone()),
                port: local.map(|a| a.port()).or(Some(shared.cfg.port)),
            };
            Dial::Ticket { ticket: ticket.clone(), from }
        }
        (None, false) => Dial::Key,
    };
    let spec = DialSpec {
        dial,
        local_agent: shared.cfg.agent.clone(),
        remote_agent: agent,
        remote_key,
        timestamp: super::next_timestamp(),
    };
    let conn = Connection::initiator(shared.proto.clone(), Instant::now().into_std(), spec)?;
    Ok((stream, conn, remote))
}

/// Whom we dialled (reported if the link fails before its handshake ends).
pub(crate) struct Dialled {
    pub agent: Option<String>,
    pub remote: Option<SocketAddr>,
}

/// How a connection came to be. The remote address is taken when the socket
/// is accepted or connected: once a reset arrives, the socket no longer knows it.
pub(crate) enum Origin {
    Accepted { remote: SocketAddr, pending: PendingGuard },
    Dialled(Dialled),
}

/// Drive one connection until it ends, then settle everything it held.
pub(crate) async fn run(shared: Arc<Shared>, new: NewLink, stream: TcpStream, conn: Connection, origin: Origin) {
    let NewLink { id, rx: cmds, cancel } = new;
    let _guard = PanicGuard { shared: shared.clone(), id };
    let (remote, pending, dialled_agent) = match origin {
        Origin::Accepted { remote, pending } => (Some(remote), Some(pending), None),
        Origin::Dialled(d) => (d.remote, None, d.agent),
    };
    let (rd, wr) = stream.into_split();
    let limit = shared.proto.codec_limit();
    // Writing needs its own limit: a node that refuses legacy callers may
    // still dial a JavaScript node, which must get a long message as one
    // oversized `T`. The core has already bounded the message size.
    let write_limit = shared.proto.max_frame.max(shared.proto.max_message + 1 + frame::TAG_LEN);
    let written = Arc::new(AtomicU64::new(0));
    let (wtx, wrx) = mpsc::channel::<WriteItem>(MAX_QUEUED_WRITES);
    let writer = tokio::spawn(write_loop(FramedWrite::new(wr, frame::codec(write_limit)), wrx, written.clone()));
    let (answers, answers_rx) = mpsc::channel::<Answer>(2);
    let mut task = LinkTask {
        shared,
        id,
        conn,
        cmds,
        remote,
        dialled_agent,
        pending,
        reader: FramedRead::new(rd, frame::codec(limit)),
        limit,
        writer: Some(wtx),
        writer_task: writer,
        writer_done: false,
        written,
        answers,
        answers_rx,
        outq: VecDeque::new(),
        inbox: Vec::new(),
        info: None,
        close_reason: None,
    };
    let outcome = task.drive(&cancel).await;
    task.settle(outcome).await;
}

/// One connection's task: the core, the socket, and everything it owes.
struct LinkTask {
    shared: Arc<Shared>,
    id: u64,
    conn: Connection,
    /// Messages (and connect requests) routed to this link.
    cmds: mpsc::UnboundedReceiver<Cmd>,
    remote: Option<SocketAddr>,
    dialled_agent: Option<String>,
    /// Counts against the pending-inbound caps until the handshake completes.
    pending: Option<PendingGuard>,
    reader: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    limit: usize,
    /// Our end of the writer's queue; dropping it makes the writer send FIN.
    writer: Option<mpsc::Sender<WriteItem>>,
    writer_task: tokio::task::JoinHandle<Result<()>>,
    writer_done: bool,
    written: Arc<AtomicU64>,
    answers: mpsc::Sender<Answer>,
    answers_rx: mpsc::Receiver<Answer>,
    /// Frames waiting for room in the writer's queue.
    outq: VecDeque<WriteItem>,
    /// Messages to hand to the application in one call.
    inbox: Vec<(Vec<u8>, bool)>,
    info: Option<LinkInfo>,
    close_reason: Option<CloseReason>,
}

impl LinkTask {
    /// Run until the connection ends: `Ok` for an orderly end.
    async fn drive(&mut self, cancel: &CancellationToken) -> Result<()> {
        let mut cancelled = false;
        loop {
            self.take_output();
            if self.conn.is_closed() {
                return Ok(());
            }
            // Once closing and everything queued is with the writer, let it
            // finish: it flushes and sends our FIN while we keep reading.
            if self.conn.is_draining() && self.outq.is_empty() {
                self.writer = None;
            }
            let deadline = self.conn.poll_timeout().map(Instant::from_std);
            let now = || Instant::now().into_std();
            let can_send = self.conn.is_open() && self.outq.len() < MAX_QUEUED_WRITES;
            let writer = self.writer.clone();
            tokio::select! {
                permit = reserve(&writer), if !self.outq.is_empty() => match (permit, self.outq.pop_front()) {
                    (Some(p), Some(item)) => p.send(item),
                    _ => return Err(Error::ConnectionClosed),
                },
                frame = self.reader.next() => match frame {
                    Some(Ok(body)) => {
                        self.conn.handle_frame(now(), &body)?;
                        self.read_burst()?;
                    }
                    Some(Err(e)) => return Err(codec_error(&e, self.limit)),
                    None => {
                        self.conn.handle_eof()?;
                        self.close_reason.get_or_insert(CloseReason::PeerClosed);
                        return Ok(());
                    }
                },
                Some(answer) = self.answers_rx.recv() => self.conn.handle_lookup(now(), answer)?,
                cmd = self.cmds.recv(), if can_send => match cmd {
                    Some(Cmd::Send(out)) => match self.conn.send(now(), &out.data) {
                        Ok(frames) => self.outq.push_back(WriteItem { frames, done: Some(out.done) }),
                        Err(e) => out.done.complete(Err(e)),
                    },
                    Some(Cmd::Connect { done, .. }) => {
                        let _ = done.send(self.info.clone().ok_or(Error::ConnectionClosed));
                    }
                    None => {}
                },
                () = sleep_until(deadline) => self.conn.handle_timeout(now())?,
                () = cancel.cancelled(), if !cancelled => {
                    cancelled = true;
                    self.conn.close(now());
                    if self.conn.is_closed() {
                        return Err(Error::Closed);
                    }
                },
                res = &mut self.writer_task, if !self.writer_done => {
                    self.writer_done = true;
                    match res {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(e),
                        Err(join) => return Err(Error::Internal(format!("writer task: {join}"))),
                    }
                },
            }
        }
    }

    /// Handle the frames that are already buffered, without waiting for more,
    /// so that their messages reach the application in one call.
    fn read_burst(&mut self) -> Result<()> {
        use futures::FutureExt;
        for _ in 0..MAX_READ_BURST {
            if !self.conn.is_open() && !self.conn.is_draining() {
                return Ok(()); // handshake frames are handled one at a time
            }
            match self.reader.next().now_or_never() {
                Some(Some(Ok(body))) => self.conn.handle_frame(Instant::now().into_std(), &body)?,
                Some(Some(Err(e))) => return Err(codec_error(&e, self.limit)),
                // End of stream, or nothing buffered: the select loop sees it next.
                Some(None) | None => return Ok(()),
            }
        }
        Ok(())
    }

    /// Act on what the core produced: frames to write, lookups to start,
    /// the link opening or closing, messages for the application.
    fn take_output(&mut self) {
        while let Some(f) = self.conn.poll_transmit() {
            self.outq.push_back(WriteItem { frames: vec![f], done: None });
        }
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Need(need) => spawn_lookup(&self.shared, need, self.answers.clone()),
                Event::Open(peer) => self.opened(&peer),
                Event::Message { data, early } => self.inbox.push((data, early)),
                Event::Closing(reason) => {
                    self.close_reason = Some(reason);
                    self.shared.registry.retire(&self.shared, self.id, &mut self.cmds, Retire::Requeue);
                }
            }
        }
        self.deliver();
    }

    fn opened(&mut self, peer: &PeerInfo) {
        self.pending = None;
        let info = LinkInfo {
            link: self.id,
            agent: peer.agent.clone(),
            remote: self.remote.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            pattern: peer.pattern,
            native: peer.native,
            initiator: peer.initiator,
            encrypted: self.shared.proto.identity.is_some(),
        };
        self.shared.registry.opened(self.id, &info);
        self.shared.sink.event(PeerEvent {
            kind: EventKind::Open,
            link: self.id,
            agent: info.agent.clone(),
            remote: self.remote,
            pattern: Some(info.pattern),
            initiator: info.initiator,
            reason: None,
            message: None,
            clean: true,
            written: 0,
        });
        self.info = Some(info);
    }

    fn deliver(&mut self) {
        if let (Some(info), false) = (&self.info, self.inbox.is_empty()) {
            self.shared.sink.messages(info, std::mem::take(&mut self.inbox));
        }
    }

    /// The connection has ended: leave nothing this link held unanswered.
    async fn settle(mut self, outcome: Result<()>) {
        // Messages that arrived intact before whatever ended the link are
        // still delivered.
        while let Some(event) = self.conn.poll_event() {
            if let Event::Message { data, early } = event {
                self.inbox.push((data, early));
            }
        }
        self.deliver();
        self.pending = None;
        while let Some(f) = self.conn.poll_transmit() {
            self.outq.push_back(WriteItem { frames: vec![f], done: None });
        }
        // Unsent messages of a link that was open go to the next link; those
        // of a link that never opened share its fate (the next try would too).
        let was_open = self.info.is_some();
        let retire = match &outcome {
            Ok(()) if was_open => Retire::Requeue,
            Ok(()) => Retire::Reject(Error::ConnectionClosed),
            Err(e) if was_open && !e.is_refusal() => Retire::Requeue,
            Err(e) => Retire::Reject(e.clone()),
        };
        self.shared.registry.retire(&self.shared, self.id, &mut self.cmds, retire);
        // After an orderly end, frames already encrypted are still written
        // (the other side reads until our FIN). After a failure only handshake
        // frames (a refusal `A`) go out; encrypted messages are rejected.
        let failure = outcome.clone().err().unwrap_or(Error::ConnectionClosed);
        if let Some(tx) = self.writer.take() {
            for item in self.outq.drain(..) {
                if outcome.is_ok() || item.done.is_none() {
                    if let Err(mpsc::error::SendError(item)) = tx.send(item).await {
                        if let Some(done) = item.done {
                            done.complete(Err(failure.clone()));
                        }
                    }
                } else if let Some(done) = item.done {
                    done.complete(Err(failure.clone()));
                }
            }
        }
        for item in self.outq.drain(..) {
            if let Some(done) = item.done {
                done.complete(Err(failure.clone()));
            }
        }
        if !self.writer_done
            && tokio::time::timeout(self.shared.proto.drain_timeout, &mut self.writer_task).await.is_err()
        {
            self.writer_task.abort();
        }
        self.shared.registry.remove(self.id);
        let event = self.end_event(&outcome);
        self.shared.sink.event(event);
    }

    /// `close` for a link that was open; `refused` or `error` for one that never was.
    fn end_event(&self, outcome: &Result<()>) -> PeerEvent {
        let Some(info) = &self.info else {
            let err = outcome.clone().err().unwrap_or(Error::Closed);
            return failure_event(self.id, self.dialled_agent.clone(), self.remote, self.conn.is_initiator(), &err);
        };
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
            message: outcome.as_ref().err().map(ToString::to_string),
            clean: outcome.is_ok(),
            written: self.written.load(Ordering::Relaxed),
        }
    }
}

/// The event for a connection that never opened.
pub(crate) fn failure_event(id: u64, agent: Option<String>, remote: Option<SocketAddr>, initiator: bool, err: &Error) -> PeerEvent {
    PeerEvent {
        kind: if err.is_refusal() { EventKind::Refused } else { EventKind::Error },
        link: id,
        agent,
        remote,
        pattern: None,
        initiator,
        reason: Some(err.code().to_owned()),
        message: Some(err.to_string()),
        clean: false,
        written: 0,
    }
}

async fn reserve(tx: &Option<mpsc::Sender<WriteItem>>) -> Option<mpsc::Permit<'_, WriteItem>> {
    match tx {
        Some(tx) => tx.reserve().await.ok(),
        None => None,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn codec_error(err: &std::io::Error, limit: usize) -> Error {
    match err.kind() {
        // LengthDelimitedCodec reports an oversized length as InvalidData...
        std::io::ErrorKind::InvalidData => Error::FrameTooLarge { max: limit },
        // ...and the end of the stream inside a frame as Other ("bytes
        // remaining on stream"); socket failures have kinds of their own.
        std::io::ErrorKind::Other => Error::ConnectionClosed,
        _ => Error::from_io(err),
    }
}

pub(crate) fn reject(cmd: Cmd, err: &Error) {
    match cmd {
        Cmd::Send(out) => {
            out.done.complete(Err(err.clone()));
        }
        Cmd::Connect { done, .. } => {
            let _ = done.send(Err(err.clone()));
        }
    }
}

fn spawn_lookup(shared: &Arc<Shared>, need: Need, answers: mpsc::Sender<Answer>) {
    let store = shared.store.clone();
    let deadline = shared.proto.handshake_timeout;
    let raw = shared.proto.identity.is_none();
    tokio::spawn(async move {
        let answer = match need {
            // Raw mode without a key source: simulations admit every agent.
            Need::PeerKey { .. } if raw && !store.has_keys() => Answer::Key(Some([0; 32])),
            Need::PeerKey { agent } => match tokio::time::timeout(deadline, store.peer_key(agent)).await {
                Ok(Ok(key)) => Answer::Key(key),
                Ok(Err(e)) => Answer::Failed(e),
                Err(_) => Answer::Failed("timed out".into()),
            },
            Need::Ticket { ticket, from } => match tokio::time::timeout(deadline, store.check_ticket(ticket, from)).await {
                Ok(Ok(ok)) => Answer::Ticket(ok),
                Ok(Err(e)) => Answer::Failed(e),
                Err(_) => Answer::Failed("timed out".into()),
            },
        };
        let _ = answers.send(answer).await;
    });
}

/// Write frames in batches: feed everything queued, flush once, then resolve
/// the sends. Ends (and shuts down the write half, sending FIN) when the link
/// drops its end of the queue.
async fn write_loop(
    mut sink: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    mut rx: mpsc::Receiver<WriteItem>,
    written: Arc<AtomicU64>,
) -> Result<()> {
    let mut batch: Vec<WriteItem> = Vec::new();
    while let Some(item) = rx.recv().await {
        batch.push(item);
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let mut result = Ok(());
        'feed: for item in &mut batch {
            for f in item.frames.drain(..) {
                if let Err(e) = sink.feed(Bytes::from(f)).await {
                    result = Err(e);
                    break 'feed;
                }
            }
        }
        if result.is_ok() {
            result = SinkExt::<Bytes>::flush(&mut sink).await;
        }
        match result {
            Ok(()) => {
                for item in batch.drain(..) {
                    if let Some(done) = item.done {
                        written.fetch_add(1, Ordering::Relaxed);
                        done.complete(Ok(()));
                    }
                }
            }
            Err(e) => {
                let err = Error::from_io(&e);
                rx.close();
                for item in batch.drain(..).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                    if let Some(done) = item.done {
                        done.complete(Err(err.clone()));
                    }
                }
                return Err(err);
            }
        }
    }
    // Bounded: a peer that stopped reading must not hold us forever.
    let _ = tokio::time::timeout(Duration::from_secs(5), SinkExt::<Bytes>::close(&mut sink)).await;
    Ok(())
}
