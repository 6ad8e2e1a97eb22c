"""How task arguments and results travel between ``ProcessPool`` and its workers.

Objects are pickled with protocol 5. Large buffers (``OOB_THRESHOLD`` bytes or more: numpy arrays,
and ``bytes``/``bytearray``/``memoryview`` objects in the first levels of the message) go *out of
band*:
all of a message's large buffers are copied once into one shared-memory segment (an anonymous
memfd, see ``plait._plait.Segment``) whose descriptor travels beside the message, and the
receiver unpickles with views of that mapping. Nothing large goes through the socket, and nothing
is left behind in ``/dev/shm``: the kernel frees a segment with the last process using it.

A message with segments starts with a table of its out-of-band buffers: ``<I`` count, then one
``<IQQ`` (segment index, offset, length) per buffer, then the pickle.

:func:`share` publishes a read-only object once; sending the returned :class:`Shared` to a task
sends only a reference to its segment, and the task receives a zero-copy read-only view.
"""

from __future__ import annotations

import itertools
import os
import pickle
import struct
import threading
import weakref
from collections import OrderedDict
from typing import Any

from .._plait import Segment

__all__ = ["OOB_THRESHOLD", "UNPICKLABLE_RESULT", "Shared", "dumps", "loads", "share"]

#: Buffers at least this large travel through shared memory instead of the socket.
OOB_THRESHOLD = 64 * 1024

#: Types whose pickle holds no buffer and no reference to a module: a plain pickle suffices.
SCALARS = frozenset({int, float, complex, bool, str, type(None)})


#: The attribute that a task's pickling error carries when its *result* did not pickle: the
#: result's repr, for ``plait.processes.Pool`` (``multiprocessing.pool.MaybeEncodingError``).
UNPICKLABLE_RESULT = "_plait_unpicklable_result"


_ENTRY = struct.Struct("<IQQ")
_COUNT = struct.Struct("<I")

# Per thread: the segments of the message being pickled (Shared objects add theirs) or unpickled.
_local = threading.local()
_OUTSIDE = object()  # _local.out when no message is being pickled by dumps()


class _Bytes:
    """Stands in for a large ``bytes``/``bytearray`` near the top of a message: the C pickler
    keeps those in band (and calls no hook for them), this sends the buffer out of band."""

    __slots__ = ("obj",)

    def __init__(self, obj: bytes | bytearray) -> None:
        self.obj = obj

    def __reduce_ex__(self, protocol: Any) -> Any:
        return type(self.obj), (pickle.PickleBuffer(self.obj),)


class _View:
    """Stands in for a ``memoryview`` (which pickle refuses): rebuilt with its format and shape."""

    __slots__ = ("obj",)

    def __init__(self, obj: memoryview) -> None:
        self.obj = obj

    def __reduce_ex__(self, protocol: Any) -> Any:
        m = self.obj
        # Only C order can be rebuilt by cast(); anything else goes as bytes in C order.
        data = pickle.PickleBuffer(m) if m.c_contiguous else m.tobytes()
        return _memoryview, (data, m.format, m.shape, m.readonly)


def _memoryview(data: Any, fmt: str, shape: tuple[int, ...], readonly: bool) -> memoryview:
    view = memoryview(data).cast("B")
    if fmt != "B" or len(shape) != 1:
        view = view.cast(fmt, shape)
    return view.toreadonly() if readonly else view


_NOTHING = object()


def _substitute(obj: Any, depth: int = 3) -> Any:
    """``obj`` with large ``bytes``/``bytearray`` and every ``memoryview`` in its first levels
    (the ``(args, kwargs)`` of a task, a result) replaced by stand-ins; ``_NOTHING`` when there
    are none (the common case: a cheap, bounded look)."""
    t = type(obj)
    if t is bytes or t is bytearray:
        return _Bytes(obj) if len(obj) >= OOB_THRESHOLD else _NOTHING
    if t is memoryview:
        return _View(obj)
    if depth and (t is tuple or t is list or t is dict) and len(obj) <= 64:
        items = obj.items() if t is dict else enumerate(obj)
        changed = {k: new for k, v in items if (new := _substitute(v, depth - 1)) is not _NOTHING}
        if changed:
            if t is dict:
                return {**obj, **changed}
            seq = [changed.get(i, v) for i, v in enumerate(obj)]
            return tuple(seq) if t is tuple else seq
    return _NOTHING


