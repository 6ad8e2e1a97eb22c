"""The interpreter that took a sweep: its version, whether it is a free-threaded build, and whether
the GIL was enabled while it measured. ``plait scale --python`` labels each model with it, so one
report can hold the same function measured under a GIL build and a free-threaded build.
"""

from __future__ import annotations

import sys
import sysconfig
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Interpreter:
    """A Python interpreter as a sweep saw it.

    ``version`` is ``(major, minor, micro)``; ``free_threaded`` is the build's
    ``Py_GIL_DISABLED``; ``gil_enabled`` is ``sys._is_gil_enabled()`` (a free-threaded build
    enables the GIL again under ``PYTHON_GIL=1`` or for an extension that does not declare itself
    safe without it); ``tag`` tells apart interpreters that would otherwise get the same
    :attr:`label` (``"#2"``).

    >>> Interpreter((3, 13, 5), free_threaded=True, gil_enabled=False).label
    '3.13t, GIL disabled'
    """

    version: tuple[int, int, int]
    free_threaded: bool = False
    gil_enabled: bool = True
    implementation: str = "cpython"
    executable: str = ""
    tag: str = ""

    @classmethod
    def current(cls) -> Interpreter:
        """This interpreter, the GIL's state read now."""
        is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
        return cls(
            version=(sys.version_info.major, sys.version_info.minor, sys.version_info.micro),
            free_threaded=bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
            gil_enabled=bool(is_gil_enabled()) if is_gil_enabled is not None else True,
            implementation=sys.implementation.name,
            executable=sys.executable,
        )

    @property
    def short(self) -> str:
        """``"3.11"``, ``"3.13t"`` (a free-threaded build), ``"pypy 3.10"``, then the tag if any."""
        name = f"{self.version[0]}.{self.version[1]}" + ("t" if self.free_threaded else "")
        if self.implementation != "cpython":
            name = f"{self.implementation} {name}"
        return f"{name} {self.tag}" if self.tag else name

    @property
    def label(self) -> str:
        """:attr:`short`, and for a free-threaded build the GIL's state: ``"3.13t, GIL disabled"``."""
        if not self.free_threaded:
            return self.short
        return f"{self.short}, GIL {'enabled' if self.gil_enabled else 'disabled'}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` (``version_info`` and ``Py_GIL_DISABLED`` as Python names them)."""
        return {
            "label": self.label,
            "version": ".".join(map(str, self.version)),
            "version_info": list(self.version),
            "implementation": self.implementation,
            "executable": self.executable,
            "Py_GIL_DISABLED": self.free_threaded,
            "gil_enabled": self.gil_enabled,
            "tag": self.tag,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Interpreter:
        """The inverse of :meth:`to_dict`."""
        major, minor, micro = (int(v) for v in data["version_info"][:3])
        return cls(
            version=(major, minor, micro),
            free_threaded=bool(data.get("Py_GIL_DISABLED")),
            gil_enabled=bool(data.get("gil_enabled", True)),
            implementation=str(data.get("implementation", "cpython")),
            executable=str(data.get("executable", "")),
            tag=str(data.get("tag", "")),
        )
