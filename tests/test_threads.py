"""plait.threads primitives beyond CPython's conformance suites: names, reprs, 3.13 queue
shutdown, atomics, fork re-init, and Ctrl-C interrupting every kind of blocking call."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import weakref

import pytest

from plait import ShutDown
from plait import threads as pt

# --- names, reprs, types ----------------------------------------------------------------------


def test_named_lock_repr_and_name():
    lock = pt.Lock(name="db")
    assert lock.name == "db"
    assert "name='db'" in repr(lock)
    assert pt.Lock().name is None


def test_bounded_semaphore_is_a_semaphore():
    sem = pt.BoundedSemaphore(2)
    assert isinstance(sem, pt.Semaphore)
    sem.acquire()
    sem.release()
    with pytest.raises(ValueError):
        sem.release()


def test_queue_subclasses_and_generic_alias():
    assert issubclass(pt.LifoQueue, pt.Queue)
    assert issubclass(pt.PriorityQueue, pt.Queue)
    assert pt.Queue[int].__origin__ is pt.Queue
    assert pt.SimpleQueue[str].__origin__ is pt.SimpleQueue


def test_priority_queue_matches_heapq_order_for_equal_keys():
    import heapq

    items = [(i % 3, i) for i in range(30)]
    q = pt.PriorityQueue()
    heap: list = []
    for it in items:
        q.put(it)
        heapq.heappush(heap, it)
    assert [q.get() for _ in items] == [heapq.heappop(heap) for _ in items]


def test_priority_queue_comparison_error_keeps_items():
    q = pt.PriorityQueue()
    q.put(1)
    with pytest.raises(TypeError):
        q.put("x")
    # Like heapq, the item stays (the heap is not corrupted): both come out.
    got = {q.get_nowait() for _ in range(q.qsize())}
    assert got == {1, "x"}


def test_event_fork_reinit_clears():
    ev = pt.Event()
    ev.set()
    ev._at_fork_reinit()
    assert not ev.is_set()


def test_lock_and_rlock_are_weakly_referenceable():
    lock = pt.Lock()
    ref = weakref.ref(lock)
    del lock
    assert ref() is None


# --- queue shutdown (Python 3.13 semantics) ---------------------------------------------------


def test_shutdown_blocks_puts_and_drains_gets():
    q = pt.Queue()
    q.put(1)
    q.shutdown()
    assert q.is_shutdown
    with pytest.raises(ShutDown):
        q.put(2)
    assert q.get() == 1
    with pytest.raises(ShutDown):
        q.get()


def test_shutdown_wakes_blocked_getter():
    q = pt.Queue()
    errors = []
    started = threading.Event()

    def getter():
        started.set()
        try:
            q.get()
        except ShutDown as e:
            errors.append(e)

    t = threading.Thread(target=getter)
    t.start()
    started.wait()
    q.shutdown()
    t.join()
    assert len(errors) == 1


def test_shutdown_wakes_blocked_putter():
    q = pt.Queue(maxsize=1)
    q.put(0)
    errors = []
    started = threading.Event()

    def putter():
        started.set()
        try:
            q.put(1)
        except ShutDown as e:
            errors.append(e)

    t = threading.Thread(target=putter)
    t.start()
    started.wait()
    q.shutdown()
    t.join()
    assert len(errors) == 1


def test_immediate_shutdown_empties_and_releases_join():
    q = pt.Queue()
    for i in range(3):
        q.put(i)
    joined = threading.Event()
    t = threading.Thread(target=lambda: (q.join(), joined.set()))
    t.start()
    q.shutdown(immediate=True)
    t.join()
    assert joined.is_set()
    assert q.qsize() == 0
    with pytest.raises(ShutDown):
        q.get_nowait()


def test_shutdown_is_a_plait_error():
    from plait import PlaitError

    assert issubclass(ShutDown, PlaitError)
    if hasattr(queue, "ShutDown"):  # pragma: no cover - Python 3.13+
        assert issubclass(ShutDown, queue.ShutDown)


def test_queue_errors_are_the_stdlib_ones():
    q = pt.Queue(1)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    q.put(1)
    with pytest.raises(queue.Full):
        q.put_nowait(2)
    with pytest.raises(ValueError):
        q.get(timeout=-1)


def test_snapshot_lists_items_in_get_order():
    q = pt.LifoQueue()
    for i in range(3):
        q.put(i)
    assert q.snapshot() == [2, 1, 0]


# --- atomics ----------------------------------------------------------------------------------


def test_atomic_int_operations():
    a = pt.AtomicInt(5)
    assert a.load() == 5
    assert a.fetch_add(3) == 5
    assert a.add(2) == 10
    assert a.sub(4) == 6
    assert a.fetch_sub() == 6
    assert a.swap(100) == 5
    assert a.compare_exchange(1, 2) == (False, 100)
    assert a.compare_exchange(100, 7) == (True, 100)
    a += 3
    assert int(a) == 10
    assert list(range(a)) == list(range(10))  # __index__
    assert repr(a) == "AtomicInt(10)"


def test_atomic_int_overflow_raises_and_keeps_value():
    a = pt.AtomicInt(2**63 - 1)
    with pytest.raises(OverflowError):
        a.add(1)
    assert a.load() == 2**63 - 1


def test_atomic_int_is_exact_under_contention():
    a = pt.AtomicInt()
    n, k = 4, 20_000
    barrier = threading.Barrier(n)

    def work():
        barrier.wait()
        for _ in range(k):
            a.fetch_add(1)

    ts = [threading.Thread(target=work) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert a.load() == n * k


def test_atomic_flag():
    f = pt.AtomicFlag()
    assert not f
    assert f.test_and_set() is False
    assert f.test_and_set() is True
    assert f.is_set()
    f.clear()
    assert f.compare_exchange(False, True) == (True, False)
    assert repr(f) == "AtomicFlag(True)"


# --- Ctrl-C interrupts every blocking call in the main thread ---------------------------------


def _interrupt_soon(started: threading.Event | None = None) -> threading.Thread:
    """Send SIGINT to this process once the main thread is (about to be) blocked."""

    def fire():
        if started is not None:
            started.wait()
        # Give the main thread time to enter the native wait; the wait itself polls for signals,
        # so the exact moment does not matter for correctness.
        threading.Event().wait(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=fire)
    t.start()
    return t


def _held_by_other_thread(lock):
    """(target, ready, release): a thread that holds `lock` until `release` is set."""
    ready, release = threading.Event(), threading.Event()

    def hold():
        with lock:
            ready.set()
            release.wait()

    return hold, ready, release


def _blocked_calls():
    lock = pt.Lock()
    rlock = pt.RLock()

    cond = pt.Condition()
    sem = pt.Semaphore(0)
    q = pt.Queue()
    jq = pt.Queue()
    jq.put(1)
    bar = pt.Barrier(2)
    sq = pt.SimpleQueue()
    return {
        "Lock.acquire": (lambda: lock.acquire(), _held_by_other_thread(lock)),
        "RLock.acquire": (lambda: rlock.acquire(), _held_by_other_thread(rlock)),
        "Condition.wait": (lambda: (cond.acquire(), cond.wait()), None),
        "Semaphore.acquire": (lambda: sem.acquire(), None),
        "Event.wait": (lambda: pt.Event().wait(), None),
        "Queue.get": (lambda: q.get(), None),
        "Queue.join": (lambda: jq.join(), None),
        "SimpleQueue.get": (lambda: sq.get(), None),
        "Barrier.wait": (lambda: bar.wait(), None),
    }


@pytest.mark.parametrize("name", list(_blocked_calls()))
def test_ctrl_c_interrupts_blocking_call(name):
    call, helper = _blocked_calls()[name]
    holder = None
    if helper is not None:
        target, ready, release = helper
        holder = threading.Thread(target=target)
        holder.start()
        ready.wait()
    killer = _interrupt_soon()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
    finally:
        killer.join()
        if helper is not None:
            release.set()
            holder.join()


# `import plait` does not import `threading` (up to 3.12; from 3.13 plait.ShutDown subclasses
# queue.ShutDown, and `queue` imports `threading`): the binding asks for the main thread at the
# first blocking wait. This child waits on a Semaphore before anything imported `threading`, and
# a SIGALRM handler must still interrupt it (the wait must know it runs in the main thread).
_FIRST_WAIT_IN_MAIN_THREAD = """
import signal, sys
import plait
if sys.version_info < (3, 13):
    assert "threading" not in sys.modules, "import plait imported threading"
