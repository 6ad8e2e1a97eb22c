//! The native half of `plait.aio.EventLoop`: [`LoopCore`] (ready queue, timers, fd table, the
//! poll/dispatch/run cycle) and the [`Handle`]/[`TimerHandle`] it schedules.
//!
//! `plait.aio.EventLoop` inherits from `LoopCore` first and from asyncio's selector loop second,
//! so every method defined here (`call_soon`, `call_at`, `time`, `_add_reader`...) wins, and the
//! stdlib supplies the per-connection logic above them (transports, servers, `sock_*`, DNS). The
//! loop's state flags (`_closed`, `_stopping`, `_debug`) are data descriptors here, so the stdlib
//! code that assigns them drives the native loop.
//!
//! The hot path is `call_soon` as the C `Task` calls it (`call_soon(step, context=ctx)`): one small
//! frozen handle, pushed on a queue that the loop swaps out whole each tick, and run with a
//! vectorcall straight from the argument tuple inside `PyContext_Enter`/`Exit`.

use std::os::fd::RawFd;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use plait_core::reactor::clock;
use plait_core::reactor::poller::{self, Readiness, Registrar, Selector, Waker};
use plait_core::reactor::ready::ReadyQueue;
use plait_core::reactor::timers::TimerHeap;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{intern, PyTraverseError, PyVisit};

use crate::errors::{loop_closed, poll_err};

use super::futures::{call_with_loop, imported, new_future, TASK};
use super::gc::{release_all, untrack, visit_queued};
use super::handle::{DebugInfo, Handle, TimerHandle};
use super::source::NativeCallback;

/// asyncio's cap on one poll's timeout (`base_events.MAXIMUM_SELECT_TIMEOUT`).
pub(super) const MAX_SELECT_TIMEOUT: f64 = 24.0 * 3600.0;

/// A tick with callbacks ready skips the poll if the previous poll was less than this long ago
/// (seconds): a round trip of callbacks then costs no system call, and I/O still waits at most
/// this long behind callbacks that keep rescheduling themselves.
pub(super) const POLL_SKIP_WINDOW: f64 = 50e-6;

/// Timers are compacted when more than this many are cancelled and they are over half the heap
/// (asyncio's `_MIN_SCHEDULED_TIMER_HANDLES` and `_MIN_CANCELLED_TIMER_HANDLES_FRACTION`).
pub(super) const MIN_CANCELLED_TO_COMPACT: usize = 100;

/// A new future on `loop_`: made directly when it is plait's loop, else `loop_.create_future()`.
pub(crate) fn create_future_on<'py>(loop_: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if loop_.is_instance_of::<LoopCore>() {
        new_future(loop_)
    } else {
        loop_.call_method0(intern!(loop_.py(), "create_future"))
    }
}

/// Run by every loop's close, on its thread: registered once by a layer above (the transports
/// free their per-thread receive buffer), so the loop does not name it.
static ON_CLOSE: std::sync::OnceLock<fn(Python<'_>)> = std::sync::OnceLock::new();

/// Registers the function every loop runs when it closes (the first one registered stays).
pub(crate) fn on_close(hook: fn(Python<'_>)) {
    // A second module init (subinterpreter) registers the same function: nothing to do.
    let _ = ON_CLOSE.set(hook);
}

/// `selectors._fileobj_to_fd`: an int, or an object with `fileno()`.
fn fileobj_to_fd(obj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    let fd: i64 = match obj.extract::<i64>() {
        Ok(fd) => fd,
        Err(_) => obj
            .call_method0(intern!(obj.py(), "fileno"))
            .and_then(|f| f.extract::<i64>())
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "Invalid file object: {}",
                    obj.repr().map_or_else(|_| "?".into(), |r| r.to_string())
                ))
            })?,
    };
    if fd < 0 {
        return Err(PyValueError::new_err(format!("Invalid file descriptor: {fd}")));
    }
    RawFd::try_from(fd).map_err(|_| PyValueError::new_err(format!("Invalid file descriptor: {fd}")))
}

