"""The process pool's fault suite on the cluster backends (plait.backends): Dask distributed on a
LocalCluster(n_workers=2, threads_per_worker=1, processes=True), and Ray behind the `ray` marker.

The scenarios are tests/test_processes.py's own (re-bound below, so they run here with this
module's `pool` and `make_pool` fixtures): a crash, SIGKILL, `os._exit`, a segfault, timeouts,
unpicklable arguments and results, a raising initializer, cancels, maps over lazy inputs that
raise. Each must fail only its task; the cluster keeps working after each; no process of a pool
outlives it. The tests after them are about the clusters themselves.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import sys
import threading
import time
import types
import uuid

import pytest
import test_processes as local
from test_processes import HANG, die, pid, sleep_then, square

from plait import WorkerCrashed
from plait.processes import Pool, ProcessPool, share

# The scenarios of the local suite that run unchanged on every backend.
SCENARIOS = [
    "test_submit_result_and_kwargs",
    "test_futures_are_concurrent_futures",
    "test_exception_carries_the_worker_traceback",
    "test_lambdas_and_closures_travel_by_value",
    "test_a_crash_fails_only_its_task",
    "test_sys_exit_in_a_task_fails_that_task_only",
    "test_task_timeout_kills_and_replaces_the_worker",
    "test_per_task_timeout_through_options",
    "test_cancel_queued_and_running",
    "test_cancel_running_stops_queued_and_running_tasks",
    "test_unpicklable_argument_fails_that_task_with_the_picklers_error",
    "test_unpicklable_result_fails_that_task",
    "test_function_missing_in_the_worker_fails_that_task",
    "test_use_after_shutdown_raises",
    "test_initializer_runs_in_every_worker",
    "test_failing_initializer_breaks_the_pool",
    "test_hundred_failures_among_hundred_successes",
    "test_raising_done_callback_does_not_break_the_pool",
    "test_map_generator_that_raises_leaves_the_pool_usable",
    "test_map_order_chunks_and_errors",
    "test_imap_imap_unordered_starmap",
    "test_chunk_sizes_adapt_to_the_task_duration",
    "test_imap_reads_a_generator_lazily",
    "test_imap_generator_that_raises_reaches_the_consumer",
    "test_map_timeout_and_early_close_stop_the_work",
    "test_shutdown_cancel_futures_cancels_queued",
    "test_a_crash_among_prefetched_fast_tasks_fails_only_itself",
    "test_progress_bar_on_stderr",
    "test_progress_true_is_silent_when_stderr_is_not_a_terminal",
    "test_error_unpickling_arguments_in_the_worker_fails_that_task",
    "test_crash_unpickling_arguments_in_the_worker_fails_that_task",
    "test_error_unpickling_the_result_in_the_parent_fails_that_task",
    "test_crash_pickling_the_result_in_the_worker_fails_that_task",
    "test_bound_methods_and_closures_see_their_current_state",
    "test_numeric_results_keep_their_types",
    "test_a_generator_waiting_on_the_pool_does_not_block_it",
    "test_imap_read_ahead_is_bounded_by_what_is_consumed",
    "test_an_input_error_comes_after_the_results_before_it",
]
for _name in SCENARIOS:
    globals()[_name] = getattr(local, _name)

# Marks every process this module's clusters start (their workers inherit it, and so do the
# plait workers they start): how the checks below find them, and no other run's.
MARK = f"PLAIT_TEST_CLUSTER={uuid.uuid4().hex}"


def _marked_processes(command_part: str = "") -> list[int]:
    """Live processes (not zombies) carrying this module's mark, whose command line holds
    ``command_part``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if MARK.encode() not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z" and command_part in cmdline:
            found.append(int(entry))
    return found


