//! Shared-memory segments: anonymous `memfd` files mapped into memory.
//!
//! A segment has no name anywhere (nothing in `/dev/shm` to leak): it lives while some process
//! holds its descriptor or a mapping of it, and the kernel frees it when the last one goes,
//! also when its creator is killed. Hand one to another process by sending its descriptor over
//! a Unix socket (`SCM_RIGHTS`, which `ipc::fdpass` implements above this module); the receiver
//! maps it with [`Segment::open`]. The size is sealed at creation, so no process can shrink it
//! under another's mapping.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use memmap2::{MmapOptions, MmapRaw};

/// Bumped by [`abandon_inherited`]: segments of an older generation were inherited through
/// `fork` and their descriptor numbers are no longer theirs.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Called in a forked child after it closed the segment descriptors it inherited (by number):
/// from now on the inherited segments neither use nor close their descriptor, whose number may
/// belong to a new file (a segment received later). Their mappings stay usable.
pub fn abandon_inherited() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// The current generation (see [`abandon_inherited`]).
#[must_use]
pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// A shared-memory segment; see the module docs. It is mapped into this process on first use
/// of [`Segment::as_ptr`] (a creator that only fills it with [`Segment::write_at`] and sends it
/// never maps it: writing through the descriptor costs half as much as faulting fresh pages
/// into a mapping, on the machines measured).
#[derive(Debug)]
pub struct Segment {
    /// Kept while the segment may still be sent to another process or mapped.
    fd: Option<OwnedFd>,
    map: OnceLock<MmapRaw>,
    len: usize,
    /// [`generation`] when it was made: an older one means `fd` was inherited and closed.
    generation: u64,
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.generation != generation() {
            // Closed already (by number): closing it again could close someone else's file.
            std::mem::forget(self.fd.take());
        }
    }
}

impl Segment {
    /// A new zero-filled segment of `len` bytes (not mapped yet).
    ///
    /// # Errors
    /// The OS error from `memfd_create`, `ftruncate`, `fcntl` or `mmap` (e.g. `EMFILE`, `ENOMEM`).
    pub fn create(len: usize) -> io::Result<Self> {
        const NAME: &CStr = c"plait-shm";
        // Safety: NAME is a valid C string; the flags are valid for memfd_create.
        let raw = unsafe { libc::memfd_create(NAME.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // Safety: memfd_create returned a new descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let file = File::from(fd);
        file.set_len(len as u64)?;
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // Safety: F_ADD_SEALS on our own memfd.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            fd: Some(OwnedFd::from(file)),
            map: OnceLock::new(),
            len,
            generation: generation(),
        })
    }

    /// Takes the segment behind `fd` (received from another process); it is mapped read-write,
    /// pages faulted in as they are touched. With `keep_fd` false it is mapped at once and the
    /// descriptor closed: the mapping alone keeps the memory alive, and the process's descriptor
    /// table stays small.
    ///
    /// # Errors
    /// The OS error from `fstat` or `mmap`; `InvalidInput` if `fd` is not a sealed memfd
    /// segment (its size could change under the mapping).
    pub fn open(fd: OwnedFd, keep_fd: bool) -> io::Result<Self> {
        // Safety: F_GET_SEALS on a descriptor we own.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 || seals & libc::F_SEAL_SHRINK == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a sealed shared-memory segment",
            ));
        }
        let file = File::from(fd);
        let len = usize::try_from(file.metadata()?.len()).map_err(io::Error::other)?;
        let mut segment = Self {
            fd: Some(OwnedFd::from(file)),
            map: OnceLock::new(),
            len,
            generation: generation(),
        };
        if keep_fd {
            return Ok(segment);
        }
        segment.as_ptr()?;
        segment.fd = None;
        Ok(segment)
    }

    /// Size in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the segment has no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Start of the mapping, mapping the segment on first use (dangling but aligned when
    /// empty). Other processes may write the memory concurrently: access it through raw
    /// pointers, never as a Rust reference that assumes exclusivity.
    ///
    /// # Errors
    /// The OS error from `mmap`.
    pub fn as_ptr(&self) -> io::Result<*mut u8> {
        if self.len == 0 {
            return Ok(std::ptr::NonNull::<u64>::dangling().as_ptr().cast());
        }
        if let Some(map) = self.map.get() {
            return Ok(map.as_mut_ptr());
        }
        let fd = self.fd().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "the descriptor of this segment, inherited through fork, was closed",
            )
        })?;
        let map = MmapOptions::new().len(self.len).map_raw(fd)?;
        // A racing thread may have mapped it too: the first mapping wins, the other is dropped.
        let _ = self.map.set(map);
        Ok(self.map.get().expect("set above").as_mut_ptr())
    }

    /// Whether the segment is mapped into this process.
    #[must_use]
    pub fn is_mapped(&self) -> bool {
        self.map.get().is_some()
    }

    /// The descriptor, if kept (created segments, or opened with `keep_fd`).
    #[must_use]
    pub fn fd(&self) -> Option<&OwnedFd> {
        if self.generation == generation() {
            self.fd.as_ref()
        } else {
            None
        }
    }

    /// Copies `data` to offset `at` (through the mapping if there is one, else through the
    /// descriptor).
    ///
    /// # Errors
    /// The OS error from `pwrite`; `InvalidInput` if `at + data.len()` exceeds the segment
    /// (nothing is written then).
    pub fn write_at(&self, at: usize, data: &[u8]) -> io::Result<()> {
        if at.checked_add(data.len()).is_none_or(|end| end > self.len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} bytes at offset {at} exceed the segment of {} bytes",
                    data.len(),
                    self.len
                ),
            ));
        }
        if data.is_empty() {
            return Ok(());
        }
        if let (None, Some(fd)) = (self.map.get(), self.fd()) {
            return File::from(fd.try_clone()?).write_all_at(data, at as u64);
        }
        let base = self.as_ptr()?;
        // Safety: the range is inside the mapping (checked above).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), base.add(at), data.len()) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_segment_sees_the_same_memory() {
        let a = Segment::create(8192).unwrap();
        a.write_at(4096, b"shared").unwrap();
        assert!(!a.is_mapped());
        let fd = a.fd().unwrap().try_clone().unwrap();
        let b = Segment::open(fd, false).unwrap();
        assert_eq!(b.len(), 8192);
        assert!(b.fd().is_none() && b.is_mapped());
        // Safety: both mappings cover 8192 bytes.
        unsafe {
            assert_eq!(std::slice::from_raw_parts(b.as_ptr().unwrap().add(4096), 6), b"shared");
            *b.as_ptr().unwrap() = 7;
            assert_eq!(*a.as_ptr().unwrap(), 7);
        }
        a.write_at(0, b"8").unwrap(); // through the mapping now
                                      // Safety: as above.
        assert_eq!(unsafe { *b.as_ptr().unwrap() }, b'8');
    }

    #[test]
    fn sizes_are_sealed_and_foreign_fds_refused() {
        let a = Segment::create(100).unwrap();
        let file = File::from(a.fd().unwrap().try_clone().unwrap());
        assert!(file.set_len(10).is_err());
        let (s, _) = crate::ipc::socket::pair().unwrap();
        assert_eq!(
            Segment::open(OwnedFd::from(s), false).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(a.write_at(99, b"xy").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            a.write_at(usize::MAX, b"x").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let empty = Segment::create(0).unwrap();
        assert!(empty.is_empty());
        empty.write_at(0, b"").unwrap();
        assert!(empty.as_ptr().is_ok());
    }
}
