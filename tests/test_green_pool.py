"""plait.green.pool (Group, Pool, PoolFull) and plait.green.threadpool (ThreadPool,
ThreadPoolExecutor, spawn): bounds, maps, kills and timeouts; native jobs that leave the hub
free to run greenlets."""

from __future__ import annotations

import concurrent.futures
import queue as stdlib_queue
import threading
import time

import pytest

from plait import green
from plait.exceptions import BrokenThreadPool
from plait.green import threadpool
from plait.green.event import AsyncResult, Event
from plait.green.pool import Group, Pool, PoolFull
from plait.green.threadpool import ThreadPool, ThreadPoolExecutor


def square(x):
    green.sleep(0.001 * (x % 3))
    return x * x


# -- Group ----------------------------------------------------------------------------------


def test_group_tracks_greenlets_until_they_finish():
    group = Group()
    gate = Event()
    gs = [group.spawn(gate.wait) for _ in range(3)]
    assert len(group) == 3 and all(g in group for g in gs) and set(group) == set(gs)
    assert group.join(timeout=0.01) is False
    gate.set()
    assert group.join(timeout=5) is True
    assert len(group) == 0 and not group and not group.full()


def test_group_add_discard_and_initial_greenlets():
    a, b = green.Greenlet(green.sleep, 0), green.Greenlet(green.sleep, 0)
    group = Group([a])
    group.start(b)
    assert a in group and b in group
    group.discard(a)
    assert a not in group
    a.start()
    assert group.join(timeout=5) and a.join(timeout=5) is None and len(group) == 0


