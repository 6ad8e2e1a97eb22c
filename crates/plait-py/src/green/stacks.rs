//! A cache of the interpreter's frame-stack chunks, installed as a layer over its arena
//! allocator (`PyObject_SetArenaAllocator`).
//!
//! Since 3.11 each thread state, and so each greenlet, keeps Python frames in "data stack"
//! chunks (16 KiB and up) that the interpreter maps and unmaps through its arena allocator
//! (`_PyObject_VirtualAlloc`, i.e. `mmap`/`munmap`). A new greenlet gets a new chunk at its
//! first frame and gives it back when it dies: two system calls, page faults and a TLB flush per
//! greenlet, most of the cost of a short-lived greenlet (~8 us of ~10 here). This layer keeps a
//! bounded number of freed blocks of those sizes and hands them out again. Blocks bigger than
//! [`MAX_BLOCK`] (the object allocator's 256 KiB-1 MiB arenas) pass straight through, so the
//! object allocator behaves as before; at most [`MAX_CACHED`] blocks (a few MiB) are kept.

use std::ffi::c_void;

use parking_lot::Mutex;
use pyo3::ffi;
use pyo3::prelude::*;

/// Largest block kept: frame-stack chunks are 16 KiB, more for a very deep frame.
pub const MAX_BLOCK: usize = 64 * 1024;
/// Most blocks kept at once (at 16 KiB each: 2 MiB).
pub const MAX_CACHED: usize = 128;

struct Layer {
    /// The allocator this layer sits on (the interpreter's `mmap` one unless someone else set one).
    below: ffi::PyObjectArenaAllocator,
    free: Vec<(usize, usize)>, // (size, address) of freed blocks
    hits: u64,
    misses: u64,
}

// SAFETY: `below.ctx` is the opaque context of the allocator below, only passed back to its own
// functions, which CPython calls from any thread; the layer is only touched under `LAYER`'s lock.
unsafe impl Send for Layer {}

static LAYER: Mutex<Option<Layer>> = Mutex::new(None);

extern "C" fn alloc(_ctx: *mut c_void, size: usize) -> *mut c_void {
    let below = {
        let mut guard = LAYER.lock();
        let Some(layer) = guard.as_mut() else {
            return std::ptr::null_mut(); // unreachable: installed before it is called
        };
        if size <= MAX_BLOCK {
            if let Some(i) = layer.free.iter().rposition(|&(s, _)| s == size) {
                layer.hits += 1;
                return layer.free.swap_remove(i).1 as *mut c_void;
            }
            layer.misses += 1;
        }
        layer.below
    };
    // The allocator below, called as CPython would call it.
    match below.alloc {
        Some(f) => f(below.ctx, size),
        None => std::ptr::null_mut(),
    }
}

extern "C" fn free(_ctx: *mut c_void, ptr: *mut c_void, size: usize) {
    let below = {
        let mut guard = LAYER.lock();
        let Some(layer) = guard.as_mut() else { return };
        if size <= MAX_BLOCK && layer.free.len() < MAX_CACHED && !ptr.is_null() {
            layer.free.push((size, ptr as usize));
            return;
        }
        layer.below
    };
    // `ptr` came from the allocator below with this `size` (a cached block is handed out
    // again only for a request of its own size).
    if let Some(f) = below.free {
        f(below.ctx, ptr, size);
    }
}

/// Installs the cache (once per process; later calls do nothing). Returns whether it is installed.
#[pyfunction]
pub fn cache_frame_stacks(_py: Python<'_>) -> bool {
    let mut guard = LAYER.lock();
    if guard.is_some() {
        return true;
    }
    let mut below = ffi::PyObjectArenaAllocator {
        ctx: std::ptr::null_mut(),
        alloc: None,
        free: None,
    };
    // SAFETY: with the interpreter attached (`_py`), reading and then replacing the arena
    // allocator; ours forwards to the one read for everything it does not keep.
    unsafe { ffi::PyObject_GetArenaAllocator(&raw mut below) };
    if below.alloc.is_none() || below.free.is_none() {
        return false;
    }
    *guard = Some(Layer {
        below,
        free: Vec::with_capacity(MAX_CACHED),
        hits: 0,
        misses: 0,
    });
    drop(guard);
    let mut ours = ffi::PyObjectArenaAllocator {
        ctx: std::ptr::null_mut(),
        alloc: Some(alloc),
        free: Some(free),
    };
    // SAFETY: as above; CPython copies the struct.
    unsafe { ffi::PyObject_SetArenaAllocator(&raw mut ours) };
    true
}

/// `(installed, blocks kept now, hits, misses)`: how the cache does, for tests and tuning.
#[pyfunction]
pub fn frame_stack_cache_info() -> (bool, usize, u64, u64) {
    LAYER
        .lock()
        .as_ref()
        .map_or((false, 0, 0, 0), |l| (true, l.free.len(), l.hits, l.misses))
}
