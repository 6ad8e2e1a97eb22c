//! Length-prefixed frames over a byte stream.
//!
//! A frame is a 16-byte header — payload length (`u32`, little-endian), kind (`u8`), the number
//! of file descriptors that belong to the frame (`u8`), two reserved bytes, an id (`u64`) —
//! followed by the payload. The kind and id are opaque here: the process pool uses them for "run
//! task N", "result of task N", and so on. [`Decoder`] accepts bytes in arbitrary chunks (as
//! `read` returns them) and yields whole frames; descriptors received beside the bytes (see
//! [`crate::ipc::fdpass`]) are handed to [`Decoder::push_fds`] and given to their frames in order.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 16;

/// Largest payload a frame can carry (its length field is 32 bits).
pub const MAX_PAYLOAD: usize = u32::MAX as usize;

/// Most descriptors one frame can carry (what one `sendmsg` can: see
/// [`crate::ipc::fdpass::MAX_FDS_PER_SEND`]).
pub const MAX_FDS: usize = crate::ipc::fdpass::MAX_FDS_PER_SEND;

/// A decoded frame.
#[derive(Debug)]
pub struct Frame {
    /// What the frame means (defined by the protocol using it).
    pub kind: u8,
    /// Which task, definition or request it is about.
    pub id: u64,
    /// The body.
    pub payload: Vec<u8>,
    /// Descriptors sent with the frame.
    pub fds: Vec<OwnedFd>,
}

pub use crate::error::FrameError;

/// Appends one frame to `out`.
///
/// # Errors
/// [`FrameError::TooLarge`] when `payload` exceeds [`MAX_PAYLOAD`].
pub fn encode_into(out: &mut Vec<u8>, kind: u8, id: u64, payload: &[u8]) -> Result<(), FrameError> {
    encode_with_fds(out, kind, id, payload, 0)
}

/// Appends one frame that announces `fds` descriptors; the caller sends them with (or before)
/// the frame's first byte.
///
/// # Errors
/// [`FrameError::TooLarge`] when `payload` exceeds [`MAX_PAYLOAD`]; [`FrameError::TooManyFds`]
/// above [`MAX_FDS`] descriptors.
pub fn encode_with_fds(out: &mut Vec<u8>, kind: u8, id: u64, payload: &[u8], fds: usize) -> Result<(), FrameError> {
    if fds > MAX_FDS {
        return Err(FrameError::TooManyFds(fds));
    }
    let nfds = u8::try_from(fds).map_err(|_| FrameError::TooManyFds(fds))?;
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        len: payload.len(),
        max: MAX_PAYLOAD,
    })?;
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&[nfds, 0, 0]);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Incremental frame decoder; see the module docs.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
    max_payload: usize,
    fds: VecDeque<OwnedFd>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(MAX_PAYLOAD)
    }
}

