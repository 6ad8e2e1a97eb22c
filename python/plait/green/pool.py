"""Groups and pools of greenlets (gevent's ``gevent.pool``).

A :class:`Group` tracks running greenlets (each leaves it when it finishes): join them all,
kill them all, map a function over items. A :class:`Pool` is a group with a size: its
:meth:`~Pool.spawn` waits for a free slot, which bounds how many run at once::

    pool = Pool(10)
    for page in pool.imap_unordered(fetch, urls):  # at most 10 fetches at a time
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from greenlet import GreenletExit, getcurrent

from ._greenlet import Greenlet, joinall
from ._hub import _throw, get_hub
from ._imap import IMap, IMapUnordered
from ._timeout import Timeout
from .event import Event
from .lock import DummySemaphore, Semaphore
from .queue import Full as QueueFull

__all__ = ["Group", "Pool", "PoolFull"]


class GroupMappingMixin:
    """``apply``/``map``/``imap`` and their variants, on top of a ``spawn`` that returns
    something with ``get`` and ``rawlink`` (a greenlet, or a thread pool's result)."""

    __slots__ = ()

    def spawn(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Runs ``func(*args, **kwargs)``, maybe after waiting for a free slot; returns what
        ``get()`` gives its result."""
        raise NotImplementedError

    def _apply_immediately(self) -> bool:
        raise NotImplementedError

    def _apply_async_use_greenlet(self) -> bool:
        raise NotImplementedError

    def _apply_async_cb_spawn(self, callback: Callable[[Any], Any], result: Any) -> None:
        raise NotImplementedError

    def apply_cb(
        self,
        func: Callable[..., Any],
        args: Iterable[Any] | None = None,
        kwds: dict[str, Any] | None = None,
        callback: Callable[[Any], Any] | None = None,
    ) -> Any:
        """:meth:`apply`, then ``callback(result)`` (in a new greenlet for a group, in the
        current one for a thread pool) unless ``func`` raised."""
        result = self.apply(func, args, kwds)
        if callback is not None:
            self._apply_async_cb_spawn(callback, result)
        return result

    def apply_async(
        self,
        func: Callable[..., Any],
        args: Iterable[Any] | None = None,
        kwds: dict[str, Any] | None = None,
        callback: Callable[[Any], Any] | None = None,
    ) -> Greenlet:
        """Runs ``func(*args, **kwds)`` without waiting (even when full) and returns a greenlet
        whose ``get()`` gives the result; ``callback(result)`` runs once it succeeded. The
        greenlet may or may not be tracked by the group: join it, not the group."""
        if args is None:
            args = ()
        if kwds is None:
            kwds = {}
        if self._apply_async_use_greenlet():
            # spawn() would wait: a fresh greenlet calls it instead.
            return Greenlet.spawn(self.apply_cb, func, args, kwds, callback)
        g = self.spawn(func, *args, **kwds)
        if callback is not None:
            g.link(pass_value(callback))
        return g  # type: ignore[no-any-return]

    def apply(
        self, func: Callable[..., Any], args: Iterable[Any] | None = None, kwds: dict[str, Any] | None = None
    ) -> Any:
        """``func(*args, **kwds)``, run by the group (or directly, when called from one of its
        own greenlets, which could otherwise wait for itself); raises what it raised."""
        if args is None:
            args = ()
        if kwds is None:
            kwds = {}
        if self._apply_immediately():
            return func(*args, **kwds)
        return self.spawn(func, *args, **kwds).get()

    def __map(self, func: Callable[[Any], Any], iterable: Iterable[Any]) -> list[Any]:
        return [g.get() for g in [self.spawn(func, i) for i in iterable]]

    def map(self, func: Callable[[Any], Any], iterable: Iterable[Any]) -> list[Any]:
        """``[func(item) for item in iterable]``, run concurrently by the group (in order)."""
        return Greenlet.spawn(self.__map, func, iterable).get()  # type: ignore[no-any-return]

    def map_cb(
        self,
        func: Callable[[Any], Any],
        iterable: Iterable[Any],
        callback: Callable[[list[Any]], Any] | None = None,
    ) -> list[Any]:
        """:meth:`map`, then ``callback(results)``."""
        result = self.map(func, iterable)
        if callback is not None:
            callback(result)
        return result

    def map_async(
        self,
        func: Callable[[Any], Any],
        iterable: Iterable[Any],
        callback: Callable[[list[Any]], Any] | None = None,
    ) -> Greenlet:
        """:meth:`map` in a new greenlet, returned (its ``get()`` gives the list)."""
        return Greenlet.spawn(self.map_cb, func, iterable, callback)

    def __imap(
        self, cls: type[IMapUnordered], func: Callable[..., Any], *iterables: Iterable[Any], **kwargs: Any
    ) -> Any:
        maxsize = kwargs.pop("maxsize", None)
        if kwargs:
            raise TypeError("Unsupported keyword arguments")
        return cls.spawn(func, zip(*iterables, strict=False), spawn=self.spawn, _zipped=True, maxsize=maxsize)

    def imap(
        self, func: Callable[..., Any], *iterables: Iterable[Any], maxsize: int | None = None
    ) -> Iterator[Any]:
        """``map(func, *iterables)``, run concurrently by the group: an iterator of the results
        in order. ``maxsize``: at most that many finished results wait for the reader (no new
        task starts past it). A task's exception is raised when its result is reached."""
        return self.__imap(IMap, func, *iterables, maxsize=maxsize)  # type: ignore[no-any-return]

    def imap_unordered(
        self, func: Callable[..., Any], *iterables: Iterable[Any], maxsize: int | None = None
    ) -> Iterator[Any]:
        """:meth:`imap` with the results in the order they finish (lighter)."""
        return self.__imap(IMapUnordered, func, *iterables, maxsize=maxsize)  # type: ignore[no-any-return]


class Group(GroupMappingMixin):
    """A set of running greenlets: each leaves it when it finishes. Iterable, sized (false
    when empty), and ``g in group`` works.

    ``greenlet_class`` (a class attribute, or set on an instance) is what :meth:`spawn`
    makes: :class:`~plait.green.Greenlet` or a subclass.
    """

    greenlet_class: type[Greenlet] = Greenlet

    def __init__(self, *args: Iterable[Any]) -> None:
        if len(args) > 1:
            raise TypeError(f"Group() takes at most one iterable of greenlets ({len(args)} given)")
        self.greenlets: set[Any] = set()
        #: Greenlets killed and not finished yet (so a kill is not sent twice).
        self.dying: set[Any] = set()
        self._empty_event = Event()
        self._empty_event.set()
        if args:
            for g in args[0]:
                Group.add(self, g)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {id(self):#x} {self.greenlets}>"

    def __len__(self) -> int:
        """How many greenlets it tracks (it is false when none)."""
        return len(self.greenlets)

    def __contains__(self, item: object) -> bool:
        return item in self.greenlets

    def __iter__(self) -> Iterator[Any]:
        """The tracked greenlets, in no particular order."""
        return iter(self.greenlets)

    def add(self, greenlet: Any) -> None:
        """Tracks ``greenlet`` until it finishes (best not started yet: a pool's ``add`` can
        wait, and it could finish before)."""
        rawlink = getattr(greenlet, "rawlink", None)
        if rawlink is not None:  # not for a plain greenlet, like the main one
            rawlink(self._discard)
        self.greenlets.add(greenlet)
        self._empty_event.clear()

    def _discard(self, greenlet: Any) -> None:
        self.greenlets.discard(greenlet)
        self.dying.discard(greenlet)
        if not self.greenlets:
            self._empty_event.set()

    def discard(self, greenlet: Any) -> None:
        """Stops tracking ``greenlet`` (nothing if it is not tracked)."""
        self._discard(greenlet)
        unlink = getattr(greenlet, "unlink", None)
        if unlink is not None:
            unlink(self._discard)

    def start(self, greenlet: Greenlet) -> None:
        """Tracks the unstarted ``greenlet``, then starts it."""
        self.add(greenlet)
        greenlet.start()

    def spawn(self, *args: Any, **kwargs: Any) -> Greenlet:  # type: ignore[override]
        """A new greenlet (``greenlet_class(*args, **kwargs)``), tracked and started."""
        g = self.greenlet_class(*args, **kwargs)
        self.start(g)
        return g

    def join(self, timeout: float | None = None, raise_error: bool = False) -> bool:
        """Waits until the group is empty (at least once: a greenlet may be added before the
        caller runs again), or ``timeout`` seconds pass: True if it was, False on timeout.

        ``raise_error``: then raises the exception of a greenlet (of those tracked when the
        call started) that failed."""
        greenlets = list(self.greenlets) if raise_error else ()
        event = self._empty_event
        result = event.is_set() or event._wait_core(timeout, f"{type(self).__name__}.join()")
        for g in greenlets:
            if g.exception is not None:
                raise g.exception
        return result

    def kill(
        self,
        exception: BaseException | type[BaseException] = GreenletExit,
        block: bool = True,
        timeout: float | None = None,
    ) -> None:
        """Kills every tracked greenlet (see :meth:`Greenlet.kill`); with ``block``, waits up to
        ``timeout`` seconds for them to finish (greenlets added meanwhile are killed too)."""
        timer = Timeout._start_new_or_dummy(timeout)
        try:
            while self.greenlets:
                for g in list(self.greenlets):
                    if g in self.dying:
                        continue
                    kill = getattr(g, "kill", None)
                    if kill is not None:
                        kill(exception, block=False)
                    else:
                        get_hub().loop.call_soon(_throw, g, exception)
                    self.dying.add(g)
                if not block:
                    break
                joinall(list(self.greenlets))
        except Timeout as exc:
            if exc is not timer:
                raise
        finally:
            timer.cancel()

    def killone(
        self,
        greenlet: Any,
        exception: BaseException | type[BaseException] = GreenletExit,
        block: bool = True,
        timeout: float | None = None,
    ) -> None:
        """Kills ``greenlet`` if the group tracks it (and has not killed it yet); with
        ``block``, waits up to ``timeout`` seconds for it to finish."""
        if greenlet not in self.dying and greenlet in self.greenlets:
            greenlet.kill(exception, block=False)
            self.dying.add(greenlet)
            if block:
                greenlet.join(timeout)

    def full(self) -> bool:
        """Whether :meth:`add` would wait: never for a group (False)."""
        return False

    def wait_available(self, timeout: float | None = None) -> int | None:
        """Waits until :meth:`spawn` would not wait: at once for a group."""
        return None

    def _apply_immediately(self) -> bool:
        # apply() from one of the group's own greenlets runs in it: spawning could wait for a
        # slot that greenlet holds.
        return getcurrent() in self

    def _apply_async_cb_spawn(self, callback: Callable[[Any], Any], result: Any) -> None:
        Greenlet.spawn(callback, result)

    def _apply_async_use_greenlet(self) -> bool:
        return self.full()


class PoolFull(QueueFull):
    """A :class:`Pool` is full: ``add``/``start`` would have to wait (``blocking=False``) or
    waited past their ``timeout``. A ``queue.Full``."""


class Pool(Group):
    """A :class:`Group` of at most ``size`` greenlets: :meth:`add`, :meth:`start` and
    :meth:`spawn` wait for a free slot.

    ``size`` None means no limit (a group that has pool's methods); 0 means nothing can ever
    run (only useful with :meth:`wait_available` and a timeout). ``greenlet_class`` replaces
    the class :meth:`spawn` makes.

    :raises ValueError: ``size`` is negative.
    """

    def __init__(self, size: int | None = None, greenlet_class: type[Greenlet] | None = None) -> None:
        if size is not None and size < 0:
            raise ValueError(f"size must not be negative: {size!r}")
        Group.__init__(self)
        self.size = size
        if greenlet_class is not None:
            self.greenlet_class = greenlet_class
        self._semaphore: Semaphore | DummySemaphore = DummySemaphore() if size is None else Semaphore(size)

    def wait_available(self, timeout: float | None = None) -> int:
        """Waits until a greenlet can be added without waiting, or ``timeout`` seconds pass;
        returns how many can (0 on timeout)."""
        return self._semaphore.wait(timeout=timeout)

    def full(self) -> bool:
        """Whether :meth:`add` would wait."""
        return self.free_count() <= 0

    def free_count(self) -> int:
        """About how many more greenlets it can take (1 for an unlimited pool)."""
        if self.size is None:
            return 1
        return max(0, self.size - len(self))

    def start(self, greenlet: Greenlet, blocking: bool = True, timeout: float | None = None) -> None:  # type: ignore[override]
        """Adds the unstarted ``greenlet`` (see :meth:`add`), then starts it.

        :raises PoolFull: no slot (``blocking=False``), or none freed within ``timeout``."""
        self.add(greenlet, blocking, timeout)
        greenlet.start()

    def add(self, greenlet: Any, blocking: bool = True, timeout: float | None = None) -> None:  # type: ignore[override]
        """Tracks ``greenlet`` (best unstarted), waiting for a free slot (``blocking``) up to
        ``timeout`` seconds.

        :raises PoolFull: no slot (``blocking=False``), or none freed within ``timeout``."""
        semaphore = self._semaphore
        if isinstance(semaphore, Semaphore):
            got = semaphore._acquire(blocking, timeout, f"{type(self).__name__}.add()")
        else:
            got = semaphore.acquire(blocking, timeout)
        if not got:
            raise PoolFull()
        try:
            Group.add(self, greenlet)
        except BaseException:
            self._semaphore.release()
            raise

    def _discard(self, greenlet: Any) -> None:
        if greenlet in self.greenlets:  # its slot is given back once
            Group._discard(self, greenlet)
            self._semaphore.release()
        else:
            self.dying.discard(greenlet)


class pass_value:
    """A link that calls ``callback(source.value)`` if ``source`` succeeded."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[Any], Any]) -> None:
        self.callback = callback

    def __call__(self, source: Any) -> None:
        if source.successful():
            self.callback(source.value)

    def __hash__(self) -> int:
        return hash(self.callback)

    def __eq__(self, other: object) -> bool:
        return bool(self.callback == getattr(other, "callback", other))

    def __repr__(self) -> str:
        return repr(self.callback)
