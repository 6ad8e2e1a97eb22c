"""``monkey.patch_thread``: makes ``_thread`` and ``threading`` green (gevent's
``gevent.monkey._patch_thread_lt313``/``_gte313``).

Besides copying :mod:`plait.green.thread`'s and :mod:`plait.green.threading`'s names in, it
fixes the state ``threading`` built before: the main thread is registered under the main
greenlet's ident; its thread-state lock (3.13+: its thread handle) is swapped for a green one
while the program runs (so a greenlet can ``join()`` it), and the native one put back for the
interpreter's exit, which first joins the green non-daemon threads; locks held
now (an import lock, an ``RLock``) get the green ident of their owner; threads already running
(native) get a ``join()`` that polls; ``logging``'s locks become green. A fork hook keeps
``threading.main_thread()`` sane in a child forked from a greenlet.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from greenlet import getcurrent

from . import monkey
from ._hub import BlockedForever

__all__ = ["patch"]


def patch(
    threading: bool = True,
    threading_local: bool = True,
    event: bool = True,
    logging: bool = True,
    existing_locks: bool = True,
    warnings_: list[tuple[str, type[Warning]]] | None = None,
) -> None:
    """See :func:`plait.green.monkey.patch_thread`."""
    import threading as threading_mod

    _import_internals()
    orig_current_thread = threading_mod.current_thread()
    main_thread = threading_mod.main_thread()
    orig_shutdown = threading_mod._shutdown  # type: ignore[attr-defined]

    monkey._patch_module("thread")
    if threading:
        _register_main_greenlet(threading_mod, warnings_)
        monkey._patch_module("threading")
        if event:
            from .event import Event

            monkey.patch_item(threading_mod, "Event", Event)
        if existing_locks:
            _patch_existing_locks(threading_mod)
        if logging and "logging" in sys.modules:
            _patch_logging(threading_mod)
    if threading_local:
        import _threading_local

        from .local import local

        monkey.patch_item(_threading_local, "local", local)
    if threading:
        _patch_active_threads(threading_mod, main_thread)
        already = "_shutdown" in monkey.saved.get("threading", {})
        if orig_current_thread is main_thread and not already:
            if sys.version_info >= (3, 13):
                _patch_shutdown_on_main_313(threading_mod, main_thread, orig_shutdown)
            else:
                _patch_shutdown_on_main(threading_mod, main_thread, orig_shutdown)
            threading_mod._dangling.discard(main_thread)  # type: ignore[attr-defined]
        elif not already:
            monkey._warn(
                "Monkey-patching not on the main thread; threading.main_thread().join() will hang "
                "from a greenlet",
                monkey.MonkeyPatchWarning,
                warnings_,
            )
            _patch_shutdown_not_on_main(threading_mod, main_thread, orig_shutdown)


def _import_internals() -> None:
    """Imports plait.green's modules before ``_thread`` and ``threading`` change, so that what
    they take from those at import (native thread idents, locks, the thread pool's thread
    class) is the stdlib's."""
    monkey._import_plait_modules()


def _register_main_greenlet(threading_mod: Any, warnings_: Any) -> None:
    """The main thread's ``Thread`` object, found under the main greenlet's green ident (else
    ``current_thread()`` there would be a new dummy thread that cannot be joined); a fork hook
    that gives a child forked from a greenlet a proper main thread."""
    from .thread import get_ident

    main_thread = threading_mod.main_thread()
    if threading_mod.current_thread() is not main_thread:
        monkey._warn(
            "Monkey-patching outside the main native thread: some threading APIs will not work",
            monkey.MonkeyPatchWarning,
            warnings_,
        )
        return
    ident = get_ident()
    active = threading_mod._active
    if ident not in active:
        active.pop(main_thread.ident, None)
        main_thread._ident = ident
        active[ident] = main_thread
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _after_fork_in_child() -> None:
    """After ``threading``'s own hook: a child forked from a plain greenlet made that greenlet's
    dummy thread the main thread, which has no thread-state lock for the interpreter's exit; a
    real ``_MainThread`` replaces it."""
    import threading as threading_mod

    from .thread import get_ident

    current = threading_mod._main_thread  # type: ignore[attr-defined]
    if isinstance(current, threading_mod._DummyThread):  # type: ignore[attr-defined]
        main = threading_mod._MainThread()  # type: ignore[attr-defined]
        threading_mod._main_thread = main  # type: ignore[attr-defined]
        ident = get_ident()
        if main._ident != ident:  # 3.13: _MainThread() takes the OS thread's ident
            threading_mod._active.pop(main._ident, None)
            main._ident = ident
            threading_mod._active[ident] = main


def _patch_existing_locks(threading_mod: Any) -> None:
    if len(threading_mod.enumerate()) != 1:
        return
    try:
        import concurrent.futures.thread as cf_thread
    except ImportError:  # pragma: no cover
        cf_thread = None
    if cf_thread is not None and hasattr(cf_thread, "_global_shutdown_lock"):
        # Held across Thread.start() and registered with os.register_at_fork: a native one held
        # by a greenlet would block the fork (gevent issue 1865).
        cf_thread._global_shutdown_lock = threading_mod._allocate_lock()
    threading_mod._active_limbo_lock = threading_mod._allocate_lock()
    ident = threading_mod.get_ident()
    rlock_type = type(threading_mod.RLock())
    import gc
    import importlib._bootstrap

    module_lock = importlib._bootstrap._ModuleLock  # type: ignore[attr-defined]
    for obj in gc.get_objects():
        if isinstance(obj, rlock_type):
            if getattr(obj, "_owner", None) is not None:
                obj._owner = ident
        elif isinstance(obj, module_lock) and obj.owner is not None:
            obj.owner = ident


