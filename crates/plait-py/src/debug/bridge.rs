//! How the channel's native thread asks the interpreter for its report, with a bounded wait.
//!
//! A Python thread (`plait.debug._channel`) loops on [`Bridge::next`]: it waits detached from the
//! interpreter until a request is posted, then attaches again. Only once it is attached does it
//! take the request, so a taken request proves the interpreter can run Python code. The native
//! thread ([`Bridge::ask`]) waits a bounded time for that; when a C call holds the GIL the
//! request is withdrawn and the native lock graph is sent instead.

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use plait_core::debug::request::Format;
use pyo3::prelude::*;

/// How long a report the interpreter has started may take (it stalls when a C call takes the
/// GIL midway; the native lock graph is sent then).
const FINISH: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    next_id: u64,
    pending: Option<(u64, Format)>,
    taken: Option<u64>,
    reply: Option<(u64, String)>,
    closed: bool,
}

/// The meeting point of the native thread and the interpreter's helper thread.
#[derive(Default)]
pub struct Bridge {
    state: Mutex<State>,
    changed: Condvar,
}

fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

impl Bridge {
    /// Posts a request and waits up to `wait` for the interpreter to take it, then up to
    /// [`FINISH`] for the report.
    pub fn ask(&self, format: Format, wait: Duration) -> Result<String, String> {
        let mut s = self.state.lock();
        if s.closed {
            return Err("the debug channel is shutting down".into());
        }
        s.next_id += 1;
        let id = s.next_id;
        s.pending = Some((id, format));
        s.reply = None;
        self.changed.notify_all();
        let deadline = Instant::now() + wait;
        while s.taken != Some(id) && !s.closed {
            if self.changed.wait_until(&mut s, deadline).timed_out() {
                break;
            }
        }
        if s.taken != Some(id) {
            if s.pending.is_some_and(|(p, _)| p == id) {
                s.pending = None;
            }
            return Err(format!(
                "the interpreter did not respond within {} (a thread holding the GIL in a C call, or \
                 no Python thread left to answer)",
                seconds(wait)
            ));
        }
        let deadline = Instant::now() + FINISH;
        loop {
            if let Some((r, _)) = &s.reply {
                if *r == id {
                    return Ok(s.reply.take().map(|(_, text)| text).unwrap_or_default());
                }
            }
            if s.closed {
                return Err("the debug channel is shutting down".into());
            }
            if self.changed.wait_until(&mut s, deadline).timed_out() {
                s.taken = None;
                return Err(format!(
                    "the interpreter started the report but did not finish it within {}",
                    seconds(FINISH)
                ));
            }
        }
    }

    /// The helper's side: the next request `(id, json)` once the interpreter runs, or `None` when
    /// the channel closes.
    pub fn next(&self, py: Python<'_>) -> Option<(u64, bool)> {
        loop {
            let seen = py.detach(|| {
                let mut s = self.state.lock();
                loop {
                    if s.closed {
                        return None;
                    }
                    if let Some((id, _)) = s.pending {
                        return Some(id);
                    }
                    self.changed.wait(&mut s);
                }
            })?;
            // Attached again: the interpreter runs. Take the request unless it was withdrawn.
            let mut s = self.state.lock();
            if s.closed {
                return None;
            }
            match s.pending {
                Some((id, format)) if id >= seen => {
                    s.pending = None;
                    s.taken = Some(id);
                    self.changed.notify_all();
                    return Some((id, format == Format::Json));
                }
                _ => {}
            }
        }
    }

    /// The helper's report for request `id`.
    pub fn reply(&self, id: u64, text: String) {
        let mut s = self.state.lock();
        // `taken` stays: the asker may not have seen it yet (a quick report is answered before
        // the asker wakes from its first wait).
        if s.taken == Some(id) {
            s.reply = Some((id, text));
            self.changed.notify_all();
        }
    }

    /// Wakes every waiter for good.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.changed.notify_all();
    }
}