/// Which side of an fd a callback watches.
#[derive(Clone, Copy)]
enum Side {
    Read,
    /// A reader that drains the fd itself (native transports): not re-armed after each dispatch.
    ReadEdge,
    Write,
}

/// `(events mask, reader, writer)` of a watched fd.
type FdKey = (u8, Option<Py<Handle>>, Option<Py<Handle>>);

/// The selector side: only the loop thread polls, with the events buffer beside it.
pub(super) struct Polling {
    pub(super) selector: Selector,
    pub(super) events: Vec<(RawFd, Readiness)>,
    /// When the kernel was last polled (see `POLL_SKIP_WINDOW`).
    pub(super) last_poll: f64,
}

/// The native event loop core; `plait.aio.EventLoop` is its Python subclass. Shared between
/// threads (`call_soon_threadsafe`), so frozen with locks and atomics inside.
#[pyclass(module = "plait._plait", frozen, subclass)]
pub struct LoopCore {
    pub(super) ready: ReadyQueue<Py<Handle>>,
    /// The buffer the ready queue is swapped with each tick (kept to avoid allocating).
    pub(super) spare: Mutex<Vec<Py<Handle>>>,
    /// Timers, as their `Handle` part (so the collector's traversal can reach them).
    pub(super) timers: Mutex<TimerHeap<Py<Handle>>>,
    pub(super) timer_cancelled: Arc<AtomicUsize>,
    pub(super) polling: Mutex<Option<Polling>>,
    pub(super) registrar: Mutex<Option<Registrar<Py<Handle>>>>,
    pub(super) waker: Mutex<Option<Waker>>,
    pub(super) closed: AtomicBool,
    pub(super) stopping: AtomicBool,
    pub(super) debug: AtomicBool,
    /// The loop thread is (about to be) blocked in a poll: other threads must wake it.
    pub(super) sleeping: AtomicBool,
    /// Some fd was noted for a re-arm this tick (saves the registrar lock when none was).
    pub(super) rearm_pending: AtomicBool,
    pub(super) clock_resolution: f64,
    /// Called (no arguments) when an iteration would wait with no timeout: nothing ready, no
    /// live timer. A true result means "something may have changed: look again"; false, "wait".
    /// plait.green's hub decides there whether its greenlets are blocked forever.
    pub(super) idle_hook: Mutex<Option<Py<PyAny>>>,
}

