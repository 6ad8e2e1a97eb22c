"""The hub: one per thread, a greenlet that runs a plait event loop (:class:`plait.aio.EventLoop`:
native ready queue, timers and epoll), and the waiting primitive every blocking call is built on.

A greenlet that must wait schedules its own wake-up on the loop (a timer, an fd callback, a link
on the thing it waits for) and switches to the hub; the hub runs the loop's callbacks, one of
which switches back to it. Greenlets' parent is the hub, so a greenlet that finishes returns to
it too. asyncio tasks scheduled on the same loop run between greenlets: the two models share it.

When the loop has nothing left that could wake anyone (no ready callback, no timer, no fd
watched, no thread working for the hub) while greenlets still wait, the hub raises
:class:`BlockedForever` (alias ``LoopExit``, gevent's name) in the main greenlet, naming every
waiting greenlet, what it waits on and where, instead of gevent's bare "This operation would
block forever".
"""

from __future__ import annotations

import _thread
import importlib
import os
import sys
import threading
import traceback
from asyncio import events
from collections.abc import Callable
from typing import Any

from greenlet import GreenletExit, getcurrent, greenlet

from .. import _plait
from ..aio._loop import EventLoop
from ..exceptions import BlockedForever, BlockingSwitchOutError

__all__ = [
    "BlockedForever",
    "BlockingSwitchOutError",
    "GreenletExit",
    "Hub",
    "LoopExit",
    "get_hub",
    "getcurrent",
    "idle",
    "sleep",
    "switch_out",
]

_HERE = os.path.dirname(os.path.abspath(__file__))
# The OS thread's id, taken before any patching (patch_thread makes get_ident a greenlet's).
_get_ident = _thread.get_ident

# A greenlet's first frame maps a frame-stack chunk and its end unmaps it (~8 us of a short
# greenlet's ~10 here): from now on this process keeps up to 128 freed chunks for reuse (see
# crates/plait-py/src/green/stacks.rs; the object allocator's arenas are not affected).
_plait.cache_frame_stacks()


#: gevent's name for :class:`BlockedForever`.
LoopExit = BlockedForever


class _HubLoop(EventLoop):
    """The hub's loop: when an iteration would wait with no timeout, the hub checks whether
    anything could still wake a greenlet (see :class:`BlockedForever`), through the native
    loop's idle hook, so the loop itself runs natively."""

    _hub: Hub

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        if executor is None and self._default_executor is None and not self._executor_shutdown_called:
            # The stdlib's default is a concurrent.futures pool on `threading`: once patched,
            # its threads are greenlets, and a blocking call there stops the hub. plait.green's
            # executor runs on OS threads whatever was patched.
            threadpool = importlib.import_module("plait.green.threadpool")
            self._default_executor = threadpool.ThreadPoolExecutor(thread_name_prefix="asyncio")
        # A thread working for the loop can wake it: the hub must not call that blocked forever.
        future = super().run_in_executor(executor, func, *args)
        hub = self._hub
        hub._keepalive += 1
        future.add_done_callback(hub._release_keepalive)
        return future


_local = threading.local()


def _root(g: greenlet) -> greenlet:
    while g.parent is not None:
        g = g.parent
    return g


