"""Stress tests for free-threaded CPython: many threads hammer each shared plait object at once,
and every result is checked exactly (no lost or duplicated item, no lost increment).

With the GIL, threads take turns every few milliseconds and these tests find little; without it
(``make test-ft``) they run truly in parallel and a data race in the binding shows up at once.
They run everywhere at a small size (they also check the behaviour) and at full size on a
free-threaded interpreter. Each is bounded: a fixed amount of work, every wait with a timeout.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.resource_tracker
import os
import subprocess
import sys
import sysconfig
import threading
import time
import weakref

import pytest

from plait import aio
from plait import processes as pp
from plait import threads as pt

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
# Work per thread: full size where it matters, small elsewhere (a few hundred ms in all).
# PLAIT_STRESS_SCALE sets it (.ci/tsan-python runs 0.1: ThreadSanitizer is 5-20x slower).
SCALE = float(os.environ.get("PLAIT_STRESS_SCALE") or (1.0 if FREE_THREADED else 0.1))
THREADS = 8
WAIT = 60  # bound for a wait that normally ends at once

pytestmark = pytest.mark.timeout(120)


def n(full: int) -> int:
    """The work size for this run: `full` on a free-threaded interpreter."""
    return max(10, int(full * SCALE))


def run_threads(target, count: int = THREADS, args=()) -> None:
    """Starts `count` threads on `target(index, *args)` behind a barrier, so they start at once,
    and joins them; re-raises the first exception a thread raised."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            start.wait(WAIT)
            target(i, *args)
        except BaseException as e:  # reported by the caller
            errors.append(e)

    ts = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(WAIT * 2)
    assert not any(t.is_alive() for t in ts), "a thread is stuck"
    if errors:
        raise errors[0]


# --- the interpreter ----------------------------------------------------------------------------


