//! Worker lifecycle: filling empty slots with new workers, reaping the dead ones (and deciding
//! what becomes of the tasks they held), retiring and killing workers.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::Interest;

use super::Dispatcher;
use crate::ipc::frame::Decoder;
use crate::ipc::outbox::Outbox;
use crate::ipc::socket;
use crate::supervise::pool::config::{Outcome, Sink};
use crate::supervise::pool::table::{pidfd_token, socket_token, Kill, Queued, Worker};
use crate::supervise::pool::wire::{HELLO, SHUTDOWN};
use crate::supervise::{Child, Exit, Spawn};

/// Consecutive deaths before `READY` after which the pool stops restarting workers.
const MAX_STARTUP_FAILURES: u32 = 3;

impl<T: Send + 'static, S: Sink<T>> Dispatcher<T, S> {
    pub(super) fn fill_slots(&mut self) {
        if self.broken.is_some() || (self.shutting_down && self.queue.is_empty()) {
            return;
        }
        for slot in 0..self.workers.len() {
            if self.workers[slot].is_none() {
                match self.spawn(slot) {
                    Ok(w) => {
                        self.pids[slot].store(w.child.pid(), Ordering::Relaxed);
                        self.workers[slot] = Some(w);
                    }
                    Err(e) => {
                        self.break_pool(format!("cannot start a worker process: {e}"));
                        return;
                    }
                }
            }
        }
    }

    pub(super) fn spawn(&mut self, slot: usize) -> io::Result<Worker<T>> {
        let (ours, theirs) = socket::pair()?;
        let fd = theirs.as_raw_fd();
        let launched = match self.config.launch.as_mut() {
            Some(launch) => launch(fd)?,
            None => None,
        };
        let child = if let Some(pid) = launched {
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
        registry.register(&mut stream, socket_token(slot), Interest::READABLE)?;
        registry.register(&mut SourceFd(&child.pidfd()), pidfd_token(slot), Interest::READABLE)?;
        let mut out = Outbox::default();
        let fds = self
            .config
            .hello_fds
            .iter()
            .map(OwnedFd::try_clone)
            .collect::<io::Result<Vec<_>>>()?;
        out.push(HELLO, 0, &self.config.hello, fds).map_err(io::Error::other)?;
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
            exit_by: None,
            killed: None,
            dead: false,
        })
    }

    pub(super) fn reap_dead(&mut self) {
        for slot in 0..self.workers.len() {
            let dead = self.workers[slot].as_ref().is_some_and(|w| w.dead);
            if !dead {
                continue;
            }
            // Results written before the worker died are still in the socket: take them first.
            self.read_worker(slot);
            let mut w = self.workers[slot].take().expect("checked above");
            self.pids[slot].store(0, Ordering::Relaxed);
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

    pub(super) fn retire_all(&mut self) {
        for w in self.workers.iter_mut().flatten() {
            if !w.retiring {
                w.retiring = true;
                let _ = w.out.push(SHUTDOWN, 0, &[], Vec::new());
            }
        }
    }

    pub(super) fn kill_all(&mut self, why: Kill) {
        for w in self.workers.iter_mut().flatten() {
            w.killed.get_or_insert(why);
            let _ = w.child.kill();
        }
    }
}
