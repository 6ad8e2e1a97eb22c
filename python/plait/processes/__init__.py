"""plait.processes (being split into this package; see _executor)."""

from ._executor import *  # noqa: F403
from ._executor import __all__  # noqa: F401
