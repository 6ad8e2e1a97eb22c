"""The iterators behind ``Group.imap``/``imap_unordered`` (and the thread pool's): a greenlet
that spawns one task per item through the pool's ``spawn`` and queues each result as it comes
(gevent's ``gevent._imap``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ._greenlet import Greenlet
from .lock import Semaphore
from .queue import UnboundQueue

__all__ = ["IMap", "IMapUnordered"]


class _Failure:
    """A task's (or the iterator's own) exception, queued to be raised by ``__next__``."""

    __slots__ = ("exc", "raise_exception")

    def __init__(self, exc: BaseException, raise_exception: Callable[[], Any] | None = None) -> None:
        self.exc = exc
        self.raise_exception = raise_exception


def _raise(failure: _Failure) -> Any:
    if failure.raise_exception is not None:
        return failure.raise_exception()
    raise failure.exc


class IMapUnordered(Greenlet):
    """An iterator of ``func``'s results over ``iterable``, in the order they finish. ``spawn``
    starts a task (it may wait for a free slot, which bounds the concurrency). ``maxsize``:
    at most that many finished results wait for the reader; past it, no new task starts."""

    def __init__(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        spawn: Callable[..., Any],
        maxsize: int | None = None,
        _zipped: bool = False,
    ) -> None:
        Greenlet.__init__(self)
        self._spawn_task: Callable[..., Any] | None = spawn
        self._zipped = _zipped
        self.func: Callable[..., Any] | None = func
        self.iterable: Iterable[Any] | None = iterable
        self.queue = UnboundQueue()
        # A semaphore, not a bounded queue: a finished task's result would otherwise wait in
        # its greenlet while the next task starts anyway.
        self._result_semaphore: Semaphore | None = Semaphore(maxsize) if maxsize else None
        self._outstanding_tasks = 0
        self._max_index = -1  # the index of the last task started
        self.finished = False

    def __iter__(self) -> IMapUnordered:
        return self

    def __next__(self) -> Any:
        if self._result_semaphore is not None:
            self._result_semaphore.release()
        value = self._inext()
        if isinstance(value, _Failure):
            _raise(value)
        return value

    def _inext(self) -> Any:
        return self.queue.get()

    def _ispawn(self, func: Callable[..., Any], item: Any, item_index: int) -> Any:
        if self._result_semaphore is not None:
            self._result_semaphore.acquire()
        self._outstanding_tasks += 1
        spawn = self._spawn_task
        assert spawn is not None
        task = spawn(func, *item) if self._zipped else spawn(func, item)
        task._imap_task_index = item_index
        task.rawlink(self._on_result)
        return task

    def _run(self) -> None:  # type: ignore[override]
        try:
            func = self.func
            assert func is not None and self.iterable is not None
            for item in self.iterable:
                self._max_index += 1
                self._ispawn(func, item, self._max_index)
            self._on_finish(None)
        except BaseException as exc:
            self._on_finish(exc)
            raise
        finally:
            self._spawn_task = None
            self.func = None
            self.iterable = None
            self._result_semaphore = None

    def _on_result(self, task: Any) -> None:
        # In the hub (a raw link).
        self._outstanding_tasks -= 1
        put_finished = False
        if self.ready() and self._outstanding_tasks <= 0 and not self.finished:
            self.finished = put_finished = True
        if task.successful():
            self.queue.put(self._iqueue_value_for_success(task))
        else:
            self.queue.put(self._iqueue_value_for_failure(task))
        if put_finished:
            self.queue.put(self._iqueue_value_for_self_finished())

    def _on_finish(self, exception: BaseException | None) -> None:
        # In this greenlet, once every task was started.
        if self.finished:
            return
        if exception is not None:
            self.finished = True
            self.queue.put(self._iqueue_value_for_self_failure(exception))
            return
        if self._outstanding_tasks <= 0:
            self.finished = True
            self.queue.put(self._iqueue_value_for_self_finished())

    def _iqueue_value_for_success(self, task: Any) -> Any:
        return task.value

    def _iqueue_value_for_failure(self, task: Any) -> Any:
        return _Failure(task.exception, getattr(task, "_raise_exception", None))

    def _iqueue_value_for_self_finished(self) -> Any:
        return _Failure(StopIteration())

    def _iqueue_value_for_self_failure(self, exception: BaseException) -> Any:
        return _Failure(exception)


class IMap(IMapUnordered):
    """:class:`IMapUnordered` that yields the results in the order of the items."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._results: dict[int, Any] = {}  # finished out of order: {index: value}
        self.index = 0  # the index of the next result to yield
        IMapUnordered.__init__(self, *args, **kwargs)

    def _inext(self) -> Any:
        try:
            value = self._results.pop(self.index)
        except KeyError:
            while True:
                index, value = self.queue.get()
                if index == self.index:
                    break
                self._results[index] = value
        self.index += 1
        return value

    def _iqueue_value_for_success(self, task: Any) -> Any:
        return (task._imap_task_index, IMapUnordered._iqueue_value_for_success(self, task))

    def _iqueue_value_for_failure(self, task: Any) -> Any:
        return (task._imap_task_index, IMapUnordered._iqueue_value_for_failure(self, task))

    def _iqueue_value_for_self_finished(self) -> Any:
        return (self._max_index + 1, IMapUnordered._iqueue_value_for_self_finished(self))

    def _iqueue_value_for_self_failure(self, exception: BaseException) -> Any:
        return (self._max_index + 1, IMapUnordered._iqueue_value_for_self_failure(self, exception))