def test_group_join_raise_error(capsys):
    group = Group()
    group.spawn(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        group.join(timeout=5, raise_error=True)
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_group_kill_and_killone():
    group = Group()
    gs = [group.spawn(green.sleep, 10) for _ in range(3)]
    green.sleep(0)
    group.killone(gs[0], timeout=5)
    assert gs[0].dead and len(group) == 2
    group.kill(timeout=5)
    assert all(g.dead for g in gs) and len(group) == 0
    assert all(isinstance(g.value, green.GreenletExit) for g in gs)


def test_group_kill_with_timeout_returns_even_if_greenlets_resist():
    group = Group()

    def stubborn():
        while True:
            try:
                green.sleep(10)
            except green.GreenletExit:
                pass

    g = group.spawn(stubborn)
    green.sleep(0)
    group.kill(timeout=0.05)
    assert not g.dead
    g.kill(KeyError, block=True, timeout=5)  # an exception it does not catch
    assert g.dead


# -- Pool -----------------------------------------------------------------------------------


def test_pool_bounds_concurrency():
    pool = Pool(2)
    running, peak = [0], [0]

    def task(i):
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        green.sleep(0.001)
        running[0] -= 1
        return i

    assert pool.map(task, range(8)) == list(range(8))
    assert peak[0] == 2 and pool.free_count() == 2 and pool.size == 2


def test_pool_full_free_count_and_wait_available():
    pool = Pool(1)
    gate = Event()
    assert pool.wait_available() == 1 and not pool.full()
    g = pool.spawn(gate.wait)
    assert pool.full() and pool.free_count() == 0
    assert pool.wait_available(timeout=0.01) == 0
    with pytest.raises(PoolFull):
        pool.add(green.Greenlet(green.sleep, 0), blocking=False)
    with pytest.raises(PoolFull):
        pool.start(green.Greenlet(green.sleep, 0), timeout=0.01)
    assert issubclass(PoolFull, stdlib_queue.Full)
    gate.set()
    g.join(timeout=5)
    assert pool.wait_available(timeout=5) == 1


def test_pool_spawn_waits_for_a_free_slot():
    pool = Pool(1)
    gate = Event()
    first = pool.spawn(gate.wait)
    spawner = green.spawn(pool.spawn, lambda: "second")
    green.sleep(0)
    assert not spawner.ready()
    gate.set()
    second = spawner.get(timeout=5)
    assert second.get(timeout=5) == "second" and first.ready()


def test_a_greenlet_killed_while_waiting_for_a_slot_takes_none():
    pool = Pool(1)
    gate = Event()
    pool.spawn(gate.wait)
    doomed = green.spawn(pool.spawn, lambda: "doomed")
    patient = green.spawn(pool.spawn, lambda: "patient")
    green.sleep(0)
    doomed.kill(timeout=5)
    gate.set()
    assert patient.get(timeout=5).get(timeout=5) == "patient"
    assert pool.join(timeout=5) and pool.free_count() == 1 and pool._semaphore.counter == 1


def test_pool_discard_gives_a_slot_back_once():
    pool = Pool(2)
    g = pool.spawn(green.sleep, 0)
    pool.discard(g)
    pool.discard(g)
    g.join(timeout=5)
    green.sleep(0)
    assert pool._semaphore.counter == 2 and pool.free_count() == 2


def test_pool_size_validation_zero_and_unbounded():
    with pytest.raises(ValueError):
        Pool(-1)
    empty = Pool(0)
    assert empty.full() and empty.wait_available(timeout=0.01) == 0
    unbounded = Pool()
    assert unbounded.free_count() == 1 and not unbounded.full()
    gs = [unbounded.spawn(green.sleep, 0) for _ in range(50)]
    assert len(unbounded) == 50
    green.joinall(gs, timeout=5)


def test_pool_greenlet_class():
    class Tagged(green.Greenlet):
        pass

    pool = Pool(2, greenlet_class=Tagged)
    assert isinstance(pool.spawn(lambda: None), Tagged)


def test_maps_and_applies():
    pool = Pool(3)
    assert pool.map(square, range(6)) == [0, 1, 4, 9, 16, 25]
    assert list(pool.imap(square, range(6))) == [0, 1, 4, 9, 16, 25]
    assert sorted(pool.imap_unordered(square, range(6))) == [0, 1, 4, 9, 16, 25]
    assert list(pool.imap(pow, [2, 3], [3, 2])) == [8, 9]
    assert list(pool.imap(square, range(10), maxsize=2)) == [x * x for x in range(10)]
    assert pool.apply(square, (4,)) == 16
    assert pool.apply_async(square, (5,)).get(timeout=5) == 25
    got = []
    assert pool.apply_cb(square, (2,), callback=got.append) == 4
    assert pool.map_async(square, [1, 2]).get(timeout=5) == [1, 4]
    assert pool.map_cb(square, [3], callback=got.append) == [9]
    green.sleep(0.01)
    assert got == [4, [9]]
    with pytest.raises(TypeError):
        pool.imap(square, [1], bogus=1)


def test_imap_raises_a_tasks_exception_at_its_turn(capsys):
    pool = Pool(2)

    def maybe_fail(x):
        if x == 2:
            raise KeyError(x)
        return x

    it = pool.imap(maybe_fail, range(4))
    assert next(it) == 0 and next(it) == 1
    with pytest.raises(KeyError):
        next(it)
    assert "KeyError" in capsys.readouterr().err


def test_apply_from_a_pool_greenlet_runs_in_it():
    pool = Pool(1)
    assert pool.spawn(lambda: pool.apply(lambda: green.getcurrent())).get(timeout=5) is not None
    assert pool.spawn(lambda: pool.apply(square, (3,))).get(timeout=5) == 9


def test_apply_async_does_not_wait_when_full():
    pool = Pool(1)
    gate = Event()
    pool.spawn(gate.wait)
    result = pool.apply_async(square, (3,))
    assert not result.ready()
    gate.set()
    assert result.get(timeout=5) == 9


def test_blocked_forever_names_a_pool_add():
    pool = Pool(0)

    def spawner():
        pool.spawn(lambda: None)

    g = green.spawn(spawner)
    g.name = "spawner"
    with pytest.raises(green.BlockedForever) as info:
        g.join()
    assert "'spawner' waits on Pool.add()" in str(info.value)


# -- ThreadPool -----------------------------------------------------------------------------


def test_the_hub_runs_greenlets_while_a_job_blocks_natively():
    pool = ThreadPool(1)
    native = threading.Event()  # only a greenlet running while the job blocks can set it
    ticks = []

    def ticker():
        for i in range(5):
            ticks.append(i)
            green.sleep(0.001)
        native.set()

    result = pool.spawn(native.wait, 10)
    green.spawn(ticker)
    assert result.get(timeout=20) is True and ticks == [0, 1, 2, 3, 4]


def test_greenlets_keep_running_during_time_sleep_in_a_thread():
    pool = ThreadPool(2)
    ticks = [0]
    result = pool.spawn(time.sleep, 0.3)

    def ticker():
        while not result.ready():
            ticks[0] += 1
            green.sleep(0.01)

    t = green.spawn(ticker)
    assert result.get(timeout=20) is None
    t.join(timeout=5)
    assert ticks[0] > 2  # a blocked hub would tick once before and once after


def test_jobs_run_in_other_threads_and_overlap():
    pool = ThreadPool(4)
    barrier = threading.Barrier(4, timeout=10)  # passes only if four jobs run at once
    results = [pool.spawn(lambda: (barrier.wait(), threading.get_ident())[1]) for _ in range(4)]
    idents = [r.get(timeout=20) for r in results]
    assert len(set(idents)) == 4 and threading.get_ident() not in idents
    assert pool.size == 4 and pool.maxsize == 4


def test_job_exception_is_raised_by_get_and_printed(capsys):
    pool = ThreadPool(1)
    result = pool.spawn(int, "nope")
    with pytest.raises(ValueError, match="nope"):
        result.get(timeout=20)
    assert isinstance(result.exception, ValueError)
    assert "ValueError" in capsys.readouterr().err


def test_spawn_waits_for_a_free_thread_when_maxsize_jobs_run():
    pool = ThreadPool(1)
    gate = threading.Event()
    first = pool.spawn(gate.wait, 20)
    second = green.spawn(pool.spawn, lambda: "second")
    green.sleep(0.01)
    assert not second.ready() and len(pool) == 1
    gate.set()
    assert first.get(timeout=20) is True
    assert second.get(timeout=20).get(timeout=20) == "second"


def test_a_killed_waiter_does_not_lose_the_result():
    pool = ThreadPool(1)
    gate = threading.Event()
    result = pool.spawn(lambda: (gate.wait(20), "value")[1])
    doomed = green.spawn(result.get)
    kept = green.spawn(result.get)
    green.sleep(0)
    doomed.kill(timeout=5)
    green.get_hub().loop.call_soon(gate.set)
    assert kept.get(timeout=20) == "value" and result.linkcount() == 0


def test_a_timeout_while_waiting_for_a_job():
    pool = ThreadPool(1)
    gate = threading.Event()
    result = pool.spawn(gate.wait, 20)
    with pytest.raises(green.Timeout):
        result.get(timeout=0.01)
    assert result.wait(0.01) is None and result.linkcount() == 0
    gate.set()
    assert result.get(timeout=20) is True


def test_threadpool_maps_and_join():
    pool = ThreadPool(3)
    assert pool.map(abs, [-1, -2, -3]) == [1, 2, 3]
    assert list(pool.imap(abs, [-4, -5])) == [4, 5]
    assert sorted(pool.imap_unordered(abs, [-6, -7])) == [6, 7]
    assert pool.apply(abs, (-8,)) == 8
    assert pool.apply_async(abs, (-9,)).get(timeout=20) == 9
    got = []
    pool.apply_cb(abs, (-10,), callback=got.append)
    assert got == [10]
    results = [pool.spawn(time.sleep, 0.01) for _ in range(5)]
    pool.join()
    assert all(r.ready() for r in results) and len(pool) == 0


def test_apply_from_a_worker_thread_runs_there():
    pool = ThreadPool(1)
    outer = pool.spawn(lambda: pool.apply(threading.get_ident) == threading.get_ident())
    assert outer.get(timeout=20) is True


def test_size_maxsize_adjust_and_kill():
    pool = ThreadPool(3)
    before = threading.active_count()
    pool.size = 2
    assert pool.size == 2 and threading.active_count() == before + 2
    with pytest.raises(ValueError):
        pool.size = 4
    with pytest.raises(ValueError):
        pool.size = -1
    pool.maxsize = 1
    assert pool.maxsize == 1
    pool.kill()
    assert pool.size == 0
    assert pool.spawn(abs, -1).get(timeout=20) == 1  # a killed pool starts threads again
    with pytest.raises(TypeError):
        ThreadPool(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ThreadPool(-1)


def test_threads_exit_after_an_idle_timeout():
    pool = ThreadPool(2, idle_task_timeout=0.01)
    assert pool.spawn(abs, -1).get(timeout=20) == 1
    with green.Timeout(10):
        while pool.size:
            green.sleep(0.01)
    assert pool.spawn(abs, -2).get(timeout=20) == 2


def test_spawn_from_another_thread_is_refused():
    from plait.green._linkable import InvalidThreadUseError

    pool = ThreadPool(1)
    errors = []

    def other():
        try:
            pool.spawn(abs, 1)
        except InvalidThreadUseError as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)


def test_blocked_forever_names_a_threadpool_spawn_with_no_room():
    pool = ThreadPool(0)
    with pytest.raises(green.BlockedForever) as info:
        pool.spawn(abs, 1)
    assert "ThreadPool.spawn()" in str(info.value)


def test_module_spawn_uses_the_hubs_pool():
    pool = threadpool.get_threadpool()
    assert pool is threadpool.get_threadpool() and pool.maxsize == threadpool.DEFAULT_SIZE
    result = threadpool.spawn(threading.get_ident)
    assert isinstance(result, AsyncResult) and result.get(timeout=20) != threading.get_ident()
    hub = green.get_hub()
    hub.destroy()  # stops and joins the pool's threads
    assert threadpool.get_threadpool() is not pool


# -- ThreadPoolExecutor ---------------------------------------------------------------------


def test_executor_futures_are_waited_on_cooperatively():
    with ThreadPoolExecutor(2) as executor:
        native = threading.Event()
        future = executor.submit(native.wait, 10)
        assert isinstance(future, concurrent.futures.Future)
        green.spawn(native.set)  # runs while result() waits: the hub is free
        assert future.result(timeout=20) is True and future.done()
        futures = [executor.submit(pow, 2, i) for i in range(4)]
        done = green.wait(futures, timeout=20)
        assert sorted(f.result() for f in done) == [1, 2, 4, 8]
        assert list(executor.map(abs, [-1, -2])) == [1, 2]


def test_executor_exception_timeout_and_done_callbacks():
    executor = ThreadPoolExecutor(1)
    gate = threading.Event()
    blocker = executor.submit(gate.wait, 20)
    with pytest.raises(concurrent.futures.TimeoutError):
        blocker.result(timeout=0.01)
    called = []
    blocker.add_done_callback(lambda f: called.append(threading.get_ident()))
    failing = executor.submit(int, "x")
    gate.set()
    assert isinstance(failing.exception(timeout=20), ValueError)
    with pytest.raises(ValueError):
        failing.result()
    green.sleep(0)
    assert called == [threading.get_ident()]  # run in the hub, in this thread
    executor.shutdown()


def test_executor_futures_work_from_other_threads():
    executor = ThreadPoolExecutor(2)
    futures = [executor.submit(abs, -i) for i in range(4)]
    seen = []
    t = threading.Thread(
        target=lambda: seen.extend(f.result() for f in concurrent.futures.as_completed(futures))
    )
    t.start()
    t.join(20)
    assert sorted(seen) == [0, 1, 2, 3]
    executor.shutdown(wait=True)


def test_executor_cancel_and_shutdown():
    executor = ThreadPoolExecutor(1)
    started, gate = threading.Event(), threading.Event()
    running = executor.submit(lambda: (started.set(), gate.wait(20))[1])
    assert started.wait(20)  # the one thread runs it: the next ones stay queued
    pending = executor.submit(abs, -1)
    queued = executor.submit(abs, -2)
    assert pending.cancel() and pending.cancelled()
    assert green.wait([pending], timeout=5) == [pending]  # the links were told
    green.get_hub().loop.call_soon(gate.set)
    executor.shutdown(wait=True, cancel_futures=True)
    assert running.result() is True
    assert queued.cancelled()
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(abs, 1)


def test_executor_initializer_failure_breaks_it():
    def bad_init():
        raise OSError("no")

    executor = ThreadPoolExecutor(1, initializer=bad_init)
    future = executor.submit(abs, -1)
    with pytest.raises(BrokenThreadPool):
        future.result(timeout=20)
    with pytest.raises(BrokenThreadPool):
        executor.submit(abs, -1)
    executor.shutdown()


def test_a_pool_outlives_its_hub():
    pool = ThreadPool(2)
    assert pool.spawn(abs, -1).get(timeout=20) == 1
    green.get_hub().destroy()  # joins the pool's threads
    assert pool.spawn(abs, -2).get(timeout=20) == 2 and pool.hub is green.get_hub()