from plait import _plait

def on_alarm(signum, frame):
    raise KeyboardInterrupt

signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.2)
try:
    _plait.Semaphore(0).acquire()
except KeyboardInterrupt:
    print("interrupted")
"""


def test_import_is_lazy_and_first_wait_still_handles_signals():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _FIRST_WAIT_IN_MAIN_THREAD], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "interrupted"


def test_ctrl_c_interrupts_future_result():
    gate = threading.Event()
    with pt.ThreadPool(1) as pool:
        fut = pool.submit(gate.wait)
        killer = _interrupt_soon()
        try:
            with pytest.raises(KeyboardInterrupt):
                fut.result()
        finally:
            killer.join()
            gate.set()


def test_condition_holds_lock_after_interrupted_wait():
    cond = pt.Condition(pt.Lock())
    killer = _interrupt_soon()
    with cond:
        with pytest.raises(KeyboardInterrupt):
            cond.wait()
        # The lock is held again, so leaving the with-block releases it cleanly.
        assert cond._is_owned()
    killer.join()


# --- cyclic garbage ---------------------------------------------------------------------------


def test_queue_holding_itself_is_collected():
    import gc

    for cls in (pt.Queue, pt.SimpleQueue, pt.PriorityQueue):
        q = cls()
        q.put(q)
        ref = weakref.ref(q)
        del q
        gc.collect()
        assert ref() is None, cls


def test_barrier_whose_action_refers_back_is_collected():
    import gc

    class Stage:
        def __init__(self):
            self.barrier = pt.Barrier(1, action=self.done)

        def done(self):
            pass

    stage = Stage()
    ref = weakref.ref(stage)
    del stage
    gc.collect()
    assert ref() is None


def test_semaphore_release_overflow_raises():
    big = 2**63 - 1
    sem = pt.Semaphore(big)
    sem.release(big)
    with pytest.raises(OverflowError):
        sem.release(big)
    assert sem._value == 2 * big


def _barrier_timeout_during_action(timeout):
    """A waiter with `timeout` is at the barrier; a second waiter arrives and runs the action,
    which outlasts the first waiter's timeout. Returns (results, broken), or None when the
    action started after the first waiter's deadline (a loaded machine): not the case tested."""
    import time

    release_action = threading.Event()
    action_started = threading.Event()
    action_start = []

    def action():
        action_start.append(time.monotonic())
        action_started.set()
        release_action.wait()

    bar = pt.Barrier(2, action=action)
    results = []

    def short_waiter():
        try:
            results.append(bar.wait(timeout=timeout))
        except threading.BrokenBarrierError:
            results.append("broken")

    t = threading.Thread(target=short_waiter)
    earliest_deadline = time.monotonic() + timeout  # the wait starts after this line
    t.start()
    while bar.n_waiting != 1:
        threading.Event().wait(0.001)
    latest_deadline = time.monotonic() + timeout  # ... and before this one
    runner = threading.Thread(target=lambda: results.append(bar.wait()))
    runner.start()
    action_started.wait()
    while time.monotonic() < latest_deadline + 0.05:  # the timeout passes while the action runs
        threading.Event().wait(0.01)
    release_action.set()
    t.join()
    runner.join()
    if action_start[0] >= earliest_deadline:
        return None
    return sorted(results, key=str), bar.broken


