//! The channel's listening thread. It owns a Unix socket in the abstract namespace
//! (`\0plait-<uid>-<pid>`), which leaves no file behind, even after a crash. Abstract sockets
//! ignore file permissions, so every connection's peer credentials (`SO_PEERCRED`) are checked
//! and only the process's own user is answered ([`request::check_peer`]). The thread only
//! reports: it reads one short request line, never code, and each connection has read and write
//! timeouts, so a client that stalls cannot hold it.
//!
//! With [`Options::sigquit`], a `SIGQUIT` handler (`kill -QUIT PID`, Ctrl-\) writes a byte to a
//! pipe the thread watches, and the thread prints the report to stderr, as a JVM prints its thread
//! dump. The handler does nothing else (one `write`, async-signal-safe), so this works when the
//! interpreter cannot run.

use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use super::graph::Graph;
use super::request::{self, Format, Refusal, MAX_REQUEST};
use crate::sync::deadlock::Resource;

/// How long a client may take to send its request, and to read the report.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long, and how much, a client's unread extra bytes are drained before closing.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(100);
const DRAIN_MAX: usize = 1 << 20;

/// What the binding supplies: the interpreter's report, and what it knows without the
/// interpreter.
pub trait Host: Send + Sync + 'static {
    /// The full report (stacks, locks, tasks, ...) built by the interpreter, waiting at most
    /// `wait` for it to start.
    ///
    /// # Errors
    /// Why the interpreter did not answer, as a sentence fragment (`the interpreter did not
    /// respond within 1 s`); the channel then sends the native lock graph with it.
    fn interpreter_report(&self, format: Format, wait: Duration) -> Result<String, String>;

    /// Where `resource` was last acquired, if that is known without the interpreter.
    fn site(&self, resource: &dyn Resource) -> Option<String>;
}

/// How to start a channel.
#[derive(Debug, Clone)]
pub struct Options {
    /// The abstract socket name (without the leading NUL): [`default_name`] for `plait dump PID`.
    pub name: String,
    /// Whether `SIGQUIT` prints the report to stderr (one channel per process may take it).
    pub sigquit: bool,
    /// How long to wait for the interpreter to start its report.
    pub interpreter_wait: Duration,
}

/// The socket name `plait dump PID` looks for: `plait-<uid>-<pid>`.
#[must_use]
pub fn default_name(uid: u32, pid: u32) -> String {
    format!("plait-{uid}-{pid}")
}

/// A running channel: stop it with [`Server::stop`].
pub struct Server {
    name: String,
    wake: OwnedFd,
    /// The descriptors the thread owns (the socket, the pipe's read end): closed by
    /// [`Server::forget_after_fork`] in a child, where the thread is gone.
    thread_fds: [RawFd; 2],
    thread: Option<JoinHandle<()>>,
    sigquit: bool,
}

impl Server {
    /// Binds the socket and starts the thread.
    ///
    /// # Errors
    /// The socket cannot be bound (`AddrInUse`: another process serves the name), the pipe or
    /// thread cannot be created, or another channel already handles `SIGQUIT` (`AlreadyExists`).
    pub fn start(options: Options, host: Arc<dyn Host>) -> io::Result<Self> {
        let addr = SocketAddr::from_abstract_name(options.name.as_bytes())?;
        let listener = UnixListener::bind_addr(&addr)?;
        listener.set_nonblocking(true)?;
        let (wake_read, wake) = pipe()?;
        if options.sigquit {
            install_sigquit(wake.as_raw_fd())?;
        }
        let thread_fds = [listener.as_raw_fd(), wake_read.as_raw_fd()];
        let wait = options.interpreter_wait;
        let spawned = std::thread::Builder::new()
            .name("plait-debug".into())
            .spawn(move || run(&listener, &wake_read, host.as_ref(), wait));
        let thread = match spawned {
            Ok(thread) => thread,
            Err(e) => {
                if options.sigquit {
                    uninstall_sigquit(true);
                }
                return Err(e);
            }
        };
        Ok(Self {
            name: options.name,
            wake,
            thread_fds,
            thread: Some(thread),
            sigquit: options.sigquit,
        })
    }

