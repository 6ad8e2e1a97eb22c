"""plait's exceptions and warnings.

Every error plait raises on its own account derives from :class:`PlaitError`, and also from the
builtin or stdlib exception it refines, so existing ``except RuntimeError`` / ``except
TimeoutError`` / ``except BrokenProcessPool`` clauses keep working when code switches to plait.
Every warning plait emits derives from :class:`PlaitWarning`.

``BrokenThreadPool``, ``BrokenProcessPool``, ``WorkerCrashed`` and ``RemoteTraceback`` derive
from classes of ``concurrent.futures``/``multiprocessing``, so they are defined on first use.
"""

from __future__ import annotations

import sys

# Not `typing.TYPE_CHECKING`: importing typing costs every worker process milliseconds at start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "BlockedForever",
    "BlockingSwitchOutError",
    "BrokenProcessPool",
    "BrokenThreadPool",
    "ConcurrentObjectUseError",
    "DeadlockEdge",
    "DeadlockError",
    "DeadlockWarning",
    "ExtrapolationWarning",
    "InsignificantFitWarning",
    "InvalidThreadUseError",
    "LockInfo",
    "LockOrderWarning",
    "MessageTooLarge",
    "MonkeyPatchWarning",
    "OwnerDied",
    "PatchedTooLateWarning",
    "PlaitError",
    "PlaitWarning",
    "RemoteTraceback",
    "ScalingWarning",
    "SelfDeadlockWarning",
    "SharedMemoryCorrupted",
    "ShutDown",
    "SuperlinearWarning",
    "TaskTimeout",
    "TooFewPointsWarning",
    "WorkerCrashed",
]


class PlaitError(Exception):
    """Base class of every exception raised by plait itself."""


class _Record:
    """A frozen record with keyword construction, equality, hashing and a repr (what a frozen
    dataclass gives, without importing ``dataclasses``: plait's import time is every worker
    process's start-up time)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}

    def __init__(self, **values: Any) -> None:
        for name in self._fields:
            if name in values:
                value = values.pop(name)
            elif name in self._defaults:
                value = self._defaults[name]()
            else:
                raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
            object.__setattr__(self, name, value)
        if values:
            raise TypeError(f"{type(self).__name__}() got unexpected arguments {sorted(values)}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")

    def __reduce__(self) -> Any:
        # pickle and copy: rebuilt through __init__ (restoring slots would go through
        # __setattr__, which a frozen record refuses).
        return _make_record, (type(self), dict(zip(self._fields, self._values(), strict=True)))

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined,no-any-return]

    def __hash__(self) -> int:
        return hash((type(self), *(v if not isinstance(v, list) else tuple(v) for v in self._values())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({inner})"


def _make_record(cls: type[_Record], values: dict[str, Any]) -> _Record:
    return cls(**values)


class LockInfo(_Record):
    """A lock (or other primitive) as it appears in a deadlock report."""

    __slots__ = ("acquired_at", "id", "kind", "label", "name")
    _fields = ("label", "kind", "name", "id", "acquired_at")

    label: str
    """``Lock 'db'`` or ``Lock #12``."""
    kind: str
    """``Lock``, ``RLock``, ``Semaphore``, ..."""
    name: str | None
    id: int
    """Process-unique id of the primitive."""
    acquired_at: str | None
    """``file:line (function)`` where its current holder acquired it, when known."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "kind": self.kind,
            "name": self.name,
            "id": self.id,
            "acquired_at": self.acquired_at,
        }


class DeadlockEdge(_Record):
    """One thread of a deadlock: it waits for ``waits_for``, which ``held_by`` hold."""

    __slots__ = ("held_by", "stack", "thread_ident", "thread_name", "waits_for")
    _fields = ("thread_ident", "thread_name", "waits_for", "held_by", "stack")
    _defaults = {"stack": list}

    thread_ident: int
    thread_name: str
    waits_for: LockInfo
    held_by: tuple[tuple[int, str], ...]
    """``(ident, name)`` of each holder."""
    stack: list[str]
    """The thread's Python stack at the time of the report, formatted like a traceback."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread_ident": self.thread_ident,
            "thread_name": self.thread_name,
            "waits_for": self.waits_for.to_dict(),
            "held_by": [{"ident": i, "name": n} for i, n in self.held_by],
            "stack": list(self.stack),
        }


class DeadlockError(PlaitError, RuntimeError):
    """A blocking call would never return: the threads in :attr:`cycle` wait for each other.

    Raised by the call that would have closed the cycle, instead of hanging. The message lists
    every thread, the lock it waits for, who holds it and where it was acquired, plus each
    thread's stack. The same data is in :attr:`cycle` (see :meth:`to_dict` for JSON).
    """

    def __init__(self, message: str, cycle: list[DeadlockEdge] | None = None) -> None:
        super().__init__(message)
        self.cycle: list[DeadlockEdge] = list(cycle or [])

    def to_dict(self) -> dict[str, Any]:
        return {"message": str(self), "cycle": [e.to_dict() for e in self.cycle]}


