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
    Shutdown { cancel: bool },
}

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
