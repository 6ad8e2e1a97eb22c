"""CPython's own ``test_concurrent_futures`` run against ``plait.threads.ThreadPool``.

Every thread-pool test class of the CPython suite is subclassed here with
``executor_type = ThreadPool``. ``FutureTests`` runs against ``plait._pool.Future``. The
process-pool classes run in ``test_cpython_futures_process.py``. ``_cf_suite`` loads the suite
(one file up to 3.11, a package from 3.12; where it comes from on builds without it: see there).

Test bodies are CPython's. They are re-bound to their modules' globals in which
``futures.ThreadPoolExecutor`` is ``ThreadPool``, ``Future`` is plait's Future and
``create_future`` builds a plait Future through its public methods. Without that, the tests that
name ``futures.ThreadPoolExecutor`` or ``Future()`` directly would quietly test the stdlib.

A test is skipped only when it inspects a private attribute of ``ThreadPoolExecutor`` or
``Future`` that plait does not have, or needs something else that plait does not claim to copy.
Each skip reason names what the test relies on. A test that fails because of a plait bug is
marked ``expectedFailure``, with a comment naming the bug.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import sys
import threading
import unittest
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    PENDING,
    RUNNING,
)

from test.support.script_helper import assert_python_ok

from plait._pool import Future as PlaitFuture
from plait.threads import ThreadPool

from ._cf_suite import FuturesNamespace, suite

cf_tests = suite()


# --- running CPython's test bodies against plait ---------------------------------------------


def _create_plait_future(state=PENDING, exception=None, result=None):
    """CPython's ``create_future``, built through the public API, not by assigning ``_state``."""
    f = PlaitFuture()
    if state == RUNNING:
        f.set_running_or_notify_cancel()
    elif state == CANCELLED:
        f.cancel()
    elif state == CANCELLED_AND_NOTIFIED:
        f.cancel()
        f.set_running_or_notify_cancel()
    elif state == FINISHED:
        f.set_running_or_notify_cancel()
        if exception is not None:
            f.set_exception(exception)
        else:
            f.set_result(result)
    assert f._state == state, (f._state, state)
    return f


_PLAIT_GLOBALS = {"futures": FuturesNamespace(ThreadPoolExecutor=ThreadPool)}

_PLAIT_FUTURE_GLOBALS = dict(
    _PLAIT_GLOBALS,
    Future=PlaitFuture,
    create_future=_create_plait_future,
    PENDING_FUTURE=_create_plait_future(state=PENDING),
    RUNNING_FUTURE=_create_plait_future(state=RUNNING),
    CANCELLED_FUTURE=_create_plait_future(state=CANCELLED),
    CANCELLED_AND_NOTIFIED_FUTURE=_create_plait_future(state=CANCELLED_AND_NOTIFIED),
    EXCEPTION_FUTURE=_create_plait_future(state=FINISHED, exception=OSError()),
    SUCCESSFUL_FUTURE=_create_plait_future(state=FINISHED, result=42),
)
_rebind_threads = cf_tests.rebind(**_PLAIT_GLOBALS)
_rebind_futures = cf_tests.rebind(**_PLAIT_FUTURE_GLOBALS)


class _StderrHandler(logging.Handler):
    """What ``logging.lastResort`` does: write to the *current* ``sys.stderr``.

    CPython's tests expect ``concurrent.futures`` errors on stderr, where ``logging.lastResort``
    prints them under unittest's runner. pytest installs handlers on the root logger, so
    ``lastResort`` stays silent. This handler puts the messages back on stderr.
    """

    def emit(self, record):
        sys.stderr.write(self.format(record) + "\n")


class _LogToStderr:
    def setUp(self):
        super().setUp()
        handler = _StderrHandler(logging.WARNING)
        logger = logging.getLogger("concurrent.futures")
        logger.addHandler(handler)
        self.addCleanup(logger.removeHandler, handler)


class _ThreadPoolMixin:
    executor_type = ThreadPool


# --- skip reasons ----------------------------------------------------------------------------

SUBPROCESS_IMPORTS_BY_NAME = (
    "the child script does `from concurrent.futures import <executor_type.__name__>` and "
    "`from test.test_concurrent_futures import sleep_and_print`, neither of which can name "
    "plait's ThreadPool; an adapted copy of this test runs as {adapted}"
)


# --- the test classes ------------------------------------------------------------------------


@_rebind_threads
class ThreadPoolInitializerTest(_ThreadPoolMixin, cf_tests.ThreadPoolInitializerTest):
    pass


