"""The seam between ``ProcessPool``'s API and where its tasks run.

``ProcessPool`` (submitting, mapping, chunking, futures, progress, cancel semantics) talks to its
workers only through an object with this interface: the native ``_plait.ProcessPoolCore`` (a
Rust dispatcher supervising local worker processes), or ``plait.backends._remote.RemoteCore``
over a cluster (Dask distributed, Ray), which implements the same few calls and speaks the same
payloads:

- ``submit(func, definition, body, timeout, segments) -> (future, task_id)``: queue a task.
  ``func`` is a function id (0: the callable travels in ``body``), ``definition`` the pickled
  function the first time ``func`` is used, ``body`` the pickled ``(args, kwargs)`` (or
  ``(fn, args, kwargs)``) made by :func:`plait.processes._wire.dumps`, ``segments`` the shared-memory
  segments holding its large buffers (a remote backend would ship their bytes instead). The
  future is a ``plait._pool.Future`` that the backend completes through
  ``plait.processes._executor._complete(future, kind, payload, segments)`` with one of
  ``_plait.DONE_KINDS``: a pickled result, a pickled ``(exception, traceback text)``, a crash
  ``(text, exitcode, signal)``, a timeout (seconds), a cancel, or a broken pool (reason).
- ``cancel_running(task_id)``: stop a running task (its worker is killed and replaced).
- ``shutdown(cancel)``: accept no more tasks; with ``cancel``, queued ones end cancelled.
- ``run_dispatcher()``: the backend's event loop, run by the pool on a thread of its own until
  shutdown has completed (a remote backend may simply wait for its client to close);
  ``run_completer()``: completes futures, on another thread, until every outcome is delivered.

The worker side is ``python -m plait.processes._worker``: a loop over frames (``_plait.PROTOCOL``) that a
remote backend can run inside its own workers with a different transport.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._plait import Segment
    from ._pool import Future


class Backend(Protocol):
    """What ``ProcessPool`` needs from where its tasks run; see the module docs."""

    def submit(
        self,
        func: int,
        definition: bytes | None,
        body: bytes,
        timeout: float | None = None,
        segments: list[Segment] | None = None,
    ) -> tuple[Future, int]: ...

    def cancel_running(self, task_id: int) -> None: ...

    def shutdown(self, cancel: bool = False) -> None: ...

    def run_dispatcher(self) -> None: ...

    def run_completer(self) -> None: ...


def check(backend: Any) -> Backend:
    """``backend``, after checking it has the calls a pool makes (a clear error, not a late
    AttributeError on the dispatcher thread)."""
    missing = [
        name
        for name in ("submit", "cancel_running", "shutdown", "run_dispatcher", "run_completer")
        if not callable(getattr(backend, name, None))
    ]
    if missing:
        raise TypeError(f"{type(backend).__qualname__} is not a ProcessPool backend: no {', '.join(missing)}")
    return backend  # type: ignore[no-any-return]
