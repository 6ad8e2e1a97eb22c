//! The channel's protocol: the client sends one request line, the server answers with the report
//! and closes the connection. Anything else gets one `ERROR ...` line and a closed connection.
//!
//! ```text
//! DUMP\n          the report as text
//! DUMP JSON\n     the report as one JSON document
//! ```

use std::fmt;

/// Longest request line accepted, newline included.
pub const MAX_REQUEST: usize = 64;

/// The report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For people: `plait dump PID`.
    Text,
    /// For programs: `plait dump --json PID`.
    Json,
}

/// Why a request was refused; sent to the client as `ERROR <reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The peer runs as another user.
    OtherUser {
        /// The peer's uid.
        peer: u32,
        /// The uid this process runs as.
        own: u32,
    },
    /// The peer's credentials could not be read.
    NoCredentials,
    /// No newline within [`MAX_REQUEST`] bytes.
    TooLong,
    /// The connection closed, or went quiet, before a full line arrived.
    Incomplete,
    /// A line that is not a known request.
    Unknown,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherUser { peer, own } => write!(
                f,
                "permission denied: this process (uid {own}) answers its own user only, not uid {peer}"
            ),
            Self::NoCredentials => f.write_str("permission denied: the peer's credentials are unknown"),
            Self::TooLong => write!(f, "request too long (at most {MAX_REQUEST} bytes, newline included)"),
            Self::Incomplete => f.write_str("incomplete request (expected one line ending in a newline)"),
            Self::Unknown => f.write_str("unknown request (expected 'DUMP' or 'DUMP JSON')"),
        }
    }
}

/// Whether a peer running as `peer` may use the channel of a process running as `own`: the same
/// user only (root included: `sudo -u USER plait dump PID` reaches another user's process).
///
/// # Errors
/// [`Refusal::OtherUser`] for anyone else.
pub fn check_peer(peer: u32, own: u32) -> Result<(), Refusal> {
    if peer == own {
        Ok(())
    } else {
        Err(Refusal::OtherUser { peer, own })
    }
}

/// Parses one request line (without its newline; a trailing `\r` is allowed).
///
/// # Errors
/// [`Refusal::Unknown`] for anything but the requests above.
pub fn parse(line: &[u8]) -> Result<Format, Refusal> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line {
        b"DUMP" => Ok(Format::Text),
        b"DUMP JSON" => Ok(Format::Json),
        _ => Err(Refusal::Unknown),
    }
}

/// Finds the request line in what was read so far: `Ok(Some(line))` when complete, `Ok(None)` to
/// read more.
///
/// # Errors
/// [`Refusal::TooLong`] once [`MAX_REQUEST`] bytes hold no newline.
pub fn line(buf: &[u8]) -> Result<Option<&[u8]>, Refusal> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(end) if end < MAX_REQUEST => Ok(Some(&buf[..end])),
        Some(_) => Err(Refusal::TooLong),
        None if buf.len() >= MAX_REQUEST => Err(Refusal::TooLong),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_requests_parse() {
        assert_eq!(parse(b"DUMP"), Ok(Format::Text));
        assert_eq!(parse(b"DUMP JSON\r"), Ok(Format::Json));
        assert_eq!(parse(b"dump"), Err(Refusal::Unknown));
        assert_eq!(parse(b"EVAL 1+1"), Err(Refusal::Unknown));
        assert_eq!(parse(b""), Err(Refusal::Unknown));
    }

    #[test]
    fn lines_are_bounded() {
        assert_eq!(line(b"DUMP\n"), Ok(Some(&b"DUMP"[..])));
        assert_eq!(line(b"DUM"), Ok(None));
        assert_eq!(line(&[b'x'; MAX_REQUEST]), Err(Refusal::TooLong));
        let mut long = vec![b'x'; MAX_REQUEST];
        long.push(b'\n');
        assert_eq!(line(&long), Err(Refusal::TooLong));
    }

    #[test]
    fn only_the_same_user_is_let_in() {
        assert!(check_peer(1000, 1000).is_ok());
        assert_eq!(
            check_peer(1001, 1000),
            Err(Refusal::OtherUser { peer: 1001, own: 1000 })
        );
        assert!(check_peer(0, 1000).is_err(), "root is another user too");
        assert!(check_peer(65534, 0).is_err());
    }
}
