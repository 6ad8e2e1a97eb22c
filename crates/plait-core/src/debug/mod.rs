//! The debug channel behind `plait dump PID`: a native thread that answers, over a Unix socket
//! only the same user can use, with a report of the process's state, even when no Python code can
//! run (a C extension holding the GIL).
//!
//! - [`request`]: the wire protocol (one short request line) and the peer check.
//! - [`graph`]: plait's lock graph (who holds and waits for what, deadlocks) read from
//!   [`sync::deadlock`](crate::sync::deadlock) without the interpreter, as text or JSON.
//! - [`server`]: the listening thread, and the `SIGQUIT` handler that prints a report to stderr.
//!
//! The interpreter's part of a report (stacks, asyncio tasks, greenlets, pools) is asked of the
//! [`server::Host`] the binding supplies, with a bounded wait; when it does not answer in time the
//! native lock graph is sent instead, saying why.

pub mod graph;
mod json;
pub mod request;
pub mod server;
