"""Waiting for file descriptors: the per-fd watcher that cooperative sockets, ``select``,
``poll``, selectors, servers and :func:`wait_read` all go through.

Each hub keeps one :class:`_Watcher` per fd it watches (``hub._io_watchers``): the loop has one
reader and one writer slot per fd, so everything waiting on an fd must share them. A watcher
has an exclusive reader and writer (the greenlet inside a socket's ``recv``/``send``: a second
one is a :class:`ConcurrentObjectUseError`) and any number of links (callbacks run in the hub:
``wait_read``, ``select``, a server's accept loop).

What a wait costs. A socket's wait comes after its syscall said ``EAGAIN``, so an
edge-triggered registration can only be woken by new data. Measured on a loopback ping-pong
(two greenlets, 1-byte messages, this loop, 2 cores): registering a level-triggered reader for
each wait and removing it after (``_add_reader``, the loop's re-arm, ``_remove_reader``: three
``epoll_ctl``) gives 47k round trips/s; an edge-triggered one per wait (``_add_reader_edge`` +
``_remove_reader``: two) 50k; keeping the edge-triggered reader registered between waits (none)
65k. So a socket's reader stays registered ("parked") after a wait that ended normally, and the
first readiness that finds no one waiting removes it (libev's lazy removal, which gevent gets
for free). A wait that times out or is killed removes it at once: nothing stays registered for
a greenlet that gave up. Writers are registered for one wait only: writes rarely block.

Only sockets park: they tell the watcher when their fd closes (``closing_fd``). A raw fd given
to :func:`wait_read` may be closed behind our back (``os.close``) and its number reused, so its
registration is removed after each wait. Waits that may start with the fd already ready (raw
waits, ``select``) re-register, which makes the kernel report the current state: level-triggered
semantics at the start. As libev documents for gevent, a wait may still, rarely, return without
the fd being ready (another greenlet read the data first): use non-blocking fds and retry.
"""

from __future__ import annotations

import errno
import weakref
from collections.abc import Collection
from typing import Any

from greenlet import getcurrent, greenlet

from ..exceptions import ConcurrentObjectUseError
from ._hub import BlockingSwitchOutError, Hub, get_hub, switch_out

__all__ = [
    "ConcurrentObjectUseError",
    "cancel_wait",
    "cancel_wait_ex",
    "wait_read",
    "wait_readwrite",
    "wait_write",
]

READ = 1
WRITE = 2
#: What a link gets instead of READ/WRITE when its fd is closed under it.
CLOSED = -1

_NONE: Any = object()
_TIMED_OUT: Any = object()
_CANCELLED: Any = object()


class cancel_wait_ex(OSError):
    """Raised in a greenlet waiting on a socket that another greenlet closed (``EBADF``)."""

    def __init__(self) -> None:
        super().__init__(errno.EBADF, "File descriptor was closed in another greenlet")


