"""Events for greenlets (gevent's ``gevent.event``): :class:`Event`, a flag greenlets wait for,
and :class:`AsyncResult`, a one-time value or exception greenlets wait for.

Both are for the greenlets of one thread. ``set`` from another thread is allowed (it wakes the
waiters through the hub's ``call_soon_threadsafe``), but the hub does not count such a thread as
able to wake it: see :class:`~plait.green.BlockedForever`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ._linkable import AbstractLinkable
from ._timeout import Timeout

__all__ = ["AsyncResult", "Event"]

_NONE: Any = object()


class Event(AbstractLinkable):
    """A flag that greenlets wait for: :meth:`set` wakes every greenlet waiting in
    :meth:`wait`; :meth:`clear` makes later waits block again (``threading.Event``'s API).

    Waiters wake in the order they waited. A waiter woken by :meth:`set` returns True even if
    the flag was cleared again before it ran: it was set at least once while it waited.
    """

    __slots__ = ("_flag",)

    def __init__(self) -> None:
        super().__init__()
        self._flag = False

    def __str__(self) -> str:
        state = "set" if self._flag else "clear"
        name = f"{type(self).__module__}.{type(self).__name__}"
        return f"<{name} at {id(self):#x} {state} _links[{len(self._links)}]>"

    def is_set(self) -> bool:
        """Whether the flag is true."""
        return self._flag

    isSet = is_set  # threading.Event's old name

    def ready(self) -> bool:
        """Whether the flag is true (the name ``wait``/``iwait`` use for every waitable)."""
        return self._flag

    def set(self) -> None:
        """Sets the flag and wakes every greenlet waiting for it (they run once the current
        greenlet waits or yields); later waits return at once until :meth:`clear`."""
        self._flag = True
        self._check_and_notify()

    def clear(self) -> None:
        """Resets the flag: later waits block until :meth:`set`."""
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """Waits until the flag is set, or ``timeout`` seconds pass.

        Returns True if the flag was set before or during the wait, False if ``timeout``
        passed first (only possible with a timeout)."""
        if self._flag:
            if self._notifier is not None:
                self._capture_hub()  # drops a notifier left by a destroyed hub
                if self._notifier is not None:
                    # Greenlets that waited are being woken: run after them (gevent #1520).
                    self._wait_core(None, "Event.wait()")
            return True
        return self._wait_core(timeout, "Event.wait()")

    def _reset_internal_locks(self) -> None:  # threading's after-fork hook
        pass


class AsyncResult(AbstractLinkable):
    """A one-time event that holds a value (:meth:`set`) or an exception
    (:meth:`set_exception`); :meth:`get` waits for it and returns the value or raises the
    exception. It cannot be reset.

    It is a link callback too: ``greenlet.link(result)`` copies the greenlet's outcome into it.
    It also has ``concurrent.futures.Future``'s ``result``, ``set_result``, ``done``, ``cancel``
    and ``cancelled`` (it cannot be cancelled).

    ::

        result = AsyncResult()
        spawn(lambda: 1 / 0).link(result)
        result.get()  # raises ZeroDivisionError
    """

    __slots__ = ("_exc_info", "_imap_task_index", "_value")

    def __init__(self) -> None:
        super().__init__()
        self._value: Any = _NONE
        self._exc_info: tuple[Any, ...] = ()

    def __str__(self) -> str:
        if self._exc_info:
            state = f"exception={self._exc_info[1]!r} "
        elif self._value is not _NONE:
            state = f"value={self._value!r} "
        else:
            state = "unset "
        return f"<{type(self).__name__} {state} _links[{len(self._links)}]>"

    # -- state ------------------------------------------------------------------------------

    def ready(self) -> bool:
        """Whether it holds a value or an exception."""
        return bool(self._exc_info) or self._value is not _NONE

    def successful(self) -> bool:
        """Whether it holds a value (not an exception)."""
        return self._value is not _NONE

    @property
    def value(self) -> Any:
        """The value given to :meth:`set`, or None (also while unset)."""
        return None if self._value is _NONE else self._value

    @property
    def exception(self) -> BaseException | None:
        """The exception given to :meth:`set_exception`, or None."""
        return self._exc_info[1] if self._exc_info else None

    @property
    def exc_info(self) -> tuple[Any, ...]:
        """``(type, exception, traceback)`` after :meth:`set_exception`; ``()`` otherwise."""
        return self._exc_info

    # -- setting ----------------------------------------------------------------------------

    def set(self, value: Any = None) -> None:
        """Stores ``value`` and wakes every waiter; later :meth:`get` calls return it at once."""
        self._value = value
        self._check_and_notify()

    set_result = set

    def set_exception(
        self,
        exception: BaseException,
        exc_info: tuple[type[BaseException] | None, BaseException | None, TracebackType | None] | None = None,
    ) -> None:
        """Stores ``exception`` and wakes every waiter; :meth:`get` raises it. ``exc_info``
        (``sys.exc_info()``'s triple) gives the traceback to raise it with."""
        if exc_info and exc_info[1] is not None:
            self._exc_info = (exc_info[0], exc_info[1], exc_info[2])
        else:
            self._exc_info = (type(exception), exception, getattr(exception, "__traceback__", None))
        self._check_and_notify()

    def __call__(self, source: Any) -> None:
        """The link protocol: copies ``source``'s outcome (a greenlet, another result)."""
        if source.successful():
            self.set(source.value)
        else:
            self.set_exception(source.exception, getattr(source, "exc_info", None))

    # -- getting ----------------------------------------------------------------------------

    def _raise_exception(self) -> Any:
        _, exc, tb = self._exc_info
        if tb is not None and exc.__traceback__ is not tb:
            raise exc.with_traceback(tb)
        raise exc

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The value, or raises the exception; waits for one (``block``) up to ``timeout``
        seconds.

        :raises Timeout: not set within ``timeout`` (at once with ``block=False``)."""
        if self._value is not _NONE:
            return self._value
        if self._exc_info:
            return self._raise_exception()
        if not block:
            raise Timeout()
        if not self._wait_core(timeout, "AsyncResult.get()"):
            raise Timeout(timeout)
        return self.get(block=False)

    def get_nowait(self) -> Any:
        """The value, or raises the exception, without waiting.

        :raises Timeout: it is not set yet."""
        return self.get(block=False)

    def wait(self, timeout: float | None = None) -> Any:
        """Waits until it is set, or ``timeout`` seconds pass, and returns the value (None if
        it holds an exception, or if ``timeout`` passed): it never raises."""
        if not self.ready():
            self._wait_core(timeout, "AsyncResult.wait()")
        return self.value

    # -- concurrent.futures.Future's names --------------------------------------------------

    def result(self, timeout: float | None = None) -> Any:
        """:meth:`get` with ``timeout``."""
        return self.get(timeout=timeout)

    def done(self) -> bool:
        """:meth:`ready`."""
        return self.ready()

    def cancel(self) -> bool:
        """An AsyncResult cannot be cancelled: False."""
        return False

    def cancelled(self) -> bool:
        """Always False."""
        return False
