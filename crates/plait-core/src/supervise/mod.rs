//! Child processes: spawn with chosen file descriptors inherited, watch through a pidfd, kill
//! without pid-reuse races, reap. Knows nothing of what the children run or say; the process
//! pool's dispatcher uses it to keep a set of workers alive.
//!
//! A process started by a helper (a fork server) is not this process's child, so `waitpid`
//! cannot reap it; it is still watched and signalled through a pidfd, and its exit status comes
//! from a [`Reaper`] that asks its real parent (see [`Child::adopt_foreign`]).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;

pub mod pool;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
    /// It is gone, but its exit status could not be learnt (a foreign child whose real parent
    /// could not say, e.g. a fork server that died first).
    Unknown,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exit code {c}"),
            Self::Signal(s) => write!(f, "signal {s} ({})", signal_name(*s)),
            Self::Unknown => write!(f, "exit status unknown"),
        }
    }
}

impl Exit {
    /// Decodes a `waitpid` status; `None` for a stopped or continued process (not an exit).
    #[must_use]
    pub fn from_wait_status(status: i32) -> Option<Self> {
        if libc::WIFEXITED(status) {
            Some(Self::Code(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(Self::Signal(libc::WTERMSIG(status)))
        } else {
            None
        }
    }
}

/// Reports how a process that is not this process's child ended, given its pid: its parent (a
/// fork server) reaps it and passes the status on. Called once the process has exited.
pub type Reaper = Arc<dyn Fn(i32) -> io::Result<Exit> + Send + Sync>;

/// The conventional name of a signal number (`SIGKILL`), or `"unknown"`.
#[must_use]
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        _ => "unknown",
    }
}

/// A child process to start; see [`Spawn::spawn`].
#[derive(Debug)]
pub struct Spawn {
    command: Command,
    keep: Vec<RawFd>,
}

impl Spawn {
    /// Runs `program` with `args`; stdin is `/dev/null`, stdout and stderr are inherited.
    pub fn new(program: impl Into<OsString>, args: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        let mut command = Command::new(program.into());
        command.args(args.into_iter().map(Into::into));
        command.stdin(Stdio::null());
        Self {
            command,
            keep: Vec::new(),
        }
    }

    /// Lets the child inherit `fd` under the same number (it stays close-on-exec in the parent).
    #[must_use]
    pub fn keep_fd(mut self, fd: RawFd) -> Self {
        self.keep.push(fd);
        self
    }

