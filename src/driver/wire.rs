//! What one connection's task shares with the threads that send on it: the
//! socket, the core's `Connection`, what waits to be written, and the queue
//! of commands (messages, and requests to hear when the link opens).
//!
//! A message sent while nothing is queued ahead of it on its open link is
//! encrypted on the sender's thread, straight into the write buffer
//! (`send_now`), and, if the buffer was empty, handed to the socket at once:
//! no wake-up of the link's task, no second thread on the way to the kernel,
//! and the sender learns at once that it was written. A sender that sends
//! many in a row "corks" the later ones: they wait in the buffer and go in
//! one write when it uncorks (`uncork`), at the end of its turn. Anything
//! else waits in the queue for the task.
//!
//! Lock order: the registry's lock, then a wire's; never the other way.
//! Whoever holds a wire's lock calls nothing that takes the registry's.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::queue::{Cmd, Done};
use crate::error::{Error, Result};
use crate::proto::{frame, Connection};

/// Buffers larger than this are given back once empty (an idle link keeps none).
pub(crate) const KEEP_CAPACITY: usize = 2 * 1024;

/// A message whose frames are queued to be written: resolved when the
/// socket has taken `end` bytes in all.
pub(crate) struct Inflight {
    pub end: u64,
    pub done: Done,
}

pub(crate) struct Wire {
    pub stream: TcpStream,
    state: Mutex<WireState>,
    /// Wakes the link's task: a command was queued, or bytes wait to be written.
    pub wake: Notify,
}

pub(crate) struct WireState {
    pub conn: Connection,
    /// Commands for the task, in order.
    pub cmds: VecDeque<Cmd>,
    /// The registry took this link off its route: it takes nothing more.
    pub retired: bool,
    /// Frames not yet taken by the socket.
    pub wbuf: BytesMut,
    /// Messages in `wbuf`, in order.
    pub inflight: VecDeque<Inflight>,
    /// Bytes the socket has taken over the link's life.
    pub written: u64,
    /// Since when `wbuf` has waited with no progress.
    pub stalled_since: Option<Instant>,
    /// Messages written over the link's life.
    pub messages_written: u64,
    /// Messages received, and bytes read (frames whole), over its life.
    pub messages_read: u64,
    pub bytes_read: u64,
    /// A sender corked messages in `wbuf` and will uncork them.
    pub corked: bool,
}

/// How `send_now` went.
pub(crate) enum Now {
    /// Handed to the socket whole; `done` was not needed.
    Written(Done),
    /// It is in the buffer behind others (or partly written): `done` is
    /// settled once the socket takes it.
    Writing,
    /// Corked: in the buffer until `uncork`. `first`: the wire was not
    /// corked before, so the caller must list it for uncorking.
    Corked { first: bool },
    /// Something is ahead of it, or the link cannot send now: queue it.
    Later(Done),
    /// The link refused it for good (too large for the other side, say).
    Failed(Error, Done),
}

impl Wire {
    pub fn new(stream: TcpStream, conn: Connection) -> Self {
        let state = WireState {
            conn,
            cmds: VecDeque::new(),
            retired: false,
            wbuf: BytesMut::new(),
            inflight: VecDeque::new(),
            written: 0,
            stalled_since: None,
            messages_written: 0,
            messages_read: 0,
            bytes_read: 0,
            corked: false,
        };
        Self { stream, state: Mutex::new(state), wake: Notify::new() }
    }

