//! The thread pool (`plait.threads.ThreadPool`) and the native future every pool hands out.
//!
//! Mirrors `plait_core::pool`.

use pyo3::prelude::*;

pub mod future;
pub mod thread_pool;

/// Adds this model's classes and functions to `_plait`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    future::init(m)?;
    thread_pool::init(m)?;
    Ok(())
}
