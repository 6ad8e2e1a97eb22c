"""CPython's own ``Lib/test/test_concurrent_futures.py`` run against ``plait.threads.ThreadPool``.

Every thread-pool test class of the CPython suite is subclassed here with
``executor_type = ThreadPool``. ``FutureTests`` runs against ``plait._pool.Future``.

Test bodies are CPython's. They are re-bound to module globals in which
``futures.ThreadPoolExecutor`` is ``ThreadPool``, ``Future`` is plait's Future and
``create_future`` builds a plait Future through its public methods. Without that, the tests that
name ``futures.ThreadPoolExecutor`` or ``Future()`` directly would quietly test the stdlib.

A test is skipped only when it inspects a private attribute of ``ThreadPoolExecutor`` or
``Future`` that plait does not have, or needs something else that plait does not claim to copy.
Each skip reason names what the test relies on. A test that fails because of a plait bug is
marked ``expectedFailure``, with a comment naming the bug.

Where the suite comes from: ``from test import test_concurrent_futures``. Some CPython builds
(this machine's 3.11.7 among them) ship ``Lib/test`` without that module. Then the module is
loaded from the path in ``$PLAIT_CPYTHON_CF_TESTS``, or else from a sibling CPython 3.11 or 3.10
install. 3.10.13's copy has the same thread-pool tests as 3.11's. The only differences are the
3.11-only ``ProcessPoolExecutor`` tests (``max_tasks_per_child``). From 3.12 CPython ships the
suite as a package (``test/test_concurrent_futures/``, one module per area); that layout is not
handled here, so those versions load the single-file copy the same way. When no copy is found,
the module is skipped.
"""

from __future__ import annotations

import concurrent.futures
import glob
import importlib.util
import logging
import os
import sys
import types
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


