"""The debug channel's Python side: :func:`enable` starts the native channel thread
(``_plait.debug_enable``) and a helper thread that builds the interpreter's report when the
channel asks for it; :func:`disable` stops both.

The native thread answers ``plait dump PID`` and ``SIGQUIT``. It asks the helper for the full
report and waits at most ``wait`` seconds for the interpreter to pick the request up; when a C
call holds the GIL that long, it sends plait's lock graph, which it reads without the
interpreter, and says that the Python stacks are unavailable.

After ``fork()`` the child has no channel (its threads did not survive): call :func:`enable`
again there to get one.
"""

from __future__ import annotations

import atexit
import os
import threading

from .. import _plait, _report

_lock = threading.Lock()
_helper: threading.Thread | None = None
_hooks_installed = False


def _serve() -> None:
    """The helper thread: builds a report each time the channel asks, until it is disabled."""
    from ._collect import collect
    from ._format import text as as_text

    me = threading.get_ident()
    _report.own_threads.add(me)
    try:
        while True:
            request = _plait.debug_next_request()
            if request is None:
                return
            rid, as_json = request
            try:
                report = collect(skip=frozenset({me}))
                text = _to_json(report) if as_json else as_text(report)
            except Exception as exc:  # the helper must outlive a failing collector
                text = f"plait dump failed in the interpreter: {exc!r}\n"
            _plait.debug_reply(rid, text)
    finally:
        _report.own_threads.discard(me)


def _to_json(report: object) -> str:
    import json

    return json.dumps(report, indent=2, default=repr) + "\n"


def _after_fork_in_child() -> None:
    global _helper, _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    if _helper is not None:
        _plait._debug_after_fork_in_child()
        _helper = None
        _report.own_threads.clear()
        _report.own_native_threads = 0


def enable(*, sigquit: bool = True, wait: float = 1.0) -> str:
    """Start the debug channel of this process (a no-op when it is on) and return its socket's
    name (abstract namespace: ``\\0plait-<uid>-<pid>``).

    ``plait dump PID`` (run as the same user) then prints this process's report, and with
    ``sigquit`` (default), ``kill -QUIT PID`` or Ctrl-\\\\ prints it to stderr instead of
    killing the process. Both are answered by a native thread, so plait's lock graph is reported
    even when a C call holds the GIL; the interpreter's part (stacks, tasks, greenlets) is waited
    for at most ``wait`` seconds. The channel only reports: it accepts no other request.
    """
    global _helper, _hooks_installed
    with _lock:
        name = _plait.debug_channel()
        if name is not None:
            return name
        name = _plait.debug_enable(sigquit=sigquit, wait=wait)
        _report.own_native_threads += 1
        helper = threading.Thread(target=_serve, name="plait-debug-channel", daemon=True)
        try:
            helper.start()
        except BaseException:
            _plait.debug_disable()
            _report.own_native_threads -= 1
            raise
        _helper = helper
        if not _hooks_installed:
            os.register_at_fork(after_in_child=_after_fork_in_child)
            atexit.register(disable)
            _hooks_installed = True
    return name


def disable() -> None:
    """Stop the debug channel (a no-op when it is off): the socket closes and ``SIGQUIT`` gets
    its previous handler back."""
    global _helper
    with _lock:
        helper, _helper = _helper, None
        if _plait.debug_channel() is not None:
            _plait.debug_disable()
            _report.own_native_threads -= 1
    if helper is not None and helper is not threading.current_thread():
        helper.join()


def enabled() -> bool:
    """Whether the debug channel is on."""
    return _plait.debug_channel() is not None
