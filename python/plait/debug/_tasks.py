"""asyncio tasks as await trees, for every event loop of the process (plait's and the stdlib's).

What a task awaits is read from the task itself: ``_fut_waiter`` (the future it is suspended
on: another task, a ``gather``'s future with its children, or a plain future) and its coroutine's
``cr_await`` chain (the coroutines it is inside of, outermost first; a ``TaskGroup.__aexit__``
there means it waits for the group's tasks). This is what ``asyncio.graph`` does from 3.14, done
here for 3.11+ without asyncio's bookkeeping.
"""

from __future__ import annotations

import asyncio
import threading
import types
from typing import Any

Frame = dict[str, Any]

_MAX_CHAIN = 200


def _frame(frame: types.FrameType) -> Frame:
    code = frame.f_code
    return {"file": code.co_filename, "line": frame.f_lineno, "function": code.co_qualname}


def _frame_of(coro: Any) -> types.FrameType | None:
    for attr in ("cr_frame", "gi_frame", "ag_frame"):
        frame = getattr(coro, attr, None)
        if frame is not None:
            return frame  # type: ignore[no-any-return]
    return None


def _chain(coro: Any) -> tuple[list[types.FrameType], Any]:
    """The frames of ``coro`` and of the coroutines it awaits, outermost first, and what the
    innermost one awaits that is not a coroutine (an iterator of a future, usually)."""
    frames: list[types.FrameType] = []
    for _ in range(_MAX_CHAIN):
        frame = (
            getattr(coro, "cr_frame", None)
            or getattr(coro, "gi_frame", None)
            or getattr(coro, "ag_frame", None)
        )
        if frame is not None:
            frames.append(frame)
        nxt = None
        for attr in ("cr_await", "gi_yieldfrom", "ag_await"):
            nxt = getattr(coro, attr, None)
            if nxt is not None:
                break
        if nxt is None or not (
            hasattr(nxt, "cr_frame") or hasattr(nxt, "gi_frame") or hasattr(nxt, "ag_frame")
        ):
            return frames, nxt
        coro = nxt
    return frames, None


def _group_tasks(frames: list[types.FrameType]) -> list[asyncio.Task[Any]]:
    """The tasks of a ``TaskGroup`` whose ``__aexit__`` is in ``frames`` (it waits for them)."""
    found: list[asyncio.Task[Any]] = []
    for frame in frames:
        if frame.f_code.co_qualname == "TaskGroup.__aexit__":
            group = frame.f_locals.get("self")
            found.extend(t for t in getattr(group, "_tasks", ()) if isinstance(t, asyncio.Task))
    return found


def _awaited(
    task: asyncio.Task[Any], frames: list[types.FrameType]
) -> tuple[list[asyncio.Future[Any]], str | None]:
    """The tasks ``task`` waits for, and a description of anything else it waits for."""
    waiter = getattr(task, "_fut_waiter", None)
    children: list[asyncio.Future[Any]] = []
    other: str | None = None
    if isinstance(waiter, asyncio.Task):
        children.append(waiter)
    elif waiter is not None:
        inner = [c for c in getattr(waiter, "_children", ()) or () if isinstance(c, asyncio.Future)]
        if inner:  # gather()
            children.extend(inner)
        else:
            other = _describe_future(waiter)
    children.extend(t for t in _group_tasks(frames) if t not in children)
    return children, other


def _describe_future(fut: Any) -> str:
    state = getattr(fut, "_state", "?").lower()
    kind = type(fut).__qualname__
    callbacks = getattr(fut, "_callbacks", None) or []
    if kind == "Future" and len(callbacks) <= 1 and getattr(fut, "_loop", None) is not None:
        # asyncio.sleep and friends: a bare future woken by a timer or a transport.
        return f"<{kind} {state}>"
    return f"<{kind} {state} at {id(fut):#x}>"


def _task_state(task: asyncio.Future[Any], loop: Any) -> str:
    if task.done():
        return "cancelled" if task.cancelled() else "done"
    if isinstance(task, asyncio.Task) and asyncio.current_task(loop) is task and loop.is_running():
        return "running"
    cancelling = getattr(task, "cancelling", None)
    if cancelling is not None and cancelling():
        return "cancelling"
    return "pending"


def _node(task: asyncio.Future[Any], loop: Any, seen: set[int], depth: int = 0) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": id(task),
        "name": task.get_name() if isinstance(task, asyncio.Task) else type(task).__qualname__,
        "state": _task_state(task, loop),
    }
    if id(task) in seen or depth > 100:
        node["see_above"] = True
        return node
    seen.add(id(task))
    frames: list[types.FrameType] = []
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        node["coroutine"] = getattr(coro, "__qualname__", type(coro).__qualname__)
        frames, _ = _chain(coro)
    node["stack"] = [_frame(f) for f in frames]
    children, other = _awaited(task, frames) if isinstance(task, asyncio.Task) else ([], None)
    node["awaits"] = [_node(c, loop, seen, depth + 1) for c in children]
    node["awaits_other"] = other
    return node


def _loops(objects: list[Any]) -> list[asyncio.AbstractEventLoop]:
    """Every event loop of the process that is not closed (plait's, the stdlib's, uvloop's)."""
    found: dict[int, asyncio.AbstractEventLoop] = {}
    for obj in objects:
        if isinstance(obj, asyncio.AbstractEventLoop):
            try:
                closed = obj.is_closed()
            except Exception:
                continue
            if not closed:
                found[id(obj)] = obj
    # Tasks keep their loop alive: loops reached through asyncio's task registry too.
    registry = getattr(asyncio.tasks, "_all_tasks", None) or getattr(asyncio.tasks, "_scheduled_tasks", None)
    for task in list(registry or ()):
        loop = task.get_loop()
        if not loop.is_closed():
            found.setdefault(id(loop), loop)
    return list(found.values())


def _all_tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    for _ in range(10):  # the registry may change under iteration (other threads)
        try:
            return sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name())
        except RuntimeError:
            continue
    return []


def collect(objects: list[Any]) -> list[dict[str, Any]]:
    """One entry per open loop among ``objects`` (``gc.get_objects()``): its class, state,
    thread and tasks as await trees (a task awaited by another appears under it, once; the roots
    are tasks nobody awaits)."""
    out = []
    names = {t.ident: t.name for t in threading.enumerate()}
    for loop in _loops(objects):
        tasks = _all_tasks(loop)
        awaited: set[int] = set()
        for task in tasks:
            frames, _ = _chain(task.get_coro())
            children, _ = _awaited(task, frames)
            awaited.update(id(c) for c in children)
        roots = [t for t in tasks if id(t) not in awaited] or tasks
        seen: set[int] = set()
        trees = [_node(t, loop, seen) for t in roots]
        trees += [_node(t, loop, seen) for t in tasks if id(t) not in seen]  # awaited in a cycle
        thread = getattr(loop, "_thread_id", None)
        cls = type(loop)
        out.append(
            {
                "loop": f"{cls.__module__}.{cls.__qualname__}",
                "id": id(loop),
                "running": loop.is_running(),
                "thread": thread,
                "thread_name": names.get(thread) if thread is not None else None,
                "task_count": len(tasks),
                "tasks": trees,
            }
        )
    return out
