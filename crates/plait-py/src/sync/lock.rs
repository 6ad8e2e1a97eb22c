//! `Lock`, `RLock`, `Condition`, `Semaphore`, `BoundedSemaphore`, `Event`, `Barrier`: the
//! `threading` primitives over `plait_core::sync`, with deadlock detection on every blocking wait.
//!
//! Each class holds its core object in an `Arc` shared with the deadlock graph and registry; the
//! `Arc` also carries the acquisition site for reports.

use std::any::Any;
use std::sync::Arc;

use plait_core::sync::barrier::Arrival;
use plait_core::sync::deadlock::{self, Resource};
use plait_core::sync::lock::RLockState;
use plait_core::sync::{self as core, SyncError};
use plait_core::thread::{self, ThreadId};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::{PyTraverseError, PyVisit};

use crate::blocking::{lock_deadline, optional_deadline, truthy, PyBlocker, Wait};
use crate::errors::sync_err;
use crate::sync::report::{after_acquire, after_release, before_wait, before_wait_reacquire, SiteCell};

/// A core primitive plus its acquisition site; the unit the deadlock graph sees.
pub struct Tracked<T> {
    core: T,
    site: SiteCell,
}

impl<T: Resource> Resource for Tracked<T> {
    fn id(&self) -> u64 {
        self.core.id()
    }
    fn kind(&self) -> &'static str {
        self.core.kind()
    }
    fn name(&self) -> Option<&str> {
        self.core.name()
    }
    fn holders(&self, out: &mut Vec<ThreadId>) {
        self.core.holders(out);
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn self_wait_is_deadlock(&self) -> bool {
        self.core.self_wait_is_deadlock()
    }
}

impl<T: Resource> Tracked<T> {
    /// Bookkeeping after a fresh acquire (site, lock order). If it fails (a lock-order warning
    /// turned into an error), `undo` gives back what was taken, so the failed acquire leaves
    /// nothing held.
    fn acquired(&self, py: Python<'_>, me: ThreadId, undo: impl FnOnce(&T)) -> PyResult<()> {
        after_acquire(py, me, self, &self.site).inspect_err(|_| {
            undo(&self.core);
            after_release(me, self);
        })
    }
}

fn tracked<T: Resource>(core: T) -> Arc<Tracked<T>> {
    let arc = Arc::new(Tracked {
        core,
        site: SiteCell::default(),
    });
    let dynamic: Arc<dyn Resource> = arc.clone();
    deadlock::register(&dynamic);
    arc
}

/// The acquisition site of a resource created here, if it has one.
pub fn site_of(res: &dyn Resource) -> Option<&SiteCell> {
    let any = res.as_any();
    if let Some(t) = any.downcast_ref::<Tracked<core::Lock>>() {
        return Some(&t.site);
    }
    if let Some(t) = any.downcast_ref::<Tracked<core::RLock>>() {
        return Some(&t.site);
    }
    any.downcast_ref::<Tracked<core::Semaphore>>().map(|t| &t.site)
}

/// `threading`'s repr style: `module.Class` with the module's last component, as `CPython`'s
/// tests expect one word before the class name.
fn class_path(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let cls = obj.get_type();
    let module: String = cls.getattr("__module__")?.extract()?;
    let short = module.rsplit('.').next().unwrap_or(&module).to_owned();
    Ok(format!("{short}.{}", cls.qualname()?))
}

fn addr(obj: &Bound<'_, PyAny>) -> usize {
    obj.as_ptr() as usize
}

fn name_suffix(name: Option<&str>) -> String {
    name.map(|n| format!("name='{n}' ")).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Lock

/// A primitive lock, like `threading.Lock`, with deadlock detection.
#[pyclass(module = "plait.threads", frozen, weakref, subclass)]
pub struct Lock {
    inner: Arc<Tracked<core::Lock>>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        deadlock::unregister(self.inner.core.id());
    }
}

impl Lock {
    pub fn acquire_impl(&self, py: Python<'_>, blocking: bool, timeout: f64) -> PyResult<bool> {
        let deadline = lock_deadline(blocking, timeout)?;
        let me = thread::current();
        if self.inner.core.try_acquire(me) {
            self.acquired(py, me)?;
            return Ok(true);
        }
        let Wait::Until(deadline) = deadline else {
            return Ok(false);
        };
        self.acquire_slow(py, me, deadline)
    }

