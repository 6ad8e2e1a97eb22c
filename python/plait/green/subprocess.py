"""The stdlib :mod:`subprocess`, whose ``Popen`` blocks only the calling greenlet (gevent's
``gevent.subprocess``): ``wait(timeout)``, ``communicate(input, timeout)``, and reads and writes
on ``Popen.stdin``/``stdout``/``stderr`` wait on the hub's loop. ``run``, ``call``,
``check_call``, ``check_output``, ``getoutput`` and ``getstatusoutput`` are the stdlib's own
code using this ``Popen``; every other name (``PIPE``, ``TimeoutExpired``, ...) is the stdlib's.

How it waits:

* for the child's exit, on its *pidfd* (``os.pidfd_open``) in the hub's loop, as
  :func:`plait.green.os.waitpid` does (polling with ``WNOHANG`` and a cooperative sleep where
  pidfds are missing);
* on the pipes, for readiness through the hub's loop, then one read (or a write of at most
  ``PIPE_BUF`` bytes, which a writable pipe takes at once). The pipes stay in blocking mode, as
  the stdlib leaves them: a pipe passed on to another child (``stdin=p1.stdout``) must not turn
  non-blocking under it.

Starting a child is the stdlib's ``fork_exec``; ``Popen()`` returns once the child has called
``exec`` (immediate, unless ``preexec_fn`` takes time).
"""

from __future__ import annotations

import io
import selectors as _selectors
import subprocess as _subprocess
from typing import Any

from greenlet import getcurrent

from ._hub import BlockingSwitchOutError, get_hub, switch_out
from ._stdlib import copy_globals, rebind
from .os import _exited, _wait_exit, _wait_fd, _watched_by

__implements__ = ["Popen", "call", "check_call", "check_output", "run"]
__extensions__ = ["getoutput", "getstatusoutput"]

_PIPE_BUF = getattr(_subprocess, "_PIPE_BUF", 512)


class _GreenSelector(_selectors._BaseSelectorImpl):  # type: ignore[misc,name-defined]
    """``selectors``' API on the hub's loop (what the stdlib's ``communicate`` selects with):
    ``select()`` blocks only the current greenlet."""

    def select(self, timeout: float | None = None) -> list[tuple[_selectors.SelectorKey, int]]:
        hub = get_hub()
        current = getcurrent()
        if current is hub:
            raise BlockingSwitchOutError("plait.green: cannot select() in the hub itself")
        loop = hub.loop
        fired: dict[int, int] = {}
        wake: list[Any] = []

        def fire(fd: int, event: int) -> None:
            fired[fd] = fired.get(fd, 0) | event
            if not wake:  # wake up after this batch of callbacks: the others are seen too
                wake.append(loop.call_soon(current.switch))

        watched: list[tuple[int, bool]] = []
        timer = None
        try:
            for fd, key in self._fd_to_key.items():
                for write, event in ((False, _selectors.EVENT_READ), (True, _selectors.EVENT_WRITE)):
                    if key.events & event:
                        _watched_by(loop, fd, write)
                        try:
                            (loop._add_writer if write else loop._add_reader)(fd, fire, fd, event)
                        except PermissionError:  # a regular file or /dev/null: always ready (poll's answer)
                            fire(fd, event)
                            continue
                        watched.append((fd, write))
            if timeout is not None:
                timer = loop.call_later(max(timeout, 0), current.switch)
            switch_out(hub, "select() on subprocess pipes", None)
        finally:
            for fd, write in watched:
                (loop._remove_writer if write else loop._remove_reader)(fd)
            for handle in wake:
                handle.cancel()
            if timer is not None:
                timer.cancel()
        ready = []
        for fd, events in fired.items():
            key = self._fd_to_key.get(fd)
            if key is not None:
                ready.append((key, events & key.events))
        return ready


