//! [`TaskQueue`]: the task queue and worker bookkeeping of a thread pool.
//!
//! The pool decides when to start a worker the way `ThreadPoolExecutor` does: a worker that goes
//! idle leaves one *idle credit*; a submit consumes a credit (and wakes that worker) when there is
//! one, and otherwise asks for a new worker while below `max_workers`. Workers run tasks
//! back-to-back without sleeping while the queue is not empty. Starting the thread is the caller's
//! job (the binding starts a Python `threading.Thread`).

use std::collections::VecDeque;

use parking_lot::{Condvar, Mutex};

use crate::block::{next_deadline, Blocker};

#[derive(Debug)]
struct State<T> {
    tasks: VecDeque<T>,
    workers: usize,
    idle_credits: usize,
    shutdown: bool,
}

/// What a submit asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// An existing worker will run the task.
    Queued,
    /// Start one more worker.
    StartWorker,
}

pub use crate::error::PoolShutDown;

/// Task queue shared by a pool's workers; see the module docs.
#[derive(Debug)]
pub struct TaskQueue<T> {
    state: Mutex<State<T>>,
    cv: Condvar,
    max_workers: usize,
}

impl<T: Send> TaskQueue<T> {
    /// A queue for a pool of at most `max_workers` workers.
    #[must_use]
    pub fn new(max_workers: usize) -> Self {
        Self {
            state: Mutex::new(State {
                tasks: VecDeque::new(),
                workers: 0,
                idle_credits: 0,
                shutdown: false,
            }),
            cv: Condvar::new(),
            max_workers,
        }
    }

    /// Maximum number of workers.
    pub fn max_workers(&self) -> usize {
        self.max_workers
    }

    /// Queues `task`.
    ///
    /// # Errors
    /// [`PoolShutDown`] (with the task handed back) after [`TaskQueue::shutdown`].
    pub fn submit(&self, task: T) -> Result<Submitted, (T, PoolShutDown)> {
        let mut st = self.state.lock();
        if st.shutdown {
            return Err((task, PoolShutDown));
        }
        st.tasks.push_back(task);
        if st.idle_credits > 0 {
            st.idle_credits -= 1;
            drop(st);
            self.cv.notify_one();
            return Ok(Submitted::Queued);
        }
        if st.workers < self.max_workers {
            st.workers += 1;
            return Ok(Submitted::StartWorker);
        }
        Ok(Submitted::Queued)
    }

    /// Queues many tasks at once, returning how many workers to start.
    ///
    /// # Errors
    /// [`PoolShutDown`] after shutdown (nothing queued).
    pub fn submit_many(&self, tasks: impl IntoIterator<Item = T>) -> Result<usize, PoolShutDown> {
        let mut st = self.state.lock();
        if st.shutdown {
            return Err(PoolShutDown);
        }
        let before = st.tasks.len();
        st.tasks.extend(tasks);
        let added = st.tasks.len() - before;
        let wake = added.min(st.idle_credits);
        st.idle_credits -= wake;
        let start = (added - wake).min(self.max_workers - st.workers);
        st.workers += start;
        drop(st);
        for _ in 0..wake {
            self.cv.notify_one();
        }
        Ok(start)
    }

    /// Tells the queue that a worker it asked for could not be started, or left without being told to.
    pub fn worker_exited(&self) {
        self.state.lock().workers -= 1;
    }

    /// Takes a task without waiting.
    pub fn try_next(&self) -> Option<T> {
        self.state.lock().tasks.pop_front()
    }

    /// The next task for a worker, waiting while the queue is empty. `Ok(None)` means the pool is
    /// shut down and drained: the worker must exit (it is no longer counted).
    ///
    /// # Errors
    /// [`crate::block::Interrupted`] when the blocker abandons the wait.
    pub fn next<B: Blocker>(&self, blocker: &mut B) -> Result<Option<T>, crate::block::Interrupted> {
        let mut credited = false;
        loop {
            let mut st = crate::block::lock(&self.state, blocker);
            if let Some(task) = st.tasks.pop_front() {
                return Ok(Some(task));
            }
            if st.shutdown {
                st.workers -= 1;
                if credited {
                    st.idle_credits = st.idle_credits.saturating_sub(1);
                }
                return Ok(None);
            }
            if !credited {
                st.idle_credits += 1;
                credited = true;
            }
            let until = next_deadline(None, blocker.slice());
            let timed_out = crate::block::sleep_unlocked(&self.cv, st, until, blocker);
            // A submit that woke us consumed our credit; we must leave a new one if we wait again.
            if !timed_out {
                credited = false;
            }
            if blocker.slice().is_some() && blocker.interrupted() {
                let mut st = self.state.lock();
                st.workers -= 1;
                if credited {
                    st.idle_credits = st.idle_credits.saturating_sub(1);
                }
                return Err(crate::block::Interrupted);
            }
        }
    }