    /// Sets an environment variable for the child.
    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.command.env(key.into(), value.into());
        self
    }

    /// Starts the child.
    ///
    /// # Errors
    /// The OS error from `fork`/`exec` or `pidfd_open`.
    pub fn spawn(mut self) -> io::Result<Child> {
        let keep = self.keep.clone();
        // Safety: the closure runs in the forked child before exec and only calls fcntl, which
        // is async-signal-safe, on descriptors the parent keeps open until spawn returns.
        unsafe {
            self.command.pre_exec(move || {
                for &fd in &keep {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = self.command.spawn()?;
        // The std handle owns no pipes (stdin is /dev/null, the rest inherited): from here on the
        // child is watched and reaped through its pid.
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            Child::adopt(pid)
        } else {
            let _ = child.kill();
            let _ = child.wait();
            Err(io::Error::other("pid out of range"))
        }
    }
}

fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // Safety: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // Safety: the syscall returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Waits until `fd` is readable, or `timeout_ms` passed (-1: no limit); returns whether it is.
fn poll_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // Safety: one valid pollfd.
        let n = unsafe { libc::poll(&raw mut pfd, 1, timeout_ms) };
        if n >= 0 {
            return Ok(n == 1);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// A running (or finished, not yet reaped) process in this process's charge: a child, or a
/// process some helper started for it (see [`Child::adopt_foreign`]).
pub struct Child {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    exit: Option<Exit>,
    /// Set for a process that is not our child: how to learn its exit status.
    reaper: Option<Reaper>,
    /// The reaper was asked (whatever it answered): it is never asked twice.
    reaped: bool,
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.pid)
            .field("pidfd", &self.pidfd)
            .field("exit", &self.exit)
            .field("foreign", &self.reaper.is_some())
            .field("reaped", &self.reaped)
            .finish()
    }
}

impl Child {
    /// Takes charge of `pid`, a child of this process started some other way (e.g. `fork()`):
    /// it will be watched, signalled and reaped like a spawned one.
    ///
    /// # Errors
    /// The OS error from `pidfd_open`; the child is then killed and reaped before returning.
    pub fn adopt(pid: i32) -> io::Result<Self> {
        match pidfd_open(pid) {
            Ok(pidfd) => Ok(Self {
                pid,
                pidfd,
                exit: None,
                reaper: None,
                reaped: false,
            }),
            Err(e) => {
                // Never leave a child behind, not even a zombie.
                // Safety: kill and waitpid on our own child's pid, which is not reaped yet.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
                Err(e)
            }
        }
    }

    /// Takes charge of `pid`, a process of this user that is *not* this process's child (one a
    /// fork server started): it is watched and signalled through a pidfd like a child, and once
    /// it has exited `reaper` reports its exit status (its own parent reaps it).
    ///
    /// # Errors
    /// The OS error from `pidfd_open`; the process is then killed (its parent has not reaped it,
    /// so the pid cannot have been reused) and `reaper` asked to reap it before returning.
    pub fn adopt_foreign(pid: i32, reaper: Reaper) -> io::Result<Self> {
        match pidfd_open(pid) {
            Ok(pidfd) => Ok(Self {
                pid,
                pidfd,
                exit: None,
                reaper: Some(reaper),
                reaped: false,
            }),
            Err(e) => {
                // Safety: kill with a pid its parent has not reaped yet.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                let _ = reaper(pid);
                Err(e)
            }
        }
    }

    /// Whether this process is not our child (its exit status comes from a [`Reaper`]).
    #[must_use]
    pub fn is_foreign(&self) -> bool {
        self.reaper.is_some()
    }

    /// [`Child::waitpid`] for a process that is not our child: the pidfd tells when it exited,
    /// the reaper how.
    fn wait_foreign(&mut self, block: bool) -> io::Result<Option<Exit>> {
        let Some(reaper) = self.reaper.as_ref() else {
            return Err(io::Error::other("not a foreign process"));
        };
        if self.reaped {
            return Err(io::Error::other("its exit status could not be learned"));
        }
        if !poll_readable(self.pidfd.as_raw_fd(), if block { -1 } else { 0 })? {
            return Ok(None);
        }
        self.reaped = true;
        let exit = reaper(self.pid)?;
        self.exit = Some(exit);
        Ok(Some(exit))
    }

    fn waitpid(&mut self, flags: i32) -> io::Result<Option<Exit>> {
        if self.reaper.is_some() {
            return self.wait_foreign(flags & libc::WNOHANG == 0);
        }
        loop {
            let mut status = 0;
            // Safety: `status` is a valid out-pointer; `pid` is our unreaped child.
            let rc = unsafe { libc::waitpid(self.pid, &raw mut status, flags) };
            if rc == 0 {
                return Ok(None);
            }
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            let Some(exit) = Exit::from_wait_status(status) else {
                continue; // stopped or continued: not an exit
            };
            self.exit = Some(exit);
            return Ok(Some(exit));
        }
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A descriptor that becomes readable when the child exits (register it with a poller).
    #[must_use]
    pub fn pidfd(&self) -> RawFd {
        self.pidfd.as_raw_fd()
    }

    /// Sends `signal` through the pidfd, so a recycled pid can never be hit. Signalling a child
    /// that already exited is not an error.
    ///
    /// # Errors
    /// The OS error from `pidfd_send_signal`.
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        if self.exit.is_some() {
            return Ok(());
        }
        // Safety: the pidfd is open; a null siginfo and zero flags are valid.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(err);
        }
        Ok(())
    }

    /// Kills the child with `SIGKILL`.
    ///
    /// # Errors
    /// See [`Child::signal`].
    pub fn kill(&self) -> io::Result<()> {
        self.signal(libc::SIGKILL)
    }

    /// Reaps the child if it has exited.
    ///
    /// # Errors
    /// The OS error from `waitpid`; for a foreign process, the reaper's error.
    pub fn try_wait(&mut self) -> io::Result<Option<Exit>> {
        if let Some(exit) = self.exit {
            return Ok(Some(exit));
        }
        self.waitpid(libc::WNOHANG)
    }

    /// Waits for the child to exit and reaps it.
    ///
    /// # Errors
    /// The OS error from `waitpid`; for a foreign process, the reaper's error.
    pub fn wait(&mut self) -> io::Result<Exit> {
        if let Some(exit) = self.exit {
            return Ok(exit);
        }
        loop {
            if let Some(exit) = self.waitpid(0)? {
                return Ok(exit);
            }
        }
    }
}

