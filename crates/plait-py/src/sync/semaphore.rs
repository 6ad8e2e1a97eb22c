//! `Semaphore` and `BoundedSemaphore`, like `threading`'s, with deadlock detection.

use std::sync::Arc;

use plait_core::sync as core;
use plait_core::sync::deadlock::{self, Resource};
use plait_core::thread::{self, ThreadId};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::blocking::{optional_deadline, truthy, PyBlocker};
use crate::errors::sync_err;
use crate::sync::report::{after_release, before_wait};
use crate::sync::tracked::{tracked, Tracked};
use crate::sync::{addr, class_path};

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
