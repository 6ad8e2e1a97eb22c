//! The `threading` primitives and atomics of `plait.threads`, over `plait_core::sync`: `Lock`,
//! `RLock`, `Condition`, `Semaphore`, `BoundedSemaphore`, `Event`, `Barrier`, `AtomicInt`,
//! `AtomicFlag`, with deadlock detection on every blocking wait.
//!
//! Each lock-like class holds its core object in an `Arc<Tracked<_>>` ([`tracked`]) shared with
//! the deadlock graph and registry; [`report`] turns what the graph finds into Python reports.
//! Imports run one way: the classes use `report` and `tracked`, `report` uses `tracked`.

use pyo3::prelude::*;

pub mod atomic;
pub mod barrier;
pub mod condition;
pub mod event;
pub mod fast;
pub mod lock;
pub mod report;
pub mod semaphore;
pub mod sites;
pub mod tracked;

/// `threading`'s repr style: `module.Class` with the module's last component, as `CPython`'s
/// tests expect one word before the class name.
pub(crate) fn class_path(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let cls = obj.get_type();
    let module: String = cls.getattr("__module__")?.extract()?;
    let short = module.rsplit('.').next().unwrap_or(&module).to_owned();
    Ok(format!("{short}.{}", cls.qualname()?))
}

pub(crate) fn addr(obj: &Bound<'_, PyAny>) -> usize {
    obj.as_ptr() as usize
}

pub(crate) fn name_suffix(name: Option<&str>) -> String {
    name.map(|n| format!("name='{n}' ")).unwrap_or_default()
}

/// Adds this model's classes and functions to `_plait`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    report::init(m)?;
    m.add_class::<lock::Lock>()?;
    fast::install(m.py())?;
    m.add_class::<lock::RLock>()?;
    m.add_class::<condition::Condition>()?;
    m.add_class::<semaphore::Semaphore>()?;
    m.add_class::<semaphore::BoundedSemaphore>()?;
    m.add_class::<event::Event>()?;
    m.add_class::<barrier::Barrier>()?;
    atomic::init(m)?;
    Ok(())
}
