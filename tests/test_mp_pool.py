"""plait.processes.Pool: multiprocessing.Pool's API, what plait adds (a crash fails one task only),
and the multiprocessing names plait.processes re-exports. CPython's own pool tests run against
it in tests/conformance/test_cpython_mp_pool.py; these cover the rest."""

from __future__ import annotations

import concurrent.futures
import gc
import multiprocessing
import multiprocessing.pool
import os
import pickle
import threading
import time

import pytest

import plait.processes
from plait import BrokenProcessPool, WorkerCrashed
from plait.processes import Pool, ProcessPool

HANG = 60


def square(x):
    return x * x


def pid(_=None):
    return os.getpid()


def ppid(_=None):
    return os.getppid()


def die_on(x, bad):
    if x == bad:
        os._exit(7)
    return x


def fail_on(x, bad):
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def wait_for(event):
    event.wait(HANG)
    return "released"


def sleep_long():
    time.sleep(HANG)


def fail_init():
    raise RuntimeError("initializer failed")


def append_to(shared, value):
    shared.append(value)
    return len(shared)


@pytest.fixture(scope="module", autouse=True)
def resource_tracker():
    """multiprocessing's resource tracker: a process that lives as long as this one, started by
    the first spawned ``Process`` or manager. Started before the tests, it is no leak of theirs."""
    import multiprocessing.resource_tracker

    multiprocessing.resource_tracker.ensure_running()


@pytest.fixture
def pool():
    p = Pool(2, context=multiprocessing.get_context("spawn"))
    yield p
    p.terminate()
    p.join()


# --- construction and states -------------------------------------------------------------------


@pytest.mark.parametrize("processes", [0, -1])
def test_pool_needs_a_process(processes):
    with pytest.raises(ValueError, match="Number of processes must be at least 1"):
        Pool(processes)


@pytest.mark.parametrize("value", [0, -1, 0.5, "12"])
def test_maxtasksperchild_must_be_a_positive_int(value):
    with pytest.raises(ValueError, match="maxtasksperchild must be a positive int or None"):
        Pool(1, maxtasksperchild=value)


def test_initializer_must_be_callable():
    with pytest.raises(TypeError, match="initializer must be a callable"):
        Pool(1, initializer=1)


def test_every_method_fails_after_close_as_multiprocessing():
    p = Pool(1)
    p.close()
    for call in (
        lambda: p.apply(square, (1,)),
        lambda: p.apply_async(square, (1,)),
        lambda: p.map(square, [1]),
        lambda: p.map_async(square, [1]),
        lambda: p.starmap(square, [(1,)]),
        lambda: p.starmap_async(square, [(1,)]),
        lambda: p.imap(square, [1]),
        lambda: p.imap_unordered(square, [1]),
    ):
        with pytest.raises(ValueError, match="Pool not running"):
            call()
    with pytest.raises(ValueError, match="Pool not running"):
        p.__enter__()
    p.join()


def test_join_needs_close_or_terminate():
    p = Pool(1)
    with pytest.raises(ValueError, match="Pool is still running"):
        p.join()
    p.close()
    p.join()
    assert repr(p) == "<plait.processes.Pool state=CLOSE pool_size=1>"


def test_a_pool_cannot_be_pickled(pool):
    with pytest.raises(NotImplementedError, match="pool objects cannot be passed between processes"):
        pickle.dumps(pool)


def test_a_running_pool_dropped_warns_and_stops():
    p = Pool(1)
    assert p.apply(square, (3,)) == 9
    with pytest.warns(ResourceWarning, match="unclosed running multiprocessing pool"):
        del p
        gc.collect()
    # Its dispatcher and workers go too (tests/conftest.py checks that nothing is left).


# --- results -----------------------------------------------------------------------------------


def test_results_of_every_method(pool):
    assert pool.apply(square, (4,)) == 16
    assert pool.apply(fail_on, (), {"x": 1, "bad": 2}) == 1
    assert pool.apply_async(square, (5,)).get(HANG) == 25
    assert pool.map(square, range(50)) == [i * i for i in range(50)]
    assert pool.map(square, iter(range(50)), chunksize=7) == [i * i for i in range(50)]
    assert pool.map_async(square, [1, 2]).get(HANG) == [1, 4]
    assert pool.starmap(pow, [(2, 3), (3, 2)]) == [8, 9]
    assert pool.starmap_async(pow, iter([(2, 5)])).get(HANG) == [32]
    assert list(pool.imap(square, range(20))) == [i * i for i in range(20)]
    assert list(pool.imap(square, iter(range(20)), chunksize=None)) == [i * i for i in range(20)]
    assert sorted(pool.imap_unordered(square, iter(range(20)), chunksize=3)) == [i * i for i in range(20)]


