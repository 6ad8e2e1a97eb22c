"""Formatting of deadlock reports, lock-order warnings and ``dump()`` (data comes from Rust)."""

from __future__ import annotations

import sys
import threading
import traceback
import warnings
from types import CodeType, FrameType

from .exceptions import DeadlockEdge, DeadlockError, DeadlockWarning, LockInfo, LockOrderWarning

# (label, kind, name, id, code, lasti) as produced by the binding.
ResourceTuple = tuple[str, str, "str | None", int, "CodeType | None", int]


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
        return traceback.format_stack(sys._getframe(2))
    frame = frames.get(ident)
    return traceback.format_stack(frame) if frame is not None else []


def deadlock_error(edges: list[tuple[int, ResourceTuple, list[int]]], me: int) -> DeadlockError:
    """Build the :class:`DeadlockError` for a cycle found by the binding."""
    names = _thread_names()
    frames = sys._current_frames()
    cycle = []
    for ident, res, holders in edges:
        cycle.append(
            DeadlockEdge(
                thread_ident=ident,
                thread_name=names.get(ident, "<unnamed>"),
                waits_for=_lock_info(res),
                held_by=tuple((h, names.get(h, "<unnamed>")) for h in holders),
                stack=_stack(ident, frames, me),
            )
        )
    n = len({e.thread_ident for e in cycle})
    lines = [f"Found one deadlock ({n} thread{'s' if n != 1 else ''}):", ""]
    for e in cycle:
        holders = ", ".join(_name(names, h) for h, _ in e.held_by)
        who = "itself" if [h for h, _ in e.held_by] == [e.thread_ident] else holders
        lines.append(f"  {_name(names, e.thread_ident)}")
        lines.append(f"    waits for {e.waits_for.label}, held by {who}")
        if e.waits_for.acquired_at:
            lines.append(f"    {e.waits_for.label} was acquired at {e.waits_for.acquired_at}")
    if len(cycle) == 1 and cycle[0].held_by and cycle[0].held_by[0][0] == cycle[0].thread_ident:
        lines += [
            "",
            f"  A thread cannot acquire a non-reentrant {cycle[0].waits_for.kind} it already holds;",
            "  use RLock for re-entry, or release it first.",
        ]
    for e in cycle:
        if e.stack and e.thread_ident != me:
            lines += ["", f"{_name(names, e.thread_ident)} stack (most recent call last):"]
            lines += [s.rstrip("\n") for s in e.stack]
    return DeadlockError("\n".join(lines), cycle)


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
    """Every thread's stack with the plait locks it holds and waits for."""
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
