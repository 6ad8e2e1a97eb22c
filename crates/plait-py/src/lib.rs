//! `plait._plait`: the thin `PyO3` binding over `plait-core`.
//!
//! One file per area, each with an `init` that adds its classes and functions to the module. The
//! public API lives in the `plait` Python package; this module is private.

use pyo3::prelude::*;

mod aio;
mod atomic;
mod blocking;
mod errors;
mod future;
mod ipc;
mod pipe;
mod pool;
mod processes;
mod queue;
mod report;
mod shm;
mod sync;

/// The extension module. Declared free-threading safe: every shared object is `frozen` with
/// atomics or locks inside, and every blocking wait detaches from the interpreter.
#[pymodule(gil_used = false)]
fn _plait(m: &Bound<'_, PyModule>) -> PyResult<()> {
    blocking::init(m)?;
    aio::init(m)?;
    report::init(m)?;
    sync::init(m)?;
    atomic::init(m)?;
    queue::init(m)?;
    future::init(m)?;
    pool::init(m)?;
    processes::init(m)?;
    shm::init(m)?;
    ipc::init(m)?;
    pipe::init(m)?;
    Ok(())
}
