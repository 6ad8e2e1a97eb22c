"""The fork server of ``ProcessPool(start_method="forkserver")``:
``python -m plait.processes._forkserver [MODULE ...] FD``.

Each pool has its own, started the spawn way with one end of a ``SOCK_SEQPACKET`` socket pair as
``FD``. It imports what workers need once (plait's worker loop, and the ``MODULE``s the pool
names: its own, cloudpickle), then answers the pool's requests, one at a time:

- ``FORK`` with a worker socket attached (``SCM_RIGHTS``): it forks; the child closes ``FD`` and
  serves that socket as a worker (``_worker.serve``), exactly as a spawned worker would. The reply
  is the child's pid.
- ``STATUS pid``: the pool saw worker ``pid`` exit (through a pidfd: workers are the server's
  children, not the pool's, so the pool cannot ``waitpid`` them); the server reaps it and replies
  with its wait status, so a crash is still reported with its exit code or signal.

At end of stream on ``FD`` (the pool shut down, or its process died) the server kills the workers
it has not reaped, reaps them and exits. It ignores SIGINT, as workers do: Ctrl-C is the pool's.

The pool's half, :class:`ForkServer`, lives here too, so the wire format is in one file. This
module imports nothing of the pool: the pool tells the server what to preload.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import select
import signal
import socket
import struct
import sys
import threading
import weakref
from typing import NoReturn

from ._worker import serve_forked

# Requests: an opcode and an argument (the pid for STATUS); FORK carries one fd.
REQUEST = struct.Struct("<Bq")
# Replies: 0 or an errno, and the value (a pid, or a wait status).
REPLY = struct.Struct("<qq")
FORK = 1
STATUS = 2

# How long a server that was told to stop may take to reap its workers before it is killed.
STOP_GRACE = 10.0


# --- the server --------------------------------------------------------------------------------


def _run_worker(control: socket.socket, fd: int) -> NoReturn:  # pragma: no cover - in the child
    """In the forked child: serve the worker socket ``fd``, then exit without teardown."""
    # Closing the control socket first: the pool sees end of stream when the server dies,
    # workers or not.
    serve_forked(fd, control.close)


def _fork(control: socket.socket, fd: int, children: set[int]) -> tuple[int, int]:
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(fd)
        return exc.errno or errno.EAGAIN, 0
    if pid == 0:  # pragma: no cover - in the child
        _run_worker(control, fd)
    os.close(fd)
    children.add(pid)
    return 0, pid


def serve(control: socket.socket, children: set[int]) -> None:
    """Answer requests until end of stream; ``children`` holds the workers not reaped yet."""
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(control, REQUEST.size, 1)
        except OSError:  # the pool's process is gone
            return
        if not msg:
            for fd in fds:
                os.close(fd)
            return
        op, arg = REQUEST.unpack(msg) if len(msg) == REQUEST.size else (0, 0)
        if op == FORK and len(fds) == 1:
            err, value = _fork(control, fds[0], children)
        elif op == STATUS and not fds and arg in children:
            # The pool asks once the worker exited (its pidfd fired): this does not block.
            children.discard(arg)
            try:
                _, value = os.waitpid(arg, 0)
                err = 0
            except ChildProcessError:
                err, value = errno.ECHILD, 0
        else:
            for fd in fds:
                os.close(fd)
            err, value = errno.EINVAL, 0
        try:
            control.send(REPLY.pack(err, value))
        except OSError:  # the pool's process died while asking
            return


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    control = socket.socket(fileno=int(argv[-1]))
    # What every worker needs is imported once here (_worker, above) rather than in each.
    for name in argv[1:-1]:
        importlib.import_module(name)

    children: set[int] = set()
    try:
        serve(control, children)
    finally:
        # Workers the pool did not ask about: it is gone, so nobody will read their results.
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    return 0


# --- the pool's side ---------------------------------------------------------------------------


class _ServerGone(Exception):
    """The server's socket reached end of stream: it died (and has been reaped)."""


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "unknown"
    return f"was killed by signal {-code} ({name})"


