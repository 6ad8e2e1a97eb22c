//! plait-core: the pure-Rust concurrency core of plait.
//!
//! Nothing here knows about Python. The binding crate (`plait-py`) wraps these types and supplies a
//! [`Blocker`](block::Blocker) that detaches from the interpreter around every wait and checks for
//! signals, so the same algorithms serve Rust tests and Python callers.
//!
//! - [`error`]: every error type of the core (re-exported by the modules that return them).
//! - [`sync`]: locks, conditions, semaphores, events, barriers, and the deadlock detector.
//! - [`queue`]: the blocking queue behind `queue.Queue` and friends.
//! - [`pool`]: the thread pool's task queue and worker bookkeeping.
//! - [`ipc`]: frames over byte streams, Unix socket pairs.
//! - [`reactor`]: the event loop's poller (mio), timers, ready queue and wakeups.
//! - [`debug`]: the channel behind `plait dump PID` (a native thread, a Unix socket).
//! - [`scaling`]: scaling laws (USL, Amdahl, Gustafson) fitted to throughput measurements.
//! - [`supervise`]: child processes (spawn, watch, kill, reap) and the process pool's dispatcher.

pub mod block;
pub mod debug;
pub mod error;
pub mod ipc;
pub mod pool;
pub mod queue;
pub mod reactor;
pub mod scaling;
pub mod supervise;
pub mod sync;
#[cfg(test)]
mod testing;
pub mod thread;
