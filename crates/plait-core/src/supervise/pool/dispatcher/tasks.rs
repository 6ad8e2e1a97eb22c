//! Task flow: how many tasks a worker may hold (prefetch for fast tasks), sending them (with the
//! definitions a worker has not seen), writing frames out, and reading results back.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::Interest;

use super::{Dispatcher, EXIT_GRACE};
use crate::ipc::fdpass;
use crate::ipc::frame::MAX_FDS;
use crate::supervise::pool::config::{Outcome, Sink};
use crate::supervise::pool::table::{socket_token, Running, Worker};
use crate::supervise::pool::wire::{task_payload, DEFINE, ERR, INIT_FAILED, OK, READY, SHUTDOWN, TASK};

/// Tasks a fast worker may hold beyond the one it runs (one frame write carries many).
const MAX_PREFETCH: usize = 8;
/// Below this mean service time a worker gets prefetched tasks.
const PREFETCH_BELOW: Duration = Duration::from_millis(2);

impl<T: Send + 'static, S: Sink<T>> Dispatcher<T, S> {
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

    pub(super) fn dispatch(&mut self) {
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
                let frame_body = task_payload(task.func, &task.body);
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

    pub(super) fn flush_all(&mut self) {
        for slot in 0..self.workers.len() {
            self.flush(slot);
        }
    }

    pub(super) fn flush(&mut self, slot: usize) {
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
            .reregister(&mut w.stream, socket_token(slot), interest);
    }

    pub(super) fn read_worker(&mut self, slot: usize) {
        let Some(w) = self.workers[slot].as_mut() else { return };
        let buf = &mut self.read_buf;
        loop {
            match fdpass::recv(w.stream.as_raw_fd(), buf, w.decoder.push_fds()) {
                Ok(0) if w.retiring && w.in_flight.is_empty() => {
                    // A retired worker's goodbye: it exits by itself (a forked worker closes
                    // its socket first, then runs multiprocessing's exit hooks, which flush its
                    // queues' last items); the pidfd tells when. Killed only past the grace.
                    let _ = self.poll.registry().deregister(&mut w.stream);
                    w.exit_by.get_or_insert_with(|| Instant::now() + EXIT_GRACE);
                    break;
                }
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

    pub(super) fn handle_frames(&mut self, slot: usize) {
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
}
