//! `FutureCore`: a native `concurrent.futures.Future`.
//!
//! `plait._pool.Future` inherits from this class *and* from `concurrent.futures.Future`, so
//! `isinstance` checks, `asyncio.wrap_future`, `concurrent.futures.wait` and `as_completed` all
//! accept it, while every method runs here. The attributes those helpers reach into (`_state`,
//! `_condition`, `_waiters`) are provided as properties; the condition and waiter list are created
//! only when someone asks for them, so the submit path allocates neither.

use parking_lot::Mutex;
use plait_core::sync::Event;
use pyo3::exceptions::{PyRuntimeError, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyString, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::blocking::{optional_deadline, PyBlocker};
use crate::errors;
use crate::sync::condition::Condition;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Cancelled,
    CancelledAndNotified,
    Finished,
}

impl State {
    fn is_cancelled(self) -> bool {
        matches!(self, Self::Cancelled | Self::CancelledAndNotified)
    }

    fn is_done(self) -> bool {
        matches!(self, Self::Cancelled | Self::CancelledAndNotified | Self::Finished)
    }

    fn description(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Cancelled | Self::CancelledAndNotified => "cancelled",
            Self::Finished => "finished",
        }
    }
}

#[derive(Default)]
struct Inner {
    state: Option<State>,
    result: Option<Py<PyAny>>,
    exception: Option<Py<PyAny>>,
    callbacks: Vec<Py<PyAny>>,
    condition: Option<Py<PyAny>>,
    waiters: Option<Py<PyList>>,
}

impl Inner {
    fn state(&self) -> State {
        self.state.unwrap_or(State::Pending)
    }
}

/// The outcome a worker hands to [`FutureCore::finish`].
pub enum Outcome {
    Ok(Py<PyAny>),
    Err(Py<PyAny>),
}

static BASE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
static STATES: PyOnceLock<[Py<PyString>; 5]> = PyOnceLock::new();

fn base(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    BASE.get_or_try_init(py, || py.import("concurrent.futures._base").map(Bound::unbind))
        .map(|m| m.bind(py))
}

fn state_str(py: Python<'_>, state: State) -> PyResult<Py<PyString>> {
    let states = STATES.get_or_try_init(py, || -> PyResult<_> {
        let b = base(py)?;
        let get = |name: &str| -> PyResult<Py<PyString>> { Ok(b.getattr(name)?.cast_into::<PyString>()?.unbind()) };
        Ok([
            get("PENDING")?,
            get("RUNNING")?,
            get("CANCELLED")?,
            get("CANCELLED_AND_NOTIFIED")?,
            get("FINISHED")?,
        ])
    })?;
    let i = match state {
        State::Pending => 0,
        State::Running => 1,
        State::Cancelled => 2,
        State::CancelledAndNotified => 3,
        State::Finished => 4,
    };
    Ok(states[i].clone_ref(py))
}

/// Logs an exception raised by a done-callback, as `concurrent.futures` does.
fn log_callback_error(py: Python<'_>, fut: &Bound<'_, PyAny>, err: PyErr) -> PyResult<()> {
    if !err.is_instance_of::<pyo3::exceptions::PyException>(py) {
        return Err(err);
    }
    let logger = base(py)?.getattr("LOGGER")?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("exc_info", err.into_value(py))?;
    logger.call_method("error", ("exception calling callback for %r", fut), Some(&kwargs))?;
    Ok(())
}

/// The native future; see the module docs.
#[pyclass(module = "plait._pool", frozen, subclass)]
pub struct FutureCore {
    inner: Mutex<Inner>,
    done: Event,
    /// The process pool's id for the task (0 when not a process-pool task).
    task_id: std::sync::atomic::AtomicU64,
}

impl FutureCore {
    fn invoke_callbacks(slf: &Bound<'_, Self>, callbacks: Vec<Py<PyAny>>) -> PyResult<()> {
        let py = slf.py();
        for cb in callbacks {
            if let Err(e) = cb.bind(py).call1((slf,)) {
                log_callback_error(py, slf.as_any(), e)?;
            }
        }
        Ok(())
    }

