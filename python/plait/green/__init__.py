"""plait.green: green threads (greenlets) with gevent's API on plait's native event loop.

The hub of each thread is a greenlet running a :class:`plait.aio.EventLoop`: timers, the ready
queue and epoll are native. Blocking calls (``sleep``, ``join``, events, queues, locks, the
cooperative ``socket``) switch to the hub, which switches back when they can go on; asyncio tasks
run on the same loop (:func:`await_`, :func:`wait_greenlet`). When every greenlet waits and
nothing could wake them, :class:`BlockedForever` (alias ``LoopExit``) names each one, what it
waits on and where.

Switching from gevent is an import change::

    from plait import green as gevent
    g = gevent.spawn(fn, 1)
    gevent.joinall([g], timeout=5)
"""

from __future__ import annotations

import importlib

from ._aio import await_, run, wait_greenlet
from ._greenlet import Greenlet, iwait, joinall, killall, spawn, spawn_later, spawn_raw, wait
from ._hub import (
    BlockedForever,
    BlockingSwitchOutError,
    GreenletExit,
    Hub,
    LoopExit,
    get_hub,
    getcurrent,
    idle,
    sleep,
)
from ._io import ConcurrentObjectUseError
from ._linkable import InvalidThreadUseError
from ._monitor import Monitor, monitor
from ._timeout import Timeout, with_timeout

# gevent keeps these in submodules (gevent.event, gevent.lock, ...), which plait.green has too;
# they are also here, imported on first use.
_HOMES = {
    "AsyncResult": ".event",
    "BoundedSemaphore": ".lock",
    "Channel": ".queue",
    "Event": ".event",
    "Group": ".pool",
    "JoinableQueue": ".queue",
    "LifoQueue": ".queue",
    "Pool": ".pool",
    "PriorityQueue": ".queue",
    "Queue": ".queue",
    "RLock": ".lock",
    "Semaphore": ".lock",
    "ThreadPool": ".threadpool",
    "local": ".local",
}

__all__ = [
    "AsyncResult",
    "BlockedForever",
    "BlockingSwitchOutError",
    "BoundedSemaphore",
    "Channel",
    "ConcurrentObjectUseError",
    "Event",
    "Greenlet",
    "GreenletExit",
    "Group",
    "Hub",
    "InvalidThreadUseError",
    "JoinableQueue",
    "LifoQueue",
    "LoopExit",
    "Monitor",
    "Pool",
    "PriorityQueue",
    "Queue",
    "RLock",
    "Semaphore",
    "ThreadPool",
    "Timeout",
    "await_",
    "get_hub",
    "getcurrent",
    "idle",
    "iwait",
    "joinall",
    "killall",
    "local",
    "monitor",
    "run",
    "sleep",
    "spawn",
    "spawn_later",
    "spawn_raw",
    "wait",
    "wait_greenlet",
    "with_timeout",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
