"""TCP (and TLS) and UDP servers (gevent's ``gevent.server`` and ``gevent.baseserver``):
:class:`StreamServer` calls ``handle(socket, address)`` in a new greenlet for each connection;
:class:`DatagramServer` calls ``handle(data, address)`` for each datagram.

::

    from plait.green.server import StreamServer

    def echo(sock, address):
        while data := sock.recv(1024):
            sock.sendall(data)

    StreamServer(("127.0.0.1", 8000), echo).serve_forever()

The listener is watched from the hub: each time it is readable the server accepts up to
:attr:`BaseServer.max_accept` connections (non-blocking ``accept``) and spawns their handlers.
An error in ``accept`` or in spawning stops accepting for :attr:`~BaseServer.min_delay` seconds,
doubling on each new error up to :attr:`~BaseServer.max_delay`; a fatal one (``EBADF``,
``EINVAL``, ``ENOTSOCK``) closes the server.
"""

from __future__ import annotations

import _socket
import errno
import sys
from collections.abc import Callable
from typing import Any

from ._greenlet import Greenlet, Linkable, killall, wait, wait_on
from ._hub import Hub, get_hub
from ._io import CLOSED, READ, watcher_for
from .socket import socket as _GreenSocket

__all__ = ["BaseServer", "DatagramServer", "StreamServer"]

DEFAULT_REUSE_ADDR = None if sys.platform == "win32" else 1


def _handle_and_close_when_done(
    handle: Callable[..., Any], close: Callable[..., Any], args: tuple[Any, ...]
) -> Any:
    try:
        return handle(*args)
    finally:
        close(*args)


class _Flag(Linkable):
    """A minimal event: ready while set."""

    __slots__ = ("_set",)

    def __init__(self, hub: Hub | None = None) -> None:
        super().__init__(hub)
        self._set = False

    def ready(self) -> bool:
        return self._set

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        self._schedule_notify()

    def clear(self) -> None:
        self._set = False

    def wait(self, timeout: float | None = None) -> bool:
        return wait_on(self, timeout, "a server to stop")


class _Room(Linkable):
    """Ready while a :class:`_Limit` has room (its ``_semaphore``, as gevent's pools have)."""

    __slots__ = ("limit",)

    def __init__(self, limit: _Limit) -> None:
        super().__init__()
        self.limit = limit

    def ready(self) -> bool:
        return not self.limit.full()


