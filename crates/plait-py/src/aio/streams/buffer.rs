//! The stream reader's buffer: received chunks queued without copying, and separator search
//! across chunk boundaries.

use std::collections::VecDeque;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::errors::limit_overrun;

#[derive(Default)]
pub(super) struct Inner {
    pub(super) chunks: VecDeque<Py<PyBytes>>,
    /// Bytes of the front chunk already consumed.
    pub(super) offset: usize,
    pub(super) size: usize,
    pub(super) eof: bool,
    pub(super) exception: Option<Py<PyAny>>,
    pub(super) waiter: Option<Py<PyAny>>,
    pub(super) transport: Option<Py<PyAny>>,
    pub(super) paused: bool,
    pub(super) writer: WriterFlags,
    /// `_loop`, and whether it is plait's (its futures are made directly).
    pub(super) event_loop: Option<(Py<PyAny>, bool)>,
    /// The separators of the last `readuntil` search that failed, and how many buffered bytes it
    /// had searched: a search for the same separators after more data came resumes near there
    /// (as asyncio's `readuntil` does) instead of starting over.
    pub(super) scanned: Option<(Vec<Vec<u8>>, usize)>,
}

/// The protocol's state for the connection's writer, read by every `drain()`.
#[derive(Default, Clone, Copy)]
pub(super) struct WriterFlags {
    /// The transport asked the writer to stop (`pause_writing`): `drain()` has to wait.
    pub(super) paused: bool,
    /// `connection_lost` ran: `drain()` raises.
    pub(super) lost: bool,
}

impl Inner {
    /// Removes and returns the first `n` buffered bytes (`n <= size`), handing out the front
    /// chunk itself when it is exactly that.
    pub(super) fn take<'py>(&mut self, py: Python<'py>, n: usize) -> Bound<'py, PyBytes> {
        debug_assert!(n <= self.size);
        if let Some((_, done)) = &mut self.scanned {
            *done = done.saturating_sub(n);
        }
        if let Some(front) = self.chunks.front() {
            let len = front.bind(py).as_bytes().len();
            if self.offset == 0 && len == n {
                self.size -= n;
                return self.chunks.pop_front().expect("front").into_bound(py);
            }
        }
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let front = self.chunks.front().expect("size counts these bytes").bind(py);
            let bytes = &front.as_bytes()[self.offset..];
            let want = (n - out.len()).min(bytes.len());
            out.extend_from_slice(&bytes[..want]);
            if want == bytes.len() {
                self.chunks.pop_front();
                self.offset = 0;
            } else {
                self.offset += want;
            }
        }
        self.size -= n;
        PyBytes::new(py, &out)
    }

    /// The earliest end (index just past the separator) of any of `seps` in the buffer, with the
    /// length of the separator found there. A failed search is remembered, so the next one for
    /// the same separators only looks at what came since (a long line arriving in many pieces
    /// costs linear, not quadratic, time).
    pub(super) fn find(&mut self, py: Python<'_>, seps: &[Vec<u8>]) -> Option<(usize, usize)> {
        let from = match &self.scanned {
            Some((old, done)) if old.as_slice() == seps => *done,
            _ => 0,
        };
        // Matches ending in the searched part were seen; one may end in the new bytes, so the
        // search starts up to a separator's length before them. Only the chunks from there on
        // are looked at (walking back from the end), so resuming costs what came since.
        let longest = seps.iter().map(Vec::len).max().unwrap_or(0);
        let start = from.saturating_sub(longest.saturating_sub(1));
        let mut base = self.size;
        let mut parts: Vec<&[u8]> = Vec::new();
        for (i, c) in self.chunks.iter().enumerate().rev() {
            if base <= start {
                break;
            }
            let b = c.bind(py).as_bytes();
            let part = if i == 0 { &b[self.offset..] } else { b };
            base -= part.len();
            parts.push(part);
        }
        parts.reverse();
        let found = seps
            .iter()
            .filter(|sep| !sep.is_empty())
            .filter_map(|sep| {
                let from_sep = from.saturating_sub(sep.len() - 1).saturating_sub(base);
                find_in(&parts, sep, from_sep).map(|end| (base + end, sep.len()))
            })
            .min();
        match (&mut self.scanned, found) {
            (_, Some(_)) => self.scanned = None,
            // Searching the same separators again: only the count moves (no copy of them).
            (Some((old, done)), None) if old.as_slice() == seps => *done = self.size,
            (_, None) => self.scanned = Some((seps.to_vec(), self.size)),
        }
        found
    }
}

/// The end (index just past it) of the first `sep` (not empty) in the concatenation of `parts`
/// that starts at or after `from`.
pub(super) fn find_in(parts: &[&[u8]], sep: &[u8], from: usize) -> Option<usize> {
    let mut base = 0;
    for (i, part) in parts.iter().enumerate() {
        let end = base + part.len();
        if end <= from {
            base = end;
            continue;
        }
        let lo = from.saturating_sub(base);
        // Whole matches in this part come first, then those starting here and running on.
        if let Some(p) = memchr::memmem::find(&part[lo..], sep) {
            return Some(base + lo + p + sep.len());
        }
        let straddle = lo.max((part.len() + 1).saturating_sub(sep.len()));
        if let Some(q) = (straddle..part.len()).find(|&q| matches_across(&parts[i..], q, sep)) {
            return Some(base + q + sep.len());
        }
        base = end;
    }
    None
}

/// Whether `sep` starts at index `at` of `parts[0]` and runs on through the following parts.
pub(super) fn matches_across(parts: &[&[u8]], at: usize, sep: &[u8]) -> bool {
    let mut want = sep;
    let mut start = at;
    for part in parts {
        let have = &part[start.min(part.len())..];
        let n = have.len().min(want.len());
        if have[..n] != want[..n] {
            return false;
        }
        want = &want[n..];
        if want.is_empty() {
            return true;
        }
        start = 0;
    }
    false
}

/// What a read found in the buffer without waiting.
pub(super) enum Took<'py> {
    /// The bytes asked for.
    Data(Bound<'py, PyBytes>),
    /// The stream ended first: what was left (an `IncompleteReadError`).
    Partial(Bound<'py, PyBytes>),
    /// Not there yet.
    Wait,
    /// `readuntil` passed the limit: `LimitOverrunError`, or for `readline` a `ValueError` after
    /// dropping the line (`found`: the separator is in the buffer, `consumed` bytes in).
    Overrun { found: bool, consumed: usize },
}

impl<'py> Took<'py> {
    /// The `_take_*` methods' result: the bytes, `(partial,)` or `None`.
    pub(super) fn into_py_result(py: Python<'py>, took: Self) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match took {
            Took::Data(b) => Some(b.into_any()),
            Took::Partial(b) => Some(PyTuple::new(py, [b])?.into_any()),
            Took::Wait => None,
            Took::Overrun { found, consumed } => return Err(limit_overrun(py, overrun_message(found), consumed)),
        })
    }
}

pub(super) fn overrun_message(found: bool) -> &'static str {
    if found {
        "Separator is found, but chunk is longer than limit"
    } else {
        "Separator is not found, and chunk exceed the limit"
    }
}
