"""plait.aio in debug mode against asyncio's own loop: the same program, run on both loops, must
record the same ``_source_traceback`` for every handle and task, hand the same ``source_traceback``
(or ``handle_traceback``) to the exception handler, and show the same reprs."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import threading

import pytest

from plait import aio

FACTORIES = [asyncio.new_event_loop, aio.new_event_loop]


def _frames(tb):
    return None if tb is None else [(f.filename, f.lineno, f.name) for f in tb]


def _cb(*args):
    return None


def _boom(*args):
    raise ValueError("boom")


def _schedule(loop, how, callback, *args):
    """Every scheduling method, called from one line each (so both loops see the same caller)."""
    if how == "call_soon":
        return loop.call_soon(callback, *args)
    if how == "call_later":
        return loop.call_later(0, callback, *args)
    if how == "call_at":
        return loop.call_at(loop.time(), callback, *args)
    if how == "call_soon_threadsafe":
        return loop.call_soon_threadsafe(callback, *args)
    if how == "call_soon_threadsafe from a thread":
        box = []
        t = threading.Thread(target=lambda: box.append(loop.call_soon_threadsafe(callback, *args)))
        t.start()
        t.join()
        return box[0]
    raise AssertionError(how)


HOWS = ["call_soon", "call_later", "call_at", "call_soon_threadsafe", "call_soon_threadsafe from a thread"]


def _run_briefly(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def _debug_loop(factory):
    loop = factory()
    loop.set_debug(True)
    return loop


@pytest.mark.parametrize("how", HOWS)
def test_handles_record_where_they_were_scheduled_as_asyncio_does(how):
    got = []
    for factory in FACTORIES:
        loop = _debug_loop(factory)
        try:
            h = _schedule(loop, how, _cb)
            got.append(_frames(h._source_traceback))
            _run_briefly(loop)
        finally:
            loop.close()
    asyncio_tb, plait_tb = got
    assert asyncio_tb, "asyncio records a traceback in debug mode"
    assert plait_tb == asyncio_tb  # same frames, same depth (asyncio.constants.DEBUG_STACK_DEPTH)
    assert plait_tb[-1][2] in ("_schedule", "<lambda>")


@pytest.mark.parametrize("how", HOWS)
def test_no_traceback_outside_debug_mode(how):
    loop = aio.new_event_loop()
    try:
        assert _schedule(loop, how, _cb)._source_traceback is None
        _run_briefly(loop)
    finally:
        loop.close()


@pytest.mark.parametrize("how", HOWS)
def test_failing_callback_context_has_the_source_traceback(how):
    got = []
    for factory in FACTORIES:
        loop = _debug_loop(factory)
        contexts = []
        loop.set_exception_handler(lambda lp, ctx, contexts=contexts: contexts.append(ctx))
        try:
            h = _schedule(loop, how, _boom, 1, "two")
            _run_briefly(loop)
        finally:
            loop.close()
        (ctx,) = contexts
        assert ctx["handle"] is h
        assert ctx["source_traceback"] is h._source_traceback
        got.append((sorted(ctx), ctx["message"], _frames(ctx["source_traceback"])))
    assert got[1] == got[0]


def test_handle_traceback_reaches_the_default_handler_from_a_running_callback(caplog):
    """asyncio's default handler adds the running handle's traceback (``handle_traceback``) to a
    context that has no ``source_traceback``."""
    got = []
    for factory in FACTORIES:
        loop = _debug_loop(factory)
        contexts = []

        def handler(lp, ctx, contexts=contexts):
            lp.default_exception_handler(ctx)  # adds handle_traceback to ctx
            contexts.append(ctx)

        loop.set_exception_handler(handler)
        try:
            h = loop.call_soon(lambda lp=loop: lp.call_exception_handler({"message": "reported"}))
            with caplog.at_level(logging.ERROR, logger="asyncio"):
                caplog.clear()
                _run_briefly(loop)
            logged = [r.getMessage() for r in caplog.records]
        finally:
            loop.close()
        (ctx,) = contexts
        assert ctx["handle_traceback"] is h._source_traceback
        got.append((sorted(ctx), _frames(ctx["handle_traceback"]), logged))
    assert got[1] == got[0]
    assert "Handle created at (most recent call last)" in got[1][2][0]


async def _failing():
    raise ValueError("task failed")


def test_failing_task_context_has_its_source_traceback():
    got = []
    for factory in FACTORIES:
        loop = _debug_loop(factory)
        contexts = []
        loop.set_exception_handler(lambda lp, ctx, contexts=contexts: contexts.append(ctx))
        try:
            task = loop.create_task(_failing())
            tb = _frames(task._source_traceback)
            _run_briefly(loop)
            assert task.done()
            del task  # never retrieved: reported when collected
            gc.collect()
        finally:
            loop.close()
        (ctx,) = contexts
        assert ctx["message"] == "Task exception was never retrieved"
        assert _frames(ctx["source_traceback"]) == tb
        got.append((sorted(ctx), tb))
    assert got[1] == got[0]
    assert got[1][1][-1][2] == "test_failing_task_context_has_its_source_traceback"


def test_asyncio_create_task_records_the_caller_too():
    got = []

    async def main():
        return _frames(asyncio.create_task(asyncio.sleep(0))._source_traceback)

    for factory in FACTORIES:
        loop = _debug_loop(factory)
        try:
            tb = loop.run_until_complete(main())
        finally:
            loop.close()
        # The frames below the coroutine are each loop's own (asyncio's run_once is Python):
        # the innermost ones, from asyncio.create_task up, are the program's and must agree.
        got.append(tb[-2:])
    assert got[1] == got[0]
    assert got[1][0][2] == "main"


def _normalise(r):
    return re.sub(r"when=[0-9.e+-]+", "when=T", r)


@pytest.mark.parametrize("how", ["call_soon", "call_later"])
def test_repr_says_where_it_was_created_and_is_kept_by_cancel(how):
    got = []
    for factory in FACTORIES:
        loop = _debug_loop(factory)
        try:
            h = _schedule(loop, how, _cb, 1, "two")
            before = repr(h)
            h.cancel()
            after = repr(h)
            h.cancel()  # a second cancel keeps the first repr
            again = repr(h)
            _run_briefly(loop)
        finally:
            loop.close()
        assert "created at " in before
        assert "cancelled" in after and "_cb" in after
        assert again == after
        got.append((_normalise(before), _normalise(after)))
    assert got[1] == got[0]


def test_reader_handle_records_its_caller():
    import socket

    loop = _debug_loop(aio.new_event_loop)
    a, b = socket.socketpair()
    try:
        loop.add_reader(a, _cb)
        handle = loop._fd_key(a)[1]
        # asyncio's own last frame is its private `_add_reader`; the frames of the program
        # (the caller of add_reader) are the same.
        frames = _frames(handle._source_traceback)
        assert frames[-1][2] == "add_reader"
        assert frames[-2][2] == "test_reader_handle_records_its_caller"
        assert loop.remove_reader(a)
        assert "cancelled" in repr(handle) and "_cb" in repr(handle)
    finally:
        loop.close()
        a.close()
        b.close()
