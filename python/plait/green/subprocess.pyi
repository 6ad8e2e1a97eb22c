"""Type stubs for plait.green.subprocess."""

import subprocess as _subprocess
from subprocess import DEVNULL as DEVNULL
from subprocess import PIPE as PIPE
from subprocess import STDOUT as STDOUT
from subprocess import CalledProcessError as CalledProcessError
from subprocess import CompletedProcess as CompletedProcess
from subprocess import SubprocessError as SubprocessError
from subprocess import TimeoutExpired as TimeoutExpired
from subprocess import call as call
from subprocess import check_call as check_call
from subprocess import check_output as check_output
from subprocess import getoutput as getoutput
from subprocess import getstatusoutput as getstatusoutput
from subprocess import list2cmdline as list2cmdline
from subprocess import run as run
from typing import AnyStr

class Popen(_subprocess.Popen[AnyStr]): ...

__implements__: list[str]
__extensions__: list[str]
__imports__: list[str]
__all__ = [
    "DEVNULL",
    "PIPE",
    "STDOUT",
    "CalledProcessError",
    "CompletedProcess",
    "Popen",
    "SubprocessError",
    "TimeoutExpired",
    "call",
    "check_call",
    "check_output",
    "getoutput",
    "getstatusoutput",
    "list2cmdline",
    "run",
]