@pytest.mark.skipif(not FREE_THREADED, reason="only a free-threaded build can run without the GIL")
def test_importing_plait_and_the_test_dependencies_keeps_the_gil_disabled():
    # A child without PYTHON_GIL=0 (which would force the GIL off whatever is imported): an
    # extension module that does not declare free-threading support enables the GIL on import,
    # with a RuntimeWarning (an error here).
    code = """if True:
        import sys, importlib
        mods = ["plait", "plait.threads", "plait.processes", "plait.aio", "plait.scaling",
                "cloudpickle", "numpy", "requests", "greenlet", "plait.green"]
        for m in mods:
            importlib.import_module(m)
            assert not sys._is_gil_enabled(), "the GIL was enabled by importing " + m
        print("ok")
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], env=env, capture_output=True, text=True, timeout=WAIT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# --- locks --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Lock", "RLock", "Semaphore", "BoundedSemaphore"])
def test_lock_kinds_exclude_each_other_under_contention(kind):
    lock = getattr(pt, kind)(1) if "Semaphore" in kind else getattr(pt, kind)()
    box = [0]
    per = n(20_000)

    def work(_i):
        for _ in range(per):
            with lock:
                v = box[0]  # a read-modify-write the lock alone makes safe
                box[0] = v + 1

    run_threads(work)
    assert box[0] == THREADS * per


def test_rlock_reentry_and_acquire_timeouts_under_contention():
    lock = pt.RLock()
    box = [0]
    per = n(5_000)

    def work(_i):
        done = 0
        while done < per:
            if lock.acquire(timeout=0.001):
                with lock:  # re-entry
                    box[0] += 1
                lock.release()
                done += 1

    run_threads(work)
    assert box[0] == THREADS * per


def test_condition_producers_and_consumers_lose_no_notification():
    cond = pt.Condition()
    items: list[int] = []
    got: list[int] = []
    per = n(5_000)
    producers = THREADS // 2

    def work(i):
        if i < producers:
            for k in range(per):
                with cond:
                    items.append(i * per + k)
                    cond.notify()
        else:
            while True:
                with cond:
                    assert cond.wait_for(lambda: items, timeout=WAIT)
                    v = items.pop()
                    if v < 0:
                        return
                    got.append(v)
                    if len(got) == producers * per:
                        items.extend([-1] * (THREADS - producers))
                        cond.notify_all()

    run_threads(work)
    assert sorted(got) == list(range(producers * per))


def test_barrier_rounds_and_event_broadcast():
    rounds = n(2_000)
    barrier = pt.Barrier(THREADS)
    counts = pt.AtomicInt()
    seen: list[int] = []

    def work(_i):
        for r in range(rounds):
            counts.add(1)
            idx = barrier.wait(WAIT)
            # Every party added before anyone passes: the count is exact at every round.
            if idx == 0:
                seen.append(counts.load() - (r + 1) * THREADS)
            barrier.wait(WAIT)

    run_threads(work)
    assert seen == [0] * rounds

    event, woke = pt.Event(), pt.AtomicInt()

    def waiter(_i):
        assert event.wait(WAIT)
        woke.add(1)

    ts = [threading.Thread(target=waiter, args=(i,)) for i in range(THREADS)]
    for t in ts:
        t.start()
    event.set()
    for t in ts:
        t.join(WAIT)
    assert woke.load() == THREADS


def test_atomic_int_and_flag_lose_no_update():
    a, flag, winners = pt.AtomicInt(), pt.AtomicFlag(), pt.AtomicInt()
    per = n(50_000)

    def work(_i):
        for _ in range(per):
            a.add(1)
            b = a
            b += 1  # __iadd__ is atomic too (and returns the same object)
            assert b is a
            a.fetch_sub(1)
        # A compare-and-swap loop: no lost update either.
        for _ in range(per // 10):
            while True:
                cur = a.load()
                ok, _ = a.compare_exchange(cur, cur + 1)
                if ok:
                    break
        if not flag.test_and_set():
            winners.add(1)

    run_threads(work)
    assert a.load() == THREADS * (per + per // 10)
    assert winners.load() == 1


# --- queues -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Queue", "SimpleQueue", "LifoQueue", "PriorityQueue"])
def test_queues_mpmc_deliver_every_item_exactly_once(kind):
    q = pt.SimpleQueue() if kind == "SimpleQueue" else getattr(pt, kind)(maxsize=64)
    per = n(40_000)
    producers = THREADS // 2
    total = producers * per
    got: list[list[int]] = [[] for _ in range(THREADS)]
    taken = pt.AtomicInt()

    def work(i):
        if i < producers:
            for k in range(per):
                q.put(i * per + k, timeout=WAIT) if kind != "SimpleQueue" else q.put(i * per + k)
        else:
            mine = got[i]
            while taken.add(1) <= total:  # each consumer claims one item, then takes it
                mine.append(q.get(timeout=WAIT))

    run_threads(work)
    everything = sorted(v for mine in got for v in mine)
    assert everything == list(range(total))
    assert q.empty()
    if kind in ("Queue", "SimpleQueue"):
        # FIFO per producer, as each consumer saw it.
        for mine in got:
            last: dict[int, int] = {}
            for v in mine:
                assert last.get(v // per, -1) < v
                last[v // per] = v


def test_queue_join_and_task_done_from_many_threads():
    q = pt.Queue()
    per = n(20_000)
    handled = pt.AtomicInt()

    def work(i):
        if i % 2 == 0:
            for k in range(per):
                q.put(k)
        else:
            for _ in range(per):
                q.get(timeout=WAIT)
                handled.add(1)
                q.task_done()

    run_threads(work)
    q.join()
    assert handled.load() == THREADS // 2 * per
    assert q.empty()


# --- the thread pool ----------------------------------------------------------------------------


def test_thread_pool_submits_from_many_threads_at_once():
    per = n(5_000)
    with pt.ThreadPool(4) as pool:
        results: list[list[int]] = [[] for _ in range(THREADS)]

        def work(i):
            futs = [pool.submit(pow, i, 2, 1 << 61) for _ in range(per)]
            results[i] = [f.result(timeout=WAIT) for f in futs]
            assert list(pool.map(abs, range(-per // 10, 0))) == list(range(per // 10, 0, -1))

        run_threads(work)
    assert results == [[pow(i, 2, 1 << 61)] * per for i in range(THREADS)]


def test_future_callbacks_and_waiters_from_many_threads():
    with pt.ThreadPool(2) as pool:
        for _ in range(n(200)):
            gate, all_called = pt.Event(), pt.Event()
            fut = pool.submit(gate.wait, WAIT)
            calls = pt.AtomicInt()

            def called(_f, calls=calls, all_called=all_called):
                if calls.add(1) == 4:
                    all_called.set()

            def work(i, fut=fut, gate=gate):
                fut.add_done_callback(called)
                if i == 0:
                    gate.set()
                assert fut.result(timeout=WAIT) is True

            run_threads(work, count=4)
            # As in concurrent.futures, result() may return before the completing thread has run
            # the callbacks added earlier: wait for them, then check none ran twice.
            assert all_called.wait(WAIT)
            assert calls.load() == 4


# --- the event loop -----------------------------------------------------------------------------


def test_call_soon_threadsafe_from_many_threads_keeps_each_threads_order():
    per = n(20_000)
    loop = aio.new_event_loop()
    got: list[tuple[int, int]] = []
    total = THREADS * per

    def cb(i, k):
        got.append((i, k))
        if len(got) == total:
            loop.stop()

    def work(i):
        for k in range(per):
            loop.call_soon_threadsafe(cb, i, k)

    ts = [threading.Thread(target=run_threads, args=(work,))]
    try:
        ts[0].start()
        loop.run_forever()
        ts[0].join(WAIT)
    finally:
        loop.close()
    assert len(got) == total
    for i in range(THREADS):
        assert [k for j, k in got if j == i] == list(range(per))


def test_loops_in_many_threads_run_tasks_and_exchange_futures():
    per = n(2_000)

    async def ping(k):
        await asyncio.sleep(0)
        return k

    def work(_i):
        async def main():
            res = await asyncio.gather(*(ping(k) for k in range(per)))
            assert res == list(range(per))
            # A future of a thread pool, awaited from this loop.
            return await asyncio.get_running_loop().run_in_executor(None, sum, range(per))

        assert aio.run(main()) == sum(range(per))

    run_threads(work, count=4)


# --- IPC objects from threads of several processes ----------------------------------------------


def _ipc_worker(q, results, lock, counter, plain, ident, per, threads):
    def body(t):
        for k in range(per):
            q.put((ident, t, k))
            with lock:
                plain.store(plain.load() + 1)  # racy read-modify-write, made safe by the lock
            counter.fetch_add(1)

    ts = [threading.Thread(target=body, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    results.put(ident)


@pytest.fixture(scope="module")
def _mp_helpers():
    """The resource tracker, which spawned children use, lives on: start it before the leak
    check's snapshot (as tests/test_ipc.py does)."""
    multiprocessing.resource_tracker.ensure_running()


