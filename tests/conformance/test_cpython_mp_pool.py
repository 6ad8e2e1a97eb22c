"""CPython's own pool tests (``Lib/test/_test_multiprocessing.py``) run against
``plait.processes.Pool``, for each start method: "spawn", "forkserver" and "fork".

The classes that test a pool alone are subclassed here, as CPython's ``test_multiprocessing_*``
packages do (``install_tests_in_module_dict``): ``_TestPool``, ``_TestPoolWorkerErrors``,
``_TestPoolWorkerLifetime`` with ``ProcessesMixin``, plus ``TestInitializers.test_pool_initializer``
(a manager proxy in ``initargs``) and ``TestPoolNotLeakOnFailure``. The test bodies are CPython's,
re-bound to module globals in which ``multiprocessing`` is ``multiprocessing`` with ``Pool``
replaced by plait's (on the class's start method): without that, the tests that name
``multiprocessing.Pool`` directly would quietly test the stdlib. ``self.Pool`` is plait's too.

The private attributes the tests read are emulated by plait's ``Pool``: ``_state``, ``_pool``
(objects with the workers' ``pid`` and ``is_alive()``) and ``_repopulate_pool()``. A test is
skipped only when it relies on the stdlib pool's implementation (a mock ``Process`` class) or
runs the stdlib's pool in a subprocess; each reason says which, and the behaviour it checks is
tested against plait here or in ``tests/test_mp_pool.py``.
One global is changed, with the reason: ``unpickleable_result`` (see ``_unpicklable_result``).
"""

from __future__ import annotations

import functools
import gc
import multiprocessing
import sys
import threading
import types
import unittest

import pytest
from test import _test_multiprocessing as mp_tests
from test.support import script_helper

from plait.processes import Barrier, Pool

# Each CPython test creates pools of 1-4 workers and runs tasks of up to ~1 s.
pytestmark = pytest.mark.timeout(60)

START_METHODS = ("spawn", "forkserver", "fork")


class _Multiprocessing(types.ModuleType):
    """``multiprocessing`` with ``Pool`` replaced by plait's ``Pool`` on one start method."""

    def __init__(self, method: str) -> None:
        super().__init__("multiprocessing")
        self.Pool = functools.partial(Pool, context=multiprocessing.get_context(method))

    def __getattr__(self, name: str) -> object:
        return getattr(multiprocessing, name)


def _unpicklable_result() -> object:
    """Stands for CPython's ``unpickleable_result``, which returns a lambda: plait sends what
    pickle cannot (lambdas, closures) with cloudpickle, so that result arrives intact. A lock
    pickles with neither, which is what the test is about (``MaybeEncodingError``, and no worker
    lost)."""
    return threading.Lock()


SUBPROCESS_STDLIB = (
    "runs `from multiprocessing import Pool` in a subprocess, i.e. the stdlib's pool; "
    "test_worker_finalization_via_atexit_handler_plait below runs the same script with plait's"
)
MOCK_CONTEXT = (
    "passes a mock context whose Process class fails to start: multiprocessing.Pool starts its "
    "workers with context.Process, plait's dispatcher does not (it takes only the start method "
    "from the context); tests/test_mp_pool.py checks that a pool whose workers cannot start "
    "leaks nothing"
)

SKIPS: dict[str, dict[str, str]] = {
    "_TestPoolWorkerLifetime": {
        "test_worker_finalization_via_atexit_handler_of_multiprocessing": SUBPROCESS_STDLIB,
    },
    "TestPoolNotLeakOnFailure": {"test_release_unused_processes": MOCK_CONTEXT},
}


def _wait(barrier: Barrier) -> None:
    barrier.wait(30)


