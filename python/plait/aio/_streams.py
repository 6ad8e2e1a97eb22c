"""plait.aio's streams: ``StreamReader`` (the reader *and* its protocol, with a native buffer),
``StreamWriter``, and the ``open_connection``/``start_server`` family that makes them, each a
drop-in for asyncio's own.
"""

from __future__ import annotations

import asyncio
import collections
import sys
from asyncio import events
from typing import Any

from .. import _plait
from ._transports import NATIVE_WRITE, SocketTransport

__all__ = [
    "StreamReader",
    "StreamWriter",
    "open_connection",
    "open_unix_connection",
    "start_server",
    "start_unix_server",
]


_DEFAULT_LIMIT = 2**16  # asyncio.streams' default


class StreamReader(_plait.StreamCore, asyncio.StreamReader):  # type: ignore[misc]
    """The reader of a stream connection *and* its protocol, with a native buffer.

    It is an ``asyncio.StreamReader`` (same methods, same exceptions). Received ``bytes`` are
    queued as they come and handed out whole when a read can take them, so an echo copies
    nothing. ``read``, ``readexactly``, ``readuntil`` and ``readline`` are native too: each
    returns an awaitable that behaves as the coroutine asyncio's returns (``await`` it, or pass it
    to ``asyncio.create_task``, ``wait_for``, ``ensure_future``).
    """

    def __init__(
        self,
        limit: int = _DEFAULT_LIMIT,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        client_connected_cb: Any = None,
    ) -> None:
        if limit <= 0:
            raise ValueError("Limit cannot be <= 0")
        self._loop = events.get_event_loop() if loop is None else loop
        self._client_connected_cb = client_connected_cb
        self._stream_writer: StreamWriter | None = None
        self._closed = self._loop.create_future()
        self._paused_writing = False
        self._drain_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._connection_lost = False
        self._transport: Any = None
        self._task: asyncio.Task[Any] | None = None
        self._over_ssl = False

    def __repr__(self) -> str:
        info = ["StreamReader"]
        if self._buffered():
            info.append(f"{self._buffered()} bytes")
        if self._eof:
            info.append("eof")
        if self._limit != _DEFAULT_LIMIT:
            info.append(f"limit={self._limit}")
        if self._waiter:
            info.append(f"waiter={self._waiter!r}")
        if self._exception:
            info.append(f"exception={self._exception!r}")
        if self._transport:
            info.append(f"transport={self._transport!r}")
        if self._paused:
            info.append("paused")
        return "<{}>".format(" ".join(info))

    # -- the protocol side (once per connection) --

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        self._set_transport(transport)
        self._over_ssl = transport.get_extra_info("sslcontext") is not None
        if self._client_connected_cb is not None:
            writer = StreamWriter(transport, self, self, self._loop)
            if sys.version_info < (3, 13):
                # As asyncio's protocol up to 3.12. From 3.13 it keeps no reference, so a writer
                # the handler drops unclosed is closed by StreamWriter.__del__ (ResourceWarning).
                self._stream_writer = writer
            res = self._client_connected_cb(self, writer)
            if asyncio.iscoroutine(res):

                def callback(task: asyncio.Task[Any]) -> None:
                    exc = task.exception()
                    if exc is not None:
                        self._loop.call_exception_handler(
                            {
                                "message": "Unhandled exception in client_connected_cb",
                                "exception": exc,
                                "transport": transport,
                            }
                        )
                        transport.close()

                self._task = self._loop.create_task(res)
                self._task.add_done_callback(callback)

    def _replace_writer(self, writer: StreamWriter) -> None:
        transport = writer.transport
        self._stream_writer = writer
        self._transport = transport
        self._set_transport(transport)
        self._over_ssl = transport.get_extra_info("sslcontext") is not None

    def _replace_transport(self, transport: Any) -> None:
        # 3.13's StreamWriter.start_tls calls this (earlier versions call _replace_writer).
        self._transport = transport
        self._set_transport(transport)
        self._over_ssl = transport.get_extra_info("sslcontext") is not None

    def __del__(self) -> None:
        # Prevent reports about unhandled exceptions, as asyncio's stream protocol does.
        closed = getattr(self, "_closed", None)
        if closed is not None and closed.done() and not closed.cancelled():
            closed.exception()

    def connection_lost(self, exc: BaseException | None) -> None:
        if exc is None:
            self.feed_eof()
        else:
            self.set_exception(exc)
        if not self._closed.done():
            if exc is None:
                self._closed.set_result(None)
            else:
                self._closed.set_exception(exc)
        self._connection_lost = True
        for waiter in self._drain_waiters:
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)
        self._stream_writer = None
        self._task = None
        self._transport = None
        self._set_transport(None)

    def eof_received(self) -> bool:
        self.feed_eof()
        # Keep the write side open, as asyncio's stream protocol does (not over TLS, where
        # returning true has no effect and SSLProtocol warns).
        return not self._over_ssl

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _drain_helper(self) -> None:
        if self._connection_lost:
            raise ConnectionResetError("Connection lost")
        if not self._paused_writing:
            return
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            self._drain_waiters.remove(waiter)

    def _get_close_waiter(self, stream: Any) -> asyncio.Future[None]:
        return self._closed

    def set_transport(self, transport: Any) -> None:
        self._transport = transport
        self._set_transport(transport)

    # -- the reader side --
    # read, readexactly, readuntil and readline are StreamCore's: each returns a native
    # awaitable (a coroutine to asyncio.iscoroutine and create_task), no Python frame per read.


