//! `Tracked`: a core primitive plus the site where it was last acquired, the unit the deadlock
//! graph and registry see. Its acquire bookkeeping (`Tracked::acquired`) is in `report.rs`, which
//! builds on this file (never the reverse).

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
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

/// Whether [`borrowed_code`] agreed with `PyFrame_GetCode` every time they were compared (each
/// record of a new site compares them); cleared for good at the first disagreement.
static LAYOUT_OK: AtomicBool = AtomicBool::new(true);

/// The code object `frame` runs, borrowed, read from the frame's interpreter record with the
/// layout of `CPython` 3.11 to 3.13: `PyFrameObject` starts with its object header, `f_back` and
/// `f_frame`; the `_PyInterpreterFrame` it points to holds the code object first (3.12:
/// `f_code`; 3.13: `f_executable`) or fifth (3.11: after `f_func`, `f_globals`, `f_builtins`,
/// `f_locals`). `None` on other versions and once a comparison failed.
///
/// `PyFrame_GetCode` returns a new reference: on a free-threaded build that is an atomic
/// increment and decrement of the code object's shared count, a cache line that every thread
/// running the same function writes, on every acquire. This read writes nothing.
///
/// # Safety
/// `frame` is a live frame of the calling thread (as `PyEval_GetFrame` returns it).
#[inline]
unsafe fn borrowed_code(frame: *mut ffi::PyFrameObject) -> Option<*mut ffi::PyObject> {
    #[cfg(all(Py_3_11, not(Py_3_14)))]
    {
        #[repr(C)]
        struct FrameObject {
            head: ffi::PyObject,
            back: *mut ffi::PyObject,
            data: *const *mut ffi::PyObject,
        }
        if !LAYOUT_OK.load(Ordering::Relaxed) {
            return None;
        }
        // Safety: by the layout above, for the versions this is compiled for.
        let data = unsafe { (*frame.cast::<FrameObject>()).data };
        #[cfg(Py_3_12)]
        let slot = 0;
        #[cfg(not(Py_3_12))]
        let slot = 4;
        // Safety: as above.
        Some(unsafe { *data.add(slot) })
    }
    #[cfg(not(all(Py_3_11, not(Py_3_14))))]
    {
        let _ = frame;
        None
    }
}

/// What [`SiteCell::peek`] found.
pub enum Peek {
    /// No Python frame (a call from C): nothing to record.
    NoFrame,
    /// The frame runs the code object already recorded.
    Same(SameSite),
    /// Another code object (or sites are being copied): [`SiteCell::record`] records it.
    New,
}

/// A site in the code object already recorded: its address and the instruction index.
#[derive(Clone, Copy)]
pub struct SameSite {
    code: usize,
    lasti: i32,
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
        if !self.record_again() {
            self.record_new(py);
        }
    }

    /// [`SiteCell::record`] when the calling frame runs the code object already recorded (or
    /// there is no frame): stores the instruction index and returns `true`; `false` when
    /// [`SiteCell::record_new`] must do it. Needs no `Python` token, only an attached thread.
    #[inline]
    pub fn record_again(&self) -> bool {
        match self.peek() {
            Peek::NoFrame => true,
            Peek::Same(site) => self.store_same(site),
            Peek::New => false,
        }
    }

    /// The first half of [`SiteCell::record_again`], for a caller that has not acquired yet (so
    /// that the lock is held for less time): what the calling frame would record. Needs only an
    /// attached thread.
    #[inline]
    pub fn peek(&self) -> Peek {
        // Safety: the caller is attached; PyEval_GetFrame returns a borrowed frame of this
        // thread (or NULL).
        let frame = unsafe { ffi::PyEval_GetFrame() };
        if frame.is_null() {
            return Peek::NoFrame;
        }
        // Safety: `frame` is live.
        let Some(code) = (unsafe { borrowed_code(frame) }) else {
            return Peek::New;
        };
        let code = code as usize;
        if code != self.code.load(Ordering::Acquire) || sites::enabled() {
            return Peek::New;
        }
        // Safety: `frame` is live.
        Peek::Same(SameSite {
            code,
            lasti: unsafe { PyFrame_GetLasti(frame) },
        })
    }

    /// The second half of [`SiteCell::record_again`], once the lock is held: stores `site`'s
    /// instruction index if its code object is still the one recorded (another holder may have
    /// recorded a new one meanwhile); `false` when [`SiteCell::record`] must do it.
    #[inline]
    pub fn store_same(&self, site: SameSite) -> bool {
        if self.code.load(Ordering::Acquire) != site.code {
            return false;
        }
        self.lasti.store(site.lasti, Ordering::Relaxed);
        true
    }

    /// [`SiteCell::record`] for a code object not recorded yet (or while sites are copied).
    #[cold]
    fn record_new(&self, py: Python<'_>) {
        // Safety: attached (`py`); a borrowed frame of this thread, or NULL.
        let frame = unsafe { ffi::PyEval_GetFrame() };
        if frame.is_null() {
            return;
        }
        // Safety: `frame` is live.
        let lasti = unsafe { PyFrame_GetLasti(frame) };
        // Safety: `frame` is live; PyFrame_GetCode returns a new reference, which
        // `from_owned_ptr` takes over.
        let code = unsafe { Bound::from_owned_ptr(py, ffi::PyFrame_GetCode(frame).cast::<ffi::PyObject>()) };
        // Safety: `frame` is live.
        if unsafe { borrowed_code(frame) }.is_some_and(|b| b != code.as_ptr()) {
            LAYOUT_OK.store(false, Ordering::Relaxed); // not the layout we know: never read it again
        }
        if sites::enabled() {
            sites::note(&code);
        }
        let addr = code.as_ptr() as usize;
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
