"""Type stubs for plait.green.subprocess."""

import subprocess as _subprocess
from subprocess import *  # noqa: F403
from typing import AnyStr

class Popen(_subprocess.Popen[AnyStr]): ...

__implements__: list[str]
__extensions__: list[str]
__all__: list[str]