class _Outgoing:
    """The out-of-band buffers and segments of the message being pickled on this thread."""

    __slots__ = ("buffers", "entries", "reuse", "segments")

    def __init__(self, reuse: list[Segment] | None) -> None:
        self.buffers: list[memoryview] = []  # to pack into a new segment
        self.entries: list[tuple[int, int, int]] = []  # (segment index or -1: packed, offset, length)
        self.segments: list[Segment] = []
        self.reuse = reuse

    def add(self, raw: memoryview) -> None:
        for segment in self.reuse or ():
            offset = segment.locate(raw)
            if offset is not None:
                # A view of a segment this process received (a task returning its argument, or
                # part of it): the same memory goes back, no copy.
                index = next((i for i, s in enumerate(self.segments) if s is segment), None)
                if index is None:
                    index = len(self.segments)
                    self.segments.append(segment)
                self.entries.append((index, offset, raw.nbytes))
                return
        self.entries.append((-1, len(self.buffers), raw.nbytes))
        self.buffers.append(raw)


def _outgoing() -> _Outgoing:
    """This thread's message context, created when a message first needs one."""
    out = _local.out
    if out is None:
        out = _local.out = _Outgoing(getattr(_local, "reuse", None))
    return out  # type: ignore[no-any-return]


def _callback(buffer: pickle.PickleBuffer) -> bool:
    """pickle's ``buffer_callback``: large buffers out of band, small ones in band."""
    raw = buffer.raw()
    if raw.nbytes < OOB_THRESHOLD or getattr(_local, "inband", False):
        return True
    _outgoing().add(raw)
    return False


def _pickle(obj: Any, callback: Any) -> bytes:
    """Protocol 5, large buffers out of band through ``callback``. The plain C pickler runs
    first; only a large message (or one it refuses: a ``memoryview``) is looked at again for
    large ``bytes``/``bytearray``/``memoryview`` objects it keeps in band."""
    try:
        data = pickle.dumps(obj, protocol=5, buffer_callback=callback)
    except TypeError:
        substituted = _substitute(obj)
        if substituted is _NOTHING:
            raise
        _local.out = None
        return pickle.dumps(substituted, protocol=5, buffer_callback=callback)
    if len(data) >= OOB_THRESHOLD and callback is not None:
        substituted = _substitute(obj)
        if substituted is not _NOTHING:
            _local.out = None
            data = pickle.dumps(substituted, protocol=5, buffer_callback=callback)
    return data


class Unsendable(TypeError):
    """``obj`` cannot be pickled for another process; ``__cause__`` is the pickler's own error."""


def pickling_error(exc: BaseException) -> BaseException:
    """The error to report for a task whose arguments or result did not pickle: the pickler's
    own (``PicklingError``, ``TypeError``, even ``SystemExit`` from a ``__reduce__``), as
    ``concurrent.futures`` reports it, with plait's explanation as a note."""
    cause = exc.__cause__
    if isinstance(exc, Unsendable) and cause is not None:
        cause.add_note(str(exc))
        return cause
    return exc