def test_ipc_objects_from_threads_of_several_processes(_mp_helpers):
    per, threads, procs_n = n(3_000), 4, 2
    q, results = pp.Queue(maxsize=256), pp.SimpleQueue()
    lock, counter, plain = pp.Lock(), pp.AtomicInt(), pp.AtomicInt()
    ctx = multiprocessing.get_context("spawn")  # fork from a threaded process is deprecated
    procs = [
        ctx.Process(target=_ipc_worker, args=(q, results, lock, counter, plain, i, per, threads))
        for i in range(procs_n)
    ]
    for p in procs:
        p.start()
    got: list[list[tuple[int, int, int]]] = [[] for _ in range(threads)]
    total = procs_n * threads * per
    taken = pt.AtomicInt()

    def consume(t):
        mine = got[t]
        while taken.add(1) <= total:
            mine.append(q.get(timeout=WAIT))
            # The parent's threads take the same lock as the children's.
            with lock:
                plain.store(plain.load() + 1)

    try:
        run_threads(consume, count=threads)
        assert sorted([results.get(timeout=WAIT), results.get(timeout=WAIT)]) == [0, 1]
    finally:
        deadline = time.monotonic() + WAIT
        for p in procs:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():  # pragma: no cover - a failure path
                p.kill()
                p.join()
    assert [p.exitcode for p in procs] == [0] * procs_n
    everything = sorted(v for mine in got for v in mine)
    assert everything == sorted((i, t, k) for i in range(procs_n) for t in range(threads) for k in range(per))
    assert counter.load() == total
    assert plain.load() == 2 * total
    q.close()
    results.close()


class _Made:
    """A result object that a weak reference can watch."""

    def __init__(self) -> None:
        self.parts = [[i] for i in range(10)]


def _make() -> _Made:
    return _Made()


def test_results_dropped_by_the_caller_are_freed_while_the_pool_idles():
    # Without the GIL a result belongs to the worker thread that made it; the last reference
    # dropped here queues it for that thread to free, which a thread blocked in a wait never
    # does (the stdlib's ThreadPoolExecutor keeps such results until the next collection).
    # plait's idle workers wake to free them (blocking.rs, PENDING_SLICE). With the GIL they are
    # freed at once.
    with pt.ThreadPool(2) as pool:
        made = [pool.submit(_make).result() for _ in range(4)]
        refs = [weakref.ref(m) for m in made]
        del made
        deadline = time.monotonic() + WAIT
        while any(r() is not None for r in refs) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(r() is None for r in refs)