    /// The abstract socket name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops the thread (after the connection it serves, if any) and closes the socket; `SIGQUIT`
    /// gets its previous handler back.
    pub fn stop(mut self) {
        if self.sigquit {
            uninstall_sigquit(true);
        }
        // Safety: a one-byte write from a live buffer to a descriptor this server owns.
        let _ = unsafe { libc::write(self.wake.as_raw_fd(), b"S".as_ptr().cast(), 1) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// In the child after `fork()`: the thread did not survive, so nothing is joined; the
    /// inherited descriptors are closed (the parent keeps serving), and `SIGQUIT` gets its
    /// previous handler back.
    pub fn forget_after_fork(mut self) {
        if self.sigquit {
            uninstall_sigquit(false);
        }
        // The JoinHandle names a thread of the parent: leave it alone. The thread's descriptors
        // are this process's copies, which nothing else will close.
        std::mem::forget(self.thread.take());
        for fd in self.thread_fds {
            // Safety: inherited descriptors of the channel, used by no one in this process.
            unsafe { libc::close(fd) };
        }
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // Safety: pipe2 writes two descriptors into the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Safety: both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn run(listener: &UnixListener, wake: &OwnedFd, host: &dyn Host, wait: Duration) {
    loop {
        let mut fds = [
            libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Safety: `fds` is a valid array of two pollfd for the duration of the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[1].revents != 0 {
            let mut buf = [0u8; 64];
            // Safety: reads into a live buffer of the given length.
            let n = unsafe { libc::read(wake.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            let got = &buf[..usize::try_from(n).unwrap_or(0)];
            if got.contains(&b'S') {
                return;
            }
            if got.contains(&b'Q') {
                let text = report(host, Format::Text, wait);
                // Safety: fd 2 is borrowed for the write, never closed here (ManuallyDrop).
                let mut stderr = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(2) });
                let _ = stderr.write_all(text.as_bytes());
            }
        }
        if fds[0].revents != 0 {
            while let Ok((stream, _)) = listener.accept() {
                serve(stream, host, wait);
            }
        }
    }
}

/// The report: the interpreter's, or the native lock graph saying why not.
#[must_use]
pub fn report(host: &dyn Host, format: Format, wait: Duration) -> String {
    match host.interpreter_report(format, wait) {
        Ok(text) => text,
        Err(reason) => native_report(host, format, &reason),
    }
}

/// The native lock graph, in `format`, with `reason` for the missing interpreter part.
#[must_use]
pub fn native_report(host: &dyn Host, format: Format, reason: &str) -> String {
    let graph = Graph::snapshot(&|r| host.site(r));
    let pid = std::process::id();
    match format {
        Format::Text => graph.text(pid, reason),
        Format::Json => graph.json(pid, reason),
    }
}

fn serve(mut stream: UnixStream, host: &dyn Host, wait: Duration) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let answer = admit(&mut stream).map(|format| report(host, format, wait));
    let out = match answer {
        Ok(text) => text,
        Err(refusal) => format!("ERROR {refusal}\n"),
    };
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Closing with unread bytes resets the connection, and the client may then lose the answer:
    // read what it still sends, up to a bound and briefly, before closing.
    let _ = stream.set_read_timeout(Some(DRAIN_TIMEOUT));
    let mut sink = [0u8; 4096];
    for _ in 0..DRAIN_MAX / sink.len() {
        if !matches!(stream.read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
}

fn admit(stream: &mut UnixStream) -> Result<Format, Refusal> {
    let peer = peer_uid(stream.as_raw_fd()).ok_or(Refusal::NoCredentials)?;
    // Safety: geteuid has no preconditions and cannot fail.
    request::check_peer(peer, unsafe { libc::geteuid() })?;
    let mut buf = Vec::with_capacity(MAX_REQUEST);
    let mut chunk = [0u8; MAX_REQUEST];
    loop {
        if let Some(line) = request::line(&buf)? {
            return request::parse(line);
        }
        let room = MAX_REQUEST - buf.len();
        match stream.read(&mut chunk[..room]) {
            Ok(0) | Err(_) => return Err(Refusal::Incomplete),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The uid of the process at the other end of a Unix socket.
#[must_use]
pub fn peer_uid(fd: RawFd) -> Option<u32> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // Safety: getsockopt writes at most `len` bytes into `cred`, a live ucred.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(cred).cast(),
            &raw mut len,
        )
    };
    (rc == 0).then_some(cred.uid)
}

// --- SIGQUIT -------------------------------------------------------------------------------------

/// The pipe the handler writes to, -1 when no channel takes `SIGQUIT`.
static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);
/// Handlers running now: `uninstall_sigquit` waits for them before the pipe may close.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);
/// The handler `SIGQUIT` had before (restored by `uninstall_sigquit`).
static PREVIOUS: Mutex<Option<libc::sigaction>> = Mutex::new(None);

extern "C" fn on_sigquit(_: libc::c_int) {
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);
    let fd = SIGNAL_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // Safety: errno is thread-local; it is saved and restored around the one async-signal-safe
        // write, so the interrupted code never sees it change.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, b"Q".as_ptr().cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
}

fn install_sigquit(fd: RawFd) -> io::Result<()> {
    let mut previous = PREVIOUS.lock();
    if SIGNAL_FD.load(Ordering::SeqCst) >= 0 {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "another plait debug channel handles SIGQUIT",
        ));
    }
    SIGNAL_FD.store(fd, Ordering::SeqCst);
    // Safety: a zeroed sigaction is a valid starting point; the handler is an extern "C" fn of the
    // right signature; `old` receives the previous action.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigquit as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&raw mut action.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGQUIT, &raw const action, &raw mut old) != 0 {
            SIGNAL_FD.store(-1, Ordering::SeqCst);
            return Err(io::Error::last_os_error());
        }
        *previous = Some(old);
    }
    Ok(())
}