class _WorkersStarted:
    """After ``setUpClass``: every worker of the class's pool has started (the dispatcher
    starts them in the background), so the per-test leak check (tests/conftest.py) counts them
    as there before the first test, as they are."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()  # type: ignore[misc]
        pool = getattr(cls, "pool", None)
        if pool is not None:
            barrier = Barrier(pool._processes)
            for result in [pool.apply_async(_wait, (barrier,)) for _ in range(pool._processes)]:
                result.get(60)


class _ManagerReleased:
    """After CPython's ``tearDown`` (which shuts the manager down): the manager's proxies and
    process object are dropped, so their sockets and pipes close now, not at the next collection
    (the per-test leak check would wait for them)."""

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        self.__dict__.pop("ns", None)
        self.__dict__.pop("mgr", None)
        gc.collect()
        multiprocessing.active_children()  # forgets the manager's finished process


def _rebind(cls: type, globals_: dict[str, object]) -> None:
    """Copy every CPython test method of ``cls`` with ``globals_`` as its globals."""
    for name in dir(cls):
        if not name.startswith("test"):
            continue
        func = getattr(cls, name)
        if not isinstance(func, types.FunctionType) or func.__globals__ is not vars(mp_tests):
            continue
        copy = types.FunctionType(func.__code__, globals_, func.__name__, func.__defaults__, func.__closure__)
        copy.__kwdefaults__ = func.__kwdefaults__
        copy.__qualname__ = func.__qualname__
        copy.__dict__.update(func.__dict__)
        setattr(cls, name, copy)


def _install(base: type, method: str, mixin: type | None, only: tuple[str, ...] = ()) -> None:
    """Define ``<Base>_<method>`` here: CPython's ``base`` against plait's Pool on ``method``."""
    proxy = _Multiprocessing(method)
    globals_ = dict(vars(mp_tests), multiprocessing=proxy, unpickleable_result=_unpicklable_result)
    bases = (
        (_WorkersStarted, base, mixin, unittest.TestCase) if mixin is not None else (_ManagerReleased, base)
    )
    name = f"{base.__name__.lstrip('_')}_{method}"
    namespace: dict[str, object] = {"__module__": __name__, "__qualname__": name}
    if mixin is not None:
        namespace["Pool"] = staticmethod(proxy.Pool)
    cls = type(name, bases, namespace)
    _rebind(cls, globals_)
    if only:
        for attr in dir(cls):
            if attr.startswith("test") and attr not in only:
                setattr(cls, attr, None)  # not a test of a pool
    for attr, reason in SKIPS.get(base.__name__, {}).items():
        setattr(cls, attr, unittest.skip(reason)(getattr(cls, attr)))
    # Pickled by reference (bound classmethods such as _test_traceback): must be found here.
    globals()[name] = cls


for _method in START_METHODS:
    for _base in (mp_tests._TestPool, mp_tests._TestPoolWorkerErrors, mp_tests._TestPoolWorkerLifetime):
        _install(_base, _method, mp_tests.ProcessesMixin)
    _install(mp_tests.TestInitializers, _method, None, only=("test_pool_initializer",))
_install(mp_tests.TestPoolNotLeakOnFailure, "spawn", None)
del _method, _base


class WorkerFinalizationPlait(unittest.TestCase):
    def test_worker_finalization_via_atexit_handler_plait(self):
        # CPython's test_worker_finalization_via_atexit_handler_of_multiprocessing (bpo-38744,
        # bpo-39360): a pool still referenced at interpreter exit, with plait's Pool.
        cmd = """if 1:
            from plait.processes import Barrier, Pool
            problem = None
            class A:
                def __init__(self):
                    self.pool = Pool(processes=1)
            def test():
                global problem
                problem = A()
                problem.pool.map(float, tuple(range(10)))
            if __name__ == "__main__":
                test()
        """
        rc, _out, err = script_helper.assert_python_ok("-c", cmd, __isolated=False)
        self.assertEqual(rc, 0)
        self.assertNotIn(b"Traceback", err)


def test_suites_come_from_this_interpreter():
    # The classes above are CPython's own, from the running interpreter's Lib/test.
    assert mp_tests.__file__.startswith(sys.base_prefix)
