"""DNS for plait.green: the C library's resolver functions run in threads, so a lookup blocks only
the greenlet that asked (gevent's ``gevent.resolver.thread.Resolver``).

Each hub has one :class:`Resolver` (``hub.resolver``, made on first use) with a few worker
threads. While a thread works for the hub it holds ``hub._keepalive`` (the hub must not call
the waiting greenlet blocked forever), and it hands the result back with
``loop.call_soon_threadsafe``. ``Hub.destroy()`` shuts the threads down (``hub.on_destroy``).

Numeric addresses (``"127.0.0.1"``, ``"::1"``) need no lookup: they are answered at once,
without a thread.
"""

from __future__ import annotations

import _socket
from collections.abc import Callable
from typing import Any

from greenlet import getcurrent

from ._hub import BlockingSwitchOutError, Hub, get_hub
from ._native import NativeWorkers

__all__ = ["Resolver", "get_resolver"]

_AI_NUMERICHOST = getattr(_socket, "AI_NUMERICHOST", 0)


class _Call:
    """One lookup: the greenlet waiting for it (None once it stopped waiting) and its outcome."""

    __slots__ = ("greenlet", "hub", "outcome")

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.greenlet: Any = getcurrent()
        self.outcome: Any = None

    def done(self, result: Any, error: BaseException | None) -> None:
        """In the worker thread: hands the outcome to the hub."""
        self.outcome = (result, error)
        try:
            self.hub.loop.call_soon_threadsafe(self.deliver)
        except RuntimeError:  # the hub's loop is closed: nobody waits any more
            pass

    def deliver(self) -> None:
        """In the hub: the thread finished working for it; wakes the greenlet if it still waits."""
        self.hub._keepalive -= 1
        g, self.greenlet = self.greenlet, None
        if g is not None and not g.dead:
            g.switch(self)


class Resolver:
    """Resolves names in native threads with the C library's functions (``getaddrinfo`` and
    friends), so results match a program without greenlets (``/etc/hosts``, NSS, ...); only the
    calling greenlet waits. ``maxsize`` threads at most, started on demand."""

    def __init__(self, hub: Hub | None = None, maxsize: int = 10) -> None:
        self.hub = hub if hub is not None else get_hub()
        self.maxsize = maxsize
        self._pool: NativeWorkers | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__} at {id(self):#x} maxsize={self.maxsize}>"

    def close(self) -> None:
        """Stops the threads (waits for lookups in progress to end)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _apply(self, function: Callable[..., Any], *args: Any) -> Any:
        hub = self.hub
        if getcurrent() is hub:
            raise BlockingSwitchOutError(
                f"plait.green: cannot resolve a name ({function.__name__}) in the hub itself "
                "(an event-loop callback)"
            )
        pool = self._pool
        if pool is None:
            # Real OS threads even under patch_thread (see _native).
            pool = self._pool = NativeWorkers(self.maxsize)
        call = _Call(hub)
        hub._keepalive += 1
        try:
            pool.submit(function, args, call.done)
        except BaseException:
            hub._keepalive -= 1
            raise
        try:
            woken = hub.switch()
        finally:
            call.greenlet = None  # killed or timed out: the thread's result must not wake it later
        if woken is not call:
            raise AssertionError(f"plait.green: a name lookup was woken by {woken!r}")
        result, error = call.outcome
        if error is not None:
            raise error
        return result

    def gethostbyname(self, hostname: str) -> str:
        """``socket.gethostbyname``, in a thread."""
        try:
            _socket.inet_pton(_socket.AF_INET, hostname)
        except (OSError, TypeError, ValueError):
            return self._apply(_socket.gethostbyname, hostname)  # type: ignore[no-any-return]
        return hostname

    def gethostbyname_ex(self, hostname: str) -> tuple[str, list[str], list[str]]:
        """``socket.gethostbyname_ex``, in a thread."""
        return self._apply(_socket.gethostbyname_ex, hostname)  # type: ignore[no-any-return]

    def getaddrinfo(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, ...]]:
        """``socket.getaddrinfo`` (plain ints, as ``_socket`` returns them), in a thread unless
        ``host`` is numeric or None."""
        if _AI_NUMERICHOST:
            try:
                return _socket.getaddrinfo(host, port, family, type, proto, flags | _AI_NUMERICHOST)
            except _socket.gaierror as exc:
                if host is None or exc.errno != _socket.EAI_NONAME:
                    raise
        return self._apply(_socket.getaddrinfo, host, port, family, type, proto, flags)  # type: ignore[no-any-return]

    def gethostbyaddr(self, ip_address: str) -> tuple[str, list[str], list[str]]:
        """``socket.gethostbyaddr``, in a thread."""
        return self._apply(_socket.gethostbyaddr, ip_address)  # type: ignore[no-any-return]

    def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
        """``socket.getnameinfo``, in a thread."""
        return self._apply(_socket.getnameinfo, sockaddr, flags)  # type: ignore[no-any-return]


def get_resolver(hub: Hub | None = None) -> Resolver:
    """The hub's resolver (``hub.resolver``), made on first use; ``Hub.destroy()`` closes it."""
    if hub is None:
        hub = get_hub()
    resolver = hub.__dict__.get("_resolver")
    if resolver is None:
        resolver = hub.__dict__["_resolver"] = Resolver(hub)
        hub.on_destroy.append(resolver.close)
    return resolver  # type: ignore[no-any-return]
