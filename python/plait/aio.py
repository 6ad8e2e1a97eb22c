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

import asyncio
import collections
import selectors
import signal
import socket
import sys
import threading
from asyncio import events, selector_events, unix_events
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from . import _plait

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

_T = TypeVar("_T")


class _Selector(selectors.BaseSelector):
    """What ``loop._selector`` looks like to stdlib code that inspects it (transport reprs): a
    read-only view of the native fd table. Registration goes through ``loop._add_reader`` and
    friends, never through here."""

    def __init__(self, loop: EventLoop) -> None:
        self._loop: EventLoop | None = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        raise NotImplementedError("plait.aio: use loop.add_reader()/add_writer()")

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        raise NotImplementedError("plait.aio: use loop.remove_reader()/remove_writer()")

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        raise NotImplementedError("plait.aio: the native loop polls by itself")

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        loop = self._loop
        key = None if loop is None else loop._fd_key(fileobj)
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        mask, reader, writer = key
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return selectors.SelectorKey(fileobj, fd, mask, (reader, writer))

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        loop = self._loop
        fds = [] if loop is None else loop._fds()
        return {fd: self.get_key(fd) for fd in fds}

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop._close_native()


def _run_foreign(handle: events.Handle) -> None:
    # A stdlib asyncio.Handle queued through _add_callback (signal handlers): it checks its own
    # cancellation and reports its own errors.
    if not handle._cancelled:
        handle._run()


_StdSocketTransport = selector_events._SelectorSocketTransport
# 3.12+ keep a deque of memoryviews and write with sendmsg: the native write path assumes 3.11's
# bytearray buffer and is used only then.
_NATIVE_WRITE = getattr(_StdSocketTransport, "_buffer_factory", None) is bytearray


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


