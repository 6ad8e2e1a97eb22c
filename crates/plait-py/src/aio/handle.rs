//! [`Handle`] and [`TimerHandle`]: the callbacks the loop schedules, as asyncio's handles.
//!
//! A handle is a small frozen object: the callback and its arguments (the tuple they came in,
//! called without copying, or a [`NativeCallback`] called as Rust), the `contextvars.Context` it
//! runs in, and atomic cancel/scheduled flags. While only the loop holds it, it is off the
//! collector's lists (see [`super::gc`]).
//!
//! A handle made while the loop is in debug mode also carries a [`DebugInfo`]: where it was
//! scheduled (`_source_traceback`, as asyncio records it) and the repr kept by its first cancel.
//! Outside debug mode that is one empty pointer, so the fast path is unchanged.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{intern, PyTraverseError, PyVisit};

use super::futures::imported;
use super::gc::{retrack, LoopOwned};
use super::source::NativeCallback;

static FORMAT_CALLBACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static EXTRACT_STACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static CONSTANTS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// What a handle made in debug mode keeps, as asyncio's `Handle` does in debug mode.
pub(super) struct DebugInfo {
    /// `_source_traceback`: asyncio's `format_helpers.extract_stack()` (a `StackSummary`, a
    /// list) of the code that scheduled the callback, innermost frame last.
    source_traceback: Py<PyAny>,
    /// The repr taken by the first `cancel()`, returned by `repr()` from then on (asyncio keeps
    /// it so that "Executing <Handle...> took 2.5 seconds" still names the callback).
    repr: Mutex<Option<String>>,
}

impl DebugInfo {
    /// Where the running Python code is, as asyncio's handle records it in debug mode. asyncio
    /// takes `DEBUG_STACK_DEPTH` frames counting its own scheduling frames (`call_soon`,
    /// `_call_soon`, `call_at`...) and then deletes those; this loop's scheduling methods are
    /// native and have no frames, so the `hidden` frames asyncio would have deleted are left out
    /// of the depth instead: both end up with the same frames of the program.
    pub(super) fn capture(py: Python<'_>, hidden: usize) -> PyResult<Box<Self>> {
        let constants = imported(py, &CONSTANTS, "asyncio", "constants")?;
        let depth: i64 = constants.getattr(intern!(py, "DEBUG_STACK_DEPTH"))?.extract()?;
        let limit = (depth - i64::try_from(hidden).unwrap_or(i64::MAX)).max(0);
        let extract = imported(py, &EXTRACT_STACK, "asyncio.format_helpers", "extract_stack")?;
        // With no frame given, extract_stack starts at its caller's frame: with no Python frame
        // of ours in between, that is the code that called the loop method.
        let source_traceback = extract.call1((py.None(), limit))?.unbind();
        Ok(Box::new(Self {
            source_traceback,
            repr: Mutex::new(None),
        }))
    }
}