/// Gives `SIGQUIT` its previous handler back, if the current one is still ours (a program that
/// set its own since keeps it). `wait`: wait for running handlers to finish (not after `fork`,
/// where a handler interrupted in another thread will never finish).
fn uninstall_sigquit(wait: bool) {
    let mut previous = PREVIOUS.lock();
    if let Some(old) = previous.take() {
        // Safety: reads the current action, and restores `old`, a value sigaction produced.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGQUIT, std::ptr::null(), &raw mut current);
            if current.sa_sigaction == on_sigquit as *const () as libc::sighandler_t {
                libc::sigaction(libc::SIGQUIT, &raw const old, std::ptr::null_mut());
            }
        }
    }
    SIGNAL_FD.store(-1, Ordering::SeqCst);
    while wait && IN_HANDLER.load(Ordering::SeqCst) > 0 {
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    struct Silent;

    impl Host for Silent {
        fn interpreter_report(&self, format: Format, _wait: Duration) -> Result<String, String> {
            match format {
                Format::Text => Err("a test host never answers".into()),
                Format::Json => Ok("{}\n".into()),
            }
        }
        fn site(&self, _: &dyn Resource) -> Option<String> {
            None
        }
    }

    fn start(tag: &str) -> Server {
        let options = Options {
            name: format!("plait-test-{}-{tag}", std::process::id()),
            sigquit: false,
            interpreter_wait: Duration::from_millis(10),
        };
        Server::start(options, Arc::new(Silent)).unwrap()
    }

    fn ask(server: &Server, request: &[u8]) -> String {
        let addr = SocketAddr::from_abstract_name(server.name().as_bytes()).unwrap();
        let mut stream = UnixStream::connect_addr(&addr).unwrap();
        let _ = stream.write_all(request);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut out = String::new();
        let _ = std::io::BufReader::new(stream).read_to_string(&mut out);
        out
    }

    #[test]
    fn answers_with_the_interpreter_report_or_the_native_graph() {
        let server = start("answers");
        assert_eq!(ask(&server, b"DUMP JSON\n"), "{}\n");
        let text = ask(&server, b"DUMP\n");
        assert!(
            text.contains("Python stacks unavailable: a test host never answers."),
            "{text}"
        );
        server.stop();
    }

    #[test]
    fn refuses_malformed_and_oversized_requests_and_keeps_serving() {
        let server = start("refuses");
        assert!(ask(&server, b"EVAL __import__('os')\n").starts_with("ERROR unknown request"));
        assert!(ask(&server, &[b'A'; 10_000]).starts_with("ERROR request too long"));
        assert!(ask(&server, b"DUM").starts_with("ERROR incomplete request"));
        assert_eq!(ask(&server, b"DUMP JSON\n"), "{}\n", "still serving");
        server.stop();
    }

    #[test]
    fn a_second_server_cannot_take_the_name() {
        let server = start("twice");
        let again = Options {
            name: server.name().to_owned(),
            sigquit: false,
            interpreter_wait: Duration::ZERO,
        };
        let err = Server::start(again, Arc::new(Silent)).err().expect("name in use");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        server.stop();
    }

    #[test]
    fn the_peer_is_this_user() {
        let (a, _b) = UnixStream::pair().unwrap();
        // Safety: geteuid has no preconditions.
        assert_eq!(peer_uid(a.as_raw_fd()), Some(unsafe { libc::geteuid() }));
        let _ = std::io::BufReader::new(&a).lines();
    }
}
