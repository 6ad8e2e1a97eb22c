"""Queues for greenlets (gevent's ``gevent.queue``): :class:`Queue` (with ``task_done``/``join``
and 3.13's ``shutdown``), :class:`SimpleQueue`, :class:`LifoQueue`, :class:`PriorityQueue`,
:class:`JoinableQueue` (an alias of :class:`Queue`, as in gevent 25.4) and :class:`Channel` (a
rendezvous: ``put`` waits until a getter takes the item). :class:`Empty` and :class:`Full` are
the stdlib's ``queue.Empty`` and ``queue.Full``; :class:`ShutDown` is
:class:`plait.exceptions.ShutDown` (``queue.ShutDown`` too on Python 3.13+).

Blocked getters (and putters) are served in the order they blocked. A blocked greenlet is woken
by a switch from the hub and takes its item itself before anything else runs, so a greenlet
killed or timed out while it waits takes nothing: no item is lost or given twice.

Iterating a queue gets items until one is ``StopIteration`` (the class itself)::

    q = Queue()
    q.put(1); q.put(2); q.put(StopIteration)
    assert list(q) == [1, 2]
"""

from __future__ import annotations

import collections
import queue as _stdlib_queue
import types
from collections.abc import Callable, Iterable, Iterator, Sized
from heapq import heapify, heappop, heappush
from typing import Any

from greenlet import getcurrent, greenlet

from ..exceptions import ShutDown
from ._hub import Hub
from ._linkable import _TIMED_OUT, capture_hub, park, schedule
from .event import Event

__all__ = [
    "Channel",
    "Empty",
    "Full",
    "JoinableQueue",
    "LifoQueue",
    "PriorityQueue",
    "Queue",
    "ShutDown",
    "SimpleQueue",
]

#: The stdlib's exceptions themselves, as gevent re-exports them.
Empty = _stdlib_queue.Empty
Full = _stdlib_queue.Full


class _Token:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


#: What the hub switches a waiter back with: go on (an item or a slot is there for it), or the
#: queue was shut down.
_WOKEN: Any = _Token("woken")
_SHUT: Any = _Token("shut down")


def _safe_remove(waiters: collections.deque[Any], item: Any) -> None:
    try:
        waiters.remove(item)
    except ValueError:
        pass  # the hub took it off already (it woke it)


def _wake(hub: Hub | None, g: greenlet, value: Any) -> None:
    """Switches into ``g`` (from the hub); an error it dies with is reported, not raised into
    the waking loop (which goes on waking the others)."""
    try:
        g.switch(value)
    except BaseException as exc:
        if hub is None:
            raise
        hub.handle_error(g, exc)