class PlaitWarning(Warning):
    """Base class of every warning plait emits: ``warnings.simplefilter("error", PlaitWarning)``
    turns them all into errors, ``"ignore"`` silences them."""


class DeadlockWarning(PlaitWarning, RuntimeWarning):
    """Emitted instead of :class:`DeadlockError` in ``set_deadlock_detection("warn")`` mode."""


class SelfDeadlockWarning(DeadlockWarning):
    """A thread has waited longer than the grace period to re-acquire a ``Lock`` it holds itself.

    That is valid when another thread will release the lock (a lock used as a signal), and a
    deadlock when none will; plait cannot tell while other threads run, so it warns once, with the
    full report, and the thread goes on waiting. :attr:`cycle` holds the waiting thread's edge.
    See ``plait.threads.set_deadlock_detection``.
    """

    def __init__(self, message: str, cycle: list[DeadlockEdge] | None = None) -> None:
        super().__init__(message)
        self.cycle: list[DeadlockEdge] = list(cycle or [])


class LockOrderWarning(PlaitWarning, RuntimeWarning):
    """Two locks were taken in both orders: a deadlock is possible even if none happened yet."""


class ScalingWarning(PlaitWarning, UserWarning):
    """plait.scaling: a fit (or a prediction from it) that deserves less trust than it looks."""


class TooFewPointsWarning(ScalingWarning):
    """Fewer than two measurements per coefficient: the fit is barely determined."""


class SuperlinearWarning(ScalingWarning):
    """Throughput per worker grows with the workers: a measurement error or cache effects."""


class InsignificantFitWarning(ScalingWarning):
    """A coefficient whose confidence interval includes 0: the data do not determine it."""


class ExtrapolationWarning(ScalingWarning):
    """A prediction far past the largest load measured."""


if sys.version_info >= (3, 13):  # catchable as queue.ShutDown too
    import queue as _queue

    class ShutDown(PlaitError, _queue.ShutDown):  # type: ignore[name-defined,misc]
        """Raised by ``put``/``get`` on a queue that was shut down."""

else:

    class ShutDown(PlaitError):  # type: ignore[no-redef]
        """Raised by ``put``/``get`` on a queue that was shut down (as ``queue.ShutDown`` in 3.13)."""


if TYPE_CHECKING:
    from concurrent.futures.process import BrokenProcessPool as _BrokenProcessPool
    from concurrent.futures.thread import BrokenThreadPool as _BrokenThreadPool

    class BrokenThreadPool(PlaitError, _BrokenThreadPool):
        """A worker's initializer failed; the pool cannot run tasks any more."""

    class BrokenProcessPool(PlaitError, _BrokenProcessPool):
        """A task failed because a worker process broke (see :class:`WorkerCrashed`), or the
        whole pool is unusable: its workers fail to start or its initializer failed."""

    class WorkerCrashed(BrokenProcessPool):
        exitcode: int | None
        signal: int | None

        def __init__(self, message: str, exitcode: int | None = None, signal: int | None = None) -> None: ...

    class RemoteTraceback(Exception):
        tb: str

        def __init__(self, tb: str) -> None: ...


# The classes below derive from their stdlib counterparts (so `except concurrent.futures...`
# catches them), whose modules import logging or multiprocessing: each is defined on first use
# (module __getattr__), so importing plait (in every worker process) stays fast.


def _broken_thread_pool() -> type:
    from concurrent.futures.thread import BrokenThreadPool as base

    class BrokenThreadPool(PlaitError, base):
        """A worker's initializer failed; the pool cannot run tasks any more."""

    return BrokenThreadPool


def _broken_process_pool() -> type:
    from concurrent.futures.process import BrokenProcessPool as base

    class BrokenProcessPool(PlaitError, base):
        """A task failed because a worker process broke (see :class:`WorkerCrashed`), or the
        whole pool is unusable: its workers fail to start or its initializer failed.

        Also a ``concurrent.futures.process.BrokenProcessPool``: handlers written for
        ``ProcessPoolExecutor`` catch it.
        """

    return BrokenProcessPool


def _worker_crashed() -> type:
    class WorkerCrashed(__getattr__("BrokenProcessPool")):  # type: ignore[misc]
        """The worker process running a task died (crash, signal, ``os._exit``, OOM kill).

        Only that task fails; the pool starts a replacement worker and goes on. Where
        ``ProcessPoolExecutor`` breaks the whole pool and fails every pending task with
        ``BrokenProcessPool``, plait fails this one task with this exception, which is also a
        :class:`BrokenProcessPool` (plait's and ``concurrent.futures.process``'s), so existing
        ``except BrokenProcessPool:`` handlers still catch it.
        """

        def __init__(self, message: str, exitcode: int | None = None, signal: int | None = None) -> None:
            super().__init__(message)
            self.exitcode = exitcode
            """The worker's exit code, if it exited."""
            self.signal = signal
            """The signal that killed the worker, if one did."""

    return WorkerCrashed