    pub fn lock(&self) -> MutexGuard<'_, WireState> {
        // Every update under this lock leaves the state usable; a panic in
        // one holder must not take the link's senders down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a command for the task; hands it back if the link is retired.
    pub fn push(&self, cmd: Cmd) -> std::result::Result<(), Cmd> {
        let mut st = self.lock();
        if st.retired {
            return Err(cmd);
        }
        st.cmds.push_back(cmd);
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// Encrypt `data` into the write buffer if nothing is queued ahead of it,
    /// and write it now unless `cork` or the buffer held more already (see
    /// the module comment). Past `high_water` bytes waiting, it is queued.
    /// `now`: the sender's clock reading (one serves a run of sends).
    pub fn send_now(&self, data: &[u8], done: Done, cork: bool, high_water: usize, now: Instant) -> Now {
        let mut st = self.lock();
        if st.retired || !st.cmds.is_empty() || st.wbuf.len() >= high_water || !st.conn.can_send() {
            return Now::Later(done);
        }
        let behind = !st.wbuf.is_empty();
        if let Err(e) = st.seal_message(data, now) {
            return Now::Failed(e, done);
        }
        let end = st.written + st.wbuf.len() as u64;
        if cork || behind {
            st.inflight.push_back(Inflight { end, done });
            if cork {
                let first = !st.corked;
                st.corked = true;
                return Now::Corked { first };
            }
            // Whoever put the bytes ahead of it writes it too: the task
            // (it waits for the socket) or the sender who corked them.
            return Now::Writing;
        }
        match self.stream.try_write(&st.wbuf) {
            Ok(n) if n == st.wbuf.len() => {
                st.wbuf.clear();
                st.written += n as u64;
                st.stalled_since = None;
                st.messages_written += 1;
                if st.wbuf.capacity() > KEEP_CAPACITY {
                    st.wbuf = BytesMut::new();
                }
                Now::Written(done)
            }
            // The rest waits for the task. A socket error is the task's to
            // find too: its next write fails the link and settles this.
            partly => {
                if let Ok(n) = partly {
                    st.wbuf.advance(n);
                    st.written += n as u64;
                }
                st.inflight.push_back(Inflight { end, done });
                drop(st);
                self.wake.notify_one();
                Now::Writing
            }
        }
    }

    /// Hand the socket what it takes of `wbuf`, and settle what that completes.
    pub fn write(&self, st: &mut WireState) -> Result<()> {
        self.write_taking(st, None)
    }

    /// Write what a sender corked. The ids of the sends that completes are
    /// added to `ids` instead of being reported (the sender settles them);
    /// what the socket does not take is left to the task.
    pub fn uncork(&self, ids: &mut Vec<u64>) {
        let mut st = self.lock();
        st.corked = false;
        let failed = self.write_taking(&mut st, Some(ids)).is_err();
        let rest = !st.wbuf.is_empty();
        drop(st);
        if failed || rest {
            // The task finds the error, or writes the rest, once woken.
            self.wake.notify_one();
        }
    }

    fn write_taking(&self, st: &mut WireState, ids: Option<&mut Vec<u64>>) -> Result<()> {
        if st.wbuf.is_empty() {
            return Ok(());
        }
        match self.stream.try_write(&st.wbuf) {
            Ok(n) => {
                st.wbuf.advance(n);
                st.written += n as u64;
                st.stalled_since = (!st.wbuf.is_empty()).then(Instant::now);
                st.settle_written(ids);
                if st.wbuf.is_empty() && st.wbuf.capacity() > KEEP_CAPACITY {
                    st.wbuf = BytesMut::new();
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(Error::from_io(&e)),
        }
    }
}

impl WireState {
    /// Frame one body into `wbuf`.
    pub fn queue_frame(&mut self, body: &[u8]) {
        if self.wbuf.is_empty() {
            self.stalled_since = Some(Instant::now());
        }
        frame::encode_into(&mut self.wbuf, body);
    }

    /// Encrypt and frame one application message into the write buffer.
    pub fn seal_message(&mut self, data: &[u8], now: Instant) -> crate::Result<()> {
        let was_empty = self.wbuf.is_empty();
        self.conn.send_into(now.into_std(), data, &mut self.wbuf)?;
        if was_empty && !self.wbuf.is_empty() {
            self.stalled_since = Some(now);
        }
        Ok(())
    }

    /// `seal_message`; `done` is settled once its frames are written.
    pub fn queue_message(&mut self, data: &[u8], done: Done) {
        match self.seal_message(data, Instant::now()) {
            Ok(()) => {
                let end = self.written + self.wbuf.len() as u64;
                self.inflight.push_back(Inflight { end, done });
            }
            Err(e) => done.complete(Err(e)),
        }
    }

    /// What this link has carried so far.
    pub fn traffic(&self) -> super::stats::Traffic {
        super::stats::Traffic {
            messages_in: self.messages_read,
            bytes_in: self.bytes_read,
            messages_out: self.messages_written,
            bytes_out: self.written,
        }
    }

    /// Resolve every message whose last byte the socket has taken: through
    /// its `Done`, or, for those `ids` can take, by its id.
    fn settle_written(&mut self, mut ids: Option<&mut Vec<u64>>) {
        while self.inflight.front().is_some_and(|m| m.end <= self.written) {
            if let Some(mut m) = self.inflight.pop_front() {
                self.messages_written += 1;
                // take_id only when there is somewhere to put the id: it
                // disarms the Done.
                match ids.as_deref_mut().and_then(|ids| m.done.take_id().map(|id| (ids, id))) {
                    Some((ids, id)) => ids.push(id),
                    None => m.done.complete(Ok(())),
                }
            }
        }
    }
}
