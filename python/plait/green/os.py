"""The stdlib :mod:`os`, with cooperative ``fork`` and ``waitpid`` and non-blocking fd helpers
(gevent's ``gevent.os``). Every other name is the stdlib's.

``waitpid`` waits through a *pidfd* (``os.pidfd_open``, Linux 5.3+): the process's pidfd becomes
readable when it exits, and the hub's loop watches it like any fd, so no ``SIGCHLD`` handler is
installed and nothing process-wide changes: ``signal.signal(SIGCHLD, ...)``, other threads' and
libraries' own ``waitpid`` calls and children started by any means (``posix_spawn``, C
extensions) all keep working, and every child is waitable cooperatively, not only those forked
here (gevent's libev child watchers own ``SIGCHLD`` and see only children of ``gevent.os.fork``).
Where pidfds are missing (old kernels, other systems), and for the cases a pidfd cannot express
(``pid <= 0``: any child or a process group; ``WUNTRACED``/``WCONTINUED``), ``waitpid`` polls
with ``WNOHANG`` and a cooperative sleep that backs off to 50 ms.

``fork`` resets the child's plait.green (see :func:`reinit`): the parent's hub is set aside and
only the forking greenlet runs on in the child.
"""

from __future__ import annotations

import errno
import os as _os
import warnings
from time import monotonic as _monotonic
from typing import Any

from greenlet import getcurrent

from ._fork import reinit
from ._hub import BlockingSwitchOutError, get_hub, sleep, switch_out
from ._stdlib import copy_globals

__implements__ = ["fork", "waitpid"]
__extensions__ = [
    "fork_and_watch",
    "fork_gevent",
    "make_nonblocking",
    "nb_read",
    "nb_write",
    "reinit",
    "tp_read",
    "tp_write",
]

_read = _os.read
_write = _os.write
_close = _os.close
_raw_fork = _os.fork
_waitpid = _os.waitpid
_WNOHANG = _os.WNOHANG
_pidfd_open = getattr(_os, "pidfd_open", None)
_NOT_EXITS = getattr(_os, "WUNTRACED", 0) | getattr(_os, "WCONTINUED", 0)

#: errnos after which a read or write on a non-blocking fd should wait and try again.
ignored_errors = [errno.EAGAIN, errno.EINTR]

_READY = object()
_TIMED_OUT = object()


def _wait_fd(fd: int, write: bool, timeout: float | None, what: str) -> bool:
    """Waits in the current greenlet until ``fd`` is readable (writable with ``write``): True;
    False when ``timeout`` passes first. The watcher is removed however the wait ends."""
    hub = get_hub()
    current = getcurrent()
    if current is hub:
        raise BlockingSwitchOutError(f"plait.green: cannot wait ({what}) in the hub itself")
    loop = hub.loop
    _watched_by(loop, fd, write)
    try:
        if write:
            loop._add_writer(fd, current.switch, _READY)
        else:
            loop._add_reader(fd, current.switch, _READY)
    except PermissionError:  # epoll refuses regular files (and /dev/null): always ready
        return True
    timer = None if timeout is None else loop.call_later(max(timeout, 0), current.switch, _TIMED_OUT)
    try:
        return switch_out(hub, what, fd) is _READY
    finally:
        if write:
            loop._remove_writer(fd)
        else:
            loop._remove_reader(fd)
        if timer is not None:
            timer.cancel()


def _watched_by(loop: Any, fd: int, write: bool) -> None:
    """Raises if the loop already watches ``fd`` in that direction: a second watcher would
    replace the first, whose greenlet would then never wake."""
    key = loop._fd_key(fd)
    if key is not None and key[2 if write else 1] is not None:
        side = "writing" if write else "reading"
        raise RuntimeError(
            f"plait.green: fd {fd} is already watched for {side} on this hub (another greenlet "
            f"waits on it); one waiter per fd and direction"
        )


def make_nonblocking(fd: int) -> bool | None:
    """Puts ``fd`` in non-blocking mode; True if it changed it (None if it already was)."""
    if _os.get_blocking(fd):
        _os.set_blocking(fd, False)
        return True
    return None