class StreamWriter(_plait.WriterCore, asyncio.StreamWriter):  # type: ignore[misc]
    """``asyncio.StreamWriter`` whose ``write`` calls the native transport's directly and whose
    ``drain`` is native: when there is nothing to wait for (writing not paused, connection open, no error
    on the reader) it returns a done awaitable without a coroutine; otherwise it is asyncio's
    ``drain()`` (waits, or raises the same errors)."""

    def __init__(
        self, transport: Any, protocol: Any, reader: StreamReader | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._reader = reader
        self._loop = loop
        self._complete_fut = loop.create_future()
        self._complete_fut.set_result(None)
        self._set_native(transport)

    def _set_native(self, transport: Any) -> None:
        # plait's transport keeps its closing flag in an attribute (no method call per drain) and,
        # on 3.11, writes natively: write() then calls SocketIo.write without a Python call.
        self._native = isinstance(transport, SocketTransport)
        self._native_write = self._native and NATIVE_WRITE

    # asyncio's StreamWriter.start_tls takes ssl_shutdown_timeout from 3.12 on: plait's takes the
    # parameters of this Python's asyncio.
    if "ssl_shutdown_timeout" in asyncio.StreamWriter.start_tls.__code__.co_varnames:

        async def start_tls(
            self,
            sslcontext: Any,
            *,
            server_hostname: Any = None,
            ssl_handshake_timeout: Any = None,
            ssl_shutdown_timeout: Any = None,
        ) -> None:
            """Upgrade the connection to TLS (asyncio's ``StreamWriter.start_tls``)."""
            await super().start_tls(
                sslcontext,
                server_hostname=server_hostname,
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout,
            )
            self._set_native(self._transport)

    else:

        async def start_tls(
            self, sslcontext: Any, *, server_hostname: Any = None, ssl_handshake_timeout: Any = None
        ) -> None:
            """Upgrade the connection to TLS (asyncio's ``StreamWriter.start_tls``)."""
            await super().start_tls(
                sslcontext, server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout
            )
            self._set_native(self._transport)


async def open_connection(
    host: str | None = None, port: int | None = None, *, limit: int = _DEFAULT_LIMIT, **kwds: Any
) -> tuple[StreamReader, StreamWriter]:
    """``asyncio.open_connection`` with plait's streams: ``(reader, writer)``."""
    loop = events.get_running_loop()
    reader = StreamReader(limit=limit, loop=loop)
    transport, _ = await loop.create_connection(lambda: reader, host, port, **kwds)
    return reader, StreamWriter(transport, reader, reader, loop)


async def start_server(
    client_connected_cb: Any,
    host: Any = None,
    port: int | None = None,
    *,
    limit: int = _DEFAULT_LIMIT,
    **kwds: Any,
) -> asyncio.Server:
    """``asyncio.start_server`` with plait's streams: ``client_connected_cb(reader, writer)`` is
    called (or, if a coroutine function, run as a task) for each connection."""
    loop = events.get_running_loop()

    def factory() -> StreamReader:
        return StreamReader(limit=limit, loop=loop, client_connected_cb=client_connected_cb)

    return await loop.create_server(factory, host, port, **kwds)


async def open_unix_connection(
    path: Any = None, *, limit: int = _DEFAULT_LIMIT, **kwds: Any
) -> tuple[StreamReader, StreamWriter]:
    """``asyncio.open_unix_connection`` with plait's streams: ``(reader, writer)``."""
    loop = events.get_running_loop()
    reader = StreamReader(limit=limit, loop=loop)
    transport, _ = await loop.create_unix_connection(lambda: reader, path, **kwds)
    return reader, StreamWriter(transport, reader, reader, loop)


async def start_unix_server(
    client_connected_cb: Any, path: Any = None, *, limit: int = _DEFAULT_LIMIT, **kwds: Any
) -> asyncio.Server:
    """``asyncio.start_unix_server`` with plait's streams."""
    loop = events.get_running_loop()

    def factory() -> StreamReader:
        return StreamReader(limit=limit, loop=loop, client_connected_cb=client_connected_cb)

    return await loop.create_unix_server(factory, path, **kwds)
