"""``Timeout``: raises in a greenlet when time is up, wherever it waits (gevent's ``Timeout``)."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from greenlet import getcurrent, greenlet

from ._hub import get_hub

__all__ = ["Timeout", "with_timeout"]

_T = TypeVar("_T")


class Timeout(BaseException):
    """Raises in the greenlet that started it once ``seconds`` pass, at whatever cooperative call
    it waits in (a socket, ``sleep``, an ``Event``, a ``Queue``, a lock, a join).

    ``exception`` is what is raised: None (the default) raises this ``Timeout`` itself; an
    exception class or instance raises that; ``False`` raises this ``Timeout`` too, and the
    ``with`` block then swallows it (``with Timeout(5, False):`` just stops the block). A
    ``Timeout`` with ``seconds=None`` never fires. A ``BaseException``, like gevent's, so
    ``except Exception`` does not swallow it by mistake.

    ::

        with Timeout(5):
            data = sock.recv(1024)  # raises Timeout after 5 s without data
    """

    def __init__(
        self,
        seconds: float | None = None,
        exception: BaseException | type[BaseException] | bool | None = None,
        ref: bool = True,
        priority: int = -1,
    ) -> None:
        super().__init__(seconds)
        self.seconds = seconds
        self.exception = exception
        self._handle: Any = None
        self._target: greenlet | None = None

    def start(self) -> None:
        """Starts counting, for the current greenlet."""
        if self.pending:
            raise AssertionError("plait.green: this Timeout is already started; cancel() it first")
        if self.seconds is None:
            return
        target = getcurrent()
        self._target = target
        self._handle = get_hub().loop.call_later(self.seconds, self._expire, target)

    @classmethod
    def start_new(
        cls,
        timeout: float | Timeout | None = None,
        exception: BaseException | type[BaseException] | bool | None = None,
        ref: bool = True,
    ) -> Timeout:
        """A started ``Timeout`` (``timeout`` may be one already made: it is started)."""
        if isinstance(timeout, Timeout):
            if not timeout.pending:
                timeout.start()
            return timeout
        made = cls(timeout, exception, ref)
        made.start()
        return made

    @staticmethod
    def _start_new_or_dummy(
        timeout: float | Timeout | None, exception: BaseException | type[BaseException] | bool | None = None
    ) -> Timeout | _NoTimeout:
        if timeout is None:
            return _NO_TIMEOUT
        return Timeout.start_new(timeout, exception)

    @property
    def pending(self) -> bool:
        """Whether it is counting and has not fired."""
        return self._handle is not None

    def cancel(self) -> None:
        """Stops counting (nothing happens if it fired or never started)."""
        handle, self._handle = self._handle, None
        self._target = None
        if handle is not None:
            handle.cancel()

    close = cancel

    def _expire(self, target: greenlet) -> None:
        self._handle = None
        self._target = None
        if target.dead:
            return
        exc = self.exception
        if exc is None or exc is False or exc is True:
            target.throw(self)
        else:
            target.throw(exc)

    def __enter__(self) -> Timeout:
        if not self.pending:
            self.start()
        return self

    def __exit__(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self.cancel()
        return value is self and self.exception is False

    def __str__(self) -> str:
        if self.seconds is None:
            return ""
        suffix = "" if self.seconds == 1 else "s"
        exc = self.exception
        if exc is None or exc is True or exc is False:
            return f"{self.seconds} second{suffix}"
        return f"{self.seconds} second{suffix}: {exc}"

    def __repr__(self) -> str:
        state = " pending" if self.pending else ""
        exc = "" if self.exception is None else f" exception={self.exception!r}"
        return f"<Timeout at {id(self):#x} seconds={self.seconds}{exc}{state}>"

    def __bool__(self) -> bool:
        return True  # an exception with args () would otherwise be falsy in gevent's idiom checks


class _NoTimeout:
    """What ``_start_new_or_dummy(None)`` returns: cancels nothing."""

    pending = False

    def cancel(self) -> None:
        pass

    def __enter__(self) -> _NoTimeout:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None


_NO_TIMEOUT = _NoTimeout()

_NONE: Any = object()


def with_timeout(seconds: float, function: Callable[..., _T], *args: Any, **kwds: Any) -> _T:
    """``function(*args, **kwds)``, raising :class:`Timeout` if it takes longer than ``seconds``;
    with the keyword ``timeout_value=X``, returns X instead of raising."""
    timeout_value = kwds.pop("timeout_value", _NONE)
    timeout = Timeout.start_new(seconds)
    try:
        try:
            return function(*args, **kwds)
        except Timeout as exc:
            if exc is timeout and timeout_value is not _NONE:
                return timeout_value  # type: ignore[no-any-return]
            raise
    finally:
        timeout.cancel()
