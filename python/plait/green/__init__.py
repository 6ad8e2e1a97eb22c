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
from ._timeout import Timeout, with_timeout

__all__ = [
    "BlockedForever",
    "BlockingSwitchOutError",
    "Greenlet",
    "GreenletExit",
    "Hub",
    "LoopExit",
    "Timeout",
    "await_",
    "get_hub",
    "getcurrent",
    "idle",
    "iwait",
    "joinall",
    "killall",
    "run",
    "sleep",
    "spawn",
    "spawn_later",
    "spawn_raw",
    "wait",
    "wait_greenlet",
    "with_timeout",
]
