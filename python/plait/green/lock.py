"""Locks for greenlets (gevent's ``gevent.lock``): :class:`Semaphore`, :class:`BoundedSemaphore`,
:class:`DummySemaphore` (never blocks) and :class:`RLock` (owned by a greenlet, reentrant).

Waiters are woken in the order they waited, one per permit. A waiter takes its permit itself,
when it runs, so one that is killed or times out while it waits takes none: the permit stays for
the next waiter, and nothing is lost or given twice.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from greenlet import getcurrent

from ._hub import Hub
from ._linkable import AbstractLinkable

__all__ = ["BoundedSemaphore", "DummySemaphore", "RLock", "Semaphore"]


class Semaphore(AbstractLinkable):
    """A counter of permits: :meth:`acquire` takes one, waiting while there is none;
    :meth:`release` gives one back and wakes the first waiter. It does not track owners (any
    greenlet can release). A context manager.

    ``value`` (default 1) is the number of permits at the start.

    :raises ValueError: ``value`` is negative.

    .. seealso:: :class:`BoundedSemaphore`, which catches releasing more than was acquired.
    """

    __slots__ = ("counter",)

    def __init__(self, value: int = 1, hub: Hub | None = None) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        super().__init__(hub)
        #: The number of permits available now.
        self.counter = value
        self._notify_all = False

    def __str__(self) -> str:
        return f"<{type(self).__name__} at {id(self):#x} counter={self.counter} _links[{len(self._links)}]>"

    def locked(self) -> bool:
        """Whether :meth:`acquire` would wait (no permit is available)."""
        return self.counter <= 0

    def ready(self) -> bool:
        """Whether :meth:`acquire` would not wait (a permit is available)."""
        return self.counter > 0

    def release(self) -> int:
        """Gives a permit back and wakes the first waiter; returns the new counter.

        Releasing more than was acquired is allowed here (it adds a permit)."""
        self.counter += 1
        self._check_and_notify()
        return self.counter

    def _start_notify(self) -> None:
        self._check_and_notify()

    def wait(self, timeout: float | None = None) -> int:
        """Waits until a permit is available (without taking it), or ``timeout`` seconds pass;
        returns the counter (which can be 0: another greenlet took the permit first, or the
        timeout passed)."""
        if self.counter > 0:
            return self.counter
        self._wait_core(timeout, f"{type(self).__name__}.wait()")
        return self.counter

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Takes a permit: True. Without one, waits (``blocking``) up to ``timeout`` seconds,
        and returns False if none came (at once with ``blocking=False``)."""
        return self._acquire(blocking, timeout, None)

    def _acquire(self, blocking: bool, timeout: float | None, what: str | None) -> bool:
        # ``what`` names the wait for BlockedForever (a pool's "Pool.add()", say).
        if self.counter > 0:
            self.counter -= 1
            return True
        if not blocking:
            return False
        if what is None:
            what = f"{type(self).__name__}.acquire()"
        while True:
            if not self._wait_core(timeout, what):
                return False
            # Woken while a permit was available; the hub ran nothing in between.
            if self.counter > 0:
                self.counter -= 1
                return True
            # A raw link took it first (a woken waiter always finds one): wait again.

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class BoundedSemaphore(Semaphore):
    """A :class:`Semaphore` that raises :class:`ValueError` when released more times than it
    was acquired (above its initial value): usually a bug."""

    __slots__ = ("_initial_value",)

    #: The error raised on over-release.
    _OVER_RELEASE_ERROR = ValueError

    def __init__(self, value: int = 1, hub: Hub | None = None) -> None:
        super().__init__(value, hub)
        self._initial_value = value

    def release(self) -> int:
        """Like :meth:`Semaphore.release`.

        :raises ValueError: it would go above its initial value."""
        if self.counter >= self._initial_value:
            raise self._OVER_RELEASE_ERROR("Semaphore released too many times")
        return super().release()

    def _at_fork_reinit(self) -> None:
        super()._at_fork_reinit()
        self.counter = self._initial_value


class DummySemaphore:
    """The :class:`Semaphore` API with infinite permits: nothing ever waits. Lets code take
    "a semaphore" whether or not the resource is limited (``Pool(size=None)`` uses it)."""

    def __init__(self, value: int | None = None) -> None:
        pass

    def __str__(self) -> str:
        return f"<{type(self).__name__}>"

    def locked(self) -> bool:
        """Never locked: False."""
        return False

    def ready(self) -> bool:
        """Always ready: True."""
        return True

    def release(self) -> None:
        """Does nothing."""

    def rawlink(self, callback: Any) -> None:
        """Does nothing (it never becomes ready: it always is)."""

    def unlink(self, callback: Any) -> None:
        """Does nothing."""

    def wait(self, timeout: float | None = None) -> int:
        """Returns 1 at once."""
        return 1

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Returns True at once."""
        return True

    def __enter__(self) -> None:
        pass

    def __exit__(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass


class RLock:
    """A lock that the greenlet holding it can acquire again (``threading.RLock``'s API, with
    greenlets as owners); each :meth:`acquire` needs its :meth:`release`. A context manager."""

    __slots__ = ("__weakref__", "_block", "_count", "_owner")

    def __init__(self, hub: Hub | None = None) -> None:
        self._block = Semaphore(1, hub)
        self._owner: Any = None
        self._count = 0

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} at {id(self):#x} _block={self._block} "
            f"_count={self._count!r} _owner={self._owner!r})>"
        )

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Takes the lock (again, if the current greenlet holds it): True. Otherwise waits
        (``blocking``) up to ``timeout`` seconds; False if it did not get it."""
        me = getcurrent()
        if self._owner is me:
            self._count += 1
            return True
        if self._block.acquire(blocking, timeout):
            self._owner = me
            self._count = 1
            return True
        return False

    def __enter__(self) -> bool:
        return self.acquire()

    def release(self) -> None:
        """Releases one level; the last one frees the lock for the next waiter.

        :raises RuntimeError: the current greenlet does not hold it."""
        if self._owner is not getcurrent():
            raise RuntimeError(
                f"cannot release un-acquired lock. Owner: {self._owner!r} Current: {getcurrent()!r}"
            )
        self._count -= 1
        if not self._count:
            self._owner = None
            self._block.release()

    def __exit__(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def locked(self) -> bool:
        """Whether some greenlet holds it."""
        return self._count > 0

    # threading.Condition's protocol
    def _acquire_restore(self, count_owner: tuple[int, Any]) -> None:
        count, owner = count_owner
        self._block.acquire()
        self._count = count
        self._owner = owner

    def _release_save(self) -> tuple[int, Any]:
        count, owner = self._count, self._owner
        self._count = 0
        self._owner = None
        self._block.release()
        return (count, owner)

    def _is_owned(self) -> bool:
        return self._owner is getcurrent()
