"""plait.green.queue: Queue (task_done/join, 3.13 shutdown), SimpleQueue, LifoQueue,
PriorityQueue, JoinableQueue, Channel; FIFO wake-ups, timeouts, and killed waiters losing no
item."""

from __future__ import annotations

import queue as stdlib_queue
import threading

import pytest

from plait import green
from plait.exceptions import ShutDown
from plait.green import queue as gqueue
from plait.green.queue import (
    Channel,
    Empty,
    Full,
    JoinableQueue,
    LifoQueue,
    PriorityQueue,
    Queue,
    SimpleQueue,
)


def test_exceptions_are_the_stdlib_and_plait_ones():
    assert Empty is stdlib_queue.Empty and Full is stdlib_queue.Full
    assert gqueue.ShutDown is ShutDown
    if hasattr(stdlib_queue, "ShutDown"):  # 3.13+: catchable as the stdlib's too
        assert issubclass(ShutDown, stdlib_queue.ShutDown)
    assert JoinableQueue is Queue and issubclass(Queue, SimpleQueue)


def test_fifo_sizes_and_truth():
    q = Queue()
    assert q.empty() and not q.full() and len(q) == 0 and bool(q) is True and q.maxsize is None
    for i in range(3):
        q.put(i)
    assert q.qsize() == len(q) == 3 and not q.empty()
    assert [q.get(), q.get_nowait(), q.get()] == [0, 1, 2]
    bounded = Queue(2)
    bounded.put_nowait(1)
    bounded.put(2)
    assert bounded.full() and bounded.maxsize == 2
    with pytest.raises(Full):
        bounded.put_nowait(3)
    with pytest.raises(Full):
        bounded.put(3, timeout=0.01)
    assert len(bounded.putters) == 0


def test_get_on_empty_times_out_or_refuses():
    q = SimpleQueue()
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.get(block=False)
    with pytest.raises(Empty):
        q.get(timeout=0.01)
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    assert len(q.getters) == 0


def test_getters_are_served_in_the_order_they_blocked():
    q = Queue()
    got = []
    gs = [green.spawn(lambda i=i: got.append((i, q.get()))) for i in range(4)]
    green.sleep(0)
    for item in "abcd":
        q.put(item)
    green.joinall(gs, timeout=5)
    assert got == [(0, "a"), (1, "b"), (2, "c"), (3, "d")]


def test_putters_are_served_in_the_order_they_blocked():
    q = Queue(1)
    q.put("first")
    gs = [green.spawn(q.put, i) for i in range(3)]
    green.sleep(0)
    assert len(q.putters) == 3
    assert [q.get() for _ in range(4)] == ["first", 0, 1, 2]
    green.joinall(gs, timeout=5)
    assert all(g.successful() for g in gs) and q.empty()


def test_peek_does_not_remove_and_waits_for_an_item():
    q = Queue()
    with pytest.raises(Empty):
        q.peek_nowait()
    peeker = green.spawn(q.peek)
    getter = green.spawn(q.get)
    green.sleep(0)
    q.put("x")
    assert peeker.get(timeout=5) == "x" and getter.get(timeout=5) == "x"
    q.put("y")
    assert q.peek() == "y" and q.qsize() == 1


def test_lifo_and_priority_orders():
    lifo = LifoQueue()
    for i in range(3):
        lifo.put(i)
    assert lifo.peek() == 2 and [lifo.get() for _ in range(3)] == [2, 1, 0]
    prio = PriorityQueue(items=[(3, "c"), (1, "a")])
    prio.put((2, "b"))
    assert [prio.get()[1] for _ in range(3)] == ["a", "b", "c"]


def test_iteration_stops_at_stop_iteration():
    q = Queue()

    def produce():
        for i in range(3):
            q.put(i)
        q.put(StopIteration)

    green.spawn(produce)
    assert list(q) == [0, 1, 2]


def test_copy_is_independent_and_keeps_the_type():
    q = LifoQueue(5, items=[1, 2])
    dup = q.copy()
    assert type(dup) is LifoQueue and dup.maxsize == 5 and dup.unfinished_tasks == 2
    dup.put(3)
    assert q.qsize() == 2 and dup.qsize() == 3


def test_queue_zero_warns_and_means_unbounded():
    with pytest.warns(DeprecationWarning, match="Channel"):
        q = Queue(0)
    assert q.maxsize is None


