"""Formatting of deadlock reports, lock-order warnings and ``dump()`` (data comes from Rust)."""

from __future__ import annotations

import os
import sys
import threading
import traceback
import warnings
from types import CodeType, FrameType

from .exceptions import (
    DeadlockEdge,
    DeadlockError,
    DeadlockWarning,
    LockInfo,
    LockOrderWarning,
    SelfDeadlockWarning,
)

# (label, kind, name, id, code, lasti) as produced by the binding.
ResourceTuple = tuple[str, str, "str | None", int, "CodeType | None", int]
# (waiting thread, what it waits for, its holders) per edge of a deadlock.
Edges = list[tuple[int, ResourceTuple, list[int]]]


def _site(code: CodeType | None, lasti: int) -> str | None:
    if code is None or lasti < 0:
        return None
    offset = lasti  # PyFrame_GetLasti is already a byte offset
    line = code.co_firstlineno
    for start, end, lineno in code.co_lines():
        if start <= offset < end and lineno is not None:
            line = lineno
            break
    return f"{code.co_filename}:{line} (in {code.co_qualname})"


def _thread_names() -> dict[int, str]:
    names = {}
    for t in threading.enumerate():
        if t.ident is not None:
            names[t.ident] = t.name
    return names


def _name(names: dict[int, str], ident: int) -> str:
    return f"Thread {names.get(ident, '<unnamed>')!r} ({ident})"


def _lock_info(res: ResourceTuple) -> LockInfo:
    label, kind, name, rid, code, lasti = res
    return LockInfo(label=label, kind=kind, name=name, id=rid, acquired_at=_site(code, lasti))


def _stack(ident: int, frames: dict[int, FrameType], me: int) -> list[str]:
    if ident == me:
        # Called by _edges, called by a report function the binding calls: the caller's frame.
        return traceback.format_stack(sys._getframe(3))
    frame = frames.get(ident)
    return traceback.format_stack(frame) if frame is not None else []


def _edges(edges: Edges, me: int) -> list[DeadlockEdge]:
    names = _thread_names()
    frames = sys._current_frames()
    return [
        DeadlockEdge(
            thread_ident=ident,
            thread_name=names.get(ident, "<unnamed>"),
            waits_for=_lock_info(res),
            held_by=tuple((h, names.get(h, "<unnamed>")) for h in holders),
            stack=_stack(ident, frames, me),
        )
        for ident, res, holders in edges
    ]


def _edge_lines(cycle: list[DeadlockEdge], names: dict[int, str]) -> list[str]:
    lines = []
    for e in cycle:
        holders = ", ".join(_name(names, h) for h, _ in e.held_by)
        who = "itself" if [h for h, _ in e.held_by] == [e.thread_ident] else holders
        lines.append(f"  {_name(names, e.thread_ident)}")
        lines.append(f"    waits for {e.waits_for.label}, held by {who}")
        if e.waits_for.acquired_at:
            lines.append(f"    {e.waits_for.label} was acquired at {e.waits_for.acquired_at}")
    return lines


def deadlock_error(
    edges: list[tuple[int, ResourceTuple, list[int]]], me: int, alone: bool = False
) -> DeadlockError:
    """Build the :class:`DeadlockError` for a cycle found by the binding. ``alone``: the first
    edge is a ``Lock`` re-acquired by its holder, and no other thread can release it."""
    names = _thread_names()
    cycle = _edges(edges, me)
    n = len({e.thread_ident for e in cycle})
    lines = [f"Found one deadlock ({n} thread{'s' if n != 1 else ''}):", ""]
    lines += _edge_lines(cycle, names)
    if cycle and cycle[0].held_by and cycle[0].held_by[0][0] == cycle[0].thread_ident:
        lines.append("")
        if alone:
            others = "every other thread waits behind it" if n > 1 else "it is the only thread"
            lines.append(f"  No other thread can release {cycle[0].waits_for.label}: {others}.")
        lines += [
            f"  A thread cannot acquire a non-reentrant {cycle[0].waits_for.kind} it already holds;",
            "  use RLock for re-entry, or release it first.",
        ]
    for e in cycle:
        if e.stack and e.thread_ident != me:
            lines += ["", f"{_name(names, e.thread_ident)} stack (most recent call last):"]
            lines += [s.rstrip("\n") for s in e.stack]
    return DeadlockError("\n".join(lines), cycle)


