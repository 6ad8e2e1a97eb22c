//! Inter-process plumbing that knows nothing of Python or of workers: message framing over byte
//! streams, Unix socket pairs, descriptor passing and shared-memory segments. The process pool
//! (and later the cross-process queues) build on it; what a payload means is up to them.

pub mod fdpass;
pub mod frame;
pub mod outbox;
pub mod shm;
pub mod socket;
