"""plait.processes.ProcessPool: results, faults that fail one task only, timeouts, cancels."""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import importlib
import importlib.abc
import importlib.machinery
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import types

import pytest

from plait import BrokenProcessPool, TaskTimeout, WorkerCrashed
from plait.exceptions import (
    PlaitError,
    RemoteTraceback,
)
from plait.processes import ProcessPool

HANG = 60


def square(x):
    return x * x


def add(a, b=0):
    return a + b


def fail(message):
    raise ValueError(message)


def die(code):
    os._exit(code)


def kill_self(sig):
    os.kill(os.getpid(), sig)
    time.sleep(HANG)


def segfault():
    import ctypes

    ctypes.string_at(0)


def exit_task():
    sys.exit(3)


def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


def pid(_=None):
    return os.getpid()


_state = {}


def remember(value):
    _state["value"] = value


def recall():
    return _state.get("value")


def origin():
    return os.getppid(), recall()


def broken_init():
    raise RuntimeError("init went wrong")


class RefusesPickling:
    def __reduce__(self):
        raise pickle.PicklingError("refused")


def unpicklable_result():
    return threading.Lock()


def maybe_fail(i):
    if i % 2:
        raise ValueError(i)
    return i


# The start methods that run the whole behaviour suite ("fork" has a test of its own: forking
# the multi-threaded test process for every test would be the slow, fragile choice).
START_METHODS = ["spawn", "forkserver"]


@pytest.fixture(params=START_METHODS)
def start_method(request):
    return request.param


@pytest.fixture
def make_pool(start_method):
    """``make_pool(**options)``: a ProcessPool of the backend under test, shut down after the
    test (tests/test_backend_faults.py runs the scenarios that use it on cluster backends)."""
    pools = []

    def make(**options):
        pools.append(ProcessPool(start_method=start_method, **options))
        return pools[-1]

    yield make
    for p in pools:
        p.shutdown()


@pytest.fixture
def pool(make_pool):
    with make_pool(max_workers=2) as p:
        yield p


def test_submit_result_and_kwargs(pool):
    assert pool.submit(square, 7).result(HANG) == 49
    assert pool.submit(add, 1, b=2).result(HANG) == 3


def test_futures_are_concurrent_futures(pool):
    fs = [pool.submit(square, i) for i in range(10)]
    assert all(isinstance(f, concurrent.futures.Future) for f in fs)
    done, _ = concurrent.futures.wait(fs, timeout=HANG)
    assert len(done) == 10
    assert sorted(f.result() for f in concurrent.futures.as_completed(fs)) == [i * i for i in range(10)]


def test_exception_carries_the_worker_traceback(pool):
    with pytest.raises(ValueError, match="boom") as info:
        pool.submit(fail, "boom").result(HANG)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in fail" in str(cause)


def test_lambdas_and_closures_travel_by_value(pool):
    k = 5
    assert pool.submit(lambda x: x + k, 1).result(HANG) == 6
    assert list(pool.map(lambda x: x * k, range(4))) == [0, 5, 10, 15]


@pytest.mark.parametrize(
    ("fn", "args", "check"),
    [
        (die, (7,), lambda e: e.exitcode == 7),
        (kill_self, (signal.SIGKILL,), lambda e: e.signal == signal.SIGKILL),
        (segfault, (), lambda e: e.signal == signal.SIGSEGV),
    ],
    ids=["os._exit", "SIGKILL", "segfault"],
)
def test_a_crash_fails_only_its_task(pool, fn, args, check):
    good = [pool.submit(sleep_then, 0.05, i) for i in range(6)]
    bad = pool.submit(fn, *args)
    more = [pool.submit(square, i) for i in range(6)]
    with pytest.raises(concurrent.futures.process.BrokenProcessPool) as info:
        bad.result(HANG)  # what ProcessPoolExecutor raises, so its handlers catch it
    assert isinstance(info.value, WorkerCrashed)
    assert isinstance(info.value, BrokenProcessPool)
    assert isinstance(info.value, PlaitError)
    assert check(info.value), str(info.value)
    assert [f.result(HANG) for f in good] == list(range(6))
    assert [f.result(HANG) for f in more] == [i * i for i in range(6)]
    assert pool.submit(square, 3).result(HANG) == 9  # the pool replaced the worker


