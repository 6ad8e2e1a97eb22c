//! The process pool's wire protocol: the kinds of the frames (see [`crate::ipc::frame`]) that
//! the dispatcher and a worker exchange. Payloads are opaque here; nothing in this file knows
//! about workers, tasks in flight or pickling.
//!
//! Parent to worker: `HELLO` (opaque setup payload, first frame, with the setup's descriptors),
//! `DEFINE` (id = definition id), `TASK` (id = task id; payload = the definition id as 8
//! little-endian bytes, then the task body), `SHUTDOWN`. Worker to parent: `READY`, `OK` /
//! `ERR` (id = task id; results arrive in the order tasks were sent), `INIT_FAILED` (payload =
//! UTF-8 text).

/// Parent to worker: setup payload (first frame).
pub const HELLO: u8 = 1;
/// Parent to worker: a definition (id = definition id).
pub const DEFINE: u8 = 2;
/// Parent to worker: run a task (id = task id).
pub const TASK: u8 = 3;
/// Parent to worker: exit after the tasks already sent.
pub const SHUTDOWN: u8 = 4;
/// Worker to parent: setup done, ready for tasks.
pub const READY: u8 = 16;
/// Worker to parent: a task's result.
pub const OK: u8 = 17;
/// Worker to parent: a task's error.
pub const ERR: u8 = 18;
/// Worker to parent: setup failed (payload: UTF-8 text).
pub const INIT_FAILED: u8 = 19;

/// The payload of a `TASK` frame: the definition id, then the task body.
#[must_use]
pub(super) fn task_payload(func: u64, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8 + body.len());
    payload.extend_from_slice(&func.to_le_bytes());
    payload.extend_from_slice(body);
    payload
}
