//! The native halves of `plait.processes`' pool: the dispatcher binding ([`pool`], over
//! `plait_core::supervise`) and the worker's end of the wire ([`worker`]). The process-shared
//! objects are in `crate::ipc`.

use pyo3::prelude::*;

pub mod pool;
pub mod worker;

/// Adds this model's classes and functions to `_plait`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(worker::pack_numbers, m)?)?;
    m.add_function(wrap_pyfunction!(worker::unpack_numbers, m)?)?;
    m.add_class::<worker::FrameChannel>()?;
    pool::init(m)
}
