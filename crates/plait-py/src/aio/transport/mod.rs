//! The per-packet paths of `plait.aio`'s socket and datagram transports.
//!
//! Transports sit above the loop: they implement the loop's [`IoSource`](super::source::IoSource)
//! and hand it [`NativeCallback`](super::source::NativeCallback)s through the loop's Python API
//! (`_add_reader`, `_add_writer`). A protocol implemented natively by a layer above (plait's
//! streams) is fed through [`sink::DataSink`], which this layer defines.

mod datagram;
mod read;
mod recv;
mod sink;
mod socket;
mod write;

pub use datagram::DatagramIo;
pub use sink::{register_sink, DataSink, NativeSink};
pub use socket::{init, SocketIo};