def nb_read(fd: int, n: int) -> bytes:
    """Reads up to ``n`` bytes from the non-blocking ``fd``, waiting cooperatively until some are
    there; ``b""`` at end of file."""
    while True:
        try:
            return _read(fd, n)
        except OSError as exc:
            if exc.errno not in ignored_errors:
                raise
        _wait_fd(fd, False, None, "nb_read")


def nb_write(fd: int, buf: Any) -> int:
    """Writes some of ``buf`` to the non-blocking ``fd``, waiting cooperatively until it can;
    returns how many bytes were written."""
    while True:
        try:
            return _write(fd, buf)
        except OSError as exc:
            if exc.errno not in ignored_errors:
                raise
        _wait_fd(fd, True, None, "nb_write")


def _in_thread(func: Any, *args: Any) -> Any:
    """``func(*args)`` in the hub's thread pool (native threads even when ``threading`` is
    patched), blocking only the current greenlet."""
    try:
        from .threadpool import get_threadpool
    except ImportError:  # plait.green.threadpool not there: the loop's default executor
        from ._aio import await_

        return await_(get_hub().loop.run_in_executor(None, func, *args))
    return get_threadpool().apply(func, args)


def tp_read(fd: int, n: int) -> bytes:
    """Reads up to ``n`` bytes from ``fd`` in a worker thread (for fds that cannot be polled,
    such as regular files), blocking only the current greenlet."""
    return _in_thread(_read, fd, n)  # type: ignore[no-any-return]


def tp_write(fd: int, buf: Any) -> int:
    """Writes ``buf`` to ``fd`` in a worker thread, blocking only the current greenlet; returns
    how many bytes were written."""
    return _in_thread(_write, fd, buf)  # type: ignore[no-any-return]


def fork_gevent() -> int:
    """``os.fork()``, then, in the child, :func:`reinit` (also done by an at-fork hook for every
    fork). gevent's name."""
    with warnings.catch_warnings():
        # 3.12+ warns about forking a threaded process; gevent's fork silences it too.
        warnings.simplefilter("ignore", DeprecationWarning)
        result = _raw_fork()
    if not result:
        reinit()
    return result


def fork() -> int:
    """Forks the process; in the child only the calling greenlet runs on, with a new hub (see
    :func:`reinit`). The child can be waited for cooperatively with :func:`waitpid`."""
    return fork_gevent()


if hasattr(_os, "forkpty"):
    _raw_forkpty = _os.forkpty

    def forkpty_gevent() -> tuple[int, int]:
        """``os.forkpty()``, then, in the child, :func:`reinit`. gevent's name."""
        pid, fd = _raw_forkpty()
        if not pid:
            reinit()
        return pid, fd

    def forkpty() -> tuple[int, int]:
        """``os.forkpty()`` whose child goes on as :func:`fork`'s does."""
        return forkpty_gevent()

    __implements__.append("forkpty")
    __extensions__.append("forkpty_gevent")


def fork_and_watch(callback: Any = None, loop: Any = None, ref: bool = False, fork: Any = fork_gevent) -> int:
    """Forks (with ``fork``) and, in the parent, with ``callback``, calls ``callback(watcher)``
    in a new greenlet once the child exits (``watcher.pid``, ``watcher.rstatus``: the wait
    status). The child is not reaped for it: :func:`waitpid` still returns its status. gevent's
    name (``loop`` and ``ref`` are accepted for compatibility); every child is waitable with
    :func:`waitpid` anyway."""
    pid: int = fork()
    if pid and callback is not None:
        from ._greenlet import spawn

        _watched.add(pid)
        spawn(_watch_and_call, pid, callback)
    return pid


#: Children of :func:`fork_and_watch` whose watcher has not seen their exit yet, and the status
#: of those that :func:`waitpid` reaped first (the watcher can no longer read it then).
_watched: set[int] = set()
_reaped: dict[int, int] = {}


def _note_reaped(result: tuple[int, int]) -> tuple[int, int]:
    if result[0] in _watched:
        _reaped[result[0]] = result[1]
    return result