def test_barrier_timeout_during_the_action_does_not_break_it():
    # A longer timeout is tried when the machine was too slow to start the action in time.
    for timeout in (0.2, 1.0, 5.0):
        outcome = _barrier_timeout_during_action(timeout)
        if outcome is not None:
            break
    assert outcome == ([0, 1], False)


# --- import plait.threads as threading ---------------------------------------------------------

# threading.__all__ of 3.11, 3.12 and 3.13 (3.12 added the *_all_threads functions).
THREADING_ALL = {
    "Barrier", "BoundedSemaphore", "BrokenBarrierError", "Condition", "Event", "ExceptHookArgs",
    "Lock", "RLock", "Semaphore", "TIMEOUT_MAX", "Thread", "ThreadError", "Timer", "active_count",
    "current_thread", "enumerate", "excepthook", "get_ident", "get_native_id", "getprofile",
    "gettrace", "local", "main_thread", "setprofile", "settrace", "stack_size",
}  # fmt: skip
if sys.version_info >= (3, 12):
    THREADING_ALL |= {"setprofile_all_threads", "settrace_all_threads"}
# plait's own classes for these (and its own TIMEOUT_MAX, the same value); every other name is
# the stdlib's object itself.
REIMPLEMENTED = {"Barrier", "BoundedSemaphore", "Condition", "Event", "Lock", "RLock", "Semaphore"}