def test_raising_maxsize_lets_blocked_putters_go_on():
    q = Queue(1)
    q.put(0)
    putter = green.spawn(q.put, 1)
    green.sleep(0)
    assert not putter.ready()
    q.maxsize = 2
    putter.join(timeout=5)
    assert putter.successful() and q.qsize() == 2


# -- task_done / join -----------------------------------------------------------------------


def test_join_waits_for_task_done():
    q = JoinableQueue()
    done = []

    def worker():
        for item in q:
            done.append(item)
            q.task_done()

    for i in range(3):
        q.put(i)
    assert q.unfinished_tasks == 3
    assert q.join(timeout=0.01) is False
    w = green.spawn(worker)
    assert q.join(timeout=5) is True and done == [0, 1, 2] and q.unfinished_tasks == 0
    q.put(StopIteration)
    w.join(timeout=5)
    q.task_done()
    with pytest.raises(ValueError, match="too many times"):
        q.task_done()


def test_blocked_forever_names_a_queue_join():
    q = Queue()
    q.put(1)
    with pytest.raises(green.BlockedForever) as info:
        q.join()
    assert "Queue.join()" in str(info.value)


# -- shutdown (3.13 semantics) --------------------------------------------------------------


def test_shutdown_refuses_puts_and_drains_gets():
    q = Queue()
    q.put(1)
    q.shutdown()
    assert q.is_shutdown
    with pytest.raises(ShutDown):
        q.put(2)
    with pytest.raises(ShutDown):
        q.put_nowait(2)
    assert q.get() == 1
    with pytest.raises(ShutDown):
        q.get()
    with pytest.raises(ShutDown):
        q.get_nowait()


def test_shutdown_wakes_blocked_getters_and_putters():
    empty, full = Queue(), Queue(1)
    full.put("x")
    getter = green.spawn(empty.get)
    putter = green.spawn(full.put, "y")
    green.sleep(0)
    empty.shutdown()
    full.shutdown()
    green.joinall([getter, putter], timeout=5)
    assert isinstance(getter.exception, ShutDown) and isinstance(putter.exception, ShutDown)
    assert full.get() == "x" and len(empty.getters) == 0 and len(full.putters) == 0


def test_immediate_shutdown_drops_items_and_releases_join():
    q = Queue()
    for i in range(3):
        q.put(i)
    joiner = green.spawn(q.join)
    green.sleep(0)
    q.shutdown(immediate=True)
    assert joiner.get(timeout=5) is True and q.unfinished_tasks == 0 and q.empty()
    with pytest.raises(ShutDown):
        q.get()


# -- killed and timed-out waiters -----------------------------------------------------------


def test_a_killed_getter_loses_no_item():
    q = Queue()
    first, second = green.spawn(q.get), green.spawn(q.get)
    green.sleep(0)
    first.kill(block=False)  # delivered before the put's wake-up
    q.put("item")
    assert second.get(timeout=5) == "item"
    assert first.dead and isinstance(first.value, green.GreenletExit)
    assert q.empty() and len(q.getters) == 0


def test_a_getter_woken_before_its_kill_keeps_the_item():
    q = Queue()
    getter = green.spawn(q.get)
    green.sleep(0)
    q.put("item")  # its wake-up is scheduled before the kill
    getter.kill(block=False)
    getter.join(timeout=5)
    assert getter.value == "item" and q.empty()


def test_a_timed_out_getter_loses_no_item():
    q = Queue()
    timed = green.spawn(q.get, timeout=0.01)
    patient = green.spawn(q.get)
    timed.join(timeout=5)
    assert isinstance(timed.exception, Empty)
    q.put("item")
    assert patient.get(timeout=5) == "item" and len(q.getters) == 0


def test_a_timeout_during_get_leaves_no_getter():
    q = Queue()
    with pytest.raises(green.Timeout):
        with green.Timeout(0.01):
            q.get()
    assert len(q.getters) == 0
    q.put(1)
    green.sleep(0)
    assert q.get_nowait() == 1


def test_a_killed_putter_adds_nothing():
    q = Queue(1)
    q.put(0)
    doomed, kept = green.spawn(q.put, 1), green.spawn(q.put, 2)
    green.sleep(0)
    doomed.kill(timeout=5)
    assert q.get() == 0 and q.get(timeout=5) == 2
    kept.join(timeout=5)
    assert q.empty() and len(q.putters) == 0