def test_sys_exit_in_a_task_fails_that_task_only(pool):
    with pytest.raises(SystemExit):
        pool.submit(exit_task).result(HANG)
    assert pool.submit(square, 2).result(HANG) == 4


def test_task_timeout_kills_and_replaces_the_worker(make_pool):
    with make_pool(max_workers=1, task_timeout=0.5) as pool:
        slow = pool.submit(sleep_then, HANG, "never")
        # The queued task runs on the replacement worker, which first imports this module to find
        # `square`: under load that alone can pass 0.5 s, so it gets its own generous timeout.
        fast = pool.options(timeout=HANG).submit(square, 4)
        with pytest.raises(TaskTimeout) as info:
            slow.result(HANG)
        assert isinstance(info.value, TimeoutError)
        assert info.value.timeout == 0.5
        assert fast.result(HANG) == 16


def test_per_task_timeout_through_options(pool):
    with pytest.raises(TaskTimeout):
        pool.options(timeout=0.3).submit(sleep_then, HANG, 1).result(HANG)
    assert pool.options(timeout=30).submit(add, 1, b=1).result(HANG) == 2


def test_cancel_queued_and_running(make_pool):
    with make_pool(max_workers=1) as pool:
        running = pool.submit(sleep_then, HANG, "slow")
        queued = pool.submit(square, 3)
        assert queued.cancel()
        while not running.running():
            time.sleep(0.01)
        assert pool.cancel_running(running)
        with pytest.raises(concurrent.futures.CancelledError):
            running.result(HANG)
        assert queued.cancelled()
        assert pool.submit(square, 5).result(HANG) == 25


def test_unpicklable_argument_fails_that_task_with_the_picklers_error(pool):
    # As with ProcessPoolExecutor: submit returns, the future fails with pickle's own error.
    future = pool.submit(square, threading.Lock())
    with pytest.raises(TypeError, match=r"cannot pickle '_thread\.lock' object") as info:
        future.result(HANG)
    assert any("cannot send" in note for note in info.value.__notes__)
    with pytest.raises(pickle.PicklingError, match="refused"):
        pool.submit(square, RefusesPickling()).result(HANG)
    assert pool.submit(square, 2).result(HANG) == 4


def test_unpicklable_result_fails_that_task(pool):
    with pytest.raises(TypeError, match="cannot pickle") as info:
        pool.submit(unpicklable_result).result(HANG)
    assert "the task's result could not be pickled" in info.value.__notes__
    with pytest.raises(pickle.PicklingError, match="refused"):
        pool.submit(RefusesPickling).result(HANG)
    assert pool.submit(square, 2).result(HANG) == 4


def test_function_missing_in_the_worker_fails_that_task(pool):
    ghost = types.ModuleType("plait_ghost_module")
    exec("def f(x):\n    return x\n", ghost.__dict__)
    sys.modules["plait_ghost_module"] = ghost
    try:
        with pytest.raises(ModuleNotFoundError, match="plait_ghost_module"):
            pool.submit(ghost.f, 1).result(HANG)
    finally:
        del sys.modules["plait_ghost_module"]
    assert pool.submit(square, 2).result(HANG) == 4


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_workers"):
        ProcessPool(max_workers=0)
    with pytest.raises(TypeError, match="initializer"):
        ProcessPool(initializer=5)
    with pytest.raises(ValueError, match="start_method"):
        ProcessPool(start_method="teleport")


def test_process_pool_executor_signature_positionally():
    """ProcessPoolExecutor(max_workers, mp_context, initializer, initargs, *, max_tasks_per_child)."""
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPool(1, ctx, remember, ("ready",), max_tasks_per_child=2) as pool:
        assert pool._mp_context is ctx
        pids = [pool.submit(pid).result(HANG) for _ in range(4)]
        assert pool.submit(recall).result(HANG) == "ready"
    assert len(set(pids)) == 2


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_mp_context_picks_the_start_method(method):
    # Told apart by the worker's parent (the fork server's workers are its children) and by
    # what it inherits (only a forked worker sees this process's state).
    remember("parent state")
    try:
        with ProcessPool(1, multiprocessing.get_context(method)) as pool:
            assert pool._mp_context.get_start_method() == method
            parent, inherited = pool.submit(origin).result(HANG)
    finally:
        _state.clear()
    assert (parent == os.getpid()) == (method != "forkserver")
    assert inherited == ("parent state" if method == "fork" else None)


