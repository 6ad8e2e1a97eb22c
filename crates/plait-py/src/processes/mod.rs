//! The native halves of `plait.processes`: the process-pool dispatcher binding.
//!
//! Mirrors `plait_core::supervise`.

use pyo3::prelude::*;

pub mod pool;

/// Adds this model's classes and functions to `_plait`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    pool::init(m)
}
