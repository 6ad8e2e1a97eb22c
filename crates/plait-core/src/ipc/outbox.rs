//! Frames waiting to be written to a stream socket, with the descriptors that belong to them.
//!
//! Descriptors ride on a `sendmsg` (at most [`MAX_FDS_PER_SEND`] each) and reach the receiver
//! with the first byte of that call's data. [`Outbox::write_to`] therefore never sends a
//! frame's first byte before (or without) its descriptors: each call carries the descriptors of
//! whole frames, and its data stops short of the first frame whose descriptors did not fit.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::fdpass::{self, MAX_FDS_PER_SEND};
use super::frame::{encode_with_fds, FrameError, MAX_FDS};

/// Written bytes kept before the buffer is compacted.
const COMPACT_AFTER: usize = 1 << 20;

/// See the module docs.
#[derive(Debug, Default)]
pub struct Outbox {
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    written: usize,
    /// Frames whose descriptors are not sent yet: (offset of the frame in `buf`, descriptors).
    fds: VecDeque<(usize, Vec<OwnedFd>)>,
}

impl Outbox {
    /// Queues one frame with `fds` (at most [`MAX_FDS`]); they are closed here once sent.
    ///
    /// # Errors
    /// [`FrameError`] when the payload or the descriptors exceed a frame's limits.
    pub fn push(&mut self, kind: u8, id: u64, payload: &[u8], fds: Vec<OwnedFd>) -> Result<(), FrameError> {
        if fds.len() > MAX_FDS {
            return Err(FrameError::TooManyFds(fds.len()));
        }
        let at = self.buf.len();
        encode_with_fds(&mut self.buf, kind, id, payload, fds.len())?;
        if !fds.is_empty() {
            self.fds.push_back((at, fds));
        }
        Ok(())
    }

    /// Whether everything queued was written.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.written == self.buf.len()
    }

    /// Writes as much as `socket` takes: `Ok(true)` once everything is written, `Ok(false)`
    /// when a non-blocking socket is full.
    ///
    /// # Errors
    /// The OS error from `sendmsg`; `WriteZero` if the socket accepts nothing.
    pub fn write_to(&mut self, socket: RawFd) -> io::Result<bool> {
        while self.written < self.buf.len() {
            let mut count = 0;
            let mut frames = 0;
            let mut limit = self.buf.len();
            for (at, fds) in &self.fds {
                if count + fds.len() > MAX_FDS_PER_SEND {
                    limit = *at; // that frame's bytes wait for the next call, with its fds
                    break;
                }
                count += fds.len();
                frames += 1;
            }
            let raw: Vec<RawFd> = self
                .fds
                .iter()
                .take(frames)
                .flat_map(|(_, fds)| fds.iter().map(AsRawFd::as_raw_fd))
                .collect();
            match fdpass::send(socket, &self.buf[self.written..limit], &raw) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    // The kernel holds the sent descriptors now: ours close.
                    self.fds.drain(..frames);
                    self.written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.compact();
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        self.written = 0;
        Ok(true)
    }

    fn compact(&mut self) {
        if self.written >= COMPACT_AFTER && self.written * 2 >= self.buf.len() {
            let cut = self.written;
            self.buf.drain(..cut);
            self.written = 0;
            for (at, _) in &mut self.fds {
                *at -= cut;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::frame::Decoder;
    use crate::ipc::socket;

    #[test]
    fn frames_with_more_descriptors_than_one_send_arrive_whole() {
        let (a, b) = socket::pair().unwrap();
        let mut out = Outbox::default();
        // 3 frames of 200 descriptors each: more than one sendmsg can carry.
        for id in 0..3u64 {
            let fds = (0..200).map(|_| OwnedFd::from(a.try_clone().unwrap())).collect();
            out.push(7, id, &[id as u8; 10], fds).unwrap();
        }
        assert_eq!(
            out.push(
                7,
                9,
                b"",
                (0..254).map(|_| OwnedFd::from(a.try_clone().unwrap())).collect()
            )
            .unwrap_err(),
            FrameError::TooManyFds(254)
        );
        assert!(out.write_to(a.as_raw_fd()).unwrap());
        assert!(out.is_empty());
        let mut dec = Decoder::default();
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        while got.len() < 3 {
            let n = fdpass::recv(b.as_raw_fd(), &mut buf, dec.push_fds()).unwrap();
            dec.feed(&buf[..n]);
            while let Some(f) = dec.next_frame().unwrap() {
                got.push((f.id, f.fds.len()));
            }
        }
        assert_eq!(got, [(0, 200), (1, 200), (2, 200)]);
    }
}
