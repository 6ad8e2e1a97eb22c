"""``EventLoop``: the asyncio loop whose scheduling, timers and polling are native
(``_plait.LoopCore``), and the entry points that make one (``new_event_loop``, ``run``,
``install``, ``EventLoopPolicy``). See the package docstring, :mod:`plait.aio`.
"""

from __future__ import annotations

import _thread
import asyncio
import selectors
import signal
import sys
import threading
from asyncio import events, unix_events
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from .. import _plait
from ._transports import DatagramTransport, SocketTransport

__all__ = ["EventLoop", "EventLoopPolicy", "install", "new_event_loop", "run"]

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

    def close(self) -> None:
        """Close the loop as asyncio's does, then close the sockets of transports left open.

        asyncio leaves those to the collector, which finds them late when they sit in a reference
        cycle (a connection handler's task waiting on its reader): their fds stay open until a
        full collection. They still warn as unclosed transports when collected."""
        if self.is_running() or self.is_closed():
            super().close()  # raises, or nothing to do
            return
        open_transports = list(self._transports.values())
        super().close()
        for transport in open_transports:
            sock = transport._sock
            if sock is not None:
                release = getattr(transport, "_release_native", None)
                if release is not None:
                    release()
                sock.close()

    def _set_signal_wakeup(self) -> bool:
        """In the main thread, point the signal wakeup fd at the loop's self-pipe while it runs
        (unless something else set one), so a signal delivered to any thread wakes the poll and
        its Python handler (Ctrl-C) runs at once. Returns whether it was set here."""
        # The OS thread, not threading's view of it (patched by plait.green, a greenlet's).
        if _get_ident() != _MAIN_THREAD_IDENT or self._csock is None:
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
        return SocketTransport(self, sock, protocol, waiter, extra, server)

    def _make_datagram_transport(  # type: ignore[override]
        self,
        sock: Any,
        protocol: asyncio.BaseProtocol,
        address: Any = None,
        waiter: asyncio.Future[None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> asyncio.DatagramTransport:
        return DatagramTransport(self, sock, protocol, address, waiter, extra)

    def _add_callback(self, handle: events.Handle) -> None:
        if not handle._cancelled:
            self._call_soon(_run_foreign, (handle,), None)

    def _add_callback_signalsafe(self, handle: events.Handle) -> None:
        self._add_callback(handle)
        self._write_to_self()

    def _process_events(self, event_list: list[Any]) -> None:
        raise NotImplementedError("plait.aio dispatches I/O events natively")


_NATIVE_RUN_ONCE = _plait.LoopCore._run_once
_get_ident = _thread.get_ident
_MAIN_THREAD_IDENT = threading.main_thread().ident


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
