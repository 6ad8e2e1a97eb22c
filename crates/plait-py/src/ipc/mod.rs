//! Cross-process objects, pipes and shared-memory segments (`plait.processes`).
//!
//! Mirrors `plait_core::ipc`.

use pyo3::prelude::*;

pub mod pipe;
pub mod queue;
pub mod shm;

/// Adds this model's classes and functions to `_plait`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    shm::init(m)?;
    queue::init(m)?;
    pipe::init(m)?;
    Ok(())
}
