//! The process pool's dispatcher (being split by concern; see `dispatcher`).

mod dispatcher;

pub use dispatcher::*;
