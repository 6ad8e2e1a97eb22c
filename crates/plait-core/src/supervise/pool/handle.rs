//! The caller's side of the pool: [`Pool`] (submit, cancel, shut down) and the [`Runner`] that
//! runs the dispatcher on a thread of the caller's choice.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Poll, Waker};
use parking_lot::Mutex;

use super::command::{Busy, Command, Idle, Link, Submit, WAKER};
use super::config::{Config, Sink};
use super::dispatcher::Dispatcher;
use super::table::Pids;
use crate::error::PoolClosed;

/// The dispatcher loop, to run once on some thread; it returns when the pool has shut down and
/// every worker has exited.
pub struct Runner(Box<dyn FnOnce() + Send>);

impl Runner {
    /// Runs the dispatcher until shutdown.
    pub fn run(self) {
        (self.0)();
    }
}

/// Handle to a running dispatcher; see the module docs.
pub struct Pool<T> {
    /// The command channel and the poller's waker; released by [`Pool::join`] (the waker is an
    /// eventfd, which must not outlive a pool that was shut down).
    link: Arc<Link<T>>,
    /// Shared with the dispatcher: whether it is (about to be) asleep in the poller, so senders
    /// only pay for a wake-up (an eventfd write) when one is needed.
    idle: Arc<Idle>,
    thread: Mutex<Option<JoinHandle<()>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    pids: Pids,
}

impl<T: Send + 'static> Pool<T> {
    /// Creates the pool and the dispatcher loop without running it: the caller runs
    /// [`Runner::run`] on a thread of its choice (the binding uses a Python thread, so the
    /// dispatcher is visible to `threading` and joined like any thread).
    ///
    /// # Errors
    /// When the poller cannot be created.
    pub fn new(config: Config, sink: impl Sink<T>) -> io::Result<(Self, Runner)> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (commands, inbox) = mpsc::channel();
        let idle = Arc::new(Idle::default());
        let link: Arc<Link<T>> = Arc::new(Mutex::new(Some((commands, waker))));
        let pids: Pids = (0..config.workers).map(|_| AtomicI32::new(0)).collect();
        let mut dispatcher = Dispatcher::new(
            config,
            poll,
            inbox,
            sink,
            Arc::clone(&idle),
            Arc::clone(&link),
            Arc::clone(&pids),
        );
        let handle = Self {
            link,
            idle,
            thread: Mutex::new(None),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            pids,
        };
        Ok((handle, Runner(Box::new(move || dispatcher.run()))))
    }

    /// Starts the dispatcher on a thread of its own, then the workers.
    ///
    /// # Errors
    /// When the poller or the thread cannot be created.
    pub fn start(config: Config, sink: impl Sink<T>) -> io::Result<Self> {
        let (pool, runner) = Self::new(config, sink)?;
        let thread = std::thread::Builder::new()
            .name("plait-dispatcher".into())
            .spawn(move || runner.run())?;
        *pool.thread.lock() = Some(thread);
        Ok(pool)
    }

    /// Releases the command channel once the dispatcher has exited (after [`Runner::run`]
    /// returned on the caller's thread).
    pub fn release(&self) {
        drop(self.link.lock().take());
    }

    fn send(&self, cmd: Command<T>) -> Result<(), Command<T>> {
        let link = self.link.lock();
        let Some((tx, waker)) = link.as_ref() else {
            return Err(cmd);
        };
        self.idle.pending.fetch_add(1, Ordering::SeqCst);
        if let Err(mpsc::SendError(cmd)) = tx.send(cmd) {
            self.idle.pending.fetch_sub(1, Ordering::SeqCst);
            return Err(cmd);
        }
        // The dispatcher checks `pending` after announcing it sleeps: either it sees this
        // command, or this sender sees it sleeping and wakes it.
        if self.idle.sleeping.load(Ordering::SeqCst) {
            let _ = waker.wake();
        }
        Ok(())
    }

    /// Queues a task; returns its id. `definition` must be given the first time `func` is used.
    /// `fds` (at most 255, e.g. shared-memory segments holding the arguments' large buffers)
    /// are sent to the worker with the task and closed once the task has finished.
    ///
    /// # Errors
    /// [`PoolClosed`] after [`Pool::shutdown`] (the ticket is handed back).
    pub fn submit(
        &self,
        func: u64,
        definition: Option<Arc<Vec<u8>>>,
        body: Vec<u8>,
        fds: Vec<OwnedFd>,
        timeout: Option<Duration>,
        ticket: T,
    ) -> Result<u64, (T, PoolClosed)> {
        if self.closed.load(Ordering::Acquire) {
            return Err((ticket, PoolClosed));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cmd = Command::Submit(Submit {
            id,
            func,
            definition,
            body,
            fds,
            timeout,
            ticket,
        });
        match self.send(cmd) {
            Ok(()) => Ok(id),
            Err(Command::Submit(s)) => Err((s.ticket, PoolClosed)),
            Err(_) => unreachable!("a submit command comes back as a submit"),
        }
    }

    /// What each worker runs now, asked of the dispatcher thread and waited for at most
    /// `timeout`; empty when the dispatcher has stopped or does not answer in time.
    pub fn running(&self, timeout: Duration) -> Vec<Busy> {
        let (tx, rx) = mpsc::channel();
        if self.send(Command::Inspect(tx)).is_err() {
            return Vec::new();
        }
        rx.recv_timeout(timeout).unwrap_or_default()
    }

    /// Kills the worker running task `id` (if it is running); the task ends as cancelled.
    pub fn cancel_running(&self, id: u64) {
        let _ = self.send(Command::CancelRunning(id));
    }

    /// Stops accepting tasks; the dispatcher exits once the queue drains (or at once with
    /// `cancel`, queued tasks ending as cancelled) and every worker has exited.
    pub fn shutdown(&self, cancel: bool) {
        self.closed.store(true, Ordering::Release);
        let _ = self.send(Command::Shutdown { cancel });
    }

    /// Waits for the dispatcher thread to exit (after [`Pool::shutdown`]) and releases the
    /// command channel.
    pub fn join(&self) {
        let handle = self.thread.lock().take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        if self.closed.load(Ordering::Acquire) {
            drop(self.link.lock().take());
        }
    }

    /// The process id of each slot's worker, in slot order; 0 for a slot whose worker is not
    /// started yet (the dispatcher starts them in the background) or was reaped and not yet
    /// replaced.
    pub fn worker_pids(&self) -> Vec<i32> {
        self.pids.iter().map(|pid| pid.load(Ordering::Relaxed)).collect()
    }

    /// Whether [`Pool::shutdown`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl<T> Drop for Pool<T> {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        if let Some((tx, waker)) = self.link.lock().take() {
            let _ = tx.send(Command::Shutdown { cancel: false });
            let _ = waker.wake();
        }
    }
}