impl LoopCore {
    fn check_closed(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Relaxed) {
            Err(loop_closed())
        } else {
            Ok(())
        }
    }

    /// In debug mode, where the handle being made is scheduled from (see [`DebugInfo::capture`]:
    /// `hidden` is how many of asyncio's own frames its version of the calling method records and
    /// then deletes).
    fn debug_info(&self, py: Python<'_>, hidden: usize) -> PyResult<Option<Box<DebugInfo>>> {
        if self.debug.load(Ordering::Relaxed) {
            DebugInfo::capture(py, hidden).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A handle for the ready queue; `hidden` as for [`Self::debug_info`].
    fn new_handle<'py>(
        &self,
        py: Python<'py>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
        hidden: usize,
    ) -> PyResult<Bound<'py, Handle>> {
        let mut handle = Handle::new(py, callback, args, context)?;
        handle.debug = self.debug_info(py, hidden)?;
        Bound::new(py, handle)
    }

    fn debug_checks(slf: &Bound<'_, Self>, callback: &Bound<'_, PyAny>, method: &str, thread: bool) -> PyResult<()> {
        let py = slf.py();
        if thread {
            slf.call_method0(intern!(py, "_check_thread"))?;
        }
        slf.call_method1(intern!(py, "_check_callback"), (callback, method))?;
        Ok(())
    }

    fn wake(&self) {
        if let Some(w) = self.waker.lock().as_ref() {
            w.wake();
        }
    }

    /// Makes the next tick poll even with callbacks ready (no skip window): a run starts, or
    /// `stop()` then `run_forever()` promises one poll for I/O.
    fn poll_next_tick(&self) {
        if let Some(p) = self.polling.lock().as_mut() {
            p.last_poll = f64::NEG_INFINITY;
        }
    }

    fn schedule_at<'py>(
        slf: &Bound<'py, Self>,
        when: f64,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
        hidden: usize,
    ) -> PyResult<Bound<'py, TimerHandle>> {
        let py = slf.py();
        let this = slf.get();
        // asyncio runs a NaN deadline at once (no comparison with it holds): schedule it now,
        // keeping the heap's order total.
        let when = if when.is_nan() { clock::monotonic() } else { when };
        let mut handle = Handle::new(py, callback, args, context)?;
        handle.debug = this.debug_info(py, hidden)?;
        handle.scheduled.store(true, Ordering::Relaxed);
        let init = PyClassInitializer::from(handle).add_subclass(TimerHandle {
            when,
            cancelled_count: Arc::clone(&this.timer_cancelled),
        });
        let timer = Bound::new(py, init)?;
        untrack(timer.as_super());
        this.timers.lock().push(when, timer.as_super().clone().unbind());
        Ok(timer)
    }

    fn set_io(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        side: Side,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        let fd = fileobj_to_fd(fd)?;
        // A native readiness callback (with no arguments) is run as a Rust call.
        let native = if args.is_empty() {
            callback.cast::<NativeCallback>().ok().map(|n| n.clone().unbind())
        } else {
            None
        };
        let mut handle = Handle::new(py, callback, args, None)?;
        if let Some(t) = handle.target.get_mut() {
            t.native = native;
        }
        // asyncio's `_add_reader` records its own frame too (it deletes none): here the
        // frames end at its caller.
        handle.debug = this.debug_info(py, 1)?;
        let h = Py::new(py, handle)?;
        let old = {
            let mut reg = this.registrar.lock();
            let reg = reg.as_mut().ok_or_else(loop_closed)?;
            match side {
                Side::Read => reg.set_reader(fd, h.clone_ref(py)),
                Side::ReadEdge => reg.set_reader_edge(fd, h.clone_ref(py)),
                Side::Write => reg.set_writer(fd, h.clone_ref(py)),
            }
        }
        .map_err(poll_err)?;
        if let Some(old) = old {
            Handle::cancel_bound(old.bind(py))?;
        }
        Ok(h)
    }

    fn remove_io(&self, fileobj: &Bound<'_, PyAny>, read: bool) -> PyResult<bool> {
        if self.closed.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let fd = fileobj_to_fd(fileobj)?;
        let old = {
            let mut reg = self.registrar.lock();
            let Some(reg) = reg.as_mut() else { return Ok(false) };
            if read {
                reg.remove_reader(fd)
            } else {
                reg.remove_writer(fd)
            }
        };
        match old {
            Some(h) => Handle::cancel_bound(h.bind(fileobj.py())).map(|()| true),
            None => Ok(false),
        }
    }
}