    /// Stops accepting tasks and wakes idle workers so they exit once the queue is drained. With
    /// `cancel`, queued tasks are removed and returned (for the caller to cancel).
    pub fn shutdown(&self, cancel: bool) -> Vec<T> {
        let mut st = self.state.lock();
        st.shutdown = true;
        let cancelled = if cancel {
            st.tasks.drain(..).collect()
        } else {
            Vec::new()
        };
        drop(st);
        self.cv.notify_all();
        cancelled
    }

    /// Whether shutdown was requested.
    pub fn is_shutdown(&self) -> bool {
        self.state.lock().shutdown
    }

    /// Live workers.
    pub fn workers(&self) -> usize {
        self.state.lock().workers
    }

    /// Queued tasks.
    pub fn pending(&self) -> usize {
        self.state.lock().tasks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Plain;
    use std::sync::Arc;

    #[test]
    fn starts_workers_up_to_max_then_reuses_idle_ones() {
        let q = Arc::new(TaskQueue::new(2));
        assert_eq!(q.submit(1), Ok(Submitted::StartWorker));
        assert_eq!(q.submit(2), Ok(Submitted::StartWorker));
        assert_eq!(q.submit(3), Ok(Submitted::Queued));
        assert_eq!(q.try_next(), Some(1));
        assert_eq!(q.next(&mut Plain), Ok(Some(2)));
        assert_eq!(q.next(&mut Plain), Ok(Some(3)));
        let q2 = Arc::clone(&q);
        let worker = crate::testing::spawn(move || {
            let mut got = vec![];
            while let Some(t) = q2.next(&mut Plain).unwrap() {
                got.push(t);
            }
            got
        });
        while q.state.lock().idle_credits == 0 {
            std::thread::yield_now();
        }
        assert_eq!(q.submit(4), Ok(Submitted::Queued), "the idle worker takes it");
        assert!(q.shutdown(false).is_empty());
        assert_eq!(worker.join().unwrap(), vec![4]);
        assert_eq!(q.submit(5), Err((5, PoolShutDown)));
    }

    #[test]
    fn shutdown_cancel_returns_queued_tasks() {
        let q = TaskQueue::new(1);
        assert_eq!(q.submit_many([1, 2, 3]), Ok(1));
        assert_eq!(q.shutdown(true), vec![1, 2, 3]);
    }

    /// Two threads submit while the workers they ask for run tasks: each task runs once, never
    /// more than `max_workers` workers exist, and after shutdown every worker has left.
    #[test]
    fn submitters_and_workers_run_each_task_once() {
        use parking_lot::Mutex;
        use std::thread::JoinHandle;
        const MAX: usize = 3;
        const TASKS: u32 = 1000;
        let q = Arc::new(TaskQueue::new(MAX));
        let workers: Arc<Mutex<Vec<JoinHandle<Vec<u32>>>>> = Arc::default();
        let submitters: Vec<_> = (0..2)
            .map(|s| {
                let (q, workers) = (Arc::clone(&q), Arc::clone(&workers));
                crate::testing::spawn(move || {
                    for i in 0..TASKS {
                        if q.submit(s * TASKS + i).unwrap() == Submitted::StartWorker {
                            let q = Arc::clone(&q);
                            workers.lock().push(crate::testing::spawn(move || {
                                let mut ran = Vec::new();
                                while let Some(task) = q.next(&mut Plain).unwrap() {
                                    ran.push(task);
                                }
                                ran
                            }));
                        }
                        assert!(q.workers() <= MAX);
                    }
                })
            })
            .collect();
        for s in submitters {
            s.join().unwrap();
        }
        assert!(q.shutdown(false).is_empty());
        let mut ran: Vec<u32> = std::mem::take(&mut *workers.lock())
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        ran.sort_unstable();
        assert_eq!(ran, (0..2 * TASKS).collect::<Vec<_>>());
        assert_eq!(q.workers(), 0);
    }
}
