"""``Greenlet`` (gevent's: a greenlet with a result, links, kill and join), the spawn functions,
and waiting on many things at once (``joinall``, ``killall``, ``wait``, ``iwait``).

Anything with ``rawlink(callback)``/``unlink(callback)`` can be waited on: a callback runs in
the hub, once, with the object, when it becomes ready (at once if it already is).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from greenlet import GreenletExit, getcurrent, greenlet

from ._hub import Hub, get_hub, switch_out
from ._timeout import Timeout

__all__ = [
    "Greenlet",
    "Linkable",
    "iwait",
    "joinall",
    "killall",
    "spawn",
    "spawn_later",
    "spawn_raw",
    "wait",
    "wait_greenlet",
    "wait_on",
]

_T = TypeVar("_T")


class Linkable:
    """Something greenlets wait for: callbacks linked with :meth:`rawlink` run in the hub, in the
    order they were linked, once it is ready (:meth:`ready`)."""

    __slots__ = ("_links", "_notifier", "hub")

    def __init__(self, hub: Hub | None = None) -> None:
        self.hub = hub if hub is not None else get_hub()
        self._links: collections.deque[Callable[[Any], Any]] = collections.deque()
        self._notifier: Any = None

    def ready(self) -> bool:
        raise NotImplementedError

    def rawlink(self, callback: Callable[[Any], Any]) -> None:
        """Runs ``callback(self)`` in the hub once this is ready (soon, if it already is)."""
        if not callable(callback):
            raise TypeError(f"expected a callable, not {callback!r}")
        self._links.append(callback)
        if self.ready():
            self._schedule_notify()

    def unlink(self, callback: Callable[[Any], Any]) -> None:
        """Removes ``callback`` (nothing if it is not linked)."""
        try:
            self._links.remove(callback)
        except ValueError:
            pass

    def _schedule_notify(self) -> None:
        if self._notifier is None and self._links:
            self._notifier = self.hub.loop.call_soon(self._notify_links)

    def _notify_links(self) -> None:
        self._notifier = None
        links = self._links
        hub = self.hub
        while links and self.ready():
            link = links.popleft()
            try:
                link(self)
            except BaseException as exc:
                hub.handle_error(link, exc)


def wait_on(obj: Linkable, timeout: float | None, what: str) -> bool:
    """Waits in the current greenlet until ``obj`` is ready: True; False when ``timeout`` passes
    first. ``what`` describes the wait for :class:`~plait.green.BlockedForever`."""
    if obj.ready():
        return True
    hub = obj.hub
    current = getcurrent()
    switch = current.switch
    obj.rawlink(switch)
    timer = None if timeout is None else hub.loop.call_later(timeout, switch, None)
    try:
        if timer is None:
            result = switch_out(hub, what, obj)
        else:
            result = _switch_timed(hub)
        return result is obj
    finally:
        obj.unlink(switch)
        if timer is not None:
            timer.cancel()


def _switch_timed(hub: Hub) -> Any:
    current = getcurrent()
    if current is hub or current is hub._runner:
        return switch_out(hub, "a timed wait")  # raises BlockingSwitchOutError
    return hub.switch()


class Greenlet(greenlet):
    """A greenlet with gevent's API: started with :meth:`start` (or made and started by
    :meth:`spawn`), it keeps its return ``value`` or its ``exception``; others can :meth:`join`
    it, :meth:`get` its result, :meth:`kill` it, and :meth:`link` callbacks to its end.

    Subclasses override ``_run``; or pass the function: ``Greenlet(fn, *args, **kwargs)``.
    An exception that ends a greenlet is printed once (with its traceback) and kept on
    ``exception``; ``GreenletExit`` (a kill) ends it successfully, with the exception as value.
    """

    __slots__ = (
        "_done",
        "_exception",
        "_func",
        "_killed_before_start",
        "_links",
        "_notifier",
        "_start_handle",
        "args",
        "hub",
        "kwargs",
        "value",
    )

    def __init__(self, run: Callable[..., Any] | None = None, *args: Any, **kwargs: Any) -> None:
        hub = get_hub()
        greenlet.__init__(self, None, hub)
        self._func = None
        self._done = False
        self._exception: BaseException | None = None
        if run is not None and not callable(run):
            raise TypeError(f"The run argument or self._run must be callable, not {run!r}")
        self._func = run
        self.args = args
        self.kwargs = kwargs
        self.value: Any = None
        self._start_handle: Any = None
        self._killed_before_start = False
        self._links: collections.deque[Callable[[Any], Any]] | None = None
        self._notifier: Any = None
        self.hub = hub

    # -- identity ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """ "Greenlet-N", numbered in order of first use of this property (settable)."""
        name = self.__dict__.get("_name")
        if name is None:
            global _counter
            _counter += 1
            name = self.__dict__["_name"] = f"Greenlet-{_counter}"
        return name  # type: ignore[no-any-return]

    @name.setter
    def name(self, value: str) -> None:
        self.__dict__["_name"] = value

    def __repr__(self) -> str:
        fn = self._func if self._func is not None else self._run
        target = getattr(fn, "__qualname__", None) or repr(fn)
        return f'<Greenlet "{self.name}" at {id(self):#x}: {target}{self._formatinfo()}>'

    def _formatinfo(self) -> str:
        if self._done:
            return " (dead)" if self._exception is None else f" (failed: {self._exception!r})"
        if self._start_handle is not None or bool(self):
            return ""
        return " (not started)"

    # -- state ------------------------------------------------------------------------------

    @property
    def dead(self) -> bool:  # type: ignore[override]
        """Finished, or killed before it started."""
        return self._killed_before_start or greenlet.dead.__get__(self)  # type: ignore[attr-defined,no-any-return]

    @property
    def started(self) -> bool:
        """Scheduled, running or finished."""
        return self._start_handle is not None or bool(self) or self.dead

    @property
    def loop(self) -> Any:
        return self.hub.loop

    def ready(self) -> bool:
        """Finished (with a value or an exception), or killed before it started."""
        return self._done

    def successful(self) -> bool:
        """Finished without an exception (a ``GreenletExit`` counts as success)."""
        return self._done and self._exception is None

    @property
    def exception(self) -> BaseException | None:
        """The exception that ended it, or None (also while it runs)."""
        return self._exception

    @property
    def exc_info(self) -> tuple[Any, Any, Any]:
        exc = self._exception
        if exc is None:
            return (None, None, None)
        return (type(exc), exc, exc.__traceback__)

    # -- starting ---------------------------------------------------------------------------

    @classmethod
    def spawn(cls, *args: Any, **kwargs: Any) -> Greenlet:
        """A new greenlet, started: ``Greenlet.spawn(fn, *args, **kwargs)``."""
        g = cls(*args, **kwargs)
        g._start_handle = g.hub.loop.call_soon(g.switch)
        return g

    @classmethod
    def spawn_later(cls, seconds: float, *args: Any, **kwargs: Any) -> Greenlet:
        """A new greenlet that starts after ``seconds``."""
        g = cls(*args, **kwargs)
        g.start_later(seconds)
        return g

    def start(self) -> None:
        """Schedules it to start (nothing if it is already started)."""
        if not self.started:
            self._start_handle = self.hub.loop.call_soon(self.switch)

    def start_later(self, seconds: float) -> None:
        """Schedules it to start after ``seconds`` (nothing if it is already started)."""
        if not self.started:
            self._start_handle = self.hub.loop.call_later(seconds, self.switch)

    def _run(self) -> Any:  # replaced by the run argument, or overridden
        return None

    def run(self) -> None:
        self._start_handle = None
        fn = self._func
        try:
            if fn is None:
                result = self._run(*self.args, **self.kwargs)
            else:
                result = fn(*self.args, **self.kwargs)
        except GreenletExit as exc:
            result = exc
        except BaseException as exc:
            self._finish(None, exc)
            return
        finally:
            # What it ran and with what: not kept alive by a finished greenlet.
            self.args = ()
            self.kwargs = {}
        self._finish(result, None)

    def _finish(self, value: Any, exc: BaseException | None) -> None:
        self.value = value
        self._exception = exc
        self._done = True
        if self._links and self._notifier is None:
            self._notifier = self.hub.loop.call_soon(self._notify_links)
        if exc is not None:
            self.hub.handle_error(self, exc)

    # -- links ------------------------------------------------------------------------------

    def rawlink(self, callback: Callable[[Any], Any]) -> None:
        """Runs ``callback(self)`` in the hub once it finishes (soon, if it already has)."""
        if self._links is None:
            self._links = collections.deque()
        Linkable.rawlink(self, callback)  # type: ignore[arg-type]

    def unlink(self, callback: Callable[[Any], Any]) -> None:
        """Removes ``callback`` (nothing if it is not linked)."""
        if self._links:
            Linkable.unlink(self, callback)  # type: ignore[arg-type]

    _schedule_notify = Linkable._schedule_notify
    _notify_links = Linkable._notify_links

    def link(self, callback: Callable[[Greenlet], Any]) -> None:
        """Runs ``callback(self)`` in a new greenlet once this one finishes."""
        self.rawlink(_SpawnedLink(callback))

    def link_value(self, callback: Callable[[Greenlet], Any]) -> None:
        """Like :meth:`link`, only if it finishes successfully."""
        self.rawlink(_SpawnedLink(callback, lambda g: g.successful()))

    def link_exception(self, callback: Callable[[Greenlet], Any]) -> None:
        """Like :meth:`link`, only if it finishes with an exception."""
        self.rawlink(_SpawnedLink(callback, lambda g: not g.successful()))

    link_failed = link_exception

    def unlink_all(self) -> None:
        if self._links:
            self._links.clear()

    # -- waiting ----------------------------------------------------------------------------

    def join(self, timeout: float | None = None) -> None:
        """Waits until it finishes, or ``timeout`` passes (no error either way)."""
        if not self._done:
            wait_on(self, timeout, "join")  # type: ignore[arg-type]

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Its return value, or raises its exception; waits for it (``block``) up to ``timeout``
        and raises :class:`~plait.green.Timeout` if it has not finished."""
        if not self._done:
            if not block or not wait_on(self, timeout, "get"):  # type: ignore[arg-type]
                raise Timeout(timeout)
        if self._exception is not None:
            raise self._exception
        return self.value

    def kill(
        self,
        exception: BaseException | type[BaseException] = GreenletExit,
        block: bool = True,
        timeout: float | None = None,
    ) -> None:
        """Raises ``exception`` in it where it waits (``GreenletExit`` by default, which ends it
        successfully); with ``block``, waits up to ``timeout`` for it to end. A greenlet not
        yet started never runs."""
        if self._done:
            return
        if not bool(self) and not greenlet.dead.__get__(self):  # type: ignore[attr-defined]
            # Scheduled or never started: it must never run.
            handle, self._start_handle = self._start_handle, None
            if handle is not None:
                handle.cancel()
            self._killed_before_start = True
            exc = exception() if isinstance(exception, type) else exception
            self.args = ()
            self.kwargs = {}
            if isinstance(exc, GreenletExit):
                self._finish(exc, None)
            else:
                self._finish(None, exc)
            return
        if getcurrent() is self:
            raise exception
        self.hub.loop.call_soon(_throw_into, self, exception)
        if block:
            self.join(timeout)

    def throw(self, *args: Any) -> Any:
        """Raises an exception in it now (from the hub); see :meth:`kill` for the usual way."""
        if self._start_handle is not None and not bool(self):
            handle, self._start_handle = self._start_handle, None
            handle.cancel()
        return greenlet.throw(self, *args)

    # gevent's aliases and conveniences
    def __await__(self) -> Any:
        """``await greenlet`` in a coroutine on the hub's loop waits for its result."""
        return wait_greenlet(self).__await__()


