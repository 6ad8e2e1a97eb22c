//! Sending file descriptors with stream bytes (`SCM_RIGHTS` over a Unix socket).
//!
//! Descriptors ride along with the bytes of a `sendmsg` and arrive with the first byte of those
//! bytes at the receiver, in order. A protocol that announces, in each frame, how many
//! descriptors belong to it can therefore keep received descriptors in a FIFO and hand them to
//! frames as they are decoded: a frame's
//! descriptors are always sent with (or before) the frame's first byte. The framing layer above
//! (`ipc::frame`) builds on this one; nothing here knows about frames.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Most descriptors one `sendmsg` may carry (Linux's `SCM_MAX_FD`).
pub const MAX_FDS_PER_SEND: usize = 253;

/// Control-message space for [`MAX_FDS_PER_SEND`] descriptors (with room to spare).
const CMSG_BUF: usize = 4096;

/// Writes `data` (or a prefix of it) to the stream socket `fd`, with `fds` attached; returns the
/// number of bytes written. At most [`MAX_FDS_PER_SEND`] descriptors may be given; they are sent
/// only when at least one byte is (the kernel then holds its own references: the caller may
/// close its copies). Never raises `SIGPIPE`.
///
/// # Errors
/// The OS error from `sendmsg` (`WouldBlock` on a full non-blocking socket); `InvalidInput`
/// (nothing sent) for more than [`MAX_FDS_PER_SEND`] descriptors, or descriptors without a byte
/// to ride on.
pub fn send(fd: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    if fds.len() > MAX_FDS_PER_SEND {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} descriptors exceed the {MAX_FDS_PER_SEND} one send can carry",
                fds.len()
            ),
        ));
    }
    if data.is_empty() && !fds.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptors need at least one byte to ride on",
        ));
    }
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    let mut cmsg = [0u64; CMSG_BUF / 8];
    // Safety: msghdr is plain data; every pointer set below stays valid during the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds);
        // Safety: CMSG_SPACE/CMSG_LEN are pure arithmetic.
        let (space, len) = unsafe { (libc::CMSG_SPACE(bytes as u32), libc::CMSG_LEN(bytes as u32)) };
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = space as usize;
        // Safety: the control buffer is large enough for one header plus `fds` (253 * 4 bytes
        // at most) and suitably aligned (u64 array).
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&raw const msg);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = len as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(header), bytes);
        }
    }
    loop {
        // Safety: `msg` describes valid buffers (see above).
        let n = unsafe { libc::sendmsg(fd, &raw const msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Reads into `buf` from the stream socket `fd`; descriptors that arrive are appended to `fds`
/// (close-on-exec). Returns the number of bytes read (0 at end of stream).
///
/// # Errors
/// The OS error from `recvmsg`; `InvalidData` if descriptors were dropped by the kernel for
/// lack of control-message space (the stream's descriptor accounting is then lost).
pub fn recv(fd: RawFd, buf: &mut [u8], fds: &mut VecDeque<OwnedFd>) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cmsg = [0u64; CMSG_BUF / 8];
    // Safety: msghdr is plain data; every pointer set below stays valid during the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = CMSG_BUF;
    let n = loop {
        // Safety: `msg` describes valid buffers (see above).
        let n = unsafe { libc::recvmsg(fd, &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    // Safety: the kernel filled `msg_control` with `msg_controllen` bytes of well-formed
    // control messages; SCM_RIGHTS data is an array of fds now owned by this process.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&raw const msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header);
                let size = std::mem::size_of::<RawFd>();
                let count = ((*header).cmsg_len - libc::CMSG_LEN(0) as usize) / size;
                for i in 0..count {
                    let mut raw = [0u8; std::mem::size_of::<RawFd>()];
                    std::ptr::copy_nonoverlapping(data.add(i * size), raw.as_mut_ptr(), size);
                    fds.push_back(OwnedFd::from_raw_fd(RawFd::from_ne_bytes(raw)));
                }
            }
            header = libc::CMSG_NXTHDR(&raw const msg, header);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "file descriptors were dropped in transit (control message truncated)",
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::socket;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn descriptors_travel_in_order_with_their_bytes() {
        let (a, b) = socket::pair().unwrap();
        let mut files = Vec::new();
        for i in 0..3u8 {
            let mut f = tempfile_with(&[i; 4]);
            f.rewind().unwrap();
            files.push(f);
        }
        let raw: Vec<RawFd> = files.iter().map(AsRawFd::as_raw_fd).collect();
        assert_eq!(send(a.as_raw_fd(), b"xy", &raw[..2]).unwrap(), 2);
        assert_eq!(send(a.as_raw_fd(), b"z", &raw[2..]).unwrap(), 1);
        assert_eq!(
            send(a.as_raw_fd(), b"", &raw[..1]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let too_many = vec![raw[0]; MAX_FDS_PER_SEND + 1];
        assert_eq!(
            send(a.as_raw_fd(), b"w", &too_many).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        drop(files);
        let mut got = VecDeque::new();
        let mut buf = [0u8; 16];
        let mut total = 0;
        while total < 3 {
            total += recv(b.as_raw_fd(), &mut buf[total..], &mut got).unwrap();
        }
        assert_eq!(&buf[..3], b"xyz");
        assert_eq!(got.len(), 3);
        for (i, fd) in got.into_iter().enumerate() {
            let mut f = std::fs::File::from(fd);
            let mut content = Vec::new();
            f.read_to_end(&mut content).unwrap();
            assert_eq!(content, vec![i as u8; 4]);
        }
    }

    fn tempfile_with(data: &[u8]) -> std::fs::File {
        let seg = crate::ipc::shm::Segment::create(data.len()).unwrap();
        let mut f = std::fs::File::from(seg.fd().unwrap().try_clone().unwrap());
        f.write_all(data).unwrap();
        f
    }
}
