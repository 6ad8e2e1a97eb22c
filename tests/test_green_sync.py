"""plait.green's synchronisation primitives and greenlet-local storage: event (Event,
AsyncResult), lock (Semaphore, BoundedSemaphore, DummySemaphore, RLock) and local (local)."""

from __future__ import annotations

import copy
import gc
import threading
import weakref

import pytest

from plait import green
from plait.green.event import AsyncResult, Event
from plait.green.local import local
from plait.green.lock import BoundedSemaphore, DummySemaphore, RLock, Semaphore

# -- Event ----------------------------------------------------------------------------------


def test_event_wakes_every_waiter_in_the_order_they_waited():
    event = Event()
    woken = []
    gs = [green.spawn(lambda i=i: woken.append((i, event.wait()))) for i in range(4)]
    green.sleep(0)
    assert woken == [] and event.linkcount() == 4
    event.set()
    green.joinall(gs, timeout=5)
    assert woken == [(0, True), (1, True), (2, True), (3, True)]
    assert event.linkcount() == 0


def test_event_flag_methods_and_wait_when_set():
    event = Event()
    assert not event.is_set() and not event.isSet() and not event.ready()
    event.set()
    assert event.is_set() and event.isSet() and event.ready()
    assert event.wait() is True and event.wait(0) is True
    event.clear()
    assert not event.is_set()


def test_event_wait_timeout_returns_false_and_leaves_no_link():
    event = Event()
    assert event.wait(0.01) is False
    assert event.linkcount() == 0


def test_a_waiter_woken_by_set_returns_true_even_if_cleared_before_it_runs():
    event = Event()
    results = []
    g = green.spawn(lambda: results.append(event.wait(5)))
    green.sleep(0)
    event.set()
    event.clear()  # before the waiter runs: it was set while it waited
    g.join(timeout=5)
    assert results == [True]


def test_killed_or_timed_out_event_waiter_is_unlinked():
    event = Event()
    killed = green.spawn(event.wait)
    green.sleep(0)
    killed.kill(timeout=5)
    assert killed.dead and event.linkcount() == 0
    with pytest.raises(green.Timeout):
        with green.Timeout(0.01):
            event.wait()
    assert event.linkcount() == 0
    event.set()  # nothing stale is switched into
    green.sleep(0)


def test_event_rawlink_and_unlink():
    event = Event()
    calls = []
    event.rawlink(calls.append)
    dropped = []
    event.rawlink(dropped.append)
    event.unlink(dropped.append)
    event.set()
    green.sleep(0)
    assert calls == [event] and dropped == []
    with pytest.raises(TypeError):
        event.rawlink(42)  # type: ignore[arg-type]


def test_event_set_from_another_thread_wakes_a_waiting_greenlet():
    event = Event()
    started = threading.Event()

    def setter():
        started.wait(10)
        event.set()

    t = threading.Thread(target=setter)
    t.start()
    green.get_hub().loop.call_soon(started.set)
    try:
        assert event.wait(10) is True  # the timer keeps the hub alive; the thread wakes it
    finally:
        t.join(10)


def test_event_module_level_instance_survives_a_destroyed_hub():
    event = Event()
    green.spawn(event.set).join()
    assert event.wait(0) is True
    green.get_hub().destroy()
    event.clear()
    g = green.spawn(event.wait, 5)  # a new hub: the event binds to it
    green.sleep(0)
    event.set()
    assert g.get(timeout=5) is True


def test_blocked_forever_names_an_event_wait():
    event = Event()

    def waiter():
        event.wait()

    g = green.spawn(waiter)
    g.name = "event-waiter"
    with pytest.raises(green.BlockedForever) as info:
        g.join()
    assert "'event-waiter' waits on Event.wait()" in str(info.value)


# -- AsyncResult ----------------------------------------------------------------------------


