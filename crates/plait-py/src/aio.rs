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
use std::time::Duration;

use parking_lot::Mutex;
use plait_core::reactor::clock;
use plait_core::reactor::poller::{self, PollError, Readiness, Registrar, Selector, Waker};
use plait_core::reactor::ready::ReadyQueue;
use plait_core::reactor::timers::TimerHeap;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PySystemExit, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{intern, PyTraverseError, PyVisit};

use crate::transport::SocketIo;

/// asyncio's cap on one poll's timeout (`base_events.MAXIMUM_SELECT_TIMEOUT`).
const MAX_SELECT_TIMEOUT: f64 = 24.0 * 3600.0;

/// A tick with callbacks ready skips the poll if the previous poll was less than this long ago
/// (seconds): a round trip of callbacks then costs no system call, and I/O still waits at most
/// this long behind callbacks that keep rescheduling themselves.
const POLL_SKIP_WINDOW: f64 = 50e-6;

/// Timers are compacted when more than this many are cancelled and they are over half the heap
/// (asyncio's `_MIN_SCHEDULED_TIMER_HANDLES` and `_MIN_CANCELLED_TIMER_HANDLES_FRACTION`).
const MIN_CANCELLED_TO_COMPACT: usize = 100;

static FORMAT_CALLBACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static FORMAT_HANDLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TASK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static FUTURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn imported<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    module: &str,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || py.import(module)?.getattr(name).map(Bound::unbind))
        .map(|f| f.bind(py))
}

/// `("loop",)`: the keyword names of `asyncio.Future(loop=...)` and `asyncio.Task(coro, loop=...)`.
static LOOP_KWNAMES: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();

/// `asyncio.Future(loop=loop)`, called with vectorcall (no keyword dict to build and parse).
pub(crate) fn new_future<'py>(loop_: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    call_with_loop(imported(loop_.py(), &FUTURE, "asyncio", "Future")?, None, loop_)
}

/// `cls(arg, loop=loop_)` (or `cls(loop=loop_)`) as one vectorcall.
fn call_with_loop<'py>(
    cls: &Bound<'py, PyAny>,
    arg: Option<&Bound<'py, PyAny>>,
    loop_: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    let kwnames = LOOP_KWNAMES.get_or_try_init(py, || PyTuple::new(py, ["loop"]).map(Bound::unbind))?;
    let args = [arg.map_or(std::ptr::null_mut(), Bound::as_ptr), loop_.as_ptr()];
    let (start, nargs) = if arg.is_some() { (0, 1) } else { (1, 0) };
    // Safety: attached to Python; `args[start..]` holds `nargs` positional arguments then the
    // keyword argument named by the one-element `kwnames` tuple, all borrowed and alive for the
    // call; CPython only reads them. The result is a new reference or NULL with an exception set.
    unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyObject_Vectorcall(cls.as_ptr(), args[start..].as_ptr(), nargs, kwnames.as_ptr()),
        )
    }
}

/// A new future on `loop_`: made directly when it is plait's loop, else `loop_.create_future()`.
pub(crate) fn create_future_on<'py>(loop_: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if loop_.is_instance_of::<LoopCore>() {
        new_future(loop_)
    } else {
        loop_.call_method0(intern!(loop_.py(), "create_future"))
    }
}

fn closed_error() -> PyErr {
    PyRuntimeError::new_err("Event loop is closed")
}

fn poll_error(e: PollError) -> PyErr {
    match e {
        PollError::Create(e) | PollError::Poll(e) | PollError::Register { source: e, .. } => e.into(),
    }
}

