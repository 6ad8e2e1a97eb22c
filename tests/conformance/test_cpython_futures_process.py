"""CPython's own ``test_concurrent_futures`` process-pool classes run against
``plait.processes.ProcessPool``.

Every process-pool test class of the CPython suite (for each start method: fork, forkserver,
spawn; ``ExecutorTest``, shutdown, initializer, wait, as_completed and the deadlock tests) is
subclassed here with ``executor_type = ProcessPool``; CPython's mixins pass
``mp_context=multiprocessing.get_context(method)``, so the start method reaches plait through
the stdlib's own parameter. ``_cf_suite`` loads the suite (one file up to 3.11, a package from
3.12).

Test bodies are CPython's, re-bound to their modules' globals in which
``futures.ProcessPoolExecutor`` is ``ProcessPool`` and ``futures.process._RemoteTraceback`` is
plait's ``RemoteTraceback`` (the class plait attaches as ``__cause__``, a subclass of the
stdlib's).

A test is skipped only when it inspects a private attribute of ``ProcessPoolExecutor``'s
implementation (``_processes``, ``_executor_manager_thread``, ``_call_queue``, ``_broken``,
multiprocessing's resource tracker), or when it checks a behaviour plait changes by design and
documents (a crashed worker fails only its task: the pool is not broken). Each skip reason says
which, and names the test here that checks plait's side. A test that fails because of a plait
bug is marked ``expectedFailure`` with a comment naming the bug.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import os
import signal
import sys
import time
import unittest

from test.support.script_helper import assert_python_ok

from plait.exceptions import RemoteTraceback
from plait.processes import ProcessPool, Queue

from ._cf_suite import FuturesNamespace, suite

cf_tests = suite()

# multiprocessing's helper processes live as long as this process (the resource tracker, which
# spawn-context Managers start; the forkserver of forkserver-context Managers): started before
# the tests, so that the leak check (tests/conftest.py) does not count them against a test.
from multiprocessing import forkserver, resource_tracker  # noqa: E402

resource_tracker.ensure_running()
forkserver.ensure_running()

_rebind = cf_tests.rebind(
    futures=FuturesNamespace(
        ProcessPoolExecutor=ProcessPool,
        process=FuturesNamespace.of(concurrent.futures.process, _RemoteTraceback=RemoteTraceback),
    )
)

# A test may wait this long for something that takes milliseconds.
TIMEOUT = 60.0


class _ProcessPoolMixin:
    executor_type = ProcessPool


# --- skip reasons ----------------------------------------------------------------------------

PROCESSES = (
    "reads ProcessPoolExecutor's private `_processes` (its dict of multiprocessing.Process "
    "objects); plait's workers are supervised in Rust and not exposed. {plait}"
)
SUBPROCESS_IMPORTS_BY_NAME = (
    "the child script does `from concurrent.futures import <executor_type.__name__>` and "
    "`from test.test_concurrent_futures... import sleep_and_print`, neither of which can name "
    "plait's ProcessPool; an adapted copy of this test runs as {adapted}"
)


def _report_pid_then_sleep(queue, seconds):
    queue.put(os.getpid())
    time.sleep(seconds)


# Child scripts for the adapted interpreter-shutdown tests: functions of __main__ travel to the
# workers by value.
_CHILD_PRELUDE = (
    "import sys, time, multiprocessing\n"
    "from plait.processes import ProcessPool\n"
    "def sleep_and_print(t, msg):\n"
    "    time.sleep(t)\n"
    "    print(msg)\n"
    "    sys.stdout.flush()\n"
)


# --- per-class adaptations (one mixin per CPython class, shared by the three start methods) ---


class _ExecutorTest:
    @unittest.skip(
        PROCESSES.format(plait="")
        + " It also expects a killed worker to break the whole pool, which plait by design does "
        "not (only that task fails): test_killed_child_plait checks plait's side"
    )
    def test_killed_child(self):
        pass

    def test_killed_child_plait(self):
        """A worker killed by a signal fails its task with BrokenProcessPool (the stdlib's
        class); the pool replaces the worker and goes on."""
        queue = Queue()
        future = self.executor.submit(_report_pid_then_sleep, queue, TIMEOUT)
        os.kill(queue.get(timeout=TIMEOUT), signal.SIGTERM)
        with self.assertRaises(concurrent.futures.process.BrokenProcessPool):
            future.result(timeout=TIMEOUT)
        self.assertEqual(self.executor.submit(pow, 2, 8).result(timeout=TIMEOUT), 256)

    @unittest.skip(PROCESSES.format(plait="tests/test_processes.py checks how many workers start"))
    def test_saturation(self):
        pass

    @unittest.skip(PROCESSES.format(plait="tests/test_processes.py checks worker reuse by pid"))
    def test_idle_process_reuse_one(self):
        pass

    @unittest.skip(PROCESSES.format(plait="tests/test_processes.py checks worker reuse by pid"))
    def test_idle_process_reuse_multiple(self):
        pass

    @unittest.skip(PROCESSES.format(plait="test_max_tasks_per_child_plait is this test without it"))
    def test_max_tasks_per_child(self):
        pass

    def test_max_tasks_per_child_plait(self):
        """CPython's test_max_tasks_per_child (3.11+) without its reads of `_processes`."""
        context = self.get_context()
        if context.get_start_method(allow_none=False) == "fork":
            with self.assertRaises(ValueError):
                self.executor_type(1, mp_context=context, max_tasks_per_child=3)
            return
        executor = self.executor_type(1, mp_context=context, max_tasks_per_child=3)
        try:
            original_pid = executor.submit(os.getpid).result(timeout=TIMEOUT)
            self.assertEqual(executor.submit(os.getpid).result(timeout=TIMEOUT), original_pid)
            self.assertEqual(executor.submit(os.getpid).result(timeout=TIMEOUT), original_pid)
            self.assertNotEqual(executor.submit(os.getpid).result(timeout=TIMEOUT), original_pid)
        finally:
            executor.shutdown()


