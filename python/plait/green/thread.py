"""The stdlib :mod:`_thread` on greenlets (gevent's ``gevent.thread``): what
:func:`plait.green.monkey.patch_thread` installs. A "thread" is a greenlet of this OS thread's
hub, its ident is the greenlet's ``id()``, and a lock is a :class:`~plait.green.lock`
semaphore, so blocking on it blocks only the current greenlet.

This module is a helper for monkey patching; to run things concurrently, use
:func:`plait.green.spawn` and :class:`plait.green.Greenlet`.
"""

from __future__ import annotations

import _thread as _stdthread
import sys
import weakref
from collections.abc import Callable
from typing import Any

from greenlet import GreenletExit, getcurrent, greenlet

from . import _hub
from ._greenlet import Greenlet
from ._hub import sleep
from .local import local as _local_class
from .lock import BoundedSemaphore

__target__ = "_thread"
__implements__ = [
    "LockType",
    "_local",
    "allocate_lock",
    "exit",
    "get_ident",
    "stack_size",
    "start_new_thread",
]

error = _stdthread.error
TIMEOUT_MAX = _stdthread.TIMEOUT_MAX
_local = _local_class  # type: ignore[assignment,misc]  # the green threading.local

# Kept native: an OS-level fact, or something only the interpreter can do.
get_native_id = _stdthread.get_native_id
interrupt_main = _stdthread.interrupt_main
RLock = _stdthread.RLock  # threading's C RLock: patching sets threading._CRLock to None instead
_original_stack_size = _stdthread.stack_size


def get_ident(gr: greenlet | None = None) -> int:
    """The "thread" ident of greenlet ``gr`` (default: the current one): its ``id()``."""
    if gr is None:
        try:
            gr = getcurrent()
        except RuntimeError:  # pragma: no cover - greenlet finalizing at interpreter exit
            gr = None
    return id(gr)