    /// Applies `change` to the state the way `concurrent.futures` does: while holding the
    /// future's condition when one exists (`concurrent.futures.wait` and `as_completed` read
    /// `_state` and install waiters while holding it), else under the inner mutex alone (then no
    /// such reader can exist: the condition is created under that mutex). `notify` runs with the
    /// condition still held, after the change.
    fn transition<R>(
        slf: &Bound<'_, Self>,
        change: impl FnOnce(&mut Inner) -> R,
        notify: impl FnOnce(&Bound<'_, PyAny>, &R) -> PyResult<()>,
    ) -> PyResult<R> {
        let py = slf.py();
        let me = slf.get();
        let mut change = Some(change);
        let condition = {
            let mut st = me.inner.lock();
            match &st.condition {
                None => return Ok((change.take().expect("not yet run"))(&mut st)),
                Some(c) => c.clone_ref(py),
            }
        };
        let cond = condition.bind(py);
        cond.call_method0("acquire")?;
        let result = (change.take().expect("not yet run"))(&mut me.inner.lock());
        let notified = notify(cond, &result);
        cond.call_method0("release")?;
        notified.map(|()| result)
    }

    /// Calls `method(future)` on every waiter of `concurrent.futures.wait`/`as_completed`, then
    /// `notify_all`; the caller holds the condition.
    fn notify_waiters(slf: &Bound<'_, Self>, cond: &Bound<'_, PyAny>, method: Option<&str>) -> PyResult<()> {
        let py = slf.py();
        if let Some(method) = method {
            let waiters = slf.get().inner.lock().waiters.as_ref().map(|w| w.clone_ref(py));
            if let Some(waiters) = waiters {
                for w in waiters.bind(py).iter() {
                    w.call_method1(method, (slf,))?;
                }
            }
        }
        cond.call_method0("notify_all")?;
        Ok(())
    }

    /// Completes the future with a result or an exception.
    ///
    /// # Errors
    /// `InvalidStateError` when it is done already; what a done-callback's logging raises.
    pub fn finish(slf: &Bound<'_, Self>, outcome: Outcome) -> PyResult<()> {
        Self::finish_impl(slf, outcome, true)
    }

    /// Like [`FutureCore::finish`], but a future already done keeps its outcome and `outcome`
    /// is dropped: for a task whose future was failed meanwhile (a thread pool's task timeout).
    ///
    /// # Errors
    /// What a done-callback's logging raises.
    pub fn finish_unless_done(slf: &Bound<'_, Self>, outcome: Outcome) -> PyResult<()> {
        Self::finish_impl(slf, outcome, false)
    }

    fn finish_impl(slf: &Bound<'_, Self>, outcome: Outcome, strict: bool) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let changed = Self::transition(
            slf,
            |st| {
                let state = st.state();
                if state.is_done() {
                    return Err((state, outcome));
                }
                let method = match outcome {
                    Outcome::Ok(v) => {
                        st.result = Some(v);
                        "add_result"
                    }
                    Outcome::Err(e) => {
                        st.exception = Some(e);
                        "add_exception"
                    }
                };
                st.state = Some(State::Finished);
                Ok((std::mem::take(&mut st.callbacks), method))
            },
            |cond, changed| match changed {
                Ok((_, method)) => Self::notify_waiters(slf, cond, Some(method)),
                Err(_) => Ok(()),
            },
        )?;
        match changed {
            Ok((callbacks, _)) => {
                me.done.set();
                Self::invoke_callbacks(slf, callbacks)
            }
            Err((_, outcome)) if !strict => {
                drop(outcome);
                Ok(())
            }
            Err((state, outcome)) => {
                drop(outcome);
                let exc = base(py)?.getattr("InvalidStateError")?;
                let msg = format!("{}: {}", state_str(py, state)?, slf.repr()?);
                Err(PyErr::from_value(exc.call1((msg,))?))
            }
        }
    }