/// Takes a freshly scheduled handle off the garbage collector's lists while the loop holds it.
///
/// A queued handle is alive because the loop holds it, so the collector gains nothing from
/// traversing it, and with many handles queued its passes dominate the cost of `call_soon`.
/// [`release`] puts a handle back under the collector when the loop lets go of it while someone
/// else still holds it (so a cycle through a kept handle stays collectable).
/// The context copied for the handle (not one the caller passed) is taken off too: it is a new
/// object per `call_soon`, and otherwise piles up in the collector's older generations.
fn untrack(h: &Bound<'_, Handle>) {
    // Safety: both are live, fully initialised GC objects (Handle implements `__traverse__`,
    // contexts are GC types); untracking an object that `release` re-tracks before anyone else
    // can depend on the collector seeing it is the documented use of PyObject_GC_UnTrack.
    unsafe {
        ffi::PyObject_GC_UnTrack(h.as_ptr().cast());
        if h.get().own_context {
            ffi::PyObject_GC_UnTrack(h.get().context.as_ptr().cast());
        }
    }
}

fn retrack(ptr: *mut ffi::PyObject) {
    // Safety: `ptr` is alive and fully initialised; IsTracked guards against tracking twice.
    unsafe {
        if ffi::PyObject_GC_IsTracked(ptr) == 0 {
            ffi::PyObject_GC_Track(ptr.cast());
        }
    }
}

/// Drops the loop's reference to a handle, first re-tracking it (and its own context) if
/// anyone else still holds either, so cycles through them stay collectable.
fn release<T: pyo3::PyClass>(py: Python<'_>, h: Py<T>) {
    let ptr = h.as_ptr();
    // Every handle the loop queues is a Handle or a TimerHandle (a Handle subclass).
    let base = h.bind(py).cast::<Handle>().ok().map(Bound::get);
    let ctx = base.filter(|b| b.own_context).map(|b| b.context.as_ptr());
    // Safety: `ptr` and `ctx` are alive while we hold the handle.
    let shared = unsafe { ffi::Py_REFCNT(ptr) > 1 || ctx.is_some_and(|c| ffi::Py_REFCNT(c) > 1) };
    if shared {
        retrack(ptr);
        if let Some(c) = ctx {
            retrack(c);
        }
    }
    drop(h);
}

/// Lets the collector see through a queued handle. One only the loop holds (untracked, see
/// [`untrack`]) is part of the loop: its callback, arguments and context are visited as the
/// loop's own references, so a cycle through them (a pending `loop.stop`) is still found. One
/// that others hold too is visited as itself (the collector then treats what it holds as
/// reachable, never freeing anything early).
fn visit_queued(visit: &PyVisit<'_>, h: &Py<Handle>) -> Result<(), PyTraverseError> {
    let ptr = h.as_ptr();
    // Safety: reading the refcount and tracking state of a live object; the collector does not
    // change either while it traverses.
    let exclusive = unsafe { ffi::Py_REFCNT(ptr) == 1 && ffi::PyObject_GC_IsTracked(ptr) == 0 };
    if exclusive {
        let hd = h.get();
        hd.visit_target(visit)?;
        visit.call(&hd.context)
    } else {
        visit.call(h)
    }
}

/// [`release`]s every handle in `items`.
fn release_all<T: pyo3::PyClass>(py: Python<'_>, items: impl IntoIterator<Item = Py<T>>) {
    for h in items {
        release(py, h);
    }
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

/// A callback scheduled on the loop, like `asyncio.Handle`: the callback, its arguments (the
/// tuple they came in, called without copying) and the `contextvars.Context` it runs in.
#[pyclass(module = "plait._plait", frozen, subclass, weakref)]
pub struct Handle {
    /// The callback and its arguments; dropped by `cancel`, as asyncio's handle drops them, so
    /// a cancelled timer holds nothing alive until it leaves the heap.
    target: Mutex<Option<Target>>,
    context: Py<PyAny>,
    /// `context` was copied here (not passed by the caller).
    own_context: bool,
    cancelled: AtomicBool,
    /// A timer in the loop's heap: a cancel then counts towards compaction.
    scheduled: AtomicBool,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // A context's dealloc unlinks it from the collector's list unconditionally: it must be
        // tracked again before the last reference goes (see `untrack`).
        if self.own_context {
            retrack(self.context.as_ptr());
        }
    }
}

