//! Every error type of the core, in one place: `thiserror` enums and structs that the binding maps
//! to Python exceptions (each variant to one exception class, keeping the OS errno where there is
//! one). The modules that return them re-export them (`sync::SyncError`, `queue::QueueError`,
//! `ipc::IpcError`, ...), so callers name them where they use them.
//!
//! This module sits at the bottom of the crate: it depends on `std` only, and no error here knows
//! the type that raises it.

use std::io;
use std::os::fd::RawFd;

/// A wait abandoned because the blocker's `interrupted()` returned `true` (a pending signal in
/// Python).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("wait interrupted")]
pub struct Interrupted;

/// Releasing a lock (in-process or in shared memory) that is not locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("release unlocked lock")]
pub struct NotLocked;

/// Errors from misusing an in-process primitive; each maps to one Python exception in the binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// Releasing a `Lock` that is not locked (`RuntimeError` in Python).
    #[error("release unlocked lock")]
    NotLocked,
    /// Releasing an `RLock` the caller does not own (`RuntimeError`).
    #[error("cannot release un-acquired lock")]
    NotOwned,
    /// Releasing a bounded semaphore above its initial value (`ValueError`).
    #[error("Semaphore released too many times")]
    TooManyReleases,
    /// A count would exceed 64 bits (`OverflowError`).
    #[error("semaphore value would exceed 2**64 - 1")]
    Overflow,
    /// The barrier is broken (`threading.BrokenBarrierError`).
    #[error("barrier is broken")]
    BrokenBarrier,
    /// The wait was interrupted by the blocker (a pending signal in Python).
    #[error("wait interrupted")]
    Interrupted,
}

impl From<Interrupted> for SyncError {
    fn from(_: Interrupted) -> Self {
        Self::Interrupted
    }
}

/// Why a queue operation failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError<E> {
    /// Nothing to get (`queue.Empty`).
    #[error("queue is empty")]
    Empty,
    /// No room to put (`queue.Full`).
    #[error("queue is full")]
    Full,
    /// The queue was shut down (`ShutDown`).
    #[error("queue is shut down")]
    ShutDown,
    /// `task_done()` called more times than items were put (`ValueError`).
    #[error("task_done() called too many times")]
    TooManyTaskDone,
    /// The blocker abandoned the wait.
    #[error("wait interrupted")]
    Interrupted,
    /// The store's ordering failed.
    #[error("ordering failed")]
    Store(E),
}

/// Submitting to a thread pool that was shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot schedule new futures after shutdown")]
pub struct PoolShutDown;

/// Submitting to a process pool that was shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot schedule new tasks after shutdown")]
pub struct PoolClosed;

/// Errors of the event loop's poller. Each carries the OS error, which the binding maps to
/// `OSError` (errno kept).
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The epoll instance or the eventfd could not be created.
    #[error("cannot create the poller: {0}")]
    Create(#[source] io::Error),
    /// The kernel refused to watch the fd (a regular file, a closed fd...).
    #[error("cannot watch fd {fd}: {source}")]
    Register {
        /// The fd.
        fd: RawFd,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// `epoll_wait` failed (other than by a signal).
    #[error("polling failed: {0}")]
    Poll(#[source] io::Error),
}

impl PollError {
    /// The underlying OS error.
    #[must_use]
    pub fn io_error(&self) -> &io::Error {
        match self {
            Self::Create(e) | Self::Poll(e) | Self::Register { source: e, .. } => e,
        }
    }
}

/// Framing errors of a byte stream between processes (a corrupt or hostile stream included).
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
    /// More descriptors than a frame can carry.
    #[error("{0} file descriptors exceed the frame limit of 253")]
    TooManyFds(usize),
    /// A frame announced descriptors that did not arrive before it.
    #[error("frame announces {announced} file descriptors but only {received} arrived")]
    MissingFds {
        /// Announced count.
        announced: usize,
        /// Descriptors available.
        received: usize,
    },
}

/// Errors of the shared-memory objects; the binding maps each to one Python exception.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    /// Creating or mapping the segment failed (the OS error, errno kept).
    #[error("shared memory: {0}")]
    Os(#[from] io::Error),
    /// The segment does not hold an object of the expected kind.
    #[error("the shared-memory segment does not hold a plait {expected}")]
    WrongKind {
        /// The kind looked for.
        expected: &'static str,
    },
    /// The object's words in shared memory hold values no plait process writes: another process
    /// (or a stray write into the mapping) corrupted them. The object is unusable; nothing was
    /// changed by the failed call.
    #[error("the shared-memory {object} is corrupted: {detail}")]
    Corrupt {
        /// The kind of object (`Queue`, `Lock`, ...).
        object: &'static str,
        /// What was found inconsistent.
        detail: String,
    },
    /// Releasing a lock that is not locked.
    #[error("release unlocked lock")]
    NotLocked,
    /// Releasing an `RLock` the caller does not own.
    #[error("cannot release un-acquired lock")]
    NotOwned,
    /// Releasing a bounded semaphore above its initial value.
    #[error("Semaphore released too many times")]
    TooManyReleases,
    /// A count would not fit its 32-bit word.
    #[error("value would exceed {max}")]
    Overflow {
        /// The largest allowed value.
        max: u64,
    },
    /// The barrier is broken.
    #[error("barrier is broken")]
    BrokenBarrier,
    /// A message does not fit the ring even when it is empty.
    #[error("a message of {len} bytes does not fit this queue's ring of {capacity} bytes")]
    TooLarge {
        /// Encoded message length.
        len: usize,
        /// The ring's capacity (a message also needs 8 bytes of framing).
        capacity: usize,
    },
    /// `task_done` called more times than items were put.
    #[error("task_done() called too many times")]
    TooManyTaskDone,
    /// The wait was interrupted by the blocker.
    #[error("wait interrupted")]
    Interrupted,
}

impl From<Interrupted> for IpcError {
    fn from(_: Interrupted) -> Self {
        Self::Interrupted
    }
}

impl IpcError {
    /// A [`IpcError::Corrupt`] for `object`.
    pub fn corrupt(object: &'static str, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            object,
            detail: detail.into(),
        }
    }
}

/// Why a scaling law could not be fitted (`plait.scaling`); every variant is a `ValueError` in
/// Python except [`ScalingError::NoFit`], a `RuntimeError`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScalingError {
    /// Fewer measurements than the model has coefficients.
    #[error("{model} has {needed} coefficients: it needs at least {needed} measurements, got {points}")]
    TooFewPoints {
        /// The model's name (`"usl"`, `"amdahl"`, `"gustafson"`).
        model: &'static str,
        /// How many measurements were given.
        points: usize,
        /// How many the model needs at least.
        needed: usize,
    },
    /// `load` and `throughput` differ in length.
    #[error("load has {load} values but throughput has {throughput}: give one throughput per load")]
    LengthMismatch {
        /// Length of `load`.
        load: usize,
        /// Length of `throughput`.
        throughput: usize,
    },
    /// A load or throughput that is not a finite positive number.
    #[error("{what}[{index}] is {value}: every {what} must be a finite number above 0")]
    InvalidValue {
        /// `"load"` or `"throughput"`.
        what: &'static str,
        /// Position in its sequence.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// The solver found no coefficients within the model's bounds.
    #[error("{model}: the least-squares solver found no coefficients within the bounds")]
    NoFit {
        /// The model's name.
        model: &'static str,
    },
}
