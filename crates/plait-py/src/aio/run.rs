//! One iteration of the loop ([`LoopCore::tick`]): poll (without blocking when work is ready),
//! queue the I/O callbacks and due timers behind the callbacks already ready, and run that batch.

use std::os::fd::RawFd;
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::time::Duration;

use plait_core::reactor::clock;
use plait_core::reactor::poller::Readiness;
use plait_core::reactor::timers::TimerHeap;
use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use super::event_loop::{LoopCore, Polling, MAX_SELECT_TIMEOUT, MIN_CANCELLED_TO_COMPACT, POLL_SKIP_WINDOW};
use super::futures::imported;
use super::gc::release_all;
use super::handle::Handle;
use crate::errors::{loop_closed, poll_err};

static FORMAT_HANDLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn this_debug(slf: &Bound<'_, LoopCore>) -> bool {
    slf.get().debug.load(Ordering::Relaxed)
}

impl LoopCore {
    /// Removes cancelled timers from the top of the heap (and compacts the heap when they are
    /// many); returns them so they are dropped outside the lock.
    fn prune_timers(timer_cancelled: &AtomicUsize, timers: &mut TimerHeap<Py<Handle>>) -> Vec<Py<Handle>> {
        let is_cancelled = |t: &Py<Handle>| t.get().is_cancelled();
        let mut dropped = Vec::new();
        let ncancelled = timer_cancelled.load(Ordering::Relaxed);
        if ncancelled > MIN_CANCELLED_TO_COMPACT && ncancelled * 2 > timers.len() {
            dropped = timers.remove_where(is_cancelled);
            for t in &dropped {
                t.get().scheduled.store(false, Ordering::Relaxed);
            }
            timer_cancelled.fetch_sub(dropped.len(), Ordering::Relaxed);
        } else {
            while timers.peek().is_some_and(is_cancelled) {
                let t = timers.pop().expect("peeked");
                t.get().scheduled.store(false, Ordering::Relaxed);
                timer_cancelled.fetch_sub(1, Ordering::Relaxed);
                dropped.push(t);
            }
        }
        dropped
    }

    /// One iteration: poll (without blocking when work is ready), queue the I/O callbacks and
    /// due timers behind the callbacks already ready, and run that batch. Callbacks scheduled
    /// while the batch runs wait for the next iteration.
    pub(super) fn tick(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();

        let mut timers = this.timers.lock();
        let dropped = Self::prune_timers(&this.timer_cancelled, &mut timers);
        let next = timers.next_deadline();
        let live_timers = timers
            .len()
            .saturating_sub(this.timer_cancelled.load(Ordering::Relaxed));
        drop(timers);
        release_all(dropped);
        let work_ready = !this.ready.is_empty();
        if !work_ready && live_timers == 0 && !this.stopping.load(Ordering::Relaxed) {
            // About to wait with nothing that would end the wait but I/O or another thread.
            let hook = this.idle_hook.lock().as_ref().map(|h| h.clone_ref(py));
            if let Some(hook) = hook {
                if hook.call0(py)?.is_truthy(py)? {
                    return Ok(()); // it may have scheduled work or stopped the loop: look again
                }
            }
        }
        let timeout = if work_ready || this.stopping.load(Ordering::Relaxed) {
            Some(Duration::ZERO)
        } else {
            next.map(|when| Duration::from_secs_f64((when - clock::monotonic()).clamp(0.0, MAX_SELECT_TIMEOUT)))
        };

        let mut batch = std::mem::take(&mut *this.spare.lock());
        {
            let mut polling = this.polling.lock();
            let Some(p) = polling.as_mut() else {
                return Err(loop_closed());
            };
            let Polling {
                selector,
                events,
                last_poll,
            } = p;
            let now = clock::monotonic();
            let result = if work_ready && !this.stopping.load(Ordering::Relaxed) && now - *last_poll < POLL_SKIP_WINDOW
            {
                // Callbacks are waiting and the kernel was asked moments ago: run them first.
                // The window bounds how long I/O can wait behind a chain of callbacks.
                Ok(())
            } else if timeout == Some(Duration::ZERO) {
                *last_poll = now;
                selector.select(timeout, events)
            } else {
                this.sleeping.store(true, Ordering::SeqCst);
                // Pairs with the fence in call_soon_threadsafe: either it sees `sleeping` and
                // wakes us, or we see what it queued.
                fence(Ordering::SeqCst);
                let t = if this.ready.is_empty() {
                    timeout
                } else {
                    Some(Duration::ZERO)
                };
                let r = py.detach(|| selector.select(t, events));
                this.sleeping.store(false, Ordering::Relaxed);
                *last_poll = clock::monotonic();
                r
            };
            result.map_err(poll_err)?;
            this.ready.take(&mut batch);
            if !events.is_empty() {
                this.dispatch(py, events, &mut batch);
            }
        }

        // Due timers, after the I/O callbacks. When none was due by `next` (read at the start of
        // the tick), the heap is not locked again; a timer added since (by a destructor run in
        // between) is due on the next iteration, which then does not block.
        let end = if next.is_some() {
            clock::monotonic() + this.clock_resolution
        } else {
            f64::NEG_INFINITY
        };
        let mut skipped = Vec::new();
        if next.is_some_and(|when| when < end) {
            let mut timers = this.timers.lock();
            while let Some(t) = timers.pop_before(end) {
                let th = t.get();
                th.scheduled.store(false, Ordering::Relaxed);
                if th.is_cancelled() {
                    this.timer_cancelled.fetch_sub(1, Ordering::Relaxed);
                    skipped.push(t);
                } else {
                    batch.push(t);
                }
            }
        }
        release_all(skipped);

        // Signals that interrupted the poll (Ctrl-C): their handlers run now; an exception they
        // raise leaves the batch queued for the next run.
        if let Err(e) = py.check_signals() {
            this.ready.requeue_front(batch);
            this.rearm();
            return Err(e);
        }

        let result = Self::run_batch(slf, &mut batch);
        release_all(batch.drain(..));
        *this.spare.lock() = batch;
        this.rearm();
        result
    }

