//! Readiness polling on `mio` (epoll on Linux), split by who uses it:
//!
//! - [`Selector`]: owned by the loop thread, which blocks in [`Selector::select`].
//! - [`Registrar`]: the fd table (a reader and a writer item per fd) and the registrations with the
//!   kernel, used by the loop thread between polls. It holds its own handle on the poller, so
//!   registering never waits for a poll in progress.
//! - [`Waker`]: wakes a blocked `select` from any thread (an eventfd).
//!
//! Registrations are edge-triggered (`mio`'s only mode). For level-triggered users (asyncio's
//! `add_reader`) the loop reports each fd it dispatched with [`Registrar::fired`] and calls
//! [`Registrar::rearm`] after running the callbacks: `EPOLL_CTL_MOD` makes the kernel report the fd
//! again if it is still ready.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};

const WAKE_TOKEN: Token = Token(usize::MAX);

pub use crate::error::PollError;

/// What an fd is ready for. Errors and hang-ups count as both, as with `selectors`, so the
/// callback runs and meets the error itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// Readable, at end of stream, or in error.
    pub readable: bool,
    /// Writable, hung up, or in error.
    pub writable: bool,
    /// At end of stream or in error: a reader that stops at the first short read would miss the
    /// end of stream that arrived with the data (no further edge announces it).
    pub closed: bool,
}

/// The polling side, owned by the loop thread.
pub struct Selector {
    poll: Poll,
    events: Events,
}

/// Wakes a [`Selector`] blocked in `select` from any thread.
#[derive(Clone)]
pub struct Waker(Arc<mio::Waker>);

impl Waker {
    /// Makes the current or next `select` return. Errors (the counter saturated) are ignored:
    /// a wake-up is then already pending.
    pub fn wake(&self) {
        let _ = self.0.wake();
    }
}

/// Creates a selector, its registrar and a waker.
///
/// # Errors
/// [`PollError::Create`] when the kernel refuses an epoll instance or an eventfd (fd limit).
pub fn new<T>(capacity: usize) -> Result<(Selector, Registrar<T>, Waker), PollError> {
    let poll = Poll::new().map_err(PollError::Create)?;
    let registry = poll.registry().try_clone().map_err(PollError::Create)?;
    let waker = mio::Waker::new(poll.registry(), WAKE_TOKEN).map_err(PollError::Create)?;
    Ok((
        Selector {
            poll,
            events: Events::with_capacity(capacity),
        },
        Registrar {
            registry,
            slots: HashMap::new(),
            fired: Vec::new(),
        },
        Waker(Arc::new(waker)),
    ))
}

impl Selector {
    /// Waits up to `timeout` (`None`: until something happens) and appends each ready fd to
    /// `out`. Returns normally when a signal interrupts the wait (the caller checks for signals).
    ///
    /// # Errors
    /// [`PollError::Poll`] when `epoll_wait` fails other than with `EINTR`.
    pub fn select(&mut self, timeout: Option<Duration>, out: &mut Vec<(RawFd, Readiness)>) -> Result<(), PollError> {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(PollError::Poll(e)),
        }
        for ev in &self.events {
            if ev.token() == WAKE_TOKEN {
                continue;
            }
            let failed = ev.is_error();
            out.push((
                fd_of(ev.token()),
                Readiness {
                    readable: ev.is_readable() || ev.is_read_closed() || failed,
                    writable: ev.is_writable() || ev.is_write_closed() || failed,
                    closed: ev.is_read_closed() || failed,
                },
            ));
        }
        Ok(())
    }
}

/// One fd's reader and writer.
pub struct Slot<T> {
    /// What to run when the fd is readable.
    pub reader: Option<T>,
    /// What to run when the fd is writable.
    pub writer: Option<T>,
    /// The reader drains the fd itself and asks for a re-arm when it may have left data
    /// ([`Registrar::set_reader_edge`]): the loop does not re-arm it after each dispatch.
    pub edge: bool,
}

/// The fd table and its kernel registrations; see the module docs.
pub struct Registrar<T> {
    registry: Registry,
    slots: HashMap<RawFd, Slot<T>>,
    fired: Vec<RawFd>,
}

fn interest(reader: bool, writer: bool) -> Option<Interest> {
    match (reader, writer) {
        (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    }
}

fn token(fd: RawFd) -> Token {
    Token(fd as usize)
}

#[allow(
    clippy::cast_possible_wrap,
    reason = "tokens are made from non-negative fds by `token`"
)]
fn fd_of(t: Token) -> RawFd {
    t.0 as RawFd
}

impl<T> Registrar<T> {
    /// The reader and writer of `fd`, if it is watched.
    #[must_use]
    pub fn get(&self, fd: RawFd) -> Option<&Slot<T>> {
        self.slots.get(&fd)
    }