def test_functions_from_main_lambdas_and_closures_can_be_sent(pool):
    offset = 10
    assert pool.apply(lambda x: x + offset, (1,)) == 11
    assert pool.map(lambda x: x - offset, [10, 20]) == [0, 10]


def test_async_result_states_and_timeouts(pool):
    event = plait.processes.Event()
    result = pool.apply_async(wait_for, (event,))
    with pytest.raises(ValueError, match="not ready"):
        result.successful()
    assert not result.ready()
    result.wait(0.05)
    assert not result.ready()
    with pytest.raises(multiprocessing.TimeoutError):
        result.get(0.05)
    event.set()
    assert result.get(HANG) == "released"
    assert result.ready() and result.successful()


def test_callbacks_run_in_this_process_before_the_result_is_ready(pool):
    seen = []
    ok = pool.apply_async(square, (3,), callback=lambda v: seen.append(("ok", v, os.getpid())))
    ok.wait(HANG)
    assert seen == [("ok", 9, os.getpid())]
    bad = pool.map_async(
        square_or_fail, [1, 2], error_callback=lambda e: seen.append(("err", type(e), os.getpid()))
    )
    bad.wait(HANG)
    assert seen[1] == ("err", ValueError, os.getpid())
    assert not bad.successful()


def test_an_empty_map_is_ready_at_once_without_callback(pool):
    called = []
    result = pool.map_async(square, [], callback=called.append)
    assert result.ready() and result.get() == [] and called == []


def test_errors_carry_the_workers_traceback_as_multiprocessing(pool):
    with pytest.raises(ValueError, match="bad item 3") as info:
        pool.starmap(fail_on, [(i, 3) for i in range(6)])
    cause = info.value.__cause__
    assert type(cause) is multiprocessing.pool.RemoteTraceback
    assert "raise ValueError" in cause.tb


def test_imap_next_times_out_then_goes_on(pool):
    event = plait.processes.Event()
    it = pool.imap(wait_for, [event, event])
    with pytest.raises(multiprocessing.TimeoutError):
        it.next(timeout=0.05)
    event.set()
    assert it.next(timeout=HANG) == "released"
    assert list(it) == ["released"]


def test_imap_goes_on_after_an_items_error(pool):
    results = []
    iterator = pool.imap(square_or_fail, range(4))
    for _ in range(4):
        try:
            results.append(next(iterator))
        except ValueError as exc:
            results.append(str(exc))
    assert results == [0, 1, "bad item 2", 9]
    with pytest.raises(StopIteration):
        next(iterator)


def square_or_fail(x):
    if x == 2:
        raise ValueError("bad item 2")
    return x * x


def test_an_unpicklable_result_is_a_maybe_encoding_error(pool):
    with pytest.raises(multiprocessing.pool.MaybeEncodingError) as info:
        pool.apply(threading.Lock)
    assert "lock" in info.value.value
    assert pool.apply(square, (2,)) == 4


# --- what plait adds: a crash fails one task only ----------------------------------------------


def test_a_crashed_worker_fails_only_its_task(pool):
    errors = []
    result = pool.apply_async(die_on, (1, 1), error_callback=errors.append)
    with pytest.raises(WorkerCrashed) as info:
        result.get(HANG)
    assert info.value.exitcode == 7
    assert errors == [info.value]
    assert pool.apply(square, (6,)) == 36


def test_a_crash_in_a_map_fails_the_map_and_the_pool_goes_on(pool):
    with pytest.raises(WorkerCrashed):
        pool.starmap(die_on, [(i, 5) for i in range(10)], chunksize=1)
    it = pool.imap(die_on_5, range(7))
    got = []
    for _ in range(7):
        try:
            got.append(next(it))
        except WorkerCrashed:
            got.append("crashed")
    assert got == [0, 1, 2, 3, 4, "crashed", 6]
    assert pool.map(square, range(10)) == [i * i for i in range(10)]


def die_on_5(x):
    return die_on(x, 5)


def test_maxtasksperchild_replaces_workers():
    with Pool(1, maxtasksperchild=1) as p:
        pids = [p.apply(pid) for _ in range(3)]
    p.join()
    assert len(set(pids)) == 3


def test_workers_that_cannot_start_fail_tasks_and_leak_nothing():
    p = Pool(1, initializer=fail_init)
    with pytest.raises(BrokenProcessPool):
        p.apply(square, (1,), {})
    p.terminate()
    p.join()