def _remote_traceback() -> type:
    from concurrent.futures.process import _RemoteTraceback
    from multiprocessing.pool import RemoteTraceback as _PoolRemoteTraceback

    class RemoteTraceback(_RemoteTraceback, _PoolRemoteTraceback):
        """Attached as ``__cause__`` of an exception raised in a worker: the worker's traceback
        (``tb``, as text). Also an instance of the stdlib's own classes for the same job
        (``concurrent.futures.process._RemoteTraceback``, ``multiprocessing.pool.RemoteTraceback``).
        """

        def __init__(self, tb: str) -> None:
            super().__init__(tb)
            self.tb = tb

        def __str__(self) -> str:
            return self.tb

    return RemoteTraceback


_LAZY = {
    "BrokenThreadPool": _broken_thread_pool,
    "BrokenProcessPool": _broken_process_pool,
    "WorkerCrashed": _worker_crashed,
    "RemoteTraceback": _remote_traceback,
}


def __getattr__(name: str) -> Any:
    define = _LAZY.get(name)
    if define is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = define()
    cls.__module__ = __name__
    cls.__qualname__ = name  # pickle finds it as plait.exceptions.<name>
    # Two threads may get here at once: the first class stored is the only one handed out.
    return globals().setdefault(name, cls)


class TaskTimeout(PlaitError, TimeoutError):
    """A task ran longer than its timeout; its worker was killed and replaced."""

    def __init__(self, message: str, timeout: float | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout


class OwnerDied(PlaitError, RuntimeError):
    """A process died while holding a process-shared lock; the caller now holds it.

    Raised by ``acquire()`` of :class:`plait.processes.Lock` / ``RLock`` (and by
    ``Condition.wait`` re-acquiring its lock) to exactly one process: the next one to acquire
    after the holder died. Like a pthread robust mutex's ``EOWNERDEAD``, it means that the state
    the lock protects may be half-updated. The caller **holds the lock** when ``acquire()``
    raises this: repair the state, then ``release()``. In a ``with`` statement the lock is
    released again before this propagates (no ``__exit__`` runs when ``__enter__`` raises), so
    use ``acquire()`` explicitly where the repair must happen under the lock.
    """


class MessageTooLarge(PlaitError, ValueError):
    """A message does not fit a process-shared queue's ring even when the ring is empty.

    Raised by ``put`` before anything is written. Create the queue with a larger
    ``capacity=`` (bytes), or send large data another way (``plait.processes.share``).
    """


class SharedMemoryCorrupted(PlaitError, RuntimeError):
    """A process-shared object's words in shared memory hold values no plait process writes.

    Raised by any operation on a :mod:`plait.processes` queue, lock or other shared object whose
    segment was overwritten by another process (or a stray write into its mapping). The message
    names the object and what was inconsistent. The object is unusable from then on: nothing was
    changed by the call that raised, but its state cannot be trusted; create a new object, and find
    the process that writes into the segment.
    """


# -- plait.green (defined here so that every plait exception is listed in one place; plait.green
# re-exports them, and importing this module never imports greenlet) ---------------------------


class BlockedForever(PlaitError):
    """plait.green: every greenlet waits and nothing can wake any of them (no ready callback, no
    timer, no watched fd, no thread working for the hub). The message names each waiting
    greenlet, what it waits on and where; ``waiting`` holds them as ``(greenlet, what,
    "file:line in function")``. Also ``plait.green.LoopExit`` (gevent's name)."""

    def __init__(self, message: str, waiting: list[tuple[Any, str, str]] | None = None) -> None:
        super().__init__(message)
        self.waiting: list[tuple[Any, str, str]] = list(waiting or [])


class BlockingSwitchOutError(PlaitError, AssertionError):
    """plait.green: a blocking call was made from the hub itself (an event-loop callback, or a
    coroutine on a loop the hub adopted), which cannot wait."""


class InvalidThreadUseError(PlaitError, RuntimeError):
    """plait.green: a green object that greenlets of one thread wait on was used to wait from
    another thread. Green objects belong to one thread's hub; use :mod:`plait.threads`
    primitives (or a ``plait.green.threadpool.ThreadPool``) to cross threads."""


class ConcurrentObjectUseError(PlaitError, AssertionError):
    """plait.green: two greenlets wait to read (or to write) the same socket at once: which one
    would get the data is undefined. gevent's name and base (``AssertionError``). Give each
    socket one reader and one writer, or guard it with a lock."""


class MonkeyPatchWarning(PlaitWarning, RuntimeWarning):
    """plait.green.monkey: a warning about monkey patching (gevent's ``MonkeyPatchWarning``)."""


class PatchedTooLateWarning(MonkeyPatchWarning):
    """plait.green.monkey: modules imported before patching hold blocking objects by value
    (``from ssl import SSLContext``): the patch cannot reach them. The message names each one;
    patch earlier (first thing in the main module, or ``python -m plait.green.monkey``)."""
