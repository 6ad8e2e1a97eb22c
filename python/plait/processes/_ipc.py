"""Process-shared queues, locks and counters in shared memory (re-exported by
:mod:`plait.processes`).

Each object owns one anonymous shared-memory segment (a sealed ``memfd``, nothing in
``/dev/shm``) that holds its state; every process that has the object maps the same memory.
The native halves (``plait._plait.Ipc*``) do the work; these subclasses add what
``multiprocessing`` users expect and the way an object travels to another process:

- to a ``ProcessPool`` task (argument or result): its segment rides beside the task message,
  as :class:`plait.processes.Shared` does (``_wire``);
- to a ``multiprocessing.Process`` started with spawn or forkserver: its descriptor is
  duplicated into the child (``multiprocessing.reduction.DupFd``) while the process object is
  pickled; fork children simply inherit the mapping.

Pickling one anywhere else (``pickle.dumps``, putting it in a queue) raises ``TypeError``.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.context
import multiprocessing.reduction
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .. import _plait
from .._plait import Segment
from . import _wire

__all__ = [
    "AtomicInt",
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "Connection",
    "Event",
    "JoinableQueue",
    "Lock",
    "Pipe",
    "Queue",
    "RLock",
    "Semaphore",
    "SharedArray",
    "SimpleQueue",
]

_T = TypeVar("_T")
_WIRE, _FD = 0, 1


def _export(obj: Any, segment: Segment | None = None) -> tuple[int, Any]:
    """The handle that carries ``obj``'s segment (or ``segment``) to the process being started
    or the task being sent; TypeError outside those contexts."""
    if segment is None:
        segment = obj._segment
    if getattr(_wire._local, "out", _wire._OUTSIDE) is not _wire._OUTSIDE:  # inside _wire.dumps
        out = _wire._outgoing()
        out.segments.append(segment)
        return _WIRE, len(out.segments) - 1
    if multiprocessing.context.get_spawning_popen() is not None:
        return _FD, _dup_for_child(segment.fileno())
    raise TypeError(
        f"a plait.processes.{type(obj).__name__} can only be passed to another process as an argument "
        "of a ProcessPool task or of a multiprocessing.Process being started (fork children inherit "
        "it); it cannot be pickled otherwise (for example put in a queue)"
    )


def _dup_for_child(fd: int) -> Any:
    """``multiprocessing.reduction.DupFd(fd)`` once per descriptor and process being started:
    an object passed twice (``args=(q, q)``, or two ends of one pipe sharing a ring) must not
    list its descriptor twice (spawn refuses duplicates), and is opened once in the child."""
    popen = multiprocessing.context.get_spawning_popen()
    cache = popen.__dict__.setdefault("_plait_dupfds", {})
    dup = cache.get(fd)
    if dup is None:
        dup = cache[fd] = multiprocessing.reduction.DupFd(fd)
    return dup


def _import(handle: tuple[int, Any]) -> Segment:
    kind, value = handle
    if kind == _WIRE:
        segment = _wire._local.incoming[value]
        segment.claim()  # kept passable: the object may be sent on to another task or process
        return segment  # type: ignore[no-any-return]
    # The same DupFd object may come several times (see _dup_for_child): detach it once.
    segment = getattr(value, "_plait_segment", None)
    if segment is None:
        segment = value._plait_segment = Segment.from_fd(value.detach())
    return segment  # type: ignore[no-any-return]


def _rebuild(
    cls: type[_T],
    handle: tuple[int, Any],
    args: tuple[Any, ...],
    state: dict[str, Any],
    kwargs: dict[str, Any] | None = None,
) -> _T:
    obj = cls.__new__(cls, *args, **(kwargs or {}), _segment=_import(handle))  # type: ignore[call-arg]
    if state:
        obj.__dict__.update(state)
    return obj


class _Shareable:
    """Pickling by handle (see the module docs); the ``name`` given at creation travels too."""

    __slots__ = ()
    _segment: Segment

    def _args(self) -> tuple[Any, ...]:
        return ()

    def __reduce__(self) -> Any:
        state = getattr(self, "__dict__", None) or {}
        name = getattr(self, "name", None)
        kwargs = None if name is None else {"name": name}
        return _rebuild, (type(self), _export(self), self._args(), state, kwargs)


# --- reprs: plait.threads' format (itself threading's), naming this package -------------------


def _class_path(obj: object) -> str:
    """``processes.Lock`` as ``plait.threads`` shows ``threads.Lock``: the last part of the
    class's module (the public package for the classes defined here)."""
    cls = type(obj)
    module = "plait.processes" if cls.__module__ == __name__ else cls.__module__
    return f"{module.rpartition('.')[2]}.{cls.__qualname__}"


