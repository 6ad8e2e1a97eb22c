"""The chunk planner of ``ProcessPool``'s maps (``map``, ``starmap``, ``imap``, ``imap_unordered``).

A map's items travel in chunks: :class:`Plan` sizes them from the measured task time and keeps a
few per worker in flight; :func:`results_of` yields their items in order or as they finish. The
chunk loop that runs in the worker (:class:`Runner` around :func:`run_chunk` or
:func:`run_chunk1`) lives here too, so a worker that unpickles it imports only this module.
The planner knows the pool only through :class:`Submitter`.
"""

from __future__ import annotations

import collections
import functools
import itertools
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from .. import _plait

if TYPE_CHECKING:
    from .._pool import Future
    from .._progress import Progress

__all__ = [
    "TIMED_OUT",
    "PackedNumbers",
    "Plan",
    "Reader",
    "Runner",
    "Submitter",
    "check_chunksize",
    "results_of",
    "run_chunk",
    "run_chunk1",
    "snapshot",
]


class Submitter(Protocol):
    """What a plan needs of its pool (``ProcessPool``)."""

    _max_workers: int
    _plans: weakref.WeakSet[Plan]

    def _submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
    ) -> Future: ...

    def _stop(self, futures: list[Future]) -> None: ...


class Runner(functools.partial):  # type: ignore[type-arg]
    """A map's chunk loop bound to its function (see ``ProcessPool._chunk_runner``): as
    stateless as that function, so it is sent once per worker when the function is plain."""

    __slots__ = ()


def run_chunk1(
    fn: Callable[..., Any], chunk: Iterable[Any], packed: bytes | None = None
) -> tuple[list[Any], _Traced | None, float]:
    """Runs in the worker: ``fn(item)`` for each item, stopping at the first exception; also
    returns the time it took (chunk sizes adapt to it). With ``packed``, the chunk came as
    numbers packed by :meth:`Plan._submit` (``chunk`` is their kind, see ``_plait.pack_numbers``)."""
    results: list[Any] = []
    start = time.perf_counter()
    if packed is not None:
        chunk = _plait.unpack_numbers(chunk, packed)
    try:
        results.extend(map(fn, chunk))  # keeps the results before an exception
    except Exception as exc:
        return results, _Traced(exc), time.perf_counter() - start
    return _compact(results), None, time.perf_counter() - start


def run_chunk(
    fn: Callable[..., Any], chunk: list[tuple[Any, ...]]
) -> tuple[list[Any], _Traced | None, float]:
    """Runs in the worker: ``fn(*args)`` for each item, stopping at the first exception."""
    results: list[Any] = []
    start = time.perf_counter()
    try:
        results.extend(itertools.starmap(fn, chunk))  # keeps the results before an exception
    except Exception as exc:
        return results, _Traced(exc), time.perf_counter() - start
    return _compact(results), None, time.perf_counter() - start


class _Traced:
    """A chunk's exception on its way to the parent: it unpickles as the exception itself with
    the worker's traceback as its ``__cause__`` (a ``RemoteTraceback``), as a task's does."""

    __slots__ = ("exc", "tb")

    def __init__(self, exc: BaseException) -> None:
        import traceback  # only on the error path: workers import this module at start

        self.exc = exc
        self.tb = "".join(traceback.format_exception(exc))

    def __reduce__(self) -> Any:
        return _with_traceback, (self.exc, self.tb)


def _with_traceback(exc: BaseException, tb: str) -> BaseException:
    from ..exceptions import RemoteTraceback

    exc.__cause__ = RemoteTraceback(f'\n"""\n{tb}"""')
    return exc


#: Lists of numbers at least this long travel packed (see :func:`_compact`).
PACK_MIN = 256


def _compact(results: list[Any]) -> Any:
    """A long list of exact ints (64-bit) or exact floats as ``(kind, bytes)`` (see
    ``_plait.pack_numbers``): one block of bytes to pickle (a few ns per number, against ~10
    for pickle), and the receiver rebuilds the numbers about twice as fast as it would unpickle
    them one by one; other lists as they are. Chunks of items travel the same way."""
    if len(results) >= PACK_MIN:
        return _plait.pack_numbers(results) or results
    return results


