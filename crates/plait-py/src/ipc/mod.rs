//! Cross-process objects in shared memory, pipes and segments, over `plait_core::ipc`: the
//! native halves of `plait.processes.Queue`, `Lock`, `RLock`, `Semaphore`, `Event`, `Condition`,
//! `Barrier` and `AtomicInt`.
//!
//! Each object lives in its own segment (`plait_core::ipc::objects`); the Python classes
//! subclass these to add pickling (a handle that reattaches the segment in a child) and the
//! `multiprocessing` extras. Every blocking wait goes through [`PyBlocker`]: detached from the
//! interpreter, and interruptible by Ctrl-C in the main thread.
//!
//! One file per object (mirroring `plait_core::ipc::objects`); [`wire`] encodes queue and pipe
//! messages; [`pipe`] is `plait.processes.Pipe`'s connection; [`shm`] the `Segment` buffer.
//! Errors map to Python exceptions in `crate::errors`.

#![allow(
    clippy::used_underscore_binding,
    reason = "`_segment` is the private keyword the Python constructors reattach with"
)]

use std::time::Instant;

use plait_core::ipc::objects::{IpcError, Layout, Shared};
use pyo3::prelude::*;

use crate::blocking::optional_deadline;
use crate::errors::ipc_err;
use shm::Segment;

pub mod atomic;
pub mod barrier;
pub mod condition;
pub mod event;
pub mod lock;
pub mod pipe;
pub mod queue;
pub mod semaphore;
pub mod shm;
pub mod wire;

/// The object in `segment`, or a new one made by `create`.
pub(crate) fn open<T: Layout>(
    py: Python<'_>,
    segment: Option<Py<Segment>>,
    create: impl FnOnce() -> Result<Shared<T>, IpcError>,
) -> PyResult<(Shared<T>, Py<Segment>)> {
    if let Some(seg) = segment {
        let obj = Shared::<T>::attach(seg.get().shared()).map_err(|e| ipc_err(py, e, None))?;
        return Ok((obj, seg));
    }
    let obj = create().map_err(|e| ipc_err(py, e, None))?;
    let seg = Py::new(py, Segment::from_shared(std::sync::Arc::clone(obj.segment())))?;
    Ok((obj, seg))
}

/// `(block, timeout)` of `multiprocessing` to "wait?" and a deadline (None = forever).
pub(crate) fn deadline(block: bool, timeout: Option<f64>) -> (bool, Option<Instant>) {
    if block {
        (true, optional_deadline(timeout))
    } else {
        (false, None)
    }
}

/// Adds this model's classes and functions to `_plait`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    shm::init(m)?;
    m.add_class::<lock::IpcLock>()?;
    m.add_class::<lock::IpcRLock>()?;
    m.add_class::<semaphore::IpcSemaphore>()?;
    m.add_class::<event::IpcEvent>()?;
    m.add_class::<condition::IpcCondition>()?;
    m.add_class::<barrier::IpcBarrier>()?;
    m.add_class::<atomic::IpcAtomicInt>()?;
    m.add_class::<queue::IpcQueue>()?;
    pipe::init(m)?;
    Ok(())
}
