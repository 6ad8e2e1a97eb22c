//! Length-prefixed frames over a byte stream.
//!
//! A frame is a 16-byte header — payload length (`u32`, little-endian), kind (`u8`), three
//! reserved bytes, an id (`u64`) — followed by the payload. The kind and id are opaque here: the
//! process pool uses them for "run task N", "result of task N", and so on. [`Decoder`] accepts
//! bytes in arbitrary chunks (as `read` returns them) and yields whole frames.

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 16;

/// Largest payload a frame can carry (its length field is 32 bits).
pub const MAX_PAYLOAD: usize = u32::MAX as usize;

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the frame means (defined by the protocol using it).
    pub kind: u8,
    /// Which task, definition or request it is about.
    pub id: u64,
    /// The body.
    pub payload: Vec<u8>,
}

/// Framing errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The payload does not fit a frame.
    #[error("payload of {len} bytes exceeds the frame limit of {max} bytes")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A header announced more than the decoder accepts (a corrupt or hostile stream).
    #[error("frame header announces {len} bytes, more than the {max} this stream accepts")]
    Oversized {
        /// Announced length.
        len: usize,
        /// The decoder's limit.
        max: usize,
    },
}

/// Appends one frame to `out`.
///
/// # Errors
/// [`FrameError::TooLarge`] when `payload` exceeds [`MAX_PAYLOAD`].
pub fn encode_into(out: &mut Vec<u8>, kind: u8, id: u64, payload: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        len: payload.len(),
        max: MAX_PAYLOAD,
    })?;
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&[0, 0, 0]);
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

    /// Bytes received but not yet returned as frames.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole frame, if one has arrived.
    ///
    /// # Errors
    /// [`FrameError::Oversized`] when a header announces more than the limit; the stream is
    /// unusable after that.
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
        let id = u64::from_le_bytes(avail[8..16].try_into().expect("8 bytes"));
        let payload = avail[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.start += HEADER_LEN + len;
        Ok(Some(Frame { kind, id, payload }))
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
            assert_eq!(
                frames[0],
                Frame {
                    kind: 3,
                    id: 42,
                    payload: b"hello".to_vec()
                }
            );
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
        assert_eq!(dec.next_frame(), Err(FrameError::Oversized { len: 64, max: 32 }));
    }
}
