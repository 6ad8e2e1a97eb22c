"""Greenlet-local storage (gevent's ``gevent.local``): a :class:`local`'s attributes are separate
for each greenlet, as a ``threading.local``'s are for each thread.

::

    data = local()
    data.user = "main"
    spawn(lambda: setattr(data, "user", "worker")).join()
    assert data.user == "main"

Subclasses can set defaults, methods and properties, and take ``__init__`` arguments: a
greenlet's first use of the object calls ``__init__`` again with the same arguments, to fill
that greenlet's attributes. ``__slots__`` declared by a subclass are *not* greenlet-local
(shared by all greenlets), as in gevent. A greenlet's values are dropped when it ends (a
:class:`~plait.green.Greenlet`, as soon as it finishes; another greenlet, when it is collected).
"""

from __future__ import annotations

from copy import copy
from typing import Any
from weakref import ref

from greenlet import getcurrent, greenlet

__all__ = ["local"]

# The attribute a greenlet keeps, per local object, to drop its entry when that object dies.
_KEY_PREFIX = "_plait_green_local_"


class _Entry:
    """A greenlet's dict for one local object, and a weak reference to the greenlet."""

    __slots__ = ("greenlet", "localdict")

    def __init__(self, wrgreenlet: ref[greenlet], localdict: dict[str, Any]) -> None:
        self.greenlet = wrgreenlet
        self.localdict = localdict


class _Dicts(dict):  # type: ignore[type-arg]
    """``{id(greenlet): _Entry}`` (a dict subclass, so that it can be weakly referenced)."""

    __slots__ = ("__weakref__",)


class _GreenletEnded:
    """Drops a greenlet's entry: linked to a Greenlet (runs when it finishes) or the callback of
    a weak reference to a plain greenlet (runs when it is collected)."""

    __slots__ = ("ident", "wrdicts")

    def __init__(self, ident: int, wrdicts: ref[_Dicts]) -> None:
        self.ident = ident
        self.wrdicts = wrdicts

    def __call__(self, _unused: Any) -> None:
        dicts = self.wrdicts()
        if dicts is not None:
            dicts.pop(self.ident, None)


class _LocalDied:
    """When a local object dies: forget its key on the greenlet and unlink from it."""

    __slots__ = ("ended", "key", "wrgreenlet")

    def __init__(self, key: str, wrgreenlet: ref[greenlet], ended: _GreenletEnded) -> None:
        self.key = key
        self.wrgreenlet = wrgreenlet
        self.ended = ended

    def __call__(self, _unused: Any) -> None:
        g = self.wrgreenlet()
        if g is None:
            return
        unlink = getattr(g, "unlink", None)
        if unlink is not None:
            unlink(self.ended)
        g.__dict__.pop(self.key, None)


class _Impl:
    """What a :class:`local` keeps: each greenlet's dict, and its ``__init__`` arguments."""

    __slots__ = ("__weakref__", "args", "dicts", "key", "kwargs")

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.key = f"{_KEY_PREFIX}{id(self)}"
        self.dicts = _Dicts()
        self.args = args
        self.kwargs = kwargs

    def create_dict(self, g: greenlet) -> dict[str, Any]:
        """A new, empty dict for greenlet ``g``, dropped when ``g`` ends."""
        ident = id(g)
        ended = _GreenletEnded(ident, ref(self.dicts))
        rawlink = getattr(g, "rawlink", None)
        if rawlink is not None:  # a plait.green Greenlet: drop it as soon as it finishes
            rawlink(ended)
            wrgreenlet = ref(g)
        else:
            wrgreenlet = ref(g, ended)
        # The greenlet holds the only reference to this weak reference: when the local dies,
        # it unlinks and forgets the key (the weak reference dies with the greenlet).
        g.__dict__[self.key] = ref(self, _LocalDied(self.key, wrgreenlet, ended))
        localdict: dict[str, Any] = {}
        self.dicts[ident] = _Entry(wrgreenlet, localdict)
        return localdict


def _get_dict(self: local) -> dict[str, Any]:
    """The current greenlet's dict for ``self`` (made, and ``__init__`` run, on first use)."""
    impl: _Impl = _oga(self, "_local__impl")
    g = getcurrent()
    entry = impl.dicts.get(id(g))
    if entry is not None and entry.greenlet() is g:
        return entry.localdict
    return _new_dict(self, impl, g)