def _load_cpython_suite() -> types.ModuleType:
    try:
        from test import test_concurrent_futures

        if not hasattr(test_concurrent_futures, "__path__"):
            return test_concurrent_futures
        # 3.12+ split the suite into a package of modules (test_thread_pool, test_wait, ...),
        # each with its own globals, which the rebinding below does not handle: use a
        # single-file copy as on builds without one.
    except ImportError:
        pass
    candidates = [os.environ.get("PLAIT_CPYTHON_CF_TESTS", "")]
    versions = os.path.dirname(sys.base_prefix)  # e.g. ~/.pyenv/versions
    for minor in ("3.11", "3.10"):
        pattern = os.path.join(
            versions, f"{minor}*", "lib", f"python{minor}", "test", "test_concurrent_futures.py"
        )
        candidates += sorted(glob.glob(pattern), reverse=True)
    for path in candidates:
        if path and os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("_cpython_test_concurrent_futures", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return module
    raise unittest.SkipTest(
        "CPython's single-file test_concurrent_futures.py (3.10/3.11) is not installed (Lib/test "
        "without it, or 3.12+'s package layout only); set PLAIT_CPYTHON_CF_TESTS to its path"
    )


cf_tests = _load_cpython_suite()


# --- running CPython's test bodies against plait ---------------------------------------------


class _FuturesWithThreadPool(types.ModuleType):
    """``concurrent.futures`` with ``ThreadPoolExecutor`` replaced by plait's ``ThreadPool``."""

    ThreadPoolExecutor = ThreadPool

    def __getattr__(self, name):
        return getattr(concurrent.futures, name)


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


_PLAIT_GLOBALS = dict(vars(cf_tests), futures=_FuturesWithThreadPool("concurrent.futures"))

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


def _rebind(globals_: dict):
    """Class decorator: copy every inherited CPython test method with ``globals_`` as its globals."""

    def decorate(cls):
        for name in dir(cls):
            if not name.startswith("test") or name in cls.__dict__:
                continue  # helpers and setUp keep CPython's globals; overrides stay as written
            func = getattr(cls, name)
            if not isinstance(func, types.FunctionType) or func.__globals__ is not vars(cf_tests):
                continue
            copy = types.FunctionType(
                func.__code__, globals_, func.__name__, func.__defaults__, func.__closure__
            )
            copy.__kwdefaults__ = func.__kwdefaults__
            copy.__qualname__ = func.__qualname__
            copy.__dict__.update(func.__dict__)  # unittest's skip markers
            setattr(cls, name, copy)
        return cls

    return decorate


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


@_rebind(_PLAIT_GLOBALS)
class ThreadPoolInitializerTest(_ThreadPoolMixin, cf_tests.ThreadPoolInitializerTest):
    pass


@_rebind(_PLAIT_GLOBALS)
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


@_rebind(_PLAIT_GLOBALS)
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

    # test_del_shutdown, test_shutdown_no_wait and test_thread_names_assigned call
    # `executor.map(...)` and drop the result iterator: with plait that cancels the items not yet
    # started (BUG: discarded map() iterator cancels work, see test_map_submits_without_iteration).
    # They still pass: they only join the threads, or compare results they keep.

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
        """shutdown(wait=False, cancel_futures=True) still lets the running task finish at exit."""
        _rc, out, err = assert_python_ok(
            "-c",
            _CHILD_PRELUDE
            + "t = ThreadPool()\n"
            + "t.submit(sleep_and_print, .1, 'apple')\n"
            + "t.shutdown(wait=False, cancel_futures=True)\n",
        )
        self.assertFalse(err)
        self.assertEqual(out.strip(), b"apple")


_CHILD_PRELUDE = (
    "import sys, time\n"
    "from plait.threads import ThreadPool\n"
    "def sleep_and_print(t, msg):\n"
    "    time.sleep(t)\n"
    "    print(msg)\n"
    "    sys.stdout.flush()\n"
)
_SUBMIT_APPLE = "t.submit(sleep_and_print, 1.0, 'apple')\n"


@_rebind(_PLAIT_GLOBALS)
class ThreadPoolWaitTests(_ThreadPoolMixin, cf_tests.ThreadPoolWaitTests):
    pass


@_rebind(_PLAIT_GLOBALS)
class ThreadPoolAsCompletedTest(_ThreadPoolMixin, cf_tests.ThreadPoolAsCompletedTest):
    pass


# The same two suites with the module's ready-made futures (CANCELLED_FUTURE, SUCCESSFUL_FUTURE...)
# and the futures built by `Future()` as plait Futures too, so that wait() and as_completed() see
# nothing but plait futures.
@_rebind(_PLAIT_FUTURE_GLOBALS)
class ThreadPoolWaitTestsPlaitFutures(_ThreadPoolMixin, cf_tests.ThreadPoolWaitTests):
    pass


@_rebind(_PLAIT_FUTURE_GLOBALS)
class ThreadPoolAsCompletedTestPlaitFutures(_ThreadPoolMixin, cf_tests.ThreadPoolAsCompletedTest):
    pass


@_rebind(_PLAIT_GLOBALS)
class ThreadPoolExecutorTest(_ThreadPoolMixin, cf_tests.ThreadPoolExecutorTest):
    # test_map_submits_without_iteration passes, but only through timing. The 10 quick items
    # finish while map() is still starting workers, before the dropped iterator cancels the
    # rest. BUG: dropping a ThreadPool.map() iterator cancels the items not yet started.
    # tests/test_pool.py::test_discarded_map_iterator_still_runs_every_item reproduces it
    # deterministically.

    @unittest.skip(
        "forks 50 ProcessPoolExecutor(mp_context='fork') pools. It checks that the stdlib's "
        "private concurrent.futures.thread._global_shutdown_lock is re-initialised in the child "
        "(bpo-45021). plait has no such lock; test_fork_while_pool_busy_plait checks forking"
    )
    def test_hang_global_shutdown_lock(self):
        pass

    def test_fork_while_pool_busy_plait(self):
        """A fork while a plait pool keeps its worker busy leaves a child that can exit."""

        def submit(pool):
            try:
                pool.submit(submit, pool)
            except RuntimeError:  # the pool was shut down: stop resubmitting
                pass

        with self.executor_type(1) as pool:
            pool.submit(submit, pool)
            for _ in range(5):
                with concurrent.futures.ProcessPoolExecutor(
                    1, mp_context=cf_tests.mp.get_context("fork")
                ) as workers:
                    workers.submit(tuple).result()


@_rebind(_PLAIT_FUTURE_GLOBALS)
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
        import threading

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