def test_async_result_value_wakes_waiters():
    result = AsyncResult()
    assert not result.ready() and not result.successful() and result.value is None
    got = [green.spawn(result.get), green.spawn(result.wait)]
    green.sleep(0)
    result.set(42)
    assert [g.get(timeout=5) for g in got] == [42, 42]
    assert result.ready() and result.successful() and result.value == 42
    assert result.get_nowait() == 42 and result.exception is None and result.exc_info == ()


def test_async_result_exception_keeps_its_traceback():
    result = AsyncResult()
    try:
        raise KeyError("k")
    except KeyError as exc:
        import sys

        result.set_exception(exc, sys.exc_info())
    assert result.ready() and not result.successful()
    assert isinstance(result.exception, KeyError) and result.exc_info[0] is KeyError
    assert result.wait() is None
    with pytest.raises(KeyError) as info:
        result.get()
    assert any(frame.name == "test_async_result_exception_keeps_its_traceback" for frame in info.traceback)


def test_async_result_get_times_out_with_timeout():
    result = AsyncResult()
    with pytest.raises(green.Timeout):
        result.get(block=False)
    with pytest.raises(green.Timeout):
        result.get_nowait()
    with pytest.raises(green.Timeout) as info:
        result.get(timeout=0.01)
    assert "0.01 second" in str(info.value)
    assert result.wait(0.01) is None and result.linkcount() == 0


def test_async_result_is_a_link_callback(capsys):
    ok = AsyncResult()
    green.spawn(lambda: "done").link(ok)
    assert ok.get(timeout=5) == "done"
    failed = AsyncResult()
    green.spawn(lambda: 1 / 0).link(failed)
    with pytest.raises(ZeroDivisionError):
        failed.get(timeout=5)
    assert failed.exc_info[0] is ZeroDivisionError
    assert "ZeroDivisionError" in capsys.readouterr().err  # the greenlet's own report


def test_async_result_has_futures_names_and_works_with_wait():
    a, b = AsyncResult(), AsyncResult()
    assert not a.done() and a.cancel() is False and a.cancelled() is False
    green.spawn(lambda: b.set_result("b"))
    assert green.wait([a, b], count=1, timeout=5) == [b]
    assert b.result() == "b" and b.done()
    a.set()
    assert a.result(timeout=0) is None and list(green.iwait([a], timeout=5)) == [a]


# -- Semaphore ------------------------------------------------------------------------------


def test_semaphore_counts_permits():
    sem = Semaphore(2)
    assert sem.acquire() and sem.acquire() and sem.counter == 0 and sem.locked()
    assert sem.acquire(blocking=False) is False
    assert sem.acquire(timeout=0.01) is False and sem.linkcount() == 0
    assert sem.release() == 1 and not sem.locked() and sem.ready()
    with sem:
        assert sem.counter == 0
    assert sem.counter == 1 and sem.wait() == 1
    with pytest.raises(ValueError):
        Semaphore(-1)


def test_semaphore_wakes_waiters_first_in_first_out():
    sem = Semaphore(0)
    order = []
    gs = [green.spawn(lambda i=i: (sem.acquire(), order.append(i))) for i in range(5)]
    green.sleep(0)
    for _ in range(5):
        sem.release()
        green.sleep(0)
    green.joinall(gs, timeout=5)
    assert order == [0, 1, 2, 3, 4] and sem.counter == 0


def test_one_release_wakes_one_waiter():
    sem = Semaphore(0)
    got = []
    gs = [green.spawn(lambda i=i: (sem.acquire(), got.append(i))) for i in range(3)]
    green.sleep(0)
    sem.release()
    green.sleep(0)
    green.sleep(0)
    assert got == [0] and sem.counter == 0 and sem.linkcount() == 2
    green.killall(gs, timeout=5)
    assert sem.linkcount() == 0