class _ShutdownTest:
    @unittest.skip(
        "asserts that at least one of 50 tasks submitted just before shutdown(cancel_futures="
        "True) escapes the cancel. ProcessPoolExecutor's call queue marks the first "
        "max_workers + 1 tasks running before any worker takes them; plait marks a task running "
        "when it is sent to a worker, so while no worker is ready yet (this test runs right "
        "after the pool starts) all 50 are cancelled, as the documentation of cancel_futures "
        "allows. tests/test_processes.py::test_shutdown_cancel_futures_cancels_queued checks "
        "plait's side; test_cancel_futures_plait is this test with the workers ready"
    )
    def test_cancel_futures(self):
        pass

    def test_cancel_futures_plait(self):
        """CPython's test_cancel_futures once the workers are ready: tasks submitted while a
        worker was ready run, the others are cancelled, nothing fails."""
        for future in [self.executor.submit(os.getpid) for _ in range(2 * self.worker_count)]:
            future.result(timeout=TIMEOUT)
        fs = [self.executor.submit(time.sleep, 0.1) for _ in range(50)]
        self.executor.shutdown(cancel_futures=True)
        cancelled = [fut for fut in fs if fut.cancelled()]
        self.assertGreater(len(cancelled), 0)
        others = [fut for fut in fs if not fut.cancelled()]
        for fut in others:
            self.assertTrue(fut.done())
            self.assertIsNone(fut.exception())
        self.assertGreater(len(others), 0)

    @unittest.skip(PROCESSES.format(plait="tests/test_processes.py checks that no worker is left"))
    def test_processes_terminate(self):
        pass

    @unittest.skip(PROCESSES.format(plait="tests/test_processes.py checks that no worker is left"))
    def test_context_manager_shutdown(self):
        pass

    @unittest.skip(
        PROCESSES.format(plait="")
        + " and `_executor_manager_thread`, `_call_queue`: test_a_pool_dropped_without_shutdown_"
        "stops_its_workers in tests/test_processes.py checks plait's side"
    )
    def test_del_shutdown(self):
        pass

    @unittest.skip(
        PROCESSES.format(plait="")
        + " and `_executor_manager_thread`, `_call_queue`: test_shutdown_no_wait_plait checks it"
    )
    def test_shutdown_no_wait(self):
        pass

    def _child_script_run(self, script):
        """``assert_python_ok(-c script)``, with setUp's pool shut down first (the child script
        does not use it). Known plait bug (fork start method): a worker the pool forks while
        this process runs subprocess.Popen inherits Popen's exec-error pipe, and Popen then
        waits for that worker to exit, i.e. for the pool's shutdown."""
        self.executor.shutdown(wait=True)
        return assert_python_ok("-c", script)

    def test_shutdown_no_wait_plait(self):
        """shutdown(wait=False) returns at once; the queued tasks still finish."""
        executor = self.executor_type(5, mp_context=self.get_context())
        futures = [executor.submit(pow, 2, i) for i in range(5)]
        executor.shutdown(wait=False)
        self.assertEqual([f.result(timeout=TIMEOUT) for f in futures], [2**i for i in range(5)])
        executor.shutdown(wait=True)  # joins the pool's threads before the leak check

    @unittest.skip(SUBPROCESS_IMPORTS_BY_NAME.format(adapted="test_interpreter_shutdown_plait"))
    def test_interpreter_shutdown(self):
        pass

    def test_interpreter_shutdown_plait(self):
        """At exit, a pool that was never shut down finishes its queued work."""
        _rc, out, err = self._child_script_run(
            _CHILD_PRELUDE
            + "if __name__ == '__main__':\n"
            + f"    t = ProcessPool(5, multiprocessing.get_context({self.ctx!r}))\n"
            + "    t.submit(sleep_and_print, 1.0, 'apple')\n",
        )
        self.assertFalse(err)
        self.assertEqual(out.strip(), b"apple")

    @unittest.skip(SUBPROCESS_IMPORTS_BY_NAME.format(adapted="test_submit_after_interpreter_shutdown_plait"))
    def test_submit_after_interpreter_shutdown(self):
        pass

    def test_submit_after_interpreter_shutdown_plait(self):
        """A submit from an atexit hook that runs after the pools were shut down fails."""
        _rc, out, err = self._child_script_run(
            "import atexit, multiprocessing\n"
            "@atexit.register\n"
            "def run_last():\n"
            "    try:\n"
            "        t.submit(id, None)\n"
            "    except RuntimeError:\n"
            "        print('runtime-error')\n"
            "        raise\n"
            "from plait.processes import ProcessPool\n"
            "if __name__ == '__main__':\n"
            f"    t = ProcessPool(5, multiprocessing.get_context({self.ctx!r}))\n"
            "    t.submit(id, 42).result()\n",
        )
        self.assertIn("RuntimeError: cannot schedule new futures", err.decode())
        self.assertEqual(out.strip(), b"runtime-error")

    def test_hang_gh83386_plait(self):
        """shutdown(wait=False) does not hang at exit with a running future (gh-83386: CPython
        skips its test for ProcessPoolExecutor, which hangs; this is the same test for plait)."""
        _rc, out, err = self._child_script_run(
            _CHILD_PRELUDE
            + "if __name__ == '__main__':\n"
            + f"    t = ProcessPool(max_workers=3, mp_context=multiprocessing.get_context({self.ctx!r}))\n"
            + "    t.submit(sleep_and_print, 1.0, 'apple')\n"
            + "    t.shutdown(wait=False)\n",
        )
        self.assertFalse(err)
        self.assertEqual(out.strip(), b"apple")


