"""plait.processes.ProcessPool.map with lists of numbers: chunks of exact ints (64-bit) or exact
floats travel packed both ways (``_planner.PACK_MIN`` items or more); everything else, and every
value that does not fit, travels pickled. Either way the results are the same objects' values
and types as a local ``map``."""

from __future__ import annotations

import math
import struct

import pytest

from plait import _plait
from plait.processes import ProcessPool
from plait.processes._planner import PACK_MIN

I64 = (-(2**63), 2**63 - 1)


def describe(x):
    """What the worker received: its type and value (a float by its bits: nan, -0.0)."""
    if type(x) is float:
        return ("float", struct.pack("<d", x))
    return (type(x).__name__, x)


def negate(x):
    return -x


@pytest.fixture
def pool():
    with ProcessPool(max_workers=2, start_method="spawn") as p:
        yield p


def local(fn, items):
    return [fn(x) for x in items]


@pytest.mark.parametrize(
    "items",
    [
        pytest.param(list(range(-5000, 5000)), id="ints"),
        pytest.param([*I64, 0, -1] * 200, id="int64-extremes"),
        pytest.param(
            [*(float(i) / 7 for i in range(3000)), math.nan, -0.0, math.inf, -math.inf], id="floats"
        ),
        pytest.param([*range(3000), 2**63], id="an-int-past-int64-at-the-end"),
        pytest.param([2**64, *range(3000)], id="an-int-past-int64-first"),
        pytest.param([*range(3000), True], id="a-bool-among-ints"),
        pytest.param([*[1.5] * 1000, 1], id="an-int-among-floats"),
        pytest.param([str(i) for i in range(1000)], id="strings"),
        pytest.param(list(range(PACK_MIN - 1)), id="shorter-than-packed"),
    ],
)
def test_map_gives_each_item_as_sent(pool, items):
    # chunksize=len: one chunk, so the packed path sees every kind of list whole.
    assert list(pool.map(describe, items, chunksize=len(items))) == local(describe, items)
    assert list(pool.map(describe, items)) == local(describe, items)


def test_results_that_are_numbers_come_back_as_numbers(pool):
    ints = list(range(-3000, 3000))
    assert list(pool.map(negate, ints)) == local(negate, ints)
    floats = [i / 3 for i in range(3000)]
    got = list(pool.map(negate, floats))
    assert got == local(negate, floats) and all(type(x) is float for x in got)


def test_a_tuple_of_items_and_a_lazy_input_are_packed_too(pool):
    ints = tuple(range(5000))
    assert list(pool.map(negate, ints, chunksize=1000)) == local(negate, ints)
    assert list(pool.imap(negate, iter(ints), chunksize=1000)) == local(negate, ints)
    assert sorted(pool.imap_unordered(negate, iter(ints), chunksize=1000)) == sorted(local(negate, ints))


def test_pack_numbers_round_trips_and_declines_what_it_cannot_pack():
    for items in ([*I64, 0, 5], [0.5, math.inf, -0.0]):
        kind, data = _plait.pack_numbers(items)
        back = _plait.unpack_numbers(kind, data)
        assert [describe(x) for x in back] == [describe(x) for x in items]
    for items in ([1, 2**63], [1, 1.0], [1.0, 1], [True, 1], ["a"], [1, None]):
        assert _plait.pack_numbers(items) is None
    with pytest.raises(ValueError):
        _plait.unpack_numbers("x", b"\0" * 8)
    with pytest.raises(ValueError):
        _plait.unpack_numbers("q", b"\0" * 9)


def test_chunks_of_numbers_are_sent_packed(pool, monkeypatch):
    sent = []
    submit = pool._submit

    def record(fn, args, kwargs, timeout):
        sent.append(args)
        return submit(fn, args, kwargs, timeout)

    monkeypatch.setattr(pool, "_submit", record)
    assert list(pool.map(negate, list(range(4000)), chunksize=1000)) == local(negate, range(4000))
    assert [(kind, len(data)) for kind, data in sent] == [("q", 8000)] * 4
    sent.clear()
    words = [str(i) for i in range(1000)]
    assert list(pool.map(str.upper, words, chunksize=1000)) == words
    assert sent == [(words,)]


def test_flatten_hands_out_each_item_once_and_lets_go_of_it():
    lists = [[object() for _ in range(3)], [], [object(), object()]]
    ids = [id(x) for chunk in lists for x in chunk]
    flat = _plait.Flatten(iter(lists))
    first = next(flat)
    assert id(first) == ids[0] and lists[0][0] is None
    rest = list(flat)
    assert [id(x) for x in rest] == ids[1:] and lists == [[None] * 3, [], [None] * 2]
    assert list(flat) == []
    # Other chunks are iterated as they are, like itertools.chain.from_iterable.
    assert list(_plait.Flatten([(1, 2), range(3, 5), "ab", [6]])) == [1, 2, 3, 4, "a", "b", 6]
    with pytest.raises(TypeError):
        _plait.Flatten(5)
    with pytest.raises(TypeError):
        list(_plait.Flatten([[1], 2]))


def test_flatten_passes_on_an_error_of_its_chunks_and_closes_them_when_dropped():
    closed = []

    def chunks():
        try:
            yield [1, 2]
            yield [3]
            raise KeyError("input")
        finally:
            closed.append(True)

    flat = _plait.Flatten(chunks())
    assert [next(flat), next(flat), next(flat)] == [1, 2, 3]
    with pytest.raises(KeyError):
        next(flat)
    assert closed == [True] and list(flat) == []
    flat = _plait.Flatten(chunks())
    assert next(flat) == 1
    del flat  # the generator is dropped with it: its finally runs, as with chain.from_iterable
    assert closed == [True, True]


def test_map_keeps_no_reference_to_a_result_it_handed_out(pool):
    import sys

    items = [str(i) for i in range(5000)]
    it = pool.map(describe, items, chunksize=5000)
    first = next(it)  # a new tuple
    # The consumer's name and getrefcount's argument: nothing in the pool holds it.
    assert sys.getrefcount(first) == 2
    assert list(it) == local(describe, items[1:])


@pytest.mark.parametrize("items", [list(range(3000)), [str(i) for i in range(3000)]], ids=["ints", "strings"])
def test_map_takes_its_items_when_called(pool, items):
    expected = local(describe, items)
    it = pool.map(describe, items, chunksize=100)
    items[:] = [None] * len(items)  # later changes to the list do not reach the map
    assert list(it) == expected
