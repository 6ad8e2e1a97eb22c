//! The `threading` primitives and atomics (`plait.threads`), over `plait_core::sync`.
//!
//! Mirrors `plait_core::sync`; the deadlock report glue is in [`report`].

use pyo3::prelude::*;

pub mod atomic;
pub mod lock;
pub mod report;

/// Adds this model's classes and functions to `_plait`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    report::init(m)?;
    lock::init(m)?;
    atomic::init(m)?;
    Ok(())
}