/// What a [`Handle`] calls, until it is cancelled.
struct Target {
    callback: Py<PyAny>,
    args: Py<PyTuple>,
    /// The callback is a socket transport's own `read_ready` / `write_ready`: run as a Rust
    /// call (no Python call machinery on the per-packet path).
    native: Option<NativeIo>,
}

/// What [`Handle::call`] runs: a transport's own reader (`false`) or writer (`true`), or a
/// Python callable with its argument tuple.
enum Run {
    Native(Py<SocketIo>, bool),
    Python(Py<PyAny>, Py<PyTuple>),
}

/// A socket transport's reader or writer, called directly by [`Handle::call`].
struct NativeIo {
    io: Py<SocketIo>,
    write: bool,
}

impl NativeIo {
    /// `Some` when `callback` (with no arguments) is a `SocketIo`'s `read_ready` or `write_ready`.
    fn of(callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> Option<Self> {
        let py = callback.py();
        // Safety: a type check of a live object.
        if !args.is_empty() || unsafe { ffi::PyCFunction_Check(callback.as_ptr()) } == 0 {
            return None;
        }
        let io = callback
            .getattr(intern!(py, "__self__"))
            .ok()?
            .cast_into::<SocketIo>()
            .ok()?;
        let write = match callback
            .getattr(intern!(py, "__name__"))
            .ok()?
            .extract::<String>()
            .ok()?
            .as_str()
        {
            "read_ready" => false,
            "write_ready" => true,
            _ => return None,
        };
        Some(Self { io: io.unbind(), write })
    }
}

impl Handle {
    fn new(
        py: Python<'_>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let own_context = context.is_none();
        let context = match context {
            Some(c) => c.unbind(),
            // Safety: PyContext_CopyCurrent returns a new reference or NULL with an exception set.
            None => unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent())? }.unbind(),
        };
        Ok(Self {
            target: Mutex::new(Some(Target {
                callback: callback.unbind(),
                args: args.unbind(),
                native: None,
            })),
            context,
            own_context,
            cancelled: AtomicBool::new(false),
            scheduled: AtomicBool::new(false),
        })
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// The callback and its arguments (new references), `None` once cancelled.
    fn target(&self, py: Python<'_>) -> Option<(Py<PyAny>, Py<PyTuple>)> {
        self.target
            .lock()
            .as_ref()
            .map(|t| (t.callback.clone_ref(py), t.args.clone_ref(py)))
    }

    /// Drops the callback and its arguments (outside the lock: their destructors may run code).
    fn drop_target(&self) {
        let old = self.target.lock().take();
        drop(old);
    }

    fn visit_target(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(t) = &*self.target.lock() {
            visit.call(&t.callback)?;
            visit.call(&t.args)?;
            if let Some(n) = &t.native {
                visit.call(&n.io)?;
            }
        }
        Ok(())
    }

    /// `_format_callback_source(callback, args)` of a handle's [`Self::target`], as asyncio
    /// formats it (with `None`s once cancelled).
    fn callback_source(py: Python<'_>, target: Option<(Py<PyAny>, Py<PyTuple>)>) -> PyResult<String> {
        let fmt = imported(
            py,
            &FORMAT_CALLBACK,
            "asyncio.format_helpers",
            "_format_callback_source",
        )?;
        let (c, a) = target.map_or_else(|| (py.None(), py.None()), |(c, a)| (c, a.into_any()));
        fmt.call1((c, a))?.extract()
    }