def test_max_tasks_per_child_defaults_to_spawn_and_refuses_fork():
    pool = ProcessPool(1, max_tasks_per_child=3)
    try:
        assert pool._mp_context.get_start_method() == "spawn"
    finally:
        pool.shutdown()
    with pytest.raises(ValueError, match="max_tasks_per_child is incompatible with the 'fork'"):
        ProcessPool(1, multiprocessing.get_context("fork"), max_tasks_per_child=3)
    # plait's own spelling works with fork.
    with ProcessPool(1, start_method="fork", max_tasks_per_worker=1) as pool:
        assert len({pool.submit(pid).result(HANG) for _ in range(2)}) == 2


def test_bad_constructor_input_raises_as_process_pool_executor():
    for number in (0, -1):
        with pytest.raises(ValueError, match="max_workers must be greater than 0"):
            ProcessPool(number)
    with pytest.raises(TypeError, match="initializer must be a callable"):
        ProcessPool(1, None, 5)
    with pytest.raises(TypeError, match="max_tasks_per_child must be an integer"):
        ProcessPool(1, max_tasks_per_child="3")
    with pytest.raises(ValueError, match="max_tasks_per_child must be >= 1"):
        ProcessPool(1, max_tasks_per_child=0)
    with pytest.raises(ValueError, match="max_tasks_per_worker must be >= 1"):
        ProcessPool(1, max_tasks_per_worker=0)
    with pytest.raises(TypeError, match="same option with different values"):
        ProcessPool(1, max_tasks_per_child=2, max_tasks_per_worker=3)
    with pytest.raises(TypeError, match="mp_context must be a multiprocessing context"):
        ProcessPool(1, "fork")
    with pytest.raises(TypeError, match="disagree"):
        ProcessPool(1, multiprocessing.get_context("fork"), start_method="spawn")
    with pytest.raises(TypeError):
        ProcessPool(1, None, None, (), 5)  # max_tasks_per_child is keyword-only, as in the stdlib


def test_a_context_plait_cannot_honour_is_a_value_error():
    class ThreadContext:
        def get_start_method(self, allow_none=False):
            return "threads"

    with pytest.raises(ValueError, match="cannot honour"):
        ProcessPool(1, ThreadContext())


def test_max_tasks_per_child_and_per_worker_are_one_option():
    with ProcessPool(1, max_tasks_per_child=2, max_tasks_per_worker=2) as pool:
        pids = [pool.submit(pid).result(HANG) for _ in range(4)]
    assert len(set(pids)) == 2


def test_use_after_shutdown_raises(make_pool):
    pool = make_pool(max_workers=1)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(square, 1)


def test_initializer_runs_in_every_worker(make_pool):
    with make_pool(max_workers=2, initializer=remember, initargs=("ready",)) as pool:
        assert {pool.submit(recall).result(HANG) for _ in range(6)} == {"ready"}


def test_failing_initializer_breaks_the_pool(make_pool):
    with make_pool(max_workers=1, initializer=broken_init) as pool:
        with pytest.raises(BrokenProcessPool, match="init went wrong"):
            pool.submit(square, 1).result(HANG)


def test_max_tasks_per_worker_recycles_workers(start_method):
    with ProcessPool(max_workers=1, max_tasks_per_worker=2, start_method=start_method) as pool:
        pids = [pool.submit(pid).result(HANG) for _ in range(6)]
    assert len(set(pids)) == 3


def test_hundred_failures_among_hundred_successes(pool):
    futures = [pool.submit(maybe_fail, i) for i in range(200)]
    errors = [f for f in futures if f.exception(HANG) is not None]
    results = [f.result() for f in futures if f.exception() is None]
    assert len(errors) == 100
    assert results == list(range(0, 200, 2))
    assert pool.submit(square, 9).result(HANG) == 81


def test_raising_done_callback_does_not_break_the_pool(pool, caplog):
    fut = pool.submit(square, 2)
    fut.add_done_callback(lambda f: 1 / 0)
    assert fut.result(HANG) == 4
    assert pool.submit(square, 3).result(HANG) == 9


