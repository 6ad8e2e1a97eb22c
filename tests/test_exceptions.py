"""plait.exceptions: every exception and warning listed, each a subclass of its stdlib peer."""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import concurrent.futures.thread
import multiprocessing.pool
import pickle
import queue
import subprocess
import sys

import pytest

import plait
from plait import exceptions


def _defined_classes() -> dict[str, type]:
    """Every class plait.exceptions defines, the lazily defined ones included."""
    names = set(dir(exceptions)) | set(exceptions._LAZY)
    found = {}
    for name in names:
        if name.startswith("_"):
            continue
        value = getattr(exceptions, name)
        if isinstance(value, type) and value.__module__ == exceptions.__name__:
            found[name] = value
    return found


def test_all_lists_every_exception_and_warning():
    classes = _defined_classes()
    raised = {n for n, c in classes.items() if issubclass(c, BaseException)}
    assert raised <= set(exceptions.__all__), sorted(raised - set(exceptions.__all__))
    named = ("WorkerCrashed", "TaskTimeout", "BrokenProcessPool", "RemoteTraceback", "SharedMemoryCorrupted")
    assert set(named) <= set(exceptions.__all__)
    for name in exceptions.__all__:
        assert getattr(exceptions, name) is classes[name]


def test_plait_reexports_the_exceptions_it_lists():
    for name in plait.__all__:
        if name not in ("__version__", "dump"):  # plait.dump is plait.debug.dump
            assert getattr(plait, name) is getattr(exceptions, name)
    assert plait.PlaitWarning is exceptions.PlaitWarning


def test_every_warning_derives_from_plait_warning():
    warnings = [c for c in _defined_classes().values() if issubclass(c, Warning)]
    assert {c.__name__ for c in warnings} >= {"PlaitWarning", "DeadlockWarning", "LockOrderWarning"}
    for cls in warnings:
        assert issubclass(cls, exceptions.PlaitWarning)
    # ... and keep the builtin category they had, so existing filters still match.
    assert issubclass(exceptions.DeadlockWarning, RuntimeWarning)
    assert issubclass(exceptions.LockOrderWarning, RuntimeWarning)


def test_every_error_derives_from_plait_error():
    for cls in _defined_classes().values():
        if (
            issubclass(cls, Exception)
            and not issubclass(cls, Warning)
            and cls is not exceptions.RemoteTraceback
        ):
            assert issubclass(cls, exceptions.PlaitError), cls


@pytest.mark.parametrize(
    ("name", "peers"),
    [
        ("WorkerCrashed", (concurrent.futures.process.BrokenProcessPool, concurrent.futures.BrokenExecutor)),
        ("BrokenProcessPool", (concurrent.futures.process.BrokenProcessPool,)),
        ("BrokenThreadPool", (concurrent.futures.thread.BrokenThreadPool,)),
        ("TaskTimeout", (TimeoutError, concurrent.futures.TimeoutError)),
        (
            "RemoteTraceback",
            (concurrent.futures.process._RemoteTraceback, multiprocessing.pool.RemoteTraceback),
        ),
        ("DeadlockError", (RuntimeError,)),
        ("OwnerDied", (RuntimeError,)),
        ("MessageTooLarge", (ValueError,)),
        ("SharedMemoryCorrupted", (RuntimeError,)),
        *([("ShutDown", (queue.ShutDown,))] if sys.version_info >= (3, 13) else []),  # type: ignore[attr-defined]
    ],
)
def test_each_exception_is_its_stdlib_peer(name, peers):
    cls = getattr(exceptions, name)
    for peer in peers:
        assert issubclass(cls, peer), (cls, peer)


def test_a_crash_is_caught_as_broken_process_pool_of_both():
    err = exceptions.WorkerCrashed("died", exitcode=3)
    for handler in (concurrent.futures.process.BrokenProcessPool, plait.BrokenProcessPool):
        try:
            raise err
        except handler as caught:
            assert caught.exitcode == 3


@pytest.mark.parametrize("name", sorted(exceptions._LAZY))
def test_lazy_classes_pickle_by_name(name):
    cls = getattr(exceptions, name)
    assert cls.__qualname__ == name
    assert pickle.loads(pickle.dumps(cls)) is cls
    again = pickle.loads(pickle.dumps(cls("message")))
    assert type(again) is cls
    assert str(again) == "message"


def test_importing_plait_imports_no_multiprocessing():
    """The stdlib bases are imported on first use: a worker process that imports plait pays nothing."""
    code = (
        "import sys, plait, plait.exceptions\n"
        "heavy = ('multiprocessing', 'concurrent.futures.process', 'logging')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