    /// The Pending to Running transition without the interpreter (for the process pool's
    /// dispatcher thread). Returns `Some(true)` when started, `Some(false)` when the future was
    /// cancelled and nobody waits on it, `None` when it was cancelled and waiters must be told
    /// (call [`FutureCore::start`] with the interpreter attached).
    pub fn try_start_detached(&self) -> Option<bool> {
        let mut st = self.inner.lock();
        match st.state() {
            State::Pending => {
                st.state = Some(State::Running);
                Some(true)
            }
            State::Cancelled if st.condition.is_none() => {
                st.state = Some(State::CancelledAndNotified);
                Some(false)
            }
            _ => None,
        }
    }

    /// Records the process pool's id for this future's task.
    pub fn set_task_id(&self, id: u64) {
        self.task_id.store(id, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the future is running.
    pub fn is_running(&self) -> bool {
        self.inner.lock().state() == State::Running
    }

    /// Whether the future is still pending or running (not finished or cancelled).
    pub fn is_live(&self) -> bool {
        !self.inner.lock().state().is_done()
    }

    /// `set_running_or_notify_cancel()` for workers.
    pub fn start(slf: &Bound<'_, Self>) -> PyResult<bool> {
        let py = slf.py();
        let seen = Self::transition(
            slf,
            |st| {
                let state = st.state();
                match state {
                    State::Pending => st.state = Some(State::Running),
                    State::Cancelled => st.state = Some(State::CancelledAndNotified),
                    _ => {}
                }
                state
            },
            |cond, state| {
                if *state == State::Cancelled {
                    // notify_all is not needed here: cancel() already notified.
                    let py = slf.py();
                    let waiters = slf.get().inner.lock().waiters.as_ref().map(|w| w.clone_ref(py));
                    if let Some(waiters) = waiters {
                        for w in waiters.bind(py).iter() {
                            w.call_method1("add_cancelled", (slf,))?;
                        }
                    }
                }
                let _ = cond;
                Ok(())
            },
        )?;
        match seen {
            State::Pending => Ok(true),
            State::Cancelled => Ok(false),
            other => {
                let msg = format!(
                    "Future {:#x} in unexpected state: {}",
                    slf.as_ptr() as usize,
                    state_str(py, other)?
                );
                base(py)?.getattr("LOGGER")?.call_method1("critical", (msg,))?;
                Err(PyRuntimeError::new_err("Future in unexpected state"))
            }
        }
    }

    /// `cancel()`.
    pub fn cancel_impl(slf: &Bound<'_, Self>) -> PyResult<bool> {
        let me = slf.get();
        let outcome = Self::transition(
            slf,
            |st| match st.state() {
                State::Running | State::Finished => None,
                State::Cancelled | State::CancelledAndNotified => Some(None),
                State::Pending => {
                    st.state = Some(State::Cancelled);
                    Some(Some(std::mem::take(&mut st.callbacks)))
                }
            },
            |cond, outcome| {
                if matches!(outcome, Some(Some(_))) {
                    cond.call_method0("notify_all")?;
                }
                Ok(())
            },
        )?;
        match outcome {
            None => Ok(false),
            Some(None) => Ok(true),
            Some(Some(callbacks)) => {
                me.done.set();
                Self::invoke_callbacks(slf, callbacks)?;
                Ok(true)
            }
        }
    }

    /// The outcome of a finished future as a Python return or raise. Python objects are built
    /// only after the mutex is released (building one can run arbitrary code through the GC).
    fn outcome(&self, py: Python<'_>) -> Option<PyResult<Py<PyAny>>> {
        enum Seen {
            Cancelled,
            Raised(Py<PyAny>),
            Returned(Option<Py<PyAny>>),
        }
        let seen = {
            let st = self.inner.lock();
            match st.state() {
                State::Cancelled | State::CancelledAndNotified => Seen::Cancelled,
                State::Finished => match &st.exception {
                    Some(e) => Seen::Raised(e.clone_ref(py)),
                    None => Seen::Returned(st.result.as_ref().map(|r| r.clone_ref(py))),
                },
                _ => return None,
            }
        };
        Some(match seen {
            Seen::Cancelled => Err(errors::cancelled(py)),
            Seen::Raised(e) => Err(PyErr::from_value(e.into_bound(py))),
            Seen::Returned(r) => Ok(r.unwrap_or_else(|| py.None())),
        })
    }

    fn wait_done(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        if timeout.is_some_and(|t| t <= 0.0) {
            return Ok(());
        }
        let mut blocker = PyBlocker::new(py);
        self.done
            .wait(optional_deadline(timeout), &mut blocker)
            .map(drop)
            .map_err(|_| blocker.take_err())
    }
}

#[pymethods]
impl FutureCore {
    /// Lets the cycle collector see the result, exception, callbacks and waiters: a future whose
    /// exception's traceback refers back to it (a frame holding the future) is a common cycle.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Never block in the collector: a busy future is simply not traversed this round.
        let Some(st) = self.inner.try_lock() else {
            return Ok(());
        };
        visit.call(st.result.as_ref())?;
        visit.call(st.exception.as_ref())?;
        for cb in &st.callbacks {
            visit.call(cb)?;
        }
        visit.call(st.condition.as_ref())?;
        visit.call(st.waiters.as_ref())?;
        Ok(())
    }

    fn __clear__(&self) {
        let taken = std::mem::take(&mut *self.inner.lock());
        drop(taken);
    }

    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyAny>, _kwargs: Option<&Bound<'_, PyAny>>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            done: Event::new(),
            task_id: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The process pool's id for this future's task (0 when not a process-pool task).
    #[getter]
    fn _task_id(&self) -> u64 {
        self.task_id.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Cancel the future if it has not started; returns whether it is cancelled.
    fn cancel(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Self::cancel_impl(slf)
    }

    /// Whether the future was cancelled.
    fn cancelled(&self) -> bool {
        self.inner.lock().state().is_cancelled()
    }

    /// Whether the call is running.
    fn running(&self) -> bool {
        self.inner.lock().state() == State::Running
    }

    /// Whether the future is cancelled or finished.
    fn done(&self) -> bool {
        self.inner.lock().state().is_done()
    }

    /// The call's result, waiting up to `timeout` seconds; re-raises the call's exception.
    #[pyo3(signature = (timeout=None))]
    fn result(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        if let Some(out) = self.outcome(py) {
            return out;
        }
        self.wait_done(py, timeout)?;
        self.outcome(py).unwrap_or_else(|| Err(PyTimeoutError::new_err(())))
    }

    /// The call's exception (or None), waiting up to `timeout` seconds.
    #[pyo3(signature = (timeout=None))]
    fn exception(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let get = |me: &Self| -> Option<PyResult<Py<PyAny>>> {
            let seen = {
                let st = me.inner.lock();
                match st.state() {
                    State::Cancelled | State::CancelledAndNotified => None,
                    State::Finished => Some(st.exception.as_ref().map(|e| e.clone_ref(py))),
                    _ => return None,
                }
            };
            Some(match seen {
                None => Err(errors::cancelled(py)),
                Some(e) => Ok(e.unwrap_or_else(|| py.None())),
            })
        };
        if let Some(out) = get(self) {
            return out;
        }
        self.wait_done(py, timeout)?;
        get(self).unwrap_or_else(|| Err(PyTimeoutError::new_err(())))
    }

    /// Call `fn(future)` when the future is done (at once if it already is).
    fn add_done_callback(slf: &Bound<'_, Self>, r#fn: Py<PyAny>) -> PyResult<()> {
        let py = slf.py();
        {
            let mut st = slf.get().inner.lock();
            if !st.state().is_done() {
                st.callbacks.push(r#fn);
                return Ok(());
            }
        }
        if let Err(e) = r#fn.bind(py).call1((slf,)) {
            log_callback_error(py, slf.as_any(), e)?;
        }
        Ok(())
    }

    /// Mark the future running, or return False if it was cancelled (for executors).
    fn set_running_or_notify_cancel(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Self::start(slf)
    }

    /// Complete the future with `result` (for executors and tests).
    fn set_result(slf: &Bound<'_, Self>, result: Py<PyAny>) -> PyResult<()> {
        Self::finish(slf, Outcome::Ok(result))
    }

    /// Complete the future with `exception` (for executors and tests).
    fn set_exception(slf: &Bound<'_, Self>, exception: Py<PyAny>) -> PyResult<()> {
        Self::finish(slf, Outcome::Err(exception))
    }

    #[getter]
    fn _state(&self, py: Python<'_>) -> PyResult<Py<PyString>> {
        let state = self.inner.lock().state();
        state_str(py, state)
    }

    #[getter]
    fn _result(&self, py: Python<'_>) -> Py<PyAny> {
        self.inner
            .lock()
            .result
            .as_ref()
            .map_or_else(|| py.None(), |r| r.clone_ref(py))
    }

    #[getter]
    fn _exception(&self, py: Python<'_>) -> Py<PyAny> {
        self.inner
            .lock()
            .exception
            .as_ref()
            .map_or_else(|| py.None(), |r| r.clone_ref(py))
    }

    /// The condition `concurrent.futures.wait` locks; created on first use.
    #[getter]
    fn _condition(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(c) = &self.inner.lock().condition {
            return Ok(c.clone_ref(py));
        }
        let fresh = Bound::new(py, Condition::with_lock(py, None, None)?)?
            .into_any()
            .unbind();
        let mut st = self.inner.lock();
        Ok(st.condition.get_or_insert(fresh).clone_ref(py))
    }

    /// The waiter list of `concurrent.futures.wait`; created on first use.
    #[getter]
    fn _waiters(&self, py: Python<'_>) -> Py<PyList> {
        if let Some(w) = &self.inner.lock().waiters {
            return w.clone_ref(py);
        }
        let fresh = PyList::empty(py).unbind();
        let mut st = self.inner.lock();
        st.waiters.get_or_insert(fresh).clone_ref(py)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let name = slf.get_type().name()?;
        let at = slf.as_ptr() as usize;
        let st = slf.get().inner.lock();
        let state = st.state();
        if state == State::Finished {
            let (verb, obj) = match &st.exception {
                Some(e) => ("raised", e.clone_ref(py)),
                None => (
                    "returned",
                    st.result.as_ref().map_or_else(|| py.None(), |r| r.clone_ref(py)),
                ),
            };
            drop(st);
            let cls = obj.bind(py).get_type().name()?;
            return Ok(format!("<{name} at {at:#x} state=finished {verb} {cls}>"));
        }
        Ok(format!("<{name} at {at:#x} state={}>", state.description()))
    }
}

static FUTURE_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Registers the Python class (`plait._pool.Future`) that pools instantiate.
#[pyfunction]
fn _set_future_type(py: Python<'_>, cls: Bound<'_, PyType>) -> PyResult<()> {
    if !cls.is_subclass_of::<FutureCore>()? {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "future type must subclass FutureCore",
        ));
    }
    let _ = FUTURE_TYPE.set(py, cls.unbind());
    Ok(())
}

/// A new pending future of the registered class.
pub fn new_future(py: Python<'_>) -> PyResult<Bound<'_, FutureCore>> {
    let cls = FUTURE_TYPE
        .get(py)
        .ok_or_else(|| PyRuntimeError::new_err("plait._pool was not imported"))?;
    Ok(cls.bind(py).call0()?.cast_into::<FutureCore>()?)
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<FutureCore>()?;
    m.add_function(wrap_pyfunction!(_set_future_type, m)?)?;
    Ok(())
}
