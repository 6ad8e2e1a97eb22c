"""The stdlib :mod:`signal`, with a ``signal()`` whose handlers may block (gevent's
``gevent.signal``), and :func:`signal_handler` (gevent's ``gevent.signal_handler``): a handler
run in a new greenlet whenever the signal arrives.

Python runs a signal handler in the main thread, in whatever code runs there when the signal is
noticed. Under plait.green that is often the hub (every greenlet waits, the loop polls), where
nothing can block. So the handlers installed with this module's :func:`signal` run:

* in a new greenlet when the signal arrives while the hub runs (they may block); an exception
  they raise is raised in the main greenlet, where it waits (the stdlib raises it in the main
  thread's code, gevent in the main greenlet);
* in place, as the stdlib runs them, when a greenlet runs (their exception is raised there).

Ctrl-C (``SIGINT``'s ``default_int_handler``, once ``signal`` is patched or set again through
:func:`signal`) raises ``KeyboardInterrupt`` in the main greenlet wherever it is noticed, as the
stdlib raises it in the main thread (a green ``threading.Thread`` would otherwise get it, and
``threading`` would only print it). :func:`getsignal` returns the handler as given.

``SIGCHLD`` is not special: plait.green's ``waitpid`` waits through pidfds and never installs
a handler of its own (gevent's libev child watchers own ``SIGCHLD``, hence its special case).
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from greenlet import GreenletExit, getcurrent, greenlet

from . import _hub
from ._hub import Hub, get_hub
from ._stdlib import copy_globals

__implements__ = ["getsignal", "signal"]
__extensions__ = ["SignalHandler", "signal_handler"]

_signal_signal = _signal.signal
_signal_getsignal = _signal.getsignal


class _Cooperative:
    """A handler installed by :func:`signal`: runs ``handler`` in a new greenlet when called in
    the hub, in place otherwise."""

    __slots__ = ("handler",)

    def __init__(self, handler: Callable[[int, FrameType | None], Any]) -> None:
        self.handler = handler

    def __call__(self, signum: int, frame: FrameType | None) -> Any:
        hub = getattr(_hub._local, "hub", None)
        if hub is not None and getcurrent() is hub:
            # The frame is the hub's: of no use to the handler, and it would keep it alive.
            greenlet(self._run, parent=hub).switch(hub, signum)
            return None
        return self.handler(signum, frame)

    def _run(self, hub: Hub, signum: int) -> None:
        try:
            self.handler(signum, None)
        except BaseException as exc:
            # As the stdlib raises it in the main thread's code, and gevent in the main greenlet.
            _raise_in_main(hub, exc)

    def __repr__(self) -> str:
        return f"<plait.green.signal handler {self.handler!r}>"


def _raise_in_main(hub: Hub, exc: BaseException) -> None:
    """Raises ``exc`` in the hub's main greenlet (where it waits), from the hub."""
    if isinstance(exc, GreenletExit):
        return
    main = hub.parent
    hub.loop.call_soon(_throw, main, exc)


def _throw(g: greenlet, exc: BaseException) -> None:
    if not g.dead:
        g.throw(exc)


class _MainInterrupt(_Cooperative):
    """``SIGINT``'s default handler once ``signal`` is patched: ``KeyboardInterrupt`` in the
    main greenlet, wherever the signal is noticed (the stdlib raises it in the main thread; a
    green thread would otherwise get it, and ``threading`` would only print it)."""

    __slots__ = ()

    def __call__(self, signum: int, frame: FrameType | None) -> Any:
        hub = getattr(_hub._local, "hub", None)
        current = getcurrent()
        if hub is None or current.parent is None:
            return self.handler(signum, frame)  # the main greenlet (or no hub): in place
        if current is hub:
            _raise_in_main(hub, KeyboardInterrupt())
            return None
        # Another greenlet noticed it: the main greenlet gets it now, where it waits (as the
        # main thread would); this greenlet resumes from the hub right after.
        main = hub.parent
        if not main.dead:
            hub.loop.call_soon(current.switch)
            main.throw(KeyboardInterrupt())
        return None


def _plait_did_monkey_patch(target: Any, items: list[str], warn: Callable[[str], None]) -> None:
    """After ``monkey.patch_signal``: Ctrl-C reaches the main greenlet (see _MainInterrupt)."""
    try:
        if _signal_getsignal(_signal.SIGINT) is _signal.default_int_handler:
            _signal_signal(_signal.SIGINT, _MainInterrupt(_signal.default_int_handler))
    except ValueError:  # not the main thread: it cannot set handlers
        pass


def _unwrap(handler: Any) -> Any:
    return handler.handler if isinstance(handler, _Cooperative) else handler


def signal(signalnum: int, handler: Any) -> Any:
    """``signal.signal``, whose Python handler may block: run in a new greenlet when the signal
    arrives while the hub runs (see the module docstring). Returns the previous handler."""
    if handler is _signal.default_int_handler:
        handler = _MainInterrupt(handler)
    elif callable(handler):
        handler = _Cooperative(handler)
    return _unwrap(_signal_signal(signalnum, handler))


def getsignal(signalnum: int) -> Any:
    """``signal.getsignal``: the handler as given to :func:`signal`."""
    return _unwrap(_signal_getsignal(signalnum))