def _start_dask():
    distributed = pytest.importorskip("distributed", reason="dask distributed is not installed")
    key, _, value = MARK.partition("=")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # loopback, a free port (8787 may be taken)
        env={key: value},
    )
    client = distributed.Client(cluster)
    # The client's lazily made helpers (its future-callback thread, its connections), made now
    # rather than inside the first test that uses them.
    warm = client.submit(abs, -1, pure=False)
    done = threading.Event()
    warm.add_done_callback(lambda _: done.set())
    assert done.wait(HANG) and warm.result() == 1
    client.run(os.getpid)
    client.scatter(b"x", broadcast=True).release()

    def stop():
        client.close()
        cluster.close()

    from plait.backends import Dask

    return (lambda: Dask(client)), stop


def _start_ray():
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install plait[ray])")
    key, _, value = MARK.partition("=")
    os.environ[key] = value
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    finally:
        del os.environ[key]

    from plait.backends import Ray

    # Ray cannot reach every worker process of a pool at shutdown: each stops its plait worker
    # once idle this long (the leak check below waits for it).
    return (lambda: Ray(idle_timeout=0.3)), ray.shutdown


@pytest.fixture(scope="module", params=["dask", pytest.param("ray", marks=pytest.mark.ray)])
def backend(request):
    """A backend factory on a cluster started once for the module; after the module, the cluster
    is closed and none of its processes is left."""
    make, stop = {"dask": _start_dask, "ray": _start_ray}[request.param]()
    try:
        with ProcessPool(backend=make()) as pool:  # the checks below can see the cluster's processes
            assert pool.submit(square, 2).result(HANG) == 4
            assert _marked_processes("plait.processes._worker"), "the cluster's processes lack the mark"
        yield make
    finally:
        stop()
        deadline = time.monotonic() + 30
        while _marked_processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _marked_processes(), "the cluster left processes behind"


@pytest.fixture
def make_pool(backend):
    """``make_pool(**options)``: a ProcessPool on the module's cluster, shut down after the test."""
    pools = []

    def make(**options):
        pools.append(ProcessPool(backend=backend(), **options))
        return pools[-1]

    yield make
    for p in pools:
        p.shutdown()


@pytest.fixture
def pool(make_pool):
    with make_pool(max_workers=2) as p:
        yield p


def _fds() -> dict[str, str]:
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return fds


# distributed's process-wide helper threads, each started once, on first use, and kept.
DASK_SINGLETONS = {"Dask-Offload_0", "Dask-Callback-Thread_0"}


