//! Process identity for shared-memory primitives: who holds a lock, and whether it still lives.
//!
//! A process is named by its pid plus its start time (from `/proc/PID/stat`), so a pid reused
//! by a new process after the holder died is not mistaken for the holder. The calling process's
//! pid is cached and reset in a `fork` child (a `pthread_atfork` handler).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

static PID: AtomicU32 = AtomicU32::new(0);
static START: AtomicU32 = AtomicU32::new(0);
static ATFORK: Once = Once::new();

extern "C" fn forget_identity() {
    PID.store(0, Ordering::Relaxed);
    START.store(0, Ordering::Relaxed);
}

/// The calling process's pid (cached; correct in fork children).
#[must_use]
pub fn pid() -> u32 {
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    ATFORK.call_once(|| {
        // Safety: registering a child handler that only stores to atomics.
        unsafe { libc::pthread_atfork(None, None, Some(forget_identity)) };
    });
    // Safety: getpid cannot fail.
    let p = unsafe { libc::getpid() } as u32;
    PID.store(p, Ordering::Relaxed);
    p
}

/// The low 32 bits of the calling process's start time (clock ticks since boot), 0 if unknown.
#[must_use]
pub fn start_time() -> u32 {
    let s = START.load(Ordering::Relaxed);
    if s != 0 {
        return s;
    }
    let s = stat(pid()).map_or(0, |st| st.start);
    START.store(s, Ordering::Relaxed);
    s
}

/// `pid | start_time << 32`: the calling process, as recorded beside a lock word.
#[must_use]
pub fn key() -> u64 {
    u64::from(pid()) | (u64::from(start_time()) << 32)
}

struct Stat {
    zombie: bool,
    start: u32,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    // Field 3 is the state; field 22 the start time.
    let start: u64 = fields.nth(18)?.parse().ok()?;
    Some(Stat {
        zombie: state == "Z" || state == "X",
        start: start as u32,
    })
}

/// Whether process `pid` is alive (a zombie counts as dead). `start`, when non-zero, is the
/// start time recorded for it: a live process with another start time reused the pid.
#[must_use]
pub fn is_alive(pid: u32, start: u32) -> bool {
    if pid == 0 {
        return false;
    }
    if pid == self::pid() {
        return true;
    }
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // Safety: signal 0 only checks existence and permission.
    if unsafe { libc::kill(raw, 0) } != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return false;
    }
    match stat(pid) {
        Some(st) => !st.zombie && (start == 0 || st.start == 0 || st.start == start),
        // No /proc entry: gone (or /proc is not mounted, where kill said it exists).
        None => !std::path::Path::new("/proc/self/stat").exists(),
    }
}

/// Whether the process recorded as `key` (see [`key`]) is alive.
#[must_use]
pub fn key_is_alive(key: u64) -> bool {
    is_alive(key as u32, (key >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_lives_and_a_reaped_child_does_not() {
        assert!(key_is_alive(key()));
        assert_ne!(start_time(), 0);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let cpid = child.id();
        child.wait().unwrap();
        assert!(!is_alive(cpid, 0));
        assert!(!is_alive(0, 0));
    }

    #[test]
    fn a_zombie_is_dead_and_a_wrong_start_time_is_a_reused_pid() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let cpid = child.id();
        // Wait until it exits without reaping it.
        loop {
            if stat(cpid).is_some_and(|s| s.zombie) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!is_alive(cpid, 0));
        child.wait().unwrap();
        let parent = std::os::unix::process::parent_id();
        let start = stat(parent).unwrap().start;
        assert!(is_alive(parent, start));
        assert!(!is_alive(parent, start.wrapping_add(1)));
    }
}