    /// Queues the reader/writer of each ready fd (a cancelled one is removed instead).
    fn dispatch(&self, py: Python<'_>, events: &mut Vec<(RawFd, Readiness)>, batch: &mut Vec<Py<Handle>>) {
        let mut cancelled_readers = Vec::new();
        let mut cancelled_writers = Vec::new();
        let mut guard = self.registrar.lock();
        let Some(reg) = guard.as_mut() else {
            events.clear();
            return;
        };
        for (fd, r) in events.drain(..) {
            let Some(slot) = reg.get(fd) else { continue };
            let mut fired = false;
            if r.readable {
                if let Some(h) = &slot.reader {
                    if h.get().is_cancelled() {
                        cancelled_readers.push(fd);
                    } else {
                        batch.push(h.clone_ref(py));
                        fired = true;
                    }
                }
            }
            if r.writable {
                if let Some(h) = &slot.writer {
                    if h.get().is_cancelled() {
                        cancelled_writers.push(fd);
                    } else {
                        batch.push(h.clone_ref(py));
                        fired = true;
                    }
                }
            }
            // An edge-triggered reader re-arms itself, except at end of stream, which it may
            // not reach in one read (the data and the FIN come in one event).
            if fired && (!slot.edge || r.closed) {
                reg.fired(fd);
                self.rearm_pending.store(true, Ordering::Relaxed);
            }
        }
        let mut removed: Vec<_> = cancelled_readers
            .into_iter()
            .filter_map(|fd| reg.remove_reader(fd))
            .collect();
        removed.extend(cancelled_writers.into_iter().filter_map(|fd| reg.remove_writer(fd)));
        drop(guard);
        drop(removed);
    }

    fn rearm(&self) {
        // Most ticks dispatch nothing level-triggered: skip the lock then.
        if !self.rearm_pending.swap(false, Ordering::Relaxed) {
            return;
        }
        if let Some(reg) = self.registrar.lock().as_mut() {
            reg.rearm();
        }
    }

    /// Runs the batch in order. `KeyboardInterrupt` and `SystemExit` stop it and leave the rest
    /// first in line; other exceptions go to the loop's exception handler.
    fn run_batch(slf: &Bound<'_, Self>, batch: &mut Vec<Py<Handle>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let mut i = 0;
        while i < batch.len() {
            let h = batch[i].bind(py);
            i += 1;
            let hd = h.get();
            if hd.is_cancelled() {
                continue;
            }
            let outcome = if this.debug.load(Ordering::Relaxed) {
                Self::run_debug(slf, h)
            } else {
                hd.call(py).or_else(|e| Self::report(slf, h, e))
            };
            if let Err(e) = outcome {
                this.ready.requeue_front(batch.drain(i..));
                return Err(e);
            }
        }
        Ok(())
    }

    /// Debug mode: records the current handle and warns about slow callbacks, as asyncio does.
    fn run_debug(slf: &Bound<'_, Self>, h: &Bound<'_, Handle>) -> PyResult<()> {
        let py = slf.py();
        slf.setattr(intern!(py, "_current_handle"), h)?;
        let t0 = clock::monotonic();
        let outcome = h.get().call(py).or_else(|e| Self::report(slf, h, e));
        let dt = clock::monotonic() - t0;
        slf.setattr(intern!(py, "_current_handle"), py.None())?;
        outcome?;
        let slow: f64 = slf.getattr(intern!(py, "slow_callback_duration"))?.extract()?;
        if dt >= slow {
            let fmt = imported(py, &FORMAT_HANDLE, "asyncio.base_events", "_format_handle")?;
            let logger = imported(py, &LOGGER, "asyncio.log", "logger")?;
            logger.call_method1("warning", ("Executing %s took %.3f seconds", fmt.call1((h,))?, dt))?;
        }
        Ok(())
    }

    /// Hands a callback's exception to `loop.call_exception_handler`, as `Handle._run` does;
    /// `KeyboardInterrupt` and `SystemExit` propagate.
    fn report(slf: &Bound<'_, Self>, h: &Bound<'_, Handle>, e: PyErr) -> PyResult<()> {
        let py = slf.py();
        if e.is_instance_of::<PyKeyboardInterrupt>(py) || e.is_instance_of::<PySystemExit>(py) {
            return Err(e);
        }
        let hd = h.get();
        let cb = Handle::callback_source(py, hd.target(py), this_debug(slf))?;
        let ctx = PyDict::new(py);
        ctx.set_item("message", format!("Exception in callback {cb}"))?;
        ctx.set_item("exception", e.value(py))?;
        ctx.set_item("handle", h)?;
        if let Some(tb) = hd.source_traceback(py)? {
            ctx.set_item("source_traceback", tb)?;
        }
        slf.call_method1(intern!(py, "call_exception_handler"), (ctx,))?;
        Ok(())
    }
}