def test_a_killed_waiter_passes_its_permit_on():
    sem = Semaphore(0)
    got = []

    def waiter(name):
        sem.acquire()
        got.append(name)

    a, b = green.spawn(waiter, "a"), green.spawn(waiter, "b")
    green.sleep(0)
    a.kill(block=False)  # its kill is delivered before the release's wake-up
    sem.release()
    b.join(timeout=5)
    assert a.dead and got == ["b"] and sem.counter == 0 and sem.linkcount() == 0


def test_a_waiter_that_times_out_passes_its_permit_on():
    sem = Semaphore(0)
    timed = green.spawn(sem.acquire, timeout=0.01)
    patient = green.spawn(sem.acquire)
    assert timed.get(timeout=5) is False
    sem.release()
    assert patient.get(timeout=5) is True
    assert sem.counter == 0 and sem.linkcount() == 0


def test_a_timeout_during_acquire_takes_no_permit():
    sem = Semaphore(0)
    with pytest.raises(green.Timeout):
        with green.Timeout(0.01):
            sem.acquire()
    assert sem.linkcount() == 0
    sem.release()
    assert sem.counter == 1


def test_semaphore_wait_does_not_take_a_permit():
    sem = Semaphore(0)
    waiter = green.spawn(sem.wait)
    green.sleep(0)
    sem.release()
    assert waiter.get(timeout=5) == 1 and sem.counter == 1
    sem.acquire()
    assert sem.wait(timeout=0.01) == 0


def test_semaphore_rawlink_runs_when_a_permit_is_available():
    sem = Semaphore(0)
    calls = []
    sem.rawlink(calls.append)
    green.sleep(0)
    assert calls == []
    sem.release()
    green.sleep(0)
    assert calls == [sem] and sem.counter == 1


def test_bounded_semaphore_refuses_over_release():
    sem = BoundedSemaphore(2)
    with pytest.raises(ValueError, match="released too many times"):
        sem.release()
    sem.acquire()
    assert sem.release() == 2


def test_dummy_semaphore_never_waits():
    sem = DummySemaphore(3)
    assert sem.acquire() and sem.acquire(blocking=False) and sem.wait() == 1
    assert not sem.locked() and sem.ready()
    with sem:
        sem.release()
    sem.rawlink(print)
    sem.unlink(print)


def test_blocked_forever_names_a_semaphore_acquire():
    sem = Semaphore(0)
    with pytest.raises(green.BlockedForever) as info:
        sem.acquire()
    assert "the main greenlet waits on Semaphore.acquire()" in str(info.value)


# -- RLock ----------------------------------------------------------------------------------


def test_rlock_is_reentrant_for_its_owner_and_excludes_others():
    lock = RLock()
    assert lock.acquire() and lock.acquire() and lock.locked()
    other = green.spawn(lock.acquire, timeout=0.01)
    assert other.get(timeout=5) is False
    lock.release()
    assert lock.locked()
    contender = green.spawn(lambda: (lock.acquire(), lock._is_owned(), lock.release()))
    green.sleep(0)
    assert not contender.ready()
    lock.release()
    assert contender.get(timeout=5)[1] is True
    assert not lock.locked()


def test_rlock_release_by_a_non_owner_raises_runtime_error(capsys):
    lock = RLock()
    with pytest.raises(RuntimeError, match="cannot release un-acquired lock"):
        lock.release()
    lock.acquire()
    other = green.spawn(lock.release)
    other.join(timeout=5)
    assert isinstance(other.exception, RuntimeError) and lock.locked()
    assert "cannot release un-acquired lock" in capsys.readouterr().err
    lock.release()
    assert not lock.locked()


def test_rlock_context_manager_and_blocking_false():
    lock = RLock()
    with lock as got:
        assert got is True and lock._is_owned()
        assert green.spawn(lock.acquire, blocking=False).get(timeout=5) is False
    assert not lock.locked()


# -- local ----------------------------------------------------------------------------------