def test_every_name_of_threading_all_is_offered():
    assert set(threading.__all__) == THREADING_ALL  # this interpreter's list is the one above
    assert set(threading.__all__) <= set(pt.__all__)
    for name in THREADING_ALL - REIMPLEMENTED - {"TIMEOUT_MAX"}:
        assert getattr(pt, name) is getattr(threading, name), name
    for name in REIMPLEMENTED:
        assert getattr(pt, name).__module__ == "plait.threads", name
    assert pt.TIMEOUT_MAX == threading.TIMEOUT_MAX


def test_every_name_of_queue_all_is_offered():
    assert set(queue.__all__) <= set(pt.__all__)
    assert pt.Empty is queue.Empty and pt.Full is queue.Full
    if sys.version_info >= (3, 13):
        assert issubclass(pt.ShutDown, queue.ShutDown)
    for name in ("Queue", "LifoQueue", "PriorityQueue", "SimpleQueue"):
        assert getattr(pt, name).__module__.startswith("plait"), name


def test_star_import_matches_all():
    namespace: dict[str, object] = {}
    exec("from plait.threads import *", namespace)
    assert THREADING_ALL <= set(namespace)


def test_excepthook_assigned_through_plait_threads_reaches_threading():
    seen = []
    saved = threading.excepthook
    try:
        pt.excepthook = lambda args: seen.append(args.exc_type)
        assert threading.excepthook is pt.excepthook
        t = pt.Thread(target=lambda: 1 / 0)
        t.start()
        t.join()
    finally:
        pt.excepthook = saved
    assert seen == [ZeroDivisionError]
    assert threading.excepthook is saved


ORDINARY_PROGRAM = r"""
import plait.threads as threading
import plait.threads as queue   # the queue names too

results = queue.Queue()
counter_lock = threading.Lock()
counter = 0
state = threading.local()
ready = threading.Event()
barrier = threading.Barrier(4)
cond = threading.Condition()
items = []
errors = []

def worker(n):
    global counter
    state.n = n
    barrier.wait()
    for _ in range(1000):
        with counter_lock:
            counter += 1
    with cond:
        items.append(n)
        cond.notify_all()
    results.put((threading.current_thread().name, state.n, threading.get_ident() != main_ident))

def hook(args):
    errors.append(args.exc_type.__name__)

main_ident = threading.get_ident()
threading.excepthook = hook
assert threading.current_thread() is threading.main_thread()
threads = [threading.Thread(target=worker, args=(i,), name=f"w{i}") for i in range(4)]
for t in threads:
    t.start()
with cond:
    cond.wait_for(lambda: len(items) == 4, timeout=30)
for t in threads:
    t.join()
timer = threading.Timer(0.01, ready.set)
timer.start()
assert ready.wait(30)
timer.join()
failing = threading.Thread(target=lambda: 1 / 0)
failing.start()
failing.join()
got = sorted(results.get(timeout=30) for _ in range(4))
try:
    results.get_nowait()
except queue.Empty:
    pass
sem = threading.BoundedSemaphore(1)
sem.acquire()
sem.release()
assert threading.active_count() == len(threading.enumerate()) == 1
assert threading.get_native_id() > 0 and threading.stack_size() >= 0
assert isinstance(threading.TIMEOUT_MAX, float)
print(counter, got, errors)
"""


