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

/// Whether every byte of data we wrote was acknowledged, from what
/// `unacknowledged` says and whether our FIN is queued. A FIN takes one
/// sequence number and counts in the send queue until it is acknowledged,
/// and it comes after every data byte: with it queued, one outstanding means
/// the data is all acknowledged and only the FIN is not (the other side, its
/// stream already ended, may be gone before it acknowledges it).
pub(crate) fn data_acknowledged(outstanding: Option<usize>, fin_queued: bool) -> bool {
    match outstanding {
        None => true,
        Some(n) => n <= usize::from(fin_queued),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_fin_is_not_data() {
        assert!(data_acknowledged(None, false), "a platform that cannot tell");
        assert!(data_acknowledged(Some(0), false));
        assert!(data_acknowledged(Some(0), true));
        assert!(!data_acknowledged(Some(1), false), "a data byte");
        assert!(data_acknowledged(Some(1), true), "only our FIN");
        assert!(!data_acknowledged(Some(2), true), "a data byte and our FIN");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_send_queue_empties_once_the_other_side_acknowledges() -> std::io::Result<()> {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let mut ours = std::net::TcpStream::connect(listener.local_addr()?)?;
        let (mut theirs, _) = listener.accept()?;
        ours.write_all(&[7u8; 1000])?;
        let mut got = [0u8; 1000];
        theirs.read_exact(&mut got)?;
        ours.shutdown(std::net::Shutdown::Write)?;
        // Loopback acknowledges at once; allow the kernel a moment anyway.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !data_acknowledged(unacknowledged(&ours), false) && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(unacknowledged(&ours), Some(0), "data and FIN acknowledged");
        Ok(())
    }
}