def test_map_generator_that_raises_leaves_the_pool_usable(pool):
    def items():
        yield 1
        raise KeyError("bad input")

    with pytest.raises(KeyError):
        pool.map(square, items())
    assert pool.submit(square, 3).result(HANG) == 9


def test_map_order_chunks_and_errors(pool):
    assert list(pool.map(square, range(1000))) == [i * i for i in range(1000)]
    assert list(pool.map(add, range(5), range(5), chunksize=2)) == [0, 2, 4, 6, 8]
    it = pool.map(maybe_fail, range(4), chunksize=1)
    assert next(it) == 0
    with pytest.raises(ValueError):
        next(it)


def test_imap_imap_unordered_starmap(pool):
    assert list(pool.imap(square, iter(range(50)), chunksize=3)) == [i * i for i in range(50)]
    assert sorted(pool.imap_unordered(square, range(50))) == sorted(i * i for i in range(50))
    assert pool.starmap(add, [(1, 2), (3, 4)]) == [3, 7]


def _count_chunks(pool, monkeypatch):
    """Counts the tasks (chunks) a map submits."""
    calls = []
    submit = pool._submit

    def counting(*args, **kwargs):
        calls.append(1)
        return submit(*args, **kwargs)

    monkeypatch.setattr(pool, "_submit", counting)
    return calls


def test_chunk_sizes_adapt_to_the_task_duration(pool, monkeypatch):
    chunks = _count_chunks(pool, monkeypatch)
    assert list(pool.map(square, range(20_000))) == [i * i for i in range(20_000)]
    tiny = len(chunks)
    assert 2 <= tiny < 500  # microsecond tasks: large chunks after the probes
    chunks.clear()
    assert list(pool.map(sleep_then, [0.01] * 40, range(40))) == list(range(40))
    assert len(chunks) >= 12  # 10 ms tasks: chunks of one or two tasks, for balance
    chunks.clear()
    assert list(pool.map(square, range(100), chunksize=30)) == [i * i for i in range(100)]
    assert len(chunks) == 4  # a given chunksize is kept


def test_imap_reads_a_generator_lazily(pool):
    pulled = []

    def items():
        for i in range(1000):
            pulled.append(i)
            yield i

    it = pool.imap(square, items(), chunksize=2)
    assert next(it) == 0
    # A window of two chunks per worker, refilled once the first result is in: far from the
    # whole input.
    assert len(pulled) <= 2 * (2 * 2) * 2
    assert list(it) == [i * i for i in range(1, 1000)]
    assert sorted(pool.imap_unordered(square, items())) == sorted(i * i for i in range(1000))


def test_imap_generator_that_raises_reaches_the_consumer(pool):
    def items():
        yield from range(5)
        raise KeyError("bad input")

    with pytest.raises(KeyError):
        list(pool.imap(square, items(), chunksize=2))
    with pytest.raises(KeyError):
        list(pool.imap_unordered(square, items()))
    assert pool.submit(square, 3).result(HANG) == 9


def test_map_timeout_and_early_close_stop_the_work(pool):
    it = pool.map(sleep_then, [HANG] * 4, range(4), timeout=0.2)
    with pytest.raises(TimeoutError):
        next(it)
    it = pool.imap(sleep_then, [(0, 0)] * 3)  # wrong arity: fails in the worker
    with pytest.raises(TypeError):
        next(it)
    assert list(pool.map(square, range(10))) == [i * i for i in range(10)]


def test_shutdown_cancel_futures_cancels_queued(make_pool):
    pool = make_pool(max_workers=1)
    first = pool.submit(sleep_then, 0.5, "first")
    queued = [pool.submit(square, i) for i in range(5)]
    while not first.running():  # it must have started, or it would be cancelled too
        time.sleep(0.01)
    pool.shutdown(wait=True, cancel_futures=True)
    assert first.result(HANG) == "first"
    assert all(f.cancelled() for f in queued)


