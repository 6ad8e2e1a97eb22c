"""plait.threads.ThreadPool and its futures: the ``concurrent.futures.ThreadPoolExecutor`` contract.

Each test checks one behaviour. Threads are coordinated with Events and Barriers, never with
sleeps, and nothing asserts on timing. Every pool is shut down (``with ThreadPool(...)``), except
in the one test that checks what happens to a pool that is garbage-collected without it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.thread
import gc
import logging
import threading
import traceback
import weakref

import pytest

import plait
from plait._pool import Future
from plait.threads import ThreadPool

# Generous bound for "this must not hang": only reached when the behaviour under test is broken.
HANG = 30.0


def mul(x, y):
    return x * y


def capture(*args, **kwargs):
    return args, kwargs


def raise_value_error_in_worker(message):
    raise ValueError(message)


def blocked_pool_task(started: threading.Event, release: threading.Event) -> str:
    started.set()
    assert release.wait(HANG), "test never released the blocking task"
    return "released"


class Blocker:
    """Occupies one worker until released: ``pool.submit(blocker)``; ``blocker.started.wait()``."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> str:
        return blocked_pool_task(self.started, self.release)


# --- submit and results ---------------------------------------------------------------------


def test_submit_returns_result():
    with ThreadPool(max_workers=2) as pool:
        assert pool.submit(pow, 2, 8).result(timeout=HANG) == 256


def test_submit_passes_keyword_arguments():
    with ThreadPool(max_workers=2) as pool:
        future = pool.submit(capture, 1, self=2, fn=3)
        assert future.result(timeout=HANG) == ((1,), {"self": 2, "fn": 3})


def test_submit_fn_is_positional_only():
    with ThreadPool(max_workers=1) as pool, pytest.raises(TypeError):
        pool.submit(fn=capture)


def test_futures_are_concurrent_futures_futures():
    with ThreadPool(max_workers=1) as pool:
        future = pool.submit(int)
        future.result(timeout=HANG)
    assert isinstance(future, Future)
    assert isinstance(future, concurrent.futures.Future)


def test_exception_reraised_from_result():
    with ThreadPool(max_workers=1) as pool:
        future = pool.submit(raise_value_error_in_worker, "boom")
        with pytest.raises(ValueError, match="boom"):
            future.result(timeout=HANG)


def test_reraised_exception_carries_worker_traceback():
    with ThreadPool(max_workers=1) as pool:
        future = pool.submit(raise_value_error_in_worker, "boom")
        with pytest.raises(ValueError) as info:
            future.result(timeout=HANG)
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "raise_value_error_in_worker" in names


def test_exception_returns_the_exception():
    with ThreadPool(max_workers=1) as pool:
        future = pool.submit(raise_value_error_in_worker, "boom")
        exc = future.exception(timeout=HANG)
    assert isinstance(exc, ValueError)
    assert exc.args == ("boom",)


def test_exception_is_none_on_success():
    with ThreadPool(max_workers=1) as pool:
        assert pool.submit(int).exception(timeout=HANG) is None


def test_result_with_timeout_raises_timeout_error_while_pending():
    blocker = Blocker()
    with ThreadPool(max_workers=1) as pool:
        future = pool.submit(blocker)
        try:
            with pytest.raises(TimeoutError):
                future.result(timeout=0.01)
            assert not future.done()
        finally:
            blocker.release.set()
        assert future.result(timeout=HANG) == "released"


def test_result_with_zero_timeout_raises_concurrent_futures_timeout_error_while_pending():
    blocker = Blocker()
    with ThreadPool(max_workers=1) as pool:
        future = pool.submit(blocker)
        try:
            with pytest.raises(concurrent.futures.TimeoutError):
                future.result(timeout=0)
        finally:
            blocker.release.set()


def test_exception_with_timeout_raises_timeout_error_while_pending():
    blocker = Blocker()
    with ThreadPool(max_workers=1) as pool:
        future = pool.submit(blocker)
        try:
            with pytest.raises(TimeoutError):
                future.exception(timeout=0.01)
        finally:
            blocker.release.set()


