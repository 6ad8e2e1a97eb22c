"""A forked child's plait.green: the parent's hub cannot run in the child, so it is set aside and
the child gets a new one.

The hub's loop polls with an epoll instance, and a forked child shares that instance (and the
loop's self-pipe) with its parent: if the child polled it, it would take the parent's events;
closing the loop would unregister the parent's fds. So, in the child (an ``os.register_at_fork``
hook, run by every ``fork()``, plait's or not):

* the parent's hub is *abandoned*: kept referenced (never collected, so never closed), its loop
  marked closed, and switching to it raises :class:`~plait.green.BlockedForever`;
* the greenlet that forked goes on, re-parented to a new hub (made on first use otherwise);
* every other greenlet of the parent stays suspended for good: only the forking greenlet runs in
  the child, as only the forking thread runs in a child of a threaded process. A greenlet that
  waits for one of them (``join``) in the child gets :class:`~plait.green.BlockedForever`.

(gevent re-creates its libev loop in the child and keeps every greenlet running; plait's native
loop offers no way to re-create its epoll instance with the same registrations from Python.)
"""

from __future__ import annotations

import os
import signal
from typing import Any

from greenlet import getcurrent, greenlet

from . import _hub
from ._hub import BlockedForever, Hub

__all__ = ["reinit"]

#: Hubs of the parent process, set aside in this (forked) process: kept alive so that neither the
#: collector nor ``__del__`` ever closes their loop (which would touch the parent's epoll set).
_abandoned: list[Hub] = []


def reinit(hub: Hub | None = None) -> None:
    """Prepares plait.green to run in a forked child process: this thread's hub (or ``hub``),
    inherited from the parent, is set aside and a new one is made on first use. Called
    automatically after every ``fork()`` (an ``os.register_at_fork`` hook); calling it again
    does nothing."""
    if hub is None:
        hub = getattr(_hub._local, "hub", None)
    if hub is None or any(h is hub for h in _abandoned):
        return
    _abandon(hub)


def _abandon(old: Hub) -> None:
    _abandoned.append(old)
    loop = old.loop
    # Marked closed, never closed: close() would unregister the fds from the shared epoll set.
    loop._closed = True
    loop._stopping = True
    old._destroying = True
    old.__dict__["switch"] = _refuse
    old.__dict__["throw"] = _refuse
    if getattr(_hub._local, "hub", None) is old:
        _hub._set_hub(None)
    _forget_self_pipe(loop)
    current = getcurrent()
    if current is old or current.parent is None:
        # The thread's main greenlet forked (or a loop callback did: nothing can re-home the
        # hub itself); the main greenlet needs no new parent.
        return
    new = _hub.get_hub()
    if _descends_from(current, old):
        current.parent = new
    if isinstance(getattr(current, "hub", None), Hub):
        current.hub = new  # type: ignore[attr-defined]


def _refuse(*_args: Any, **_kwargs: Any) -> Any:
    raise BlockedForever(
        "plait.green: this waits on the hub of the parent process, which cannot run in a forked "
        "child; only the greenlet that called fork() runs here (wait only on what it starts)"
    )


def _descends_from(g: greenlet, ancestor: greenlet) -> bool:
    parent = g.parent
    while parent is not None:
        if parent is ancestor:
            return True
        parent = parent.parent
    return False


def _forget_self_pipe(loop: Any) -> None:
    """Points the signal wakeup fd away from the parent's self-pipe (a signal in the child would
    wake the parent's loop) and closes the child's copies of it."""
    csock, ssock = getattr(loop, "_csock", None), getattr(loop, "_ssock", None)
    if csock is not None:
        try:
            previous = signal.set_wakeup_fd(-1)
        except ValueError:  # not the main thread: its wakeup fd is none of this loop's
            previous = -1
        if previous not in (-1, csock.fileno()):
            signal.set_wakeup_fd(previous)
    for sock in (csock, ssock):
        if sock is not None:
            sock.close()
    loop._csock = loop._ssock = None


def _after_fork_in_child() -> None:
    try:
        reinit()
    except Exception:  # pragma: no cover - an at-fork hook must not fail the fork
        import traceback

        traceback.print_exc()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
