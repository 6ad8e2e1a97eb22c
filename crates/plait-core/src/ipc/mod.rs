//! Inter-process plumbing that knows nothing of Python or of workers: message framing over byte
//! streams and Unix socket pairs. The process pool (and later the cross-process queues) build on
//! it; what a payload means is up to them.

pub mod frame;
pub mod socket;
