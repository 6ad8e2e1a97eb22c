//! `AtomicInt` and `AtomicFlag`: lock-free integers and flags, correct without the GIL.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use pyo3::prelude::*;

use crate::errors::atomic_overflow as overflow;

/// A 64-bit signed integer updated atomically (sequentially consistent).
#[pyclass(module = "plait.threads", frozen)]
pub struct AtomicInt {
    value: AtomicI64,
}

impl AtomicInt {
    fn update(&self, f: impl Fn(i64) -> Option<i64>) -> PyResult<i64> {
        self.value
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, f)
            .map_err(|_| overflow())
    }
}

#[pymethods]
impl AtomicInt {
    #[new]
    #[pyo3(signature = (value=0))]
    fn new(value: i64) -> Self {
        Self {
            value: AtomicI64::new(value),
        }
    }

    /// The current value.
    fn load(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }

    /// Set the value.
    fn store(&self, value: i64) {
        self.value.store(value, Ordering::SeqCst);
    }

    /// Add `n` and return the new value.
    #[pyo3(signature = (n=1))]
    fn add(&self, n: i64) -> PyResult<i64> {
        self.update(|v| v.checked_add(n)).map(|old| old + n)
    }

    /// Subtract `n` and return the new value.
    #[pyo3(signature = (n=1))]
    fn sub(&self, n: i64) -> PyResult<i64> {
        self.update(|v| v.checked_sub(n)).map(|old| old - n)
    }

    /// Add `n` and return the previous value.
    #[pyo3(signature = (n=1))]
    fn fetch_add(&self, n: i64) -> PyResult<i64> {
        self.update(|v| v.checked_add(n))
    }

    /// Subtract `n` and return the previous value.
    #[pyo3(signature = (n=1))]
    fn fetch_sub(&self, n: i64) -> PyResult<i64> {
        self.update(|v| v.checked_sub(n))
    }

    /// Set the value and return the previous one.
    fn swap(&self, value: i64) -> i64 {
        self.value.swap(value, Ordering::SeqCst)
    }

    /// If the value equals `expected`, set it to `new`. Returns `(succeeded, previous value)`.
    fn compare_exchange(&self, expected: i64, new: i64) -> (bool, i64) {
        match self
            .value
            .compare_exchange(expected, new, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(prev) => (true, prev),
            Err(actual) => (false, actual),
        }
    }

    /// The current value (property form of `load`).
    #[getter]
    fn value(&self) -> i64 {
        self.load()
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

    fn __iadd__(&self, n: i64) -> PyResult<()> {
        self.update(|v| v.checked_add(n)).map(drop)
    }

    fn __isub__(&self, n: i64) -> PyResult<()> {
        self.update(|v| v.checked_sub(n)).map(drop)
    }

    fn __repr__(&self) -> String {
        format!("AtomicInt({})", self.load())
    }
}

/// A boolean flag updated atomically.
#[pyclass(module = "plait.threads", frozen)]
pub struct AtomicFlag {
    value: AtomicBool,
}

#[pymethods]
impl AtomicFlag {
    #[new]
    #[pyo3(signature = (value=false))]
    fn new(value: bool) -> Self {
        Self {
            value: AtomicBool::new(value),
        }
    }

    /// Whether the flag is set.
    fn is_set(&self) -> bool {
        self.value.load(Ordering::SeqCst)
    }

    /// Set the flag.
    fn set(&self) {
        self.value.store(true, Ordering::SeqCst);
    }

    /// Clear the flag.
    fn clear(&self) {
        self.value.store(false, Ordering::SeqCst);
    }

    /// Set the flag and return whether it was already set.
    fn test_and_set(&self) -> bool {
        self.value.swap(true, Ordering::SeqCst)
    }

    /// Set the flag to `value` and return the previous value.
    fn swap(&self, value: bool) -> bool {
        self.value.swap(value, Ordering::SeqCst)
    }

    /// If the flag equals `expected`, set it to `new`. Returns `(succeeded, previous value)`.
    fn compare_exchange(&self, expected: bool, new: bool) -> (bool, bool) {
        match self
            .value
            .compare_exchange(expected, new, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(prev) => (true, prev),
            Err(actual) => (false, actual),
        }
    }

    fn __bool__(&self) -> bool {
        self.is_set()
    }

    fn __repr__(&self) -> String {
        format!("AtomicFlag({})", if self.is_set() { "True" } else { "False" })
    }
}

pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AtomicInt>()?;
    m.add_class::<AtomicFlag>()?;
    Ok(())
}