# --- concurrent.futures.wait / as_completed / asyncio ---------------------------------------


def test_wait_first_completed_with_a_done_and_a_pending_future():
    blocker = Blocker()
    with ThreadPool(max_workers=2) as pool:
        finished = pool.submit(mul, 6, 7)
        finished.result(timeout=HANG)
        pending = pool.submit(blocker)
        try:
            done, not_done = concurrent.futures.wait(
                [finished, pending], timeout=HANG, return_when=concurrent.futures.FIRST_COMPLETED
            )
            assert done == {finished}
            assert not_done == {pending}
        finally:
            blocker.release.set()


def test_wait_first_completed_wakes_for_the_first_future_to_finish():
    first, second = Blocker(), Blocker()
    with ThreadPool(max_workers=2) as pool:
        f1, f2 = pool.submit(first), pool.submit(second)
        try:
            first.release.set()
            done, not_done = concurrent.futures.wait(
                [f1, f2], timeout=HANG, return_when=concurrent.futures.FIRST_COMPLETED
            )
            assert done == {f1}
            assert not_done == {f2}
        finally:
            second.release.set()


def test_wait_all_completed_with_a_done_and_a_pending_future():
    blocker = Blocker()
    with ThreadPool(max_workers=2) as pool:
        finished = pool.submit(raise_value_error_in_worker, "x")
        finished.exception(timeout=HANG)
        pending = pool.submit(blocker)
        releaser = threading.Thread(target=blocker.release.set)
        releaser.start()
        done, not_done = concurrent.futures.wait(
            [finished, pending], timeout=HANG, return_when=concurrent.futures.ALL_COMPLETED
        )
        releaser.join()
    assert done == {finished, pending}
    assert not_done == set()


def test_wait_mixes_plait_and_stdlib_futures():
    stdlib_future = concurrent.futures.Future()
    stdlib_future.set_result(1)
    with ThreadPool(max_workers=1) as pool:
        plait_future = pool.submit(int)
        done, not_done = concurrent.futures.wait([stdlib_future, plait_future], timeout=HANG)
    assert done == {stdlib_future, plait_future}
    assert not_done == set()


def test_as_completed_yields_done_futures_then_pending_ones():
    blocker = Blocker()
    with ThreadPool(max_workers=2) as pool:
        finished = pool.submit(mul, 2, 21)
        finished.result(timeout=HANG)
        pending = pool.submit(blocker)
        order = []
        try:
            for future in concurrent.futures.as_completed([pending, finished], timeout=HANG):
                order.append(future)
                # as_completed installed its waiter before yielding the first (already done)
                # future, so the pending one now completes through the waiter notification.
                blocker.release.set()
        finally:
            blocker.release.set()
    assert order == [finished, pending]
    assert pending.result() == "released"


def test_asyncio_wrap_future_awaits_the_result():
    async def main(pool):
        return await asyncio.wrap_future(pool.submit(mul, 6, 7))

    with ThreadPool(max_workers=1) as pool:
        assert asyncio.run(main(pool)) == 42


def test_asyncio_wrap_future_propagates_the_exception():
    async def main(pool):
        return await asyncio.wrap_future(pool.submit(raise_value_error_in_worker, "async"))

    with ThreadPool(max_workers=1) as pool, pytest.raises(ValueError, match="async"):
        asyncio.run(main(pool))


# --- done callbacks -------------------------------------------------------------------------


def test_done_callback_is_called_once_with_the_future():
    blocker = Blocker()
    calls = []
    called = threading.Event()

    def callback(future):
        calls.append(future)
        called.set()

    with ThreadPool(max_workers=1) as pool:
        future = pool.submit(blocker)
        future.add_done_callback(callback)
        blocker.release.set()
        assert called.wait(HANG)
    # The pool is shut down: every worker has exited, so no later call can sneak in.
    assert calls == [future]