impl Drop for Child {
    /// A child is never left behind: dropping a live one kills and reaps it (no zombie); a
    /// foreign one is killed and its reaper asked, so its parent reaps it.
    fn drop(&mut self) {
        if self.exit.is_none() && !self.reaped {
            let _ = self.kill();
            let _ = self.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::socket;
    use std::io::Read;

    fn readable(fd: RawFd, timeout_ms: i32) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // Safety: one valid pollfd.
        let n = unsafe { libc::poll(&raw mut pfd, 1, timeout_ms) };
        n == 1
    }

    #[test]
    fn exit_code_is_reported_and_pidfd_fires() {
        let mut child = Spawn::new("/bin/sh", ["-c", "exit 3"]).spawn().unwrap();
        assert!(readable(child.pidfd(), 60_000));
        assert_eq!(child.wait().unwrap(), Exit::Code(3));
        assert_eq!(child.try_wait().unwrap(), Some(Exit::Code(3)));
    }

    #[test]
    fn kill_reports_the_signal() {
        let mut child = Spawn::new("/bin/sleep", ["30"]).spawn().unwrap();
        assert_eq!(child.try_wait().unwrap(), None);
        child.kill().unwrap();
        let exit = child.wait().unwrap();
        assert_eq!(exit, Exit::Signal(libc::SIGKILL));
        assert_eq!(exit.to_string(), "signal 9 (SIGKILL)");
        child.kill().unwrap(); // already dead: not an error
    }

    #[test]
    fn kept_fd_is_inherited_under_the_same_number() {
        let (mut ours, theirs) = socket::pair().unwrap();
        let fd = theirs.as_raw_fd();
        let script = format!("printf hello >&{fd}");
        // bash, not sh: dash cannot redirect to an fd above 9, and with other tests running in
        // parallel (the reactor's open epoll and eventfd descriptors) this one often is.
        let mut child = Spawn::new("/bin/bash", ["-c", script.as_str()])
            .keep_fd(fd)
            .spawn()
            .unwrap();
        drop(theirs);
        let mut got = String::new();
        ours.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello");
        assert_eq!(child.wait().unwrap(), Exit::Code(0));
    }

    /// Plays the fork server for a process that is in fact our child: reaps it with `waitpid`
    /// and records each exit it reports.
    fn recording_reaper() -> (Reaper, Arc<parking_lot::Mutex<Vec<Exit>>>) {
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let reaper: Reaper = Arc::new(move |pid| {
            let mut status = 0;
            // Safety: `status` is a valid out-pointer; `pid` is this test's unreaped child.
            if unsafe { libc::waitpid(pid, &raw mut status, 0) } < 0 {
                return Err(io::Error::last_os_error());
            }
            let exit = Exit::from_wait_status(status).ok_or_else(|| io::Error::other("not an exit"))?;
            record.lock().push(exit);
            Ok(exit)
        });
        (reaper, seen)
    }

    /// A process started without [`Spawn`], so no [`Child`] reaps it on its own.
    #[allow(clippy::zombie_processes)] // the test's reaper waits for it
    fn start(program: &str, args: &[&str]) -> i32 {
        let child = Command::new(program).args(args).spawn().unwrap();
        i32::try_from(child.id()).unwrap()
    }

    #[test]
    fn a_foreign_process_reports_its_exit_through_the_reaper() {
        let (reaper, seen) = recording_reaper();
        let mut child = Child::adopt_foreign(start("/bin/sh", &["-c", "exit 3"]), reaper).unwrap();
        assert!(child.is_foreign());
        assert!(readable(child.pidfd(), 60_000));
        assert_eq!(child.wait().unwrap(), Exit::Code(3));
        assert_eq!(child.try_wait().unwrap(), Some(Exit::Code(3)));
        drop(child);
        assert_eq!(*seen.lock(), [Exit::Code(3)], "the reaper is asked once");
    }

    #[test]
    fn a_running_foreign_process_is_not_reaped_and_is_killed_on_drop() {
        let (reaper, seen) = recording_reaper();
        let mut child = Child::adopt_foreign(start("/bin/sleep", &["30"]), reaper).unwrap();
        assert_eq!(child.try_wait().unwrap(), None);
        assert!(seen.lock().is_empty(), "not asked before the process exited");
        drop(child);
        assert_eq!(*seen.lock(), [Exit::Signal(libc::SIGKILL)]);
    }

    #[test]
    fn a_failing_reaper_is_an_error_and_is_not_asked_again() {
        let (inner, _) = recording_reaper();
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&asked);
        let reaper: Reaper = Arc::new(move |pid| {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = inner(pid); // reap it anyway: no zombie left by the test
            Err(io::Error::other("the parent is gone"))
        });
        let mut child = Child::adopt_foreign(start("/bin/sh", &["-c", "exit 0"]), reaper).unwrap();
        assert!(child.wait().is_err());
        assert!(child.wait().is_err());
        child.kill().unwrap(); // gone: not an error
        drop(child);
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn dropping_a_live_child_kills_and_reaps_it() {
        let child = Spawn::new("/bin/sleep", ["30"]).spawn().unwrap();
        let pid = child.pid();
        drop(child);
        // Safety: kill with signal 0 only checks existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "the child was reaped, so its pid no longer exists");
    }
}
