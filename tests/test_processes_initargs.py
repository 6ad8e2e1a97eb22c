"""``initargs`` that multiprocessing shares by inheritance only (``multiprocessing.Queue``,
``Lock``, ``Value``): forked workers take the objects themselves, as ``ProcessPoolExecutor``'s
and ``multiprocessing.Pool``'s forked workers do; the other start methods need ``initargs`` to
pickle, and say so when they do not."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap

import pytest

from plait.processes import Pool, ProcessPool
from plait.processes import Queue as PlaitQueue

HANG = 60
FORK = multiprocessing.get_context("fork")

_counter = None
_lock = None


def put_ready(queue):
    queue.put("ready")


def keep(lock, counter):
    global _lock, _counter
    _lock, _counter = lock, counter


def add_one(_):
    with _lock:
        _counter.value += 1
        return _counter.value


def close(queue):
    """The queue's pipe, both ends, now (the writer end otherwise lives as long as the queue,
    which the leak check would count)."""
    queue.close()
    queue.join_thread()
    queue._writer.close()


def test_a_fork_pool_passes_a_multiprocessing_queue_to_its_initializer():
    queue = FORK.Queue()
    try:
        with ProcessPool(1, FORK, put_ready, (queue,)) as pool:
            assert pool.submit(int, "7").result(HANG) == 7
        # Put by the initializer, flushed by the worker as it exits (multiprocessing's way).
        assert queue.get(timeout=HANG) == "ready"
    finally:
        close(queue)


@pytest.fixture(scope="module")
def shared_heap():
    """multiprocessing's shared-memory heap: its first Value opens the heap's arena file, which
    stays open for the session (the leak check would count it)."""
    return FORK.Value("i", 0, lock=False)


@pytest.mark.usefixtures("shared_heap")
def test_a_fork_pool_shares_a_lock_and_a_value_with_every_worker():
    lock, counter = FORK.Lock(), FORK.Value("i", 0, lock=False)
    with ProcessPool(2, FORK, keep, (lock, counter)) as pool:
        seen = list(pool.map(add_one, range(200), chunksize=10))
    assert counter.value == 200 and sorted(seen) == list(range(1, 201))


@pytest.mark.usefixtures("shared_heap")
def test_pool_fork_shares_a_lock_and_a_value_as_multiprocessing_pool_does():
    lock, counter = FORK.Lock(), FORK.Value("i", 0, lock=False)
    with Pool(2, keep, (lock, counter), context=FORK) as pool:
        assert sorted(pool.map(add_one, range(100), chunksize=5)) == list(range(1, 101))
        pool.close()
        pool.join()
    assert counter.value == 100


@pytest.fixture(scope="module")
def resource_tracker():
    """multiprocessing's resource tracker, started before the test's leak check counts child
    processes: a spawn context's Lock starts it the first time, and it stays for the session."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
@pytest.mark.usefixtures("resource_tracker")
def test_other_start_methods_send_initargs_with_their_descriptors(method):
    # As ProcessPoolExecutor hands them to the workers it starts: the queue's pipe and the
    # lock's named semaphore travel with the workers' setup, to every worker.
    ctx = multiprocessing.get_context(method)
    queue, lock, counter = ctx.Queue(), ctx.Lock(), ctx.Value("i", 0, lock=False)
    try:
        with ProcessPool(2, ctx, put_ready, (queue,)) as pool:
            assert pool.submit(int, "7").result(HANG) == 7
        assert queue.get(timeout=HANG) == "ready"
        with Pool(2, keep, (lock, counter), context=ctx) as pool:
            assert sorted(pool.map(add_one, range(50), chunksize=5)) == list(range(1, 51))
    finally:
        close(queue)
    assert counter.value == 50


def test_a_fork_context_lock_cannot_go_to_a_spawn_pool():
    # multiprocessing refuses too (Python 3.12+: a RuntimeError naming the contexts; 3.11
    # pickles the semaphore's address, which means nothing in another process): plait raises
    # at construction.
    lock = FORK.Lock()
    with pytest.raises((RuntimeError, TypeError)):
        ProcessPool(1, multiprocessing.get_context("spawn"), keep, (lock, None))


def test_plait_process_shared_objects_go_in_initargs(start_method):
    queue = PlaitQueue()
    with ProcessPool(2, initializer=put_ready, initargs=(queue,), start_method=start_method) as pool:
        assert pool.submit(int, "7").result(HANG) == 7
    assert [queue.get(timeout=HANG) for _ in range(2)] == ["ready", "ready"]


@pytest.fixture(params=["spawn", "fork", "forkserver"])
def start_method(request):
    return request.param


def sleep_a_little():
    import time

    time.sleep(0.5)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Python 3.11 still forks at interpreter shutdown")
def test_a_worker_started_at_shutdown_without_fork_says_why_its_initializer_cannot_run():
    # From 3.12 a fork pool's workers that start once the main thread is done are spawned: the
    # queued work still runs when initargs pickle (test_cpython_futures_process), and the
    # initializer fails with the reason when they do not (a "fork" context's lock). Here the
    # worker retires after its first task, which outlasts the main thread: its successor, for
    # the second task, starts during the shutdown.
    script = textwrap.dedent(
        """
        import multiprocessing, sys
        sys.path.insert(0, {here!r})
        from plait.processes import ProcessPool
        from test_processes_initargs import keep, sleep_a_little
        import atexit, os
        @atexit.register
        def fork_at_exit():  # runs before the pool's own exit hook: can this Python fork now?
            try:
                pid = os.fork()
            except RuntimeError:
                print("fork refused", file=sys.stderr)
                return
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
        if __name__ == "__main__":
            ctx = multiprocessing.get_context("fork")
            pool = ProcessPool(1, ctx, keep, (ctx.Lock(), None), max_tasks_per_worker=1)
            pool.submit(sleep_a_little)
            pool.submit(int, "7")
        """
    ).format(here=os.path.dirname(__file__))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=HANG)
    if "fork refused" not in out.stderr:
        pytest.skip("this Python still forks when its exit hooks run")
    assert "Exception in initializer" in out.stderr
    assert "initargs do not pickle, so they reach forked workers only" in out.stderr
