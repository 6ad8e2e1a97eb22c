"""Real OS threads for plait.green's own workers (the DNS resolver), whatever was patched.

``patch_thread`` turns ``threading.Thread`` (and so ``concurrent.futures``' pools) into
greenlets, and ``patch_queue`` the queues: a blocking C call made there would block the hub.
The originals are taken here when plait.green is imported (before any patching, since the
patches are plait.green's own), and only C-level objects are used between threads.
"""

from __future__ import annotations

import _queue
import _thread
from collections.abc import Callable
from typing import Any

__all__ = ["NativeWorkers"]

_start_new_thread = _thread.start_new_thread
_allocate_lock = _thread.allocate_lock
_SimpleQueue = _queue.SimpleQueue

#: ``done(result, error)``, called in the worker thread when a call ends.
Done = Callable[[Any, BaseException | None], object]


class NativeWorkers:
    """Up to ``size`` OS threads, started on demand, running submitted calls in order; each
    call's outcome goes to its ``done`` callback, in the worker thread."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, not {size!r}")
        self.size = size
        self._jobs: Any = _SimpleQueue()
        self._lock = _allocate_lock()
        self._exits: list[Any] = []  # one lock per thread, released when it ends
        self._idle = 0
        self._closed = False

    def submit(self, function: Callable[..., Any], args: tuple[Any, ...], done: Done) -> None:
        """Runs ``function(*args)`` in a worker thread, then ``done(result, error)`` there.

        :raises RuntimeError: the workers were closed."""
        with self._lock:
            if self._closed:
                raise RuntimeError("plait.green: these worker threads were closed")
            self._jobs.put((function, args, done))
            # No thread waiting for work (as far as the count knows): one more, up to size. At
            # worst a job waits for a busy thread: never lost.
            if self._idle == 0 and len(self._exits) < self.size:
                exit_lock = _allocate_lock()
                exit_lock.acquire()
                self._exits.append(exit_lock)
                _start_new_thread(self._run, (exit_lock,))

    def _run(self, exit_lock: Any) -> None:
        try:
            while True:
                with self._lock:
                    self._idle += 1
                job = self._jobs.get()
                with self._lock:
                    self._idle -= 1
                if job is None:
                    return
                function, args, done = job
                try:
                    result, error = function(*args), None
                except BaseException as exc:
                    result, error = None, exc  # handed to the caller
                done(result, error)
                del job, function, args, done, result, error
        finally:
            exit_lock.release()

    def close(self) -> None:
        """Stops every thread after the calls already submitted, and waits for them."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            exits, self._exits = self._exits, []
        for _ in exits:
            self._jobs.put(None)
        for exit_lock in exits:
            exit_lock.acquire()
            exit_lock.release()
