"""The measurement behind ``plait scale``: a function's throughput (calls per second) under each of
plait's concurrency models at each worker count.

Each point gets a time budget (``duration``): a fifth of it warms up (pool started, caches and
imports warm, the chunk size calibrated), the rest is split into ``repeats`` timed repeats. A
repeat submits chunks of calls through the model's pool (``map``-style, the way the pools are
meant to be used) until its share of the budget is spent; a chunk doubles while it is short, so
a fast function is not dominated by the cost of a round trip. The point's throughput is the
median of the repeats, its spread their min and max.

The models, each with plait's own pool of ``n`` workers:

- ``threads``: :class:`plait.threads.ThreadPool`.
- ``processes``: :class:`plait.processes.ProcessPool` (the function and its arguments must pickle).
- ``green``: :class:`plait.green.pool.Pool` in a thread of its own (its hub is that thread's); a
  blocking call that is not cooperative (unpatched ``time.sleep``, a CPU loop) serialises the
  greenlets: that is what the measurement shows.
- ``aio``: ``n`` tasks on a :func:`plait.aio.new_event_loop` loop awaiting the function, for a
  coroutine function only. A plain function under asyncio would run in a thread pool through
  ``run_in_executor``, which is the ``threads`` model measured again, so ``aio`` is skipped for it
  (and the other models for a coroutine function), with the reason in the report.
"""

from __future__ import annotations

import inspect
import itertools
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

MODELS = ("threads", "processes", "aio", "green")

# At most this many argument tuples are taken from --args-from (they are cycled).
MAX_ARGS = 100_000


@dataclass(frozen=True)
class Point:
    """One measured point: ``throughput`` (median calls/s over the repeats) of ``model`` with
    ``workers`` workers, the repeats' spread ``low``..``high``, and the calls timed."""

    model: str
    workers: int
    throughput: float
    low: float
    high: float
    calls: int
    repeats: tuple[float, ...] = ()


class Skipped(Exception):
    """A model that cannot run this function; the message says why."""


def _arg_cycle(args: Sequence[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    return itertools.cycle(args) if args else itertools.repeat(())


def normalize_args(source: Iterable[Any] | None) -> list[tuple[Any, ...]]:
    """The argument tuples from ``--args-from``'s generator: a tuple is the arguments, anything
    else one argument; at most :data:`MAX_ARGS`. ``None``: call with no arguments."""
    if source is None:
        return []
    return [a if isinstance(a, tuple) else (a,) for a in itertools.islice(source, MAX_ARGS)]


def _measure(
    run_chunk: Callable[[list[tuple[Any, ...]]], None],
    workers: int,
    args: Iterator[tuple[Any, ...]],
    duration: float,
    repeats: int,
) -> tuple[list[float], int]:
    """Warms up, then times ``repeats`` repeats; returns each repeat's calls/s and the calls timed."""
    calls = workers

    def chunk(n: int) -> float:
        batch = list(itertools.islice(args, n))
        start = time.perf_counter()
        run_chunk(batch)
        return time.perf_counter() - start

    warm = duration * 0.2
    spent = 0.0
    while spent < warm:
        elapsed = chunk(calls)
        spent += elapsed
        if elapsed < warm / 4:
            calls *= 2
    per_repeat = (duration - warm) / repeats
    rates: list[float] = []
    total = 0
    for _ in range(repeats):
        done, spent = 0, 0.0
        while spent < per_repeat:
            elapsed = chunk(calls)
            done += calls
            spent += elapsed
            if elapsed < per_repeat / 4:
                calls *= 2
        rates.append(done / spent)
        total += done
    return rates, total


def _point(model: str, workers: int, rates: list[float], calls: int) -> Point:
    return Point(model, workers, statistics.median(rates), min(rates), max(rates), calls, tuple(rates))


def _threads(
    func: Callable[..., Any], workers: int, args: Iterator[tuple[Any, ...]], duration: float, repeats: int
) -> Point:
    from plait.threads import ThreadPool

    with ThreadPool(workers) as pool:
        rates, calls = _measure(
            lambda batch: _drain(pool.starmap(func, batch)), workers, args, duration, repeats
        )
    return _point("threads", workers, rates, calls)


def _processes(
    func: Callable[..., Any], workers: int, args: Iterator[tuple[Any, ...]], duration: float, repeats: int
) -> Point:
    from plait.processes import ProcessPool

    with ProcessPool(workers) as pool:
        rates, calls = _measure(
            lambda batch: _drain(pool.starmap(func, batch)), workers, args, duration, repeats
        )
    return _point("processes", workers, rates, calls)


def _aio(
    func: Callable[..., Any], workers: int, args: Iterator[tuple[Any, ...]], duration: float, repeats: int
) -> Point:
    import plait.aio

    async def run(batch: list[tuple[Any, ...]]) -> None:
        it = iter(batch)

        async def worker() -> None:
            for a in it:
                await func(*a)

        import asyncio

        await asyncio.gather(*(worker() for _ in range(workers)))

    loop = plait.aio.new_event_loop()
    try:
        rates, calls = _measure(
            lambda batch: loop.run_until_complete(run(batch)), workers, args, duration, repeats
        )
    finally:
        loop.close()
    return _point("aio", workers, rates, calls)


def _green(
    func: Callable[..., Any], workers: int, args: Iterator[tuple[Any, ...]], duration: float, repeats: int
) -> Point:
    result: list[Any] = []

    def body() -> None:
        from plait.green import get_hub
        from plait.green.pool import Pool

        pool = Pool(workers)
        try:
            result.append(
                _measure(lambda batch: pool.map(lambda a: func(*a), batch), workers, args, duration, repeats)
            )
        except BaseException as e:  # handed to the caller's thread
            result.append(e)
        finally:
            pool.kill()
            get_hub().destroy()

    # The hub belongs to the thread that made it: a thread of its own keeps this one's loop free.
    t = threading.Thread(target=body, name="plait-scale-green")
    t.start()
    t.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    rates, calls = result[0]
    return _point("green", workers, rates, calls)


_RUNNERS: dict[str, Callable[..., Point]] = {
    "threads": _threads,
    "processes": _processes,
    "aio": _aio,
    "green": _green,
}


def _drain(it: Iterable[Any]) -> None:
    for _ in it:
        pass


def check_model(func: Callable[..., Any], model: str) -> None:
    """Raises :class:`Skipped` with the reason when ``model`` cannot measure ``func``."""
    if model not in _RUNNERS:
        raise ValueError(f"unknown model {model!r}: choose from {', '.join(MODELS)}")
    is_coro = inspect.iscoroutinefunction(func)
    if model == "aio" and not is_coro:
        raise Skipped(
            "the function is not a coroutine function: under asyncio it would run in a thread pool "
            "(run_in_executor), which is the threads model again; give an `async def` to measure the "
            "event loop"
        )
    if model != "aio" and is_coro:
        raise Skipped(
            f"the function is a coroutine function: {model} would only create coroutines; only aio runs it"
        )


def measure(
    func: Callable[..., Any],
    model: str,
    workers: int,
    args: Sequence[tuple[Any, ...]] = (),
    *,
    duration: float = 5.0,
    repeats: int = 3,
) -> Point:
    """Measures ``func``'s throughput under ``model`` with ``workers`` workers for about
    ``duration`` seconds. Raises :class:`Skipped` when the model cannot run the function."""
    check_model(func, model)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not (duration > 0 and repeats >= 1):
        raise ValueError(f"duration must be above 0 and repeats at least 1, got {duration}, {repeats}")
    return _RUNNERS[model](func, workers, _arg_cycle(args), duration, repeats)