_counter = 0


def _throw_into(g: Greenlet, exception: BaseException | type[BaseException]) -> None:
    if not g.dead:
        greenlet.throw(g, exception)


class _SpawnedLink:
    """A link that runs its callback in a new greenlet (gevent's ``SpawnedLink``)."""

    __slots__ = ("callback", "when")

    def __init__(self, callback: Callable[[Any], Any], when: Callable[[Any], bool] | None = None) -> None:
        if not callable(callback):
            raise TypeError(f"expected a callable, not {callback!r}")
        self.callback = callback
        self.when = when

    def __call__(self, source: Any) -> None:
        if self.when is None or self.when(source):
            Greenlet.spawn(self.callback, source)

    def __eq__(self, other: object) -> bool:
        return self.callback == (other.callback if isinstance(other, _SpawnedLink) else other)

    def __hash__(self) -> int:
        return hash(self.callback)


def spawn(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Greenlet:
    """A new :class:`Greenlet` running ``function(*args, **kwargs)``, started."""
    g = Greenlet(function, *args, **kwargs)
    g._start_handle = g.hub.loop.call_soon(g.switch)
    return g


def spawn_later(seconds: float, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Greenlet:
    """A new :class:`Greenlet` running ``function(*args, **kwargs)`` after ``seconds``."""
    return Greenlet.spawn_later(seconds, function, *args, **kwargs)


def spawn_raw(function: Callable[..., Any], *args: Any, **kwargs: Any) -> greenlet:
    """A plain greenlet (no result, no links: the cheapest) running ``function``, started."""
    if not callable(function):
        raise TypeError("function must be callable")
    hub = get_hub()
    if kwargs:
        target = function

        def function(*a: Any) -> Any:
            return target(*a, **kwargs)

    g = greenlet(function, hub)
    hub.loop.call_soon(g.switch, *args)
    return g


class _Collector:
    """Collects objects as they become ready and wakes its greenlet when ``needed`` did."""

    __slots__ = ("done", "greenlet", "needed")

    def __init__(self, needed: int) -> None:
        self.done: list[Any] = []
        self.needed = needed
        self.greenlet: greenlet | None = None

    def __call__(self, obj: Any) -> None:
        self.done.append(obj)
        if len(self.done) >= self.needed and self.greenlet is not None:
            g, self.greenlet = self.greenlet, None
            g.switch(self)


def iwait(
    objects: Iterable[Any] | None, timeout: float | None = None, count: int | None = None
) -> Iterator[Any]:
    """Yields each of ``objects`` (greenlets, events, async results: anything with ``rawlink``)
    as it becomes ready, at most ``count`` of them, until ``timeout`` passes."""
    hub = get_hub()
    if objects is None:
        yield hub.join(timeout)
        return
    pending = list(objects)
    count = len(pending) if count is None else min(count, len(pending))
    if not count:
        return
    collector = _Collector(1)
    for obj in pending:
        obj.rawlink(collector)
    timer = None if timeout is None else hub.loop.call_later(timeout, _expire_collector, collector)
    try:
        given = 0
        while given < count:
            if not collector.done:
                if collector.needed == 0:  # timed out
                    return
                collector.greenlet = getcurrent()
                try:
                    if timer is None:
                        switch_out(hub, "iwait", None)
                    else:
                        _switch_timed(hub)
                finally:
                    collector.greenlet = None
                if not collector.done:
                    return
            obj = collector.done.pop(0)
            given += 1
            yield obj
    finally:
        if timer is not None:
            timer.cancel()
        for obj in pending:
            obj.unlink(collector)


def _expire_collector(collector: _Collector) -> None:
    collector.needed = 0
    g, collector.greenlet = collector.greenlet, None
    if g is not None:
        g.switch(collector)


def wait(objects: Iterable[Any] | None = None, timeout: float | None = None, count: int | None = None) -> Any:
    """Waits for ``objects`` to become ready (all, or ``count`` of them, or until ``timeout``)
    and returns those that did, in the order they did. Without objects, waits until the loop
    has nothing left to do (``Hub.join``) and returns True (False on timeout)."""
    hub = get_hub()
    if objects is None:
        return hub.join(timeout)
    pending = list(objects)
    needed = len(pending) if count is None else min(count, len(pending))
    already = [obj for obj in pending if obj.ready()]
    if len(already) >= needed:
        return already[:needed]
    collector = _Collector(needed)
    for obj in pending:
        obj.rawlink(collector)
    timer = None if timeout is None else hub.loop.call_later(timeout, _expire_collector, collector)
    collector.greenlet = getcurrent()
    try:
        if timer is None:
            switch_out(hub, "wait", None)
        else:
            _switch_timed(hub)
    finally:
        collector.greenlet = None
        if timer is not None:
            timer.cancel()
        for obj in pending:
            obj.unlink(collector)
    return collector.done[:needed]


def joinall(
    greenlets: Iterable[Greenlet],
    timeout: float | None = None,
    raise_error: bool = False,
    count: int | None = None,
) -> list[Greenlet]:
    """Waits for the greenlets to finish (all, or ``count``, or until ``timeout``) and returns
    those that did. ``raise_error``: raises the first exception of one that failed, at once."""
    if not raise_error:
        return wait(greenlets, timeout=timeout, count=count)  # type: ignore[no-any-return]
    done = []
    for g in iwait(greenlets, timeout=timeout, count=count):
        if g.exception is not None:
            raise g.exception
        done.append(g)
    return done


def killall(
    greenlets: Iterable[Greenlet],
    exception: BaseException | type[BaseException] = GreenletExit,
    block: bool = True,
    timeout: float | None = None,
) -> None:
    """Kills every greenlet (see :meth:`Greenlet.kill`); with ``block``, waits up to
    ``timeout`` for all of them to end."""
    greenlets = list(greenlets)
    if not greenlets:
        return
    current = getcurrent()
    for g in greenlets:
        if g is not current:
            g.kill(exception, block=False)
    if block:
        wait([g for g in greenlets if g is not current], timeout=timeout)


async def wait_greenlet(g: Greenlet) -> Any:
    """In a coroutine on the hub's loop: waits for greenlet ``g`` without blocking the loop, and
    returns its value or raises its exception (``await g`` does the same)."""
    if not g.ready():
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def done(_g: Any) -> None:
            if not future.done():
                future.set_result(None)

        g.rawlink(done)
        try:
            await future
        finally:
            g.unlink(done)
    return g.get(block=False)