def _put_ready(queue):
    queue.put("ready")


def _close_queue(queue):
    """Both ends of a multiprocessing.Queue's pipe, now (the leak check would count them)."""
    queue.close()
    queue.join_thread()
    queue._reader.close()
    queue._writer.close()


class _FailingInitializerTest:
    def setUp(self):
        # CPython's setUp passes a multiprocessing.Queue in `initargs` for the workers' log
        # records and leaves it open: closed after the test here.
        super().setUp()
        self.addCleanup(_close_queue, self.log_queue)

    # Not a CPython test: a multiprocessing.Queue in `initargs`, which multiprocessing hands only
    # to the children it starts (plait's workers get it with the setup message, its pipe along).
    def test_multiprocessing_queue_in_initargs(self):
        queue = self.get_context().Queue()
        try:
            with self.executor_type(1, self.get_context(), _put_ready, (queue,)) as executor:
                executor.submit(int).result(timeout=TIMEOUT)
            self.assertEqual(queue.get(timeout=TIMEOUT), "ready")
        finally:
            _close_queue(queue)

    @unittest.skip(
        "polls the private attribute ProcessPoolExecutor._broken until the pool breaks; plait "
        "keeps that state in Rust. test_initializer_without_private_attributes is this test "
        "with result() instead"
    )
    def test_initializer(self):
        pass

    def test_initializer_without_private_attributes(self):
        """CPython's test_initializer, with `executor._broken` polling replaced by `result()`."""
        with self._assert_logged("ValueError: error in initializer"):
            try:
                future = self.executor.submit(cf_tests.get_init_status)
            except concurrent.futures.BrokenExecutor:
                pass
            else:
                with self.assertRaises(concurrent.futures.BrokenExecutor):
                    future.result(timeout=TIMEOUT)
            with self.assertRaises(concurrent.futures.BrokenExecutor):
                self.executor.submit(cf_tests.get_init_status).result(timeout=TIMEOUT)