class SignalHandler:
    """What :func:`signal_handler` returns: ``cancel()`` stops it. Keep it until then."""

    def __init__(self, signalnum: int, handler: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if not callable(handler):
            raise TypeError("signal handler must be callable.")
        self.signalnum = signalnum
        self.handler: Callable[..., Any] | None = handler
        self.args: tuple[Any, ...] | None = args
        self.kwargs: dict[str, Any] | None = kwargs
        self.hub: Hub | None = get_hub()
        _Dispatch.of(self.hub).add(self)

    def cancel(self) -> None:
        """Stops calling the handler (the signal's previous handler is back once no
        ``signal_handler`` watches it); nothing if already cancelled."""
        hub, self.hub = self.hub, None
        if hub is not None:
            _Dispatch.of(hub).remove(self)
        self.handler = self.args = self.kwargs = None

    def handle(self) -> None:
        """Calls the handler (in the greenlet made for this delivery)."""
        handler, hub = self.handler, self.hub
        if handler is None or hub is None:
            return
        try:
            handler(*(self.args or ()), **(self.kwargs or {}))
        except BaseException as exc:
            # gevent's: reported, and raised in the main greenlet (the hub sends it
            # KeyboardInterrupt and SystemExit itself).
            hub.handle_error(self, exc)
            if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
                _raise_in_main(hub, exc)

    def __repr__(self) -> str:
        state = "" if self.hub is not None else " cancelled"
        return f"<SignalHandler {self.signalnum} {self.handler!r}{state}>"


def signal_handler(signalnum: int, handler: Callable[..., Any], *args: Any, **kwargs: Any) -> SignalHandler:
    """Calls ``handler(*args, **kwargs)`` in a new greenlet each time the process receives
    ``signalnum``, until the returned object's ``cancel()``. Main thread only (as any signal
    handler). Several may watch one signal; the signal's previous handler is restored when the
    last is cancelled (or the hub is destroyed).

    ::

        watcher = signal_handler(signal.SIGTERM, server.stop)
        ...
        watcher.cancel()
    """
    return SignalHandler(signalnum, handler, *args, **kwargs)


class _Dispatch:
    """A hub's signal watchers: one ``loop.add_signal_handler`` per signal, fanning out."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.watchers: dict[int, list[SignalHandler]] = {}
        self.previous: dict[int, Any] = {}
        hub.on_destroy.append(self.close)

    @classmethod
    def of(cls, hub: Hub) -> _Dispatch:
        dispatch = hub.__dict__.get("_plait_signal_dispatch")
        if dispatch is None:
            dispatch = hub.__dict__["_plait_signal_dispatch"] = cls(hub)
        return dispatch  # type: ignore[no-any-return]

    def add(self, watcher: SignalHandler) -> None:
        signum = watcher.signalnum
        watchers = self.watchers.get(signum)
        if watchers is None:
            previous = _signal_getsignal(signum)
            try:
                self.hub.loop.add_signal_handler(signum, self._fire, signum)
            except RuntimeError as exc:
                raise ValueError(
                    f"plait.green.signal_handler({signum}) works in the main thread only (as any "
                    f"signal handler): {exc}"
                ) from None
            watchers = self.watchers[signum] = []
            self.previous[signum] = previous
        watchers.append(watcher)

    def remove(self, watcher: SignalHandler) -> None:
        signum = watcher.signalnum
        watchers = self.watchers.get(signum)
        if watchers is None or watcher not in watchers:
            return
        watchers.remove(watcher)
        if not watchers:
            self._release(signum)

    def _release(self, signum: int) -> None:
        del self.watchers[signum]
        previous = self.previous.pop(signum)
        loop = self.hub.loop
        if loop.is_closed():
            _signal_signal(signum, previous if previous is not None else _signal.SIG_DFL)
            return
        loop.remove_signal_handler(signum)
        if previous is not None:
            _signal_signal(signum, previous)
        # asyncio drops the wakeup fd with the loop's last signal handler; the hub's loop still
        # runs and must wake on signals (Ctrl-C).
        csock = getattr(loop, "_csock", None)
        if csock is not None and loop.is_running():
            current = _swap_wakeup_fd(-1)
            if current is not None:
                _signal.set_wakeup_fd(current if current != -1 else csock.fileno(), warn_on_full_buffer=False)

    def _fire(self, signum: int) -> None:
        from ._greenlet import Greenlet

        for watcher in list(self.watchers.get(signum, ())):
            Greenlet(watcher.handle).switch()

    def close(self) -> None:
        """At the hub's destruction: drops every watcher, and the signal wakeup fd if it is
        still the loop's (its self-pipe is about to close)."""
        for signum in list(self.watchers):
            self.watchers[signum].clear()
            self._release(signum)
        csock = getattr(self.hub.loop, "_csock", None)
        if csock is not None:
            current = _swap_wakeup_fd(-1)
            if current not in (None, -1, csock.fileno()):
                _signal.set_wakeup_fd(current)


def _swap_wakeup_fd(fd: int) -> int | None:
    """``signal.set_wakeup_fd(fd)``: the previous fd, or None outside the main thread."""
    try:
        return _signal.set_wakeup_fd(fd)
    except ValueError:
        return None


__imports__ = copy_globals(_signal, globals(), ignore=__implements__ + __extensions__)
__all__ = sorted(set(__implements__ + __extensions__ + __imports__))
