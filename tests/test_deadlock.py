"""Deadlocks are named, not silent: DeadlockError, warn/off modes, lock-order checking, dump()."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest

from plait import (
    DeadlockError,
    DeadlockWarning,
    LockOrderWarning,
    PlaitError,
    PlaitWarning,
    SelfDeadlockWarning,
    _plait,
)
from plait import threads as pt


def wait_until_waiting(thread: threading.Thread, timeout: float = 10.0) -> None:
    """Block until `thread` is recorded as sleeping on a plait primitive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _held, waits = _plait.snapshot()
        if any(ident == thread.ident for ident, *_ in waits):
            return
        time.sleep(0.001)
    raise AssertionError(f"{thread.name} never started waiting")


def test_deadlock_error_is_a_runtime_error():
    assert issubclass(DeadlockError, PlaitError)
    assert issubclass(DeadlockError, RuntimeError)


def run_script(source: str) -> subprocess.CompletedProcess[str]:
    """Runs ``source`` in a fresh interpreter: a self-deadlock is certain only when no other
    thread could release the lock, and pytest's own timeout thread is one."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)], capture_output=True, text=True, timeout=60
    )


def test_self_deadlock_of_the_only_thread_raises():
    proc = run_script(
        """
        from plait import DeadlockError
        from plait.threads import Lock

        lock = Lock(name="db")
        lock.acquire()
        try:
            lock.acquire()
        except DeadlockError as e:
            assert len(e.cycle) == 1 and e.cycle[0].waits_for.label == "Lock 'db'"
            assert lock.locked()
            print(e)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "Found one deadlock (1 thread)" in proc.stdout
    assert "held by itself" in proc.stdout
    assert "No other thread can release Lock 'db': it is the only thread." in proc.stdout
    assert "<string>:6" in proc.stdout  # where it was acquired


