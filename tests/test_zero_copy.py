"""plait.processes: large buffers through shared memory (pickle protocol 5 out of band), share()."""

from __future__ import annotations

import array
import gc
import os
import pickle
import signal
import sysconfig
import time

import pytest

from plait import WorkerCrashed
from plait.processes import ProcessPool, Shared, _wire, share

np = pytest.importorskip("numpy")

BIG = 256 * 1024  # above the out-of-band threshold
HANG = 60


def ident(x):
    return x


def describe(x):
    view = memoryview(x)
    return type(x).__name__, view.format, view.shape, view.readonly, bytes(view.cast("B")[:4])


def double_in_place(a):
    a *= 2
    return a


def first_half(a):
    return a[: len(a) // 2]


def array_info(a):
    return a.dtype.str, a.shape, a.flags.writeable, float(a.sum())


def try_write(a):
    try:
        a[0] = 1
    except (ValueError, TypeError) as exc:
        return type(exc).__name__
    return "written"


def nested_total(payload):
    return sum(float(a.sum()) for a in payload["arrays"]) + len(payload["blob"])


def die_with(_a, sig):
    os.kill(os.getpid(), sig)
    time.sleep(HANG)


def sleep_with(_a):
    time.sleep(HANG)


def shared_segments() -> int:
    """Mappings of plait segments in this process."""
    with open("/proc/self/maps") as f:
        return sum("plait-shm" in line for line in f)


@pytest.fixture
def pool():
    with ProcessPool(2) as p:
        yield p


def test_small_buffers_stay_in_band():
    data, segments = _wire.dumps((np.zeros(100), b"x" * 1000))
    assert segments is None
    assert np.array_equal(pickle.loads(data)[0], np.zeros(100))


def test_large_buffers_go_out_of_band_and_round_trip():
    a = np.arange(BIG, dtype=np.int64)
    data, segments = _wire.dumps(((a, bytearray(BIG), b"y" * BIG), {}))
    assert segments is not None and len(segments) == 1
    assert len(data) < 4096  # the buffers are not in the message
    (got, ba, by), _ = _wire.loads(data, segments)
    assert np.array_equal(got, a) and type(ba) is bytearray and by == b"y" * BIG


def test_numpy_arrays_round_trip(pool):
    for a in (
        np.arange(BIG, dtype=np.float64),
        np.asfortranarray(np.arange(BIG, dtype=np.int32).reshape(512, -1)),
        np.arange(BIG * 2, dtype=np.int16)[::2],  # not contiguous: pickled in band
        np.zeros((0, 3)),
    ):
        got = pool.submit(ident, a).result()
        assert got.dtype == a.dtype and got.shape == a.shape and np.array_equal(got, a)
        assert got.flags.writeable
        assert pool.submit(array_info, a).result() == (a.dtype.str, a.shape, True, float(a.sum()))


def test_bytes_bytearray_and_memoryview_arguments(pool):
    raw = bytes(range(256)) * (BIG // 256)
    assert pool.submit(describe, raw).result() == ("bytes", "B", (BIG,), True, raw[:4])
    assert pool.submit(describe, bytearray(raw)).result() == ("bytearray", "B", (BIG,), False, raw[:4])
    assert pool.submit(describe, memoryview(raw)).result() == ("memoryview", "B", (BIG,), True, raw[:4])
    doubles = array.array("d", range(BIG // 8))
    got = pool.submit(describe, memoryview(doubles)).result()
    assert got[:4] == ("memoryview", "d", (BIG // 8,), False)
    shaped = memoryview(np.arange(BIG, dtype=np.int32).reshape(256, -1))
    assert pool.submit(describe, shaped).result()[1:3] == (shaped.format, shaped.shape)
    assert pool.submit(ident, raw).result() == raw
    back = pool.submit(ident, memoryview(raw)).result()
    assert type(back) is memoryview and back.readonly and back == raw


def test_results_come_back_with_copy_semantics(pool):
    a = np.arange(BIG, dtype=np.int64)
    doubled = pool.submit(double_in_place, a).result()
    assert np.array_equal(doubled, a * 2)
    assert np.array_equal(a, np.arange(BIG))  # the caller's array is untouched
    half = pool.submit(first_half, a).result()
    assert np.array_equal(half, a[: BIG // 2]) and half.flags.writeable
    half[0] = -1  # the parent owns the result
    assert a[0] == 0


def test_large_results_from_the_worker(pool):
    got = pool.submit(np.ones, BIG).result()
    assert got.shape == (BIG,) and got.sum() == BIG
    results = list(pool.map(np.full, [BIG] * 6, range(6)))
    assert [int(r[-1]) for r in results] == list(range(6))


def test_share_publishes_a_read_only_view(pool):
    a = np.arange(BIG, dtype=np.float64)
    shared = share(a)
    assert isinstance(shared, Shared) and shared.nbytes == a.nbytes
    assert pool.submit(array_info, shared).result() == ("<f8", (BIG,), False, float(a.sum()))
    assert pool.submit(try_write, shared).result() == "ValueError"
    assert sum(pool.map(nested_total, [{"arrays": [shared, shared], "blob": b"ab"}] * 8)) == 8 * (
        2 * float(a.sum()) + 2
    )
    blob = share(b"z" * BIG)
    assert pool.submit(describe, blob).result() == ("memoryview", "B", (BIG,), True, b"zzzz")
    assert pool.submit(try_write, blob).result() == "TypeError"
    view = shared.value
    assert not view.flags.writeable and np.array_equal(view, a)


def test_share_refuses_what_it_cannot_share():
    with pytest.raises(TypeError, match="has none to share"):
        share({"a": 1})
    with pytest.raises(TypeError, match="only be passed to plait ProcessPool tasks"):
        pickle.dumps(share(b"x" * 10))


FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def test_segments_are_freed_after_use(pool):
    gc.collect()
    before = shared_segments()
    results = [pool.submit(ident, np.ones(BIG)).result() for _ in range(4)]
    shared = share(np.ones(BIG))
    view = shared.value
    assert pool.submit(array_info, shared).result()[3] == BIG
    assert shared_segments() >= before + 4
    del results, shared, view
    gc.collect()
    if FREE_THREADED:
        # Without the GIL the results belong to the pool's completer thread, which made them: the
        # last references dropped here queue them for that thread to free (biased reference
        # counting), which it does within its wake-up interval (blocking.rs, PENDING_SLICE).
        deadline = time.monotonic() + HANG
        while shared_segments() != before and time.monotonic() < deadline:
            time.sleep(0.01)
    assert shared_segments() == before


def test_many_queued_tasks_with_segments(pool):
    arrays = [np.full(BIG // 8, i, dtype=np.int64) for i in range(300)]
    futures = [pool.submit(array_info, a) for a in arrays]
    assert [f.result()[3] for f in futures] == [float(i * (BIG // 8)) for i in range(300)]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_crash_while_holding_a_segment_leaks_nothing(sig):
    with ProcessPool(1) as pool:
        crashed = pool.submit(die_with, np.ones(BIG), sig)
        with pytest.raises(WorkerCrashed):
            crashed.result(timeout=HANG)
        assert pool.submit(array_info, np.ones(BIG)).result()[3] == BIG


def test_a_timed_out_task_with_a_segment_leaks_nothing():
    with ProcessPool(1) as pool:
        with pytest.raises(TimeoutError):
            pool.options(timeout=0.5).submit(sleep_with, np.ones(BIG)).result(timeout=HANG)
        assert pool.submit(ident, 3).result() == 3


_kept = []


def keep(a):
    _kept.append(a)
    return a


def bump():
    for a in _kept:
        a += 1
    return len(_kept)


def test_a_worker_keeping_its_argument_does_not_share_the_result():
    with ProcessPool(1) as pool:
        result = pool.submit(keep, np.zeros(BIG // 8)).result()
        assert pool.submit(bump).result() == 1
        assert not result.any()  # the worker's later changes do not reach the caller's result
        result[:] = 7
        assert pool.submit(bump).result() == 1  # nor the caller's changes the worker's copy


def test_fortran_order_memoryviews_keep_their_layout(pool):
    for n in (3, BIG):
        f = np.asfortranarray(np.arange(2 * n).reshape(2, n))
        got = pool.submit(ident, memoryview(f)).result()
        assert got.tolist() == f.tolist()


def test_segments_past_the_descriptor_budget_go_in_band():
    with ProcessPool(1) as pool:
        pool._segment_budget = 4
        futures = [pool.submit(describe, b"x" * BIG) for _ in range(40)]
        assert all(f.result()[1:3] == ("B", (BIG,)) for f in futures)
        assert pool._segments_out.load() == 0


def test_too_many_segments_for_one_task_fail_that_task_only(pool):
    handles = [share(b"h" * 16) for _ in range(260)]
    with pytest.raises(OSError, match="could not be sent to a worker"):
        pool.submit(len, handles).result()
    assert pool.submit(len, handles[:200]).result() == 200


def test_forked_workers_do_not_hold_the_parents_segments():
    handle = share(b"s" * BIG)
    with ProcessPool(1, start_method="fork") as pool:
        worker = pool.submit(os.getpid).result()
        held = [os.readlink(f"/proc/{worker}/fd/{fd}") for fd in os.listdir(f"/proc/{worker}/fd")]
        assert not [h for h in held if "plait-shm" in h]
        assert pool.submit(describe, handle).result()[4] == b"ssss"


_INHERITED: list = []


def drop_inherited_then_return(a):
    _INHERITED.clear()  # the worker's copies of the parent's segments, closed at fork by number
    gc.collect()
    return a


@pytest.mark.parametrize("rounds", [3])
def test_forked_worker_dropping_inherited_segments_keeps_received_ones(rounds):
    """A forked worker closes the parent's segment descriptors by number; a segment received
    later may take one of those numbers, and dropping the inherited object must not close it."""
    _INHERITED.extend(share(bytes([i]) * BIG) for i in range(8))
    try:
        with ProcessPool(1, start_method="fork") as pool:
            for r in range(rounds):
                a = np.arange(BIG // 8, dtype=np.int64) + r
                back = pool.submit(drop_inherited_then_return, a).result(timeout=60)
                assert np.array_equal(back, a)
    finally:
        _INHERITED.clear()


def make_lock():
    from plait.processes import Lock

    return Lock()


def try_lock(lock):
    if not lock.acquire(timeout=0.5):
        return "busy"
    lock.release()
    return "acquired"


def test_an_ipc_object_returned_by_a_task_can_be_passed_on(pool):
    lock = pool.submit(make_lock).result()
    assert pool.submit(try_lock, lock).result() == "acquired"
    with lock:
        assert pool.submit(try_lock, lock).result(timeout=30) == "busy"
    # Large results keep no descriptor once unpickled.
    before = len(os.listdir("/proc/self/fd"))
    results = [pool.submit(np.ones, BIG).result() for _ in range(20)]
    assert len(os.listdir("/proc/self/fd")) <= before + 1
    del results
