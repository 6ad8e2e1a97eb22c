//! Acquisition sites that can be named without the interpreter, for the debug channel's native
//! report (`plait dump PID` when no Python code can run).
//!
//! A [`SiteCell`](super::tracked::SiteCell) keeps a code object and an instruction offset; making
//! `file:line (in function)` of them needs the interpreter. While the debug channel is on, the
//! first acquire from each code object copies its file name, qualified name and line table here
//! (once per code object; later acquires pay one lookup under a read lock), so the channel's thread can name any
//! site by plain Rust. The map keeps each code object alive, so an address is never reused while
//! it is a key. Off (the default), `record` pays one relaxed load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;
use pyo3::prelude::*;

static ENABLED: AtomicBool = AtomicBool::new(false);

struct Code {
    /// Keeps the code object (and so its address, the key) alive.
    _keep: Py<PyAny>,
    filename: String,
    qualname: String,
    first_line: i32,
    /// `(start, end, line)` byte offsets, from `co_lines()`.
    lines: Vec<(i32, i32, i32)>,
}

static CODES: LazyLock<RwLock<HashMap<usize, Arc<Code>>>> = LazyLock::new(|| RwLock::new(HashMap::new()));

/// Whether sites are being copied (the debug channel is on).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Starts or stops copying sites; stopping forgets them.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
    if !on {
        let old = std::mem::take(&mut *CODES.write());
        drop(old); // outside the map's lock: dropping a code object may run Python code
    }
}

/// Copies what naming a site in `code` needs, the first time `code` is seen.
#[inline]
pub fn note(code: &Bound<'_, PyAny>) {
    if !CODES.read().contains_key(&(code.as_ptr() as usize)) {
        copy(code);
    }
}

#[cold]
fn copy(code: &Bound<'_, PyAny>) {
    let read = || -> PyResult<Code> {
        let mut lines = Vec::new();
        for item in code.call_method0("co_lines")?.try_iter()? {
            let (start, end, line): (i32, i32, Option<i32>) = item?.extract()?;
            if let Some(line) = line {
                lines.push((start, end, line));
            }
        }
        Ok(Code {
            _keep: code.clone().unbind(),
            filename: code.getattr("co_filename")?.extract()?,
            qualname: code.getattr("co_qualname")?.extract()?,
            first_line: code.getattr("co_firstlineno")?.extract()?,
            lines,
        })
    };
    // A code object that does not read (never in practice) stays unnamed.
    if let Ok(info) = read() {
        CODES
            .write()
            .entry(code.as_ptr() as usize)
            .or_insert_with(|| Arc::new(info));
    }
}

/// `file:line (in function)` for the code object at `code` (an address from a `SiteCell`) and the
/// byte offset `lasti`, if it was copied. Needs no interpreter.
pub fn describe(code: usize, lasti: i32) -> Option<String> {
    let info = CODES.read().get(&code).cloned()?;
    let line = info
        .lines
        .iter()
        .find(|(start, end, _)| *start <= lasti && lasti < *end)
        .map_or(info.first_line, |(_, _, line)| *line);
    Some(format!("{}:{line} (in {})", info.filename, info.qualname))
}