class _DeadlockTest:
    @unittest.skip(
        "reads ProcessPoolExecutor's private `_executor_manager_thread` to join it; "
        "test_shutdown_deadlock_pickle_plait is this test without it"
    )
    def test_shutdown_deadlock_pickle(self):
        pass

    def test_shutdown_deadlock_pickle_plait(self):
        """bpo-39104: a task that fails to pickle after shutdown(wait=False) fails alone, and
        the pool shuts down."""
        self.executor.shutdown(wait=True)
        with self.executor_type(max_workers=2, mp_context=self.get_context()) as executor:
            self.executor = executor
            executor.submit(id, 42).result(timeout=TIMEOUT)
            future = executor.submit(id, cf_tests.ErrorAtPickle())
            executor.shutdown(wait=False)
            with self.assertRaises(cf_tests.PicklingError):
                future.result(timeout=TIMEOUT)


class _Plain:
    pass


# CPython's class name (after the start method) -> plait's adaptations.
_KINDS = {
    "ProcessPoolExecutorTest": _ExecutorTest,
    "ProcessPoolShutdownTest": _ShutdownTest,
    "InitializerTest": _Plain,
    "FailingInitializerTest": _FailingInitializerTest,
    "WaitTest": _Plain,
    "AsCompletedTest": _Plain,
    "ExecutorDeadlockTest": _DeadlockTest,
}


def _define_classes() -> None:
    for method in ("Fork", "Forkserver", "Spawn"):
        for kind, adaptations in _KINDS.items():
            name = f"ProcessPool{method}{kind}"
            cpython_class = getattr(cf_tests, name, None)
            if cpython_class is None:  # not in this version's suite
                continue
            cls = type(name, (_ProcessPoolMixin, adaptations, cpython_class), {"__module__": __name__})
            globals()[name] = _rebind(cls)


_define_classes()


if sys.version_info >= (3, 12) and hasattr(cf_tests, "FailingInitializerResourcesTest"):

    class FailingInitializerResourcesTest(cf_tests.FailingInitializerResourcesTest):
        @unittest.skip(
            "checks that multiprocessing's private resource tracker (_resource_tracker._stop(), "
            "_exitcode) ends cleanly after a failing initializer; plait does not use the resource "
            "tracker (tests/conftest.py checks that no /dev/shm entry, fd or process is left)"
        )
        def test_spawn(self):
            pass

        @unittest.skip("as test_spawn")
        def test_forkserver(self):
            pass