def test_functions_from_main_work_in_submit_and_map(tmp_path, start_method):
    import subprocess

    script = tmp_path / "main_script.py"
    script.write_text(
        "from plait.processes import ProcessPool\n"
        "def triple(x):\n"
        "    return 3 * x\n"
        "if __name__ == '__main__':\n"
        f"    with ProcessPool(2, start_method={start_method!r}) as pool:\n"
        "        print(pool.submit(triple, 2).result(60), list(pool.map(triple, range(4))))\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "6 [0, 3, 6, 9]"


def test_ctrl_c_during_map_stops_the_running_tasks(tmp_path, start_method):
    import subprocess

    script = tmp_path / "interrupted.py"
    script.write_text(
        "import os, signal, sys, threading, time\n"
        "from plait.processes import ProcessPool\n"
        "def slow(directory):\n"
        "    open(os.path.join(directory, str(os.getpid())), 'w').close()\n"
        "    time.sleep(3600)\n"
        "if __name__ == '__main__':\n"
        "    directory = sys.argv[1]\n"
        f"    pool = ProcessPool(2, start_method={start_method!r})\n"
        "    def interrupt_when_both_run():\n"
        "        while len(os.listdir(directory)) < 2:\n"
        "            time.sleep(0.01)\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    threading.Thread(target=interrupt_when_both_run, daemon=True).start()\n"
        "    try:\n"
        "        with pool:\n"
        "            list(pool.map(slow, [directory] * 8, chunksize=1))\n"
        "    except KeyboardInterrupt:\n"
        "        alive = [p for p in os.listdir(directory) if os.path.exists(f'/proc/{p}')]\n"
        "        print('alive', len(alive))\n"
        "        sys.exit(0)\n"
        "    sys.exit(1)\n"
    )
    marks = tmp_path / "pids"
    marks.mkdir()
    # The 3600 s tasks must be stopped, not waited for: a hang fails through this timeout.
    out = subprocess.run(
        [sys.executable, str(script), str(marks)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["alive", "0"]


def test_a_crash_among_prefetched_fast_tasks_fails_only_itself(pool):
    before = [pool.submit(square, i) for i in range(300)]
    bad = pool.submit(die, 3)
    after = [pool.submit(square, i) for i in range(300)]
    with pytest.raises(WorkerCrashed):
        bad.result(HANG)
    assert [f.result(HANG) for f in before] == [i * i for i in range(300)]
    assert [f.result(HANG) for f in after] == [i * i for i in range(300)]


def test_progress_bar_on_stderr(pool, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the built-in bar, whether or not tqdm exists
    assert list(pool.map(square, range(100), progress="always")) == [i * i for i in range(100)]
    assert list(pool.imap(square, range(10), progress="always")) == [i * i for i in range(10)]
    err = capsys.readouterr().err
    assert "100/100 100%" in err
    assert "10/10 100%" in err


def test_progress_true_is_silent_when_stderr_is_not_a_terminal(pool, capsys):
    assert sorted(pool.imap_unordered(square, range(20), progress=True)) == sorted(i * i for i in range(20))
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="progress"):
        pool.map(square, range(3), progress="loud")


# --- faults while pickling and unpickling (loky's and CPython's executor deadlock scenarios) ---

PARENT = os.getpid()


# The parent's pid travels inside the pickle: a worker importing this module gets its own PARENT.


def _raise_unless_parent(message, parent):
    if os.getpid() != parent:
        raise RuntimeError(message)
    return message


def _raise_in_parent(message, parent):
    if os.getpid() == parent:
        raise RuntimeError(message)
    return message


def _crash_unless_parent(parent):
    if os.getpid() != parent:
        os._exit(11)
    return "parent"


class FailsInWorkerOnLoad:
    """Unpickling it in a worker raises."""

    def __reduce__(self):
        return (_raise_unless_parent, ("cannot unpickle in the worker", PARENT))


class CrashesWorkerOnLoad:
    """Unpickling it in a worker kills the worker."""

    def __reduce__(self):
        return (_crash_unless_parent, (PARENT,))


class FailsInParentOnLoad:
    """Unpickling it in the parent raises (made in the worker from the parent's pid)."""

    def __init__(self, parent):
        self.parent = parent

    def __reduce__(self):
        return (_raise_in_parent, ("cannot unpickle in the parent", self.parent))


class CrashesWhenPickled:
    """Pickling it (in the worker, as a result) kills the worker."""

    def __reduce__(self):
        os._exit(12)


def identity(x):
    return x


def make(cls_name, *args):
    return globals()[cls_name](*args)


def test_error_unpickling_arguments_in_the_worker_fails_that_task(pool):
    # BrokenProcessPool as with ProcessPoolExecutor (a RuntimeError), for that task only.
    broken = concurrent.futures.process.BrokenProcessPool
    with pytest.raises(broken, match="cannot unpickle in the worker"):
        pool.submit(identity, FailsInWorkerOnLoad()).result(HANG)
    assert pool.submit(square, 3).result(HANG) == 9


def test_crash_unpickling_arguments_in_the_worker_fails_that_task(pool):
    with pytest.raises(WorkerCrashed) as info:
        pool.submit(identity, CrashesWorkerOnLoad()).result(HANG)
    assert info.value.exitcode == 11
    assert pool.submit(square, 3).result(HANG) == 9


def test_error_unpickling_the_result_in_the_parent_fails_that_task(pool):
    broken = concurrent.futures.process.BrokenProcessPool
    with pytest.raises(broken, match="cannot unpickle in the parent") as info:
        pool.submit(make, "FailsInParentOnLoad", os.getpid()).result(HANG)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert [f.result(HANG) for f in [pool.submit(square, i) for i in range(5)]] == [0, 1, 4, 9, 16]


def test_crash_pickling_the_result_in_the_worker_fails_that_task(pool):
    with pytest.raises(WorkerCrashed) as info:
        pool.submit(make, "CrashesWhenPickled").result(HANG)
    assert info.value.exitcode == 12
    assert pool.submit(square, 3).result(HANG) == 9


def test_a_pool_dropped_without_shutdown_stops_its_workers(start_method):
    import gc

    pool = ProcessPool(max_workers=1, start_method=start_method)
    assert pool.submit(square, 2).result(HANG) == 4
    dispatcher = pool._dispatcher
    del pool
    gc.collect()
    dispatcher.join(HANG)
    assert not dispatcher.is_alive()


class Counter:
    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


def test_bound_methods_and_closures_see_their_current_state(pool):
    c = Counter(1)
    assert pool.submit(c.get).result(HANG) == 1
    c.value = 2
    assert pool.submit(c.get).result(HANG) == 2, "not a stale copy from the first submit"
    box = [10]
    assert pool.submit(lambda: box[0]).result(HANG) == 10
    box[0] = 20
    assert pool.submit(lambda: box[0]).result(HANG) == 20


def test_cancel_running_stops_queued_and_running_tasks(pool):
    # Queued tasks are cancelled in place; running ones have their workers killed.
    futures = [pool.submit(sleep_then, 0.2, i) for i in range(4)]
    assert all(pool.cancel_running(f) or f.done() for f in futures)
    for f in futures:
        with pytest.raises(concurrent.futures.CancelledError):
            f.result(HANG)


def test_fork_start_method_runs_tasks_and_survives_crashes():
    with ProcessPool(max_workers=2, start_method="fork") as pool:
        assert pool.submit(square, 6).result(HANG) == 36
        assert pool.submit(lambda x: x + 1, 1).result(HANG) == 2
        with pytest.raises(WorkerCrashed):
            pool.submit(die, 4).result(HANG)
        assert list(pool.map(square, range(10))) == [i * i for i in range(10)]
        assert pool.submit(pid).result(HANG) != os.getpid()


def _mixed(i):
    return {300: True, 400: 2**70, 500: 0.5}.get(i, i)


def test_numeric_results_keep_their_types(pool):
    ints = list(pool.map(square, range(1000)))
    assert ints == [i * i for i in range(1000)] and all(type(x) is int for x in ints)
    floats = list(pool.map(float, range(1000)))
    assert floats == [float(i) for i in range(1000)] and all(type(x) is float for x in floats)
    specials = [float("inf"), -0.0, float("nan")] * 100
    got = list(pool.map(float, specials))
    assert [str(x) for x in got] == [str(x) for x in specials]
    mixed = list(pool.map(_mixed, range(1000), chunksize=1000))
    assert mixed == [_mixed(i) for i in range(1000)]
    assert type(mixed[300]) is bool and type(mixed[500]) is float


# --- start_method="forkserver": what differs from spawn ----------------------------------------


def parent_pid(_=None):
    return os.getppid()


def _running(pid):
    """Whether process ``pid`` exists and has not exited (a zombie has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _wait_until_gone(pids):
    """The pids still running after a bounded wait (processes that are not our children)."""
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        alive = [p for p in pids if _running(p)]
        if not alive:
            return []
        time.sleep(0.02)
    return alive


def test_forkserver_workers_are_forked_by_the_server():
    with ProcessPool(max_workers=2, start_method="forkserver") as pool:
        parents = {pool.submit(parent_pid).result(HANG) for _ in range(4)}
        server = pool._forkserver.pid  # started with the first worker
        assert parents == {server}
        assert server not in (os.getpid(), pool.submit(pid).result(HANG))


def test_forkserver_exit_status_reaches_worker_crashed():
    # The workers are not our children: their exit status comes from the server.
    with ProcessPool(max_workers=1, start_method="forkserver") as pool:
        with pytest.raises(WorkerCrashed, match="exit code 3") as info:
            pool.submit(die, 3).result(HANG)
        assert (info.value.exitcode, info.value.signal) == (3, None)
        with pytest.raises(WorkerCrashed, match="SIGKILL") as info:
            pool.submit(kill_self, signal.SIGKILL).result(HANG)
        assert (info.value.exitcode, info.value.signal) == (None, signal.SIGKILL)
        with pytest.raises(WorkerCrashed, match="SIGSEGV") as info:
            pool.submit(segfault).result(HANG)
        assert (info.value.exitcode, info.value.signal) == (None, signal.SIGSEGV)


def test_no_forkserver_or_worker_is_left_after_shutdown():
    pool = ProcessPool(max_workers=2, start_method="forkserver", max_tasks_per_worker=1)
    workers = {pool.submit(pid).result(HANG) for _ in range(4)}
    server = pool._forkserver.pid
    pool.shutdown(wait=True)
    assert pool._forkserver.pid is None
    # The server was our child (the autouse fixture checks it was reaped); the workers were its.
    assert [p for p in [server, *workers] if _running(p)] == []


def test_a_killed_forkserver_is_replaced():
    with ProcessPool(max_workers=1, start_method="forkserver") as pool:
        assert pool.submit(square, 2).result(HANG) == 4
        server = pool._forkserver.pid
        os.kill(server, signal.SIGKILL)
        # The worker it started goes on serving tasks...
        assert pool.submit(square, 3).result(HANG) == 9
        # ...and when it dies, a new server starts its replacement. Its exit status died with
        # the old server: the crash is still reported, for that task only.
        with pytest.raises(WorkerCrashed, match="exit status unknown") as lost:
            pool.submit(die, 5).result(HANG)
        assert lost.value.exitcode is None and lost.value.signal is None
        assert pool.submit(square, 4).result(HANG) == 16
        assert pool.submit(parent_pid).result(HANG) == pool._forkserver.pid != server
        with pytest.raises(WorkerCrashed) as info:
            pool.submit(die, 6).result(HANG)
        assert info.value.exitcode == 6


def test_a_forkserver_that_cannot_start_breaks_the_pool(monkeypatch):
    from plait.processes import _forkserver

    monkeypatch.setattr(_forkserver.ForkServer, "module", "plait._no_such_module")
    with ProcessPool(max_workers=1, start_method="forkserver") as pool:
        with pytest.raises(BrokenProcessPool, match="forkserver process exited with code 1"):
            pool.submit(square, 1).result(HANG)
        with pytest.raises(BrokenProcessPool):
            pool.submit(square, 2).result(HANG)


def _run_script(tmp_path, body):
    import subprocess

    script = tmp_path / "forkserver_script.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "from plait.processes import ProcessPool\n"
        "def pid(_=None):\n"
        "    return os.getpid()\n"
        "def sleep_forever():\n"
        "    time.sleep(3600)\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPool(2, start_method='forkserver')\n"
        "    workers = {pool.submit(pid).result(60) for _ in range(10)}\n"
        "    print(pool._forkserver.pid, *workers, flush=True)\n" + body
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    return out, [int(p) for p in out.stdout.split()]


def test_the_forkserver_and_its_workers_exit_when_the_pool_process_dies(tmp_path):
    # A running task keeps its worker from noticing: the server kills it when its pool is gone.
    out, pids = _run_script(
        tmp_path,
        "    pool.submit(sleep_forever)\n    time.sleep(0.2)\n    os.kill(os.getpid(), signal.SIGKILL)\n",
    )
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert len(pids) >= 2
    assert _wait_until_gone(pids) == []


def test_interpreter_exit_without_shutdown_stops_the_forkserver(tmp_path):
    out, pids = _run_script(tmp_path, "    sys.exit(0)\n")
    assert out.returncode == 0, out.stderr
    assert [p for p in pids if _running(p)] == [], "stopped and reaped before the interpreter exited"


def test_the_backend_seam():
    from plait import _backend

    with ProcessPool(1) as pool:
        assert _backend.check(pool._core) is pool._core
    with pytest.raises(
        TypeError, match="not a ProcessPool backend: no cancel_running, run_dispatcher, run_completer"
    ):
        _backend.check(types.SimpleNamespace(submit=print, shutdown=print))


def test_a_map_started_before_shutdown_runs_to_the_end():
    with ProcessPool(2) as pool:
        it = pool.map(square, range(2000))
        unordered = pool.imap_unordered(square, list(range(300)))
    assert list(it) == [i * i for i in range(2000)]
    assert sorted(unordered) == sorted(i * i for i in range(300))


def test_a_generator_waiting_on_the_pool_does_not_block_it(pool):
    slow = pool.submit(sleep_then, 0.3, "slow")

    def items():
        yield 1
        assert slow.result(HANG) == "slow"  # needs the pool to complete futures meanwhile
        yield 2

    assert list(pool.imap(square, items())) == [1, 4]


def test_imap_read_ahead_is_bounded_by_what_is_consumed(pool):
    pulled = []

    def items():
        for i in range(300):
            pulled.append(i)
            yield i

    consumed = 0
    for _ in pool.imap(square, items(), chunksize=2):
        consumed += 1
        # Two chunks per worker ahead of the consumer, plus the one being read.
        assert len(pulled) <= consumed + 2 * (2 * 2 + 1)
    assert consumed == 300


def test_an_input_error_comes_after_the_results_before_it(pool):
    def items():
        yield from range(4)
        raise KeyError("bad input")

    for method in (pool.imap, pool.imap_unordered):
        got = []
        with pytest.raises(KeyError):
            for x in method(square, items(), chunksize=1):
                got.append(x)
        assert sorted(got) == [0, 1, 4, 9]


class _HeldImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``plait_test_held_module``; in the test process, the import waits for ``release``."""

    name = "plait_test_held_module"

    def __init__(self):
        self.parent = os.getpid()
        self.started = threading.Event()
        self.release = threading.Event()

    def find_spec(self, name, path, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name == self.name else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        if os.getpid() == self.parent:
            self.started.set()
            self.release.wait(HANG)
        module.value = 42


def import_held_module():
    return importlib.import_module(_HeldImport.name).value


def test_fork_worker_started_during_an_import_in_another_thread_can_import_it():
    """A worker forked while another thread is importing a module gets that module afresh
    instead of waiting forever for the import lock of a thread that does not exist there."""
    finder = _HeldImport()
    sys.meta_path.insert(0, finder)
    importer = threading.Thread(target=importlib.import_module, args=(finder.name,))
    try:
        importer.start()
        assert finder.started.wait(HANG)
        with ProcessPool(2, multiprocessing.get_context("fork")) as pool:
            assert pool.submit(import_held_module).result(HANG) == 42
    finally:
        finder.release.set()
        importer.join(HANG)
        sys.meta_path.remove(finder)
        sys.modules.pop(finder.name, None)


def test_a_pool_that_cannot_start_its_threads_is_broken(monkeypatch):
    """As ProcessPoolExecutor during interpreter finalization (gh-109047): no new thread means a
    broken pool whose submits raise BrokenProcessPool, not a half-made pool."""
    original = threading.Thread.start
    started = []

    def start_one(thread):
        if started:
            raise RuntimeError("can't create new thread at interpreter shutdown")
        started.append(thread)
        original(thread)

    monkeypatch.setattr(threading.Thread, "start", start_one)
    pool = ProcessPool(2)
    monkeypatch.undo()
    try:
        with pytest.raises(BrokenProcessPool, match="could not start its threads"):
            pool.submit(square, 2)
        with pytest.raises(concurrent.futures.process.BrokenProcessPool):
            list(pool.map(square, [1, 2]))
    finally:
        pool.shutdown()
    assert not started[0].is_alive()