def test_self_deadlock_with_every_other_thread_waiting_behind_it_raises():
    proc = run_script(
        """
        import threading
        from plait import DeadlockError, _plait
        from plait.threads import Lock

        lock = Lock(name="db")
        lock.acquire()
        worker = threading.Thread(target=lambda: lock.acquire() and lock.release(), name="worker")
        worker.start()
        while not any(ident == worker.ident for ident, *_ in _plait.snapshot()[1]):
            threading.Event().wait(0.001)  # until the worker sleeps on the lock
        try:
            lock.acquire()
        except DeadlockError as e:
            print(e)
            print([edge.thread_name for edge in e.cycle])
        lock.release()
        worker.join()
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "Found one deadlock (2 threads)" in proc.stdout
    assert "every other thread waits behind it" in proc.stdout
    assert "['MainThread', 'worker']" in proc.stdout


def test_self_deadlock_is_raised_once_the_last_other_thread_exits():
    proc = run_script(
        """
        import threading
        from plait import DeadlockError
        from plait.threads import Lock, set_deadlock_detection

        set_deadlock_detection("raise", grace=3600)  # no SelfDeadlockWarning meanwhile
        lock = Lock(name="db")
        lock.acquire()
        go = threading.Event()
        worker = threading.Thread(target=go.wait, name="worker")
        worker.start()
        threading.Timer(0, go.set).start()  # the worker exits while the main thread waits
        try:
            lock.acquire()
        except DeadlockError as e:
            print(e)
        worker.join()
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "No other thread can release Lock 'db': it is the only thread." in proc.stdout


def test_warn_mode_warns_a_certain_self_deadlock_then_waits():
    proc = run_script(
        """
        import signal, warnings
        from plait import DeadlockWarning
        from plait.threads import Lock, set_deadlock_detection

        set_deadlock_detection("warn")
        lock = Lock(name="db")
        lock.acquire()
        signal.signal(signal.SIGALRM, lambda *_: lock.release())
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            signal.setitimer(signal.ITIMER_REAL, 0.2)  # releases the lock after the warning
            assert lock.acquire()
        assert [w.category for w in seen] == [DeadlockWarning]
        print(seen[0].message)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "No other thread can release Lock 'db': it is the only thread." in proc.stdout


def test_lock_as_signal_from_another_thread_is_valid():
    # The idiom of CPython's lock_tests.LockTests.test_reacquire: the holder re-acquires, another
    # thread releases. No error, no warning (it is released within the grace period).
    lock = pt.Lock()
    lock.acquire()
    releaser = threading.Thread(target=lambda: wait_until_waiting(main) or lock.release())
    main = threading.current_thread()
    releaser.start()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lock.acquire() is True
    releaser.join()
    assert lock.locked()
    lock.release()


def test_self_wait_warns_after_the_grace_period_then_goes_on_waiting(detection_mode):
    import inspect

    detection_mode("raise", grace=0.05)
    lock = pt.Lock(name="sig")
    lock.acquire()
    line = inspect.currentframe().f_lineno - 1
    seen: list[warnings.WarningMessage] = []
    warned = threading.Event()

    def show(message, category, filename, lineno, file=None, line=None):
        seen.append(warnings.WarningMessage(message, category, filename, lineno))
        warned.set()

    releaser = threading.Thread(target=lambda: warned.wait() and lock.release())
    releaser.start()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        assert lock.acquire() is True  # warned, went on waiting, then got the released lock
    releaser.join()
    lock.release()

    assert len(seen) == 1
    warning = seen[0].message
    assert isinstance(warning, SelfDeadlockWarning)
    assert isinstance(warning, DeadlockWarning) and isinstance(warning, PlaitWarning)
    assert seen[0].filename == __file__  # points at the acquire
    text = str(warning)
    assert text.startswith("Possible deadlock: Thread 'MainThread'")
    assert "waits for Lock 'sig', held by itself" in text
    assert "plait thread dump" in text  # the full report: every thread's stack and locks
    assert warning.cycle[0].waits_for.acquired_at.startswith(f"{__file__}:{line} ")


def test_timed_self_acquire_times_out_like_threading():
    lock = pt.Lock()
    with lock, warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lock.acquire(timeout=0.05) is False


def test_rlock_reentry_is_not_a_deadlock():
    lock = pt.RLock()
    with lock, lock, lock:
        assert lock._recursion_count() == 3


def test_two_thread_cycle_raises_in_the_thread_that_closes_it():
    a, b = pt.Lock(name="a"), pt.Lock(name="b")
    b_taken = threading.Event()
    go = threading.Event()
    outcome: dict[str, object] = {}

    def first():
        with b:
            b_taken.set()
            go.wait()
            try:
                a.acquire()
            except DeadlockError as e:
                outcome["error"] = e
            else:  # pragma: no cover
                a.release()

    def second():
        with a:
            b_taken.wait()
            with b:
                outcome["second"] = "done"

    t_first = threading.Thread(target=first, name="first")
    t_second = threading.Thread(target=second, name="second")
    t_first.start()
    b_taken.wait()
    t_second.start()
    wait_until_waiting(t_second)  # second holds a and sleeps on b
    go.set()
    t_first.join()
    t_second.join()

    err = outcome["error"]
    assert isinstance(err, DeadlockError)
    assert outcome["second"] == "done"  # the cycle broke when first gave up
    threads_in_cycle = {e.thread_name for e in err.cycle}
    assert threads_in_cycle == {"first", "second"}
    by_thread = {e.thread_name: e for e in err.cycle}
    assert by_thread["first"].waits_for.label == "Lock 'a'"
    assert [name for _, name in by_thread["first"].held_by] == ["second"]
    assert by_thread["second"].waits_for.label == "Lock 'b'"
    assert by_thread["second"].waits_for.acquired_at is not None
    assert "test_deadlock.py" in by_thread["second"].waits_for.acquired_at
    assert by_thread["second"].stack, "the other thread's stack is captured"
    message = str(err)
    assert "Found one deadlock (2 threads)" in message
    assert "'first'" in message and "'second'" in message
    json.dumps(err.to_dict())  # structured data is JSON-ready


def test_three_thread_cycle():
    locks = [pt.Lock(name=f"L{i}") for i in range(3)]
    holding = [threading.Event() for _ in range(3)]
    errors: list[DeadlockError] = []
    threads_: list[threading.Thread] = []

    def worker(i):
        with locks[i]:
            holding[i].set()
            for e in holding:
                e.wait()
            if i == 2:
                wait_until_waiting(threads_[0])
                wait_until_waiting(threads_[1])
            try:
                with locks[(i + 1) % 3]:
                    pass
            except DeadlockError as e:
                errors.append(e)

    for i in range(3):
        threads_.append(threading.Thread(target=worker, args=(i,), name=f"w{i}"))
    for t in threads_:
        t.start()
    for t in threads_:
        t.join()
    assert len(errors) == 1
    assert {e.thread_name for e in errors[0].cycle} == {"w0", "w1", "w2"}


def test_semaphore_in_a_cycle():
    sem = pt.Semaphore(1, name="pool")
    lock = pt.Lock(name="l")
    ready = threading.Event()
    errors = []

    def holder():
        with sem:
            ready.set()
            with lock:  # waits for main, which holds lock
                pass

    lock.acquire()
    t = threading.Thread(target=holder)
    t.start()
    ready.wait()
    wait_until_waiting(t)
    with pytest.raises(DeadlockError) as info:
        sem.acquire()
    errors.append(info.value)
    lock.release()
    t.join()
    assert "Semaphore 'pool'" in str(errors[0])


def test_semaphore_waiting_for_another_thread_to_release_is_fine():
    sem = pt.Semaphore(1)
    sem.acquire()
    threading.Timer(0.05, sem.release).start()
    assert sem.acquire(timeout=10)  # over-acquire: someone else releases
    sem.release()


def test_lock_released_by_another_thread_becomes_a_signal():
    lock = pt.Lock()
    lock.acquire()
    t = threading.Thread(target=lock.release)
    t.start()
    t.join()
    lock.acquire()
    releaser = threading.Timer(0.05, lock.release)
    releaser.start()
    assert lock.acquire(timeout=10)  # not reported: this lock is used as a signal
    releaser.join()
    lock.release()


def test_warn_mode_warns_then_waits(detection_mode):
    detection_mode("warn")
    a, b = pt.Lock(name="a"), pt.Lock(name="b")
    b_taken = threading.Event()

    def other():
        with b:
            b_taken.set()
            with a:
                pass

    a.acquire()
    t = threading.Thread(target=other)
    t.start()
    b_taken.wait()
    wait_until_waiting(t)  # holds b, sleeps on a
    with pytest.warns(DeadlockWarning, match="Found one deadlock"):
        assert b.acquire(timeout=0.05) is False  # reported, then waited like the stdlib
    a.release()
    t.join()


def test_off_mode_behaves_like_threading(detection_mode):
    detection_mode("off")
    lock = pt.Lock()
    lock.acquire()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lock.acquire(timeout=0.02) is False
    lock.release()


def test_bad_mode_is_rejected():
    with pytest.raises(ValueError, match="'raise', 'warn' or 'off'"):
        pt.set_deadlock_detection("loud")


def test_lock_order_inversion_warns_once():
    a, b = pt.Lock(name="A"), pt.Lock(name="B")
    pt.check_lock_order(True)
    try:
        with a, b:
            pass
        with pytest.warns(LockOrderWarning, match="Lock 'A' acquired while holding Lock 'B'"):
            with b, a:
                pass
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with b, a:  # the same inversion is reported once
                pass
    finally:
        pt.check_lock_order(False)


def test_dump_shows_holders_and_waiters():
    lock = pt.Lock(name="shared")
    started = threading.Event()
    lock.acquire()

    def waiter():
        started.set()
        with lock:
            pass

    t = threading.Thread(target=waiter, name="dump-waiter")
    t.start()
    started.wait()
    wait_until_waiting(t)
    report = pt.dump()
    lock.release()
    t.join()
    assert "Thread 'MainThread'" in report
    assert "holds Lock 'shared', acquired at" in report
    assert "Thread 'dump-waiter'" in report
    assert "waits for Lock 'shared'" in report
    assert "test_dump_shows_holders_and_waiters" in report


def test_fork_child_forgets_other_threads_waits():
    import os

    lock = pt.Lock(name="forked")
    lock.acquire()
    started = threading.Event()

    def waiter():
        started.set()
        with lock:
            pass

    t = threading.Thread(target=waiter)
    t.start()
    started.wait()
    wait_until_waiting(t)
    with warnings.catch_warnings():
        # Forking a process with threads warns on 3.12+; the child only checks plait's tables.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        ok = not _plait.snapshot()[1]
        os._exit(0 if ok else 1)
    lock.release()
    t.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_zero_timeout_is_a_try_not_a_deadlock():
    lock = pt.Lock()
    with lock:
        assert lock.acquire(timeout=0) is False


def test_lock_order_warning_as_error_leaves_the_lock_free():
    a, b = pt.Lock(name="first"), pt.Lock(name="second")
    pt.check_lock_order(True)
    try:
        with a, b:
            pass
        with warnings.catch_warnings():
            warnings.simplefilter("error", LockOrderWarning)
            with b:
                with pytest.raises(LockOrderWarning):
                    a.acquire()
                assert not a.locked(), "the failed acquire gave the lock back"
    finally:
        pt.check_lock_order(False)


def test_condition_wait_returns_holding_its_lock_even_in_a_deadlock(detection_mode):
    # T holds `other` and waits for `lock`; main waits on the condition, gets notified and must
    # re-take `lock` while T, which holds `lock`... here simply: re-acquire never raises.
    lock = pt.Lock()
    cond = pt.Condition(lock)
    ready = threading.Event()

    def notifier():
        ready.wait()
        with cond:
            cond.notify()

    t = threading.Thread(target=notifier)
    t.start()
    with cond:
        ready.set()
        assert cond.wait(timeout=10)
        assert lock.locked()
    t.join()
    assert not lock.locked()


def test_deadlock_records_pickle_and_copy():
    import copy
    import pickle

    from plait.exceptions import DeadlockEdge, LockInfo

    lock = LockInfo(label="Lock 'a'", kind="Lock", name="a", id=1, acquired_at="x.py:1")
    edge = DeadlockEdge(thread_ident=1, thread_name="t", waits_for=lock, held_by=((2, "u"),), stack=["s"])
    assert pickle.loads(pickle.dumps(edge)) == edge
    assert copy.deepcopy(edge) == edge and copy.copy(lock) == lock
    error = pickle.loads(pickle.dumps(DeadlockError("boom", [edge])))
    assert error.cycle == [edge]
