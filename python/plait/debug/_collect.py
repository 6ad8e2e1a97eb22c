"""Gathers the state of this process for :func:`plait.dump`: every thread with its stack and the
plait locks it holds and waits for, deadlocks, asyncio tasks, greenlets and process pools. The
result is a plain dict (the JSON of ``plait dump --json``); :mod:`._format` renders it as text.

Every collector reads; none changes what it looks at (a greenlet's name is not assigned, a
task's result is not retrieved), so a dump can be taken at any time.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import traceback
import types
from typing import Any

from .. import _plait, _report
from .._report import ResourceTuple, _site

Report = dict[str, Any]

_HERE = os.path.dirname(os.path.abspath(__file__))
_PACKAGE_INIT = os.path.join(os.path.dirname(_HERE), "__init__.py")


def _stack(frame: types.FrameType | None, *, trim: bool) -> list[dict[str, Any]]:
    """Outermost first, as a traceback. ``trim``: drop the innermost frames that belong to the
    dump itself (the calling thread's)."""
    if trim:
        while frame is not None and (
            frame.f_code.co_filename.startswith(_HERE) or frame.f_code.co_filename == _PACKAGE_INIT
        ):
            frame = frame.f_back
    if frame is None:
        return []
    return [
        {"file": f.filename, "line": f.lineno, "function": f.name, "code": f.line or None}
        for f in traceback.extract_stack(frame)
    ]


def _lock(res: ResourceTuple, holders: list[int]) -> dict[str, Any]:
    label, kind, name, rid, code, lasti = res
    return {
        "id": rid,
        "kind": kind,
        "name": name,
        "label": label,
        "holders": holders,
        "acquired_at": _site(code, lasti),
    }


def threads_and_locks(
    me: int, skip: frozenset[int] = frozenset()
) -> tuple[list[Report], list[Report], list[Report]]:
    """``(threads, locks, deadlocks)``: threads that run Python code or touch plait locks (but
    those in ``skip``), every lock held or waited for, and the deadlocks among the waits."""
    held, waits = _plait.snapshot()
    found = _plait.deadlocks()
    frames = sys._current_frames()
    by_ident = {t.ident: t for t in threading.enumerate() if t.ident is not None}
    locks: dict[int, Report] = {}
    holds: dict[int, list[int]] = {}
    for ident, res in held:
        lock = locks.setdefault(res[3], _lock(res, []))
        lock["holders"].append(ident)
        holds.setdefault(ident, []).append(res[3])
    waiting: dict[int, Report] = {}
    for ident, res, timed, secs in waits:
        locks.setdefault(res[3], _lock(res, []))
        waiting[ident] = {"lock": res[3], "timed": timed, "seconds": round(secs, 3)}
    deadlocks = []
    for self_wait, edges in found:
        for _, res, holders in edges:
            locks.setdefault(res[3], _lock(res, holders))
        deadlocks.append(
            {
                "self_wait": self_wait,
                "edges": [{"thread": t, "waits_for": res[3], "held_by": hs} for t, res, hs in edges],
            }
        )
    idents = set(frames) | set(holds) | set(waiting)
    idents -= skip | _report.own_threads  # plait's own (the debug channel's helper)

    def order(ident: int) -> tuple[bool, str, int]:
        t = by_ident.get(ident)
        return (ident != me, t.name if t is not None else "~", ident)

    threads = []
    for ident in sorted(idents, key=order):
        t = by_ident.get(ident)
        threads.append(
            {
                "ident": ident,
                "name": t.name if t is not None else None,
                "native_id": getattr(t, "native_id", None),
                "daemon": t.daemon if t is not None else None,
                "current": ident == me,
                "holds": sorted(holds.get(ident, [])),
                "waits_for": waiting.get(ident),
                "stack": _stack(frames.get(ident), trim=ident == me),
            }
        )
    for lock in locks.values():
        lock["holders"].sort()
    return threads, sorted(locks.values(), key=lambda lock: lock["id"]), deadlocks


def _greenlet_target(g: Any) -> str | None:
    fn = getattr(g, "_func", None)
    if fn is None:
        fn = getattr(g, "__dict__", {}).get("run")
    if fn is None:
        fn = getattr(type(g), "_run", None) or getattr(type(g), "run", None)
    if fn is None:
        return None
    return getattr(fn, "__qualname__", None) or repr(fn)


def greenlets(objects: list[Any]) -> list[Report] | None:
    """Every live greenlet (found as gevent's ``format_run_info`` finds them: among the objects
    the garbage collector tracks), or None when greenlet is not imported."""
    greenlet_mod = sys.modules.get("greenlet")
    if greenlet_mod is None:
        return None
    cls = greenlet_mod.greenlet
    current = greenlet_mod.getcurrent()
    out = []
    for g in objects:
        if not isinstance(g, cls) or g.dead:
            continue
        d = getattr(g, "__dict__", {})
        name = d.get("_name")
        kind = type(g).__qualname__
        if g.parent is None:
            state = "main greenlet of its thread"
        elif not g:
            state = "not started"
        else:
            state = "suspended"
        if g is current:
            state = "running (the dump's own)"
        elif g.gr_frame is None and g:
            state = "running (in another thread)"
        out.append(
            {
                "id": id(g),
                "type": f"{type(g).__module__}.{kind}",
                "name": name,
                "target": _greenlet_target(g) if g.parent is not None else None,
                "state": state,
                "stack": _stack(g.gr_frame, trim=False) if g.gr_frame is not None else [],
            }
        )
    return out


def _function_name(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None)
    if name is not None:
        return str(name)
    inner = getattr(fn, "func", None)  # functools.partial, and the pool's chunk runner
    if inner is not None:
        args = getattr(fn, "args", ())
        target = args[0] if args and callable(args[0]) else inner
        return getattr(target, "__qualname__", None) or type(fn).__qualname__
    return type(fn).__qualname__


def process_pools(objects: list[Any]) -> list[Report]:
    """Every live ``plait.processes.ProcessPool``: its workers' pids, and the task each runs (its
    call read from the task's pickle without running any of its code, see :mod:`._peek`)."""
    executor = sys.modules.get("plait.processes._executor")
    if executor is None or not executor._dispatchers:
        return []
    from ._peek import call as peek_call

    functions: dict[int, dict[int, Any]] = {}
    for obj in objects:
        if isinstance(obj, executor.ProcessPool):
            functions[obj._key] = {fid: fn for fn, fid in list(obj._functions.items())}
    out = []
    for key, (core, dispatcher, _completer) in sorted(executor._dispatchers.items()):
        known = functions.get(key, {})
        running: dict[int, Report] = {}
        for pid, task_id, fid, body, segments, seconds in core.running_tasks(1.0):
            fn = known.get(fid) if fid else None
            call = peek_call(fn, body, segments) if fid == 0 or fn is not None else f"function #{fid}(...)"
            function = _function_name(fn) if fn is not None else call.split("(")[0]
            running[pid] = {"id": task_id, "function": function, "call": call, "seconds": round(seconds, 3)}
        workers = [
            {"slot": slot, "pid": pid, "task": running.get(pid)}
            for slot, pid in enumerate(core.worker_pids())
            if pid
        ]
        out.append(
            {
                "pool": f"ProcessPool #{key}",
                "dispatcher_thread": dispatcher.ident,
                "closed": core.closed,
                "workers": workers,
            }
        )
    return out


def collect(*, skip: frozenset[int] = frozenset()) -> Report:
    """The whole report of this process, as a dict (see the module docstring)."""
    from ._tasks import collect as collect_tasks

    me = threading.get_ident()
    threads, locks, deadlocks = threads_and_locks(me, skip)
    # One pass over the objects the garbage collector tracks: event loops, greenlets and pools
    # are found there (as gevent's format_run_info finds greenlets).
    objects = gc.get_objects()
    report: Report = {
        "pid": os.getpid(),
        "source": "python",
        "python": {"available": True, "version": sys.version.split()[0], "executable": sys.executable},
        "argv": list(sys.argv),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "detection": _plait.get_deadlock_detection(),
        "threads": threads,
        "locks": locks,
        "deadlocks": deadlocks,
        "asyncio": collect_tasks(objects),
        "greenlets": greenlets(objects),
        "process_pools": process_pools(objects),
    }
    return report