def _run_thread(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return function(*args, **kwargs)
    except SystemExit:
        return None  # as in an OS thread: SystemExit ends the thread only, silently


def start_new_thread(
    function: Callable[..., Any], args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
) -> int:
    """Starts ``function(*args, **kwargs)`` in a new greenlet; returns its ident."""
    if not isinstance(args, tuple):
        raise TypeError("2nd arg must be a tuple")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError("optional 3rd arg must be a dictionary")
    return get_ident(Greenlet.spawn(_run_thread, function, args, kwargs or {}))


start_new = start_new_thread


class LockType(BoundedSemaphore):
    """``_thread.lock`` for greenlets: ``acquire(blocking=True, timeout=-1)`` waits in the
    current greenlet only; releasing an unlocked lock raises ``RuntimeError``. Not subclassable,
    as the stdlib's."""

    __slots__ = ()

    _OVER_RELEASE_ERROR = _stdthread.error

    def __init__(self) -> None:
        super().__init__(1)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError("type 'plait.green.thread.LockType' is not an acceptable base type")

    def __repr__(self) -> str:
        state = "locked" if self.locked() else "unlocked"
        return f"<{state} {type(self).__module__}.{type(self).__qualname__} object at {id(self):#x}>"

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:  # type: ignore[override]
        """Takes the lock: True; waits for it (in this greenlet only) with ``blocking``, up to
        ``timeout`` seconds (-1: forever); False if it did not get it."""
        if timeout == -1:
            wait: float | None = None
        else:
            if not blocking:
                raise ValueError("can't specify a timeout for a non-blocking call")
            if timeout < 0:
                raise ValueError("timeout value must be positive")
            if timeout > TIMEOUT_MAX:
                raise OverflowError("timeout value is too large")
            wait = timeout
        acquired = BoundedSemaphore.acquire(self, blocking, wait)
        if not acquired and not blocking:
            hub = getattr(_hub._local, "hub", None)
            if hub is not None and getcurrent() is not hub:
                sleep()  # lets the holder run: a spin on acquire(False) makes progress
        return acquired

    def __enter__(self) -> bool:  # type: ignore[override]
        return self.acquire()

    def release(self) -> None:  # type: ignore[override]
        """Releases the lock (any greenlet may).

        :raises RuntimeError: it is not locked."""
        if not self.locked():
            raise _stdthread.error("release unlocked lock")
        BoundedSemaphore.release(self)

    acquire_lock = acquire
    release_lock = release

    def locked_lock(self) -> bool:
        """Whether it is locked (``locked()``'s old name)."""
        return self.locked()


allocate_lock = LockType


class _ThreadHandle:
    """Python 3.13's ``_thread._ThreadHandle`` for a green thread: ``ident``, ``is_done()``
    (its greenlet ended), ``join(timeout)`` (waits in the current greenlet only)."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        # The stdlib's constructor accepts and ignores any arguments.
        self._greenlet: weakref.ref[greenlet] | None = None
        self._ident: int | None = None
        self._started = False
        self._done = False

    def _set_greenlet(self, g: greenlet) -> None:
        self._greenlet = weakref.ref(g)
        self._ident = id(g)
        self._started = True

    def _get_greenlet(self) -> greenlet | None:
        return self._greenlet() if self._greenlet is not None else None

    @property
    def ident(self) -> int | None:
        """The thread's (its greenlet's) ident."""
        return self._ident

    def is_done(self) -> bool:
        """Whether the thread ended (or was marked done)."""
        if self._done:
            return True
        g = self._get_greenlet()
        return g is None or bool(g.dead)

    def join(self, timeout: float | None = None) -> None:
        """Waits until the thread ends, or ``timeout`` seconds (None or -1: no limit)."""
        if timeout is not None and timeout < 0:
            timeout = None
        if not self._started:
            raise RuntimeError("thread not started")
        g = self._get_greenlet()
        if g is None or self.is_done():
            return
        if g is getcurrent():
            raise RuntimeError("Cannot join current thread")
        join = getattr(g, "join", None)
        if join is not None and not self._done:
            join(timeout)
            return
        # A raw greenlet (the main one) or one marked done by hand: poll.
        from time import monotonic

        deadline = None if timeout is None else monotonic() + timeout
        while not self.is_done():
            if deadline is not None and monotonic() >= deadline:
                return
            sleep(0.001)

    def _set_done(self) -> None:
        self._done = True

    def __repr__(self) -> str:
        return f"<plait.green.thread._ThreadHandle ident={self._ident} done={self.is_done()}>"


def start_joinable_thread(
    function: Callable[..., Any], handle: _ThreadHandle | None = None, daemon: bool = True
) -> _ThreadHandle:
    """Python 3.13's ``_thread.start_joinable_thread``: starts ``function()`` in a new greenlet
    and returns its :class:`_ThreadHandle` (``handle``, if given)."""
    if handle is None:
        handle = _ThreadHandle()
    elif not isinstance(handle, _ThreadHandle):
        raise TypeError(f"handle must be a plait.green.thread._ThreadHandle, not {type(handle).__name__}")
    elif handle._started:
        raise RuntimeError("thread already started")
    handle._set_greenlet(Greenlet.spawn(_run_thread, function, (), {}))
    return handle


def _make_thread_handle(*_args: Any) -> _ThreadHandle:
    """Python 3.13's ``_thread._make_thread_handle``: a handle for the current greenlet."""
    handle = _ThreadHandle()
    handle._set_greenlet(getcurrent())
    return handle


if sys.version_info >= (3, 13):
    __implements__ += ["_ThreadHandle", "_make_thread_handle", "lock", "start_joinable_thread"]
    lock = LockType


def exit() -> None:  # the stdlib's name
    """Ends the current green thread (raises ``GreenletExit``)."""
    raise GreenletExit


exit_thread = exit
allocate = allocate_lock


def stack_size(size: int | None = None) -> int:
    """``_thread.stack_size``: the OS threads' stack size. Greenlets share their thread's stack,
    so a smaller size is accepted and changes nothing."""
    if size is None:
        return _original_stack_size()  # type: ignore[no-any-return]
    if size > _original_stack_size():
        return _original_stack_size(size)  # type: ignore[no-any-return]
    if size == 0:
        return 0
    if size < 32_768:
        raise ValueError(f"size not valid: {size} bytes")
    return _original_stack_size()  # type: ignore[no-any-return]


__all__ = [*__implements__, "RLock", "TIMEOUT_MAX", "error", "get_native_id", "interrupt_main", "start_new"]
__all__.remove("_local")
