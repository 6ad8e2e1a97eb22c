"""The stdlib :mod:`threading` on greenlets (gevent's ``gevent.threading``): what
:func:`plait.green.monkey.patch_thread` puts into ``threading``. Once patched, a
``threading.Thread`` runs as a greenlet of its OS thread's hub; ``Lock``, ``RLock``,
``Condition``, ``Semaphore``, ``Event`` and ``Barrier`` block only the current greenlet;
``current_thread()`` in a greenlet is its thread object (a dummy one for a greenlet not started
through ``threading``, dropped when the greenlet ends), and ``main_thread()`` is the main
greenlet's.

How a green thread's end is seen: up to 3.12 the stdlib waits (``join()``, ``is_alive()``,
interpreter exit) on a "thread state lock" that the interpreter releases when an OS thread ends;
here ``_set_sentinel`` makes that lock a green one that is released when the thread's greenlet
ends. From 3.13 it waits on a ``_thread._ThreadHandle``: here
:class:`plait.green.thread._ThreadHandle`, done when the greenlet ends. Either way ``Thread``
subclasses defined before patching (``threading.Timer``, a library's own) work unchanged;
``Thread`` and ``Timer`` are replaced anyway, as gevent does.

This module is a helper for monkey patching; to run things concurrently, use
:func:`plait.green.spawn` and :class:`plait.green.Greenlet`.
"""

from __future__ import annotations

import sys
import threading as _threading
import weakref
from typing import Any

from greenlet import getcurrent

from .local import local as local
from .lock import RLock as _GreenRLock
from .thread import allocate_lock as _allocate_lock
from .thread import get_ident as get_ident
from .thread import start_new_thread as _start_new_thread

_allocate_lock = _allocate_lock
_start_new_thread = _start_new_thread

__implements__ = [
    "Lock",
    "Thread",
    "Timer",
    "_CRLock",
    "_DummyThread",
    "_allocate_lock",
    "get_ident",
    "local",
]
if sys.version_info >= (3, 13):
    from .thread import _make_thread_handle as _make_thread_handle
    from .thread import _ThreadHandle as _ThreadHandle
    from .thread import start_joinable_thread as _start_joinable_thread

    _start_joinable_thread = _start_joinable_thread  # patched in (see __implements__)

    __implements__ += ["_ThreadHandle", "_make_thread_handle", "_start_joinable_thread"]
else:
    __implements__ += ["_set_sentinel", "_start_new_thread"]

Lock = _allocate_lock
#: None makes ``threading.RLock()`` the pure-Python RLock, built on the green ``_allocate_lock``
#: and ``get_ident`` (the C one would use native locks and OS thread idents).
_CRLock = None
#: Not patched in: a greenlet-owned RLock of :mod:`plait.green.lock` (gevent exports it here too).
RLock = _GreenRLock

_StdThread = _threading.Thread
_StdDummyThread = _threading._DummyThread  # type: ignore[attr-defined]
_StdMainThread = _threading._MainThread  # type: ignore[attr-defined]
#: Where a Thread keeps its ``_thread._ThreadHandle`` (3.13: ``_handle``; 3.14: renamed).
_HANDLE_ATTR = next(
    (n for n in ("_os_thread_handle", "_handle") if hasattr(_threading.main_thread(), n)), None
)


class _ReleaseOnEnd:
    """A greenlet link: releases a green thread's state lock when its greenlet ends."""

    __slots__ = ("lock",)

    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def __call__(self, _greenlet: Any) -> None:
        lock, self.lock = self.lock, None
        if lock is not None and lock.locked():
            lock.release()


def _set_sentinel() -> Any:
    """Python < 3.13: the thread-state lock of a thread starting in the current greenlet: a green
    lock that is released when the greenlet ends (the interpreter releases an OS thread's when
    it ends)."""
    lock = _allocate_lock()
    caller = sys._getframe(1).f_locals.get("self")
    rawlink = getattr(getcurrent(), "rawlink", None)
    if rawlink is not None and not isinstance(caller, _StdMainThread):
        rawlink(_ReleaseOnEnd(lock))
    return lock


class Thread(_StdThread):
    """``threading.Thread``, run as a greenlet once :func:`~plait.green.monkey.patch_thread`
    patched ``threading`` (gevent's ``gevent.threading.Thread``)."""


class Timer(Thread, _threading.Timer):
    """``threading.Timer`` on a green :class:`Thread`."""


def _drop_dummy(ident: int) -> Any:
    def drop(_ref: Any = None) -> None:
        _threading._active.pop(ident, None)  # type: ignore[attr-defined]

    return drop


class _DummyThread(_StdDummyThread):
    """``current_thread()`` of a greenlet not started through ``threading``: registered under
    the greenlet's ident, and unregistered when the greenlet ends (the stdlib's dummy threads
    stay forever: fine for the few OS threads a C library starts, not for a greenlet each)."""

    def __init__(self) -> None:
        if _HANDLE_ATTR is None:
            super().__init__()
        else:
            # 3.13+: the stdlib's __init__ also ties the dummy to a thread-local (dropped when the
            # OS thread ends, which greenlets do not): the link below does that per greenlet.
            t = _threading
            _StdThread.__init__(self, name=t._newname("Dummy-%d"), daemon=t._daemon_threads_allowed())  # type: ignore[attr-defined]
            self._started.set()  # type: ignore[attr-defined]
            self._set_ident()  # type: ignore[attr-defined]
            setattr(self, _HANDLE_ATTR, t._make_thread_handle(self._ident))  # type: ignore[attr-defined]
            if t._HAVE_THREAD_NATIVE_ID:  # type: ignore[attr-defined]
                self._set_native_id()  # type: ignore[attr-defined]
            with t._active_limbo_lock:  # type: ignore[attr-defined]
                t._active[self._ident] = self  # type: ignore[attr-defined]
        g = getcurrent()
        drop = _drop_dummy(self._ident)  # type: ignore[attr-defined]
        rawlink = getattr(g, "rawlink", None)
        if rawlink is not None:
            rawlink(lambda _g: drop())
        elif g.parent is not None:
            # A raw greenlet: no links; a weak reference tells when it is gone.
            self._plait_ref = weakref.ref(g, drop)


def main_native_thread() -> _threading.Thread:
    """The main thread's ``Thread`` object (gevent's name)."""
    return _threading.main_thread()


__all__ = [*__implements__, "RLock", "main_native_thread"]