def test_done_callback_is_called_immediately_if_already_done():
    calls = []
    with ThreadPool(max_workers=1) as pool:
        future = pool.submit(int)
        future.result(timeout=HANG)
        future.add_done_callback(calls.append)
        assert calls == [future]


def test_done_callback_on_cancel():
    blocker = Blocker()
    calls = []
    with ThreadPool(max_workers=1) as pool:
        running = pool.submit(blocker)
        queued = pool.submit(int)
        queued.add_done_callback(calls.append)
        assert queued.cancel()
        blocker.release.set()
        running.result(timeout=HANG)
    assert calls == [queued]


def test_raising_done_callback_is_logged_and_pool_keeps_working(caplog):
    blocker = Blocker()
    after = threading.Event()

    def raising(_future):
        raise RuntimeError("callback failed")

    with ThreadPool(max_workers=1) as pool:
        future = pool.submit(blocker)
        future.add_done_callback(raising)
        future.add_done_callback(lambda _f: after.set())  # callbacks run in order
        with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
            blocker.release.set()
            assert after.wait(HANG), "a raising callback stopped the callbacks after it"
        assert pool.submit(mul, 3, 4).result(timeout=HANG) == 12
    records = [r for r in caplog.records if r.name == "concurrent.futures"]
    assert len(records) == 1
    assert "exception calling callback for" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], RuntimeError)


# --- cancellation and shutdown --------------------------------------------------------------


def test_cancel_a_queued_task():
    blocker = Blocker()
    ran = []
    with ThreadPool(max_workers=1) as pool:
        running = pool.submit(blocker)
        assert blocker.started.wait(HANG)
        queued = pool.submit(ran.append, "queued")
        assert queued.cancel()
        assert queued.cancelled()
        assert queued.done()
        with pytest.raises(concurrent.futures.CancelledError):
            queued.result(timeout=0)
        blocker.release.set()
        running.result(timeout=HANG)
    assert ran == []


def test_cancel_a_running_task_fails():
    blocker = Blocker()
    with ThreadPool(max_workers=1) as pool:
        running = pool.submit(blocker)
        assert blocker.started.wait(HANG)
        try:
            assert running.running()
            assert not running.cancel()
            assert not running.cancelled()
        finally:
            blocker.release.set()
        assert running.result(timeout=HANG) == "released"


def test_shutdown_cancel_futures_cancels_queued_tasks():
    blocker = Blocker()
    ran = []
    with ThreadPool(max_workers=1) as pool:
        running = pool.submit(blocker)
        assert blocker.started.wait(HANG)
        queued = [pool.submit(ran.append, i) for i in range(5)]
        pool.shutdown(wait=False, cancel_futures=True)
        assert all(f.cancelled() for f in queued)
        assert not running.cancelled()
        blocker.release.set()
        assert running.result(timeout=HANG) == "released"
    assert ran == []


def test_shutdown_without_cancel_runs_queued_tasks():
    blocker = Blocker()
    with ThreadPool(max_workers=1) as pool:
        pool.submit(blocker)
        assert blocker.started.wait(HANG)
        queued = [pool.submit(mul, i, i) for i in range(5)]
        pool.shutdown(wait=False)
        blocker.release.set()
        pool.shutdown(wait=True)
        assert [f.result(timeout=0) for f in queued] == [0, 1, 4, 9, 16]


def test_submit_after_shutdown_raises_runtime_error():
    with ThreadPool(max_workers=1) as pool:
        pool.shutdown()
        with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
            pool.submit(int)


def test_map_after_shutdown_raises_runtime_error():
    with ThreadPool(max_workers=1) as pool:
        pool.shutdown()
        with pytest.raises(RuntimeError):
            pool.map(abs, [1])


def test_context_manager_joins_the_workers():
    with ThreadPool(max_workers=3) as pool:
        threads = {pool.submit(threading.current_thread).result(timeout=HANG) for _ in range(3)}
    assert threads
    assert not any(t.is_alive() for t in threads)


# --- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize("max_workers", [0, -1])
def test_max_workers_must_be_positive(max_workers):
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        ThreadPool(max_workers=max_workers)


