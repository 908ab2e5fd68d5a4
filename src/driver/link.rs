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

use futures::StreamExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::event::{EventKind, LinkInfo, PeerEvent};
use super::lookup;
use super::pending::PendingGuard;
use super::queue::Cmd;
use super::registry::{NewLink, Retire};
use super::shared::Shared;
use super::writer::{write_loop, WriteItem};
use crate::error::{CloseReason, Error, Result};
use crate::proto::{frame, Answer, Connection, Event, Need, PeerInfo};

/// Frame batches waiting for the writer before the link stops taking sends.
const MAX_QUEUED_WRITES: usize = 64;
/// Frames already received that are handled in one turn, so that their
/// messages reach JavaScript in one call.
const MAX_READ_BURST: usize = 64;

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
            self.shared.sink.event(PeerEvent::failure(self.id, None, None, false, &err));
        }
    }
}

/// How a connection came to be. The remote address is taken when the socket
/// is accepted or connected: once a reset arrives, the socket no longer knows it.
pub(crate) enum Origin {
    Accepted { remote: SocketAddr, pending: PendingGuard },
    Dialled { remote: Option<SocketAddr> },
}

/// Drive one connection until it ends, then settle everything it held.
pub(crate) async fn run(shared: Arc<Shared>, new: NewLink, stream: TcpStream, conn: Connection, origin: Origin) {
    let NewLink { id, rx: cmds, cancel } = new;
    let _guard = PanicGuard::new(&shared, id);
    let (remote, pending) = match origin {
        Origin::Accepted { remote, pending } => (Some(remote), Some(pending)),
        Origin::Dialled { remote } => (remote, None),
    };
    let (rd, wr) = stream.into_split();
    let limit = shared.proto.codec_limit();
    let write_limit = shared.proto.write_limit();
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
                    let dials = self.shared.registry.retire(self.id, &mut self.cmds, Retire::Requeue);
                    self.shared.start_dials(dials);
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
        self.shared.sink.event(PeerEvent::open(&info, self.remote));
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
        let dials = self.shared.registry.retire(self.id, &mut self.cmds, retire);
        self.shared.start_dials(dials);
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
            let agent = self.conn.claimed_agent().map(str::to_owned);
            return PeerEvent::failure(self.id, agent, self.remote, self.conn.is_initiator(), &err);
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

fn spawn_lookup(shared: &Arc<Shared>, need: Need, answers: mpsc::Sender<Answer>) {
    let store = shared.store.clone();
    let deadline = shared.proto.handshake_timeout;
    tokio::spawn(async move {
        let answer = lookup::answer(&*store, need, deadline).await;
        let _ = answers.send(answer).await;
    });
}
