//! How much a socket has written that the other side's TCP has not yet
//! acknowledged: a close is clean only once that is nothing, or a frame
//! still in flight when the other side's socket goes away is lost without a
//! word (a stalled or cut network, seen by the soak).

use std::os::fd::AsRawFd;

/// Bytes in the socket's send queue (unsent or unacknowledged), where the
/// platform can tell; `None` elsewhere.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) fn unacknowledged(socket: &impl AsRawFd) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ for TCP) writes one c_int through the
    // pointer, which points at `n`, alive and writable for the call; the
    // descriptor is borrowed from a live socket, and a bad one only makes
    // the call fail.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (rc == 0).then(|| usize::try_from(n).unwrap_or(0))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn unacknowledged(_socket: &impl AsRawFd) -> Option<usize> {
    None
}