def _name_suffix(name: str | None) -> str:
    return "" if name is None else f"name={name!r} "


# --- queues ---------------------------------------------------------------------------------


class Queue(_Shareable, _plait.IpcQueue):
    """A process-shared FIFO queue, like ``multiprocessing.Queue``, over a ring in shared memory.

    ``Queue(maxsize=0, *, capacity=1 MiB)``: ``maxsize`` bounds the number of items (0: only
    the ring's ``capacity`` in bytes bounds it). Objects are pickled (protocol 5) in ``put``,
    in the caller, so an unpicklable object raises there; ``bytes``, ``str``, ``int``,
    ``float`` and ``None`` skip pickle. A message larger than the ring raises
    :class:`plait.MessageTooLarge`. ``put_many``/``get_many`` move batches with one
    synchronisation. ``lost()`` counts items taken by consumers that died before receiving
    them. Example::

        q = Queue()
        p = multiprocessing.get_context("spawn").Process(target=worker, args=(q,))
        p.start(); q.put({"job": 1}); p.join()
    """

    __slots__ = ()

    def join_thread(self) -> None:
        """Compatibility: there is no feeder thread (items are in shared memory once ``put``
        returns). Like ``multiprocessing``, only valid after ``close()``."""
        if not self._closed:
            raise AssertionError(f"Queue {self!r} not closed")

    def cancel_join_thread(self) -> None:
        """Compatibility: there is no feeder thread to wait for; does nothing."""

    @property
    def maxsize(self) -> int:
        """The bound on the number of items given at creation (0: only the capacity bounds it),
        as ``queue.Queue.maxsize``."""
        return self._maxsize  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<plait.processes.{type(self).__name__} at {id(self):#x} maxsize={self._maxsize}>"


class SimpleQueue(Queue):
    """A process-shared FIFO queue, like ``multiprocessing.SimpleQueue``: no ``maxsize``, only
    the ring's ``capacity`` bounds it (``put`` waits when it is full)."""

    __slots__ = ()

    def __new__(cls, *, capacity: int | None = None, _segment: Segment | None = None) -> SimpleQueue:
        return super().__new__(cls, 0, capacity=capacity, _segment=_segment)  # type: ignore[call-arg]


class JoinableQueue(Queue):
    """A :class:`Queue` with ``task_done()`` and ``join()``, like ``multiprocessing.JoinableQueue``.

    Items lost with a consumer that died (see ``lost()``) count as done, so ``join()`` does not
    wait for them forever.
    """

    __slots__ = ()

    def task_done(self) -> None:
        """Mark one item taken with ``get`` as processed; ValueError if called too often."""
        self._task_done()

    def join(self) -> None:
        """Wait until every item put has been marked done."""
        self._join(None)


# --- locks and friends ----------------------------------------------------------------------


class Lock(_Shareable, _plait.IpcLock):
    """A process-shared lock, like ``multiprocessing.Lock``, that survives its holder's death.

    ``acquire(block=True, timeout=None)``. When the holder dies (killed, crashed) the next
    acquirer takes the lock over and ``acquire()`` raises :class:`plait.OwnerDied` **with the
    lock held**: repair the protected state, then ``release()``::

        try:
            lock.acquire()
        except plait.OwnerDied:
            repair(shared_state)
        try:
            update(shared_state)
        finally:
            lock.release()

    ``with lock:`` raises ``OwnerDied`` too, after releasing the lock again.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        # plait.threads.Lock's repr, with the pid of the process holding it (when one does).
        holder = self.holder()
        state = "unlocked" if holder is None else "locked"
        owner = "" if holder is None else f"owner={holder} "
        return f"<{state} {_class_path(self)} object {_name_suffix(self.name)}{owner}at {id(self):#x}>"


class RLock(_Shareable, _plait.IpcRLock):
    """A process-shared recursive lock, like ``multiprocessing.RLock``; owned by one thread of
    one process; robust like :class:`Lock`."""

    __slots__ = ()

    def __repr__(self) -> str:
        # plait.threads.RLock's repr; the owner is the pid of the process holding it.
        holder = self.holder()
        state = "unlocked" if holder is None else "locked"
        owner, count = (0, 0) if holder is None else (holder, self._count())
        return (
            f"<{state} {_class_path(self)} object {_name_suffix(self.name)}"
            f"owner={owner} count={count} at {id(self):#x}>"
        )


class Semaphore(_Shareable, _plait.IpcSemaphore):
    """A process-shared counting semaphore, like ``multiprocessing.Semaphore``.

    Not robust: a semaphore has no owner, so a process that dies between ``acquire`` and
    ``release`` leaves the count lowered (as with POSIX and ``multiprocessing`` semaphores).
    """

    __slots__ = ()

    def __new__(
        cls, value: int = 1, *, name: str | None = None, _segment: Segment | None = None
    ) -> Semaphore:
        return super().__new__(cls, value, False, name=name, _segment=_segment)  # type: ignore[call-arg]

    def __repr__(self) -> str:
        bound = self._bound()
        value = f"{self.get_value()}" if bound is None else f"{self.get_value()}/{bound}"
        return f"<{_class_path(self)} at {id(self):#x}: value={value}>"


class BoundedSemaphore(Semaphore):
    """A :class:`Semaphore` whose ``release`` raises ValueError above the initial value."""

    __slots__ = ()

    def __new__(
        cls, value: int = 1, *, name: str | None = None, _segment: Segment | None = None
    ) -> BoundedSemaphore:
        return _plait.IpcSemaphore.__new__(cls, value, True, name=name, _segment=_segment)  # type: ignore[call-arg,return-value]


class Event(_Shareable, _plait.IpcEvent):
    """A process-shared event, like ``multiprocessing.Event``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{_class_path(self)} at {id(self):#x}: {'set' if self.is_set() else 'unset'}>"


class Condition(_Shareable, _plait.IpcCondition):
    """A process-shared condition variable, like ``multiprocessing.Condition``.

    ``Condition(lock=None)`` uses a new :class:`RLock` by default; ``lock`` must be a
    :class:`Lock` or :class:`RLock` of this module. ``notify(n)`` lets at most ``n`` waiters
    through, and like ``notify_all`` needs the lock held (``RuntimeError`` otherwise).
    """

    __slots__ = ()

    def __new__(
        cls, lock: Lock | RLock | None = None, *, name: str | None = None, _segment: Segment | None = None
    ) -> Condition:
        return super().__new__(cls, RLock() if lock is None else lock, name=name, _segment=_segment)  # type: ignore[call-arg]

    def _args(self) -> tuple[Any, ...]:
        return (self._lock,)

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Acquire the underlying lock."""
        return self._lock.acquire(block, timeout)  # type: ignore[no-any-return]

    def release(self) -> None:
        """Release the underlying lock."""
        self._lock.release()

    def __enter__(self) -> bool:
        return self._lock.__enter__()  # type: ignore[no-any-return]

    def __exit__(self, *args: object) -> None:
        self._lock.__exit__(*args)

    def wait_for(self, predicate: Callable[[], _T], timeout: float | None = None) -> _T:
        """Wait until ``predicate()`` is true (or the timeout); returns its last value."""
        end = None if timeout is None else time.monotonic() + timeout
        result = predicate()
        while not result:
            if end is not None:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.wait(left)
            else:
                self.wait()
            result = predicate()
        return result

    def __repr__(self) -> str:
        return f"<Condition({self._lock!r}, {self._waiters()})>"


class Barrier(_Shareable, _plait.IpcBarrier):
    """A process-shared barrier, like ``multiprocessing.Barrier`` (``action`` is not supported:
    it would have to run in one process while the others wait)."""

    def __new__(
        cls,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        *,
        name: str | None = None,
        _segment: Segment | None = None,
    ) -> Barrier:
        if action is not None:
            raise TypeError("plait.processes.Barrier does not support action=")
        self = super().__new__(cls, parties, name=name, _segment=_segment)  # type: ignore[call-arg]
        self._timeout = timeout
        return self  # type: ignore[no-any-return]

    def _args(self) -> tuple[Any, ...]:
        return (self.parties,)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for every party; returns this party's index. A timeout breaks the barrier."""
        return super().wait(self._timeout if timeout is None else timeout)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        if self.broken:
            return f"<{_class_path(self)} at {id(self):#x}: broken>"
        return f"<{_class_path(self)} at {id(self):#x}: waiters={self.n_waiting}/{self.parties}>"


class AtomicInt(_Shareable, _plait.IpcAtomicInt):
    """A 64-bit integer in shared memory with lock-free ``fetch_add``, ``compare_exchange``,
    ``load``/``store`` (and a ``value`` property, like ``multiprocessing.Value('q')`` without
    the lock). It has :class:`plait.threads.AtomicInt`'s surface: ``add``/``sub`` (return the
    new value), ``swap``, ``a += n``/``a -= n`` (atomic, the object stays the same), ``int(a)``,
    ``bool(a)``, and use as an index (``__index__``). Example::

        hits = AtomicInt()
        hits += 1            # in any process that holds it
        print(int(hits))
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"AtomicInt({self.load()})"


# --- shared arrays ----------------------------------------------------------------------------


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        return None
    return numpy


class SharedArray:
    """A fixed-size array in shared memory that every process holding it reads and writes.

    ``SharedArray(shape, dtype="d")``: ``shape`` an int or a tuple, ``dtype`` a numpy dtype or
    a ``struct`` format character (``"d"``, ``"q"``, ``"B"``...); zero-filled. :attr:`array` is
    a numpy array viewing the memory when numpy is installed, else a ``memoryview`` of that
    shape; indexing the SharedArray indexes it, and numpy functions accept it directly
    (``__array__``). Pass it to processes like the other objects of this module; there is no
    locking: coordinate writers with a :class:`Lock` or by partitioning the array. Example::

        a = SharedArray((4, 1000))
        with ProcessPool(4) as pool:
            list(pool.map(fill_row, [a] * 4, range(4)))   # each task writes a.array[row]
        a.array.sum()
    """

    __slots__ = ("_array", "_segment", "dtype", "shape")

    def __init__(
        self, shape: int | tuple[int, ...], dtype: Any = "d", *, _segment: Segment | None = None
    ) -> None:
        self.shape: tuple[int, ...] = (shape,) if isinstance(shape, int) else tuple(int(n) for n in shape)
        if any(n < 0 for n in self.shape):
            raise ValueError(f"negative dimension in shape {self.shape}")
        np = _numpy()
        if np is not None:
            itemsize = np.dtype(dtype).itemsize
        else:
            import struct

            itemsize = struct.calcsize(dtype)
        self.dtype = np.dtype(dtype) if np is not None else dtype
        nbytes = math.prod(self.shape) * itemsize
        if _segment is None:
            _segment = Segment(nbytes)
        elif len(_segment) < nbytes:
            raise TypeError("the shared-memory segment is smaller than the array")
        self._segment = _segment
        whole = memoryview(_segment)[:nbytes]
        if np is not None:
            self._array: Any = np.frombuffer(whole, dtype=self.dtype).reshape(self.shape)
        else:
            self._array = whole.cast(dtype, self.shape) if nbytes else whole

    @property
    def array(self) -> Any:
        """The array (numpy) or ``memoryview`` over the shared memory."""
        return self._array

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self._array.itemsize  # type: ignore[no-any-return]

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        # numpy 2's protocol: copy=True asks for a snapshot, copy=False for no copy at all.
        if dtype is not None and self._array.dtype != dtype:
            if copy is False:
                raise ValueError(
                    f"a {self._array.dtype} SharedArray cannot be viewed as {dtype} without a copy"
                )
            return self._array.astype(dtype)
        return self._array.copy() if copy else self._array

    def __getitem__(self, key: Any) -> Any:
        return self._array[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._array[key] = value

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 1

    def __reduce__(self) -> Any:
        # The numpy dtype itself (structured dtypes and byte order survive), or the struct code.
        return _rebuild_array, (_export(self), self.shape, self.dtype)

    def __repr__(self) -> str:
        return f"<plait.processes.SharedArray shape={self.shape} dtype={self.dtype}>"


def _rebuild_array(handle: tuple[int, Any], shape: tuple[int, ...], dtype: Any) -> SharedArray:
    return SharedArray(shape, dtype, _segment=_import(handle))


# --- pipes ------------------------------------------------------------------------------------


class Connection(_plait.IpcConnection):
    """One end of a :func:`Pipe`, like ``multiprocessing.connection.Connection``.

    ``send(obj)``/``recv()``, ``send_bytes(buf, offset=0, size=None)``/``recv_bytes(maxlength=None)``/
    ``recv_bytes_into(buf, offset=0)``, ``poll(timeout=0.0)``, ``fileno()``, ``close()``. The
    descriptor is readable exactly when a message (or the end of the stream) is waiting, so a
    Connection works with ``multiprocessing.connection.wait`` and ``select``.
    """

    __slots__ = ()

    def recv_bytes_into(self, buf: Any, offset: int = 0) -> int:
        """Receive one message into the writable buffer ``buf`` at byte ``offset``; returns its
        length. ``multiprocessing.BufferTooShort`` (holding the message) if it does not fit."""
        view = memoryview(buf).cast("B")
        if offset < 0:
            raise ValueError("negative offset")
        if offset > len(view):
            raise ValueError("offset too large")
        data = self.recv_bytes()
        n = len(data)
        if offset + n > len(view):
            raise multiprocessing.BufferTooShort(data)
        view[offset : offset + n] = data
        return n

    def __reduce__(self) -> Any:
        if multiprocessing.context.get_spawning_popen() is None:
            raise TypeError(
                "a plait.processes.Connection can only be passed to a multiprocessing.Process being "
                "started (fork children inherit it); it cannot be pickled otherwise"
            )
        fd = _dup_for_child(self.fileno())
        recv, send = self._recv_segment, self._send_segment
        return _rebuild_connection, (
            fd,
            None if recv is None else _export(self, recv),
            None if send is None else _export(self, send),
        )

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self.fileno()}"
        mode = ("r" if self.readable else "") + ("w" if self.writable else "")
        return f"<plait.processes.Connection {mode} {state}>"


def _rebuild_connection(fd: Any, recv: tuple[int, Any] | None, send: tuple[int, Any] | None) -> Connection:
    conn = getattr(fd, "_plait_connection", None)
    if conn is None:
        conn = fd._plait_connection = Connection(
            fd.detach(),
            recv_segment=None if recv is None else _import(recv),
            send_segment=None if send is None else _import(send),
        )
    return conn  # type: ignore[no-any-return]


def Pipe(duplex: bool = True, *, capacity: int | None = None) -> tuple[Connection, Connection]:
    """A pair of connected :class:`Connection` objects, like ``multiprocessing.Pipe``.

    With ``duplex`` both ends send and receive; otherwise the first end only receives and the
    second only sends. Messages go through a ring of ``capacity`` bytes (1 MiB by default) per
    direction in shared memory; a message larger than that raises :class:`plait.MessageTooLarge`.
    """
    cap = capacity if capacity is not None else 1 << 20
    a, b = socket.socketpair()
    forward = _plait.IpcConnection._new_ring(cap)
    if not duplex:
        return (
            Connection(a.detach(), recv_segment=forward),
            Connection(b.detach(), send_segment=forward),
        )
    backward = _plait.IpcConnection._new_ring(cap)
    return (
        Connection(a.detach(), recv_segment=backward, send_segment=forward),
        Connection(b.detach(), recv_segment=forward, send_segment=backward),
    )