def _fileno(obj: Any) -> int:
    if isinstance(obj, int):
        fd = obj
    else:
        try:
            fd = int(obj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {obj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


def _timeout_error(timeout_exc: Any) -> BaseException | type[BaseException]:
    if timeout_exc is _NONE:
        return TimeoutError("timed out")
    return timeout_exc  # type: ignore[no-any-return]


class _Watcher:
    """One fd's registrations on one hub's loop, and who waits on them (see the module docs)."""

    __slots__ = (
        "__weakref__",
        "_owner",
        "closed",
        "fd",
        "hub",
        "links",
        "loop",
        "owned",
        "reader",
        "reading",
        "writer",
        "writing",
    )

    def __init__(self, hub: Hub, fd: int) -> None:
        self.fd = fd
        self.hub = hub
        self.loop: Any = hub.loop
        self.reader: greenlet | None = None
        self.writer: greenlet | None = None
        self.links: list[Any] = []
        self.reading = False  # an edge-triggered reader is registered with the loop
        self.writing = False  # a writer is registered with the loop
        self.owned = False  # a socket owns it: it may park, and is told when the fd closes
        self.closed = False
        self._owner: Any = None

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<fd {self.fd} watcher{state}>"

    # -- registrations ----------------------------------------------------------------------

    def arm_read(self) -> None:
        """Registers (or re-registers: the kernel then reports the current state) the reader."""
        self.loop._add_reader_edge(self.fd, self._on_read)
        self.reading = True

    def arm_write(self) -> None:
        self.loop._add_writer(self.fd, self._on_write)
        self.writing = True

    def _disarm_read(self) -> None:
        if self.reading:
            self.reading = False
            self.loop._remove_reader(self.fd)

    def _disarm_write(self) -> None:
        if self.writing:
            self.writing = False
            self.loop._remove_writer(self.fd)

    def wants(self, events: int) -> bool:
        """Whether a greenlet or a link waits for ``events`` (READ and/or WRITE)."""
        if events & READ and self.reader is not None:
            return True
        if events & WRITE and self.writer is not None:
            return True
        return any(link.events & events for link in self.links)

    def waited_on(self) -> bool:
        """Whether anything waits on this fd: a parked registration (no one waiting) cannot wake
        anyone, so the hub need not count it when it checks for :class:`BlockedForever`."""
        return self.reader is not None or self.writer is not None or bool(self.links)

    def release(self, events: int, parked: bool) -> None:
        """After a wait on ``events`` ended: drops the registrations no one needs any more (a
        socket's reader stays registered when ``parked``). An idle unowned watcher leaves the
        table."""
        if events & WRITE and self.writing and not self.wants(WRITE):
            self._disarm_write()
        if events & READ and self.reading and not (parked and self.owned) and not self.wants(READ):
            self._disarm_read()
        if not self.owned and not self.reading and not self.writing and not self.waited_on():
            table = self.hub.__dict__.get("_io_watchers")
            if table is not None and table.get(self.fd) is self:
                del table[self.fd]

    # -- callbacks (in the hub) -------------------------------------------------------------

    def _on_read(self) -> None:
        if self.links:
            self._fire_links(READ)
            if self.closed:  # a link's greenlet closed the fd: its waiters are being cancelled
                return
        g = self.reader
        if g is None:
            if self.reading and not self.wants(READ):
                self._disarm_read()  # nobody waits: stop watching (libev's lazy removal)
            return
        self.reader = None
        g.switch(self)

    def _on_write(self) -> None:
        if self.links:
            self._fire_links(WRITE)
            if self.closed:
                return
        g = self.writer
        if g is None:
            if self.writing and not self.wants(WRITE):
                self._disarm_write()
            return
        self.writer = None
        g.switch(self)

    def _fire_links(self, events: int) -> None:
        links = self.links
        for link in tuple(links):
            # A link run before may have removed this one (its greenlet ran and left).
            if link.events & events and link in links:
                link(self, events)

    def _expire_reader(self, g: greenlet) -> None:
        if self.reader is g:
            self.reader = None
            g.switch(_TIMED_OUT)

    def _expire_writer(self, g: greenlet) -> None:
        if self.writer is g:
            self.writer = None
            g.switch(_TIMED_OUT)

    def _cancel_reader(self, g: greenlet) -> None:
        if self.reader is g:
            self.reader = None
            g.switch(_CANCELLED)

    def _cancel_writer(self, g: greenlet) -> None:
        if self.writer is g:
            self.writer = None
            g.switch(_CANCELLED)

    def _cancel_link(self, link: Any) -> None:
        if link in self.links:
            link(self, CLOSED)

    # -- the exclusive waits (sockets) ------------------------------------------------------

    def wait_read(self, timeout: float | None, timeout_exc: Any = _NONE) -> None:
        """Waits (in the current greenlet) until the fd is readable: for a socket whose last read
        said EAGAIN. Raises ``timeout_exc`` (``socket.timeout`` by default) after ``timeout``."""
        current = getcurrent()
        hub = self.hub
        if current is hub:
            raise BlockingSwitchOutError(
                f"plait.green: cannot wait to read fd {self.fd} in the hub itself (an event-loop callback)"
            )
        if self.reader is not None:
            raise ConcurrentObjectUseError(
                f"This socket (fd {self.fd}) is already used by another greenlet: {self.reader!r}"
            )
        if self.closed:
            raise cancel_wait_ex()
        if not self.reading:
            self.arm_read()
        self.reader = current
        timer = None if timeout is None else self.loop.call_later(timeout, self._expire_reader, current)
        try:
            result = hub.switch()
        except BaseException:
            if self.reader is current:
                self.reader = None
            self.release(READ, parked=False)  # killed, or a Timeout: leave nothing registered
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if result is not self:
            if self.reader is current:  # switched to by something else: not ours to keep
                self.reader = None
            self.release(READ, parked=False)
            if result is _TIMED_OUT:
                raise _timeout_error(timeout_exc)
            if result is _CANCELLED:
                raise cancel_wait_ex()

    def wait_write(self, timeout: float | None, timeout_exc: Any = _NONE) -> None:
        """Waits (in the current greenlet) until the fd is writable; as :meth:`wait_read`."""
        current = getcurrent()
        hub = self.hub
        if current is hub:
            raise BlockingSwitchOutError(
                f"plait.green: cannot wait to write fd {self.fd} in the hub itself (an event-loop callback)"
            )
        if self.writer is not None:
            raise ConcurrentObjectUseError(
                f"This socket (fd {self.fd}) is already used by another greenlet: {self.writer!r}"
            )
        if self.closed:
            raise cancel_wait_ex()
        self.writer = current
        timer = None
        try:
            if not self.writing:
                self.arm_write()
            if timeout is not None:
                timer = self.loop.call_later(timeout, self._expire_writer, current)
            result = hub.switch()
        finally:
            if self.writer is current:
                self.writer = None
            if timer is not None:
                timer.cancel()
            self.release(WRITE, parked=False)
        if result is _TIMED_OUT:
            raise _timeout_error(timeout_exc)
        if result is _CANCELLED:
            raise cancel_wait_ex()

    # -- links ------------------------------------------------------------------------------

    def add_link(self, link: Any) -> None:
        """Adds a callback ``link(watcher, events)`` run in the hub on each readiness of
        ``link.events`` (READ, WRITE or both), or once with CLOSED when the fd is closed. The
        reader is re-registered, so an fd already readable is reported at the next poll."""
        if self.closed:
            raise cancel_wait_ex()
        self.links.append(link)
        try:
            if link.events & READ:
                self.arm_read()
            if link.events & WRITE and not self.writing:
                self.arm_write()
        except BaseException:
            self.remove_link(link)
            raise

    def remove_link(self, link: Any, parked: bool = True) -> None:
        """Removes ``link`` (nothing if it is not there) and the registrations no one needs."""
        try:
            self.links.remove(link)
        except ValueError:
            return
        if not self.closed:
            self.release(link.events, parked)

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """The fd is being closed (or detached): unregisters it and raises ``cancel_wait_ex`` in
        whoever waits on it (gevent's ``cancel_wait``)."""
        if self.closed:
            return
        self.closed = True
        self._owner = None
        table = self.hub.__dict__.get("_io_watchers")
        if table is not None and table.get(self.fd) is self:
            del table[self.fd]
        loop = self.loop
        if loop.is_closed():
            self.reading = self.writing = False
            return
        self._disarm_read()
        self._disarm_write()
        self.cancel_waits(READ | WRITE)

    def cancel_waits(self, events: int) -> None:
        """Raises ``cancel_wait_ex`` in the greenlets that wait on ``events`` (soon, from the
        hub); links get CLOSED."""
        loop = self.loop
        if events & READ and self.reader is not None:
            loop.call_soon(self._cancel_reader, self.reader)
        if events & WRITE and self.writer is not None:
            loop.call_soon(self._cancel_writer, self.writer)
        for link in self.links:
            if link.events & events:
                loop.call_soon(self._cancel_link, link)

    def adopt(self, owner: Any) -> None:
        """Marks the watcher as a socket's: ``owner`` tells it when the fd closes, or, if it is
        collected without being closed, the watcher closes itself."""
        previous = self._owner() if self._owner is not None else None
        if previous is not owner and self.reading and not self.waited_on():
            # Registered for another socket object on this fd number, which may have been
            # closed where this hub could not see it (another thread): register again.
            self.reading = False
        self.owned = True
        self._owner = weakref.ref(owner, self._owner_gone)

    def _owner_gone(self, ref: Any) -> None:
        if self._owner is ref:
            self.close()


def watcher_for(hub: Hub, fd: int) -> _Watcher:
    """This hub's watcher of ``fd`` (made on first use)."""
    table = hub.__dict__.get("_io_watchers")
    if table is None:
        table = hub._io_watchers = {}  # type: ignore[attr-defined]
    w = table.get(fd)
    if w is None or w.closed:
        w = table[fd] = _Watcher(hub, fd)
    return w  # type: ignore[no-any-return]


def closing_fd(fd: int, watcher: _Watcher | None = None) -> None:
    """``fd`` is about to be closed or detached: ``watcher`` (a socket's) and the current hub's
    watcher of ``fd`` unregister it and cancel their waits."""
    if watcher is not None:
        watcher.close()
    if fd < 0:
        return
    from ._hub import _local

    hub = getattr(_local, "hub", None)
    if hub is None:
        return
    table = hub.__dict__.get("_io_watchers")
    if table:
        w = table.get(fd)
        if w is not None:
            w.close()


class _OneShot:
    """A link that wakes one waiting greenlet once (raw waits, ``select``, ``poll``)."""

    __slots__ = ("events", "fired", "greenlet")

    def __init__(self, events: int, g: greenlet) -> None:
        self.events = events
        self.greenlet: greenlet | None = g
        self.fired = 0

    def __call__(self, _watcher: Any, events: int) -> None:
        g = self.greenlet
        if g is not None:
            self.greenlet = None
            self.fired = events
            g.switch(_CANCELLED if events == CLOSED else events)

    def expire(self) -> None:
        g = self.greenlet
        if g is not None:
            self.greenlet = None
            g.switch(_TIMED_OUT)


class _Shared:
    """Links on several fds that wake one greenlet once (``select``, ``poll``)."""

    __slots__ = ("events", "shot")

    def __init__(self, events: int, shot: _OneShot) -> None:
        self.events = events
        self.shot = shot

    def __call__(self, watcher: Any, events: int) -> None:
        self.shot(watcher, events)


def _wait_fds(hub: Hub, items: Collection[tuple[int, int]], timeout: float | None) -> Any:
    """Waits until one of ``(fd, events)`` is ready: the events (READ/WRITE), or _TIMED_OUT,
    or _CANCELLED (one was closed). Nothing stays registered for a raw fd afterwards."""
    current = getcurrent()
    if current is hub:
        raise BlockingSwitchOutError(
            "plait.green: cannot wait for an fd in the hub itself (an event-loop callback)"
        )
    shot = _OneShot(READ | WRITE, current)
    added: list[tuple[_Watcher, _Shared]] = []
    timer = None
    try:
        for fd, events in items:
            w = watcher_for(hub, fd)
            link = _Shared(events, shot)
            w.add_link(link)
            added.append((w, link))
        if timeout is None:
            return switch_out(
                hub, "fd readiness", [fd for fd, _ in items] if len(added) != 1 else added[0][0]
            )
        timer = hub.loop.call_later(timeout, shot.expire)
        return hub.switch()
    finally:
        shot.greenlet = None
        if timer is not None:
            timer.cancel()
        for w, link in added:
            w.remove_link(link, parked=shot.fired > 0)


def _wait(fileno: Any, events: int, timeout: float | None, timeout_exc: Any) -> None:
    hub = get_hub()
    result = _wait_fds(hub, ((_fileno(fileno), events),), timeout)
    if result is _TIMED_OUT:
        raise _timeout_error(timeout_exc)
    if result is _CANCELLED:
        raise cancel_wait_ex()


def wait_read(fileno: Any, timeout: float | None = None, timeout_exc: Any = _NONE) -> None:
    """Blocks the current greenlet until ``fileno`` (an fd, or an object with ``fileno()``) is
    ready to read. After ``timeout`` seconds raises ``timeout_exc`` (an exception class or
    instance; ``socket.timeout("timed out")`` by default). If another greenlet closes the
    socket meanwhile, raises ``cancel_wait_ex`` (``EBADF``). Several greenlets may wait on one fd.
    """
    _wait(fileno, READ, timeout, timeout_exc)


def wait_write(
    fileno: Any, timeout: float | None = None, timeout_exc: Any = _NONE, event: Any = _NONE
) -> None:
    """Blocks the current greenlet until ``fileno`` is ready to write; as :func:`wait_read`.
    ``event`` is ignored (gevent's deprecated parameter)."""
    _wait(fileno, WRITE, timeout, timeout_exc)


def wait_readwrite(
    fileno: Any, timeout: float | None = None, timeout_exc: Any = _NONE, event: Any = _NONE
) -> None:
    """Blocks the current greenlet until ``fileno`` is ready to read or to write; as
    :func:`wait_read`."""
    _wait(fileno, READ | WRITE, timeout, timeout_exc)


def cancel_wait(watcher: Any, error: type[BaseException] | BaseException = cancel_wait_ex) -> None:
    """Wakes every greenlet waiting on ``watcher`` (a socket, or an fd) with ``cancel_wait_ex``
    (``EBADF``), as if it had been closed. Only ``cancel_wait_ex`` is supported as ``error``."""
    if error is not cancel_wait_ex:
        raise NotImplementedError(
            "plait.green.cancel_wait: only the default error (cancel_wait_ex) is supported"
        )
    hub = get_hub()
    fd = _fileno(watcher)
    table = hub.__dict__.get("_io_watchers")
    w = None if table is None else table.get(fd)
    if w is not None:
        w.cancel_waits(READ | WRITE)


def owned_watcher(hub: Hub, fd: int, owner: Any) -> _Watcher:
    """The watcher of ``fd`` for a socket ``owner`` (see :meth:`_Watcher.adopt`)."""
    w = watcher_for(hub, fd)
    w.adopt(owner)
    return w
