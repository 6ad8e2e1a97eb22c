"""A task's call read from its pickle without running any of its code, for dumps.

Unpickling runs code: ``find_class`` imports modules and ``REDUCE`` calls whatever the pickle
names. Here every global the pickle names becomes a stand-in class that records its name and its
arguments, so reading ``f(1, Point(2, 3))`` out of a ProcessPool task imports nothing and calls
nothing of the program's. Only builtin containers and scalars are real objects.
"""

from __future__ import annotations

import io
import itertools
import pickle
import reprlib
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3

_stand_ins: dict[tuple[str, str], type] = {}


def _stand_in(module: str, name: str) -> type:
    """A class standing for the global ``module.name``: instances remember how they were made."""
    key = (module, name)
    cls = _stand_ins.get(key)
    if cls is not None:
        return cls

    def __new__(kind: type, *args: Any, **kwargs: Any) -> Any:
        obj: Any = object.__new__(kind)
        obj.__dict__["_args"] = args
        return obj

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self: Any, state: Any) -> None:
        self.__dict__["_state"] = state

    def __repr__(self: Any) -> str:
        args = self.__dict__.get("_args", ())
        if args and args[0] is type(self):  # copyreg.__newobj__ style
            args = args[1:]
        inner = ", ".join(_REPR.repr(a) for a in args)
        return f"{name}({inner})"

    def append(self: Any, item: Any) -> None:
        self.__dict__.setdefault("_items", []).append(item)

    def extend(self: Any, items: Any) -> None:
        self.__dict__.setdefault("_items", []).extend(items)

    def __setitem__(self: Any, key: Any, value: Any) -> None:
        self.__dict__.setdefault("_items", []).append((key, value))

    cls = type(
        name if name.isidentifier() else "Global",
        (),
        {
            "__new__": __new__,
            "__init__": __init__,
            "__setstate__": __setstate__,
            "__repr__": __repr__,
            "append": append,
            "extend": extend,
            "__setitem__": __setitem__,
            "__call__": lambda self, *a, **k: _stand_in(module, f"{name}(...)")(*a),
            "__qualname__": name,
            "__module__": module,
        },
    )
    if len(_stand_ins) < 4096:
        _stand_ins[key] = cls
    return cls


class _Reader(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return _stand_in(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return _stand_in("persistent", str(pid))()


def load(body: bytes, segments: bool) -> Any:
    """The object pickled in ``body`` with stand-ins for every global (see the module docstring).
    ``segments``: the body starts with the table of its shared-memory segments."""
    view = memoryview(body)
    if segments:
        from ..processes import _wire

        (count,) = _wire._COUNT.unpack_from(view)
        view = view[_wire._COUNT.size + count * _wire._ENTRY.size :]
    reader = _Reader(io.BytesIO(view), buffers=itertools.repeat(b""))
    return reader.load()


def call(function: Any, body: bytes, segments: bool) -> str:
    """``name(args...)`` of a task: ``function`` (the pool's function for the task, or None when
    it travels in the body) and its pickled ``(args, kwargs)``; a placeholder when unreadable."""
    try:
        obj = load(body, segments)
        if function is None:
            function, args, kwargs = obj
            fname = repr(function).split("(")[0] if not isinstance(function, type) else function.__qualname__
        else:
            args, kwargs = obj
            fname = getattr(function, "__qualname__", None) or repr(function)
        parts = [_REPR.repr(a) for a in args] + [f"{k}={_REPR.repr(v)}" for k, v in dict(kwargs).items()]
        text = f"{fname}({', '.join(parts)})"
    except Exception as exc:
        fname = getattr(function, "__qualname__", None) or "<function>"
        text = f"{fname}(<arguments not readable: {type(exc).__name__}>)"
    return text if len(text) <= 200 else text[:197] + "..."
