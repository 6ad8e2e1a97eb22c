//! The native halves of `plait.processes`' pool: the dispatcher binding ([`pool`], over
//! `plait_core::supervise`), the worker's end of the wire ([`worker`]) and the per-item paths
//! of a map ([`numbers`]). The process-shared objects are in `crate::ipc`.

use pyo3::prelude::*;

pub mod numbers;
pub mod pool;
pub mod worker;

/// Adds this model's classes and functions to `_plait`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(numbers::pack_numbers, m)?)?;
    m.add_function(wrap_pyfunction!(numbers::unpack_numbers, m)?)?;
    m.add_class::<numbers::Flatten>()?;
    m.add_class::<worker::FrameChannel>()?;
    pool::init(m)
}
