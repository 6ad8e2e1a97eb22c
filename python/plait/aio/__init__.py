"""plait.aio (being split into this package; see _loop)."""

from ._loop import *  # noqa: F403
from ._loop import __all__  # noqa: F401