    /// Every watched fd with its reader and writer.
    pub fn iter(&self) -> impl Iterator<Item = (RawFd, &Slot<T>)> {
        self.slots.iter().map(|(fd, s)| (*fd, s))
    }

    /// Number of watched fds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no fd is watched.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Sets the reader of `fd`, returning the one it replaces.
    ///
    /// # Errors
    /// [`PollError::Register`] when the kernel refuses the fd; nothing changes then.
    pub fn set_reader(&mut self, fd: RawFd, item: T) -> Result<Option<T>, PollError> {
        let old = self.set(fd, item, true)?;
        if let Some(slot) = self.slots.get_mut(&fd) {
            slot.edge = false;
        }
        Ok(old)
    }

    /// Sets an edge-triggered reader: one that reads until the socket is drained, or calls
    /// [`Registrar::fired`] itself when it stops early. The slot stays edge-triggered until a
    /// level-triggered reader replaces it or the fd is unwatched.
    ///
    /// # Errors
    /// As [`Registrar::set_reader`].
    pub fn set_reader_edge(&mut self, fd: RawFd, item: T) -> Result<Option<T>, PollError> {
        let old = self.set(fd, item, true)?;
        if let Some(slot) = self.slots.get_mut(&fd) {
            slot.edge = true;
        }
        Ok(old)
    }

    /// Sets the writer of `fd`, returning the one it replaces.
    ///
    /// # Errors
    /// As [`Registrar::set_reader`].
    pub fn set_writer(&mut self, fd: RawFd, item: T) -> Result<Option<T>, PollError> {
        self.set(fd, item, false)
    }

    fn set(&mut self, fd: RawFd, item: T, read: bool) -> Result<Option<T>, PollError> {
        let (had_reader, had_writer) = self
            .slots
            .get(&fd)
            .map_or((false, false), |s| (s.reader.is_some(), s.writer.is_some()));
        let fresh = !had_reader && !had_writer;
        let want = interest(read || had_reader, !read || had_writer).expect("one side is set");
        self.apply(fd, want, fresh)?;
        let slot = self.slots.entry(fd).or_insert(Slot {
            reader: None,
            writer: None,
            edge: false,
        });
        let side = if read { &mut slot.reader } else { &mut slot.writer };
        Ok(side.replace(item))
    }

    /// Removes the reader of `fd`, returning it; the fd is unwatched when it has no writer.
    pub fn remove_reader(&mut self, fd: RawFd) -> Option<T> {
        self.remove(fd, true)
    }

    /// Removes the writer of `fd`, returning it; the fd is unwatched when it has no reader.
    pub fn remove_writer(&mut self, fd: RawFd) -> Option<T> {
        self.remove(fd, false)
    }

    fn remove(&mut self, fd: RawFd, read: bool) -> Option<T> {
        let slot = self.slots.get_mut(&fd)?;
        let old = if read { slot.reader.take() } else { slot.writer.take() };
        old.as_ref()?;
        match interest(slot.reader.is_some(), slot.writer.is_some()) {
            // The fd may be closed already (EBADF) or replaced: nothing left to undo then.
            None => {
                self.slots.remove(&fd);
                let _ = self.registry.deregister(&mut SourceFd(&fd));
            }
            Some(want) => {
                let _ = self.apply(fd, want, false);
            }
        }
        old
    }

    /// Registers (`fresh`) or re-registers `fd`, repairing a stale kernel state: an fd closed and
    /// reused behind the loop's back is unknown to epoll (`ENOENT`), or still known (`EEXIST`).
    fn apply(&self, fd: RawFd, want: Interest, fresh: bool) -> Result<(), PollError> {
        let mut src = SourceFd(&fd);
        let first = if fresh {
            self.registry.register(&mut src, token(fd), want)
        } else {
            self.registry.reregister(&mut src, token(fd), want)
        };
        let result = match first {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => self.registry.reregister(&mut src, token(fd), want),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => self.registry.register(&mut src, token(fd), want),
            other => other,
        };
        result.map_err(|source| PollError::Register { fd, source })
    }

    /// Notes that `fd` was dispatched this tick, to be re-armed by [`Registrar::rearm`].
    pub fn fired(&mut self, fd: RawFd) {
        self.fired.push(fd);
    }

    /// Re-arms every fd noted by [`Registrar::fired`] that is still watched, so one that is still
    /// ready is reported again (level-triggered behaviour). Errors are ignored: an fd closed
    /// behind the loop's back simply stops being reported.
    pub fn rearm(&mut self) {
        let fired = std::mem::take(&mut self.fired);
        for &fd in &fired {
            if let Some(slot) = self.slots.get(&fd) {
                if let Some(want) = interest(slot.reader.is_some(), slot.writer.is_some()) {
                    let _ = self.apply(fd, want, false);
                }
            }
        }
        self.fired = fired;
        self.fired.clear();
    }

