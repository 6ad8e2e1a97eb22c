//! Thread identity shared by every primitive.
//!
//! A thread is named by its `pthread_t`, which on Linux is also what Python's `threading.get_ident()`
//! returns, so the binding can map an owner recorded in Rust back to a Python `Thread` for reports.

/// Identifier of an OS thread (`pthread_self()`); never 0 for a live thread.
pub type ThreadId = u64;

/// The calling thread's identifier.
#[inline]
#[must_use]
pub fn current() -> ThreadId {
    // Safety: pthread_self has no preconditions and cannot fail.
    unsafe { libc::pthread_self() as ThreadId }
}
