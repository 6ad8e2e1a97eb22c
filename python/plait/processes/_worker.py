"""Worker process of :class:`plait.processes.ProcessPool`: ``python -m plait.processes._worker FD``.

It speaks the frame protocol of ``plait_core::supervise::pool`` on socket ``FD``: receives the
setup (``HELLO``), pickled functions (``DEFINE``) and tasks (``TASK``), and answers with ``READY``,
``OK``/``ERR`` per task in order, or ``INIT_FAILED``. Every exception a task raises, including
``SystemExit``, is sent back for that task alone. The worker ignores SIGINT: Ctrl-C is the parent's
to handle.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import traceback

from .. import _plait
from . import _wire

HELLO, DEFINE, TASK, SHUTDOWN, READY, OK, ERR, INIT_FAILED = _plait.PROTOCOL


def _error_payload(exc: BaseException) -> bytes:
    tb = "".join(traceback.format_exception(exc))
    try:
        return pickle.dumps((exc, tb), protocol=5)
    except Exception as pickling_error:
        substitute = RuntimeError(
            f"{type(exc).__qualname__}: {exc} (the exception could not be pickled: {pickling_error!r})"
        )
        return pickle.dumps((substitute, tb), protocol=5)


def _safe_repr(obj: object) -> str:
    try:
        return repr(obj)
    except Exception as exc:
        return f"<{type(obj).__qualname__} object (repr failed: {exc!r})>"


class PoolInit:
    """The initializer of ``plait.processes.Pool``'s workers: takes the parent's
    ``multiprocessing`` authkey (so that manager proxies passed to tasks authenticate, as in
    ``multiprocessing``'s own workers), then runs the pool's initializer, if any. ``setup`` is
    the pickle of ``(initializer, initargs)``, loaded only once the authkey is set (a manager
    proxy among the arguments connects to its manager as it is unpickled)."""

    __slots__ = ("authkey", "setup")

    def __init__(self, authkey: bytes, setup: bytes) -> None:
        self.authkey = authkey
        self.setup = setup

    def __reduce__(self) -> tuple[type[PoolInit], tuple[bytes, bytes]]:
        return PoolInit, (self.authkey, self.setup)

    def __call__(self) -> None:
        import multiprocessing.process

        multiprocessing.process.current_process().authkey = self.authkey
        initializer, initargs = pickle.loads(self.setup)
        if initializer is not None:
            initializer(*initargs)


def serve(channel: _plait.FrameChannel) -> int:
    """Handle frames until ``SHUTDOWN`` or end of stream; returns the exit code."""
    kind, _, payload, _ = channel.recv()
    if kind != HELLO:
        return 2
    try:
        hello = pickle.loads(payload)
        sys.path[:] = hello["sys_path"]
        initializer = hello.get("initializer")
        if initializer is not None:
            initializer = pickle.loads(initializer)
            initializer(*hello.get("initargs", ()))
    except BaseException:
        channel.send(INIT_FAILED, 0, traceback.format_exc().encode("utf-8", "replace"))
        channel.flush()
        return 1
    channel.send(READY, 0, b"")
    functions: dict[int, object] = {}
    recv, send, flush = channel.recv, channel.send, channel.flush
    loads, dumps, wire_loads, wire_dumps = pickle.loads, pickle.dumps, _wire.loads, _wire.dumps
    scalars = _wire.SCALARS
    settle = _wire.settle
    while True:
        kind, ident, payload, segments = recv()
        if kind == TASK:
            view = memoryview(payload)
            try:
                fid = int.from_bytes(view[:8], "little")
                if fid == 0:  # the callable travels with the task
                    fn, args, kwargs = wire_loads(view[8:], segments)
                else:
                    fn = functions[fid]
                    if isinstance(fn, bytes):  # loaded on first use: a bad definition fails its tasks
                        fn = loads(fn)
                        functions[fid] = fn
                    args, kwargs = wire_loads(view[8:], segments)
                del view
                # Earlier results must be out before this task runs: if it kills the worker, the
                # parent attributes the crash to the first task without a result.
                flush()
                result = fn(*args, **kwargs)  # type: ignore[operator]
            except BaseException as exc:
                send(ERR, ident, _error_payload(exc))
                continue
            try:
                if type(result) in scalars:
                    data, out_segments = dumps(result, protocol=5), None
                else:
                    data, out_segments = wire_dumps(result, segments)
            except BaseException as exc:
                wrapped = _wire.ResultNotPicklable(
                    f"the task's result could not be pickled: {exc!r}", repr(exc), _safe_repr(result)
                )
                send(ERR, ident, _error_payload(wrapped))
                continue
            del result, args, kwargs
            if out_segments is not None:
                # Views of the arguments go back without a copy only if nothing here uses them.
                data, out_segments = settle(data, out_segments, segments)
            del segments
            send(OK, ident, data, out_segments)
            del out_segments
        elif kind == DEFINE:
            functions[ident] = payload
        elif kind in (SHUTDOWN, 0):
            channel.flush()
            return 0


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = int(argv[-1])
    channel = _plait.FrameChannel(fd)
    try:
        return serve(channel)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


if __name__ == "__main__":
    code = main(sys.argv)
    # Skip interpreter teardown (atexit of user code, GC of everything): the pool wants the exit.
    os._exit(code)
