"""plait.threads: drop-in replacements for ``threading`` and ``queue``, implemented in Rust.

Switching is an import change::

    from plait.threads import Lock, RLock, Condition, Semaphore, Event, Barrier, Queue
    import plait.threads as threading  # a whole program: Thread, Timer, local, ... come along

plait reimplements the synchronisation primitives and the queues; every other public name of
``threading`` (``Thread``, ``Timer``, ``local``, ``current_thread``, ``excepthook``, ...) and of
``queue`` (``Empty``, ``Full``) is the stdlib's own object, re-exported here.

Every blocking call releases the GIL while it waits and is interrupted by Ctrl-C. Locks,
RLocks, semaphores and the lock re-taken after a condition wait are tracked in a wait-for graph:
an acquire that would deadlock raises :class:`~plait.DeadlockError` naming every thread, the lock
it waits for, who holds it and where that lock was acquired. See
:func:`set_deadlock_detection`, :func:`check_lock_order` and :func:`dump`.
"""

from __future__ import annotations

import os as _os
import threading as _threading
import types as _types

from .. import _plait, _report
from ..exceptions import BrokenThreadPool, DeadlockError, LockOrderWarning, ShutDown
from ._pool import ThreadPool

__all__ = [
    "AtomicFlag",
    "AtomicInt",
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "BrokenThreadPool",
    "Condition",
    "DeadlockError",
    "Event",
    "ExceptHookArgs",
    "LifoQueue",
    "Lock",
    "LockOrderWarning",
    "PriorityQueue",
    "Queue",
    "RLock",
    "Semaphore",
    "ShutDown",
    "SimpleQueue",
    "Thread",
    "ThreadError",
    "ThreadPool",
    "Timer",
    "active_count",
    "check_lock_order",
    "current_thread",
    "dump",
    "enumerate",
    "excepthook",
    "get_deadlock_detection",
    "get_ident",
    "get_native_id",
    "getprofile",
    "gettrace",
    "local",
    "main_thread",
    "set_deadlock_detection",
    "setprofile",
    "settrace",
    "stack_size",
]

import sys as _sys
from queue import Empty, Full
from threading import (
    BrokenBarrierError,
    ExceptHookArgs,
    Thread,
    ThreadError,
    Timer,
    active_count,
    activeCount,  # noqa: F401 - deprecated alias, as in threading (not in its __all__)
    current_thread,
    currentThread,  # noqa: F401 - deprecated alias, as in threading (not in its __all__)
    enumerate,
    excepthook,
    get_ident,
    get_native_id,
    getprofile,
    gettrace,
    local,
    main_thread,
    setprofile,
    settrace,
    stack_size,
)

if _sys.version_info >= (3, 12):
    from threading import setprofile_all_threads, settrace_all_threads

    __all__ += ["setprofile_all_threads", "settrace_all_threads"]

Lock = _plait.Lock
RLock = _plait.RLock
Condition = _plait.Condition
Semaphore = _plait.Semaphore
BoundedSemaphore = _plait.BoundedSemaphore
Event = _plait.Event
Barrier = _plait.Barrier
Queue = _plait.Queue
LifoQueue = _plait.LifoQueue
PriorityQueue = _plait.PriorityQueue
SimpleQueue = _plait.SimpleQueue
AtomicInt = _plait.AtomicInt
AtomicFlag = _plait.AtomicFlag
TIMEOUT_MAX: float = _plait.TIMEOUT_MAX

# After fork() only the forking thread exists: forget the waits and held locks of the others.
_os.register_at_fork(after_in_child=_plait._after_fork_in_child)

__all__ += ["TIMEOUT_MAX", "Empty", "Full"]


def set_deadlock_detection(mode: str, *, grace: float | None = None) -> None:
    """Choose what a blocking call that would deadlock does, process-wide.

    ``"raise"`` (the default) raises :class:`~plait.DeadlockError` from the call that would close
    the cycle; ``"warn"`` emits :class:`~plait.DeadlockWarning` and then blocks like the stdlib;
    ``"off"`` tracks nothing (the fastest; :func:`dump` then shows no waits or sites).

    A thread that re-acquires (without a timeout) a ``Lock`` it holds itself is a deadlock only if
    no other thread releases it; releasing from another thread is valid Python (a lock used as a
    signal). In ``"raise"`` and ``"warn"`` modes plait therefore lets the thread wait, and:

    - when no other thread can ever release the lock (every other thread has exited, or waits
      without a timeout behind this one), raises :class:`~plait.DeadlockError` (``"warn"``:
      warns :class:`~plait.DeadlockWarning`), at once or as soon as it becomes so;
    - otherwise, once the thread has waited ``grace`` seconds (5 by default), warns
      :class:`~plait.SelfDeadlockWarning` once, with the full report (every thread's stack and
      locks), and goes on waiting.

    ``grace=None`` keeps the current grace period.
    """
    _plait.set_deadlock_detection(mode, grace=grace)


def get_deadlock_detection() -> str:
    """The current mode: ``"raise"``, ``"warn"`` or ``"off"``."""
    return _plait.get_deadlock_detection()


def check_lock_order(enabled: bool = True) -> None:
    """Turn lockdep-style lock-order checking on or off.

    While on, plait records the order in which each thread takes locks and warns
    :class:`~plait.LockOrderWarning` the first time two locks are taken in both orders, even if
    this run did not deadlock. Turning it off forgets what was recorded.
    """
    _plait.check_lock_order(bool(enabled))


def dump() -> str:
    """A report of every thread's Python stack with the plait locks it holds and waits for."""
    return _report.dump()


class _Module(_types.ModuleType):
    """``plait.threads`` as a module whose ``excepthook`` assignment reaches ``threading``:
    ``import plait.threads as threading; threading.excepthook = hook`` must install the hook
    that ``Thread`` (the stdlib's) calls, as it would with ``import threading``."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "excepthook":
            _threading.excepthook = value  # type: ignore[assignment]
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Module