#[pymethods]
impl LoopCore {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyAny>, _kwargs: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let (selector, registrar, waker) = poller::new(1024).map_err(poll_err)?;
        Ok(Self {
            ready: ReadyQueue::new(),
            spare: Mutex::new(Vec::new()),
            timers: Mutex::new(TimerHeap::new()),
            timer_cancelled: Arc::new(AtomicUsize::new(0)),
            polling: Mutex::new(Some(Polling {
                selector,
                events: Vec::with_capacity(1024),
                last_poll: 0.0,
            })),
            registrar: Mutex::new(Some(registrar)),
            waker: Mutex::new(Some(waker)),
            closed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            debug: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            rearm_pending: AtomicBool::new(false),
            clock_resolution: clock::resolution(),
            idle_hook: Mutex::new(None),
        })
    }

    /// The loop's clock: `time.monotonic()`.
    #[allow(clippy::unused_self, reason = "a Python method: needs self")]
    fn time(&self) -> f64 {
        clock::monotonic()
    }

    /// Schedules `callback(*args)` for the next iteration, in `context` (default: a copy of the
    /// current one). Returns its `Handle`.
    #[pyo3(signature = (callback, *args, context = None))]
    fn call_soon<'py>(
        slf: &Bound<'py, Self>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Handle>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        let h = if this.debug.load(Ordering::Relaxed) {
            Self::debug_checks(slf, &callback, "call_soon", true)?;
            // asyncio's frames: call_soon, _call_soon.
            this.new_handle(py, callback, args, context, 2)?
        } else {
            Bound::new(py, Handle::new(py, callback, args, context)?)?
        };
        untrack(&h);
        this.ready.push(h.clone().unbind());
        Ok(h)
    }

    /// Whether the loop is in debug mode (asked by every C `Future` and `Task` at creation).
    fn get_debug(&self) -> bool {
        self.debug.load(Ordering::Relaxed)
    }

    /// A new `asyncio.Future` bound to this loop.
    fn create_future<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        new_future(slf.as_any())
    }

    /// Schedules a coroutine as an `asyncio.Task` (or through the task factory). Keyword
    /// arguments other than `name` and `context` (`eager_start` on 3.12+) are passed on to the
    /// factory, or to `asyncio.Task` when there is none.
    #[pyo3(signature = (coro, *, name = None, context = None, **kwargs))]
    fn create_task<'py>(
        slf: &Bound<'py, Self>,
        coro: &Bound<'py, PyAny>,
        name: Option<&Bound<'py, PyAny>>,
        context: Option<&Bound<'py, PyAny>>,
        kwargs: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        let factory = slf.getattr(intern!(py, "_task_factory"))?;
        if factory.is_none()
            && kwargs.is_none()
            && context.is_none()
            && name.is_none()
            && !this.debug.load(Ordering::Relaxed)
        {
            // The common case, `asyncio.Task(coro, loop=self)`: no keyword dict per task.
            return call_with_loop(imported(py, &TASK, "asyncio", "Task")?, Some(coro), slf.as_any());
        }
        let kwargs = kwargs.unwrap_or_else(|| PyDict::new(py));
        if let Some(c) = context {
            kwargs.set_item(intern!(py, "context"), c)?;
        }
        if factory.is_none() {
            kwargs.set_item(intern!(py, "loop"), slf)?;
            if let Some(n) = name {
                kwargs.set_item(intern!(py, "name"), n)?;
            }
            // In debug mode the task records the stack from the innermost Python frame: asyncio's
            // create_task deletes its own frame from it, but this one is native and has none,
            // so the stack already ends at the caller.
            return imported(py, &TASK, "asyncio", "Task")?.call((coro,), Some(&kwargs));
        }
        let task = factory.call((slf, coro), Some(&kwargs))?;
        if let Some(n) = name {
            task.call_method1(intern!(py, "set_name"), (n,))?;
        }
        Ok(task)
    }

    /// `BaseEventLoop._call_soon(callback, args, context)`, for stdlib code that calls it.
    fn _call_soon<'py>(
        slf: &Bound<'py, Self>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Handle>> {
        let py = slf.py();
        let h = slf.get().new_handle(py, callback, args, context, 1)?;
        untrack(&h);
        slf.get().ready.push(h.clone().unbind());
        Ok(h)
    }

    /// `call_soon` from any thread: also wakes the loop if it is waiting.
    #[pyo3(signature = (callback, *args, context = None))]
    fn call_soon_threadsafe<'py>(
        slf: &Bound<'py, Self>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Handle>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        if this.debug.load(Ordering::Relaxed) {
            Self::debug_checks(slf, &callback, "call_soon_threadsafe", false)?;
        }
        // asyncio's frames: call_soon_threadsafe, _call_soon.
        let h = this.new_handle(py, callback, args, context, 2)?;
        untrack(&h);
        this.ready.push(h.clone().unbind());
        fence(Ordering::SeqCst);
        if this.sleeping.load(Ordering::SeqCst) {
            this.wake();
        }
        Ok(h)
    }

    /// Schedules `callback(*args)` at `when` on `loop.time()`'s clock. Returns a `TimerHandle`.
    #[pyo3(signature = (when, callback, *args, context = None))]
    fn call_at<'py>(
        slf: &Bound<'py, Self>,
        when: &Bound<'py, PyAny>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, TimerHandle>> {
        if when.is_none() {
            return Err(PyTypeError::new_err("when cannot be None"));
        }
        let when: f64 = when.extract()?;
        let this = slf.get();
        this.check_closed()?;
        if this.debug.load(Ordering::Relaxed) {
            Self::debug_checks(slf, &callback, "call_at", true)?;
        }
        // asyncio's frames: call_at, TimerHandle.__init__.
        Self::schedule_at(slf, when, callback, args, context, 2)
    }

    /// Schedules `callback(*args)` after `delay` seconds. Returns a `TimerHandle`.
    #[pyo3(signature = (delay, callback, *args, context = None))]
    fn call_later<'py>(
        slf: &Bound<'py, Self>,
        delay: &Bound<'py, PyAny>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, TimerHandle>> {
        if delay.is_none() {
            return Err(PyTypeError::new_err("delay must not be None"));
        }
        let when = clock::monotonic() + delay.extract::<f64>()?;
        let this = slf.get();
        this.check_closed()?;
        if this.debug.load(Ordering::Relaxed) {
            Self::debug_checks(slf, &callback, "call_at", true)?;
        }
        // asyncio's frames: call_later, call_at, TimerHandle.__init__.
        Self::schedule_at(slf, when, callback, args, context, 3)
    }

    /// Kept for stdlib code that reports a cancelled timer (the native count is kept by the
    /// timer handles themselves).
    #[allow(clippy::unused_self, reason = "a Python method: needs self")]
    fn _timer_handle_cancelled(&self, _handle: &Bound<'_, PyAny>) {}

    /// One loop iteration (asyncio's `_run_once`).
    fn _run_once(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::tick(slf)
    }

    /// Iterates until `stop()` (the body of `run_forever`; the Python side does the set-up).
    fn _run_forever_native(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        this.poll_next_tick();
        loop {
            Self::tick(slf)?;
            if this.stopping.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
    }

    /// Wakes the loop from any thread.
    fn _write_to_self(&self) {
        self.wake();
    }

    /// Watches `fd` for reading; returns the reader's handle.
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_reader(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        Self::set_io(slf, fd, callback, args, Side::Read)
    }

    /// Watches `fd` for writing; returns the writer's handle.
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_writer(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        Self::set_io(slf, fd, callback, args, Side::Write)
    }

    /// Watches `fd` for reading with a reader that drains it (native transports): it is not
    /// re-armed after each dispatch, and asks for that with `_rearm(fd)` when it stops early.
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_reader_edge(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        Self::set_io(slf, fd, callback, args, Side::ReadEdge)
    }

    /// Asks for `fd` to be reported again at the next poll if it is still ready.
    fn _rearm(&self, fd: RawFd) {
        if let Some(reg) = self.registrar.lock().as_mut() {
            reg.fired(fd);
            self.rearm_pending.store(true, Ordering::Relaxed);
        }
    }

    /// Stops watching `fd` for reading; whether it was watched.
    fn _remove_reader(&self, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.remove_io(fd, true)
    }

    /// Stops watching `fd` for writing; whether it was watched.
    fn _remove_writer(&self, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.remove_io(fd, false)
    }

    /// `(events, reader, writer)` for a watched fd (events: 1 read, 2 write), else `None`.
    fn _fd_key(&self, py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<Option<FdKey>> {
        let fd = fileobj_to_fd(fd)?;
        let reg = self.registrar.lock();
        let Some(slot) = reg.as_ref().and_then(|r| r.get(fd)) else {
            return Ok(None);
        };
        let mask = u8::from(slot.reader.is_some()) | (u8::from(slot.writer.is_some()) << 1);
        Ok(Some((
            mask,
            slot.reader.as_ref().map(|h| h.clone_ref(py)),
            slot.writer.as_ref().map(|h| h.clone_ref(py)),
        )))
    }

    /// The watched fds.
    fn _fds(&self) -> Vec<RawFd> {
        self.registrar
            .lock()
            .as_ref()
            .map_or_else(Vec::new, |r| r.iter().map(|(fd, _)| fd).collect())
    }

    /// Number of callbacks waiting for the next iteration.
    fn _ready_count(&self) -> usize {
        self.ready.len()
    }

    /// Number of scheduled timers (cancelled ones not yet dropped included).
    fn _timer_count(&self) -> usize {
        self.timers.lock().len()
    }

    /// Sets (or, with None, removes) the idle hook (see `LoopCore::idle_hook`).
    fn _set_idle_hook(&self, hook: Option<Py<PyAny>>) {
        let old = std::mem::replace(&mut *self.idle_hook.lock(), hook);
        drop(old); // after the lock: dropping a Python object may run code
    }

    /// Number of scheduled timers that are not cancelled (those that can still fire).
    fn _live_timer_count(&self) -> usize {
        let len = self.timers.lock().len();
        len.saturating_sub(self.timer_cancelled.load(Ordering::Relaxed))
    }

    /// Drops every callback, timer and watched fd and closes the poller's fds (after `close()`).
    fn _close_native(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Relaxed);
        let ready = self.ready.drain();
        let timers = self.timers.lock().drain();
        let io = self.registrar.lock().take().map(|mut r| r.drain());
        let polling = self.polling.lock().take();
        let waker = self.waker.lock().take();
        let spare = std::mem::take(&mut *self.spare.lock());
        release_all(ready);
        release_all(timers);
        drop((io, polling, waker, spare));
        // What the layers above keep per thread (the transports' receive buffer): a thread that
        // runs loops one after another (asyncio.run in a worker thread) must not keep it after
        // it exits.
        if let Some(hook) = ON_CLOSE.get() {
            hook(py);
        }
    }

    #[getter(_closed)]
    fn get_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    #[setter(_closed)]
    fn set_closed(&self, value: bool) {
        self.closed.store(value, Ordering::Relaxed);
    }

    #[getter(_stopping)]
    fn get_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    #[setter(_stopping)]
    fn set_stopping(&self, value: bool) {
        self.stopping.store(value, Ordering::Relaxed);
    }

    #[getter(_debug)]
    fn get_debug_flag(&self) -> bool {
        self.debug.load(Ordering::Relaxed)
    }

    #[setter(_debug)]
    fn set_debug_flag(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.debug.store(value.is_truthy()?, Ordering::Relaxed);
        Ok(())
    }

    #[getter(_clock_resolution)]
    fn get_clock_resolution(&self) -> f64 {
        self.clock_resolution
    }

    #[setter(_clock_resolution)]
    #[allow(clippy::unused_self, reason = "a Python method: needs self")]
    fn set_clock_resolution(&self, _value: f64) {}

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let mut err = Ok(());
        self.ready.try_for_each(|h| {
            if err.is_ok() {
                err = visit_queued(&visit, h);
            }
        });
        err?;
        if let Some(timers) = self.timers.try_lock() {
            for t in timers.iter() {
                visit_queued(&visit, t)?;
            }
        }
        if let Some(reg) = self.registrar.try_lock() {
            if let Some(reg) = reg.as_ref() {
                for (_, slot) in reg.iter() {
                    visit.call(slot.reader.as_ref())?;
                    visit.call(slot.writer.as_ref())?;
                }
            }
        }
        if let Some(hook) = self.idle_hook.try_lock() {
            visit.call(hook.as_ref())?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let hook = self.idle_hook.lock().take();
        drop(hook);
        let ready = self.ready.drain();
        let timers = self.timers.lock().drain();
        let io = self.registrar.lock().as_mut().map(Registrar::drain);
        release_all(ready);
        release_all(timers);
        drop(io);
    }
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Handle>()?;
    m.add_class::<TimerHandle>()?;
    m.add_class::<LoopCore>()?;
    m.add_class::<NativeCallback>()?;
    Ok(())
}
