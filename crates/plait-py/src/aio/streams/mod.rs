//! `plait.aio`'s streams: the reader's buffer and reads, and the writer's native base.

mod reader;

pub use reader::*;