    #[cold]
    fn acquire_slow(&self, py: Python<'_>, me: ThreadId, deadline: Option<std::time::Instant>) -> PyResult<bool> {
        let guard = before_wait(py, self.inner.clone(), deadline.is_some())?;
        let mut blocker = PyBlocker::new(py);
        let got = self.inner.core.acquire_slow(me, deadline, &mut blocker);
        drop(guard);
        match got {
            Ok(true) => {
                self.acquired(py, me)?;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => Err(sync_err(py, e, Some(&mut blocker))),
        }
    }

    fn acquired(&self, py: Python<'_>, me: ThreadId) -> PyResult<()> {
        self.inner.acquired(py, me, |lock| {
            let _ = lock.release(me);
        })
    }

    pub fn release_impl(&self, py: Python<'_>) -> PyResult<()> {
        let me = thread::current();
        self.inner.core.release(me).map_err(|e| sync_err(py, e, None))?;
        after_release(me, self.inner.as_ref());
        Ok(())
    }

    pub fn resource(&self) -> Arc<dyn Resource> {
        self.inner.clone()
    }

    pub fn is_locked(&self) -> bool {
        self.inner.core.locked()
    }
}

#[pymethods]
impl Lock {
    #[new]
    #[pyo3(signature = (*, name=None))]
    fn new(name: Option<String>) -> Self {
        Self {
            inner: tracked(core::Lock::new(name)),
        }
    }

    /// Acquire the lock, blocking or non-blocking, with an optional timeout.
    #[pyo3(signature = (blocking=None, timeout=-1.0))]
    fn acquire(&self, py: Python<'_>, blocking: Option<&Bound<'_, PyAny>>, timeout: f64) -> PyResult<bool> {
        self.acquire_impl(py, truthy(blocking, true)?, timeout)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire_impl(py, true, -1.0)
    }

    /// Release the lock; any thread may release it.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.release_impl(py)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release_impl(py)
    }

    /// Whether the lock is held.
    fn locked(&self) -> bool {
        self.inner.core.locked()
    }

