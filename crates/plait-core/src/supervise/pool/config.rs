//! What the caller of the pool provides (its [`Config`], a [`Sink`] for outcomes, a [`Launch`]
//! hook) and what it gets back per task ([`Outcome`]).

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::supervise::{Exit, Reaper};

/// How a task ended.
#[derive(Debug)]
pub enum Outcome {
    /// The worker returned this result payload, with the descriptors it sent beside it
    /// (shared-memory segments holding the result's large buffers).
    Ok(Vec<u8>, Vec<OwnedFd>),
    /// The worker reported this error payload.
    Err(Vec<u8>),
    /// The worker died while running the task.
    Crashed(Exit),
    /// The task ran longer than its timeout; its worker was killed.
    TimedOut(Duration),
    /// Cancelled while running (its worker was killed) or before it started.
    Cancelled,
    /// The pool cannot run tasks (workers fail to start, or the initializer failed).
    Broken(String),
    /// This task could not be sent to a worker (e.g. no descriptors left to pass its shared
    /// memory); the pool is fine.
    Unsendable(String),
}

impl PartialEq for Outcome {
    /// Descriptors compare by count (the same segment arrives under different numbers).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Ok(a, fa), Self::Ok(b, fb)) => a == b && fa.len() == fb.len(),
            (Self::Err(a), Self::Err(b)) => a == b,
            (Self::Crashed(a), Self::Crashed(b)) => a == b,
            (Self::TimedOut(a), Self::TimedOut(b)) => a == b,
            (Self::Cancelled, Self::Cancelled) => true,
            (Self::Broken(a), Self::Broken(b)) | (Self::Unsendable(a), Self::Unsendable(b)) => a == b,
            _ => false,
        }
    }
}

/// Receives the dispatcher's decisions and outcomes (called on the dispatcher thread).
pub trait Sink<T>: Send + 'static {
    /// Called just before a task is sent to a worker; `false` drops it (cancelled meanwhile).
    fn start(&mut self, ticket: &T) -> bool;
    /// Delivers finished tasks, in batches.
    fn finish(&mut self, done: Vec<(T, Outcome)>);
}

/// Starts a worker some other way than `exec` (the binding forks the interpreter): given the
/// worker's socket fd, returns the child's pid, or `None` when it cannot start this worker and
/// `command` should (the binding's fork is refused once the interpreter is shutting down).
pub type Launch = Box<dyn FnMut(std::os::fd::RawFd) -> io::Result<Option<i32>> + Send>;

/// How to run workers.
pub struct Config {
    /// Number of worker processes.
    pub workers: usize,
    /// Program and arguments; the worker's socket fd number is appended as the last argument.
    pub command: Vec<OsString>,
    /// When set, used instead of `command` to start each worker (`command` starts the ones it
    /// declines).
    pub launch: Option<Launch>,
    /// When set, the workers `launch` starts are not this process's children (a fork server
    /// started them) and their exit status comes from here; see
    /// [`Child::adopt_foreign`](crate::supervise::Child::adopt_foreign).
    pub reap: Option<Reaper>,
    /// Payload of the `HELLO` frame.
    pub hello: Vec<u8>,
    /// Descriptors sent with every `HELLO` (each worker gets duplicates of its own): those the
    /// worker's setup refers to (shared memory, pipes of the initializer's arguments).
    pub hello_fds: Vec<std::os::fd::OwnedFd>,
    /// Restart a worker after it ran this many tasks.
    pub max_tasks_per_worker: Option<u64>,
}
