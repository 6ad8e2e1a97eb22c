//! The process pool's dispatcher: one Rust thread that owns the worker processes.
//!
//! It polls (mio) every worker's socket and pidfd plus a command channel; sends each task to a
//! worker as a frame, preceded once per worker by the definition (pickled function) it needs;
//! collects result frames; and answers every fault for the one task it concerns:
//!
//! - a worker that dies (crash, signal, OOM kill) fails the task it was running with
//!   [`Outcome::Crashed`]; tasks it had received but not started go back to the queue; a
//!   replacement starts;
//! - a task running past its timeout gets its worker killed and [`Outcome::TimedOut`];
//! - [`Pool::cancel_running`] kills the worker of a running task: [`Outcome::Cancelled`];
//! - workers that die before saying they are ready, several times in a row, or whose initializer
//!   fails, break the pool: queued and later tasks get [`Outcome::Broken`].
//!
//! Payloads are opaque bytes and each task carries a caller-chosen *ticket* (the binding's
//! future) handed back with its outcome; the dispatcher knows nothing of pickling or Python.
//!
//! The files, one concern each: `wire` (frame kinds), `config` (what the caller gives and
//! gets), `handle` (the caller's [`Pool`]), `command` (the channel to the dispatcher
//! thread), `table` (queued and in-flight tasks, worker state), and `dispatcher` (the loop, with
//! worker lifecycle, task flow and timeouts in files of their own).

mod command;
mod config;
mod dispatcher;
mod handle;
mod table;
mod wire;

pub use command::{Busy, BUSY_BODY_MAX};
pub use config::{Config, Launch, Outcome, Sink};
pub use handle::{Pool, Runner};
pub use wire::{DEFINE, ERR, HELLO, INIT_FAILED, OK, READY, SHUTDOWN, TASK};

pub use crate::error::PoolClosed;

#[cfg(test)]
mod tests;
