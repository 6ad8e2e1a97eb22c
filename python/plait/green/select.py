"""Cooperative ``select`` and ``poll`` (gevent's ``gevent.select``): they block only the current
greenlet. The standard library's other names (the ``POLL*`` constants, ``error``) are here
unchanged.

Like gevent's patched module, this one has no ``epoll``, ``kqueue``/``kevent`` or ``devpoll``:
an epoll object's ``poll()`` waits in the kernel and would block every greenlet of the thread,
and code that picks the best mechanism available (``selectors.DefaultSelector``, asyncio)
falls back to ``poll``/``select`` when they are missing. (``plait.green.selectors`` gives a
cooperative ``DefaultSelector``.)

Results are exact: each call first asks the kernel without waiting (the standard library's
``select``/``poll`` with a zero timeout); only when nothing is ready does it wait on the hub for
one of the fds, then asks the kernel again.
"""

from __future__ import annotations

import select as _stdselect
import time
from collections.abc import Iterable
from typing import Any

from ._hub import get_hub, sleep
from ._io import READ, WRITE, _fileno, _wait_fds

_std_names = [n for n in dir(_stdselect) if not n.startswith("_")]
#: What the patched module leaves out: blocking, see the module docs.
__removed__ = ["epoll", "kqueue", "kevent", "devpoll"]
globals().update({n: getattr(_stdselect, n) for n in _std_names if n not in __removed__})

#: The names this module implements cooperatively (the rest are the standard library's).
__implements__ = ["poll", "select"]
__all__ = sorted((set(_std_names) - set(__removed__)) | set(__implements__))

error = _stdselect.error
POLLIN = _stdselect.POLLIN
POLLPRI = _stdselect.POLLPRI
POLLOUT = _stdselect.POLLOUT
POLLERR = _stdselect.POLLERR
POLLHUP = _stdselect.POLLHUP
POLLNVAL = _stdselect.POLLNVAL
_READ_BITS = POLLIN | POLLPRI | getattr(_stdselect, "POLLRDNORM", 0) | getattr(_stdselect, "POLLRDBAND", 0)
_WRITE_BITS = POLLOUT | getattr(_stdselect, "POLLWRNORM", 0) | getattr(_stdselect, "POLLWRBAND", 0)

_original_select = _stdselect.select
_original_poll = _stdselect.poll


def _left(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def select(
    rlist: Iterable[Any], wlist: Iterable[Any], xlist: Iterable[Any], timeout: float | None = None
) -> Any:
    """``select.select`` that blocks only the current greenlet: waits until some of ``rlist``
    can be read or of ``wlist`` written (or ``xlist`` has an exceptional condition, which is
    checked but not waited for, as in gevent), at most ``timeout`` seconds. Returns the three
    lists of ready objects, as the standard library."""
    if timeout is not None and timeout < 0:
        raise ValueError("timeout must be non-negative")
    rlist = rlist if isinstance(rlist, (list, tuple)) else list(rlist)
    wlist = wlist if isinstance(wlist, (list, tuple)) else list(wlist)
    xlist = xlist if isinstance(xlist, (list, tuple)) else list(xlist)
    ready = _original_select(rlist, wlist, xlist, 0)
    if ready[0] or ready[1] or ready[2] or timeout == 0:
        sleep(0)  # a switch point still, so a loop of selects cannot starve other greenlets
        return ready
    items: dict[int, int] = {}
    for obj in rlist:
        fd = _fileno(obj)
        items[fd] = items.get(fd, 0) | READ
    for obj in wlist:
        fd = _fileno(obj)
        items[fd] = items.get(fd, 0) | WRITE
    hub = get_hub()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = _left(deadline)
        if left == 0.0:
            return [], [], []
        _wait_fds(hub, items.items(), left)
        ready = _original_select(rlist, wlist, xlist, 0)
        if ready[0] or ready[1] or ready[2]:
            return ready


class poll:
    """``select.poll`` that blocks only the current greenlet in :meth:`poll`. ``POLLPRI`` is
    reported when it is ready, but waiting for it alone is waiting for readability."""

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}
        self._kernel = _original_poll()

    def register(self, fd: Any, eventmask: int = POLLIN | POLLPRI | POLLOUT) -> None:
        """Watches ``fd`` (an fd or an object with ``fileno()``) for ``eventmask``."""
        fileno = _fileno(fd)
        self._kernel.register(fileno, eventmask)
        self._fds[fileno] = eventmask

    def modify(self, fd: Any, eventmask: int) -> None:
        """Changes the events watched on a registered ``fd`` (``FileNotFoundError`` if it is
        not registered, as the standard library)."""
        fileno = _fileno(fd)
        self._kernel.modify(fileno, eventmask)
        self._fds[fileno] = eventmask

    def unregister(self, fd: Any) -> None:
        """Stops watching ``fd`` (``KeyError`` if it is not registered)."""
        fileno = _fileno(fd)
        del self._fds[fileno]
        self._kernel.unregister(fileno)

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        """Waits up to ``timeout`` milliseconds (None or negative: without limit) for a
        registered fd to be ready; ``[(fd, events), ...]`` as the standard library."""
        if timeout is not None:
            timeout = None if timeout < 0 else timeout / 1000.0
        ready = self._kernel.poll(0)
        if ready or timeout == 0:
            sleep(0)
            return ready  # type: ignore[no-any-return]
        hub = get_hub()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _left(deadline)
            if left == 0.0:
                return []
            items = [(fd, _events_of(mask)) for fd, mask in self._fds.items()]
            # Woken by readiness, the timeout, or an fd closed under it (the kernel then
            # reports POLLNVAL): the kernel says which below.
            _wait_fds(hub, items, left)
            ready = self._kernel.poll(0)
            if ready:
                return ready  # type: ignore[no-any-return]


def _events_of(mask: int) -> int:
    events = (READ if mask & _READ_BITS else 0) | (WRITE if mask & _WRITE_BITS else 0)
    return events or READ  # errors and hang-ups are reported with any interest


del _std_names