def dumps(
    obj: Any, reuse: list[Segment] | None = None, inband: bool = False
) -> tuple[bytes, list[Segment] | None]:
    """Pickle ``obj`` for a worker or from one; returns the message and its segments (None when
    everything is in band). What plain pickle cannot send (lambdas, closures, anything from
    ``__main__``) goes by value with cloudpickle. Buffers that are views of ``reuse`` segments
    (received with the task being answered) are sent as references to them (see
    :func:`settle`). ``inband``: every buffer in the message itself (no new segment)."""
    # The context (_local.out) is only created when a large buffer or a Shared object shows
    # up: a message without them costs one plain pickle.
    _local.out = None
    if reuse is not None:
        _local.reuse = reuse
    if inband:
        _local.inband = True
    try:
        try:
            data = _pickle(obj, _callback)
            if b"__main__" in data:
                raise pickle.PicklingError("refers to __main__")
        except (pickle.PicklingError, AttributeError, TypeError):
            _local.out = None
            import cloudpickle  # imported when first needed: a worker may never need it

            try:
                data = cloudpickle.dumps(obj, protocol=5, buffer_callback=_callback)
            except Exception as exc:
                raise Unsendable(f"cannot send {type(obj).__qualname__} object to a process: {exc}") from exc
        out = _local.out
    finally:
        _local.out = _OUTSIDE
        if reuse is not None:
            _local.reuse = None
        if inband:
            _local.inband = False
    if out is None:
        return data, None
    segments = out.segments
    places: list[tuple[int, int]] = []
    if out.buffers:
        try:
            segment, places = Segment.pack(out.buffers)
        except OSError:
            # No memory or descriptors left for a segment: the buffers go in band instead.
            if segments:
                raise
            _local.out = _OUTSIDE
            try:
                if b"__main__" in data:
                    import cloudpickle

                    return cloudpickle.dumps(obj, protocol=5), None
                return _pickle(obj, None), None
            finally:
                _local.out = _OUTSIDE
        packed = len(segments)
        segments.append(segment)
    entries = [
        _ENTRY.pack(index, offset, length) if index >= 0 else _ENTRY.pack(packed, places[offset][0], length)
        for index, offset, length in out.entries
    ]
    return b"".join((_COUNT.pack(len(entries)), *entries, data)), segments


def settle(
    data: bytes, segments: list[Segment] | None, received: list[Segment] | None
) -> tuple[bytes, list[Segment] | None]:
    """Called by a worker once it dropped its own references to a task's arguments and result:
    a result buffer sent as a view of a received segment that something in the worker still
    uses (a global kept the argument, a ``Shared`` is cached) gets a copy of its own instead,
    so the caller's result never shares memory with the worker."""
    if not segments or not received:
        return data, segments
    busy = {i for i, s in enumerate(segments) if s.exports and any(s is r for r in received)}
    if not busy:
        return data, segments
    view = memoryview(data)
    (count,) = _COUNT.unpack_from(view)
    entries = [list(_ENTRY.unpack_from(view, _COUNT.size + k * _ENTRY.size)) for k in range(count)]
    moved = [e for e in entries if e[0] in busy]
    if not moved:
        return data, segments
    copy, places = Segment.pack([memoryview(segments[i])[o : o + n] for i, o, n in moved])
    index = len(segments)
    for entry, (offset, _) in zip(moved, places, strict=True):
        entry[0], entry[1] = index, offset
    table = b"".join(_ENTRY.pack(*e) for e in entries)
    return b"".join((_COUNT.pack(count), table, view[_COUNT.size + count * _ENTRY.size :])), [*segments, copy]


def loads(data: bytes, segments: list[Segment] | None) -> Any:
    """The object of a message made by :func:`dumps`."""
    if segments is None:
        return pickle.loads(data)
    view = memoryview(data)
    (count,) = _COUNT.unpack_from(view)
    pos = _COUNT.size
    maps = [memoryview(s) for s in segments]
    buffers = []
    for _ in range(count):
        index, offset, length = _ENTRY.unpack_from(view, pos)
        pos += _ENTRY.size
        buffers.append(maps[index][offset : offset + length])
    _local.incoming = segments
    try:
        return pickle.loads(view[pos:], buffers=buffers)
    finally:
        _local.incoming = None
        for segment in segments:
            if type(segment) is Segment:  # (a cluster backend's result buffers are plain bytes)
                segment.release_spare()  # kept only where an object that may travel on claimed it


# --- share() --------------------------------------------------------------------------------

