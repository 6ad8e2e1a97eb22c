//! `Tracked`: a core primitive plus the site where it was last acquired, the unit the deadlock
//! graph and registry see. Its acquire bookkeeping (`Tracked::acquired`) is in `report.rs`, which
//! builds on this file (never the reverse).

use std::any::Any;
use std::sync::Arc;

use parking_lot::Mutex;
use plait_core::sync as core;
use plait_core::sync::deadlock::{self, Resource};
use plait_core::thread::ThreadId;
use pyo3::ffi;
use pyo3::prelude::*;

use super::sites;

unsafe extern "C" {
    fn PyFrame_GetLasti(frame: *mut ffi::PyFrameObject) -> std::os::raw::c_int;
}

/// Where a lock was last acquired: the code object and instruction index of the caller's frame.
/// The line number is computed only when a report needs it.
#[derive(Default)]
pub struct SiteCell(Mutex<Option<(Py<PyAny>, i32)>>);

impl SiteCell {
    /// Records the calling Python frame (no-op when there is none, e.g. a call from C).
    #[inline]
    pub fn record(&self, py: Python<'_>) {
        // Safety: called with the thread attached; PyEval_GetFrame returns a borrowed frame (or
        // NULL), PyFrame_GetCode a new reference that `from_owned_ptr` takes over.
        let site = unsafe {
            let frame = ffi::PyEval_GetFrame();
            if frame.is_null() {
                return;
            }
            let code = ffi::PyFrame_GetCode(frame);
            let lasti = PyFrame_GetLasti(frame);
            (Bound::from_owned_ptr(py, code.cast::<ffi::PyObject>()), lasti)
        };
        if sites::enabled() {
            sites::note(&site.0);
        }
        let site = (site.0.unbind(), site.1);
        let old = self.0.lock().replace(site);
        drop(old);
    }

    /// The recorded site's code object address and offset, read without the interpreter (for
    /// [`sites::describe`]).
    pub fn raw(&self) -> Option<(usize, i32)> {
        self.0
            .lock()
            .as_ref()
            .map(|(code, lasti)| (code.as_ptr() as usize, *lasti))
    }

    /// The recorded site as `(code, lasti)`, or `(None, -1)`.
    pub fn get(&self, py: Python<'_>) -> (Py<PyAny>, i32) {
        match &*self.0.lock() {
            Some((code, lasti)) => (code.clone_ref(py), *lasti),
            None => (py.None(), -1),
        }
    }
}

/// A core primitive plus its acquisition site; the unit the deadlock graph sees.
pub struct Tracked<T> {
    pub(crate) core: T,
    pub(crate) site: SiteCell,
}

impl<T: Resource> Resource for Tracked<T> {
    fn id(&self) -> u64 {
        self.core.id()
    }
    fn kind(&self) -> &'static str {
        self.core.kind()
    }
    fn name(&self) -> Option<&str> {
        self.core.name()
    }
    fn holders(&self, out: &mut Vec<ThreadId>) {
        self.core.holders(out);
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn self_wait_suspect(&self) -> bool {
        self.core.self_wait_suspect()
    }
}

pub fn tracked<T: Resource>(core: T) -> Arc<Tracked<T>> {
    let arc = Arc::new(Tracked {
        core,
        site: SiteCell::default(),
    });
    let dynamic: Arc<dyn Resource> = arc.clone();
    deadlock::register(&dynamic);
    arc
}

/// The acquisition site of a resource created here, if it has one.
pub fn site_of(res: &dyn Resource) -> Option<&SiteCell> {
    let any = res.as_any();
    if let Some(t) = any.downcast_ref::<Tracked<core::Lock>>() {
        return Some(&t.site);
    }
    if let Some(t) = any.downcast_ref::<Tracked<core::RLock>>() {
        return Some(&t.site);
    }
    any.downcast_ref::<Tracked<core::Semaphore>>().map(|t| &t.site)
}