def _patch_logging(threading_mod: Any) -> None:
    import logging

    monkey.patch_item(logging, "_lock", threading_mod.RLock())
    for ref in list(logging._handlerList):  # type: ignore[attr-defined]
        handler = ref()
        if handler is not None and getattr(handler, "lock", None) is not None:
            handler.lock = threading_mod.RLock()


def _patch_active_threads(threading_mod: Any, main_thread: Any) -> None:
    """Native threads already running: their ``join()`` polls (their native state lock would
    block the whole hub)."""
    from .threading import _HANDLE_ATTR

    for thread in list(threading_mod._active.values()):
        if thread is main_thread:
            if _HANDLE_ATTR is not None and threading_mod.current_thread() is main_thread:
                # 3.13+: the main thread's handle is the main greenlet's, so that a greenlet can
                # join it; the native one is ended by the interpreter.
                from .thread import _make_thread_handle

                handle = _make_thread_handle()
                setattr(thread, _HANDLE_ATTR, handle)
                thread._ident = handle.ident
        elif not isinstance(thread, threading_mod._DummyThread):
            thread.join = _polling_join(thread, threading_mod)


def _polling_join(thread: Any, threading_mod: Any) -> Any:
    from time import monotonic

    from ._hub import sleep

    def join(timeout: float | None = None) -> None:
        if threading_mod.current_thread() is thread:
            raise RuntimeError("cannot join current thread")
        deadline = None if not timeout else monotonic() + timeout
        while thread.is_alive():
            if deadline is not None and monotonic() > deadline:
                return
            sleep(0.01)

    return join


def _patch_shutdown_on_main(threading_mod: Any, main_thread: Any, orig_shutdown: Any) -> None:
    """While the program runs, the main thread's state lock is a green one (a greenlet may
    join the main thread); at exit, ``threading._shutdown`` releases it, lets those greenlets
    run, puts the native lock back and runs the stdlib's shutdown (which joins the green
    non-daemon threads)."""
    main_thread._plait_real_tstate_lock = main_thread._tstate_lock
    green_lock = threading_mod._allocate_lock()
    green_lock.acquire()
    main_thread._tstate_lock = green_lock
    main_greenlet = getcurrent()

    def _shutdown() -> None:
        lock = main_thread._tstate_lock
        if not lock or getattr(main_thread, "_plait_real_tstate_lock", None) is None:
            return
        if lock.locked():
            lock.release()
        from ._hub import sleep

        try:
            sleep()
        except BaseException:  # the main greenlet was killed or thrown into: nowhere to go
            import traceback

            traceback.print_exc()
        main_thread._is_stopped = False
        main_thread._tstate_lock = main_thread._plait_real_tstate_lock
        main_thread._plait_real_tstate_lock = None
        try:
            orig_shutdown()
        except BlockedForever:
            pass
        finally:
            monkey.patch_item(threading_mod, "_shutdown", orig_shutdown)

    _shutdown.__wrapped__ = orig_shutdown  # type: ignore[attr-defined]
    main_thread._greenlet = main_greenlet
    monkey.patch_item(threading_mod, "_shutdown", _shutdown)


def _patch_shutdown_on_main_313(threading_mod: Any, main_thread: Any, orig_shutdown: Any) -> None:
    """3.13+: at exit, ``threading._shutdown`` marks the main greenlet's handle done, lets the
    greenlets joining the main thread run, runs the threading atexit callbacks and joins the green
    non-daemon threads (the stdlib's ``_thread._shutdown`` only knows OS threads), then runs the
    stdlib's shutdown."""
    from ._hub import sleep
    from .threading import _HANDLE_ATTR

    class _Running:
        """The main thread's handle while the stdlib's shutdown runs: not done yet."""

        def is_done(self) -> bool:
            return False

        def _set_done(self) -> None:
            pass

        def join(self, timeout: float | None = None) -> None:
            pass

    def _shutdown() -> None:
        handle = getattr(main_thread, _HANDLE_ATTR)
        if isinstance(handle, _Running):
            return
        handle._set_done()
        try:
            sleep()
        except BaseException:  # the main greenlet was killed or thrown into: nowhere to go
            import traceback

            traceback.print_exc()
        setattr(main_thread, _HANDLE_ATTR, _Running())
        threading_mod._SHUTTING_DOWN = True
        for atexit_call in reversed(threading_mod._threading_atexits):
            atexit_call()
        del threading_mod._threading_atexits[:]
        try:
            while True:
                pending = [
                    t
                    for t in threading_mod.enumerate()
                    if not t.daemon and t is not main_thread and t.is_alive()
                ]
                if not pending:
                    break
                for thread in pending:
                    getattr(thread, _HANDLE_ATTR).join()
            orig_shutdown()
        except BlockedForever:
            pass
        finally:
            monkey.patch_item(threading_mod, "_shutdown", orig_shutdown)

    main_thread._greenlet = getcurrent()
    monkey.patch_item(threading_mod, "_shutdown", _shutdown)


def _patch_shutdown_not_on_main(threading_mod: Any, main_thread: Any, orig_shutdown: Any) -> None:
    from .thread import get_ident

    def _shutdown() -> None:
        main_thread._ident = get_ident()
        try:
            orig_shutdown()
        except BlockedForever:
            pass
        monkey.patch_item(threading_mod, "_shutdown", orig_shutdown)

    monkey.patch_item(threading_mod, "_shutdown", _shutdown)