def test_non_callable_initializer_raises_type_error():
    with pytest.raises(TypeError):
        ThreadPool(max_workers=1, initializer=42)


def test_initializer_runs_once_per_worker_with_initargs():
    workers = 3
    calls = []
    calls_lock = threading.Lock()
    barrier = threading.Barrier(workers, timeout=HANG)

    def initializer(*args):
        with calls_lock:
            calls.append((threading.get_ident(), args))

    def meet():
        barrier.wait()  # only returns once `workers` distinct threads run this at the same time
        return threading.get_ident()

    with ThreadPool(max_workers=workers, initializer=initializer, initargs=("a", 1)) as pool:
        idents = {f.result(timeout=HANG) for f in [pool.submit(meet) for _ in range(workers)]}
        for f in [pool.submit(int) for _ in range(20)]:
            f.result(timeout=HANG)
    assert len(idents) == workers
    assert sorted(ident for ident, _ in calls) == sorted(idents)
    assert all(args == ("a", 1) for _, args in calls)


def test_initializer_state_is_visible_to_tasks():
    local = threading.local()

    def initializer(value):
        local.value = value

    with ThreadPool(max_workers=2, initializer=initializer, initargs=("ready",)) as pool:
        assert pool.submit(lambda: local.value).result(timeout=HANG) == "ready"


def failing_initializer():
    raise OSError("initializer failed")


def test_failing_initializer_breaks_pending_futures(caplog):
    with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
        with ThreadPool(max_workers=1, initializer=failing_initializer) as pool:
            future = pool.submit(int)
            with pytest.raises(plait.BrokenThreadPool):
                future.result(timeout=HANG)
    assert any("Exception in initializer" in r.getMessage() for r in caplog.records)


def test_failing_initializer_makes_later_submit_raise(caplog):
    with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
        with ThreadPool(max_workers=1, initializer=failing_initializer) as pool:
            pool.submit(int).exception(timeout=HANG)
            with pytest.raises(plait.BrokenThreadPool):
                pool.submit(int)


def test_broken_thread_pool_is_the_stdlib_exception():
    assert issubclass(plait.BrokenThreadPool, concurrent.futures.thread.BrokenThreadPool)
    assert issubclass(plait.BrokenThreadPool, concurrent.futures.BrokenExecutor)


def test_thread_name_prefix_names_the_workers():
    with ThreadPool(max_workers=1, thread_name_prefix="Crawler") as pool:
        name = pool.submit(lambda: threading.current_thread().name).result(timeout=HANG)
    assert name.startswith("Crawler")


def test_default_thread_names_are_unique_per_pool():
    def name():
        return threading.current_thread().name

    with ThreadPool(max_workers=1) as p1, ThreadPool(max_workers=1) as p2:
        n1, n2 = p1.submit(name).result(timeout=HANG), p2.submit(name).result(timeout=HANG)
    assert n1 != n2


# --- map ------------------------------------------------------------------------------------


def test_map_keeps_order_with_one_iterable():
    with ThreadPool(max_workers=4) as pool:
        assert list(pool.map(abs, range(-50, 50))) == [abs(i) for i in range(-50, 50)]


def test_map_keeps_order_with_several_iterables():
    with ThreadPool(max_workers=4) as pool:
        assert list(pool.map(pow, range(20), range(20))) == list(map(pow, range(20), range(20)))


def test_map_stops_at_the_shortest_iterable():
    with ThreadPool(max_workers=2) as pool:
        assert list(pool.map(mul, [1, 2, 3], [10, 20])) == [10, 40]


def test_map_of_nothing_is_empty():
    with ThreadPool(max_workers=2) as pool:
        assert list(pool.map(abs, [])) == []


def test_map_raises_when_the_failing_item_is_reached():
    with ThreadPool(max_workers=2) as pool:
        results = pool.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
        assert next(results) == (0, 1)
        assert next(results) == (0, 1)
        with pytest.raises(ZeroDivisionError):
            next(results)


