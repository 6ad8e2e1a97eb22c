"""The stdlib module behind each cooperative module: its other names are copied in, so
``plait.green.os`` (or ``time``, ``signal``, ``subprocess``) can stand in for the whole module."""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any

__all__ = ["copy_globals", "rebind"]


def copy_globals(
    source: types.ModuleType, target: dict[str, Any], ignore: Iterable[str] = (), extra: Iterable[str] = ()
) -> list[str]:
    """Copies ``source``'s public names (its ``__all__``, or else every public name that is not a
    module) and ``extra`` into the ``target`` globals, except ``ignore`` and names ``target``
    already defines; returns the names copied."""
    skip = set(ignore)
    names = getattr(source, "__all__", None)
    if names is None:
        names = [
            n
            for n in dir(source)
            if not n.startswith("_") and not isinstance(getattr(source, n), types.ModuleType)
        ]
    copied = []
    for name in [*names, *extra]:
        if name in skip or name in target or not hasattr(source, name):
            continue
        target[name] = getattr(source, name)
        copied.append(name)
    return copied


def rebind(func: Any, globals_: dict[str, Any], name: str | None = None) -> Any:
    """A copy of the function ``func`` that reads its globals from ``globals_`` (the stdlib's
    own code, with some of its module's names replaced by cooperative ones)."""
    code = func.__code__
    copy = types.FunctionType(code, globals_, name or func.__name__, func.__defaults__, func.__closure__)
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__qualname__ = func.__qualname__
    copy.__doc__ = func.__doc__
    copy.__dict__.update(func.__dict__)
    return copy
