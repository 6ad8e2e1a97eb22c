//! The channel from the [`Pool`](super::Pool) handle to the dispatcher thread: commands, the
//! poller's waker, and the dispatcher's sleep state that senders check.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use mio::{Token, Waker};
use parking_lot::Mutex;

/// The poller token of the waker.
pub(super) const WAKER: Token = Token(usize::MAX);

pub(super) struct Submit<T> {
    pub(super) id: u64,
    pub(super) func: u64,
    pub(super) definition: Option<Arc<Vec<u8>>>,
    pub(super) body: Vec<u8>,
    pub(super) fds: Vec<OwnedFd>,
    pub(super) timeout: Option<Duration>,
    pub(super) ticket: T,
}

pub(super) enum Command<T> {
    Submit(Submit<T>),
    CancelRunning(u64),
    Shutdown {
        cancel: bool,
    },
    /// Report what each worker runs (for dumps).
    Inspect(mpsc::Sender<Vec<Busy>>),
}

/// A worker and the task it runs, as [`Pool::running`](super::Pool::running) reports it.
#[derive(Debug, Clone)]
pub struct Busy {
    /// The worker's slot.
    pub slot: usize,
    /// The worker's process id.
    pub pid: i32,
    /// The task's id (as `Pool::submit` returned it).
    pub task: u64,
    /// The task's function id (0: the function travels in the body).
    pub func: u64,
    /// The first bytes of the task's body (at most [`BUSY_BODY_MAX`]).
    pub body: Vec<u8>,
    /// Whether the task has shared-memory segments (its body then starts with their table).
    pub segments: bool,
    /// How long it has run.
    pub running_for: Duration,
}

/// How much of a running task's body [`Busy`] copies.
pub const BUSY_BODY_MAX: usize = 64 * 1024;

/// The command channel and the poller's waker, shared with the dispatcher, which closes it
/// before its final drain so no command can slip in after it stopped listening.
pub(super) type Link<T> = Mutex<Option<(mpsc::Sender<Command<T>>, Waker)>>;

/// The dispatcher's sleep state, shared with senders.
#[derive(Default)]
pub(super) struct Idle {
    pub(super) sleeping: AtomicBool,
    /// Commands sent and not yet taken by the dispatcher.
    pub(super) pending: AtomicU64,
}