class PackedNumbers:
    """A map's input list of numbers, packed once when the map is called (a snapshot, as the
    list copy it replaces was, at a fraction of the cost: no reference to touch per item). Its
    slices are chunks already packed."""

    __slots__ = ("data", "kind")

    def __init__(self, kind: str, data: bytes) -> None:
        self.kind = kind
        self.data = data

    def __len__(self) -> int:
        return len(self.data) // 8

    def __getitem__(self, where: slice) -> PackedChunk:
        start, stop, _ = where.indices(len(self))
        return PackedChunk(self.kind, self.data[start * 8 : stop * 8])


class PackedChunk:
    """A slice of :class:`PackedNumbers`: what ``run_chunk1(fn, kind, data)`` unpacks."""

    __slots__ = ("data", "kind")

    def __init__(self, kind: str, data: bytes) -> None:
        self.kind = kind
        self.data = data

    def __len__(self) -> int:
        return len(self.data) // 8


def snapshot(source: Iterable[Any]) -> PackedNumbers | list[Any]:
    """A map's items, taken when the map is called: :class:`PackedNumbers` when they are a long
    list of exact ints (64-bit) or exact floats (no copy of the list), else a list."""
    items = source if type(source) is list else list(source)
    if len(items) >= PACK_MIN:
        packed = _plait.pack_numbers(items)
        if packed is not None:
            return PackedNumbers(*packed)
    return list(items) if items is source else items


def _count(results: Any) -> int:
    return len(results[1]) // 8 if type(results) is tuple else len(results)


def check_chunksize(chunksize: int | None) -> None:
    if chunksize is not None and chunksize < 1:
        raise ValueError("chunksize must be >= 1")


