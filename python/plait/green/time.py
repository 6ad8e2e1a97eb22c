"""The stdlib :mod:`time`, with a ``sleep`` that suspends only the current greenlet (gevent's
``gevent.time``). Every other name is the stdlib's."""

from __future__ import annotations

import time as _time

from ._hub import sleep as sleep
from ._stdlib import copy_globals

__implements__ = ["sleep"]

__imports__ = copy_globals(_time, globals(), ignore=__implements__)
__all__ = sorted(__implements__ + __imports__)