class _GreenPipe(io.RawIOBase):
    """A pipe end of a :class:`Popen` (wraps the stdlib's ``FileIO``): each read or write first
    waits for readiness on the hub's loop, so it never blocks the thread."""

    def __init__(self, raw: io.FileIO) -> None:
        super().__init__()
        self._raw = raw

    @property
    def name(self) -> Any:
        return self._raw.name

    @property
    def mode(self) -> str:
        return self._raw.mode

    def fileno(self) -> int:
        return self._raw.fileno()

    def readable(self) -> bool:
        return self._raw.readable()

    def writable(self) -> bool:
        return self._raw.writable()

    def isatty(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        self._check_open()
        _wait_fd(self._raw.fileno(), False, None, "a read from a subprocess pipe")
        return self._raw.readinto(buffer)  # type: ignore[no-any-return]

    def write(self, data: Any) -> int:
        self._check_open()
        with memoryview(data) as view, view.cast("B") as octets:
            if not octets:
                return 0
            _wait_fd(self._raw.fileno(), True, None, "a write to a subprocess pipe")
            # A writable pipe takes PIPE_BUF bytes at once; more could block the thread.
            return self._raw.write(octets[:_PIPE_BUF])  # type: ignore[no-any-return]

    def close(self) -> None:
        if not self.closed:
            try:
                super().close()
            finally:
                self._raw.close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file.")

    def __repr__(self) -> str:
        return f"<plait.green.subprocess pipe fd={self._raw.fileno() if not self.closed else -1}>"


def _cooperative(stream: Any, buffer_size: int) -> Any:
    """The same stream (text or binary, buffered or not) over a :class:`_GreenPipe`."""
    if isinstance(stream, io.TextIOWrapper):
        text = {
            "encoding": stream.encoding,
            "errors": stream.errors,
            "line_buffering": stream.line_buffering,
            "write_through": stream.write_through,
        }
        return io.TextIOWrapper(_cooperative(stream.detach(), buffer_size), **text)
    if isinstance(stream, (io.BufferedReader, io.BufferedWriter)):
        raw = stream.detach()
        return type(stream)(_GreenPipe(raw), buffer_size)  # type: ignore[arg-type]
    if isinstance(stream, io.FileIO):
        return _GreenPipe(stream)
    return stream


class Popen(_subprocess.Popen):  # type: ignore[type-arg]
    """``subprocess.Popen`` that blocks only the calling greenlet: ``wait``, ``communicate``,
    ``poll`` and the ``stdin``/``stdout``/``stderr`` streams work as the stdlib's, waiting on the
    hub's loop. Same signature and exceptions (``TimeoutExpired`` is the stdlib's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bufsize = kwargs.get("bufsize", args[1] if len(args) > 1 else -1)
        buffer_size = bufsize if isinstance(bufsize, int) and bufsize > 1 else io.DEFAULT_BUFFER_SIZE
        for name in ("stdin", "stdout", "stderr"):
            stream = getattr(self, name)
            if stream is not None:
                setattr(self, name, _cooperative(stream, buffer_size))

    def _wait(self, timeout: float | None) -> int | None:  # type: ignore[override]
        """Waits for the child to exit, on its pidfd in the hub's loop; ``TimeoutExpired``
        after ``timeout``."""
        if self.returncode is not None:
            return self.returncode
        endtime = None if timeout is None else _subprocess._time() + timeout  # type: ignore[attr-defined]
        while self.returncode is None:
            if self._waitpid_lock.acquire(False):  # type: ignore[attr-defined]
                try:
                    if self.returncode is not None:
                        break  # another thread waited
                    done = True
                    try:
                        done = _exited(self.pid)
                    except ChildProcessError:
                        pass  # reaped elsewhere: _try_wait says so
                    if done:
                        pid, status = self._try_wait(_os_WNOHANG)  # type: ignore[attr-defined]
                        if pid == self.pid:
                            self._handle_exitstatus(status)  # type: ignore[attr-defined]
                            break
                finally:
                    self._waitpid_lock.release()  # type: ignore[attr-defined]
            remaining = self._remaining_time(endtime)  # type: ignore[attr-defined]
            if remaining is not None and remaining <= 0:
                raise _subprocess.TimeoutExpired(self.args, timeout)
            try:
                _wait_exit(self.pid, remaining)
            except ChildProcessError:
                pass  # reaped by another thread meanwhile: the next round sees it
        return self.returncode


_os_WNOHANG = _subprocess.os.WNOHANG  # type: ignore[attr-defined]


class _Globals(dict):  # type: ignore[type-arg]
    """The globals of the stdlib's code copied here: the stdlib module's own, read live (so
    ``mock.patch.object(subprocess, "Popen", ...)`` reaches them, as it does the stdlib's),
    except that where the stdlib module still holds its original ``Popen``, ``run``, ... this
    module's is used."""

    def __missing__(self, name: str) -> Any:
        value = vars(_subprocess)[name]
        green = _GREEN.get(name)
        if green is not None and value is green[0]:
            return green[1]
        return value


_GLOBALS = _Globals(_PopenSelector=_GreenSelector, __name__=__name__)

Popen._communicate = rebind(_subprocess.Popen._communicate, _GLOBALS)  # type: ignore[attr-defined]

run = rebind(_subprocess.run, _GLOBALS)
call = rebind(_subprocess.call, _GLOBALS)
check_call = rebind(_subprocess.check_call, _GLOBALS)
check_output = rebind(_subprocess.check_output, _GLOBALS)
getstatusoutput = rebind(_subprocess.getstatusoutput, _GLOBALS)
getoutput = rebind(_subprocess.getoutput, _GLOBALS)
#: ``{name: (the stdlib's original, this module's)}``
_GREEN = {
    name: (getattr(_subprocess, name), globals()[name])
    for name in ("Popen", "run", "call", "check_call", "check_output", "getstatusoutput", "getoutput")
}
for _func in (run, call, check_call, check_output, getstatusoutput, getoutput):
    _func.__module__ = __name__
del _func

__imports__ = copy_globals(
    _subprocess, globals(), ignore=__implements__ + __extensions__, extra=["list2cmdline"]
)
__all__ = sorted(set(__implements__ + __extensions__ + __imports__))