    /// Calls the callback in its context (nothing once cancelled). Errors are the callback's (or
    /// the context's, if it is already entered elsewhere).
    fn call(&self, py: Python<'_>) -> PyResult<()> {
        // New references to what to run, taken under the lock and used after it is released.
        let run = match &*self.target.lock() {
            None => return Ok(()),
            Some(Target { native: Some(n), .. }) => Run::Native(n.io.clone_ref(py), n.write),
            Some(t) => Run::Python(t.callback.clone_ref(py), t.args.clone_ref(py)),
        };
        let ctx = self.context.as_ptr();
        // Safety: `ctx` is a live Context (PyContext_Enter type-checks it and fails cleanly
        // otherwise), exited after the call whatever its outcome.
        if unsafe { ffi::PyContext_Enter(ctx) } < 0 {
            return Err(PyErr::fetch(py));
        }
        let res = match run {
            Run::Native(io, false) => io.get().read_ready(py),
            Run::Native(io, true) => io.get().write_ready(py),
            Run::Python(callback, args) => {
                let args = args.as_ptr();
                // Safety: `args` is a live tuple whose items stay alive while we hold it, so its
                // item array is a valid vectorcall argument vector of PyTuple_GET_SIZE items. The
                // result is a new reference, or NULL with an exception set.
                unsafe {
                    let n = ffi::PyTuple_GET_SIZE(args) as usize;
                    let items = (*args.cast::<ffi::PyTupleObject>()).ob_item.as_ptr();
                    let res = ffi::PyObject_Vectorcall(callback.as_ptr(), items, n, std::ptr::null_mut());
                    Bound::from_owned_ptr_or_err(py, res).map(drop)
                }
            }
        };
        // Safety: the context entered above.
        let exited = unsafe { ffi::PyContext_Exit(ctx) };
        res?;
        if exited < 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(())
    }

    fn repr_info(slf: &Bound<'_, Self>, kind: &str, when: Option<f64>) -> PyResult<String> {
        let py = slf.py();
        let h = slf.get();
        let mut info = vec![kind.to_owned()];
        if h.is_cancelled() {
            info.push("cancelled".to_owned());
        }
        if let Some(w) = when {
            // Python's float repr (`5.0`, not Rust's `5`), after `cancelled` as asyncio puts it.
            info.push(format!("when={}", pyo3::types::PyFloat::new(py, w).repr()?));
        }
        if let Some(target) = h.target(py) {
            info.push(Self::callback_source(py, Some(target))?);
        }
        Ok(format!("<{}>", info.join(" ")))
    }
}

#[pymethods]
impl Handle {
    /// Cancels the callback: it will not run, and the handle lets go of it and its arguments.
    /// Cancelling twice does nothing.
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
        self.drop_target();
    }

    /// Whether the callback was cancelled.
    fn cancelled(&self) -> bool {
        self.is_cancelled()
    }

    /// The `contextvars.Context` the callback runs in.
    fn get_context(&self, py: Python<'_>) -> Py<PyAny> {
        self.context.clone_ref(py)
    }

    #[getter]
    fn _callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.target(py).map(|(c, _)| c)
    }

    #[getter]
    fn _args(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.target(py).map(|(_, a)| a)
    }

    #[getter]
    fn _cancelled(&self) -> bool {
        self.is_cancelled()
    }

    #[getter]
    fn _context(&self, py: Python<'_>) -> Py<PyAny> {
        self.context.clone_ref(py)
    }

    #[getter]
    #[allow(clippy::unused_self, reason = "a Python method: needs self")]
    fn _source_traceback(&self) -> Option<Py<PyAny>> {
        None
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Self::repr_info(slf, "Handle", None)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.visit_target(&visit)?;
        visit.call(&self.context)
    }
}

/// A callback scheduled at a time on the loop's clock, like `asyncio.TimerHandle`.
#[pyclass(module = "plait._plait", frozen, extends = Handle)]
pub struct TimerHandle {
    when: f64,
    cancelled_count: Arc<AtomicUsize>,
}

#[pymethods]
impl TimerHandle {
    /// The time (on `loop.time()`'s clock) at which the callback is scheduled.
    fn when(&self) -> f64 {
        self.when
    }

    /// Cancels the callback: it will not run, and the loop drops it from its timers.
    fn cancel(slf: &Bound<'_, Self>) {
        let base = slf.as_super().get();
        if !base.cancelled.swap(true, Ordering::Relaxed) && base.scheduled.load(Ordering::Relaxed) {
            slf.get().cancelled_count.fetch_add(1, Ordering::Relaxed);
        }
        base.drop_target();
    }

