"""plait.aio: an asyncio event loop whose scheduling, timers and I/O polling run in Rust.

It is a complete :class:`asyncio.AbstractEventLoop`: code written for asyncio (streams,
``TaskGroup``, ``timeout``, ``wait_for``, queues, third-party libraries) runs on it unchanged.
Tasks and futures are asyncio's own C ``Task`` and ``Future``.

Use it like ``asyncio.run``::

    import plait.aio

    async def main():
        ...

    plait.aio.run(main())

or through asyncio's own entry points: ``asyncio.run(main(), loop_factory=plait.aio.new_event_loop)``
(3.12+), ``asyncio.Runner(loop_factory=plait.aio.new_event_loop)``, or ``plait.aio.install()`` to
make it the default loop.
"""

from __future__ import annotations

from ._loop import EventLoop, EventLoopPolicy, install, new_event_loop, run
from ._streams import (
    StreamReader,
    StreamWriter,
    open_connection,
    open_unix_connection,
    start_server,
    start_unix_server,
)

__all__ = [
    "EventLoop",
    "EventLoopPolicy",
    "StreamReader",
    "StreamWriter",
    "install",
    "new_event_loop",
    "open_connection",
    "open_unix_connection",
    "run",
    "start_server",
    "start_unix_server",
]