def _wait(pid: int, timeout: float) -> None:
    """Reap child ``pid``, killing it if it has not exited within ``timeout`` seconds."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    try:
        if pidfd >= 0 and not select.select([pidfd], [], [], timeout)[0]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # our unreaped child: the pid cannot be reused
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


class ForkServer:
    """A pool's fork server, seen from the pool: the dispatcher's ``launch`` and ``status`` hooks.

    The server starts on the first ``launch`` and again if it died meanwhile (the workers it
    started go on serving; only their exit status is lost). ``close`` stops and reaps it.
    """

    module = "plait.processes._forkserver"
    """What the server runs (``python -m module [PRELOAD ...] FD``)."""

    def __init__(self, executable: str, preload: tuple[str, ...] = ()) -> None:
        """``preload``: modules the server imports before it forks workers (those they need)."""
        self._executable = executable
        self._preload = preload
        self._lock = threading.Lock()
        self._control: socket.socket | None = None
        self._pid = 0
        self._children: set[int] = set()
        _servers.add(self)

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._pid or None

    def launch(self, fd: int) -> int:
        """Start a worker serving socket ``fd`` (the server forks it); returns its pid.

        Called by the dispatcher, which closes ``fd`` afterwards.
        """
        with self._lock:
            if self._control is not None:
                try:
                    return self._fork(fd)
                except _ServerGone:
                    pass  # it died since it started the last worker: start a new one
            self._start()
            try:
                return self._fork(fd)
            except _ServerGone as gone:
                raise OSError(
                    f"the forkserver process {gone} before it could start a worker; its error, if any, "
                    "is on stderr"
                ) from None

    def status(self, pid: int) -> int:
        """The wait status of worker ``pid``, which has exited (its parent, the server, reaps it).

        Called by the dispatcher once the worker's pidfd fired.
        """
        with self._lock:
            unknown = f"the exit status of worker {pid} is unknown: the forkserver"
            if self._control is None or pid not in self._children:
                raise OSError(f"{unknown} that started it is gone")
            try:
                status = self._request(STATUS, pid)
            except _ServerGone as gone:
                raise OSError(f"{unknown} process {gone}") from None
            self._children.discard(pid)
            return status

    def close(self) -> None:
        """Stop the server and reap it; it kills and reaps any worker the pool left behind."""
        with self._lock:
            control, pid = self._control, self._pid
            self._control, self._pid = None, 0
            self._children.clear()
        if control is not None:
            control.close()  # end of stream: the server exits
        if pid:
            _wait(pid, STOP_GRACE)

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # The server gets its end under a fixed number (not close-on-exec in the child only,
            # so no process spawned meanwhile by another thread inherits it) and /dev/null as stdin.
            target = 4 if theirs.fileno() == 3 else 3
            pid = os.posix_spawn(
                self._executable,
                [self._executable, "-m", self.module, *self._preload, str(target)],
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, theirs.fileno(), target),
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                ],
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._control, self._pid = ours, pid
        self._children = set()

    def _fork(self, fd: int) -> int:
        pid = self._request(FORK, 0, fd)
        self._children.add(pid)
        return pid

    def _request(self, op: int, arg: int, fd: int | None = None) -> int:
        control = self._control
        assert control is not None
        try:
            if fd is None:
                control.send(REQUEST.pack(op, arg))
            else:
                socket.send_fds(control, [REQUEST.pack(op, arg)], [fd])
            reply = control.recv(REPLY.size)
        except (BrokenPipeError, ConnectionResetError):
            reply = b""
        if len(reply) != REPLY.size:
            raise _ServerGone(self._reap_server())
        err, value = REPLY.unpack(reply)
        if err:
            raise OSError(err, f"the forkserver could not do it: {os.strerror(err)}")
        return value

    def _reap_server(self) -> str:
        """After end of stream: reap the server; returns how it ended."""
        control, pid = self._control, self._pid
        self._control, self._pid = None, 0
        self._children.clear()  # they go on serving, but nobody can reap them for us any more
        if control is not None:
            control.close()
        if not pid:
            return "is not running"
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # it closed its socket, so it is exiting: make sure
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:  # someone else reaped it (SIGCHLD set to SIG_IGN, say)
            return "exited"
        return _describe(status)

    def _forget(self) -> None:
        """In a forked copy of the pool's process: drop the socket (the server's end of stream
        must not wait for the copy) without touching the server, which is not the copy's child."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        if self._control is not None:
            self._control.close()
        self._control, self._pid = None, 0
        self._children = set()


_servers: weakref.WeakSet[ForkServer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for server in list(_servers):
        server._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)


if __name__ == "__main__":
    code = main(sys.argv)
    os._exit(code)