class _ChildWatcher:
    """What :func:`fork_and_watch` passes its callback (the fields of gevent's child watcher)."""

    def __init__(self, pid: int, rstatus: int) -> None:
        self.pid = self.rpid = pid
        self.rstatus = rstatus


def _watch_and_call(pid: int, callback: Any) -> None:
    try:
        try:
            _wait_exit(pid)
            info = _os.waitid(_os.P_PID, pid, _os.WEXITED | _os.WNOHANG | _os.WNOWAIT)
            status = _wait_status(info) if info is not None else 0
        except ChildProcessError:
            if pid not in _reaped:  # reaped by someone other than this module's waitpid
                raise
            status = _reaped[pid]
    finally:
        _watched.discard(pid)
        _reaped.pop(pid, None)
    callback(_ChildWatcher(pid, status))


def _wait_status(info: Any) -> int:
    """The ``waitpid``-style status of a ``waitid`` result."""
    if info.si_code == getattr(_os, "CLD_EXITED", 1):
        return (info.si_status & 0xFF) << 8
    if info.si_code == getattr(_os, "CLD_DUMPED", 3):
        return (info.si_status & 0x7F) | 0x80
    return info.si_status & 0x7F  # killed by a signal


def _open_pidfd(pid: int) -> int | None:
    """A pidfd for ``pid``, or None (no pidfd support, or no such process)."""
    if _pidfd_open is None:
        return None
    try:
        return _pidfd_open(pid)  # type: ignore[no-any-return]
    except OSError:
        return None


def _exited(pid: int) -> bool:
    """Whether child ``pid`` has exited (it stays waitable: not reaped). Raises
    ``ChildProcessError`` if it is not a child of this process (or was reaped already)."""
    return _os.waitid(_os.P_PID, pid, _os.WEXITED | _os.WNOHANG | _os.WNOWAIT) is not None


def _wait_exit(pid: int, timeout: float | None = None) -> bool:
    """Waits, blocking only the current greenlet, until child ``pid`` has exited (without
    reaping it): True; False after ``timeout``. Raises ``ChildProcessError`` if it is not a
    child of this process."""
    fd = _open_pidfd(pid)  # before the check: the pid cannot be recycled while it is open
    try:
        if _exited(pid):
            return True
        if fd is not None:
            return _wait_fd(fd, False, timeout, f"the exit of process {pid}")
        return _poll(lambda: _exited(pid), timeout)
    finally:
        if fd is not None:
            _close(fd)


def _poll(done: Any, timeout: float | None) -> bool:
    """Calls ``done()`` with cooperative sleeps in between (1 ms doubling up to 50 ms) until it
    returns true: True; False when ``timeout`` passes first."""
    deadline = None if timeout is None else _monotonic() + timeout
    delay = 0.0005
    while not done():
        remaining = None if deadline is None else deadline - _monotonic()
        if remaining is not None and remaining <= 0:
            return False
        delay = min(delay * 2, 0.05)
        sleep(delay if remaining is None else min(delay, remaining))
    return True


def waitpid(pid: int, options: int) -> tuple[int, int]:
    """``os.waitpid``, blocking only the current greenlet (see the module docstring for how).
    With ``WNOHANG`` it is the stdlib's call."""
    if options & _WNOHANG:
        return _note_reaped(_waitpid(pid, options))
    if pid > 0 and not options & _NOT_EXITS:
        try:
            _wait_exit(pid)
        except ChildProcessError:
            pass  # not a child (or reaped meanwhile): the stdlib call raises the same at once
        return _note_reaped(_waitpid(pid, options))  # exited: returns at once
    found: list[tuple[int, int]] = []

    def reaped() -> bool:
        result = _waitpid(pid, options | _WNOHANG)
        if result[0]:
            found.append(result)
        return bool(found)

    _poll(reaped, None)
    return _note_reaped(found[0])


if not hasattr(_os, "fork"):  # pragma: no cover - POSIX only
    __implements__.remove("fork")

__imports__ = copy_globals(_os, globals(), ignore=__implements__ + __extensions__)
__all__ = sorted(set(__implements__ + __extensions__ + __imports__))