class Hub(greenlet):
    """The greenlet that runs this thread's event loop (``loop``, a :class:`plait.aio.EventLoop`).

    ``get_hub()`` makes one per thread on first use. Its parent is the thread's main greenlet:
    errors that must reach the program (``KeyboardInterrupt``, ``SystemExit``,
    :class:`BlockedForever`) are thrown there."""

    def __init__(self, loop: EventLoop | None = None) -> None:
        super().__init__(parent=_root(getcurrent()))
        #: The greenlet that runs ``loop`` when the hub adopted a loop already running (asyncio
        #: code spawning greenlets): waiting greenlets switch back to it, through the hub.
        self._runner: greenlet | None = None
        if loop is None:
            running = events._get_running_loop()
            if running is None:
                loop = _HubLoop()
            elif isinstance(running, EventLoop):
                loop = running
                self._runner = getcurrent()
            else:
                raise RuntimeError(
                    "plait.green in a running asyncio loop needs plait's loop, not "
                    f"{type(running).__name__}: run the program with plait.aio.run() or "
                    "asyncio.run(..., loop_factory=plait.aio.new_event_loop)"
                )
        self.loop = loop
        loop._hub = self  # type: ignore[attr-defined]
        if self._runner is None:
            loop._set_idle_hook(self._check_blocked)  # type: ignore[attr-defined]
        self.thread_ident = _get_ident()
        #: Greenlets waiting without a timer, and on what: read only to report BlockedForever.
        self.waiting: dict[greenlet, tuple[str, Any]] = {}
        self._keepalive = 0  # threads working for the hub (their results wake it)
        self._joining = False
        self._destroying = False
        #: Called (no arguments) by destroy(), after the loop stopped: resources made per hub
        #: (thread pools, resolvers) register their shutdown here.
        self.on_destroy: list[Callable[[], object]] = []
        # sleep(0)'s greenlets, resumed in order by one loop callback per iteration (native:
        # crates/plait-py/src/green/yielders.rs).
        self._yielders = _plait.Yielders(loop.call_soon, self.handle_error)

    def __repr__(self) -> str:
        return f"<plait.green.Hub at {id(self):#x} thread={self.thread_ident} loop={self.loop!r}>"

    def run(self) -> None:
        runner = self._runner
        if runner is not None:
            # The loop runs in `runner`, inside the callback that switched to a greenlet: a
            # greenlet that waits or ends comes here, and control goes back to that callback.
            while True:
                runner.switch()
        loop = self.loop
        while True:
            try:
                loop.run_forever()
            except GreenletExit:
                raise  # the hub itself is being ended (collected)
            except BaseException as exc:
                # Raised while the hub ran (Ctrl-C, or another signal handler's error during the
                # poll): the program's, as gevent does. The hub goes on if switched back to.
                self.parent.throw(exc)
                continue
            if self._destroying:
                return
            # stop() was called (a user's loop.stop()): hand control back.
            self.parent.switch()

    def join(self, timeout: float | None = None) -> bool:
        """Runs the loop until nothing is left for it to do (every greenlet finished or waits
        forever): True; False when ``timeout`` passes first. Call from the main greenlet."""
        if self._runner is not None:
            raise BlockingSwitchOutError(
                "Hub.join(): this hub runs in an asyncio loop (it adopted it): await the greenlets instead"
            )
        if getcurrent() is not self.parent:
            raise BlockingSwitchOutError("Hub.join() must be called from the thread's main greenlet")
        timer = None
        if timeout is not None:
            timer = self.loop.call_later(timeout, self.parent.switch, False)
        self._joining = True
        try:
            return bool(self.switch())
        finally:
            self._joining = False
            if timer is not None:
                timer.cancel()

    @property
    def resolver(self) -> Any:
        """This hub's DNS resolver (gevent's ``hub.resolver``: lookups in threads), made on first use."""
        # Looked up by name: the resolver sits above the hub (it uses it), not below.
        return importlib.import_module("plait.green._resolver").get_resolver(self)

    @property
    def threadpool(self) -> Any:
        """This hub's thread pool (gevent's ``hub.threadpool``), made on first use."""
        # Looked up by name: the thread pool sits above the hub (it uses it), not below.
        return importlib.import_module("plait.green.threadpool").get_threadpool(self)

    def destroy(self, destroy_loop: bool = True) -> None:
        """Stops the hub (greenlets still waiting never resume) and, with ``destroy_loop``,
        closes its loop; this thread's next ``get_hub()`` makes a new one. Call from the main
        greenlet."""
        if getcurrent() is self:
            raise BlockingSwitchOutError("Hub.destroy() cannot be called from the hub itself")
        if self._runner is not None:  # the loop is asyncio's program's: not ours to stop or close
            destroy_loop = False
        elif bool(self):  # started and suspended: let run_forever end, then run() returns
            self._destroying = True
            self.loop.stop()
            self.switch()
        if getattr(_local, "hub", None) is self:
            del _local.hub
        callbacks, self.on_destroy = self.on_destroy, []
        for callback in callbacks:
            callback()
        if self._runner is None:
            self.loop._set_idle_hook(None)  # type: ignore[attr-defined]
        if destroy_loop and not self.loop.is_closed():
            self.loop.close()

    def handle_error(self, context: Any, exc: BaseException) -> None:
        """Reports an error raised in a greenlet or in a callback: printed once to stderr with its
        traceback, as gevent does. ``KeyboardInterrupt`` and ``SystemExit`` go to the main
        greenlet."""
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            self.loop.call_soon(self._throw_main, exc)
            return
        text = "".join(traceback.format_exception(exc))
        sys.stderr.write(f"{text}{context!r} failed with {type(exc).__name__}\n\n")

    def _throw_main(self, exc: BaseException) -> None:
        main = self.parent
        if not main.dead:
            main.throw(exc)

    def _release_keepalive(self, _future: Any = None) -> None:
        self._keepalive -= 1

    def _watching(self) -> bool:
        """Whether the loop watches an fd (other than its own self-pipe) that could wake someone."""
        own = getattr(self.loop, "_ssock", None)
        own_fd = own.fileno() if own is not None else -1
        # plait.green._io's watchers: a socket's reader parked between waits, with nobody
        # waiting on it, wakes no one.
        watchers = self.__dict__.get("_io_watchers") or {}
        for fd in self.loop._fds():  # type: ignore[attr-defined]
            if fd == own_fd:
                continue
            watcher = watchers.get(fd)
            if watcher is None or watcher.waited_on():
                return True
        return False

    def _check_blocked(self) -> bool:
        """The loop's idle hook, called when nothing is ready and no live timer is set: unless
        an fd or a thread could still wake someone, the wait would last forever. Then it hands
        control to the main greenlet (``join()`` returns, or :class:`BlockedForever` is raised
        there) and returns True once switched back to (the loop then looks again)."""
        if self._keepalive or self._watching():
            return False
        main = self.parent
        if self._joining:
            main.switch(True)
            return True
        waiting = self.describe_waiting()
        lines = "\n".join(f"  {name} waits on {what} at {where}" for name, what, where in waiting)
        message = (
            "plait.green: every greenlet is blocked and nothing can wake any of them "
            "(no ready callback, no timer, no watched fd, no thread working for the hub)"
            + (f":\n{lines}" if lines else "")
        )
        main.throw(BlockedForever(message, waiting))
        return True

    def describe_waiting(self) -> list[tuple[Any, str, str]]:
        """``(greenlet, what, where)`` for each greenlet waiting with no timer."""
        out = []
        for g, (verb, obj) in list(self.waiting.items()):
            what = verb if obj is None else f"{verb} of {obj!r}"
            out.append((_name_of(g), what, _where(g)))
        return out


