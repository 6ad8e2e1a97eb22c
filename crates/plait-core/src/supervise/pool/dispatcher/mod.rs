//! The dispatcher: one Rust thread that owns the worker processes. Its state is here and its
//! loop ([`Dispatcher::run`]); the work of one turn is split by concern:
//!
//! - [`lifecycle`]: starting workers, reaping dead ones, retiring and killing them;
//! - [`tasks`]: sending tasks to workers and taking their results;
//! - [`timeouts`]: when to wake for a deadline, and killing the workers of overdue tasks.

mod lifecycle;
mod tasks;
mod timeouts;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use mio::{Events, Poll};

use super::command::{Busy, Command, Idle, Link, BUSY_BODY_MAX, WAKER};
use super::config::{Config, Outcome, Sink};
use super::table::{slot_of, Kill, Pids, Queued, Worker};

/// How long workers get to exit after `SHUTDOWN` before they are killed.
pub(super) const EXIT_GRACE: Duration = Duration::from_secs(5);

/// The dispatcher's state; see the module docs.
pub(super) struct Dispatcher<T, S> {
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
    pids: Pids,
}

impl<T: Send + 'static, S: Sink<T>> Dispatcher<T, S> {
    /// A dispatcher of `config`'s workers, polling with `poll` (whose waker the handle holds).
    pub(super) fn new(
        config: Config,
        poll: Poll,
        rx: mpsc::Receiver<Command<T>>,
        sink: S,
        idle: Arc<Idle>,
        link: Arc<Link<T>>,
        pids: Pids,
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
            pids,
        }
    }

    /// The dispatcher loop: returns once the pool has shut down and every worker has exited.
    pub(super) fn run(&mut self) {
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
                Command::Inspect(reply) => {
                    let _ = reply.send(self.busy());
                }
                Command::Shutdown { cancel } => {
                    self.shutting_down = true;
                    if cancel {
                        // Tasks submitted before the shutdown go to the workers ready for them
                        // first, as if each submit had been handled at once; only the rest is
                        // cancelled.
                        self.dispatch();
                        for q in self.queue.drain(..) {
                            self.done.push((q.ticket, Outcome::Cancelled));
                        }
                    }
                }
            }
        }
    }

    fn busy(&self) -> Vec<Busy> {
        let mut out = Vec::new();
        for (slot, w) in self.workers.iter().enumerate() {
            let Some(w) = w else { continue };
            let Some(head) = w.in_flight.front() else { continue };
            if w.dead {
                continue;
            }
            out.push(Busy {
                slot,
                pid: w.child.pid(),
                task: head.id,
                func: head.func,
                body: head.body[..head.body.len().min(BUSY_BODY_MAX)].to_vec(),
                segments: !head.fds.is_empty(),
                running_for: w.head_started.elapsed(),
            });
        }
        out
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

    pub(super) fn break_pool(&mut self, reason: String) {
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
