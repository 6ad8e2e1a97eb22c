"""Shared fixtures: every test must leave no extra threads, file descriptors, child processes or
/dev/shm segments behind."""

from __future__ import annotations

import _thread
import os
import sys
import sysconfig
import threading
import time

import pytest


def _fds() -> set[str]:
    try:
        return set(os.listdir("/proc/self/fd"))
    except FileNotFoundError:  # pragma: no cover - Linux only
        return set()


# /dev/shm is machine-wide: entries named by libraries this suite does not use, or whose names
# another run on the machine makes at the same moment (multiprocessing's semaphores; loky's and
# joblib's, from a benchmark run), would fail a test at random. plait itself names nothing there
# (its segments are anonymous memfds).
_OTHERS_SHM = ("sem.mp-", "sem.loky-", "loky-", "joblib_memmapping")


def _shm() -> set[str]:
    """Names in /dev/shm, except those of other runs' libraries (see ``_OTHERS_SHM``)."""
    try:
        return {n for n in os.listdir("/dev/shm") if not n.startswith(_OTHERS_SHM)}
    except FileNotFoundError:  # pragma: no cover - Linux only
        return set()


def _children() -> set[int]:
    """Pids of this process's children (live or zombie), from /proc."""
    found: set[int] = set()
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                found.update(int(p) for p in f.read().split())
    except FileNotFoundError:  # pragma: no cover - Linux only
        pass
    return found


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaks threads, fds, child processes (zombies included) or /dev/shm
    entries, after giving exiting threads and processes a moment to finish."""
    threads_before = {t.ident for t in threading.enumerate()}
    children_before = _children()
    raw_before = _thread._count()
    fds_before = _fds()
    shm_before = _shm()
    yield
    green = sys.modules.get("plait.green._hub")
    if green is not None:  # a test's hub (its loop's fds) does not outlive the test
        hub = getattr(green._local, "hub", None)
        if hub is not None:
            hub.destroy()
    deadline = time.monotonic() + 5.0
    while True:
        extra = [t for t in threading.enumerate() if t.ident not in threads_before]
        raw_extra = _thread._count() - raw_before
        leaked_fds = _fds() - fds_before
        children = _children() - children_before
        shm = _shm() - shm_before
        if not extra and raw_extra <= 0 and not leaked_fds and not children and not shm:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not extra, f"leaked threads: {extra}"
    assert not children, f"leaked child processes: {sorted(children)}"
    assert raw_extra <= 0, f"leaked {raw_extra} raw threads"
    assert not shm, f"leaked /dev/shm entries: {sorted(shm)}"
    # fds: re-read once more; lazily opened fds (e.g. /dev/urandom) would be a false alarm.
    leaked_fds = {fd for fd in _fds() - fds_before if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not leaked_fds, f"leaked fds: {sorted(leaked_fds)}"


@pytest.fixture
def detection_mode():
    """Set the deadlock detection mode (and grace period) for one test, restoring both after."""
    from plait import _plait, threads

    before, grace = threads.get_deadlock_detection(), _plait.deadlock_grace()
    yield threads.set_deadlock_detection
    threads.set_deadlock_detection(before, grace=grace)


@pytest.fixture
def loop():
    """A plait.aio event loop, closed after the test (its default executor shut down first)."""
    from plait import aio

    lp = aio.new_event_loop()
    yield lp
    if not lp.is_closed():
        lp.run_until_complete(lp.shutdown_default_executor())
    lp.close()


# `make test-ft` (.ci/test-ft) sets PLAIT_EXPECT_NO_GIL=1: the suite must then run on a
# free-threaded interpreter, and the GIL must still be off when it ends.
EXPECT_NO_GIL = os.environ.get("PLAIT_EXPECT_NO_GIL") == "1"


def pytest_configure(config: pytest.Config) -> None:
    if EXPECT_NO_GIL and not sysconfig.get_config_var("Py_GIL_DISABLED"):
        raise pytest.UsageError(f"PLAIT_EXPECT_NO_GIL=1 but {sys.executable} is not a free-threaded build")


# plait.green cannot run on free-threaded 3.13 (see plait/_freethreading.py): its tests are
# skipped there, with the reason.
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from plait._freethreading import GREEN_UNSAFE_REASON, green_unsafe

    if not green_unsafe():
        return
    reason = f"plait.green: {GREEN_UNSAFE_REASON}"
    skip = pytest.mark.skip(reason=reason)
    skipped = 0
    for item in items:
        if item.path.name.startswith(("test_green", "_green")):
            item.add_marker(skip)
            skipped += 1
    if skipped:
        print(f"\n{skipped} tests skipped: {reason}", file=sys.stderr)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if EXPECT_NO_GIL and sys._is_gil_enabled():
        print("\nFAILED: the GIL was enabled during the run (PLAIT_EXPECT_NO_GIL=1)", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
