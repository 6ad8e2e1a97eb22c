"""asyncio and green code on one loop: ``await_`` (a coroutine from a greenlet),
``wait_greenlet`` (a greenlet from a coroutine) and ``run`` (a green main on the plait loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from greenlet import getcurrent

from ._greenlet import spawn, wait_greenlet
from ._hub import get_hub, switch_out

__all__ = ["await_", "run", "wait_greenlet"]

_T = TypeVar("_T")


def await_(awaitable: Awaitable[_T]) -> _T:
    """Runs ``awaitable`` (a coroutine, task or future) on the hub's loop and blocks only the
    current greenlet until it is done: its result, or its exception raised. Killing the
    greenlet (or a ``Timeout``) while it waits cancels the task."""
    hub = get_hub()
    future = asyncio.ensure_future(awaitable, loop=hub.loop)
    if not future.done():
        current = getcurrent()

        def wake(_future: Any) -> None:
            current.switch()

        future.add_done_callback(wake)
        try:
            switch_out(hub, "await", future)
        except BaseException:
            future.remove_done_callback(wake)
            future.cancel()
            raise
    return future.result()


def run(main: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Runs ``main(*args, **kwargs)`` in a greenlet on this thread's hub (a plait event loop, so
    asyncio code can be awaited from it with :func:`await_`) and returns its result."""
    return spawn(main, *args, **kwargs).get()  # type: ignore[no-any-return]