def test_map_timeout_raises_timeout_error():
    release = threading.Event()

    def wait_for_release(i):
        assert release.wait(HANG)
        return i

    with ThreadPool(max_workers=2) as pool:
        results = pool.map(wait_for_release, [1, 2], timeout=0.05)
        try:
            with pytest.raises(TimeoutError):
                next(results)
        finally:
            release.set()


def test_map_matches_builtin_map_over_10_000_items():
    items = range(10_000)
    with ThreadPool(max_workers=8) as pool:
        assert list(pool.map(str, items)) == list(map(str, items))


def test_closing_the_map_iterator_stops_iteration():
    with ThreadPool(max_workers=2) as pool:
        results = pool.map(abs, range(-100, 0))
        assert next(results) == 100
        results.close()
        assert list(results) == []


def test_map_iterator_is_its_own_iterator():
    with ThreadPool(max_workers=1) as pool:
        results = pool.map(abs, [-1])
        assert iter(results) is results
        assert list(results) == [1]


# --- repr -----------------------------------------------------------------------------------

REPR = r"<Future at 0x[0-9a-f]+ state={}>"


def test_repr_of_pending_running_and_finished_futures():
    blocker = Blocker()
    with ThreadPool(max_workers=1) as pool:
        running = pool.submit(blocker)
        assert blocker.started.wait(HANG)
        pending = pool.submit(int)
        try:
            assert pending._state == concurrent.futures._base.PENDING
            assert_repr(pending, "pending")
            assert_repr(running, "running")
        finally:
            blocker.release.set()
        running.result(timeout=HANG)
        assert_repr(running, "finished returned str")


def test_repr_of_a_future_that_raised():
    with ThreadPool(max_workers=1) as pool:
        future = pool.submit(raise_value_error_in_worker, "x")
        future.exception(timeout=HANG)
    assert_repr(future, "finished raised ValueError")


def test_repr_of_a_cancelled_future():
    blocker = Blocker()
    with ThreadPool(max_workers=1) as pool:
        pool.submit(blocker)
        assert blocker.started.wait(HANG)
        queued = pool.submit(int)
        queued.cancel()
        blocker.release.set()
    assert_repr(queued, "cancelled")


def assert_repr(future, state):
    import re

    assert re.fullmatch(REPR.format(state), repr(future)), repr(future)


# --- garbage collection ---------------------------------------------------------------------


def test_pool_collected_without_shutdown_lets_its_threads_exit():
    count_before = threading.active_count()

    def use_a_pool_and_drop_it():
        pool = ThreadPool(max_workers=2)
        worker = pool.submit(threading.current_thread).result(timeout=HANG)
        return weakref.ref(pool), worker

    ref, worker = use_a_pool_and_drop_it()
    gc.collect()
    assert ref() is None, "the pool is kept alive (by its own workers?)"
    worker.join(HANG)
    assert not worker.is_alive()
    assert threading.active_count() == count_before


# --- ThreadPoolExecutor guarantees that a batching map or a native future could break -------


def test_discarded_map_iterator_still_runs_every_item():
    blocker = Blocker()
    ran = []
    with ThreadPool(max_workers=1) as pool:
        pool.submit(blocker)
        assert blocker.started.wait(HANG)
        pool.map(ran.append, range(10))  # result iterator discarded at once
        blocker.release.set()
    assert sorted(ran) == list(range(10))


def test_map_runs_consecutive_items_concurrently():
    item_1_ran = threading.Event()

    def item(i):
        if i == 0:
            # Hang guard only: with ThreadPoolExecutor item 1 runs on the other worker at once.
            return item_1_ran.wait(2.0)
        if i == 1:
            item_1_ran.set()
        return True

    with ThreadPool(max_workers=2) as pool:
        results = list(pool.map(item, range(100)))
    assert results[0] is True


def test_future_in_a_reference_cycle_is_collected():
    def catch_and_drop():
        with ThreadPool(max_workers=1) as pool:
            future = pool.submit(raise_value_error_in_worker, "cycle")
            try:
                future.result(timeout=HANG)
            except ValueError:
                pass
            # future -> exception -> traceback -> this frame -> future
            return weakref.ref(future)

    ref = catch_and_drop()
    gc.collect()
    assert ref() is None