class _SocketTransport(_StdSocketTransport):
    """asyncio's selector socket transport (an ``asyncio.Transport``) whose per-packet paths,
    reading and writing, run natively (``_plait.SocketIo``)."""

    def __init__(
        self,
        loop: EventLoop,
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
        if _NATIVE_WRITE:
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
            self._io.detach()
            # From now on the stdlib's methods answer (errors and warnings of late writes).
            for name in ("write", "is_closing", "_read_ready", "_write_ready"):
                self.__dict__.pop(name, None)


class _DatagramTransport(selector_events._SelectorDatagramTransport, asyncio.DatagramTransport):
    """asyncio's selector datagram transport, made an ``asyncio.DatagramTransport`` (3.11's is
    not), whose receive path (one ``recvfrom``, then ``datagram_received``) runs natively for
    IPv4 and IPv6 sockets."""

    def __init__(
        self,
        loop: EventLoop,
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
            if self._io is not None:
                self._io.detach()


class EventLoop(_plait.LoopCore, unix_events.SelectorEventLoop):  # type: ignore[misc]
    """An asyncio event loop with a native core.

    Scheduling (``call_soon``, ``call_soon_threadsafe``, ``call_later``, ``call_at``), the ready
    queue, timers, polling (epoll through mio) and callback dispatch run in Rust. Per-connection
    logic (transports, servers, ``sock_*`` methods, DNS) is asyncio's own, running on the native
    ``add_reader``/``add_writer``.
    """

    def __init__(self) -> None:
        super().__init__(_Selector(self))

    def run_forever(self) -> None:
        """Run callbacks and poll for I/O until :meth:`stop` is called."""
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_agen_hooks = sys.get_asyncgen_hooks()
        own_wakeup = self._set_signal_wakeup()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(
                firstiter=self._asyncgen_firstiter_hook, finalizer=self._asyncgen_finalizer_hook
            )
            events._set_running_loop(self)
            if type(self)._run_once is _NATIVE_RUN_ONCE and "_run_once" not in self.__dict__:
                self._run_forever_native()
            else:
                # A subclass or a test replaced _run_once: honour it.
                while True:
                    self._run_once()
                    if self._stopping:
                        break
        finally:
            # Keep the wakeup fd while signal handlers are installed (asyncio's loop relies on
            # it between runs too), and never reset one that is not the loop's.
            if own_wakeup and not self._signal_handlers:
                prev = signal.set_wakeup_fd(-1)
                if self._csock is None or prev != self._csock.fileno():
                    signal.set_wakeup_fd(prev)
            self._stopping = False
            self._thread_id = None
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def _set_signal_wakeup(self) -> bool:
        """In the main thread, point the signal wakeup fd at the loop's self-pipe while it runs
        (unless something else set one), so a signal delivered to any thread wakes the poll and
        its Python handler (Ctrl-C) runs at once. Returns whether it was set here."""
        if threading.current_thread() is not threading.main_thread() or self._csock is None:
            return False
        try:
            old = signal.set_wakeup_fd(self._csock.fileno(), warn_on_full_buffer=False)
        except (ValueError, OSError):
            return False
        if old != -1:
            signal.set_wakeup_fd(old)
            return False
        return True

    def _make_socket_transport(  # type: ignore[override]
        self,
        sock: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None = None,
        *,
        extra: dict[str, Any] | None = None,
        server: Any = None,
    ) -> asyncio.Transport:
        return _SocketTransport(self, sock, protocol, waiter, extra, server)

    def _make_datagram_transport(  # type: ignore[override]
        self,
        sock: Any,
        protocol: asyncio.BaseProtocol,
        address: Any = None,
        waiter: asyncio.Future[None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> asyncio.DatagramTransport:
        return _DatagramTransport(self, sock, protocol, address, waiter, extra)

    def _add_callback(self, handle: events.Handle) -> None:
        if not handle._cancelled:
            self._call_soon(_run_foreign, (handle,), None)

    def _add_callback_signalsafe(self, handle: events.Handle) -> None:
        self._add_callback(handle)
        self._write_to_self()

    def _process_events(self, event_list: list[Any]) -> None:
        raise NotImplementedError("plait.aio dispatches I/O events natively")


_NATIVE_RUN_ONCE = _plait.LoopCore._run_once


def new_event_loop() -> EventLoop:
    """A new :class:`EventLoop` (use as ``loop_factory`` of ``asyncio.run`` or ``asyncio.Runner``)."""
    return EventLoop()


# asyncio's Unix default policy (it provides the child watcher that 3.11 and 3.12 use to start
# subprocesses); its name changed over versions.
_BasePolicy: Any = (
    getattr(unix_events, "_UnixDefaultEventLoopPolicy", None)
    or getattr(events, "BaseDefaultEventLoopPolicy", None)
    or events._BaseDefaultEventLoopPolicy
)


class EventLoopPolicy(_BasePolicy):  # type: ignore[misc]
    """An event loop policy whose loops are :class:`EventLoop` (for code that still sets policies;
    prefer ``loop_factory``). Subprocesses work as with asyncio's default policy."""

    _loop_factory = EventLoop


def install() -> None:
    """Make :class:`EventLoop` the default loop of ``asyncio.run`` and ``asyncio.new_event_loop``."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run a coroutine on a new :class:`EventLoop` and return its result, like ``asyncio.run``:
    the loop is closed afterwards, remaining tasks cancelled, async generators and the default
    executor shut down. Ctrl-C cancels ``main`` and raises ``KeyboardInterrupt``.
    """
    if events._get_running_loop() is not None:
        raise RuntimeError("plait.aio.run() cannot be called from a running event loop")
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)


# --- streams ----------------------------------------------------------------------------------

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
        self._native = isinstance(transport, _SocketTransport)
        self._native_write = self._native and _NATIVE_WRITE

    async def start_tls(
        self, sslcontext: Any, *, server_hostname: Any = None, ssl_handshake_timeout: Any = None
    ) -> None:
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
