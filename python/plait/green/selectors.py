"""Cooperative selectors (gevent's ``gevent.selectors``): :class:`GeventSelector`, also
``DefaultSelector``, whose ``select()`` blocks only the current greenlet. ``SelectSelector``
and ``PollSelector`` are the standard library's over :mod:`plait.green.select`; the standard
library's other names (``BaseSelector``, ``SelectorKey``, ``EVENT_READ``, ...) are here
unchanged. ``EpollSelector`` (and kqueue's, devpoll's) are left out: they block the thread
(see :mod:`plait.green.select`).
"""

from __future__ import annotations

import os
import select as _stdselect
import selectors as _stdselectors
import time
from typing import Any

from ._hub import Hub, get_hub, sleep
from ._io import READ, WRITE, _wait_fds
from .select import poll as _green_poll
from .select import select as _green_select

_removed = ["EpollSelector", "KqueueSelector", "DevpollSelector"]
_std_names = [n for n in _stdselectors.__dict__ if not n.startswith("_") and n not in _removed]
globals().update({n: getattr(_stdselectors, n) for n in _std_names})

#: The names this module implements cooperatively (the rest are the standard library's).
__implements__ = ["DefaultSelector", "PollSelector", "SelectSelector"]
__all__ = sorted(
    {"BaseSelector", "EVENT_READ", "EVENT_WRITE", "SelectorKey", "GeventSelector", *__implements__}
)

EVENT_READ = _stdselectors.EVENT_READ
EVENT_WRITE = _stdselectors.EVENT_WRITE
SelectorKey = _stdselectors.SelectorKey
BaseSelector = _stdselectors.BaseSelector
_BaseSelectorImpl: Any = _stdselectors._BaseSelectorImpl  # type: ignore[attr-defined]


class GeventSelector(_BaseSelectorImpl):
    """A selector whose :meth:`select` blocks only the current greenlet (gevent's
    ``GeventSelector``). As for every selector, unregister a file before closing it.

    Each ``select()`` asks the kernel first (one ``poll`` with a zero timeout over the registered
    fds, kept between calls); only when nothing is ready does it wait on the hub for one of them,
    then asks again, so results are exact (level-triggered) like the standard library's."""

    def __init__(self, hub: Hub | None = None) -> None:
        super().__init__()
        self.hub = hub if hub is not None else get_hub()
        self._kernel: Any = _stdselect.poll()

    def register(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        """Watches ``fileobj`` for ``events`` (EVENT_READ, EVENT_WRITE); its ``SelectorKey``.
        ``ValueError`` for an invalid fd, ``KeyError`` if it is already registered."""
        key = super().register(fileobj, events, data)
        try:
            os.fstat(key.fd)
        except OSError as exc:
            super().unregister(fileobj)
            raise ValueError(f"Invalid file descriptor: {key.fd}") from exc
        self._kernel.register(key.fd, _mask(events))
        return key  # type: ignore[no-any-return]

    def unregister(self, fileobj: Any) -> SelectorKey:
        """Stops watching ``fileobj``; its former ``SelectorKey``."""
        key = super().unregister(fileobj)
        try:
            self._kernel.unregister(key.fd)
        except KeyError:
            pass
        return key  # type: ignore[no-any-return]

    def select(self, timeout: float | None = None) -> list[tuple[SelectorKey, int]]:
        """Waits up to ``timeout`` seconds (None: without limit; <= 0: not at all) for
        registered files to be ready: ``[(key, events), ...]``."""
        if timeout is not None and timeout < 0:
            timeout = 0
        ready = self._kernel.poll(0)
        if ready or timeout == 0:
            sleep(0)
            return self._keys(ready)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if left == 0.0:
                return []
            items = [(key.fd, _io_events(key.events)) for key in self._fd_to_key.values()]
            _wait_fds(self.hub, items, left)
            ready = self._kernel.poll(0)
            if ready:
                return self._keys(ready)

    def _keys(self, ready: list[tuple[int, int]]) -> list[tuple[SelectorKey, int]]:
        out = []
        fd_to_key = self._fd_to_key
        for fd, mask in ready:
            key = fd_to_key.get(fd)
            if key is None:
                continue
            events = 0
            if mask & ~_stdselect.POLLOUT:
                events |= EVENT_READ
            if mask & ~_stdselect.POLLIN:
                events |= EVENT_WRITE
            if events & key.events:
                out.append((key, events & key.events))
        return out

    def close(self) -> None:
        """Unregisters everything."""
        self._kernel = _stdselect.poll()
        super().close()


def _mask(events: int) -> int:
    return (_stdselect.POLLIN if events & EVENT_READ else 0) | (
        _stdselect.POLLOUT if events & EVENT_WRITE else 0
    )


def _io_events(events: int) -> int:
    return (READ if events & EVENT_READ else 0) | (WRITE if events & EVENT_WRITE else 0)


class SelectSelector(_stdselectors.SelectSelector):
    """The standard library's ``SelectSelector`` over the cooperative :func:`select`."""

    def _select(self, r: Any, w: Any, _: Any, timeout: float | None = None) -> Any:
        return _green_select(r, w, _, timeout)


class PollSelector(_stdselectors.PollSelector):
    """The standard library's ``PollSelector`` over the cooperative :class:`poll`."""

    _selector_cls = _green_poll


DefaultSelector = GeventSelector

del _std_names
