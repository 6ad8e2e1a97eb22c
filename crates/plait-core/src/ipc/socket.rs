//! Unix stream socket pairs for talking to a child process, and waiting on descriptors.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use crate::block::{expired, next_deadline, Blocker, Interrupted};

/// Waits until `fd` reports one of `events` (or `POLLHUP`/`POLLERR`), the deadline passes
/// (returns 0) or the blocker reports an interrupt; returns the reported `revents`.
///
/// # Errors
/// [`Interrupted`] when the blocker asked to stop.
pub fn wait_fd<B: Blocker>(
    fd: RawFd,
    events: i16,
    deadline: Option<Instant>,
    blocker: &mut B,
) -> Result<i16, Interrupted> {
    loop {
        let until = next_deadline(deadline, blocker.slice());
        let timeout_ms = until.map_or(-1, |u| {
            let left = u.saturating_duration_since(Instant::now());
            // Round up: poll's millisecond timeout must not wake before the deadline.
            i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
        });
        let revents = blocker.block(|| poll_once(fd, events, timeout_ms));
        if revents != 0 {
            return Ok(revents);
        }
        if expired(deadline) {
            return Ok(0);
        }
        if blocker.interrupted() {
            return Err(Interrupted);
        }
    }
}

/// One `poll(2)` of `fd`; 0 when nothing was reported (timeout or a signal).
#[must_use]
pub fn poll_once(fd: RawFd, events: i16, timeout_ms: i32) -> i16 {
    let mut p = libc::pollfd { fd, events, revents: 0 };
    // Safety: one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&raw mut p, 1, timeout_ms) };
    if rc > 0 {
        p.revents
    } else {
        0
    }
}

/// A connected pair of Unix stream sockets, both close-on-exec. A child process that should keep
/// one end across `exec` needs close-on-exec cleared for it (the supervisor's spawn does that for
/// the descriptors it is told to keep; this module knows nothing of children).
///
/// # Errors
/// The OS error from `socketpair(2)`.
pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
    let mut fds = [0; 2];
    // Safety: `fds` is a valid two-element array for socketpair to fill.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // Safety: socketpair succeeded, so both fds are open and owned by nobody else.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((UnixStream::from(a), UnixStream::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn pair_is_connected() {
        let (mut a, mut b) = pair().unwrap();
        a.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[test]
    fn wait_fd_sees_data_timeouts_and_hangups() {
        use crate::block::Plain;
        use std::os::fd::AsRawFd;
        let (mut a, b) = pair().unwrap();
        let soon = Some(Instant::now() + std::time::Duration::from_millis(5));
        assert_eq!(wait_fd(b.as_raw_fd(), libc::POLLIN, soon, &mut Plain), Ok(0));
        a.write_all(b"x").unwrap();
        assert_ne!(
            wait_fd(b.as_raw_fd(), libc::POLLIN, None, &mut Plain).unwrap() & libc::POLLIN,
            0
        );
        drop(a);
        assert_ne!(poll_once(b.as_raw_fd(), 0, 0) & libc::POLLHUP, 0);
    }
}