_share_ids = itertools.count(1)
# In a worker: the objects of recently used Shared handles, by key (one mapping per worker).
_attached: OrderedDict[tuple[int, int], Any] = OrderedDict()
_ATTACHED_MAX = 32
# The live Shared objects by their segment's id: how a cluster backend tells a Shared object's
# segment (published once to the cluster) from a task's own buffers (see ``shared_of``).
_published: weakref.WeakValueDictionary[int, Shared] = weakref.WeakValueDictionary()


class Shared:
    """A read-only object published in shared memory once; see :func:`share`.

    Pass it as a task argument (anywhere in the arguments): the task receives :attr:`value`, a
    zero-copy read-only view, and only a reference travels with each task.
    """

    __slots__ = ("__weakref__", "_data", "_key", "_nbytes", "_places", "_segment")

    def __init__(self, obj: Any) -> None:
        if type(obj) in (bytes, bytearray, memoryview):
            view = memoryview(obj)
            if not view.contiguous:
                view = memoryview(view.tobytes())
            buffers = [view.cast("B")]
            data = None
        else:
            buffers = []
            data = pickle.dumps(obj, protocol=5, buffer_callback=lambda b: buffers.append(b.raw()))
            if not buffers:
                raise TypeError(
                    f"share() needs an object that holds buffers (bytes, bytearray, memoryview, a numpy "
                    f"array...); {type(obj).__qualname__} has none to share"
                )
        self._segment, self._places = Segment.pack(buffers)
        self._data = data
        self._nbytes = sum(length for _, length in self._places)
        self._key = (os.getpid(), next(_share_ids))
        _published[id(self._segment)] = self

    @property
    def nbytes(self) -> int:
        """Bytes of buffer data shared."""
        return self._nbytes

    @property
    def value(self) -> Any:
        """The shared object as tasks see it: a read-only view of the shared memory (a read-only
        ``memoryview`` for bytes-like objects, a read-only array for a numpy array)."""
        return _rebuild(self._segment, self._places, self._data)

    def __repr__(self) -> str:
        return f"<plait Shared {self._nbytes} bytes>"

    def __reduce__(self) -> Any:
        if getattr(_local, "out", _OUTSIDE) is _OUTSIDE:
            raise TypeError("a Shared object can only be passed to plait ProcessPool tasks")
        out = _outgoing()
        index = len(out.segments)
        out.segments.append(self._segment)
        return _attach, (self._key, index, self._places, self._data)


def shared_of(segment: Segment) -> Shared | None:
    """The live :class:`Shared` object whose memory ``segment`` is, if any (for a cluster
    backend, which publishes such segments once instead of sending them with each task)."""
    shared = _published.get(id(segment))
    return shared if shared is not None and shared._segment is segment else None


def _rebuild(segment: Segment, places: list[tuple[int, int]], data: bytes | None) -> Any:
    whole = memoryview(segment).toreadonly()
    views = [whole[offset : offset + length] for offset, length in places]
    if data is None:
        return views[0]
    return pickle.loads(data, buffers=views)


def _attach(key: tuple[int, int], index: int, places: list[tuple[int, int]], data: bytes | None) -> Any:
    """Unpickles a Shared argument in the worker: the view, mapped once per worker."""
    value = _attached.get(key)
    if value is None:
        value = _rebuild(_local.incoming[index], places, data)
        _attached[key] = value
        if len(_attached) > _ATTACHED_MAX:
            _attached.popitem(last=False)
    else:
        _attached.move_to_end(key)
    return value


def share(obj: Any) -> Shared:
    """Publish ``obj`` (bytes, bytearray, memoryview, a numpy array, or any object whose pickle
    holds large buffers) in shared memory once, for many tasks.

    Tasks that get the returned handle as an argument receive a zero-copy **read-only** view
    instead (a ``memoryview`` for bytes-like objects, an array for a numpy array); each worker
    maps the memory once. The memory is freed when the handle is garbage-collected here and no
    worker still uses it (at the latest when the pool's workers exit), even after crashes: it is
    an anonymous memfd, with no name to leak.
    """
    return Shared(obj)
