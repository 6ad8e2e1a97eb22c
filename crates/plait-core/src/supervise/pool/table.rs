//! The dispatcher's task table: tasks queued, tasks in flight in a worker, and each worker's
//! state (its process, socket, frames to write, and why it was killed).

use std::collections::{HashSet, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicI32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Token;

use crate::ipc::frame::Decoder;
use crate::ipc::outbox::Outbox;
use crate::supervise::Child;

/// Each slot's worker process id, 0 while the slot is empty: written by the dispatcher as it
/// starts and reaps workers, read by [`Pool::worker_pids`](super::Pool::worker_pids).
pub(super) type Pids = Arc<[AtomicI32]>;

pub(super) struct Running<T> {
    pub(super) id: u64,
    pub(super) func: u64,
    /// Kept until the task finishes, so a task its worker never started can be sent again.
    pub(super) body: Vec<u8>,
    pub(super) fds: Vec<OwnedFd>,
    pub(super) timeout: Option<Duration>,
    pub(super) ticket: T,
}

pub(super) struct Queued<T> {
    pub(super) id: u64,
    pub(super) func: u64,
    pub(super) body: Vec<u8>,
    pub(super) fds: Vec<OwnedFd>,
    pub(super) timeout: Option<Duration>,
    pub(super) ticket: T,
    /// Already handed to [`Sink::start`] (sent once to a worker that died before starting it).
    pub(super) started: bool,
}

/// Why the dispatcher killed a worker, so its death is not reported as a crash.
#[derive(Clone, Copy)]
pub(super) enum Kill {
    /// The task with this id ran past this timeout.
    TimedOut(u64, Duration),
    /// The task with this id was cancelled while running.
    Cancelled(u64),
    Shutdown,
}

pub(super) struct Worker<T> {
    pub(super) child: Child,
    pub(super) stream: mio::net::UnixStream,
    pub(super) decoder: Decoder,
    /// Frames to write, with duplicates of their descriptors (the tasks keep their own).
    pub(super) out: Outbox,
    pub(super) ready: bool,
    pub(super) in_flight: VecDeque<Running<T>>,
    /// When the head of `in_flight` started running.
    pub(super) head_started: Instant,
    pub(super) known: HashSet<u64>,
    pub(super) tasks_done: u64,
    pub(super) retiring: bool,
    /// A retired worker closed its socket (its goodbye): it has until then to exit by itself
    /// (a worker flushes what it must as it exits), and is killed after.
    pub(super) exit_by: Option<Instant>,
    pub(super) killed: Option<Kill>,
    /// Socket closed unexpectedly or pidfd fired: reap and replace.
    pub(super) dead: bool,
}

/// The poller token of the socket of the worker in `slot`.
pub(super) fn socket_token(slot: usize) -> Token {
    Token(slot * 2)
}

/// The poller token of the pidfd of the worker in `slot`.
pub(super) fn pidfd_token(slot: usize) -> Token {
    Token(slot * 2 + 1)
}

/// The worker slot of a poller token, and whether the token is the worker's pidfd (else its
/// socket).
pub(super) fn slot_of(token: Token) -> (usize, bool) {
    (token.0 / 2, token.0 % 2 == 1)
}
