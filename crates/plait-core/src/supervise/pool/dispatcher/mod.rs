//! The process pool's dispatcher: one Rust thread that owns the worker processes.
//!
//! It polls (mio) every worker's socket and pidfd plus a command channel; sends each task to a
//! worker as a frame, preceded once per worker by the definition (pickled function) it needs;
//! collects result frames; and answers every fault for the one task it concerns:
//!
//! - a worker that dies (crash, signal, OOM kill) fails the task it was running with
//!   [`Outcome::Crashed`]; tasks it had received but not started go back to the queue; a
//!   replacement starts;
//! - a task running past its timeout gets its worker killed and [`Outcome::TimedOut`];
//! - [`Pool::cancel_running`] kills the worker of a running task: [`Outcome::Cancelled`];
//! - workers that die before saying they are ready, several times in a row, or whose initializer
//!   fails, break the pool: queued and later tasks get [`Outcome::Broken`].
//!
//! Payloads are opaque bytes and each task carries a caller-chosen *ticket* (the binding's
//! future) handed back with its outcome; the dispatcher knows nothing of pickling or Python.
//!
//! Wire protocol (frames from [`crate::ipc::frame`]): parent to worker `HELLO` (opaque setup
//! payload, first frame), `DEFINE` (id = definition id), `TASK` (id = task id; payload = the
//! definition id as 8 little-endian bytes, then the task body), `SHUTDOWN`; worker to parent
//! `READY`, `OK` / `ERR` (id = task id; results arrive in the order tasks were sent),
//! `INIT_FAILED` (payload = UTF-8 text).

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::Mutex;

use crate::supervise::{Child, Exit, Reaper, Spawn};
use crate::ipc::fdpass;
use crate::ipc::frame::{Decoder, MAX_FDS};
use crate::ipc::outbox::Outbox;
use crate::ipc::socket;

/// Parent to worker: setup payload (first frame).
pub const HELLO: u8 = 1;
/// Parent to worker: a definition (id = definition id).
pub const DEFINE: u8 = 2;
/// Parent to worker: run a task (id = task id).
pub const TASK: u8 = 3;
/// Parent to worker: exit after the tasks already sent.
pub const SHUTDOWN: u8 = 4;
/// Worker to parent: setup done, ready for tasks.
pub const READY: u8 = 16;
/// Worker to parent: a task's result.
pub const OK: u8 = 17;
/// Worker to parent: a task's error.
pub const ERR: u8 = 18;
/// Worker to parent: setup failed (payload: UTF-8 text).
pub const INIT_FAILED: u8 = 19;

/// Consecutive deaths before `READY` after which the pool stops restarting workers.
const MAX_STARTUP_FAILURES: u32 = 3;
/// How long workers get to exit after `SHUTDOWN` before they are killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);
/// Tasks a fast worker may hold beyond the one it runs (one frame write carries many).
const MAX_PREFETCH: usize = 8;
/// Below this mean service time a worker gets prefetched tasks.
const PREFETCH_BELOW: Duration = Duration::from_millis(2);

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
/// worker's socket fd, returns the child's pid.
pub type Launch = Box<dyn FnMut(std::os::fd::RawFd) -> io::Result<i32> + Send>;

/// How to run workers.
pub struct Config {
    /// Number of worker processes.
    pub workers: usize,
    /// Program and arguments; the worker's socket fd number is appended as the last argument.
    pub command: Vec<OsString>,
    /// When set, used instead of `command` to start each worker.
    pub launch: Option<Launch>,
    /// When set, the workers `launch` starts are not this process's children (a fork server
    /// started them) and their exit status comes from here; see [`Child::adopt_foreign`].
    pub reap: Option<Reaper>,
    /// Payload of the `HELLO` frame.
    pub hello: Vec<u8>,
    /// Restart a worker after it ran this many tasks.
    pub max_tasks_per_worker: Option<u64>,
}

pub use crate::error::PoolClosed;