impl Decoder {
    /// A decoder refusing payloads above `max_payload` bytes.
    #[must_use]
    pub fn new(max_payload: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max_payload,
            fds: VecDeque::new(),
        }
    }

    /// Adds bytes read from the stream.
    pub fn feed(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Where received descriptors go (in arrival order) until their frames are decoded.
    pub fn push_fds(&mut self) -> &mut VecDeque<OwnedFd> {
        &mut self.fds
    }

    /// Bytes received but not yet returned as frames.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole frame, if one has arrived.
    ///
    /// # Errors
    /// [`FrameError::Oversized`] when a header announces more than the limit, or
    /// [`FrameError::MissingFds`] when its descriptors did not arrive; the stream is unusable
    /// after that.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let avail = &self.buf[self.start..];
        if avail.len() < HEADER_LEN {
            self.compact();
            return Ok(None);
        }
        let len = u32::from_le_bytes(avail[0..4].try_into().expect("4 bytes")) as usize;
        if len > self.max_payload {
            return Err(FrameError::Oversized {
                len,
                max: self.max_payload,
            });
        }
        if avail.len() < HEADER_LEN + len {
            self.compact();
            return Ok(None);
        }
        let kind = avail[4];
        let nfds = usize::from(avail[5]);
        if nfds > self.fds.len() {
            return Err(FrameError::MissingFds {
                announced: nfds,
                received: self.fds.len(),
            });
        }
        let id = u64::from_le_bytes(avail[8..16].try_into().expect("8 bytes"));
        let payload = avail[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.start += HEADER_LEN + len;
        let fds = self.fds.drain(..nfds).collect();
        Ok(Some(Frame { kind, id, payload, fds }))
    }

    /// Moves the unread tail to the front once the consumed prefix dominates the buffer.
    fn compact(&mut self) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_arbitrary_chunks() {
        let mut wire = Vec::new();
        encode_into(&mut wire, 3, 42, b"hello").unwrap();
        encode_into(&mut wire, 17, u64::MAX, b"").unwrap();
        encode_into(&mut wire, 1, 7, &vec![9u8; 1000]).unwrap();
        for chunk in [1, 2, 5, 16, 17, 100, wire.len()] {
            let mut dec = Decoder::default();
            let mut frames = Vec::new();
            for piece in wire.chunks(chunk) {
                dec.feed(piece);
                while let Some(f) = dec.next_frame().unwrap() {
                    frames.push(f);
                }
            }
            assert_eq!(frames.len(), 3, "chunk size {chunk}");
            assert_eq!((frames[0].kind, frames[0].id), (3, 42));
            assert_eq!(frames[0].payload, b"hello");
            assert!(frames[0].fds.is_empty());
            assert_eq!(frames[1].id, u64::MAX);
            assert!(frames[1].payload.is_empty());
            assert_eq!(frames[2].payload.len(), 1000);
            assert_eq!(dec.pending(), 0);
        }
    }

    #[test]
    fn oversized_header_is_rejected() {
        let mut wire = Vec::new();
        encode_into(&mut wire, 1, 1, &[0u8; 64]).unwrap();
        let mut dec = Decoder::new(32);
        dec.feed(&wire);
        assert_eq!(
            dec.next_frame().unwrap_err(),
            FrameError::Oversized { len: 64, max: 32 }
        );
    }

    #[test]
    fn descriptors_are_handed_to_their_frames() {
        let mut wire = Vec::new();
        encode_with_fds(&mut wire, 1, 1, b"a", 2).unwrap();
        encode_into(&mut wire, 1, 2, b"b").unwrap();
        encode_with_fds(&mut wire, 1, 3, b"c", 1).unwrap();
        assert_eq!(
            encode_with_fds(&mut wire, 1, 4, b"", 254).unwrap_err(),
            FrameError::TooManyFds(254)
        );
        let mut dec = Decoder::default();
        dec.feed(&wire);
        assert_eq!(
            dec.next_frame().unwrap_err(),
            FrameError::MissingFds {
                announced: 2,
                received: 0
            }
        );
        for _ in 0..3 {
            let (a, _) = crate::ipc::socket::pair().unwrap();
            dec.push_fds().push_back(OwnedFd::from(a));
        }
        let counts: Vec<usize> = std::iter::from_fn(|| dec.next_frame().unwrap())
            .map(|f| f.fds.len())
            .collect();
        assert_eq!(counts, [2, 0, 1]);
    }

    #[test]
    fn corrupt_headers_are_errors_or_wait_for_more_never_panics() {
        // A deterministic spray of garbage headers (xorshift), each followed by a few bytes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut wire = Vec::new();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                wire.extend_from_slice(&x.to_le_bytes());
            }
            let mut dec = Decoder::new(1 << 20);
            dec.feed(&wire);
            loop {
                match dec.next_frame() {
                    Ok(Some(f)) => assert!(f.payload.len() <= 8 && f.fds.is_empty()),
                    Ok(None) => break,
                    Err(e) => {
                        assert!(matches!(
                            e,
                            FrameError::Oversized { .. } | FrameError::MissingFds { .. }
                        ));
                        break;
                    }
                }
            }
        }
    }
}