def _new_dict(self: local, impl: _Impl, g: greenlet) -> dict[str, Any]:
    localdict = impl.create_dict(g)
    cls = type(self)
    if cls.__init__ is not object.__init__:
        cls.__init__(self, *impl.args, **impl.kwargs)
    return localdict


def _lookup(cls: type, name: str) -> Any:
    """``name`` in the classes of ``cls``'s MRO (not through descriptors), or ``_MISSING``."""
    for base in cls.__mro__:
        if name in base.__dict__:
            return base.__dict__[name]
    return _MISSING


_MISSING: Any = object()
_oga = object.__getattribute__

_OWN = frozenset({"_local__impl", "__class__"})


class local:
    """An object whose attributes are separate for each greenlet (each thread's greenlets
    included). See the module's documentation for subclassing.

    :raises TypeError: made with arguments while the class has no ``__init__`` of its own.
    """

    __slots__ = ("_local__impl",)

    def __new__(cls, *args: Any, **kwargs: Any) -> local:
        if (args or kwargs) and cls.__init__ is object.__init__:
            raise TypeError("Initialization arguments are not supported", args, kwargs)
        self = object.__new__(cls)
        impl = _Impl(args, kwargs)
        object.__setattr__(self, "_local__impl", impl)
        # The creating greenlet's dict exists before __init__ runs (so it is not run twice).
        impl.create_dict(getcurrent())
        return self

    def __getattribute__(self, name: str) -> Any:
        if name in _OWN:
            return _oga(self, name)
        # _get_dict, inlined: this is every attribute read.
        impl: _Impl = _oga(self, "_local__impl")
        g = getcurrent()
        entry = impl.dicts.get(id(g))
        dct = entry.localdict if entry is not None and entry.greenlet() is g else _new_dict(self, impl, g)
        cls = type(self)
        if cls is local:  # no descriptor but methods: the dict first
            if name in dct:
                return dct[name]
            if name == "__dict__":
                return dct
            return _oga(self, name)
        if name == "__dict__":
            return dct
        attr = _lookup(cls, name)
        if attr is not _MISSING:
            kind = type(attr)
            getter = getattr(kind, "__get__", None)
            if getter is not None and (hasattr(kind, "__set__") or hasattr(kind, "__delete__")):
                return getter(attr, self, cls)  # a data descriptor (a property, a slot) wins
            if name in dct:
                return dct[name]
            if getter is not None:
                return getter(attr, self, cls)  # a method, a classmethod...
            return attr
        if name in dct:
            return dct[name]
        getattr_hook = _lookup(cls, "__getattr__")
        if getattr_hook is not _MISSING:
            return getattr_hook(self, name)
        raise AttributeError(f"{cls.__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "__dict__":
            raise AttributeError(f"{type(self).__name__!r} object attribute '__dict__' is read-only")
        if name in _OWN:
            object.__setattr__(self, name, value)
            return
        dct = _get_dict(self)
        if type(self) is local:
            dct[name] = value
            return
        attr = _lookup(type(self), name)
        if attr is not _MISSING:
            setter = getattr(type(attr), "__set__", None)
            if setter is not None:
                setter(attr, self, value)
                return
        dct[name] = value

    def __delattr__(self, name: str) -> None:
        if name == "__dict__":
            raise AttributeError(f"{type(self).__name__!r} object attribute '__dict__' is read-only")
        dct = _get_dict(self)
        attr = _lookup(type(self), name)
        if attr is not _MISSING:
            deleter = getattr(type(attr), "__delete__", None)
            if deleter is not None:
                deleter(attr, self)
                return
        try:
            del dct[name]
        except KeyError:
            raise AttributeError(name) from None

    def __copy__(self) -> local:
        impl: _Impl = object.__getattribute__(self, "_local__impl")
        duplicate = copy(_get_dict(self))
        instance = type(self)(*impl.args, **impl.kwargs)
        new_impl: _Impl = object.__getattribute__(instance, "_local__impl")
        g = getcurrent()
        new_impl.dicts[id(g)].localdict.clear()
        new_impl.dicts[id(g)].localdict.update(duplicate)
        return instance
