//! The container of every shared-memory object: a [`Segment`] holding one object, behind a
//! 64-byte header (a magic number and the object's kind, so a segment of one kind cannot be
//! attached as another); the object's words start at [`OBJECT_OFFSET`], followed by any data
//! area the object needs (a ring's bytes). Every layout is `#[repr(C)]`, made of atomics, and
//! valid when zero-filled (a fresh segment) apart from parameters the creator writes before the
//! segment leaves the process.
//!
//! The objects themselves (`ipc::objects`, `ipc::ring`) build on this module; it knows none of
//! them.

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::error::IpcError;
use crate::ipc::shm::Segment;

const MAGIC: u32 = 0x706c_6169; // "plai"
/// Where an object's words start in its segment.
pub const OBJECT_OFFSET: usize = 64;

#[repr(C)]
struct Header {
    magic: AtomicU32,
    kind: AtomicU32,
}

/// An object layout that can live in a segment.
pub trait Layout: Sync {
    /// Tag stored in the segment header.
    const KIND: u32;
    /// Name used in errors.
    const NAME: &'static str;
}

/// A handle to an object of layout `T` in a shared segment; clones of the segment (in this or
/// other processes) see the same object.
pub struct Shared<T: Layout> {
    segment: Arc<Segment>,
    ptr: NonNull<T>,
    _marker: PhantomData<T>,
}

// Safety: `T` is made of atomics (Sync), and the mapping lives as long as `segment`.
unsafe impl<T: Layout> Send for Shared<T> {}
// Safety: as above.
unsafe impl<T: Layout> Sync for Shared<T> {}

impl<T: Layout> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("kind", &T::NAME).finish_non_exhaustive()
    }
}

impl<T: Layout> Shared<T> {
    /// A new segment holding a zero-filled `T` followed by `extra` bytes; `init` writes the
    /// object's parameters before anyone else can see it.
    ///
    /// # Errors
    /// [`IpcError::Os`] when the segment cannot be created or mapped.
    pub fn create(extra: usize, init: impl FnOnce(&T)) -> Result<Self, IpcError> {
        let len = Self::data_offset() + extra;
        let segment = Arc::new(Segment::create(len)?);
        let base = segment.as_ptr()?;
        // Safety: the segment is at least data_offset bytes, page aligned, zero-filled; a
        // zeroed `T` (atomics) is valid.
        let this = unsafe { Self::from_parts(segment, base) };
        init(&this);
        // Safety: the header is at offset 0 of the page-aligned mapping.
        #[allow(clippy::cast_ptr_alignment, reason = "mappings are page aligned")]
        let header = unsafe { &*base.cast::<Header>() };
        header.kind.store(T::KIND, Ordering::Relaxed);
        header.magic.store(MAGIC, Ordering::Release);
        Ok(this)
    }

    /// The object in `segment` (received from another process).
    ///
    /// # Errors
    /// [`IpcError::WrongKind`] when the segment holds something else; [`IpcError::Os`] when it
    /// cannot be mapped.
    pub fn attach(segment: Arc<Segment>) -> Result<Self, IpcError> {
        if segment.len() < Self::data_offset() {
            return Err(IpcError::WrongKind { expected: T::NAME });
        }
        let base = segment.as_ptr()?;
        // Safety: the mapping is page aligned and at least 64 bytes.
        #[allow(clippy::cast_ptr_alignment, reason = "mappings are page aligned")]
        let header = unsafe { &*base.cast::<Header>() };
        if header.magic.load(Ordering::Acquire) != MAGIC || header.kind.load(Ordering::Relaxed) != T::KIND {
            return Err(IpcError::WrongKind { expected: T::NAME });
        }
        // Safety: checked size and kind; the creator laid out a `T` there.
        Ok(unsafe { Self::from_parts(segment, base) })
    }

    /// # Safety
    /// `base` is the mapping of `segment`, large enough for the header and a `T`.
    unsafe fn from_parts(segment: Arc<Segment>, base: *mut u8) -> Self {
        // Safety: per the contract; offset 64 keeps `T` (align <= 64) aligned in a page.
        let ptr = unsafe { NonNull::new_unchecked(base.add(OBJECT_OFFSET).cast::<T>()) };
        Self {
            segment,
            ptr,
            _marker: PhantomData,
        }
    }

    /// Offset of the data area that follows the object.
    #[must_use]
    pub fn data_offset() -> usize {
        (OBJECT_OFFSET + std::mem::size_of::<T>()).next_multiple_of(64)
    }

    /// The segment (to send to another process).
    #[must_use]
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    /// Start of the data area and its length.
    #[must_use]
    pub fn data(&self) -> (*mut u8, usize) {
        let off = Self::data_offset();
        // Safety: `data_offset` is within the segment (checked at create/attach).
        (
            unsafe { self.ptr.as_ptr().cast::<u8>().sub(OBJECT_OFFSET).add(off) },
            self.segment.len() - off,
        )
    }
}

impl<T: Layout> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Safety: the mapping outlives `self` and `T` is only accessed through atomics.
        unsafe { self.ptr.as_ref() }
    }
}