    /// Unwatches every fd and returns all readers and writers.
    pub fn drain(&mut self) -> Vec<T> {
        let mut out = Vec::new();
        for (fd, slot) in self.slots.drain() {
            let _ = self.registry.deregister(&mut SourceFd(&fd));
            out.extend(slot.reader);
            out.extend(slot.writer);
        }
        self.fired.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn poll_once(sel: &mut Selector, ms: u64) -> Vec<(RawFd, Readiness)> {
        let mut out = Vec::new();
        sel.select(Some(Duration::from_millis(ms)), &mut out).unwrap();
        out
    }

    #[test]
    fn readable_after_write_and_level_triggered_with_rearm() {
        let (mut sel, mut reg, _w) = new::<&str>(64).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        assert!(reg.set_reader(fd, "r").unwrap().is_none());
        assert!(poll_once(&mut sel, 0).is_empty());
        b.write_all(b"xy").unwrap();
        let ev = poll_once(&mut sel, 1000);
        assert_eq!(
            ev,
            [(
                fd,
                Readiness {
                    readable: true,
                    writable: false,
                    closed: false,
                }
            )]
        );
        // Not drained: edge-triggered would stay silent; after a re-arm it is reported again.
        assert!(poll_once(&mut sel, 0).is_empty());
        reg.fired(fd);
        reg.rearm();
        assert_eq!(poll_once(&mut sel, 1000).len(), 1);
        let mut buf = [0u8; 2];
        (&a).read_exact(&mut buf).unwrap();
        reg.fired(fd);
        reg.rearm();
        assert!(poll_once(&mut sel, 0).is_empty());
    }

    #[test]
    fn edge_reader_is_reported_once_per_edge() {
        let (mut sel, mut reg, _w) = new::<u8>(64).unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        reg.set_reader_edge(fd, 1).unwrap();
        assert!(reg.get(fd).unwrap().edge);
        b.write_all(b"x").unwrap();
        assert_eq!(poll_once(&mut sel, 1000).len(), 1);
        assert!(poll_once(&mut sel, 0).is_empty());
        b.write_all(b"y").unwrap();
        assert_eq!(poll_once(&mut sel, 1000).len(), 1);
        // A level-triggered reader replacing it turns the flag off.
        reg.set_reader(fd, 2).unwrap();
        assert!(!reg.get(fd).unwrap().edge);
    }

    #[test]
    fn reader_and_writer_share_an_fd() {
        let (mut sel, mut reg, _w) = new::<u8>(64).unwrap();
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        reg.set_reader(fd, 1).unwrap();
        assert_eq!(reg.set_writer(fd, 2).unwrap(), None);
        assert_eq!(
            poll_once(&mut sel, 1000),
            [(
                fd,
                Readiness {
                    readable: false,
                    writable: true,
                    closed: false,
                }
            )]
        );
        assert_eq!(reg.remove_writer(fd), Some(2));
        assert!(reg.get(fd).is_some());
        assert_eq!(reg.remove_reader(fd), Some(1));
        assert!(reg.get(fd).is_none());
        assert_eq!(reg.remove_reader(fd), None);
    }

    #[test]
    fn replacing_a_reader_returns_the_old_one() {
        let (_sel, mut reg, _w) = new::<u8>(64).unwrap();
        let (a, _b) = UnixStream::pair().unwrap();
        reg.set_reader(a.as_raw_fd(), 1).unwrap();
        assert_eq!(reg.set_reader(a.as_raw_fd(), 2).unwrap(), Some(1));
        assert_eq!(reg.drain(), [2]);
    }

    #[test]
    fn regular_files_are_refused() {
        let (_sel, mut reg, _w) = new::<u8>(64).unwrap();
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let err = reg.set_reader(f.as_raw_fd(), 1).unwrap_err();
        assert_eq!(err.io_error().raw_os_error(), Some(libc::EPERM));
        assert!(reg.is_empty());
    }

    #[test]
    fn waker_interrupts_select_from_another_thread() {
        let (mut sel, _reg, w) = new::<u8>(64).unwrap();
        // The waker must outlive the wait: closing its eventfd would drop a pending wake-up.
        let w2 = w.clone();
        let t = crate::testing::spawn(move || w2.wake());
        let mut out = Vec::new();
        sel.select(None, &mut out).unwrap();
        assert!(out.is_empty());
        t.join().unwrap();
        drop(w);
    }

    #[test]
    fn hang_up_is_readable() {
        let (mut sel, mut reg, _w) = new::<u8>(64).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        reg.set_reader(a.as_raw_fd(), 1).unwrap();
        drop(b);
        let ev = poll_once(&mut sel, 1000);
        assert!(ev[0].1.readable && ev[0].1.closed);
    }
}
