//! Timeouts: the poller's next wake-up (the earliest task deadline or the exit grace), and
//! killing the worker of a task that ran past its timeout.

use std::time::{Duration, Instant};

use super::Dispatcher;
use crate::supervise::pool::config::Sink;
use crate::supervise::pool::table::Kill;

impl<T: Send + 'static, S: Sink<T>> Dispatcher<T, S> {
    pub(super) fn next_timeout(&self, exit_deadline: Option<Instant>) -> Option<Duration> {
        let now = Instant::now();
        let mut next = exit_deadline;
        for w in self.workers.iter().flatten() {
            if let Some(d) = w.exit_by {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
            if let Some(head) = w.in_flight.front() {
                if let Some(t) = head.timeout {
                    let d = w.head_started + t;
                    next = Some(next.map_or(d, |n| n.min(d)));
                }
            }
        }
        next.map(|d| d.saturating_duration_since(now))
    }

    pub(super) fn check_timeouts(&mut self) {
        let now = Instant::now();
        for w in self.workers.iter_mut().flatten() {
            if w.killed.is_some() {
                continue;
            }
            if w.exit_by.is_some_and(|d| now >= d) {
                w.killed = Some(Kill::Shutdown);
                let _ = w.child.kill();
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
}