def test_wait_all_completed_under_rapid_thread_switching():
    """concurrent.futures.wait reads _state twice while holding each future's condition; a
    completion must never change the state between those reads (it once did: wait returned
    early with a running future in not_done)."""
    import concurrent.futures as cf
    import sys

    old = sys.getswitchinterval()
    try:
        for _ in range(100):
            with ThreadPool(5) as pool:
                event = threading.Event()
                sys.setswitchinterval(1e-6)
                fs = {pool.submit(event.wait) for _ in range(100)}
                event.set()
                done, not_done = cf.wait(fs, return_when=cf.ALL_COMPLETED)
                sys.setswitchinterval(old)
                assert not not_done
                assert done == fs
    finally:
        sys.setswitchinterval(old)


# --- ProcessPool's conveniences: starmap, imap, imap_unordered, progress=, options(timeout=) ----


def square(x):
    return x * x


def fail_on_three(x):
    if x == 3:
        raise ValueError("three")
    return x


def test_starmap_calls_fn_with_each_argument_tuple():
    with ThreadPool(max_workers=3) as pool:
        assert pool.starmap(mul, [(1, 2), (3, 4), [5, 6]]) == [2, 12, 30]
        assert pool.starmap(mul, iter([(2, 2)] * 50)) == [4] * 50
        assert pool.starmap(mul, []) == []
        with pytest.raises(ValueError, match="three"):
            pool.starmap(lambda a, b: fail_on_three(a), [(i, i) for i in range(6)])
        with pytest.raises(ValueError, match="chunksize"):
            pool.starmap(mul, [(1, 2)], chunksize=0)


def test_imap_yields_in_order_from_a_sequence_or_a_generator():
    with ThreadPool(max_workers=3) as pool:
        assert list(pool.imap(square, range(200))) == [i * i for i in range(200)]
        assert list(pool.imap(square, (i for i in range(200)), chunksize=7)) == [i * i for i in range(200)]
        assert list(pool.imap(square, iter([]))) == []


def test_imap_unordered_yields_every_result_as_it_finishes():
    first = threading.Event()

    def wait_for_first(x):
        if x == 0:
            assert first.wait(HANG), "the later item was never yielded first"
        return x

    with ThreadPool(max_workers=2) as pool:
        it = pool.imap_unordered(wait_for_first, [0, 1])
        assert next(it) == 1  # item 0 waits until item 1 has been yielded
        first.set()
        assert list(it) == [0]
        assert sorted(pool.imap_unordered(square, (i for i in range(100)))) == [i * i for i in range(100)]


def test_imap_reads_a_generator_a_bounded_window_ahead():
    pulled = []

    def items():
        for i in range(300):
            pulled.append(i)
            yield i

    with ThreadPool(max_workers=2) as pool:
        consumed = 0
        for _ in pool.imap(square, items()):
            consumed += 1
            # Two items per worker ahead of the consumer, plus the one being read.
            assert len(pulled) <= consumed + 2 * 2 + 1
        assert consumed == 300


def test_imap_task_error_is_raised_at_its_item_and_stops_the_rest():
    for lazy in (False, True):
        with ThreadPool(max_workers=2) as pool:
            items = range(10) if not lazy else (i for i in range(10))
            got = []
            with pytest.raises(ValueError, match="three"):
                for x in pool.imap(fail_on_three, items):
                    got.append(x)
            assert got == [0, 1, 2]


def test_an_input_error_comes_after_the_results_before_it():
    def items():
        yield from range(4)
        raise KeyError("bad input")

    with ThreadPool(max_workers=2) as pool:
        for method in (pool.imap, pool.imap_unordered):
            got = []
            with pytest.raises(KeyError):
                for x in method(square, items()):
                    got.append(x)
            assert sorted(got) == [0, 1, 4, 9]
        assert pool.submit(square, 3).result(HANG) == 9