    /// The name given at creation, or None.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.inner.core.name()
    }

    fn _at_fork_reinit(&self) {
        self.inner.core.reset_after_fork();
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let me = slf.get();
        let state = if me.inner.core.locked() { "locked" } else { "unlocked" };
        Ok(format!(
            "<{state} {} object {}at {:#x}>",
            class_path(slf.as_any())?,
            name_suffix(me.inner.core.name()),
            addr(slf.as_any())
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// RLock

/// A reentrant lock, like `threading.RLock`, with deadlock detection.
#[pyclass(module = "plait.threads", frozen, weakref, subclass)]
pub struct RLock {
    inner: Arc<Tracked<core::RLock>>,
}

impl Drop for RLock {
    fn drop(&mut self) {
        deadlock::unregister(self.inner.core.id());
    }
}

impl RLock {
    pub fn acquire_impl(&self, py: Python<'_>, blocking: bool, timeout: f64) -> PyResult<bool> {
        let deadline = lock_deadline(blocking, timeout)?;
        let me = thread::current();
        match self.inner.core.try_acquire(me) {
            Some(true) => {
                self.acquired(py, me)?;
                return Ok(true);
            }
            Some(false) => return Ok(true),
            None => {}
        }
        let Wait::Until(deadline) = deadline else {
            return Ok(false);
        };
        self.wait_for(py, me, deadline, PyBlocker::new(py))
    }

    #[cold]
    fn wait_for(
        &self,
        py: Python<'_>,
        me: ThreadId,
        deadline: Option<std::time::Instant>,
        mut blocker: PyBlocker<'_, '_>,
    ) -> PyResult<bool> {
        let guard = before_wait(py, self.inner.clone(), deadline.is_some())?;
        let got = self.inner.core.acquire_slow(me, deadline, &mut blocker);
        drop(guard);
        match got {
            Ok(true) => {
                self.acquired(py, me)?;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) => Err(sync_err(py, e, Some(&mut blocker))),
        }
    }

    fn acquired(&self, py: Python<'_>, me: ThreadId) -> PyResult<()> {
        self.inner.acquired(py, me, |lock| {
            let _ = lock.release(me);
        })
    }

    pub fn release_impl(&self, py: Python<'_>) -> PyResult<()> {
        let me = thread::current();
        if self.inner.core.release(me).map_err(|e| sync_err(py, e, None))? {
            after_release(me, self.inner.as_ref());
        }
        Ok(())
    }

    pub fn release_save_impl(&self, py: Python<'_>) -> PyResult<RLockState> {
        let me = thread::current();
        let state = self.inner.core.release_save(me).map_err(|e| sync_err(py, e, None))?;
        after_release(me, self.inner.as_ref());
        Ok(state)
    }

    /// Re-takes the lock after a condition wait; not interruptible, so the caller always leaves
    /// `Condition.wait` holding the lock as documented.
    pub fn acquire_restore_impl(&self, py: Python<'_>, state: RLockState) -> PyResult<()> {
        let me = thread::current();
        if self.inner.core.try_acquire(me) != Some(true) {
            let guard = before_wait_reacquire(py, self.inner.clone());
            let got = self
                .inner
                .core
                .acquire_slow(me, None, &mut PyBlocker::uninterruptible(py));
            drop(guard);
            got.map_err(|e| sync_err(py, e, None))?;
        }
        self.inner.core.restore(state);
        // Held again, at its old depth: an error from here on leaves it held, so the caller's
        // `with` block releases exactly what it owns.
        after_acquire(py, me, self.inner.as_ref(), &self.inner.site)
    }

    pub fn is_owned(&self) -> bool {
        self.inner.core.is_owned_by(thread::current())
    }

    pub fn resource(&self) -> Arc<dyn Resource> {
        self.inner.clone()
    }
}

#[pymethods]
impl RLock {
    #[new]
    #[pyo3(signature = (*, name=None))]
    fn new(name: Option<String>) -> Self {
        Self {
            inner: tracked(core::RLock::new(name)),
        }
    }

    /// Acquire the lock; a thread that owns it may acquire it again.
    #[pyo3(signature = (blocking=None, timeout=-1.0))]
    fn acquire(&self, py: Python<'_>, blocking: Option<&Bound<'_, PyAny>>, timeout: f64) -> PyResult<bool> {
        self.acquire_impl(py, truthy(blocking, true)?, timeout)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire_impl(py, true, -1.0)
    }

    /// Release one level; only the owner may release.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.release_impl(py)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release_impl(py)
    }

    /// Whether some thread holds the lock.
    fn locked(&self) -> bool {
        self.inner.core.locked()
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.inner.core.name()
    }

    fn _is_owned(&self) -> bool {
        self.is_owned()
    }

    fn _recursion_count(&self) -> u64 {
        self.inner.core.recursion_count(thread::current())
    }

    fn _release_save(&self, py: Python<'_>) -> PyResult<(u64, u64)> {
        let s = self.release_save_impl(py)?;
        Ok((s.count, s.owner))
    }

    fn _acquire_restore(&self, py: Python<'_>, state: (u64, u64)) -> PyResult<()> {
        self.acquire_restore_impl(
            py,
            RLockState {
                count: state.0,
                owner: state.1,
            },
        )
    }

    fn _at_fork_reinit(&self) {
        self.inner.core.reset_after_fork();
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let me = slf.get();
        let core = &me.inner.core;
        let state = if core.locked() { "locked" } else { "unlocked" };
        let owner = core.owner();
        let count = if owner == 0 { 0 } else { core.recursion_count(owner) };
        Ok(format!(
            "<{state} {} object {}owner={owner} count={count} at {:#x}>",
            class_path(slf.as_any())?,
            name_suffix(core.name()),
            addr(slf.as_any())
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Condition

enum CondLock {
    Lock(Py<Lock>),
    RLock(Py<RLock>),
    /// Any object with `acquire`/`release` (e.g. a `threading.Lock`), used through Python calls.
    Foreign,
}

/// What `release_save` handed out, for `acquire_restore`.
enum Saved {
    Lock,
    RLock(RLockState),
    Foreign(Py<PyAny>),
}

/// A condition variable, like `threading.Condition`; the lock may be any lock object.
#[pyclass(module = "plait.threads", frozen, weakref, subclass)]
pub struct Condition {
    lock: Py<PyAny>,
    kind: CondLock,
    waiters: core::WaitQueue,
    /// Stands for this condition in `dump()` while threads wait on it.
    marker: Arc<dyn Resource>,
}

struct ConditionMarker {
    id: u64,
    name: Option<String>,
}

impl Resource for ConditionMarker {
    fn id(&self) -> u64 {
        self.id
    }
    fn kind(&self) -> &'static str {
        "Condition"
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn holders(&self, _out: &mut Vec<ThreadId>) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Condition {
    pub fn with_lock(py: Python<'_>, lock: Option<Bound<'_, PyAny>>, name: Option<String>) -> PyResult<Self> {
        let lock = match lock {
            Some(l) if !l.is_none() => l,
            _ => Bound::new(py, RLock::new(None))?.into_any(),
        };
        let kind = if let Ok(l) = lock.cast::<Lock>() {
            CondLock::Lock(l.clone().unbind())
        } else if let Ok(l) = lock.cast::<RLock>() {
            CondLock::RLock(l.clone().unbind())
        } else {
            CondLock::Foreign
        };
        Ok(Self {
            lock: lock.unbind(),
            kind,
            waiters: core::WaitQueue::new(),
            marker: Arc::new(ConditionMarker {
                id: deadlock::next_id(),
                name,
            }),
        })
    }

    fn is_owned(&self, py: Python<'_>) -> PyResult<bool> {
        match &self.kind {
            CondLock::Lock(l) => Ok(l.get().is_locked()),
            CondLock::RLock(l) => Ok(l.get().is_owned()),
            CondLock::Foreign => {
                let lock = self.lock.bind(py);
                if let Ok(f) = lock.getattr("_is_owned") {
                    return f.call0()?.is_truthy();
                }
                if lock.call_method1("acquire", (false,))?.is_truthy()? {
                    lock.call_method0("release")?;
                    Ok(false)
                } else {
                    Ok(true)
                }
            }
        }
    }

    fn release_save(&self, py: Python<'_>) -> PyResult<Saved> {
        match &self.kind {
            CondLock::Lock(l) => l.get().release_impl(py).map(|()| Saved::Lock),
            CondLock::RLock(l) => l.get().release_save_impl(py).map(Saved::RLock),
            CondLock::Foreign => {
                let lock = self.lock.bind(py);
                if let Ok(f) = lock.getattr("_release_save") {
                    return Ok(Saved::Foreign(f.call0()?.unbind()));
                }
                lock.call_method0("release")?;
                Ok(Saved::Foreign(py.None()))
            }
        }
    }

    fn acquire_restore(&self, py: Python<'_>, saved: Saved) -> PyResult<()> {
        match (&self.kind, saved) {
            (CondLock::Lock(l), _) => {
                let l = l.get();
                let me = thread::current();
                if !l.inner.core.try_acquire(me) {
                    let guard = before_wait_reacquire(py, l.inner.clone());
                    let mut blocker = PyBlocker::uninterruptible(py);
                    let got = l.inner.core.acquire_slow(me, None, &mut blocker);
                    drop(guard);
                    got.map_err(|e| sync_err(py, e, Some(&mut blocker)))?;
                }
                // Held again: an error from here on (a warning raised as error) leaves it held,
                // so `with cond:` releases exactly what it owns.
                after_acquire(py, me, l.inner.as_ref(), &l.inner.site)
            }
            (CondLock::RLock(l), Saved::RLock(state)) => l.get().acquire_restore_impl(py, state),
            (_, Saved::Foreign(state)) => {
                let lock = self.lock.bind(py);
                if let Ok(f) = lock.getattr("_acquire_restore") {
                    f.call1((state,))?;
                } else {
                    lock.call_method0("acquire")?;
                }
                Ok(())
            }
            _ => Err(PyRuntimeError::new_err("condition lock state mismatch")),
        }
    }

    pub fn wait_impl(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if !self.is_owned(py)? {
            return Err(PyRuntimeError::new_err("cannot wait on un-acquired lock"));
        }
        let signal = self.waiters.enqueue();
        let saved = match self.release_save(py) {
            Ok(s) => s,
            Err(e) => {
                self.waiters.cancel(&signal);
                return Err(e);
            }
        };
        let deadline = optional_deadline(timeout);
        let mut blocker = PyBlocker::waiting_on(py, &self.marker, deadline.is_some());
        let result = self.waiters.wait(&signal, deadline, &mut blocker);
        let err = result.is_err().then(|| blocker.take_err());
        drop(blocker);
        self.acquire_restore(py, saved)?;
        match (result, err) {
            (Ok(notified), _) => Ok(notified),
            (Err(_), Some(e)) => Err(e),
            (Err(_), None) => Err(sync_err(py, SyncError::Interrupted, None)),
        }
    }

    pub fn notify_impl(&self, py: Python<'_>, n: usize) -> PyResult<()> {
        if !self.is_owned(py)? {
            return Err(PyRuntimeError::new_err("cannot notify on un-acquired lock"));
        }
        self.waiters.notify(n);
        Ok(())
    }

    pub fn acquire_impl(&self, py: Python<'_>) -> PyResult<bool> {
        match &self.kind {
            CondLock::Lock(l) => l.get().acquire_impl(py, true, -1.0),
            CondLock::RLock(l) => l.get().acquire_impl(py, true, -1.0),
            CondLock::Foreign => self.lock.bind(py).call_method0("acquire")?.is_truthy(),
        }
    }

    pub fn release_impl(&self, py: Python<'_>) -> PyResult<()> {
        match &self.kind {
            CondLock::Lock(l) => l.get().release_impl(py),
            CondLock::RLock(l) => l.get().release_impl(py),
            CondLock::Foreign => self.lock.bind(py).call_method0("release").map(drop),
        }
    }
}

#[pymethods]
impl Condition {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.lock)?;
        match &self.kind {
            CondLock::Lock(l) => visit.call(l),
            CondLock::RLock(l) => visit.call(l),
            CondLock::Foreign => Ok(()),
        }
    }

    #[new]
    #[pyo3(signature = (lock=None, *, name=None))]
    fn new(py: Python<'_>, lock: Option<Bound<'_, PyAny>>, name: Option<String>) -> PyResult<Self> {
        Self::with_lock(py, lock, name)
    }

    /// Acquire the underlying lock (same arguments as its `acquire`).
    #[pyo3(signature = (*args, **kwargs))]
    fn acquire(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        if args.is_empty() && kwargs.is_none() {
            return self
                .acquire_impl(py)
                .map(|b| b.into_pyobject(py).unwrap().to_owned().into_any().unbind());
        }
        Ok(self.lock.bind(py).call_method("acquire", args, kwargs)?.unbind())
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire_impl(py)
    }

    /// Release the underlying lock.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.release_impl(py)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release_impl(py)
    }

    /// Wait until notified or until the timeout; returns False on timeout.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        self.wait_impl(py, timeout)
    }

    /// Wait until `predicate()` is true or the timeout passes; returns the last predicate value.
    #[pyo3(signature = (predicate, timeout=None))]
    fn wait_for(&self, py: Python<'_>, predicate: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let mut end: Option<std::time::Instant> = None;
        let mut waittime = timeout;
        let mut result = predicate.call0()?;
        while !result.is_truthy()? {
            if let Some(total) = timeout {
                match end {
                    None => {
                        end = Some(crate::blocking::deadline_after(total).unwrap_or_else(crate::blocking::far_future));
                    }
                    Some(e) => {
                        waittime = Some(e.saturating_duration_since(std::time::Instant::now()).as_secs_f64());
                        if waittime.is_some_and(|w| w <= 0.0) {
                            break;
                        }
                    }
                }
            }
            self.wait_impl(py, waittime)?;
            result = predicate.call0()?;
        }
        Ok(result.unbind())
    }

    /// Wake up to `n` waiting threads.
    #[pyo3(signature = (n=1))]
    fn notify(&self, py: Python<'_>, n: isize) -> PyResult<()> {
        self.notify_impl(py, n.max(0) as usize)
    }

    /// Wake every waiting thread.
    fn notify_all(&self, py: Python<'_>) -> PyResult<()> {
        self.notify_impl(py, usize::MAX)
    }

    #[pyo3(name = "notifyAll")]
    fn notify_all_alias(&self, py: Python<'_>) -> PyResult<()> {
        self.notify_impl(py, usize::MAX)
    }

    fn _is_owned(&self, py: Python<'_>) -> PyResult<bool> {
        self.is_owned(py)
    }

    fn _at_fork_reinit(&self, py: Python<'_>) -> PyResult<()> {
        self.lock.bind(py).call_method0("_at_fork_reinit")?;
        self.waiters.notify_all();
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "<Condition({}, {})>",
            self.lock.bind(py).repr()?,
            self.waiters.len()
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Semaphore

/// A counting semaphore, like `threading.Semaphore`, with deadlock detection.
#[pyclass(module = "plait.threads", frozen, weakref, subclass)]
pub struct Semaphore {
    inner: Arc<Tracked<core::Semaphore>>,
}

impl Drop for Semaphore {
    fn drop(&mut self) {
        deadlock::unregister(self.inner.core.id());
    }
}

impl Semaphore {
    fn create(value: i64, bounded: bool, name: Option<String>) -> PyResult<Self> {
        if value < 0 {
            return Err(PyValueError::new_err("semaphore initial value must be >= 0"));
        }
        Ok(Self {
            inner: tracked(core::Semaphore::new(value as u64, bounded, name)),
        })
    }

    fn acquire_impl(&self, py: Python<'_>, blocking: bool, timeout: Option<f64>) -> PyResult<bool> {
        if !blocking && timeout.is_some() {
            return Err(PyValueError::new_err("can't specify timeout for non-blocking acquire"));
        }
        let me = thread::current();
        if self.inner.core.try_acquire(me) {
            self.acquired(py, me)?;
            return Ok(true);
        }
        if !blocking || timeout.is_some_and(|t| t <= 0.0) {
            return Ok(false);
        }
        let deadline = optional_deadline(timeout);
        let guard = before_wait(py, self.inner.clone(), deadline.is_some())?;
        let mut blocker = PyBlocker::new(py);
        let got = self.inner.core.acquire_slow(me, deadline, &mut blocker);
        drop(guard);
        let got = got.map_err(|e| sync_err(py, e, Some(&mut blocker)))?;
        if got {
            self.acquired(py, me)?;
        }
        Ok(got)
    }

    fn acquired(&self, py: Python<'_>, me: ThreadId) -> PyResult<()> {
        self.inner.acquired(py, me, |sem| {
            let _ = sem.release(me, 1);
        })
    }

    fn release_impl(&self, py: Python<'_>, n: i64) -> PyResult<()> {
        if n < 1 {
            return Err(PyValueError::new_err("n must be one or more"));
        }
        let me = thread::current();
        self.inner
            .core
            .release(me, n as u64)
            .map_err(|e| sync_err(py, e, None))?;
        after_release(me, self.inner.as_ref());
        Ok(())
    }
}

#[pymethods]
impl Semaphore {
    #[new]
    #[pyo3(signature = (value=1, *, name=None))]
    fn new(value: i64, name: Option<String>) -> PyResult<Self> {
        Self::create(value, false, name)
    }

    /// Take one permit, waiting (up to `timeout`) while none is free.
    #[pyo3(signature = (blocking=None, timeout=None))]
    fn acquire(&self, py: Python<'_>, blocking: Option<&Bound<'_, PyAny>>, timeout: Option<f64>) -> PyResult<bool> {
        self.acquire_impl(py, truthy(blocking, true)?, timeout)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire_impl(py, true, None)
    }

    /// Return `n` permits, waking as many waiters.
    #[pyo3(signature = (n=1))]
    fn release(&self, py: Python<'_>, n: i64) -> PyResult<()> {
        self.release_impl(py, n)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release_impl(py, 1)
    }

    /// Permits currently free.
    #[getter]
    fn _value(&self) -> u64 {
        self.inner.core.value()
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.inner.core.name()
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let core = &slf.get().inner.core;
        let value = match core.bound() {
            Some(b) => format!("{}/{b}", core.value()),
            None => core.value().to_string(),
        };
        Ok(format!(
            "<{} at {:#x}: value={value}>",
            class_path(slf.as_any())?,
            addr(slf.as_any())
        ))
    }
}

/// A semaphore that refuses to be released above its initial value.
#[pyclass(module = "plait.threads", extends = Semaphore, frozen, subclass)]
pub struct BoundedSemaphore;

#[pymethods]
impl BoundedSemaphore {
    #[new]
    #[pyo3(signature = (value=1, *, name=None))]
    fn new(value: i64, name: Option<String>) -> PyResult<PyClassInitializer<Self>> {
        Ok(PyClassInitializer::from(Semaphore::create(value, true, name)?).add_subclass(Self))
    }
}

// ---------------------------------------------------------------------------------------------
// Event

/// An event flag, like `threading.Event`.
#[pyclass(module = "plait.threads", frozen, weakref, subclass)]
pub struct Event {
    core: core::Event,
    marker: Arc<dyn Resource>,
}

#[pymethods]
impl Event {
    #[new]
    #[pyo3(signature = (*, name=None))]
    fn new(name: Option<String>) -> Self {
        Self {
            core: core::Event::new(),
            marker: Arc::new(ConditionMarker {
                id: deadlock::next_id(),
                name,
            }),
        }
    }

    /// Whether the flag is set.
    fn is_set(&self) -> bool {
        self.core.is_set()
    }

    #[pyo3(name = "isSet")]
    fn is_set_alias(&self) -> bool {
        self.core.is_set()
    }

    /// Set the flag and wake every waiter.
    fn set(&self) {
        self.core.set();
    }

    /// Clear the flag.
    fn clear(&self) {
        self.core.clear();
    }

    /// Wait until the flag is set or the timeout passes; returns the flag.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.core.is_set() {
            return Ok(true);
        }
        if timeout.is_some_and(|t| t <= 0.0) {
            return Ok(false);
        }
        let mut blocker = PyBlocker::waiting_on(py, &self.marker, timeout.is_some());
        self.core
            .wait(optional_deadline(timeout), &mut blocker)
            .map_err(|_| blocker.take_err())
    }

    fn _at_fork_reinit(&self) {
        self.core.reset_after_fork();
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let state = if slf.get().core.is_set() { "set" } else { "unset" };
        Ok(format!(
            "<{} at {:#x}: {state}>",
            class_path(slf.as_any())?,
            addr(slf.as_any())
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Barrier

/// A barrier for a fixed number of threads, like `threading.Barrier`.
#[pyclass(module = "plait.threads", frozen, weakref, subclass)]
pub struct Barrier {
    core: core::Barrier,
    action: Option<Py<PyAny>>,
    timeout: Option<f64>,
    marker: Arc<dyn Resource>,
}

#[pymethods]
impl Barrier {
    /// The action is often a bound method of an object that holds the barrier: a cycle.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(self.action.as_ref())
    }

    #[new]
    #[pyo3(signature = (parties, action=None, timeout=None, *, name=None))]
    fn new(parties: i64, action: Option<Py<PyAny>>, timeout: Option<f64>, name: Option<String>) -> PyResult<Self> {
        if parties < 1 {
            return Err(PyValueError::new_err("parties must be >= 1"));
        }
        let action = action.filter(|a| Python::attach(|py| !a.is_none(py)));
        Ok(Self {
            core: core::Barrier::new(parties as usize, action.is_some()),
            action,
            timeout,
            marker: Arc::new(ConditionMarker {
                id: deadlock::next_id(),
                name,
            }),
        })
    }

    /// Wait for all parties; returns this thread's arrival index (0 to parties-1).
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<usize> {
        let timeout = timeout.or(self.timeout);
        let deadline = optional_deadline(timeout);
        let mut blocker = PyBlocker::waiting_on(py, &self.marker, deadline.is_some());
        match self.core.arrive(deadline, &mut blocker) {
            Ok(Arrival::Passed(i)) => Ok(i),
            Ok(Arrival::RunAction(i)) => {
                drop(blocker);
                let outcome = match &self.action {
                    Some(action) => action.bind(py).call0().map(drop),
                    None => Ok(()),
                };
                self.core.finish_action(outcome.is_ok());
                outcome.map(|()| i)
            }
            Err(e) => Err(sync_err(py, e, Some(&mut blocker))),
        }
    }

    /// Return the barrier to its initial state; threads waiting get `BrokenBarrierError`.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        let mut blocker = PyBlocker::new(py);
        self.core
            .reset(&mut blocker)
            .map_err(|e| sync_err(py, e, Some(&mut blocker)))
    }

    /// Break the barrier: current and future waiters get `BrokenBarrierError`.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        let mut blocker = PyBlocker::new(py);
        self.core
            .abort(&mut blocker)
            .map_err(|e| sync_err(py, e, Some(&mut blocker)))
    }

    #[getter]
    fn parties(&self) -> usize {
        self.core.parties()
    }

    #[getter]
    fn n_waiting(&self) -> usize {
        self.core.n_waiting()
    }

    #[getter]
    fn broken(&self) -> bool {
        self.core.broken()
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let core = &slf.get().core;
        let path = class_path(slf.as_any())?;
        let at = addr(slf.as_any());
        if core.broken() {
            return Ok(format!("<{path} at {at:#x}: broken>"));
        }
        Ok(format!(
            "<{path} at {at:#x}: waiters={}/{}>",
            core.n_waiting(),
            core.parties()
        ))
    }
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Lock>()?;
    m.add_class::<RLock>()?;
    m.add_class::<Condition>()?;
    m.add_class::<Semaphore>()?;
    m.add_class::<BoundedSemaphore>()?;
    m.add_class::<Event>()?;
    m.add_class::<Barrier>()?;
    Ok(())
}