def test_an_ordinary_threading_program_runs_through_plait_threads():
    proc = subprocess.run(
        [sys.executable, "-c", ORDINARY_PROGRAM], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    expected = [(f"w{i}", i, True) for i in range(4)]
    assert proc.stdout.strip() == f"4000 {expected} ['ZeroDivisionError']"


# --- Lock's native entry points (crates/plait-py/src/sync/fast.rs) ---------------------------


def _site_of(lock: pt.Lock) -> str | None:
    """Where `lock`, held by this thread, was acquired, as a dump reports it."""
    import json

    import plait

    report = json.loads(plait.dump(json=True))
    (info,) = [entry for entry in report["locks"] if entry["name"] == lock.name]
    return info["acquired_at"]


def test_lock_methods_keep_their_signatures_and_docs():
    import inspect

    assert list(inspect.signature(pt.Lock.acquire).parameters) == ["self", "blocking", "timeout"]
    assert str(inspect.signature(pt.Lock.release)) == "(self, /)"
    assert pt.Lock.acquire.__doc__ and "Acquire" in pt.Lock.acquire.__doc__
    assert pt.Lock.release.__doc__ and "Release" in pt.Lock.release.__doc__


def test_lock_calls_outside_the_native_fast_path_behave_as_before():
    lock = pt.Lock()
    assert lock.acquire() is True
    assert lock.acquire(False) is False
    assert lock.acquire(blocking=False) is False
    assert lock.acquire(timeout=0.01) is False
    with pytest.raises(ValueError):
        lock.acquire(False, 1)
    with pytest.raises(TypeError):
        lock.acquire(1, 2, 3)
    with pytest.raises(TypeError):
        lock.release(1)
    assert lock.release() is None
    with pytest.raises(RuntimeError):
        lock.release()
    with pytest.raises(RuntimeError):
        lock.__exit__(None, None, None)
    with lock as entered:
        assert entered is True and lock.locked()
    assert not lock.locked()
    assert pt.Lock.acquire(lock) is True and pt.Lock.release(lock) is None


def test_lock_subclass_can_override_and_call_the_native_methods():
    calls = []

    class Counted(pt.Lock):
        def acquire(self, *args, **kwargs):
            calls.append("acquire")
            return super().acquire(*args, **kwargs)

    lock = Counted()
    assert lock.acquire() and lock.locked()
    lock.release()
    with lock:
        assert lock.locked()
    assert calls == ["acquire"] and not lock.locked()


def test_each_acquire_records_its_own_line_also_from_the_same_function():
    lock = pt.Lock(name="lines")
    first = sys._getframe().f_lineno + 1
    lock.acquire()
    assert _site_of(lock).startswith(f"{__file__}:{first} ")
    lock.release()
    second = sys._getframe().f_lineno + 1
    with lock:
        assert _site_of(lock).startswith(f"{__file__}:{second} ")
    other = []
    threading.Thread(target=lambda: (lock.acquire(), other.append(_site_of(lock)), lock.release())).start()
    _wait_until(lambda: other)
    assert f"{__file__}:" in other[0] and other[0].endswith(".<lambda>)")


def _wait_until(cond, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