    #[getter]
    fn _when(&self) -> f64 {
        self.when
    }

    #[getter]
    fn _scheduled(slf: &Bound<'_, Self>) -> bool {
        slf.as_super().get().scheduled.load(Ordering::Relaxed)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Handle::repr_info(slf.as_super(), "TimerHandle", Some(slf.get().when))
    }

    fn __hash__(&self) -> u64 {
        self.when.to_bits()
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(other) = other.cast::<TimerHandle>() else {
            return Ok(py.NotImplemented());
        };
        let (a, b) = (self.when, other.get().when);
        let r = match op {
            CompareOp::Lt => a < b,
            CompareOp::Le => a <= b,
            CompareOp::Gt => a > b,
            CompareOp::Ge => a >= b,
            CompareOp::Eq | CompareOp::Ne => return Ok(py.NotImplemented()),
        };
        Ok(r.into_pyobject(py)?.to_owned().into_any().unbind())
    }
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
struct Polling {
    selector: Selector,
    events: Vec<(RawFd, Readiness)>,
    /// When the kernel was last polled (see `POLL_SKIP_WINDOW`).
    last_poll: f64,
}

/// The native event loop core; `plait.aio.EventLoop` is its Python subclass. Shared between
/// threads (`call_soon_threadsafe`), so frozen with locks and atomics inside.
#[pyclass(module = "plait._plait", frozen, subclass)]
pub struct LoopCore {
    ready: ReadyQueue<Py<Handle>>,
    /// The buffer the ready queue is swapped with each tick (kept to avoid allocating).
    spare: Mutex<Vec<Py<Handle>>>,
    /// Timers, as their `Handle` part (so the collector's traversal can reach them).
    timers: Mutex<TimerHeap<Py<Handle>>>,
    timer_cancelled: Arc<AtomicUsize>,
    polling: Mutex<Option<Polling>>,
    registrar: Mutex<Option<Registrar<Py<Handle>>>>,
    waker: Mutex<Option<Waker>>,
    closed: AtomicBool,
    stopping: AtomicBool,
    debug: AtomicBool,
    /// The loop thread is (about to be) blocked in a poll: other threads must wake it.
    sleeping: AtomicBool,
    /// Some fd was noted for a re-arm this tick (saves the registrar lock when none was).
    rearm_pending: AtomicBool,
    clock_resolution: f64,
}

impl LoopCore {
    fn check_closed(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Relaxed) {
            Err(closed_error())
        } else {
            Ok(())
        }
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
    ) -> PyResult<Bound<'py, TimerHandle>> {
        let py = slf.py();
        let this = slf.get();
        // asyncio runs a NaN deadline at once (no comparison with it holds): schedule it now,
        // keeping the heap's order total.
        let when = if when.is_nan() { clock::monotonic() } else { when };
        let handle = Handle::new(py, callback, args, context)?;
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
    fn tick(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();

        let mut timers = this.timers.lock();
        let dropped = Self::prune_timers(&this.timer_cancelled, &mut timers);
        let next = timers.next_deadline();
        drop(timers);
        release_all(py, dropped);
        let work_ready = !this.ready.is_empty();
        let timeout = if work_ready || this.stopping.load(Ordering::Relaxed) {
            Some(Duration::ZERO)
        } else {
            next.map(|when| Duration::from_secs_f64((when - clock::monotonic()).clamp(0.0, MAX_SELECT_TIMEOUT)))
        };

        let mut batch = std::mem::take(&mut *this.spare.lock());
        {
            let mut polling = this.polling.lock();
            let Some(p) = polling.as_mut() else {
                return Err(closed_error());
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
            result.map_err(poll_error)?;
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
        release_all(py, skipped);

        // Signals that interrupted the poll (Ctrl-C): their handlers run now; an exception they
        // raise leaves the batch queued for the next run.
        if let Err(e) = py.check_signals() {
            this.ready.requeue_front(batch);
            this.rearm();
            return Err(e);
        }

        let result = Self::run_batch(slf, &mut batch);
        release_all(py, batch.drain(..));
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
        let cb = Handle::callback_source(py, h.get().target(py))?;
        let ctx = PyDict::new(py);
        ctx.set_item("message", format!("Exception in callback {cb}"))?;
        ctx.set_item("exception", e.value(py))?;
        ctx.set_item("handle", h)?;
        slf.call_method1(intern!(py, "call_exception_handler"), (ctx,))?;
        Ok(())
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
        let native = NativeIo::of(&callback, &args);
        let mut handle = Handle::new(py, callback, args, None)?;
        if let Some(t) = handle.target.get_mut() {
            t.native = native;
        }
        let h = Py::new(py, handle)?;
        let old = {
            let mut reg = this.registrar.lock();
            let reg = reg.as_mut().ok_or_else(closed_error)?;
            match side {
                Side::Read => reg.set_reader(fd, h.clone_ref(py)),
                Side::ReadEdge => reg.set_reader_edge(fd, h.clone_ref(py)),
                Side::Write => reg.set_writer(fd, h.clone_ref(py)),
            }
        }
        .map_err(poll_error)?;
        if let Some(old) = old {
            old.get().cancel();
        }
        Ok(h)
    }

    fn remove_io(&self, fd: &Bound<'_, PyAny>, read: bool) -> PyResult<bool> {
        if self.closed.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let fd = fileobj_to_fd(fd)?;
        let old = {
            let mut reg = self.registrar.lock();
            let Some(reg) = reg.as_mut() else { return Ok(false) };
            if read {
                reg.remove_reader(fd)
            } else {
                reg.remove_writer(fd)
            }
        };
        Ok(old.is_some_and(|h| {
            h.get().cancel();
            true
        }))
    }
}

#[pymethods]
impl LoopCore {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyAny>, _kwargs: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let (selector, registrar, waker) = poller::new(1024).map_err(poll_error)?;
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
        if this.debug.load(Ordering::Relaxed) {
            Self::debug_checks(slf, &callback, "call_soon", true)?;
        }
        let h = Bound::new(py, Handle::new(py, callback, args, context)?)?;
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
            let task = imported(py, &TASK, "asyncio", "Task")?.call((coro,), Some(&kwargs))?;
            if this.debug.load(Ordering::Relaxed) {
                let tb = task.getattr(intern!(py, "_source_traceback"))?;
                if tb.is_truthy()? {
                    tb.del_item(-1)?;
                }
            }
            return Ok(task);
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
        let h = Bound::new(py, Handle::new(py, callback, args, context)?)?;
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
        let h = Bound::new(py, Handle::new(py, callback, args, context)?)?;
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
        Self::schedule_at(slf, when, callback, args, context)
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
        Self::schedule_at(slf, when, callback, args, context)
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

    /// Drops every callback, timer and watched fd and closes the poller's fds (after `close()`).
    fn _close_native(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Relaxed);
        let ready = self.ready.drain();
        let timers = self.timers.lock().drain();
        let io = self.registrar.lock().take().map(|mut r| r.drain());
        let polling = self.polling.lock().take();
        let waker = self.waker.lock().take();
        let spare = std::mem::take(&mut *self.spare.lock());
        release_all(py, ready);
        release_all(py, timers);
        drop((io, polling, waker, spare));
        // The receive buffer of this thread's transports: a thread that runs loops one after
        // another (asyncio.run in a worker thread) must not keep one per thread after it exits.
        crate::transport::free_spare(py);
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
        Ok(())
    }

    fn __clear__(&self, py: Python<'_>) {
        let ready = self.ready.drain();
        let timers = self.timers.lock().drain();
        let io = self.registrar.lock().as_mut().map(Registrar::drain);
        release_all(py, ready);
        release_all(py, timers);
        drop(io);
    }
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Handle>()?;
    m.add_class::<TimerHandle>()?;
    m.add_class::<LoopCore>()?;
    Ok(())
}