def test_blocked_forever_names_a_greenlet_blocked_on_an_empty_queue():
    q = Queue()

    def consumer():
        return q.get()

    g = green.spawn(consumer)
    g.name = "consumer"
    with pytest.raises(green.BlockedForever) as info:
        g.join()
    text = str(info.value)
    assert "'consumer' waits on Queue.get()" in text and "in consumer" in text


# -- the hub and other threads --------------------------------------------------------------


def test_a_hub_callback_never_waits_on_a_queue():
    full, empty = Queue(1), Queue()
    full.put("a")
    results = []

    def in_hub():
        for call in (lambda: full.put("b"), empty.get, lambda: empty.peek(timeout=5)):
            try:
                call()
            except (Full, Empty) as exc:
                results.append(type(exc))

    green.get_hub().loop.call_soon(in_hub)
    green.sleep(0)
    assert results == [Full, Empty, Empty]


def test_get_from_a_hub_callback_takes_from_waiting_putters():
    q = Queue(1)
    q.put("a")
    putter = green.spawn(q.put, "b")
    green.sleep(0)
    got = []
    green.get_hub().loop.call_soon(lambda: got.extend([q.get_nowait(), q.get_nowait()]))
    green.sleep(0)
    putter.join(timeout=5)
    assert got == ["a", "b"] and putter.successful()


def test_put_from_another_thread_wakes_a_getter():
    q = Queue()
    ready = threading.Event()

    def producer():
        ready.wait(10)
        q.put("from thread")

    t = threading.Thread(target=producer)
    t.start()
    green.get_hub().loop.call_soon(ready.set)
    try:
        assert q.get(timeout=10) == "from thread"  # the timer keeps the hub alive
    finally:
        t.join(10)


# -- Channel --------------------------------------------------------------------------------


def test_channel_put_waits_until_a_getter_takes_the_item():
    ch = Channel()
    assert ch.qsize() == 0 and ch.empty() and ch.full()
    putter = green.spawn(ch.put, "hello")
    green.sleep(0)
    assert not putter.ready() and ch.balance == 1
    assert ch.get(timeout=5) == "hello"
    putter.join(timeout=5)
    assert putter.successful() and ch.balance == 0
    with pytest.raises(ValueError):
        Channel(2)


def test_channel_get_waits_for_a_putter_and_nowait_needs_a_partner():
    ch = Channel()
    with pytest.raises(Full):
        ch.put_nowait(1)
    with pytest.raises(Empty):
        ch.get_nowait()
    getter = green.spawn(ch.get)
    green.sleep(0)
    assert ch.balance == -1
    ch.put_nowait("x")
    assert getter.get(timeout=5) == "x"
    putter = green.spawn(ch.put, "y")
    green.sleep(0)
    assert ch.get_nowait() == "y"
    putter.join(timeout=5)
    assert putter.successful()


def test_channel_timeouts():
    ch = Channel()
    with pytest.raises(Full):
        ch.put(1, timeout=0.01)
    with pytest.raises(Empty):
        ch.get(timeout=0.01)
    assert ch.balance == 0


def test_a_killed_channel_getter_loses_no_item():
    ch = Channel()
    first, second = green.spawn(ch.get), green.spawn(ch.get)
    green.sleep(0)
    first.kill(block=False)
    ch.put("item")
    assert second.get(timeout=5) == "item" and first.dead and ch.balance == 0


def test_channel_iteration():
    ch = Channel()

    def produce():
        for i in range(3):
            ch.put(i)
        ch.put(StopIteration)

    g = green.spawn(produce)
    assert list(ch) == [0, 1, 2]
    g.join(timeout=5)
    assert g.successful()


def test_a_queue_forgets_the_waiters_of_a_destroyed_hub():
    q = Queue()
    orphan = green.spawn(q.get)
    green.sleep(0)
    assert len(q.getters) == 1
    green.get_hub().destroy()  # the orphan never resumes
    getter = green.spawn(q.get)  # a new hub: the queue binds to it, forgetting the orphan
    green.sleep(0)
    q.put("item")
    assert getter.get(timeout=5) == "item" and not orphan.ready() and len(q.getters) == 0