class _Limit:
    """At most ``size`` handlers at once: what ``spawn=<int>`` makes when ``plait.green.pool``
    is not there (``spawn``, ``full``, ``wait_available``, ``join``, ``kill``, ``len``)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"the pool size must be positive, not {size!r}")
        self.size = size
        self.greenlets: set[Greenlet] = set()
        self._semaphore = _Room(self)

    def __len__(self) -> int:
        return len(self.greenlets)

    def full(self) -> bool:
        return len(self.greenlets) >= self.size

    def wait_available(self, timeout: float | None = None) -> None:
        wait_on(self._semaphore, timeout, "room in a server's pool")

    def spawn(self, function: Callable[..., Any], *args: Any) -> Greenlet:
        if self.full():
            self.wait_available()
        g = Greenlet(function, *args)
        self.greenlets.add(g)
        g.rawlink(self._discard)
        g.start()
        return g

    def _discard(self, g: Greenlet) -> None:
        self.greenlets.discard(g)
        self._semaphore._schedule_notify()

    def join(self, timeout: float | None = None) -> None:
        if self.greenlets:
            wait(list(self.greenlets), timeout=timeout)

    def kill(self, block: bool = True, timeout: float | None = None) -> None:
        killall(list(self.greenlets), block=block, timeout=timeout)


def _make_pool(size: int) -> Any:
    try:
        from .pool import Pool  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _Limit(size)
    return Pool(size)


class _AcceptLink:
    """The listener's link: runs the server's accept loop in the hub on each readiness."""

    __slots__ = ("events", "server")

    def __init__(self, server: BaseServer) -> None:
        self.events = READ
        self.server = server

    def __call__(self, _watcher: Any, events: int) -> None:
        if events == CLOSED:  # the listener was closed under the server
            self.server.stop_accepting()
            return
        self.server._do_read()


class BaseServer:
    """What :class:`StreamServer` and :class:`DatagramServer` share (gevent's ``BaseServer``).

    ``listener``: an address to bind (``("host", port)``, ``"host:port"``, ``":port"``, a
    port) or a bound (and, for TCP, listening) :class:`plait.green.socket.socket` (a standard
    library socket is taken over: detached into a cooperative one).

    ``handle``: the request handler (or override :meth:`handle`); when it returns, the
    connection is closed, so it must not return while the socket is still in use.

    ``spawn``: how a handler runs: ``"default"`` (a new :class:`~plait.green.Greenlet` each),
    a pool or group (anything with ``spawn``; with ``full()``, no connection is accepted while
    it is full), an int (a pool of that size), another callable (called as ``spawn(fn,
    *args)``), or None (in the hub itself: the handler must not block).
    """

    #: The first pause (seconds) after an error in accept or spawn; doubles up to max_delay.
    min_delay = 0.01
    max_delay = 1.0
    #: How many connections to accept each time the listener is readable.
    max_accept = 100
    #: stop()'s default timeout: how long handlers in a pool get to finish.
    stop_timeout = 1.0
    fatal_errors = (errno.EBADF, errno.EINVAL, errno.ENOTSOCK)

    _spawn: Any = Greenlet.spawn

    def __init__(
        self, listener: Any, handle: Callable[..., Any] | None = None, spawn: Any = "default"
    ) -> None:
        self._stop_event = _Flag()
        self._stop_event.set()
        self._link: _AcceptLink | None = None
        self._watcher: Any = None
        self._timer: Any = None
        self._handle: Any = None
        self.pool: Any = None
        try:
            self.set_listener(listener)
            self.set_spawn(spawn)
            self.set_handle(handle)
            self.delay = self.min_delay
            self.loop = get_hub().loop
            if self.max_accept < 1:
                raise ValueError(f"max_accept must be positive int: {self.max_accept!r}")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> BaseServer:
        return self

    def __exit__(self, *args: object) -> None:
        self.stop()

    def set_listener(self, listener: Any) -> None:
        """Sets the listener: a socket (kept) or an address (bound at :meth:`start`)."""
        if hasattr(listener, "accept"):
            if hasattr(listener, "do_handshake"):
                raise TypeError(f"Expected a regular socket, not SSLSocket: {listener!r}")
            if not isinstance(listener, _GreenSocket):
                timeout = listener.gettimeout()
                listener = _GreenSocket(
                    listener.family, listener.type, listener.proto, fileno=listener.detach()
                )
                listener.settimeout(timeout)
            self.family = listener.family
            self.address = listener.getsockname()
            self.socket = listener
        else:
            self.family, self.address = parse_address(listener)

    def set_spawn(self, spawn: Any) -> None:
        """Sets how handlers run (see the class docs)."""
        if spawn == "default":
            self.pool = None
            self._spawn = self._spawn
        elif hasattr(spawn, "spawn"):
            self.pool = spawn
            self._spawn = spawn.spawn
        elif isinstance(spawn, int):
            self.pool = _make_pool(spawn)
            self._spawn = self.pool.spawn
        else:
            self.pool = None
            self._spawn = spawn
        if hasattr(self.pool, "full"):
            self.full = self.pool.full  # type: ignore[method-assign]

    def set_handle(self, handle: Callable[..., Any] | None) -> None:
        """Sets the request handler (``handle`` None: the :meth:`handle` method)."""
        if handle is not None:
            self.handle = handle
        if hasattr(self, "handle"):
            self._handle = self.handle
        else:
            raise TypeError("'handle' must be provided")

    def _start_accepting_if_started(self, _event: Any = None) -> None:
        if self.started:
            self.start_accepting()

    def start_accepting(self) -> None:
        """Starts watching the listener (called by :meth:`start`)."""
        if self._link is None:
            sock = self.socket
            bind = getattr(sock, "_bind_watcher", None)
            watcher = bind() if bind is not None else watcher_for(get_hub(), sock.fileno())
            link = _AcceptLink(self)
            watcher.add_link(link)
            self._watcher, self._link = watcher, link

    def stop_accepting(self) -> None:
        """Stops watching the listener (connections wait in its backlog)."""
        link, self._link = self._link, None
        watcher, self._watcher = self._watcher, None
        if link is not None and watcher is not None:
            watcher.remove_link(link, parked=False)
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def do_handle(self, *args: Any) -> None:
        """Runs the handler for one request, through ``spawn``."""
        spawn = self._spawn
        handle = self._handle
        close = self.do_close
        try:
            if spawn is None:
                _handle_and_close_when_done(handle, close, args)
            else:
                spawn(_handle_and_close_when_done, handle, close, args)
        except BaseException:
            close(*args)
            raise

    def do_close(self, *args: Any) -> None:
        """Closes what a request left (a connection); nothing for datagrams."""

    def do_read(self) -> Any:
        """Takes one request without blocking: its handler's arguments, or None if none."""
        raise NotImplementedError

    def _do_read(self) -> None:
        hub = get_hub()
        drained = False
        for _ in range(self.max_accept):
            if self.full():
                self.stop_accepting()
                self._when_room()
                return
            try:
                args = self.do_read()
                self.delay = self.min_delay
                if not args:
                    drained = True
                    return
            except Exception as exc:
                hub.handle_error(self, exc)
                if self.is_fatal_error(exc):
                    self.close()
                    sys.stderr.write(f"ERROR: {self} failed with {str(exc) or repr(exc)}\n")
                    return
                if self.delay >= 0:
                    self._pause()
                break
            try:
                self.do_handle(*args)
            except Exception as exc:
                hub.handle_error((args[1:], self), exc)
                if self.delay >= 0:
                    self._pause()
                break
        if not drained and self._watcher is not None:
            # Edge-triggered: connections left in the backlog would not be reported again.
            self.loop._rearm(self._watcher.fd)

    def _pause(self) -> None:
        self.stop_accepting()
        self._timer = self.loop.call_later(self.delay, self._start_accepting_if_started)
        self.delay = min(self.max_delay, self.delay * 2)

    def _when_room(self) -> None:
        """Accepting stopped because the pool is full: start again once it has room."""
        pool = self.pool
        semaphore = getattr(pool, "_semaphore", None)
        if semaphore is not None and hasattr(semaphore, "rawlink"):
            semaphore.rawlink(self._start_accepting_if_started)
        elif hasattr(pool, "wait_available"):
            Greenlet.spawn(self._wait_for_room)
        else:
            self._pause()

    def _wait_for_room(self) -> None:
        self.pool.wait_available()
        self._start_accepting_if_started()

    def full(self) -> bool:  # replaced by the pool's full() in set_spawn
        """Whether no new request can be taken now (the pool is full)."""
        return False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {id(self):#x} {self._formatinfo()}>"

    def __str__(self) -> str:
        return f"<{type(self).__name__} {self._formatinfo()}>"

    def _formatinfo(self) -> str:
        result = ""
        if hasattr(self, "socket"):
            try:
                result = f"fileno={self.socket.fileno()} "
            except Exception as exc:
                result = f"fileno={exc} "
        address = getattr(self, "address", None)
        if isinstance(address, tuple) and len(address) == 2:
            result += f"address={address[0]}:{address[1]}"
        else:
            result += f"address={address}"
        handle = self.__dict__.get("handle")
        if handle is not None:
            if getattr(handle, "__self__", None) is self:
                result += f" handle=<bound method {type(self).__name__}.{handle.__name__} of self>"
            else:
                result += f" handle={handle!r}"
        return result

    @property
    def server_host(self) -> Any:
        """The IP address the server is bound to (a string)."""
        if isinstance(self.address, tuple):
            return self.address[0]
        return None

    @property
    def server_port(self) -> Any:
        """The port the server is bound to (an int)."""
        if isinstance(self.address, tuple):
            return self.address[1]
        return None

    def init_socket(self) -> None:
        """Makes, binds (and puts to listening) the socket when an address was given; called
        by :meth:`start`."""

    @property
    def started(self) -> bool:
        """Started and not stopped."""
        return not self._stop_event.is_set()

    def start(self) -> None:
        """Starts accepting (binding the address first if one was given)."""
        self.init_socket()
        self._stop_event.clear()
        try:
            self.start_accepting()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stops accepting and closes the listening socket."""
        self._stop_event.set()
        try:
            self.stop_accepting()
        finally:
            try:
                sock = self.__dict__.get("socket")
                if sock is not None:
                    sock.close()
            finally:
                for name in ("socket", "handle", "_handle", "_spawn", "full"):
                    self.__dict__.pop(name, None)
                semaphore = getattr(self.pool, "_semaphore", None)
                if semaphore is not None and hasattr(semaphore, "unlink"):
                    semaphore.unlink(self._start_accepting_if_started)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (the listener is gone)."""
        return "socket" not in self.__dict__

    def stop(self, timeout: float | None = None) -> None:
        """Stops accepting and closes the listener. With a pool, waits up to ``timeout``
        (default :attr:`stop_timeout`) for the handlers to finish, then kills those still running
        (their connections are closed). Without one, handlers run on until they finish."""
        self.close()
        if timeout is None:
            timeout = self.stop_timeout
        if self.pool:
            self.pool.join(timeout=timeout)
            self.pool.kill(block=True, timeout=1)

    def serve_forever(self, stop_timeout: float | None = None) -> None:
        """Starts (if needed) and waits until stopped; then :meth:`stop` with ``stop_timeout``."""
        if not self.started:
            self.start()
        try:
            self._stop_event.wait()
        finally:
            Greenlet.spawn(self.stop, timeout=stop_timeout).join()

    def is_fatal_error(self, ex: BaseException) -> bool:
        """Whether an error from accept means the listener is unusable (closes the server)."""
        return isinstance(ex, OSError) and ex.args[0] in self.fatal_errors


def _extract_family(host: str) -> tuple[int, str]:
    if host.startswith("[") and host.endswith("]"):
        return _socket.AF_INET6, host[1:-1]
    return _socket.AF_INET, host


def _parse_address(address: Any) -> tuple[int, Any]:
    if isinstance(address, tuple):
        if not address[0] or ":" in address[0]:
            return _socket.AF_INET6, address
        return _socket.AF_INET, address
    if (isinstance(address, str) and ":" not in address) or isinstance(address, int):
        return _socket.AF_INET6, ("", int(address))
    if not isinstance(address, str):
        raise TypeError(f"Expected tuple or string, got {type(address)}")
    host, port = address.rsplit(":", 1)
    family, host = _extract_family(host)
    if host == "*":
        host = ""
    return family, (host, int(port))


def parse_address(address: Any) -> tuple[int, Any]:
    """``(family, (host, port))`` from a tuple, ``"host:port"``, ``"[v6]:port"``, ``":port"``
    or a port."""
    try:
        return _parse_address(address)
    except ValueError as exc:
        raise ValueError(f"Failed to parse address {address!r}: {exc}") from None


class StreamServer(BaseServer):
    """A TCP server: ``handle(socket, address)`` runs in a new greenlet for each connection
    (see :class:`BaseServer` for ``listener``, ``handle`` and ``spawn``); the connection is
    closed when it returns. ``backlog``: the listen queue (when given an address).

    TLS: with ``ssl_context=`` (a :class:`plait.green.ssl.SSLContext`) each connection is
    wrapped with ``ssl_context.wrap_socket(sock, server_side=True, **other_ssl_args)`` before
    the handler gets it; with other keyword arguments instead (``keyfile``, ``certfile``, ...),
    with :func:`plait.green.ssl.wrap_socket`. The handshake happens in the handler's greenlet.
    """

    backlog = 128
    reuse_addr = DEFAULT_REUSE_ADDR

    def __init__(
        self,
        listener: Any,
        handle: Callable[..., Any] | None = None,
        backlog: int | None = None,
        spawn: Any = "default",
        **ssl_args: Any,
    ) -> None:
        BaseServer.__init__(self, listener, handle=handle, spawn=spawn)
        try:
            if ssl_args:
                ssl_args.setdefault("server_side", True)
                if "ssl_context" in ssl_args:
                    ssl_context = ssl_args.pop("ssl_context")
                    self.wrap_socket = ssl_context.wrap_socket
                else:
                    from .ssl import wrap_socket

                    self.wrap_socket = wrap_socket
                self.ssl_args: dict[str, Any] | None = ssl_args
            else:
                self.ssl_args = None
            if backlog is not None:
                if hasattr(self, "socket"):
                    raise TypeError("backlog must be None when a socket instance is passed")
                self.backlog = backlog
        except BaseException:
            self.close()
            raise

    @property
    def ssl_enabled(self) -> bool:
        """Whether connections are wrapped in TLS."""
        return self.ssl_args is not None

    def init_socket(self) -> None:
        if not hasattr(self, "socket"):
            self.socket = self.get_listener(self.address, self.backlog, self.family)
            self.address = self.socket.getsockname()
        self._handle = self.wrap_socket_and_handle if self.ssl_args else self.handle

    @classmethod
    def get_listener(
        cls, address: Any, backlog: int | None = None, family: int | None = None
    ) -> _GreenSocket:
        """A listening socket bound to ``address``."""
        if backlog is None:
            backlog = cls.backlog
        return _tcp_listener(address, backlog=backlog, reuse_addr=cls.reuse_addr, family=family)

    def do_read(self) -> Any:
        sock = self.socket
        try:
            fd, address = sock._accept()
        except BlockingIOError:
            if not sock.timeout:
                return None
            raise
        return _GreenSocket(sock.family, sock.type, sock.proto, fileno=fd), address

    def do_close(self, sock: Any, *args: Any) -> None:
        sock.close()

    def wrap_socket_and_handle(self, client_socket: Any, address: Any) -> Any:
        """Wraps the connection in TLS and calls the handler with it."""
        with self.wrap_socket(client_socket, **self.ssl_args) as ssl_socket:  # type: ignore[arg-type]
            return self.handle(ssl_socket, address)


class DatagramServer(BaseServer):
    """A UDP server: ``handle(data, address)`` runs for each datagram (see :class:`BaseServer`);
    answer with :meth:`sendto`."""

    reuse_addr = DEFAULT_REUSE_ADDR

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._socket: Any = None
        BaseServer.__init__(self, *args, **kwargs)
        self._writing = _Flag()
        self._writing.set()

    def init_socket(self) -> None:
        if not hasattr(self, "socket"):
            self.socket = self.get_listener(self.address, self.family)
            self.address = self.socket.getsockname()
        self._socket = self.socket

    @classmethod
    def get_listener(cls, address: Any, family: int | None = None) -> _GreenSocket:
        """A UDP socket bound to ``address``."""
        return _udp_socket(address, reuse_addr=cls.reuse_addr, family=family)

    def do_read(self) -> Any:
        try:
            data, address = _socket.socket.recvfrom(self._socket, 8192)
        except BlockingIOError:
            return None
        return data, address

    def sendto(self, *args: Any) -> int:
        """``socket.sendto(data[, flags], address)`` on the server's socket, one greenlet at a
        time."""
        flag = self._writing
        while not flag.is_set():
            flag.wait()
        flag.clear()
        try:
            return self.socket.sendto(*args)  # type: ignore[no-any-return]
        finally:
            flag.set()


def _tcp_listener(
    address: Any, backlog: int = 50, reuse_addr: int | None = None, family: int | None = _socket.AF_INET
) -> _GreenSocket:
    """A cooperative TCP socket bound to ``address`` and listening."""
    sock = _GreenSocket(family=family if family is not None else _socket.AF_INET)
    try:
        _bind(sock, address, reuse_addr)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _udp_socket(
    address: Any, reuse_addr: int | None = None, family: int | None = _socket.AF_INET
) -> _GreenSocket:
    """A cooperative UDP socket bound to ``address``."""
    sock = _GreenSocket(family=family if family is not None else _socket.AF_INET, type=_socket.SOCK_DGRAM)
    try:
        _bind(sock, address, reuse_addr)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind(sock: _GreenSocket, address: Any, reuse_addr: int | None) -> None:
    """Binds ``sock`` to ``address`` (with ``SO_REUSEADDR`` first when asked); a failure names
    the address."""
    if reuse_addr is not None:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, reuse_addr)
    try:
        sock.bind(address)
    except OSError as exc:
        if exc.strerror is not None:
            exc.strerror += f": {address!r}"
        raise
