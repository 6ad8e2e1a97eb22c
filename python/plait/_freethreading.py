"""Whether plait.green can run here: greenlet cannot switch safely on free-threaded CPython 3.13.

A greenlet switch on a free-threaded build must suspend the thread's critical sections (the
per-object locks that replace the GIL) and resume the other greenlet's. greenlet 3.5 does that
with CPython 3.14's ``_PyCriticalSection_SuspendAll`` and does not build for 3.13t; older
versions build but leave them held across the switch, and the next unlock aborts the
interpreter ("PyMutex_Unlock: unlocking mutex that is not locked"). The demo, the examples and
the test suite skip green threads there, with this reason.
"""

from __future__ import annotations

import sys
import sysconfig

__all__ = ["GREEN_UNSAFE_REASON", "green_unsafe"]

GREEN_UNSAFE_REASON = (
    "greenlet cannot switch safely on free-threaded CPython 3.13 (critical sections stay held across "
    "a switch: the interpreter aborts in PyMutex_Unlock); plait.green needs a GIL build, or 3.14t with "
    "greenlet >= 3.5"
)


def green_unsafe() -> bool:
    """True on a free-threaded CPython before 3.14, where plait.green must not run."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED")) and sys.version_info < (3, 14)