# plait's own threads, which never release a user's lock: left out of the self-deadlock check
# (see other_threads). Python idents, and a count of native threads Python does not know; both
# kept by plait.debug for its channel's threads.
own_threads: set[int] = set()
own_native_threads = 0


def other_threads(me: int) -> list[int] | None:
    """The idents of every other thread that runs Python code, or None when some thread of the
    process is unknown to Python (a thread still starting, a native thread): it might release a
    lock, so the binding then never calls a self-wait certain."""
    if threading._limbo:  # type: ignore[attr-defined]
        return None  # a Thread is starting
    idents = set(sys._current_frames())
    idents.add(me)
    try:
        os_threads = len(os.listdir("/proc/self/task"))
    except OSError:
        return None
    if os_threads > len(idents) + own_native_threads:
        return None  # e.g. a raw _thread starting (no frame yet), or a thread that never ran Python
    idents.discard(me)
    idents -= own_threads
    return sorted(idents)


def warn_self_wait(
    edges: list[tuple[int, ResourceTuple, list[int]]], me: int, waited: float, grace: float
) -> None:
    """A thread has waited ``waited`` seconds to re-acquire a ``Lock`` it holds: warn once with
    the full report (then it goes on waiting)."""
    names = _thread_names()
    cycle = _edges(edges, me)
    label = cycle[0].waits_for.label
    lines = [
        f"Possible deadlock: {_name(names, me)} has waited {waited:.1f} s to acquire {label}, "
        "which it holds itself:",
        "",
    ]
    lines += _edge_lines(cycle, names)
    lines += [
        "",
        f"  This is valid if another thread releases {label} (a Lock used as a signal), and a",
        "  deadlock if none will. Use RLock for re-entry, release it first, or signal with an Event",
        f"  or a Semaphore. (Warned after {grace:g} s: plait.threads.set_deadlock_detection(..., grace=).)",
        "",
    ]
    lines += dump().splitlines()
    warnings.warn(SelfDeadlockWarning("\n".join(lines), cycle), stacklevel=2)


def warn_deadlock(err: DeadlockError) -> None:
    """Warn-mode report: the caller goes on to wait after this."""
    warnings.warn(str(err), DeadlockWarning, stacklevel=3)


def warn_lock_order(acquiring: str, held: str, earlier: list[str]) -> None:
    """lockdep-style report of an acquisition order that contradicts an earlier one."""
    order = " -> ".join(earlier)
    warnings.warn(
        f"possible deadlock: {acquiring} acquired while holding {held}, but earlier {order} "
        f"were taken in the opposite order; two threads doing both can deadlock",
        LockOrderWarning,
        stacklevel=3,
    )


def dump() -> str:
    """Every thread's stack with the plait locks it holds and waits for (the calling thread's
    stack from the caller of this function's caller: ``plait.threads.dump``'s caller)."""
    from . import _plait

    held, waits = _plait.snapshot()
    names = _thread_names()
    frames = sys._current_frames()
    holds: dict[int, list[LockInfo]] = {}
    for ident, res in held:
        holds.setdefault(ident, []).append(_lock_info(res))
    waiting = {ident: (_lock_info(res), timed, secs) for ident, res, timed, secs in waits}
    out = [f"plait thread dump: {len(frames)} threads"]
    me = threading.get_ident()
    idents = sorted(set(frames) | set(holds) | set(waiting), key=lambda i: (i != me, names.get(i, "~")))
    for ident in idents:
        current = " (current)" if ident == me else ""
        out += ["", f"{_name(names, ident)}{current}"]
        for info in holds.get(ident, []):
            where = f", acquired at {info.acquired_at}" if info.acquired_at else ""
            out.append(f"  holds {info.label}{where}")
        if ident in waiting:
            info, timed, secs = waiting[ident]
            kind = "with a timeout" if timed else "without timeout"
            out.append(f"  waits for {info.label} ({kind}, for {secs:.3f}s)")
        frame = frames.get(ident)
        if frame is not None:
            if ident == me:
                frame = sys._getframe(2)
            out += [s.rstrip("\n") for s in traceback.format_stack(frame)]
    return "\n".join(out) + "\n"
