//! Inter-process plumbing that knows nothing of Python or of workers: message framing over byte
//! streams, Unix socket pairs, descriptor passing, shared-memory segments, and the
//! process-shared primitives that live in segments.
//!
//! - [`shm`]: anonymous `memfd` segments; [`fdpass`], [`socket`], [`frame`]: sending them and
//!   framed messages between processes.
//! - [`futex`]: sleeping and waking on words of shared mappings; [`process`]: who is alive.
//! - [`robust`]: a lock that the next acquirer takes over when its holder dies.
//! - [`shared`]: the segment that holds one object, with its header.
//! - [`objects`]: locks, semaphores, events, conditions, barriers, atomics in a segment.
//! - [`ring`]: a crash-safe MPMC ring of variable-size messages (the cross-process queues).

pub use crate::error::IpcError;

pub mod fdpass;
pub mod frame;
pub mod futex;
pub mod objects;
pub mod outbox;
pub mod process;
pub mod ring;
pub mod robust;
pub mod shared;
pub mod shm;
pub mod socket;
