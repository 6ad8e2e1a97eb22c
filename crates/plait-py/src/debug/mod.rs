//! The binding of the debug channel (`plait.debug`): starts and stops the core's channel thread
//! (`plait_core::debug::server`), supplies it the interpreter's report through a [`bridge`], and
//! names acquisition sites without the interpreter (`sync::sites`).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use plait_core::debug::request::Format;
use plait_core::debug::server::{self, Host, Options, Server};
use plait_core::sync::deadlock::{self, Resource};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::errors;
use crate::sync::sites;
use crate::sync::tracked::site_of;

mod bridge;

use bridge::Bridge;

struct PyHost {
    bridge: Arc<Bridge>,
}

impl Host for PyHost {
    fn interpreter_report(&self, format: Format, wait: Duration) -> Result<String, String> {
        self.bridge.ask(format, wait)
    }

    fn site(&self, resource: &dyn Resource) -> Option<String> {
        let (code, lasti) = site_of(resource)?.raw()?;
        sites::describe(code, lasti)
    }
}

struct Channel {
    server: Server,
    bridge: Arc<Bridge>,
}

static CHANNEL: Mutex<Option<Channel>> = Mutex::new(None);

/// Starts the channel: `name` defaults to `plait-<uid>-<pid>`; `wait` is how long the native
/// thread waits for the interpreter. Returns the socket's abstract name.
#[pyfunction]
#[pyo3(signature = (*, name=None, sigquit=true, wait=1.0))]
fn debug_enable(py: Python<'_>, name: Option<String>, sigquit: bool, wait: f64) -> PyResult<String> {
    let wait = Duration::try_from_secs_f64(wait)
        .map_err(|_| PyValueError::new_err(format!("wait must be a non-negative number of seconds, not {wait}")))?;
    let mut channel = CHANNEL.lock();
    if let Some(c) = channel.as_ref() {
        return Err(PyRuntimeError::new_err(format!(
            "the debug channel is already on (socket '\\0{}'); call plait.debug.disable() first",
            c.server.name()
        )));
    }
    // Safety: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let name = name.unwrap_or_else(|| server::default_name(uid, std::process::id()));
    sites::set_enabled(true);
    // Locks acquired before now: name their sites too.
    for res in deadlock::live_resources() {
        if let Some(cell) = site_of(res.as_ref()) {
            let (code, _) = cell.get(py);
            if !code.is_none(py) {
                sites::note(code.bind(py));
            }
        }
    }
    let bridge = Arc::new(Bridge::default());
    let host = Arc::new(PyHost {
        bridge: Arc::clone(&bridge),
    });
    let options = Options {
        name: name.clone(),
        sigquit,
        interpreter_wait: wait,
    };
    let server = Server::start(options, host).map_err(|e| {
        sites::set_enabled(false);
        errors::os_error_for(&format!("plait debug channel '\\0{name}'"), &e)
    })?;
    *channel = Some(Channel { server, bridge });
    Ok(name)
}

/// Stops the channel (no-op when off); the helper thread's `debug_next_request` returns `None`.
#[pyfunction]
fn debug_disable(py: Python<'_>) {
    let Some(channel) = CHANNEL.lock().take() else {
        return;
    };
    channel.bridge.close();
    py.detach(|| channel.server.stop());
    sites::set_enabled(false);
}

/// The channel's socket name, or `None` when it is off.
#[pyfunction]
fn debug_channel() -> Option<String> {
    CHANNEL.lock().as_ref().map(|c| c.server.name().to_owned())
}

/// For the helper thread: the next request as `(id, json)`, or `None` once the channel is off.
#[pyfunction]
fn debug_next_request(py: Python<'_>) -> Option<(u64, bool)> {
    let bridge = Arc::clone(&CHANNEL.lock().as_ref()?.bridge);
    bridge.next(py)
}

/// For the helper thread: the report for request `id`.
#[pyfunction]
fn debug_reply(id: u64, text: String) {
    if let Some(c) = CHANNEL.lock().as_ref() {
        c.bridge.reply(id, text);
    }
}

/// The report the channel sends when the interpreter does not answer: plait's lock graph, with
/// `reason` (for tests and `plait.dump(native=True)`).
#[pyfunction]
#[pyo3(signature = (reason, *, json=false))]
fn debug_native_report(py: Python<'_>, reason: &str, json: bool) -> String {
    let bridge = Arc::new(Bridge::default());
    let host = PyHost { bridge };
    let format = if json { Format::Json } else { Format::Text };
    py.detach(|| server::native_report(&host, format, reason))
}

/// In the child after `fork()`: the channel's thread did not survive; close what was inherited.
#[pyfunction]
fn _debug_after_fork_in_child() {
    if CHANNEL.is_locked() {
        // Safety: after fork() only the calling thread exists, and it does not hold the mutex (it
        // was running Python's os.fork), so the holder is gone for good.
        unsafe { CHANNEL.force_unlock() };
    }
    if let Some(channel) = CHANNEL.lock().take() {
        channel.server.forget_after_fork();
        std::mem::forget(channel.bridge); // its mutex may be held by a thread that is gone
    }
    sites::set_enabled(false);
}

/// Adds the channel's functions to `_plait`.
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(debug_enable, m)?)?;
    m.add_function(wrap_pyfunction!(debug_disable, m)?)?;
    m.add_function(wrap_pyfunction!(debug_channel, m)?)?;
    m.add_function(wrap_pyfunction!(debug_next_request, m)?)?;
    m.add_function(wrap_pyfunction!(debug_reply, m)?)?;
    m.add_function(wrap_pyfunction!(debug_native_report, m)?)?;
    m.add_function(wrap_pyfunction!(_debug_after_fork_in_child, m)?)?;
    Ok(())
}
