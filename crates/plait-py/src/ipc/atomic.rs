//! `IpcAtomicInt`: a 64-bit integer in shared memory with lock-free atomic operations.

use std::sync::atomic::Ordering;

use plait_core::ipc::objects::{self as core, Shared};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::errors::{self};
use crate::ipc::open;
use crate::ipc::shm::Segment;

// --- AtomicInt ------------------------------------------------------------------------------

/// A 64-bit integer in shared memory with lock-free atomic operations.
#[pyclass(module = "plait.processes", frozen, subclass, weakref)]
pub struct IpcAtomicInt {
    int: Shared<core::AtomicInt>,
    seg: Py<Segment>,
}

impl IpcAtomicInt {
    fn update(&self, f: impl Fn(i64) -> Option<i64>) -> PyResult<i64> {
        self.int
            .value
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, f)
            .map_err(|_| errors::atomic_overflow())
    }
}

/// The right operand of `+=`/`-=` as an `i64`. A `TypeError` as Python gives for an operator
/// that does not apply (what `plait.threads.AtomicInt` raises): a Python subclass would otherwise
/// get `NotImplemented` back as the result of the statement.
fn operand(slf: &Bound<'_, IpcAtomicInt>, n: &Bound<'_, PyAny>, op: &str) -> PyResult<i64> {
    n.extract::<i64>().map_err(|_| {
        let mine = slf
            .get_type()
            .name()
            .map_or_else(|_| "AtomicInt".into(), |s| s.to_string());
        let theirs = n.get_type().name().map_or_else(|_| "?".into(), |s| s.to_string());
        PyTypeError::new_err(format!("unsupported operand type(s) for {op}: '{mine}' and '{theirs}'"))
    })
}

#[pymethods]
impl IpcAtomicInt {
    #[new]
    #[pyo3(signature = (value=0, *, _segment=None))]
    fn new(py: Python<'_>, value: i64, _segment: Option<Py<Segment>>) -> PyResult<Self> {
        let (int, seg) = open(py, _segment, || {
            Shared::create(0, |a: &core::AtomicInt| a.value.store(value, Ordering::Relaxed))
        })?;
        Ok(Self { int, seg })
    }

    /// The current value.
    fn load(&self) -> i64 {
        self.int.value.load(Ordering::SeqCst)
    }

    /// Set the value.
    fn store(&self, value: i64) {
        self.int.value.store(value, Ordering::SeqCst);
    }

    /// The value (read/write property, like `multiprocessing.Value.value`).
    #[getter]
    fn get_value(&self) -> i64 {
        self.load()
    }

    #[setter]
    fn set_value(&self, value: i64) {
        self.store(value);
    }

    /// Add `n`; return the previous value.
    #[pyo3(signature = (n=1))]
    fn fetch_add(&self, n: i64) -> PyResult<i64> {
        self.update(|v| v.checked_add(n))
    }

    /// Subtract `n`; return the previous value.
    #[pyo3(signature = (n=1))]
    fn fetch_sub(&self, n: i64) -> PyResult<i64> {
        self.update(|v| v.checked_sub(n))
    }

    /// Add `n`; return the new value.
    #[pyo3(signature = (n=1))]
    fn add(&self, n: i64) -> PyResult<i64> {
        self.update(|v| v.checked_add(n)).map(|old| old + n)
    }

    /// Subtract `n`; return the new value.
    #[pyo3(signature = (n=1))]
    fn sub(&self, n: i64) -> PyResult<i64> {
        self.update(|v| v.checked_sub(n)).map(|old| old - n)
    }

    /// Set the value; return the previous one.
    fn swap(&self, value: i64) -> i64 {
        self.int.value.swap(value, Ordering::SeqCst)
    }

    /// If the value equals `expected`, set it to `new`. Returns `(succeeded, previous value)`.
    fn compare_exchange(&self, expected: i64, new: i64) -> (bool, i64) {
        match self
            .int
            .value
            .compare_exchange(expected, new, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(v) => (true, v),
            Err(v) => (false, v),
        }
    }

    fn __int__(&self) -> i64 {
        self.load()
    }

    fn __index__(&self) -> i64 {
        self.load()
    }

    fn __bool__(&self) -> bool {
        self.load() != 0
    }

    fn __iadd__(slf: &Bound<'_, Self>, n: &Bound<'_, PyAny>) -> PyResult<()> {
        let n = operand(slf, n, "+=")?;
        slf.get().update(|v| v.checked_add(n)).map(drop)
    }

    fn __isub__(slf: &Bound<'_, Self>, n: &Bound<'_, PyAny>) -> PyResult<()> {
        let n = operand(slf, n, "-=")?;
        slf.get().update(|v| v.checked_sub(n)).map(drop)
    }

    #[getter]
    fn _segment(&self, py: Python<'_>) -> Py<Segment> {
        self.seg.clone_ref(py)
    }
}