@pytest.fixture(autouse=True)
def no_leaks():
    """This module's version of conftest's check: the client's and the in-process scheduler's
    connections come and go with the cluster's traffic, and the in-process nannies hold pipes to
    the worker processes they restart (sockets and pipes are not counted); the cluster's
    processes are checked by their mark: after every test, no plait worker of a pool is left on
    the cluster."""
    threads_before = {t.ident for t in threading.enumerate()}
    fds_before = _fds()
    yield
    deadline = time.monotonic() + 10
    while True:
        threads = [t for t in threading.enumerate() if t.ident not in threads_before]
        threads = [t for t in threads if t.name not in DASK_SINGLETONS]
        fds = {fd: target for fd, target in _fds().items() if fds_before.get(fd) != target}
        fds = {fd: target for fd, target in fds.items() if not target.startswith(("socket:", "pipe:"))}
        workers = _marked_processes("plait.processes._worker")
        if not threads and not fds and not workers:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not threads, f"leaked threads: {threads}"
    assert not workers, f"plait workers left on the cluster: {workers}"
    fds = {fd: target for fd, target in fds.items() if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not fds, f"leaked fds: {fds}"


# --- the clusters' own behaviour ------------------------------------------------------------


def test_a_crash_does_not_fail_the_tasks_queued_beside_it(make_pool):
    # Many tasks queued on the cluster at once (short tasks open the window), one crashes: it
    # fails alone, with no retry, and every task around it, queued on the same engine worker,
    # completes.
    with make_pool(max_workers=2) as pool:
        assert pool.submit(square, 2).result(HANG) == 4  # measured short: a deep window
        before = [pool.submit(sleep_then, 0.01, i) for i in range(20)]
        bad = pool.submit(die, 9)
        after = [pool.submit(sleep_then, 0.01, i) for i in range(20)]
        with pytest.raises(WorkerCrashed) as info:
            bad.result(HANG)
        assert info.value.exitcode == 9
        assert [f.result(HANG) for f in before + after] == list(range(20)) * 2


def test_engine_workers_survive_crashes_and_timeouts(make_pool):
    # The engine's own workers never die of a task: the crash and the timeout killed plait
    # workers, started inside them, and nothing else.
    with make_pool(max_workers=2) as pool:
        hosts = {pool.submit(os.getppid).result(HANG) for _ in range(10)}
        with pytest.raises(WorkerCrashed) as info:
            pool.submit(local.kill_self, signal.SIGKILL).result(HANG)
        assert info.value.signal == signal.SIGKILL
        with pytest.raises(TimeoutError):
            pool.options(timeout=0.3).submit(sleep_then, HANG, 0).result(HANG)
        after = {pool.submit(os.getppid).result(HANG) for _ in range(10)}
    assert after <= hosts  # the same engine workers, none replaced


def test_map_of_a_lazy_unsized_iterable_streams(pool):
    pulled = []

    def items():
        for i in range(2000):
            pulled.append(i)
            yield i

    consumed = 0
    for _ in pool.imap(square, items(), chunksize=10):
        consumed += 1
        assert len(pulled) <= consumed + 10 * (2 * 2 + 1)  # a window of chunks, never the input
    assert consumed == 2000


def test_share_publishes_once_and_tasks_get_a_read_only_view(pool):
    np = pytest.importorskip("numpy")
    data = np.arange(200_000, dtype=np.float64)
    table = share(data)
    assert list(pool.map(local.identity, [1, 2])) == [1, 2]
    sums = [pool.submit(np.sum, table) for _ in range(6)]
    assert [f.result(HANG) for f in sums] == [data.sum()] * 6
    assert pool.submit(_is_read_only, table).result(HANG) is True


def _is_read_only(array):
    return not array.flags.writeable


def test_large_arguments_and_results_travel(pool):
    np = pytest.importorskip("numpy")
    data = np.arange(300_000, dtype=np.float64)
    out = pool.submit(np.negative, data).result(HANG)
    assert out.dtype == data.dtype and (out == -data).all()
    blob = os.urandom(3 << 20)  # above the size sent inside a task: published on its own
    assert pool.submit(len, blob).result(HANG) == len(blob)


def test_pool_api_on_the_cluster(backend):
    with Pool(2, backend=backend()) as p:
        assert p.map(square, range(10)) == [i * i for i in range(10)]
        with pytest.raises(WorkerCrashed):
            p.apply_async(die, (3,)).get(HANG)
        assert p.apply(square, (6,)) == 36
        assert sorted(p.imap_unordered(square, iter(range(8)))) == [i * i for i in range(8)]


def test_tasks_run_on_the_cluster_not_here(pool):
    assert os.getpid() not in {pool.submit(pid).result(HANG) for _ in range(4)}


def test_cancelled_queued_task_never_runs(make_pool):
    with make_pool(max_workers=1) as pool:
        first = pool.submit(sleep_then, 0.3, "first")
        queued = pool.submit(square, 3)
        assert queued.cancel()
        assert first.result(HANG) == "first"
        with pytest.raises(concurrent.futures.CancelledError):
            queued.result(0)


def test_a_lost_engine_worker_fails_at_most_the_task_it_ran(make_pool):
    # The engine's own worker process dies (its machine, a kill from outside): the tasks it held
    # or was being sent run elsewhere, the task it ran is rerun by the engine (its retries for
    # lost workers; past them, WorkerCrashed), and the pool goes on.
    with make_pool(max_workers=2) as pool:
        assert pool.submit(square, 2).result(HANG) == 4  # measured short: a deep window
        futures = [pool.submit(sleep_then, 0.05, i) for i in range(40)]
        victim = pool.submit(os.getppid).result(HANG)  # an engine worker running our tasks
        os.kill(victim, signal.SIGKILL)
        crashed = [i for i, f in enumerate(futures) if isinstance(f.exception(HANG), WorkerCrashed)]
        assert len(crashed) <= 1, crashed
        assert [f.result() for i, f in enumerate(futures) if i not in crashed] == [
            i for i in range(40) if i not in crashed
        ]
        assert pool.submit(square, 3).result(HANG) == 9
        assert victim not in {pool.submit(os.getppid).result(HANG) for _ in range(4)}


# --- making backends --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resource_tracker():
    """multiprocessing's resource tracker (a process, and a pipe to it), which a LocalCluster
    starts on first use and which then stays for the whole run: started before the test's
    leak check, not inside it."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def test_backend_dask_starts_a_local_cluster_of_its_own_and_closes_it(resource_tracker):
    pytest.importorskip("distributed", reason="dask distributed is not installed")
    with ProcessPool(2, backend="dask") as pool:
        assert pool._max_workers == 2
        assert sorted(pool.map(square, range(10))) == [i * i for i in range(10)]
        with pytest.raises(WorkerCrashed):
            pool.submit(die, 5).result(HANG)
        client = pool._core._engine.client
        # The cluster starts its workers concurrently: one may not have joined the scheduler yet
        # when the tasks above ran on the other (seen on a loaded free-threaded run).
        client.wait_for_workers(2, timeout=HANG)
        workers = set(client.run(os.getpid).values())
        assert len(workers) == 2 and workers <= _children()  # its own, started from here
    assert not workers & _children()


def _children() -> set[int]:
    found = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                found.update(int(p) for p in f.read().split())
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return found


def test_without_the_engine_installed_the_error_names_the_extra(monkeypatch):
    from plait.backends import Dask, Ray

    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install plait\[dask\]"):
        Dask()
    with pytest.raises(ImportError, match=r"pip install plait\[ray\]"):
        Ray()
    with pytest.raises(ImportError, match=r"pip install plait\[dask\]"):
        ProcessPool(backend="dask")


def test_bad_backends_are_refused():
    with pytest.raises(ValueError, match="backend must be 'local', 'dask', 'ray'"):
        ProcessPool(backend="spark")
    with pytest.raises(TypeError, match=r"backend must be .* not int"):
        ProcessPool(backend=3)
    with pytest.raises(ValueError, match="starts its workers itself"):
        ProcessPool(backend="dask", start_method="fork")
    with ProcessPool(1, backend="local") as pool:
        assert pool.submit(square, 3).result(HANG) == 9


def test_dask_outcomes_of_lost_and_cancelled_futures():
    # What a Dask future that returned no outcome becomes: KilledWorker (its Dask worker died
    # allowed-failures + 1 times) fails that task with WorkerCrashed; a cancelled one cancels it.
    pytest.importorskip("distributed", reason="dask distributed is not installed")
    from distributed.scheduler import KilledWorker

    from plait.backends import _dask, _remote

    class Lost:
        status = "error"

        def __init__(self, exc):
            self.exc = exc

        def exception(self):
            return self.exc

    worker = types.SimpleNamespace(address="tcp://127.0.0.1:1")
    kind, payload, _, _ = _dask._failure(Lost(KilledWorker("plait-x-1", worker, 3)))
    assert kind == _remote.DONE_CRASHED and "Dask worker was lost" in payload[0]
    assert _dask._failure(Lost(concurrent.futures.CancelledError()))[0] == _remote.DONE_CANCELLED
    assert _dask._failure(Lost(OSError("scheduler gone")))[0] == _remote.DONE_BROKEN