class Plan:
    """The chunks of one map: sized from the measured task time, kept a few per worker in flight.

    A sequence (list, tuple, range) is scheduled eagerly: each finished chunk submits the next
    from the completer thread (so the work goes on whether or not results are being read), and
    ``shutdown()`` submits whatever is left at once. Any other iterable is read lazily, a window
    of chunks ahead of the consumer, on the consumer's thread only and never under the plan's
    lock (user generators never run on the pool's threads, nor block them).
    """

    #: Target duration of one chunk: a few ms at least (the per-chunk cost is ~10 us), at most
    #: this much (so a Ctrl-C or a timeout kills little work, and the end of a map balances).
    MIN_CHUNK_S = 0.002
    MAX_CHUNK_S = 0.2
    #: Largest probe (a chunk sized before any duration is measured) of an eager map.
    MAX_PROBE = 16

    def __init__(
        self,
        pool: Submitter,
        runner: Callable[..., Any],
        items: Iterable[Any],
        chunksize: int | None,
        task_timeout: float | None,
        ordered: bool,
    ) -> None:
        self.pool = pool
        self.ordered = ordered
        self.runner = runner
        self.fixed = chunksize
        self.task_timeout = task_timeout
        self.workers = pool._max_workers
        self.window = 2 * self.workers
        # A pool whose tasks cost more to send (a cluster backend: milliseconds, not ~10 us)
        # asks for longer chunks.
        self.MIN_CHUNK_S = getattr(pool, "_min_chunk_s", self.MIN_CHUNK_S)
        # Chunks of numbers for fn(item) go packed (run_chunk1 unpacks them).
        self.packs = getattr(runner, "func", None) is run_chunk1
        self.eager = isinstance(items, (list, tuple, range, PackedNumbers))
        self.items: Any = items if self.eager else None
        self.source = None if self.eager else iter(items)
        self.n: int | None = len(items) if self.eager else None  # type: ignore[arg-type]
        self.taken = 0  # items handed to chunks
        self.submitted = 0  # chunks
        self.exhausted = False
        self.per_item: float | None = None  # seconds, smoothed
        self.order: collections.deque[Future] = collections.deque()  # submitted, not yet consumed
        self.finished: collections.deque[Future] = collections.deque()  # done, in completion order
        self.live: set[Future] = set()  # not yet consumed
        self.in_flight = 0
        self.cond = threading.Condition(threading.RLock())  # callbacks may run inside submit
        self.stopped = False
        self.failure: BaseException | None = None  # raised after the results submitted before it
        if self.eager:
            pool._plans.add(self)
        self.top_up()

    def _size(self, everything: bool = False) -> int:
        if self.fixed is not None:
            return self.fixed
        remaining = self.n - self.taken if self.n is not None else None
        if self.per_item is None:
            if remaining is None:
                return 1  # a lazy probe: its duration sizes every later chunk
            if everything:  # shutdown() with nothing measured: multiprocessing's default
                return max(1, -(-remaining // (self.workers * 4)))
            # Probes of 1, 2, 4, ... items, never more than a small share of the map.
            size = min(1 << min(self.submitted, 8), self.MAX_PROBE)
            return max(1, min(size, remaining // (self.workers * 8)))
        if remaining is None:
            target = self.MAX_CHUNK_S / 4
        else:
            spread = remaining * self.per_item / self.workers / 8
            target = min(self.MAX_CHUNK_S, max(self.MIN_CHUNK_S, spread))
        per_item = max(self.per_item, 1e-9)
        size = max(1, int(target / per_item))
        if remaining is not None:
            size = min(size, -(-remaining // self.workers))  # every worker gets a share
            if remaining - size < self.MIN_CHUNK_S / per_item:
                size = remaining  # the rest is too little to split further
        return size

    def more(self) -> bool:
        """Whether items are left to submit."""
        if self.n is not None:
            return self.taken < self.n
        return not self.exhausted

    def _room(self, everything: bool) -> bool:
        if self.stopped or not self.more():
            return False
        if everything:
            return True
        # Eager: chunks in flight (finished ones make room at once). Lazy: chunks not yet
        # consumed, so a slow consumer holds the reading back.
        return (self.in_flight if self.eager else len(self.live)) < self.window

    def _submit(self, chunk: Any) -> Future | None:
        """Submits one chunk (with ``cond`` held, so chunks queue in order)."""
        args = (chunk,)
        if type(chunk) is PackedChunk:
            args = (chunk.kind, chunk.data)
        elif self.packs and type(chunk) is list and len(chunk) >= PACK_MIN:
            # (kind, bytes) when every item is an exact int (64-bit) or every one a float: the
            # worker's run_chunk1(fn, kind, bytes) rebuilds the list. It stops at the first item
            # of another type, so other lists cost one look.
            args = _plait.pack_numbers(chunk) or args
        try:
            future = self.pool._submit(self.runner, args, {}, self.task_timeout)
        except BaseException as exc:
            self.failure = exc
            self.stopped = True
            return None
        self.in_flight += 1
        self.submitted += 1
        self.order.append(future)
        self.live.add(future)
        return future

    def top_up(self, everything: bool = False) -> None:
        """Submits chunks until the window is full (``everything``: all that is left; a lazy
        plan then reads the rest of its input here). Called without ``cond`` held."""
        while True:
            if self.eager:
                with self.cond:
                    if not self._room(everything):
                        break
                    size = self._size(everything)
                    chunk = self.items[self.taken : self.taken + size]
                    self.taken += len(chunk)
                    future = self._submit(chunk)
            else:
                with self.cond:
                    if not self._room(everything):
                        break
                    size = self._size(everything)
                try:
                    chunk = list(itertools.islice(self.source, size))  # type: ignore[arg-type]
                except BaseException as exc:  # the input itself raised: after the results before it
                    with self.cond:
                        self.failure = exc
                        self.exhausted = True
                    break
                with self.cond:
                    self.taken += len(chunk)
                    if len(chunk) < size:
                        self.exhausted = True
                    future = self._submit(chunk) if chunk else None
            if future is None:
                break
            future.add_done_callback(self._done)
        with self.cond:
            self.cond.notify_all()

    def _done(self, future: Future) -> None:
        with self.cond:
            self.in_flight -= 1
            if not self.ordered:
                self.finished.append(future)
            if not future.cancelled() and future.exception() is None:
                results, error, elapsed = future.result()
                count = _count(results) + (error is not None)
                if count and self.fixed is None:
                    per = elapsed / count
                    self.per_item = per if self.per_item is None else (self.per_item + per) / 2
            self.cond.notify_all()
        if self.eager:
            self.top_up()

    def stop(self) -> None:
        """No more chunks; queued ones are cancelled and running ones' workers stopped."""
        with self.cond:
            self.stopped = True
            pending = [f for f in self.live if not f.done()]
        self.pool._stop(pending)


def results_of(plan: Plan, timeout: float | None, bar: Progress | None) -> Iterator[Any]:
    """The items of ``plan``'s results, in order or as finished; a chunk's error is raised after
    the results it produced before it. ``timeout`` counts from now (the call to ``map``).
    Native per item (``_plait.Flatten``): a generator here would cost more per item than
    everything else the parent does for it."""
    end = None if timeout is None else time.monotonic() + timeout
    return _plait.Flatten(_chunks(plan, end, bar), plan.n or 0)  # type: ignore[no-any-return]


def _chunks(plan: Plan, end: float | None, bar: Progress | None) -> Iterator[list[Any]]:
    reader = Reader(plan, bar)
    try:
        while True:
            chunk = reader.next_chunk(end)
            if chunk is TIMED_OUT:
                raise TimeoutError
            if chunk is None:
                return
            yield chunk
    finally:
        # Stopped early (an error, a timeout, Ctrl-C, the iterator closed): queued chunks are
        # cancelled and running ones stopped, so their workers are free at once.
        reader.close()
        plan.stop()


#: What :meth:`Reader.next_chunk` returns when its deadline passes first.
TIMED_OUT: Any = object()


class Reader:
    """Takes a plan's results one chunk at a time, in order or as they finish: what
    :func:`results_of` iterates, and what ``Pool``'s ``imap`` iterators call with a timeout per
    item. Reading goes on after a timeout and after an error (the error is that chunk's only).
    Call from one thread at a time."""

    def __init__(self, plan: Plan, bar: Progress | None = None) -> None:
        self.plan = plan
        self.bar = bar
        self.error: BaseException | None = None  # raised by the next call, after its chunk
        self.ended = False

    def next_chunk(self, end: float | None) -> list[Any] | None:
        """The next chunk's results; None once every chunk was read; ``TIMED_OUT`` when none is
        ready by ``end`` (``time.monotonic()``; None: no limit), with nothing consumed. Raises a
        chunk's error after the results it produced before it, the error of a chunk that
        produced none (a crash, a timeout, a cancel) in its place, and an error of the input
        (or of submitting) after every chunk submitted before it."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        plan = self.plan
        ordered = plan.ordered
        while True:
            if self.ended:
                return None
            if not plan.eager:
                plan.top_up()  # read the next items here, on the consumer's thread
            with plan.cond:
                while True:
                    future: Future | None
                    if ordered and plan.order and plan.order[0].done():
                        future = plan.order.popleft()
                        break
                    if not ordered and plan.finished:
                        future = plan.finished.popleft()
                        break
                    if not plan.live:
                        if plan.failure is not None:
                            self.ended = True
                            failure, plan.failure = plan.failure, None
                            raise failure
                        if not plan.more():
                            self.ended = True
                            return None
                    if not plan.eager and plan._room(False):
                        future = None  # room to read more input
                        break
                    remaining = None if end is None else end - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return TIMED_OUT  # type: ignore[no-any-return]
                    plan.cond.wait(remaining)
                if future is not None:
                    # Consumed: the plan forgets it (a long map keeps no results it already gave).
                    plan.live.discard(future)
            if future is None:
                continue
            results, error, _ = future.result(0)
            if type(results) is tuple:
                results = _plait.unpack_numbers(*results)
            if self.bar is not None:
                self.bar.update(len(results))
            self.error = error
            return results  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