def test_terminate_kills_running_tasks_and_fails_pending_results():
    p = Pool(1)
    running = p.apply_async(sleep_long)
    queued = p.map_async(square, range(10))
    p.terminate()
    p.join()
    for result in (running, queued):
        with pytest.raises(concurrent.futures.CancelledError):
            result.get(HANG)


def test_close_runs_the_rest_of_an_unread_imap():
    p = Pool(2)
    it = p.imap(square, iter(range(100)))  # a generator: read as results are consumed
    p.close()
    p.join()  # every task ran, as with multiprocessing
    assert list(it) == [i * i for i in range(100)]


# --- start methods, manager proxies ------------------------------------------------------------


def test_the_context_picks_the_start_method():
    with Pool(1, context=multiprocessing.get_context("forkserver")) as p:
        assert p.apply(ppid) != os.getpid()  # forked by the fork server
    p.join()
    with Pool(1, context=multiprocessing.get_context("spawn")) as p:
        assert p.apply(ppid) == os.getpid()
    p.join()


def test_manager_proxies_reach_spawned_workers(pool):
    manager = multiprocessing.get_context("spawn").Manager()
    try:
        shared = manager.list()
        assert pool.apply(append_to, (shared, 1)) == 1
        assert list(shared) == [1]
        del shared  # closes this thread's connection to the manager
    finally:
        manager.shutdown()
    # The manager's process object (with its pipes) goes once multiprocessing forgets it.
    del manager
    gc.collect()
    multiprocessing.active_children()


# --- ProcessPool.map now carries the worker's traceback too ------------------------------------


def test_process_pool_map_errors_carry_the_workers_traceback():
    from plait.exceptions import RemoteTraceback

    with ProcessPool(1) as executor:
        with pytest.raises(ValueError, match="bad item 2") as info:
            list(executor.map(square_or_fail, range(4)))
    assert type(info.value.__cause__) is RemoteTraceback
    assert "square_or_fail" in info.value.__cause__.tb


# --- the multiprocessing names -----------------------------------------------------------------

REEXPORTED = (
    "Array",
    "AuthenticationError",
    "BufferTooShort",
    "Manager",
    "Process",
    "ProcessError",
    "RawArray",
    "RawValue",
    "TimeoutError",
    "Value",
    "active_children",
    "allow_connection_pickling",
    "cpu_count",
    "current_process",
    "freeze_support",
    "get_all_start_methods",
    "get_context",
    "get_logger",
    "get_start_method",
    "log_to_stderr",
    "parent_process",
    "set_executable",
    "set_forkserver_preload",
    "set_start_method",
)
OWN = ("Barrier", "BoundedSemaphore", "Condition", "Event", "JoinableQueue", "Lock", "Pipe", "Pool")
OWN += ("Queue", "RLock", "Semaphore", "SimpleQueue")


@pytest.mark.parametrize("name", REEXPORTED)
def test_multiprocessing_names_are_the_stdlib_objects(name):
    assert getattr(plait.processes, name) is getattr(multiprocessing, name)
    assert name in plait.processes.__all__


def test_every_multiprocessing_name_is_there_and_plaits_own_win():
    for name in multiprocessing.__all__:
        if name == "reducer":  # multiprocessing's pickler hook, not an API for programs
            continue
        assert hasattr(plait.processes, name), name
    for name in OWN:
        value = getattr(plait.processes, name)
        assert value is not getattr(multiprocessing, name)
        assert value.__module__.startswith("plait."), name


def test_a_program_written_for_multiprocessing_runs_with_plait_processes():
    import plait.processes as mp

    with mp.Pool(2) as p:
        assert p.map(square, range(5)) == [0, 1, 4, 9, 16]
    p.join()
    q = mp.Queue()
    # spawn: forking this multi-threaded test process is deprecated from 3.12.
    proc = mp.get_context("spawn").Process(target=q.put, args=("from the child",))
    proc.start()
    assert q.get(timeout=HANG) == "from the child"
    proc.join(HANG)
    assert proc.exitcode == 0
    assert mp.cpu_count() >= 1 and mp.get_start_method() in mp.get_all_start_methods()


def test_the_private_worker_list_names_the_workers(pool):
    # multiprocessing.Pool._pool, emulated: code that reads it for the workers' pids works.
    workers = pool._pool
    assert len(workers) == 2 and all(w.is_alive() for w in workers)
    assert {pool.apply(pid) for _ in range(4)} <= {w.pid for w in workers}