struct Submit<T> {
    id: u64,
    func: u64,
    definition: Option<Arc<Vec<u8>>>,
    body: Vec<u8>,
    fds: Vec<OwnedFd>,
    timeout: Option<Duration>,
    ticket: T,
}

enum Command<T> {
    Submit(Submit<T>),
    CancelRunning(u64),
    Shutdown { cancel: bool },
}

/// The command channel and the poller's waker, shared with the dispatcher, which closes it
/// before its final drain so no command can slip in after it stopped listening.
type Link<T> = Mutex<Option<(mpsc::Sender<Command<T>>, Waker)>>;

/// The dispatcher's sleep state, shared with senders.
#[derive(Default)]
struct Idle {
    sleeping: AtomicBool,
    /// Commands sent and not yet taken by the dispatcher.
    pending: AtomicU64,
}

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
        let mut dispatcher = Dispatcher::new(config, poll, inbox, sink, Arc::clone(&idle), Arc::clone(&link));
        let handle = Self {
            link,
            idle,
            thread: Mutex::new(None),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
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

const WAKER: Token = Token(usize::MAX);

struct Running<T> {
    id: u64,
    func: u64,
    /// Kept until the task finishes, so a task its worker never started can be sent again.
    body: Vec<u8>,
    fds: Vec<OwnedFd>,
    timeout: Option<Duration>,
    ticket: T,
}

struct Queued<T> {
    id: u64,
    func: u64,
    body: Vec<u8>,
    fds: Vec<OwnedFd>,
    timeout: Option<Duration>,
    ticket: T,
    /// Already handed to [`Sink::start`] (sent once to a worker that died before starting it).
    started: bool,
}

/// Why the dispatcher killed a worker, so its death is not reported as a crash.
#[derive(Clone, Copy)]
enum Kill {
    /// The task with this id ran past this timeout.
    TimedOut(u64, Duration),
    /// The task with this id was cancelled while running.
    Cancelled(u64),
    Shutdown,
}

struct Worker<T> {
    child: Child,
    stream: mio::net::UnixStream,
    decoder: Decoder,
    /// Frames to write, with duplicates of their descriptors (the tasks keep their own).
    out: Outbox,
    ready: bool,
    in_flight: VecDeque<Running<T>>,
    /// When the head of `in_flight` started running.
    head_started: Instant,
    known: HashSet<u64>,
    tasks_done: u64,
    retiring: bool,
    killed: Option<Kill>,
    /// Socket closed or pidfd fired: reap and replace.
    dead: bool,
}

struct Dispatcher<T, S> {
    config: Config,
    poll: Poll,
    rx: mpsc::Receiver<Command<T>>,
    sink: S,
    workers: Vec<Option<Worker<T>>>,
    queue: VecDeque<Queued<T>>,
    definitions: HashMap<u64, Arc<Vec<u8>>>,
    done: Vec<(T, Outcome)>,
    /// Ids cancelled while prefetched in a worker: their results are dropped.
    discard: HashSet<u64>,
    shutting_down: bool,
    startup_failures: u32,
    broken: Option<String>,
    /// Mean service time of recent tasks (for prefetch decisions).
    mean_service: Option<Duration>,
    read_buf: Vec<u8>,
    idle: Arc<Idle>,
    link: Arc<Link<T>>,
}

fn slot_of(token: Token) -> (usize, bool) {
    (token.0 / 2, token.0 % 2 == 1)
}

impl<T: Send + 'static, S: Sink<T>> Dispatcher<T, S> {
    fn new(
        config: Config,
        poll: Poll,
        rx: mpsc::Receiver<Command<T>>,
        sink: S,
        idle: Arc<Idle>,
        link: Arc<Link<T>>,
    ) -> Self {
        let n = config.workers;
        Self {
            config,
            poll,
            rx,
            sink,
            workers: (0..n).map(|_| None).collect(),
            queue: VecDeque::new(),
            definitions: HashMap::new(),
            done: Vec::new(),
            discard: HashSet::new(),
            shutting_down: false,
            startup_failures: 0,
            broken: None,
            mean_service: None,
            read_buf: vec![0; 64 * 1024],
            idle,
            link,
        }
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        let mut exit_deadline: Option<Instant> = None;
        loop {
            self.fill_slots();
            self.dispatch();
            self.flush_all();
            self.deliver();
            if self.shutting_down && self.queue.is_empty() && self.all_idle() {
                let deadline = *exit_deadline.get_or_insert_with(|| {
                    self.retire_all();
                    Instant::now() + EXIT_GRACE
                });
                self.flush_all();
                if self.workers.iter().all(Option::is_none) {
                    break;
                }
                if Instant::now() >= deadline {
                    self.kill_all(Kill::Shutdown);
                }
            }
            let mut timeout = self.next_timeout(exit_deadline);
            self.idle.sleeping.store(true, Ordering::SeqCst);
            if self.idle.pending.load(Ordering::SeqCst) > 0 {
                timeout = Some(Duration::ZERO);
            }
            let polled = self.poll.poll(&mut events, timeout);
            self.idle.sleeping.store(false, Ordering::SeqCst);
            if let Err(e) = polled {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The poller itself failed: nothing can be supervised any more.
                self.break_pool(format!("the dispatcher's poller failed: {e}"));
                self.kill_all(Kill::Shutdown);
                self.reap_dead();
                self.deliver();
                break;
            }
            for event in &events {
                if event.token() == WAKER {
                    continue;
                }
                let (slot, is_pidfd) = slot_of(event.token());
                if is_pidfd {
                    if let Some(w) = self.workers[slot].as_mut() {
                        w.dead = true;
                    }
                } else {
                    self.read_worker(slot);
                }
            }
            self.drain_commands();
            self.check_timeouts();
            self.reap_dead();
        }
        // Stop listening, then answer whatever was sent meanwhile: nothing is left pending.
        drop(self.link.lock().take());
        while let Ok(cmd) = self.rx.try_recv() {
            if let Command::Submit(s) = cmd {
                let outcome = match &self.broken {
                    Some(reason) => Outcome::Broken(reason.clone()),
                    None => Outcome::Cancelled,
                };
                self.done.push((s.ticket, outcome));
            }
        }
        self.deliver();
    }

    fn all_idle(&self) -> bool {
        self.workers.iter().flatten().all(|w| w.in_flight.is_empty())
    }

    fn next_timeout(&self, exit_deadline: Option<Instant>) -> Option<Duration> {
        let now = Instant::now();
        let mut next = exit_deadline;
        for w in self.workers.iter().flatten() {
            if let Some(head) = w.in_flight.front() {
                if let Some(t) = head.timeout {
                    let d = w.head_started + t;
                    next = Some(next.map_or(d, |n| n.min(d)));
                }
            }
        }
        next.map(|d| d.saturating_duration_since(now))
    }

    fn drain_commands(&mut self) {
        while let Ok(cmd) = self.rx.try_recv() {
            self.idle.pending.fetch_sub(1, Ordering::SeqCst);
            match cmd {
                Command::Submit(s) => {
                    if let Some(def) = s.definition {
                        self.definitions.entry(s.func).or_insert(def);
                    }
                    if let Some(reason) = &self.broken {
                        self.done.push((s.ticket, Outcome::Broken(reason.clone())));
                        continue;
                    }
                    self.queue.push_back(Queued {
                        id: s.id,
                        func: s.func,
                        body: s.body,
                        fds: s.fds,
                        timeout: s.timeout,
                        ticket: s.ticket,
                        started: false,
                    });
                }
                Command::CancelRunning(id) => self.cancel_running(id),
                Command::Shutdown { cancel } => {
                    self.shutting_down = true;
                    if cancel {
                        for q in self.queue.drain(..) {
                            self.done.push((q.ticket, Outcome::Cancelled));
                        }
                    }
                }
            }
        }
    }

    fn cancel_running(&mut self, id: u64) {
        if let Some(pos) = self.queue.iter().position(|q| q.id == id) {
            // Back in the queue after its worker died: cancel it there.
            let q = self.queue.remove(pos).expect("position is in range");
            self.done.push((q.ticket, Outcome::Cancelled));
            return;
        }
        for w in self.workers.iter_mut().flatten() {
            match w.in_flight.iter().position(|r| r.id == id) {
                Some(0) => {
                    w.killed = Some(Kill::Cancelled(id));
                    let _ = w.child.kill();
                    return;
                }
                Some(_) => {
                    // Sent but not started: it still runs; its result is dropped and the task
                    // reported as cancelled when that result (or the worker's death) arrives.
                    self.discard.insert(id);
                    return;
                }
                None => {}
            }
        }
    }

    fn fill_slots(&mut self) {
        if self.broken.is_some() || (self.shutting_down && self.queue.is_empty()) {
            return;
        }
        for slot in 0..self.workers.len() {
            if self.workers[slot].is_none() {
                match self.spawn(slot) {
                    Ok(w) => self.workers[slot] = Some(w),
                    Err(e) => {
                        self.break_pool(format!("cannot start a worker process: {e}"));
                        return;
                    }
                }
            }
        }
    }

    fn spawn(&mut self, slot: usize) -> io::Result<Worker<T>> {
        let (ours, theirs) = socket::pair()?;
        let fd = theirs.as_raw_fd();
        let child = if let Some(launch) = self.config.launch.as_mut() {
            let pid = launch(fd)?;
            match &self.config.reap {
                Some(reap) => Child::adopt_foreign(pid, Arc::clone(reap))?,
                None => Child::adopt(pid)?,
            }
        } else {
            let (program, args) = self
                .config
                .command
                .split_first()
                .ok_or_else(|| io::Error::other("empty worker command"))?;
            let mut args: Vec<OsString> = args.to_vec();
            args.push(fd.to_string().into());
            Spawn::new(program.clone(), args).keep_fd(fd).spawn()?
        };
        drop(theirs);
        ours.set_nonblocking(true)?;
        let mut stream = mio::net::UnixStream::from_std(ours);
        let registry = self.poll.registry();
        registry.register(&mut stream, Token(slot * 2), Interest::READABLE)?;
        registry.register(&mut SourceFd(&child.pidfd()), Token(slot * 2 + 1), Interest::READABLE)?;
        let mut out = Outbox::default();
        out.push(HELLO, 0, &self.config.hello, Vec::new())
            .map_err(io::Error::other)?;
        Ok(Worker {
            child,
            stream,
            decoder: Decoder::default(),
            out,
            ready: false,
            in_flight: VecDeque::new(),
            head_started: Instant::now(),
            known: HashSet::new(),
            tasks_done: 0,
            retiring: false,
            killed: None,
            dead: false,
        })
    }

    fn capacity(&self, w: &Worker<T>) -> usize {
        if !w.ready || w.dead || w.retiring || w.killed.is_some() {
            return 0;
        }
        let limit = match self.mean_service {
            Some(m) if m < PREFETCH_BELOW => 1 + MAX_PREFETCH,
            _ => 1,
        };
        let limit = match self.config.max_tasks_per_worker {
            Some(max) => limit.min(usize::try_from(max.saturating_sub(w.tasks_done)).unwrap_or(usize::MAX)),
            None => limit,
        };
        limit.saturating_sub(w.in_flight.len())
    }

    fn dispatch(&mut self) {
        if self.queue.is_empty() {
            return;
        }
        for slot in 0..self.workers.len() {
            let Some(w) = self.workers[slot].as_ref() else { continue };
            let mut room = self.capacity(w);
            while room > 0 {
                let Some(task) = self.queue.pop_front() else { return };
                if !task.started && !self.sink.start(&task.ticket) {
                    continue;
                }
                let w = self.workers[slot].as_mut().expect("slot checked above");
                if !w.known.contains(&task.func) {
                    if let Some(def) = self.definitions.get(&task.func) {
                        let _ = w.out.push(DEFINE, task.func, def, Vec::new());
                        w.known.insert(task.func);
                    }
                }
                let mut frame_body = Vec::with_capacity(8 + task.body.len());
                frame_body.extend_from_slice(&task.func.to_le_bytes());
                frame_body.extend_from_slice(&task.body);
                let dups: io::Result<Vec<OwnedFd>> = task.fds.iter().map(OwnedFd::try_clone).collect();
                let encoded = match dups {
                    Ok(dups) if dups.len() <= MAX_FDS => {
                        w.out.push(TASK, task.id, &frame_body, dups).map_err(|e| e.to_string())
                    }
                    Ok(dups) => Err(format!(
                        "{} file descriptors exceed the limit of {MAX_FDS} per task",
                        dups.len()
                    )),
                    Err(e) => Err(format!("cannot pass the task's shared memory to a worker: {e}")),
                };
                if let Err(e) = encoded {
                    self.done.push((task.ticket, Outcome::Unsendable(e)));
                    continue;
                }
                if w.in_flight.is_empty() {
                    w.head_started = Instant::now();
                }
                w.in_flight.push_back(Running {
                    id: task.id,
                    func: task.func,
                    body: task.body,
                    fds: task.fds,
                    timeout: task.timeout,
                    ticket: task.ticket,
                });
                room -= 1;
            }
        }
    }

    fn flush_all(&mut self) {
        for slot in 0..self.workers.len() {
            self.flush(slot);
        }
    }

    fn flush(&mut self, slot: usize) {
        let Some(w) = self.workers[slot].as_mut() else { return };
        if w.out.is_empty() || w.dead {
            return;
        }
        if w.out.write_to(w.stream.as_raw_fd()).is_err() {
            w.dead = true;
        }
        let interest = if w.out.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        let _ = self
            .poll
            .registry()
            .reregister(&mut w.stream, Token(slot * 2), interest);
    }

    fn read_worker(&mut self, slot: usize) {
        let Some(w) = self.workers[slot].as_mut() else { return };
        let buf = &mut self.read_buf;
        loop {
            match fdpass::recv(w.stream.as_raw_fd(), buf, w.decoder.push_fds()) {
                Ok(0) => {
                    w.dead = true;
                    break;
                }
                Ok(n) => w.decoder.feed(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    w.dead = true;
                    break;
                }
            }
        }
        self.handle_frames(slot);
        self.flush(slot);
    }

    fn handle_frames(&mut self, slot: usize) {
        loop {
            let Some(w) = self.workers[slot].as_mut() else { return };
            let frame = match w.decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(_) => {
                    // A corrupt stream: the worker cannot be trusted any more.
                    w.dead = true;
                    let _ = w.child.kill();
                    return;
                }
            };
            match frame.kind {
                READY => {
                    w.ready = true;
                    self.startup_failures = 0;
                }
                OK | ERR => {
                    let Some(head) = w.in_flight.pop_front() else { continue };
                    let now = Instant::now();
                    let took = now.saturating_duration_since(w.head_started);
                    w.head_started = now;
                    w.tasks_done += 1;
                    if self.config.max_tasks_per_worker.is_some_and(|max| w.tasks_done >= max) {
                        w.retiring = true;
                    }
                    if w.retiring && w.in_flight.is_empty() {
                        let _ = w.out.push(SHUTDOWN, 0, &[], Vec::new());
                    }
                    self.mean_service = Some(match self.mean_service {
                        None => took,
                        Some(m) => (m * 7 + took) / 8,
                    });
                    if self.discard.remove(&head.id) {
                        self.done.push((head.ticket, Outcome::Cancelled));
                        continue;
                    }
                    let outcome = if frame.kind == OK {
                        Outcome::Ok(frame.payload, frame.fds)
                    } else {
                        Outcome::Err(frame.payload)
                    };
                    self.done.push((head.ticket, outcome));
                }
                INIT_FAILED => {
                    let text = String::from_utf8_lossy(&frame.payload).into_owned();
                    self.break_pool(format!("the worker initializer failed:\n{text}"));
                }
                _ => {}
            }
        }
    }

    fn check_timeouts(&mut self) {
        let now = Instant::now();
        for w in self.workers.iter_mut().flatten() {
            if w.killed.is_some() {
                continue;
            }
            if let Some(head) = w.in_flight.front() {
                if let Some(t) = head.timeout {
                    if now >= w.head_started + t {
                        w.killed = Some(Kill::TimedOut(head.id, t));
                        let _ = w.child.kill();
                    }
                }
            }
        }
    }

    fn reap_dead(&mut self) {
        for slot in 0..self.workers.len() {
            let dead = self.workers[slot].as_ref().is_some_and(|w| w.dead);
            if !dead {
                continue;
            }
            // Results written before the worker died are still in the socket: take them first.
            self.read_worker(slot);
            let mut w = self.workers[slot].take().expect("checked above");
            let _ = self.poll.registry().deregister(&mut w.stream);
            let _ = self.poll.registry().deregister(&mut SourceFd(&w.child.pidfd()));
            let _ = w.child.kill();
            let exit = w.child.wait().unwrap_or(Exit::Unknown);
            if !w.ready && w.killed.is_none() && !self.shutting_down {
                self.startup_failures += 1;
                if self.startup_failures >= MAX_STARTUP_FAILURES {
                    self.break_pool(format!(
                        "worker processes exit before they are ready ({exit}, {MAX_STARTUP_FAILURES} times in a row)"
                    ));
                }
            }
            let mut in_flight = std::mem::take(&mut w.in_flight);
            if let Some(head) = in_flight.pop_front() {
                let outcome = match w.killed {
                    Some(Kill::TimedOut(id, t)) if id == head.id => Some(Outcome::TimedOut(t)),
                    Some(Kill::Cancelled(id)) if id == head.id => Some(Outcome::Cancelled),
                    // Killed for a task that finished just before the kill landed: this one is
                    // innocent, so it runs again elsewhere.
                    Some(Kill::TimedOut(..) | Kill::Cancelled(_)) => None,
                    Some(Kill::Shutdown) | None => Some(Outcome::Crashed(exit)),
                };
                match outcome {
                    Some(outcome) => {
                        self.discard.remove(&head.id);
                        self.done.push((head.ticket, outcome));
                    }
                    None => in_flight.push_front(head),
                }
            }
            // Sent but never started: run them elsewhere, in their original order.
            for r in in_flight.into_iter().rev() {
                if self.discard.remove(&r.id) {
                    self.done.push((r.ticket, Outcome::Cancelled));
                    continue;
                }
                if let Some(reason) = &self.broken {
                    self.done.push((r.ticket, Outcome::Broken(reason.clone())));
                    continue;
                }
                self.queue.push_front(Queued {
                    id: r.id,
                    func: r.func,
                    body: r.body,
                    fds: r.fds,
                    timeout: r.timeout,
                    ticket: r.ticket,
                    started: true,
                });
            }
        }
    }

    fn retire_all(&mut self) {
        for w in self.workers.iter_mut().flatten() {
            if !w.retiring {
                w.retiring = true;
                let _ = w.out.push(SHUTDOWN, 0, &[], Vec::new());
            }
        }
    }

    fn kill_all(&mut self, why: Kill) {
        for w in self.workers.iter_mut().flatten() {
            w.killed.get_or_insert(why);
            let _ = w.child.kill();
        }
    }

    fn break_pool(&mut self, reason: String) {
        if self.broken.is_some() {
            return;
        }
        for q in self.queue.drain(..) {
            self.done.push((q.ticket, Outcome::Broken(reason.clone())));
        }
        self.broken = Some(reason);
    }

    fn deliver(&mut self) {
        if !self.done.is_empty() {
            let batch = std::mem::take(&mut self.done);
            self.sink.finish(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A worker speaking the protocol with raw frames: replies to a task with its body reversed,
    /// exits with code 5 on `crash`, sleeps on `sleep`.
    const WORKER: &str = r#"
import os, struct, sys, time
fd = int(sys.argv[-1])
def read_exact(n):
    b = b""
    while len(b) < n:
        c = os.read(fd, n - len(b))
        if not c:
            sys.exit(0)
        b += c
    return b
def send(kind, ident, payload):
    os.write(fd, struct.pack("<IB3xQ", len(payload), kind, ident) + payload)
while True:
    n, kind, ident = struct.unpack("<IB3xQ", read_exact(16))
    payload = read_exact(n)
    if kind == 1:
        send(16, 0, b"")
    elif kind == 3:
        body = payload[8:]
        if body == b"crash":
            os._exit(5)
        if body == b"sleep":
            time.sleep(30)
        send(17, ident, body[::-1])
    elif kind == 4:
        sys.exit(0)
"#;

    type Outcomes = parking_lot::Mutex<Vec<(u32, Outcome)>>;

    #[derive(Clone, Default)]
    struct Collect(Arc<(Outcomes, parking_lot::Condvar)>);

    impl Sink<u32> for Collect {
        fn start(&mut self, _ticket: &u32) -> bool {
            true
        }
        fn finish(&mut self, done: Vec<(u32, Outcome)>) {
            let (lock, cv) = &*self.0;
            lock.lock().extend(done);
            cv.notify_all();
        }
    }

    impl Collect {
        fn wait_for(&self, n: usize) -> Vec<(u32, Outcome)> {
            let (lock, cv) = &*self.0;
            let mut got = lock.lock();
            let deadline = Instant::now() + Duration::from_secs(60);
            while got.len() < n {
                assert!(
                    !cv.wait_until(&mut got, deadline).timed_out(),
                    "outcomes did not arrive"
                );
            }
            let mut out = std::mem::take(&mut *got);
            out.sort_by_key(|(t, _)| *t);
            out
        }
    }

    fn pool(workers: usize, sink: Collect) -> Pool<u32> {
        let config = Config {
            workers,
            launch: None,
            reap: None,
            command: vec!["python3".into(), "-c".into(), WORKER.into()],
            hello: Vec::new(),
            max_tasks_per_worker: None,
        };
        Pool::start(config, sink).unwrap()
    }

    fn def() -> Arc<Vec<u8>> {
        Arc::new(Vec::new())
    }

    #[test]
    fn results_come_back_for_every_task() {
        let sink = Collect::default();
        let p = pool(2, sink.clone());
        for t in 0..50u32 {
            p.submit(1, Some(def()), format!("task{t}").into_bytes(), Vec::new(), None, t)
                .unwrap();
        }
        let got = sink.wait_for(50);
        for (t, outcome) in got {
            let want: Vec<u8> = format!("task{t}").into_bytes().into_iter().rev().collect();
            assert_eq!(outcome, Outcome::Ok(want, Vec::new()));
        }
        p.shutdown(false);
        p.join();
    }

    #[test]
    fn a_crash_fails_only_its_task() {
        let sink = Collect::default();
        let p = pool(1, sink.clone());
        p.submit(1, Some(def()), b"ab".to_vec(), Vec::new(), None, 0).unwrap();
        p.submit(1, None, b"crash".to_vec(), Vec::new(), None, 1).unwrap();
        p.submit(1, None, b"cd".to_vec(), Vec::new(), None, 2).unwrap();
        let got = sink.wait_for(3);
        assert_eq!(got[0].1, Outcome::Ok(b"ba".to_vec(), Vec::new()));
        assert_eq!(got[1].1, Outcome::Crashed(Exit::Code(5)));
        assert_eq!(
            got[2].1,
            Outcome::Ok(b"dc".to_vec(), Vec::new()),
            "runs on the replacement worker"
        );
        p.shutdown(false);
        p.join();
    }

    #[test]
    fn a_timeout_kills_the_worker_and_the_pool_goes_on() {
        let sink = Collect::default();
        let p = pool(1, sink.clone());
        let t = Some(Duration::from_millis(200));
        p.submit(1, Some(def()), b"sleep".to_vec(), Vec::new(), t, 0).unwrap();
        p.submit(1, None, b"xy".to_vec(), Vec::new(), t, 1).unwrap();
        let got = sink.wait_for(2);
        assert_eq!(got[0].1, Outcome::TimedOut(Duration::from_millis(200)));
        assert_eq!(got[1].1, Outcome::Ok(b"yx".to_vec(), Vec::new()));
        p.shutdown(false);
        p.join();
    }

    /// A pool whose workers are started by a stand-in fork server (this test, through `launch`)
    /// that keeps them and reports their exits through `reap`.
    fn pool_with_foreign_workers(workers: usize, sink: Collect) -> (Pool<u32>, Arc<Mutex<usize>>) {
        let server: Arc<Mutex<HashMap<i32, Child>>> = Arc::default();
        let reaped = Arc::new(Mutex::new(0));
        let started = Arc::clone(&server);
        let launch: Launch = Box::new(move |fd| {
            let child = Spawn::new("python3", ["-c", WORKER, &fd.to_string()])
                .keep_fd(fd)
                .spawn()?;
            let pid = child.pid();
            started.lock().insert(pid, child);
            Ok(pid)
        });
        let count = Arc::clone(&reaped);
        let reap: Reaper = Arc::new(move |pid| {
            let mut child = server
                .lock()
                .remove(&pid)
                .ok_or_else(|| io::Error::other("unknown pid"))?;
            *count.lock() += 1;
            child.wait()
        });
        let config = Config {
            workers,
            launch: Some(launch),
            reap: Some(reap),
            command: Vec::new(),
            hello: Vec::new(),
            max_tasks_per_worker: None,
        };
        (Pool::start(config, sink).unwrap(), reaped)
    }

    #[test]
    fn foreign_workers_report_their_exit_through_the_reaper() {
        let sink = Collect::default();
        let (p, reaped) = pool_with_foreign_workers(1, sink.clone());
        let t = Some(Duration::from_millis(200));
        p.submit(1, Some(def()), b"ab".to_vec(), Vec::new(), None, 0).unwrap();
        p.submit(1, None, b"crash".to_vec(), Vec::new(), None, 1).unwrap();
        p.submit(1, None, b"sleep".to_vec(), Vec::new(), t, 2).unwrap();
        p.submit(1, None, b"cd".to_vec(), Vec::new(), None, 3).unwrap();
        let got = sink.wait_for(4);
        assert_eq!(got[0].1, Outcome::Ok(b"ba".to_vec(), Vec::new()));
        assert_eq!(
            got[1].1,
            Outcome::Crashed(Exit::Code(5)),
            "the status comes from the reaper"
        );
        assert_eq!(got[2].1, Outcome::TimedOut(Duration::from_millis(200)));
        assert_eq!(got[3].1, Outcome::Ok(b"dc".to_vec(), Vec::new()));
        p.shutdown(false);
        p.join();
        assert_eq!(*reaped.lock(), 3, "every worker, including the last one, was reaped");
    }

    #[test]
    fn shutdown_with_cancel_cancels_the_queue_and_submit_fails_after() {
        let sink = Collect::default();
        let p = pool(1, sink.clone());
        p.submit(
            1,
            Some(def()),
            b"sleep".to_vec(),
            Vec::new(),
            Some(Duration::from_millis(300)),
            0,
        )
        .unwrap();
        for t in 1..5 {
            p.submit(1, None, b"z".to_vec(), Vec::new(), None, t).unwrap();
        }
        p.shutdown(true);
        assert!(p.submit(1, None, b"late".to_vec(), Vec::new(), None, 99).is_err());
        p.join();
        let got = sink.wait_for(5);
        assert!(matches!(got[0].1, Outcome::TimedOut(_) | Outcome::Cancelled));
        assert!(got[1..].iter().all(|(_, o)| *o == Outcome::Cancelled));
    }
}
