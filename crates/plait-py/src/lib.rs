//! `plait._plait`: the thin `PyO3` binding over `plait-core`.
//!
//! One folder per model, mirroring `plait-core` (`sync/`, `queue/`, `pool/`, `processes/`,
//! `ipc/`, `aio/`, `green/`, `debug/`), each with an `init` that adds its classes and functions to the module; `errors.rs` is
//! the one place where core errors become Python exceptions, `blocking.rs` the shared blocking
//! wait. The public API lives in the `plait` Python package; this module is private.

use pyo3::prelude::*;

mod aio;
mod blocking;
mod debug;
mod errors;
mod green;
mod ipc;
mod pool;
mod processes;
mod queue;
mod scaling;
mod sync;

/// The extension module. Declared free-threading safe: every shared object is `frozen` with
/// atomics or locks inside, and every blocking wait detaches from the interpreter.
#[pymodule(gil_used = false)]
fn _plait(m: &Bound<'_, PyModule>) -> PyResult<()> {
    blocking::init(m)?;
    errors::init(m)?;
    aio::init(m)?;
    sync::init(m)?;
    queue::init(m)?;
    pool::init(m)?;
    processes::init(m)?;
    ipc::init(m)?;
    green::init(m)?;
    debug::init(m)?;
    scaling::init(m)?;
    Ok(())
}
