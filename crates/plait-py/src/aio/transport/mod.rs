//! The per-packet paths of `plait.aio`'s socket and datagram transports.

mod socket;

pub use socket::*;