def _check_timeout(block: bool, timeout: float | None) -> None:
    if block and timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class SimpleQueue:
    """A FIFO queue for greenlets, without ``task_done``/``join`` (gevent's ``SimpleQueue``).

    ``maxsize`` None (or <= 0) means unbounded; ``Queue(0)`` warns as in gevent, since it once
    meant a :class:`Channel`. ``items`` fills it at the start. ``len(q)`` is :meth:`qsize`, but
    a queue is always true.
    """

    __slots__ = (
        "__weakref__",
        "_event_unlock",
        "_maxsize",
        "getters",
        "hub",
        "is_shutdown",
        "putters",
        "queue",
    )

    __class_getitem__ = classmethod(types.GenericAlias)

    def __init__(self, maxsize: int | None = None, items: Iterable[Any] = (), _warn_depth: int = 2) -> None:
        if maxsize is not None and maxsize <= 0:
            if maxsize == 0:
                import warnings

                warnings.warn(
                    "Queue(0) now equivalent to Queue(None); if you want a channel, use Channel",
                    DeprecationWarning,
                    stacklevel=_warn_depth,
                )
            maxsize = None
        self._maxsize = maxsize if maxsize is not None else -1
        #: Greenlets blocked in get/peek, then in put, in the order they blocked.
        self.getters: collections.deque[greenlet] = collections.deque()
        self.putters: collections.deque[greenlet] = collections.deque()
        #: The hub of the greenlets that wait on it (bound on first wait).
        self.hub: Hub | None = None
        self._event_unlock: Any = None
        self.is_shutdown = False
        self.queue: Any = None
        if items:
            self._init(maxsize, items)
        else:
            self._init(maxsize)  # a stdlib-style subclass's _init(maxsize)

    # The stdlib's bottleneck methods, which subclasses override.
    def _init(self, maxsize: int | None, items: Iterable[Any] = ()) -> None:
        self.queue = self._create_queue(items)

    def _create_queue(self, items: Iterable[Any] = ()) -> Any:
        return collections.deque(items)

    def _qsize(self) -> int:
        return len(self.queue)

    def _get(self) -> Any:
        return self.queue.popleft()

    def _put(self, item: Any) -> None:
        self.queue.append(item)

    def _peek(self) -> Any:
        return self.queue[0]

    # -- size -------------------------------------------------------------------------------

    @property
    def maxsize(self) -> int | None:
        """The bound (None: unbounded). Settable; raising it lets blocked putters go on."""
        return self._maxsize if self._maxsize > 0 else None

    @maxsize.setter
    def maxsize(self, value: int | None) -> None:
        self._maxsize = -1 if value is None or value <= 0 else value
        if self.putters:
            self._schedule_unlock()

    def copy(self) -> SimpleQueue:
        """A new queue of the same type and bound with the same items."""
        return type(self)(self.maxsize, self.queue)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {id(self):#x}{self._format()}>"

    def __str__(self) -> str:
        return f"<{type(self).__name__}{self._format()}>"

    def _format(self) -> str:
        result = []
        if self.maxsize is not None:
            result.append(f"maxsize={self.maxsize!r}")
        if getattr(self, "queue", None):
            result.append(f"queue={self.queue!r}")
        if self.getters:
            result.append(f"getters[{len(self.getters)}]")
        if self.putters:
            result.append(f"putters[{len(self.putters)}]")
        return " " + " ".join(result) if result else ""

    def qsize(self) -> int:
        """The number of items in it."""
        return self._qsize()

    def __len__(self) -> int:
        return self._qsize()

    def __bool__(self) -> bool:
        return True

    def empty(self) -> bool:
        """Whether it holds no item."""
        return not self._qsize()

    def full(self) -> bool:
        """Whether :meth:`put` would wait (never, unbounded)."""
        return self._maxsize > 0 and self._qsize() >= self._maxsize

    # -- put --------------------------------------------------------------------------------

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Adds ``item``. A full queue makes it wait (``block``) for a free slot, up to
        ``timeout`` seconds.

        :raises Full: no slot freed in time (at once with ``block=False``).
        :raises ShutDown: the queue was shut down (also while it waited).
        :raises ValueError: ``timeout`` is negative."""
        if self.is_shutdown:
            raise ShutDown
        _check_timeout(block, timeout)
        if self._maxsize == -1 or self._qsize() < self._maxsize:
            self._put(item)
            if self.getters:
                self._schedule_unlock()
            return
        current = getcurrent()
        if isinstance(current, Hub):
            # A callback in the hub cannot wait: let waiting getters make room, else Full.
            while self.getters and self._qsize() >= self._maxsize:
                self.getters.popleft().switch(_WOKEN)
            if self._qsize() < self._maxsize:
                self._put(item)
                return
            raise Full
        if not block:
            raise Full
        hub = self.hub = capture_hub(self, self.hub, self._busy())
        self.putters.append(current)
        if self.getters:
            self._schedule_unlock()
        try:
            result = park(hub, timeout, f"{type(self).__name__}.put()", self)
        finally:
            _safe_remove(self.putters, current)
        if result is _WOKEN:  # a slot is free (the hub ran nothing in between)
            self._put(item)
            if self.getters:
                self._schedule_unlock()
            return
        if result is _SHUT:
            raise ShutDown
        if result is _TIMED_OUT:
            raise Full
        raise AssertionError(f"plait.green: invalid switch into Queue.put: {result!r}")

    def put_nowait(self, item: Any) -> None:
        """:meth:`put` without waiting.

        :raises Full: the queue is full."""
        self.put(item, False)

    # -- get --------------------------------------------------------------------------------

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Removes and returns the next item. An empty queue makes it wait (``block``), up to
        ``timeout`` seconds.

        :raises Empty: no item came in time (at once with ``block=False``).
        :raises ShutDown: the queue was shut down and is empty (also while it waited).
        :raises ValueError: ``timeout`` is negative."""
        if self._qsize():
            if self.putters:
                self._schedule_unlock()
            return self._get()
        return self._get_or_peek(self._get, block, timeout, "get")

    def get_nowait(self) -> Any:
        """:meth:`get` without waiting.

        :raises Empty: the queue is empty."""
        return self.get(False)

    def peek(self, block: bool = True, timeout: float | None = None) -> Any:
        """Returns the next item without removing it; waits like :meth:`get`.

        :raises Empty: no item came in time (at once with ``block=False``)."""
        if self._qsize():
            return self._peek()
        return self._get_or_peek(self._peek, block, timeout, "peek")

    def peek_nowait(self) -> Any:
        """:meth:`peek` without waiting.

        :raises Empty: the queue is empty."""
        return self.peek(False)

    def _get_or_peek(self, method: Callable[[], Any], block: bool, timeout: float | None, name: str) -> Any:
        # The queue is empty.
        if self.is_shutdown:
            raise ShutDown
        _check_timeout(block, timeout)
        current = getcurrent()
        if isinstance(current, Hub):
            # A callback in the hub cannot wait: let waiting putters fill it, else Empty.
            while self.putters:
                self.putters.popleft().switch(_WOKEN)
                if self._qsize():
                    return method()
            raise Empty
        if not block:
            raise Empty
        hub = self.hub = capture_hub(self, self.hub, self._busy())
        self.getters.append(current)
        if self.putters:
            self._schedule_unlock()
        try:
            result = park(hub, timeout, f"{type(self).__name__}.{name}()", self)
        finally:
            _safe_remove(self.getters, current)
        if result is _WOKEN:  # an item is there (the hub ran nothing in between)
            return method()
        if result is _SHUT:
            raise ShutDown
        if result is _TIMED_OUT:
            raise Empty
        raise AssertionError(f"plait.green: invalid switch into Queue.{name}: {result!r}")

    # -- waking -----------------------------------------------------------------------------

    def _unlock(self) -> None:
        # In the hub: wake putters while there is room and getters while there are items, each
        # by a direct switch (it takes its slot or item at once, before the next is woken).
        try:
            while True:
                repeat = False
                if self.putters and (
                    self.is_shutdown or self._maxsize == -1 or self._qsize() < self._maxsize
                ):
                    repeat = True
                    _wake(self.hub, self.putters.popleft(), _SHUT if self.is_shutdown else _WOKEN)
                if self.getters and (self._qsize() or self.is_shutdown):
                    repeat = True
                    _wake(self.hub, self.getters.popleft(), _WOKEN if self._qsize() else _SHUT)
                if not repeat:
                    return
        finally:
            self._event_unlock = None

    def _busy(self) -> bool:
        return bool(self.getters or self.putters) or self._event_unlock is not None

    def _drop_orphans(self) -> None:
        # Its hub was destroyed: the greenlets blocked there never resume.
        self.getters.clear()
        self.putters.clear()
        self._event_unlock = None

    def _schedule_unlock(self) -> None:
        # Also from another thread (a put into a queue greenlets wait on): then the hub runs it.
        if self._event_unlock is None and self.hub is not None:
            self._event_unlock = True
            if schedule(self.hub, self._unlock) is None:  # that hub's loop is closed
                self._event_unlock = None

    # -- iteration --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        result = self.get()
        if result is StopIteration:
            raise result
        return result


class Queue(SimpleQueue):
    """A FIFO queue for greenlets with ``task_done``/``join`` and ``shutdown``, like
    ``queue.Queue`` (gevent 25.4's ``Queue``; :class:`JoinableQueue` is the same class).

    ``unfinished_tasks`` counts items put and not yet marked done; ``items`` given at the start
    count as unfinished unless ``unfinished_tasks`` says otherwise.
    """

    __slots__ = ("_cond", "unfinished_tasks")

    def __init__(
        self, maxsize: int | None = None, items: Iterable[Any] = (), unfinished_tasks: int | None = None
    ) -> None:
        items = items if isinstance(items, Sized) else tuple(items)
        self.unfinished_tasks = 0
        self._cond = Event()
        self._cond.set()
        SimpleQueue.__init__(self, maxsize, items, _warn_depth=3)
        if unfinished_tasks:
            self.unfinished_tasks = unfinished_tasks
        elif items:
            self.unfinished_tasks = len(items)  # type: ignore[arg-type]
        else:
            self.unfinished_tasks = 0
        if self.unfinished_tasks:
            self._cond.clear()

    def copy(self) -> Queue:
        """A new queue of the same type and bound, with the same items and unfinished count."""
        return type(self)(self.maxsize, self.queue, self.unfinished_tasks)

    def _format(self) -> str:
        result = SimpleQueue._format(self)
        if self.unfinished_tasks:
            result += f" tasks={self.unfinished_tasks} _cond={self._cond}"
        return result

    def _put(self, item: Any) -> None:
        SimpleQueue._put(self, item)
        self._did_put_task()

    def _did_put_task(self) -> None:
        self.unfinished_tasks += 1
        self._cond.clear()

    def task_done(self) -> None:
        """Marks one item got earlier as processed; :meth:`join` returns once every item put
        was.

        :raises ValueError: called more times than items were put."""
        if self.unfinished_tasks <= 0:
            raise ValueError("task_done() called too many times")
        self.unfinished_tasks -= 1
        if self.unfinished_tasks == 0:
            self._cond.set()

    def join(self, timeout: float | None = None) -> bool:
        """Waits until every item put was marked done (:meth:`task_done`), or ``timeout``
        seconds pass: True if they all were, False on timeout."""
        if self.unfinished_tasks == 0:
            return True
        return self._cond._wait_core(timeout, f"{type(self).__name__}.join()") or self.unfinished_tasks == 0

    def shutdown(self, immediate: bool = False) -> None:
        """Shuts the queue down (Python 3.13's ``queue.Queue.shutdown``): later puts raise
        :class:`ShutDown`; gets return what is left, then raise it. Greenlets blocked in
        ``put``, and those blocked in ``get`` on the empty queue, raise it too.

        ``immediate``: drops the items left (each counts as done for :meth:`join`), so gets
        raise at once."""
        self.is_shutdown = True
        if immediate:
            while self._qsize():
                self._get()
                if self.unfinished_tasks > 0:
                    self.unfinished_tasks -= 1
            if self.unfinished_tasks == 0:
                self._cond.set()
        if self.getters or self.putters:
            self._schedule_unlock()


#: gevent's former name of :class:`Queue` (an alias since gevent 25.4).
JoinableQueue = Queue


class UnboundQueue(Queue):
    """A :class:`Queue` that can never be bounded: ``put`` never waits (used by ``imap``)."""

    __slots__ = ()

    def __init__(self, maxsize: int | None = None, items: Iterable[Any] = ()) -> None:
        if maxsize is not None:
            raise ValueError("UnboundQueue has no maxsize")
        Queue.__init__(self, maxsize, items)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if self.is_shutdown:
            raise ShutDown
        self._put(item)
        if self.getters:
            self._schedule_unlock()


class PriorityQueue(Queue):
    """A :class:`Queue` that returns the lowest item first (``(priority, data)`` tuples,
    typically)."""

    __slots__ = ()

    def _create_queue(self, items: Iterable[Any] = ()) -> Any:
        q = list(items)
        heapify(q)
        return q

    def _put(self, item: Any) -> None:
        heappush(self.queue, item)
        self._did_put_task()

    def _get(self) -> Any:
        return heappop(self.queue)


class LifoQueue(Queue):
    """A :class:`Queue` that returns the most recently added item first."""

    __slots__ = ()

    def _create_queue(self, items: Iterable[Any] = ()) -> Any:
        return list(items)

    def _put(self, item: Any) -> None:
        self.queue.append(item)
        self._did_put_task()

    def _get(self) -> Any:
        return self.queue.pop()

    def _peek(self) -> Any:
        return self.queue[-1]


class _Waiting:
    """A greenlet blocked on a :class:`Channel`, with the item it hands over or receives."""

    __slots__ = ("block", "greenlet", "item")

    def __init__(self, g: greenlet, item: Any, block: bool) -> None:
        self.greenlet = g
        self.item = item
        self.block = block


class Channel:
    """A rendezvous between greenlets: :meth:`put` waits until a getter takes the item, and
    :meth:`get` waits for a putter. It holds nothing itself (``qsize()`` is 0).

    ``maxsize`` is accepted for code written for queues; it must be 1.

    :raises ValueError: ``maxsize`` is not 1.
    """

    __slots__ = ("__weakref__", "_event_unlock", "getters", "hub", "putters")

    __class_getitem__ = classmethod(types.GenericAlias)

    def __init__(self, maxsize: int = 1) -> None:
        if maxsize != 1:
            raise ValueError("Channels have a maxsize of 1")
        self.getters: collections.deque[_Waiting] = collections.deque()
        self.putters: collections.deque[_Waiting] = collections.deque()
        self.hub: Hub | None = None
        self._event_unlock: Any = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {id(self):#x}{self._format()}>"

    def __str__(self) -> str:
        return f"<{type(self).__name__}{self._format()}>"

    def _format(self) -> str:
        result = ""
        if self.getters:
            result += f" getters[{len(self.getters)}]"
        if self.putters:
            result += f" putters[{len(self.putters)}]"
        return result

    @property
    def balance(self) -> int:
        """Blocked putters minus blocked getters."""
        return len(self.putters) - len(self.getters)

    def qsize(self) -> int:
        """Always 0: a channel holds nothing."""
        return 0

    def empty(self) -> bool:
        """Always True."""
        return True

    def full(self) -> bool:
        """Always True."""
        return True

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Hands ``item`` to a getter, waiting for one (``block``) up to ``timeout`` seconds.

        :raises Full: no getter took it in time (with ``block=False``: none was waiting)."""
        current = getcurrent()
        if isinstance(current, Hub):
            if self.getters:
                getter = self.getters.popleft()
                getter.item = item
                getter.greenlet.switch(_WOKEN)
                return
            raise Full
        if not block and not self.getters:
            raise Full
        hub = self.hub = capture_hub(self, self.hub, self._busy())
        waiting = _Waiting(current, item, block)
        self.putters.append(waiting)
        if self.getters:
            self._schedule_unlock()
        try:
            result = park(hub, timeout if block else None, "Channel.put()", self)
        finally:
            _safe_remove(self.putters, waiting)
            waiting.item = None
        if result is _WOKEN:
            return
        if result is _TIMED_OUT:
            raise Full
        raise AssertionError(f"plait.green: invalid switch into Channel.put: {result!r}")

    def put_nowait(self, item: Any) -> None:
        """:meth:`put` to a getter already waiting.

        :raises Full: none is."""
        self.put(item, False)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Takes an item from a putter, waiting for one (``block``) up to ``timeout`` seconds.

        :raises Empty: no putter came in time (with ``block=False``: none was waiting)."""
        current = getcurrent()
        if isinstance(current, Hub):
            if self.putters:
                putter = self.putters.popleft()
                item = putter.item
                putter.greenlet.switch(_WOKEN)
                return item
            raise Empty
        if not block and not self.putters:
            raise Empty
        hub = self.hub = capture_hub(self, self.hub, self._busy())
        waiting = _Waiting(current, None, block)
        self.getters.append(waiting)
        if self.putters:
            self._schedule_unlock()
        try:
            result = park(hub, timeout if block else None, "Channel.get()", self)
        finally:
            _safe_remove(self.getters, waiting)
        if result is _WOKEN:
            item, waiting.item = waiting.item, None
            return item
        if result is _TIMED_OUT:
            raise Empty
        raise AssertionError(f"plait.green: invalid switch into Channel.get: {result!r}")

    def get_nowait(self) -> Any:
        """:meth:`get` from a putter already waiting.

        :raises Empty: none is."""
        return self.get(False)

    def _unlock(self) -> None:
        # In the hub: pair getters with putters, each woken by a direct switch; then the
        # non-blocking ones left unpaired fail.
        try:
            while self.putters and self.getters:
                getter = self.getters.popleft()
                putter = self.putters.popleft()
                getter.item = putter.item
                putter.item = None
                _wake(self.hub, getter.greenlet, _WOKEN)
                _wake(self.hub, putter.greenlet, _WOKEN)
            for waiters in (self.putters, self.getters):
                for waiting in [w for w in waiters if not w.block]:
                    waiters.remove(waiting)
                    _wake(self.hub, waiting.greenlet, _TIMED_OUT)
        finally:
            self._event_unlock = None

    def _schedule_unlock(self) -> None:
        if self._event_unlock is None and self.hub is not None:
            self._event_unlock = True
            if schedule(self.hub, self._unlock) is None:
                self._event_unlock = None

    def _busy(self) -> bool:
        return bool(self.getters or self.putters) or self._event_unlock is not None

    def _drop_orphans(self) -> None:
        # Its hub was destroyed: the greenlets blocked there never resume.
        self.getters.clear()
        self.putters.clear()
        self._event_unlock = None

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        result = self.get()
        if result is StopIteration:
            raise result
        return result