/// A callback scheduled on the loop, like `asyncio.Handle`: the callback, its arguments (the
/// tuple they came in, called without copying) and the `contextvars.Context` it runs in.
#[pyclass(module = "plait._plait", frozen, subclass, weakref)]
pub struct Handle {
    /// The callback and its arguments; dropped by `cancel`, as asyncio's handle drops them, so
    /// a cancelled timer holds nothing alive until it leaves the heap.
    pub(super) target: Mutex<Option<Target>>,
    pub(super) context: Py<PyAny>,
    /// `context` was copied here (not passed by the caller).
    pub(super) own_context: bool,
    pub(super) cancelled: AtomicBool,
    /// A timer in the loop's heap: a cancel then counts towards compaction.
    pub(super) scheduled: AtomicBool,
    /// Set when the loop was in debug mode at creation (see [`DebugInfo`]).
    pub(super) debug: Option<Box<DebugInfo>>,
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
pub(super) struct Target {
    pub(super) callback: Py<PyAny>,
    pub(super) args: Py<PyTuple>,
    /// The callback is a [`NativeCallback`] called with no arguments (a transport's reader or
    /// writer): run as a Rust call (no Python call machinery on the per-packet path).
    pub(super) native: Option<Py<NativeCallback>>,
}

/// What [`Handle::call`] runs: a native readiness callback, or a Python callable with its
/// argument tuple.
enum Run {
    Native(Py<NativeCallback>),
    Python(Py<PyAny>, Py<PyTuple>),
}

impl Handle {
    pub(super) fn new(
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
            debug: None,
        })
    }

    /// `_source_traceback` when it holds frames (asyncio's `if self._source_traceback:`).
    pub(super) fn source_traceback<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match &self.debug {
            Some(d) => {
                let tb = d.source_traceback.bind(py);
                Ok(tb.is_truthy()?.then(|| tb.clone()))
            }
            None => Ok(None),
        }
    }

    /// Marks the handle cancelled; on the first cancel of a debug-mode handle, keeps its repr
    /// (taken now, so it says `cancelled`) as asyncio does. Returns whether this was the first
    /// cancel, and the error of the repr if it raised (the handle is cancelled regardless).
    fn mark_cancelled(&self, obj: &Bound<'_, PyAny>) -> (bool, PyResult<()>) {
        let first = !self.cancelled.swap(true, Ordering::Relaxed);
        let mut kept = Ok(());
        if first {
            if let Some(d) = &self.debug {
                kept = obj.repr().map(|r| *d.repr.lock() = Some(r.to_string()));
            }
        }
        (first, kept)
    }

    /// Cancels a reader's or writer's handle (the loop replaced or removed it).
    pub(super) fn cancel_bound(slf: &Bound<'_, Self>) -> PyResult<()> {
        let h = slf.get();
        let (_, kept) = h.mark_cancelled(slf.as_any());
        h.drop_target();
        kept
    }

    pub(super) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// The callback and its arguments (new references), `None` once cancelled.
    pub(super) fn target(&self, py: Python<'_>) -> Option<(Py<PyAny>, Py<PyTuple>)> {
        self.target
            .lock()
            .as_ref()
            .map(|t| (t.callback.clone_ref(py), t.args.clone_ref(py)))
    }

    /// Drops the callback and its arguments (outside the lock: their destructors may run code).
    pub(super) fn drop_target(&self) {
        let old = self.target.lock().take();
        drop(old);
    }

    fn visit_debug(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match &self.debug {
            Some(d) => visit.call(&d.source_traceback),
            None => Ok(()),
        }
    }

    fn visit_target(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(t) = &*self.target.lock() {
            visit.call(&t.callback)?;
            visit.call(&t.args)?;
            if let Some(n) = &t.native {
                visit.call(n)?;
            }
        }
        Ok(())
    }

    /// `_format_callback_source(callback, args)` of a handle's [`Self::target`], as asyncio
    /// formats it (with `None`s once cancelled). From 3.13 asyncio shows the arguments only in
    /// debug mode (`debug=`).
    pub(super) fn callback_source(
        py: Python<'_>,
        target: Option<(Py<PyAny>, Py<PyTuple>)>,
        debug: bool,
    ) -> PyResult<String> {
        let fmt = imported(
            py,
            &FORMAT_CALLBACK,
            "asyncio.format_helpers",
            "_format_callback_source",
        )?;
        let (c, a) = target.map_or_else(|| (py.None(), py.None()), |(c, a)| (c, a.into_any()));
        if debug && py.version_info() >= (3, 13) {
            let kwargs = PyDict::new(py);
            kwargs.set_item(intern!(py, "debug"), true)?;
            return fmt.call((c, a), Some(&kwargs))?.extract();
        }
        fmt.call1((c, a))?.extract()
    }

    /// Calls the callback in its context (nothing once cancelled). Errors are the callback's (or
    /// the context's, if it is already entered elsewhere).
    pub(super) fn call(&self, py: Python<'_>) -> PyResult<()> {
        // New references to what to run, taken under the lock and used after it is released.
        let run = match &*self.target.lock() {
            None => return Ok(()),
            Some(Target { native: Some(n), .. }) => Run::Native(n.clone_ref(py)),
            Some(t) => Run::Python(t.callback.clone_ref(py), t.args.clone_ref(py)),
        };
        let ctx = self.context.as_ptr();
        // Safety: `ctx` is a live Context (PyContext_Enter type-checks it and fails cleanly
        // otherwise), exited after the call whatever its outcome.
        if unsafe { ffi::PyContext_Enter(ctx) } < 0 {
            return Err(PyErr::fetch(py));
        }
        let res = match run {
            Run::Native(n) => n.get().fire(py),
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

    pub(super) fn repr_info(slf: &Bound<'_, Self>, kind: &str, when: Option<f64>) -> PyResult<String> {
        let py = slf.py();
        let h = slf.get();
        if let Some(saved) = h.debug.as_ref().and_then(|d| d.repr.lock().clone()) {
            return Ok(saved);
        }
        let mut info = vec![kind.to_owned()];
        if h.is_cancelled() {
            info.push("cancelled".to_owned());
        }
        if let Some(w) = when {
            // Python's float repr (`5.0`, not Rust's `5`), after `cancelled` as asyncio puts it.
            info.push(format!("when={}", pyo3::types::PyFloat::new(py, w).repr()?));
        }
        if let Some(target) = h.target(py) {
            // A debug-mode handle stands for the loop's debug flag, which it does not hold.
            info.push(Self::callback_source(py, Some(target), h.debug.is_some())?);
        }
        if let Some(tb) = h.source_traceback(py)? {
            let frame = tb.get_item(-1)?;
            info.push(format!("created at {}:{}", frame.get_item(0)?, frame.get_item(1)?));
        }
        Ok(format!("<{}>", info.join(" ")))
    }
}

#[pymethods]
impl Handle {
    /// Cancels the callback: it will not run, and the handle lets go of it and its arguments.
    /// Cancelling twice does nothing.
    fn cancel(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::cancel_bound(slf)
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

    /// Where the handle was scheduled (debug mode only, else None), as asyncio records it.
    #[getter]
    fn _source_traceback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.debug.as_ref().map(|d| d.source_traceback.clone_ref(py))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Self::repr_info(slf, "Handle", None)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.visit_target(&visit)?;
        self.visit_debug(&visit)?;
        visit.call(&self.context)
    }
}

/// A callback scheduled at a time on the loop's clock, like `asyncio.TimerHandle`.
#[pyclass(module = "plait._plait", frozen, extends = Handle)]
pub struct TimerHandle {
    pub(super) when: f64,
    pub(super) cancelled_count: Arc<AtomicUsize>,
}

#[pymethods]
impl TimerHandle {
    /// The time (on `loop.time()`'s clock) at which the callback is scheduled.
    fn when(&self) -> f64 {
        self.when
    }

    /// Cancels the callback: it will not run, and the loop drops it from its timers.
    pub(super) fn cancel(slf: &Bound<'_, Self>) -> PyResult<()> {
        let base = slf.as_super().get();
        let (first, kept) = base.mark_cancelled(slf.as_any());
        if first && base.scheduled.load(Ordering::Relaxed) {
            slf.get().cancelled_count.fetch_add(1, Ordering::Relaxed);
        }
        base.drop_target();
        kept
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

impl LoopOwned for Handle {
    fn own_context(&self) -> Option<&Py<PyAny>> {
        self.own_context.then_some(&self.context)
    }

    fn visit_parts(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.visit_target(visit)?;
        self.visit_debug(visit)?;
        visit.call(&self.context)
    }
}
