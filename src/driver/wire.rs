//! What one connection's task shares with the threads that send on it: the
//! socket, the core's `Connection`, what waits to be written, and the queue
//! of commands (messages, and requests to hear when the link opens).
//!
//! A message sent while nothing is ahead of it on its link (queue and write
//! buffer empty, the link open) is encrypted and handed to the socket at
//! once, on the sender's thread (`send_now`): no wake-up of the link's task,
//! no second thread on the way to the kernel, and the sender learns at once
//! that it was written. Anything else waits in the queue for the task.
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
}

/// How `send_now` went.
pub(crate) enum Now {
    /// Handed to the socket whole; `done` was not needed.
    Written(Done),
    /// Part of it is with the socket, the rest in the buffer: `done` is
    /// settled by the task once the socket takes that too.
    Writing,
    /// Something is ahead of it, or the link cannot send now: queue it.
    Later(Vec<u8>, Done),
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

    /// Write `data` now if nothing is ahead of it (see the module comment).
    pub fn send_now(&self, data: Vec<u8>, done: Done) -> Now {
        let mut st = self.lock();
        if st.retired || !st.cmds.is_empty() || !st.wbuf.is_empty() || !st.conn.can_send() {
            return Now::Later(data, done);
        }
        let frames = match st.conn.send(Instant::now().into_std(), &data) {
            Ok(frames) => frames,
            Err(e) => return Now::Failed(e, done),
        };
        for f in &frames {
            st.queue_frame(f);
        }
        let end = st.written + st.wbuf.len() as u64;
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
        if st.wbuf.is_empty() {
            return Ok(());
        }
        match self.stream.try_write(&st.wbuf) {
            Ok(n) => {
                st.wbuf.advance(n);
                st.written += n as u64;
                st.stalled_since = (!st.wbuf.is_empty()).then(Instant::now);
                st.settle_written();
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

    /// Frame a message's bodies; `done` is settled once they are written.
    pub fn queue_message(&mut self, frames: &[Vec<u8>], done: Done) {
        for f in frames {
            self.queue_frame(f);
        }
        let end = self.written + self.wbuf.len() as u64;
        self.inflight.push_back(Inflight { end, done });
    }

    /// Resolve every message whose last byte the socket has taken.
    fn settle_written(&mut self) {
        while self.inflight.front().is_some_and(|m| m.end <= self.written) {
            if let Some(m) = self.inflight.pop_front() {
                self.messages_written += 1;
                m.done.complete(Ok(()));
            }
        }
    }
}
