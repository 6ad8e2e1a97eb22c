//! `Tracked`: a core primitive plus the site where it was last acquired, the unit the deadlock
//! graph and registry see. Its acquire bookkeeping (`Tracked::acquired`) is in `report.rs`, which
//! builds on this file (never the reverse).

use std::any::Any;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
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
///
/// Acquiring again from the code object already recorded (the common case: a lock taken in a
/// loop, or always from the same function) stores only the instruction index, one relaxed store:
/// no lock, and no write to anything another thread reads often. Only a new code object takes the
/// mutex and swaps the kept reference.
#[derive(Default)]
pub struct SiteCell {
    /// Address of the code object `keep` holds (0: none yet).
    code: AtomicUsize,
    lasti: AtomicI32,
    keep: Mutex<Option<Py<PyAny>>>,
}

impl SiteCell {
    /// Records the calling Python frame (no-op when there is none, e.g. a call from C).
    ///
    /// The site is written by the thread that just acquired, so two records race only for a
    /// primitive with several holders at once (a `Semaphore`, or a `Lock` released by another
    /// thread): then a report may pair one holder's code object with another's instruction
    /// index: a wrong line in that report, never a crash (an offset outside the code object names
    /// its first line).
    #[inline]
    pub fn record(&self, py: Python<'_>) {
        // Safety: called with the thread attached; PyEval_GetFrame returns a borrowed frame (or
        // NULL), PyFrame_GetCode a new reference that `from_owned_ptr` takes over.
        let (code, lasti) = unsafe {
            let frame = ffi::PyEval_GetFrame();
            if frame.is_null() {
                return;
            }
            let code = ffi::PyFrame_GetCode(frame);
            let lasti = PyFrame_GetLasti(frame);
            (Bound::from_owned_ptr(py, code.cast::<ffi::PyObject>()), lasti)
        };
        if sites::enabled() {
            sites::note(&code);
        }
        let addr = code.as_ptr() as usize;
        if self.code.load(Ordering::Acquire) == addr {
            self.lasti.store(lasti, Ordering::Relaxed);
            return;
        }
        let mut keep = self.keep.lock();
        let old = keep.replace(code.unbind());
        self.lasti.store(lasti, Ordering::Relaxed);
        self.code.store(addr, Ordering::Release);
        drop(keep);
        drop(old);
    }

    /// The recorded site's code object address and offset, read without the interpreter (for
    /// [`sites::describe`]).
    pub fn raw(&self) -> Option<(usize, i32)> {
        let keep = self.keep.lock();
        keep.as_ref()
            .map(|code| (code.as_ptr() as usize, self.lasti.load(Ordering::Relaxed)))
    }

    /// The recorded site as `(code, lasti)`, or `(None, -1)`.
    pub fn get(&self, py: Python<'_>) -> (Py<PyAny>, i32) {
        match &*self.keep.lock() {
            Some(code) => (code.clone_ref(py), self.lasti.load(Ordering::Relaxed)),
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