def _name_of(g: greenlet) -> str:
    name = getattr(g, "name", None)
    if isinstance(name, str):
        return f"{type(g).__name__} {name!r}"
    if g.parent is None:
        return "the main greenlet"
    return repr(g)


def _where(g: greenlet) -> str:
    """The first frame of ``g``'s stack outside plait.green, as "file:line in function"."""
    frame = g.gr_frame if g is not getcurrent() else sys._getframe()
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == _HERE:
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def get_hub() -> Hub:
    """This thread's hub, made on first use: with its own :class:`plait.aio.EventLoop`, or, when
    called from asyncio code running on a plait loop, around that loop (so greenlets and tasks
    share it)."""
    try:
        hub: Hub = _local.hub
    except AttributeError:
        hub = _local.hub = Hub()
        return hub
    if hub._runner is not None and hub.loop.is_closed():  # the adopted loop's program ended
        hub = _local.hub = Hub()
    return hub


def _set_hub(hub: Hub | None) -> None:
    if hub is None:
        _local.__dict__.pop("hub", None)
    else:
        _local.hub = hub


def switch_out(hub: Hub, what: str, obj: Any = None) -> Any:
    """Switches to ``hub`` until something switches back (the caller scheduled that first), and
    returns what it passes. ``what``/``obj`` say what the greenlet waits on, for
    :class:`BlockedForever`'s report."""
    current = getcurrent()
    if current is hub or current is hub._runner:
        raise BlockingSwitchOutError(
            f"plait.green: cannot wait ({what}) in the hub itself, i.e. in an event-loop callback "
            "or a coroutine (from asyncio code, await the greenlet or use an asyncio call)"
        )
    waiting = hub.waiting
    waiting[current] = (what, obj)
    try:
        return hub.switch()
    finally:
        waiting.pop(current, None)


_plait.green_init(getcurrent, Hub)
_sleep0 = _plait.green_sleep0


def sleep(seconds: float = 0, ref: bool = True) -> None:
    """Suspends the current greenlet for ``seconds``; ``sleep(0)`` (or less) lets every other
    ready greenlet and callback run once first. ``ref`` is accepted for gevent compatibility."""
    if seconds <= 0 and _sleep0():  # a spawned greenlet: natively
        return
    current = getcurrent()
    hub = current.parent  # a spawned greenlet's parent is its hub: no thread-local lookup
    if type(hub) is not Hub:
        hub = get_hub()
    if current is hub or current is hub._runner:
        raise BlockingSwitchOutError(
            "plait.green: cannot sleep in the hub itself (an event-loop callback or a coroutine)"
        )
    if seconds <= 0:
        hub._yielders.park(current, hub)
        return
    handle = hub.loop.call_later(seconds, current.switch)
    try:
        hub.switch()
    except BaseException:
        handle.cancel()  # woken otherwise (killed, a Timeout): the wake-up must not fire later
        raise


def idle(priority: int = 0) -> None:
    """Waits until the loop has run every callback that was ready (gevent's ``idle``)."""
    sleep(0)


def _throw(g: greenlet, exc: BaseException | type[BaseException]) -> None:
    """Raises ``exc`` in ``g`` where it waits (from the hub); nothing if ``g`` already ended."""
    if not g.dead:
        g.throw(exc)