def test_closing_an_imap_early_cancels_what_has_not_started():
    release = threading.Event()
    both_busy = threading.Barrier(3)
    ran = []

    def task(x):
        ran.append(x)
        if x in (1, 2):  # occupy both workers
            both_busy.wait(HANG)
            assert release.wait(HANG)
        return x

    with ThreadPool(max_workers=2) as pool:
        it = pool.imap(task, (i for i in range(100)))  # a window of four items
        assert next(it) == 0
        both_busy.wait(HANG)  # items 1 and 2 run; item 3 is queued
        it.close()
        release.set()
    assert sorted(ran) == [0, 1, 2]  # item 3 was cancelled, nothing further was read


def test_progress_bar_on_stderr(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)  # the built-in bar, whether or not tqdm exists
    with ThreadPool(max_workers=2) as pool:
        assert list(pool.map(square, range(100), progress="always")) == [i * i for i in range(100)]
        assert list(pool.imap(square, range(10), progress="always")) == [i * i for i in range(10)]
        assert pool.starmap(mul, [(1, 2)] * 7, progress="always") == [2] * 7
        assert sorted(pool.imap_unordered(square, [1, 2, 3], progress="always")) == [1, 4, 9]
        assert list(pool.imap(square, iter(range(5)), progress="always")) == [0, 1, 4, 9, 16]
    err = capsys.readouterr().err
    for done in ("100/100 100%", "10/10 100%", "7/7 100%", "3/3 100%", "5 done"):
        assert done in err


def test_progress_true_is_silent_when_stderr_is_not_a_terminal(capsys):
    with ThreadPool(max_workers=2) as pool:
        assert sorted(pool.imap_unordered(square, range(20), progress=True)) == [i * i for i in range(20)]
        assert list(pool.map(square, range(5), progress=True)) == [0, 1, 4, 9, 16]
        assert capsys.readouterr().err == ""
        ran = []
        with pytest.raises(ValueError, match="progress"):
            pool.map(ran.append, range(3), progress="loud")
        with pytest.raises(ValueError, match="progress"):
            pool.imap(ran.append, range(3), progress="loud")
    assert ran == []  # rejected before anything was scheduled


def test_options_timeout_fails_the_future_with_task_timeout():
    release = threading.Event()
    with ThreadPool(max_workers=2) as pool:
        slow = pool.options(timeout=0.1).submit(release.wait, HANG)
        with pytest.raises(plait.TaskTimeout) as info:
            slow.result(HANG)
        assert isinstance(info.value, TimeoutError)
        assert info.value.timeout == 0.1
        assert "cannot be stopped" in str(info.value)
        fast = pool.options(timeout=HANG).submit(mul, 6, y=7)
        assert fast.result(HANG) == 42
        release.set()  # the timed-out task returns now; its result is discarded quietly


def test_options_timeout_counts_from_the_start_of_the_task():
    blocker = Blocker()
    with ThreadPool(max_workers=1) as pool:
        pool.submit(blocker)
        assert blocker.started.wait(HANG)
        queued = pool.options(timeout=0.05).submit(square, 5)  # waits behind the blocker
        assert not queued.done()
        blocker.release.set()
        assert queued.result(HANG) == 25


def test_options_map_applies_the_timeout_to_each_call():
    release = threading.Event()

    def hang_on_two(x):
        if x == 2:
            release.wait(HANG)
        return x

    with ThreadPool(max_workers=2) as pool:
        it = pool.options(timeout=0.1).map(hang_on_two, range(4))
        assert next(it) == 0
        assert next(it) == 1
        with pytest.raises(plait.TaskTimeout):
            next(it)
        release.set()
        assert list(pool.options(timeout=HANG).map(mul, [1, 2], [3, 4])) == [3, 8]
        assert list(pool.options().map(square, [3])) == [9]


def test_options_rejects_a_bad_timeout():
    with ThreadPool(max_workers=1) as pool:
        for bad in (0, -1.0):
            with pytest.raises(ValueError, match="positive"):
                pool.options(timeout=bad)
