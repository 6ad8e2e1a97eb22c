"""The base of plait.green's waitable primitives (events, async results, semaphores): links
notified in order by the hub, a hub bound on first use, and the one waiting routine they share.

How a wait stays correct: the waiting greenlet links its own ``switch`` and switches to the hub;
the notifier, running in the hub, takes each link off the list *before* calling it, and a waiter
that leaves the wait another way (a ``kill``, a :class:`~plait.green.Timeout`) unlinks itself in
a ``finally``. So no stale link can ever switch into a greenlet that waits on something else.
A link is called synchronously: a woken greenlet runs (and, for a semaphore, takes its permit)
before the next link is considered, so nothing is handed to a waiter that is no longer there.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

from greenlet import getcurrent, greenlet

from ..exceptions import InvalidThreadUseError
from ._greenlet import Linkable
from ._hub import Hub, _local, get_hub, switch_out

__all__ = ["AbstractLinkable", "InvalidThreadUseError", "capture_hub", "park", "schedule"]

_get_ident = threading.get_ident


class AbstractLinkable(Linkable):
    """Something greenlets wait on (gevent's ``AbstractLinkable``).

    Its hub is the one of the first thread that waits on it or links to it (not the one that
    made it, so module-level objects work), re-bound when that hub was destroyed. ``set``-like
    calls from another thread are allowed: the links are then notified through
    ``call_soon_threadsafe``.

    Subclasses define :meth:`ready`; ``_notify_all`` says whether a notification calls every
    link present when it starts (an event: all waiters saw it set) or only while :meth:`ready`
    stays true (a semaphore: one permit per waiter).
    """

    __slots__ = ("__weakref__", "_notify_all")

    def __init__(self, hub: Hub | None = None) -> None:
        # Not Linkable.__init__: that binds the current thread's hub now.
        self.hub = hub
        self._links: collections.deque[Callable[[Any], Any]] = collections.deque()
        self._notifier: Any = None
        self._notify_all = True

    def linkcount(self) -> int:
        """How many callbacks are linked (waiting greenlets included)."""
        return len(self._links)

    # -- the hub ----------------------------------------------------------------------------

    def _capture_hub(self) -> Hub:
        """The hub to wait with: this thread's, bound now if it is not yet (or was destroyed).

        :raises InvalidThreadUseError: greenlets of another live hub wait on it."""
        hub = self.hub
        if hub is not None and getattr(_local, "hub", None) is hub:
            return hub
        hub = self.hub = capture_hub(self, hub, bool(self._links) or self._notifier is not None)
        return hub

    # -- links ------------------------------------------------------------------------------

    def rawlink(self, callback: Callable[[Any], Any]) -> None:
        """Runs ``callback(self)`` in the hub once this is ready (soon, if it already is); the
        callback is unlinked before it is called."""
        if not callable(callback):
            raise TypeError(f"expected a callable, not {callback!r}")
        self._capture_hub()
        self._links.append(callback)
        self._check_and_notify()

    def unlink(self, callback: Callable[[Any], Any]) -> None:
        """Removes ``callback`` (nothing if it is not linked)."""
        try:
            self._links.remove(callback)
        except ValueError:
            pass

    def _check_and_notify(self) -> None:
        """Schedules the links' notification in the hub if this is ready and none is pending."""
        if self._notifier is not None or not self._links or not self.ready():
            return
        hub = self.hub
        if hub is None:  # pragma: no cover - links imply a captured hub
            hub = self._capture_hub()
        if hub.thread_ident == _get_ident():
            self._notifier = hub.loop.call_soon(self._notify_links)
            return
        # From another thread: marked pending first, as the hub may run it at once.
        self._notifier = True
        if schedule(hub, self._notify_links) is None:  # that hub's loop is closed
            self._notifier = None

    _schedule_notify = _check_and_notify

    def _notify_links(self) -> None:
        """Calls the links, each taken off the list first, in the order they were linked: all of
        those present now (``_notify_all``) or only while :meth:`ready` holds."""
        links = self._links
        hub = self.hub
        try:
            if self._notify_all:
                if links:
                    final = links[-1]
                    while links:
                        link = links.popleft()
                        self._call_link(link, hub)
                        if link is final:
                            break
            else:
                while links and self.ready():
                    self._call_link(links.popleft(), hub)
        finally:
            self._notifier = None
        # A link may have made it ready again with links left: notify those too.
        self._check_and_notify()

    def _call_link(self, link: Callable[[Any], Any], hub: Hub | None) -> None:
        try:
            link(self)
        except BaseException as exc:
            if hub is None:  # pragma: no cover - links imply a captured hub
                raise
            hub.handle_error((link, self), exc)

    # -- waiting ----------------------------------------------------------------------------

    def _wait_core(self, timeout: float | None, what: str) -> bool:
        """Waits in the current greenlet to be notified: True; False when ``timeout`` passes.
        ``what`` names the wait for :class:`~plait.green.BlockedForever` (e.g. "Event.wait()").

        The caller checked :meth:`ready` (or found a notification pending and joins it)."""
        hub = self._capture_hub()
        switch = getcurrent().switch
        self._links.append(switch)
        timer = None if timeout is None else hub.loop.call_later(max(timeout, 0), switch, _TIMED_OUT)
        try:
            result = switch_out(hub, what, self)
        finally:
            self.unlink(switch)
            if timer is not None:
                timer.cancel()
        if result is self:
            return True
        if result is _TIMED_OUT:
            return False
        raise AssertionError(f"plait.green: invalid switch into {what}: {result!r}")

    def _drop_orphans(self) -> None:
        # Its hub was destroyed: forget the greenlets that waited there (callbacks stay).
        self._notifier = None
        self._links = collections.deque(link for link in self._links if not _is_switch(link))

    def _at_fork_reinit(self) -> None:
        """After a fork (threading's and logging's hooks): detach from the parent's hub."""
        self.hub = None
        self._notifier = None
        self._links.clear()


class _TimedOut:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<timed out>"


#: What a wait's timer switches back with.
_TIMED_OUT: Any = _TimedOut()


def capture_hub(obj: Any, hub: Hub | None, busy: bool) -> Hub:
    """The current thread's hub for ``obj``, whose hub so far is ``hub`` (None: not bound yet).
    A hub that was destroyed is replaced (``obj._drop_orphans()`` forgets the greenlets that
    waited there); so is another thread's, unless ``obj`` is ``busy`` there (greenlets of that
    thread wait on it).

    :raises InvalidThreadUseError: ``obj`` is busy in another thread's live hub."""
    current = getattr(_local, "hub", None)
    if hub is not None and hub is current:
        return hub
    if hub is not None and busy:
        if not hub._destroying and not hub.loop.is_closed():
            raise InvalidThreadUseError(
                f"plait.green: {obj!r} belongs to the hub of thread {hub.thread_ident}, whose "
                f"greenlets wait on it; it cannot be waited on from thread {_get_ident()} (use "
                "plait.threads primitives to cross threads)"
            )
        # Its hub was destroyed: the greenlets that waited there never resume. Nothing may
        # switch into them later.
        obj._drop_orphans()
    return current if current is not None else get_hub()


def _is_switch(link: Any) -> bool:
    """Whether ``link`` is a greenlet's ``switch`` (a waiting greenlet, not a callback)."""
    return getattr(link, "__name__", None) == "switch" and isinstance(
        getattr(link, "__self__", None), greenlet
    )


def park(hub: Hub, timeout: float | None, what: str, obj: Any) -> Any:
    """Switches out of the current greenlet until a waker switches back (returns what it
    passes) or ``timeout`` passes (returns ``_TIMED_OUT``). The caller registered its waker
    first, and removes it in a ``finally`` (the wait can also end with an exception)."""
    if timeout is None:
        return switch_out(hub, what, obj)
    timer = hub.loop.call_later(max(timeout, 0), getcurrent().switch, _TIMED_OUT)
    try:
        return switch_out(hub, what, obj)
    finally:
        timer.cancel()


def schedule(hub: Hub, callback: Callable[[], Any]) -> Any:
    """Runs ``callback()`` in ``hub`` soon: from its own thread with ``call_soon`` (returns the
    handle), from another with ``call_soon_threadsafe`` (returns True; None if that hub's loop
    is closed, so nobody is left to run it)."""
    loop = hub.loop
    if hub.thread_ident == _get_ident():
        return loop.call_soon(callback)
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:
        return None
    return True