@_rebind_threads
class ThreadPoolFailingInitializerTest(_ThreadPoolMixin, cf_tests.ThreadPoolFailingInitializerTest):
    @unittest.skip(
        "polls the private attribute ThreadPoolExecutor._broken until the pool breaks; plait keeps "
        "that state in Rust (tests/test_pool.py checks BrokenThreadPool from result() and submit())"
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
                    future.result()
            with self.assertRaises(concurrent.futures.BrokenExecutor):
                self.executor.submit(cf_tests.get_init_status)


@_rebind_threads
class ThreadPoolShutdownTest(_ThreadPoolMixin, cf_tests.ThreadPoolShutdownTest):
    @unittest.skip(
        "asserts the default thread name matches 'ThreadPoolExecutor-N_k'; plait's default "
        "prefix is 'ThreadPool-N' by design (_pool.py). test_thread_names_default_plait checks it"
    )
    def test_thread_names_default(self):
        pass

    def test_thread_names_default_plait(self):
        """CPython's test_thread_names_default, with plait's default prefix."""
        executor = self.executor_type(max_workers=5)
        executor.map(abs, range(-5, 5))
        threads = executor._threads
        del executor
        cf_tests.support.gc_collect()
        for t in threads:
            self.assertRegex(t.name, r"ThreadPool-\d+_[0-4]$")
            t.join()

    @unittest.skip(SUBPROCESS_IMPORTS_BY_NAME.format(adapted="test_interpreter_shutdown_plait"))
    def test_interpreter_shutdown(self):
        pass

    def test_interpreter_shutdown_plait(self):
        """At exit, a pool that was never shut down finishes its queued work."""
        _rc, out, err = assert_python_ok("-c", _CHILD_PRELUDE + "t = ThreadPool(5)\n" + _SUBMIT_APPLE)
        self.assertFalse(err)
        self.assertEqual(out.strip(), b"apple")

    @unittest.skip(SUBPROCESS_IMPORTS_BY_NAME.format(adapted="test_submit_after_interpreter_shutdown_plait"))
    def test_submit_after_interpreter_shutdown(self):
        pass

    def test_submit_after_interpreter_shutdown_plait(self):
        """A submit from an atexit hook that runs after the pools were shut down fails."""
        _rc, out, err = assert_python_ok(
            "-c",
            "import atexit\n"
            "@atexit.register\n"
            "def run_last():\n"
            "    try:\n"
            "        t.submit(id, None)\n"
            "    except RuntimeError:\n"
            "        print('runtime-error')\n"
            "        raise\n"
            "from plait.threads import ThreadPool\n"
            "t = ThreadPool(5)\n",
        )
        self.assertIn("RuntimeError: cannot schedule new futures", err.decode())
        self.assertEqual(out.strip(), b"runtime-error")

    @unittest.skip(SUBPROCESS_IMPORTS_BY_NAME.format(adapted="test_hang_gh83386_plait"))
    def test_hang_gh83386(self):
        pass

    def test_hang_gh83386_plait(self):
        """shutdown(wait=False) does not hang at exit with a running future (gh-83386)."""
        _rc, out, err = assert_python_ok(
            "-c",
            _CHILD_PRELUDE + "t = ThreadPool(max_workers=3)\n" + _SUBMIT_APPLE + "t.shutdown(wait=False)\n",
        )
        self.assertFalse(err)
        self.assertEqual(out.strip(), b"apple")

    @unittest.skip(SUBPROCESS_IMPORTS_BY_NAME.format(adapted="test_cancel_futures_wait_false_plait"))
    def test_cancel_futures_wait_false(self):
        pass

    def test_cancel_futures_wait_false_plait(self):
        """shutdown(wait=False, cancel_futures=True) lets the running task finish at exit and
        cancels the queued one.

        CPython's test accepts an empty output (gh-116682: the only task may be cancelled before a
        worker takes it, as cancel_futures allows; without the GIL the submitting thread usually
        gets to shutdown() first). This copy makes the order certain instead: shutdown() runs once
        the first task is running, so it must finish, and the second, queued behind it on the one
        worker, must be cancelled."""
        _rc, out, err = assert_python_ok(
            "-c",
            _CHILD_PRELUDE
            + "import threading\n"
            + "running = threading.Event()\n"
            + "def first():\n"
            + "    running.set()\n"
            + "    sleep_and_print(.1, 'apple')\n"
            + "t = ThreadPool(1)\n"
            + "t.submit(first)\n"
            + "queued = t.submit(sleep_and_print, 0, 'banana')\n"
            + "running.wait()\n"
            + "t.shutdown(wait=False, cancel_futures=True)\n"
            + "print('cancelled' if queued.cancelled() else 'not cancelled')\n",
        )
        self.assertFalse(err)
        self.assertEqual(out.split(), [b"cancelled", b"apple"])


_CHILD_PRELUDE = (
    "import sys, time\n"
    "from plait.threads import ThreadPool\n"
    "def sleep_and_print(t, msg):\n"
    "    time.sleep(t)\n"
    "    print(msg)\n"
    "    sys.stdout.flush()\n"
)
_SUBMIT_APPLE = "t.submit(sleep_and_print, 1.0, 'apple')\n"


@_rebind_threads
class ThreadPoolWaitTests(_ThreadPoolMixin, cf_tests.ThreadPoolWaitTests):
    pass


@_rebind_threads
class ThreadPoolAsCompletedTest(_ThreadPoolMixin, cf_tests.ThreadPoolAsCompletedTest):
    pass


# The same two suites with the module's ready-made futures (CANCELLED_FUTURE, SUCCESSFUL_FUTURE...)
# and the futures built by `Future()` as plait Futures too, so that wait() and as_completed() see
# nothing but plait futures.
@_rebind_futures
class ThreadPoolWaitTestsPlaitFutures(_ThreadPoolMixin, cf_tests.ThreadPoolWaitTests):
    pass


@_rebind_futures
class ThreadPoolAsCompletedTestPlaitFutures(_ThreadPoolMixin, cf_tests.ThreadPoolAsCompletedTest):
    pass


@_rebind_threads
class ThreadPoolExecutorTest(_ThreadPoolMixin, cf_tests.ThreadPoolExecutorTest):
    # test_map_submits_without_iteration drops the map() iterator at once: every item still
    # runs (tests/test_pool.py::test_discarded_map_iterator_still_runs_every_item checks it with
    # the worker held busy, so the items cannot all finish before the iterator is dropped).

    @unittest.skip(
        "forks 50 ProcessPoolExecutor(mp_context='fork') pools. It checks that the stdlib's "
        "private concurrent.futures.thread._global_shutdown_lock is re-initialised in the child "
        "(bpo-45021). plait has no such lock; test_fork_while_pool_busy_plait checks forking"
    )
    def test_hang_global_shutdown_lock(self):
        pass

    def test_fork_while_pool_busy_plait(self):
        """A fork while a plait pool keeps its worker busy leaves a child that runs and exits,
        and the plait pool goes on."""
        resubmitted = []

        def submit(pool):
            resubmitted.append(None)
            try:
                pool.submit(submit, pool)
            except RuntimeError:  # the pool was shut down: stop resubmitting
                pass

        timeout = cf_tests.support.SHORT_TIMEOUT
        fork = multiprocessing.get_context("fork")
        with self.executor_type(1) as pool:
            pool.submit(submit, pool)
            children = []
            for _ in range(5):
                with concurrent.futures.ProcessPoolExecutor(1, mp_context=fork) as workers:
                    children.append(workers.submit(os.getpid).result(timeout))
                # Leaving the `with` joined the forked child: it exited.
            self.assertEqual(len(children), 5)
            self.assertNotIn(os.getpid(), children)
            self.assertEqual(pool.submit(abs, -7).result(timeout), 7)  # the busy pool still serves
            self.assertGreater(len(resubmitted), 0)


@_rebind_futures
class FutureTests(_LogToStderr, cf_tests.FutureTests):
    @unittest.skip(
        "assigns the private attributes Future._state and Future._exception from another thread "
        "and calls _condition.notify_all() by hand (the stdlib's internal protocol); plait's "
        "Future keeps its state in Rust and exposes _state/_exception read-only"
    )
    def test_exception_with_success(self):
        pass

    def test_exception_with_success_public_api(self):
        """CPython's test_exception_with_success, completing the future with set_exception()."""
        f1 = _create_plait_future(state=PENDING)
        t = threading.Thread(target=f1.set_exception, args=(OSError(),))
        t.start()
        self.assertIsInstance(f1.exception(timeout=cf_tests.support.SHORT_TIMEOUT), OSError)
        t.join()


class CreatePlaitFutureTest(unittest.TestCase):
    """``_create_plait_future`` builds every state the CPython suite uses."""

    def test_states(self):
        for state in (PENDING, RUNNING, CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED):
            self.assertEqual(_create_plait_future(state=state)._state, state)
