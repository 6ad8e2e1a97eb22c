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

# Not `typing.TYPE_CHECKING`: importing typing costs every worker process milliseconds at start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

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


def _load_arguments(wire_loads: Any, data: memoryview, segments: Any) -> Any:
    """A task's arguments. An error unpickling them fails the task with ``BrokenProcessPool``
    (the class ``ProcessPoolExecutor`` reports it with; its ``__cause__`` is the error), for
    that task only: the worker goes on."""
    try:
        return wire_loads(data, segments)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        from ..exceptions import BrokenProcessPool

        message = f"the task's arguments could not be unpickled in the worker: {exc!r}"
        raise BrokenProcessPool(message) from exc


def _adopt_authkey(authkey: bytes) -> None:
    """Make ``multiprocessing``'s authentication key the pool process's, as ``multiprocessing``
    does for its own children, so that a ``Manager`` proxy passed to a task can connect. Set
    when ``multiprocessing`` is (or gets) imported here: most workers never import it."""
    process = sys.modules.get("multiprocessing.process")
    if process is not None:
        process.current_process().authkey = authkey
        return

    class AdoptOnImport:
        def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
            if name != "multiprocessing.process":
                return None
            sys.meta_path.remove(self)
            from importlib.machinery import PathFinder

            spec = PathFinder.find_spec(name, path, target)
            if spec is None or spec.loader is None:
                return spec
            exec_module = spec.loader.exec_module

            def exec_and_adopt(module: Any) -> None:
                exec_module(module)
                module.current_process().authkey = authkey

            spec.loader.exec_module = exec_and_adopt  # type: ignore[method-assign]
            return spec

    sys.meta_path.insert(0, AdoptOnImport())


#: The hello's "initializer" when the pool's initializer and initargs reach forked workers only
#: (they do not pickle).
INHERITED_ONLY = "inherited-only"


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
    fds.clear()


def serve(channel: _plait.FrameChannel, inherited: tuple[Any, tuple[Any, ...]] | None = None) -> int:
    """Handle frames until ``SHUTDOWN`` or end of stream; returns the exit code. ``inherited``:
    the pool's ``(initializer, initargs)`` themselves, in a worker forked from the pool's process
    (see ``_fork.fork_worker``); otherwise they come pickled in the hello."""
    kind, _, payload, fds = channel.recv()
    if kind != HELLO:
        return 2
    fds = fds or []
    try:
        hello = pickle.loads(payload)
        sys.path[:] = hello["sys_path"]
        authkey = hello.get("authkey")
        if authkey is not None:
            _adopt_authkey(authkey)
        initializer = hello.get("initializer")
        if inherited is not None:
            _close(fds)
            if inherited[0] is not None:
                inherited[0](*inherited[1])
        elif initializer == INHERITED_ONLY:
            raise RuntimeError(
                "the pool's initargs do not pickle, so they reach forked workers only, and this "
                "worker was started fresh: Python refuses to fork once the interpreter is shutting "
                "down, and the pool replaced a worker then"
            )
        elif initializer is not None:
            from . import _setup

            initializer = pickle.loads(initializer)
            initargs = _setup.loads(hello["initargs"], fds)  # takes (and empties) fds
            initializer(*initargs)
            del initargs
        _close(fds)
    except BaseException:
        _close(fds)
        # Logged as ProcessPoolExecutor's workers log it (stderr, unless configured otherwise).
        import logging

        logging.getLogger("concurrent.futures").critical("Exception in initializer:", exc_info=True)
        # What the initializer put in multiprocessing queues (its log records, say) is out
        # before the pool hears of the failure.
        finish()
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
                    fn, args, kwargs = _load_arguments(wire_loads, view[8:], segments)
                else:
                    fn = functions[fid]
                    if isinstance(fn, bytes):  # loaded on first use: a bad definition fails its tasks
                        fn = loads(fn)
                        functions[fid] = fn
                    args, kwargs = _load_arguments(wire_loads, view[8:], segments)
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
                # The pickler's own error, as ProcessPoolExecutor reports it; the result's repr
                # rides along (in the error's __dict__, which pickles with it) for
                # plait.processes.Pool, which reports MaybeEncodingError as multiprocessing does.
                error = _wire.pickling_error(exc)
                error.add_note("the task's result could not be pickled")
                setattr(error, _wire.UNPICKLABLE_RESULT, _safe_repr(result))
                send(ERR, ident, _error_payload(error))
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


def after_fork_like_multiprocessing() -> None:
    """In a forked worker (by the pool's process or by a fork server): what
    ``multiprocessing`` runs in each child it forks (``Process._bootstrap``): the
    handlers registered with ``multiprocessing.util.register_after_fork``, which give the child
    fresh locks and thread-locals of its own (``Manager`` proxies' among them). Without this, a
    worker forked while another thread of the pool's process held such a lock (a proxy being
    made) inherits it held, and a proxy sent to a task blocks forever. Also as there: the
    parent's finalizers and child processes are not this worker's (``_worker.finish`` runs the
    worker's own at exit)."""
    process = sys.modules.get("multiprocessing.process")
    if process is not None:
        process._children = set()
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util._finalizer_registry.clear()
        util._run_after_forkers()


def serve_forked(
    fd: int, prepare: Callable[[], object], inherited: tuple[Any, tuple[Any, ...]] | None = None
) -> NoReturn:
    """In a worker just forked (by the pool's process or by a fork server): ``prepare()``, then
    multiprocessing's after-fork hooks, then serve socket ``fd`` and exit without teardown
    (after :func:`finish`). An error on the way is printed; the exit code tells the pool."""
    code = 1
    try:
        prepare()
        after_fork_like_multiprocessing()
        code = serve(_plait.FrameChannel(fd), inherited)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            finish()
        finally:
            os._exit(code)


def finish() -> None:
    """What ``multiprocessing``'s children run as they exit (``Process._bootstrap``), when this
    worker uses ``multiprocessing``: its exit function, whose finalizers flush the feeder thread
    of a ``multiprocessing.Queue`` (an initializer's or a task's last ``put`` would be lost
    otherwise: the worker ends with ``os._exit``) and which stops the worker's own daemonic
    children. Then the standard streams are flushed."""
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        try:
            util._exit_function()
        except BaseException:
            traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = int(argv[-1])
    channel = _plait.FrameChannel(fd)
    try:
        return serve(channel)
    finally:
        finish()


if __name__ == "__main__":
    code = main(sys.argv)
    # Skip interpreter teardown (atexit of user code, GC of everything): the pool wants the exit.
    os._exit(code)
