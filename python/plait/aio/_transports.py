"""The socket and datagram transports of :class:`plait.aio.EventLoop`: asyncio's selector
transports (so ``isinstance(t, asyncio.Transport)`` holds) whose per-packet paths run natively
(``_plait.SocketIo``, ``_plait.DatagramIo``). They know the loop only as an asyncio selector loop
with plait's edge-triggered ``_add_reader_edge``.
"""

from __future__ import annotations

import asyncio
import socket
from asyncio import selector_events
from typing import Any

from .. import _plait

__all__ = ["NATIVE_WRITE", "DatagramTransport", "SocketTransport"]


_StdSocketTransport = selector_events._SelectorSocketTransport
# 3.12+ keep a deque of memoryviews and write with sendmsg: the native write path assumes 3.11's
# bytearray buffer and is used only then.
NATIVE_WRITE = getattr(_StdSocketTransport, "_buffer_factory", None) is bytearray


def _stock_streams() -> bool:
    """Whether asyncio's ``StreamReaderProtocol.data_received`` and what it calls are the
    stdlib's own (not patched), so the transport may do their work natively."""
    proto, reader = asyncio.StreamReaderProtocol, asyncio.StreamReader
    prop = proto.__dict__.get("_stream_reader")
    funcs = (
        proto.__dict__.get("data_received"),
        prop.fget if isinstance(prop, property) else None,
        reader.__dict__.get("feed_data"),
        reader.__dict__.get("_wakeup_waiter"),
    )
    return all(getattr(f, "__module__", None) == "asyncio.streams" for f in funcs)


class SocketTransport(_StdSocketTransport):
    """asyncio's selector socket transport (an ``asyncio.Transport``) whose per-packet paths,
    reading and writing, run natively (``_plait.SocketIo``)."""

    def __init__(
        self,
        loop: selector_events.BaseSelectorEventLoop,
        sock: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None = None,
        extra: dict[str, Any] | None = None,
        server: Any = None,
    ) -> None:
        io = _plait.SocketIo(self, sock.fileno())
        self._io = io
        self._read_ready = io.read_ready  # type: ignore[method-assign]
        self.is_closing = io.is_closing  # type: ignore[method-assign]
        if NATIVE_WRITE:
            self._write_ready = io.write_ready  # type: ignore[method-assign]
            self.write = io.write  # type: ignore[method-assign]
        super().__init__(loop, sock, protocol, waiter, extra, server)

    # The stdlib's write, for what the native one does not handle itself (type errors, writes
    # after the connection was lost).
    _write_slow = _StdSocketTransport.write

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        super().set_protocol(protocol)
        stock = type(protocol) is asyncio.StreamReaderProtocol and _stock_streams()
        self._io.set_protocol(protocol, asyncio.StreamReader if stock else None)

    def _add_reader(self, fd: int, callback: Any, *args: Any) -> None:
        # The native reader drains the socket or asks for a re-arm: edge-triggered, which saves
        # a system call per read.
        if not self.is_reading():
            return
        self._loop._add_reader_edge(fd, callback, *args)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            super()._call_connection_lost(exc)
        finally:
            self._release_native()

    def _release_native(self) -> None:
        """Lets go of the native half (it reads and writes the fd by number): after
        ``connection_lost``, or when the loop closes under the transport. From now on the stdlib's
        methods answer (errors and warnings of late writes)."""
        self._io.detach()
        for name in ("write", "is_closing", "_read_ready", "_write_ready"):
            self.__dict__.pop(name, None)


class DatagramTransport(selector_events._SelectorDatagramTransport, asyncio.DatagramTransport):
    """asyncio's selector datagram transport, made an ``asyncio.DatagramTransport`` (3.11's is
    not), whose receive path (one ``recvfrom``, then ``datagram_received``) runs natively for
    IPv4 and IPv6 sockets."""

    def __init__(
        self,
        loop: selector_events.BaseSelectorEventLoop,
        sock: Any,
        protocol: asyncio.BaseProtocol,
        address: Any = None,
        waiter: asyncio.Future[None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._io: Any = None
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            self._io = _plait.DatagramIo(self, sock.fileno())
            self._read_ready = self._io.read_ready  # type: ignore[method-assign]
        super().__init__(loop, sock, protocol, address, waiter, extra)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            super()._call_connection_lost(exc)
        finally:
            self._release_native()

    def _release_native(self) -> None:
        if self._io is not None:
            self._io.detach()
            self.__dict__.pop("_read_ready", None)