def test_local_attributes_are_separate_per_greenlet():
    data = local()
    data.x = "main"
    seen = []

    def worker():
        seen.append((hasattr(data, "x"), dict(data.__dict__)))
        data.x = "worker"
        seen.append(data.x)

    green.spawn(worker).join(timeout=5)
    assert seen == [(False, {}), "worker"]
    assert data.x == "main" and data.__dict__ == {"x": "main"}
    del data.x
    with pytest.raises(AttributeError):
        data.x  # noqa: B018
    with pytest.raises(AttributeError):
        del data.x


def test_local_refuses_arguments_without_init_and_a_new_dict():
    with pytest.raises(TypeError):
        local(1)
    data = local()
    with pytest.raises(AttributeError):
        data.__dict__ = {}


def test_local_subclass_init_defaults_methods_and_properties():
    class Counter(local):
        start = 10

        def __init__(self, step, *, label="c"):
            self.value = self.start
            self.step = step
            self.label = label

        def bump(self):
            self.value += self.step
            return self.value

        @property
        def doubled(self):
            return 2 * self.value

    counter = Counter(5, label="x")
    counter.bump()

    def worker():
        return (counter.value, counter.label, counter.bump(), counter.doubled)

    assert green.spawn(worker).get(timeout=5) == (10, "x", 15, 30)
    assert counter.value == 15 and counter.doubled == 30


def test_local_slots_are_shared_between_greenlets():
    class WithSlots(local):
        __slots__ = ("shared",)

    data = WithSlots()
    data.shared = "main"
    data.own = "main"

    def worker():
        data.shared = "worker"
        data.own = "worker"

    green.spawn(worker).join(timeout=5)
    assert data.shared == "worker" and data.own == "main"


def test_local_values_are_dropped_when_the_greenlet_ends():
    class Value:
        pass

    data = local()
    refs = []

    def worker():
        data.value = Value()
        refs.append(weakref.ref(data.value))

    green.spawn(worker).join(timeout=5)
    green.sleep(0)  # the end links run in the hub
    gc.collect()
    assert refs and refs[0]() is None


def test_local_values_are_dropped_when_the_local_dies():
    class Value:
        pass

    data = local()
    data.value = Value()
    ref = weakref.ref(data.value)
    key_count = sum(k.startswith("_plait_green_local_") for k in green.getcurrent().__dict__)
    del data
    gc.collect()
    assert ref() is None
    assert sum(k.startswith("_plait_green_local_") for k in green.getcurrent().__dict__) == key_count - 1


def test_local_values_are_separate_per_thread():
    data = local()
    data.x = 1
    seen = []
    t = threading.Thread(target=lambda: seen.append(getattr(data, "x", None)))
    t.start()
    t.join(10)
    assert seen == [None] and data.x == 1


def test_local_copy_copies_the_current_greenlets_values():
    class Named(local):
        def __init__(self, name="n"):
            self.name = name

    data = Named("a")
    data.extra = [1]
    dup = copy.copy(data)
    assert type(dup) is Named and dup.name == "a" and dup.extra == [1]
    dup.extra = [2]
    assert data.extra == [1]


def test_an_event_forgets_the_waiters_of_a_destroyed_hub():
    event = Event()
    calls = []
    event.rawlink(calls.append)
    orphan = green.spawn(event.wait)
    green.sleep(0)
    green.get_hub().destroy()
    waiter = green.spawn(event.wait, 5)
    green.sleep(0)
    assert event.linkcount() == 2  # the callback and the new waiter, not the orphan
    event.set()
    assert waiter.get(timeout=5) is True and calls == [event] and not orphan.ready()


def test_an_event_set_just_before_its_hub_was_destroyed_still_works():
    event = Event()
    waiter = green.spawn(event.wait)
    green.sleep(0)
    event.set()  # its notification is scheduled in a hub that will never run it
    green.get_hub().destroy()
    assert green.spawn(event.wait).get(timeout=5) is True
    assert not waiter.ready()
