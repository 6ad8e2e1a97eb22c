"""Type stubs for plait.green.signal."""

from collections.abc import Callable
from signal import ITIMER_PROF as ITIMER_PROF
from signal import ITIMER_REAL as ITIMER_REAL
from signal import ITIMER_VIRTUAL as ITIMER_VIRTUAL
from signal import NSIG as NSIG
from signal import SIG_BLOCK as SIG_BLOCK
from signal import SIG_DFL as SIG_DFL
from signal import SIG_IGN as SIG_IGN
from signal import SIG_SETMASK as SIG_SETMASK
from signal import SIG_UNBLOCK as SIG_UNBLOCK
from signal import SIGABRT as SIGABRT
from signal import SIGALRM as SIGALRM
from signal import SIGBUS as SIGBUS
from signal import SIGCHLD as SIGCHLD
from signal import SIGCLD as SIGCLD
from signal import SIGCONT as SIGCONT
from signal import SIGFPE as SIGFPE
from signal import SIGHUP as SIGHUP
from signal import SIGILL as SIGILL
from signal import SIGINT as SIGINT
from signal import SIGIO as SIGIO
from signal import SIGIOT as SIGIOT
from signal import SIGKILL as SIGKILL
from signal import SIGPIPE as SIGPIPE
from signal import SIGPOLL as SIGPOLL
from signal import SIGPROF as SIGPROF
from signal import SIGPWR as SIGPWR
from signal import SIGQUIT as SIGQUIT
from signal import SIGRTMAX as SIGRTMAX
from signal import SIGRTMIN as SIGRTMIN
from signal import SIGSEGV as SIGSEGV
from signal import SIGSTKFLT as SIGSTKFLT
from signal import SIGSTOP as SIGSTOP
from signal import SIGSYS as SIGSYS
from signal import SIGTERM as SIGTERM
from signal import SIGTRAP as SIGTRAP
from signal import SIGTSTP as SIGTSTP
from signal import SIGTTIN as SIGTTIN
from signal import SIGTTOU as SIGTTOU
from signal import SIGURG as SIGURG
from signal import SIGUSR1 as SIGUSR1
from signal import SIGUSR2 as SIGUSR2
from signal import SIGVTALRM as SIGVTALRM
from signal import SIGWINCH as SIGWINCH
from signal import SIGXCPU as SIGXCPU
from signal import SIGXFSZ as SIGXFSZ
from signal import Handlers as Handlers
from signal import ItimerError as ItimerError
from signal import Sigmasks as Sigmasks
from signal import Signals as Signals
from signal import alarm as alarm
from signal import default_int_handler as default_int_handler
from signal import getitimer as getitimer
from signal import pause as pause
from signal import pidfd_send_signal as pidfd_send_signal
from signal import pthread_kill as pthread_kill
from signal import pthread_sigmask as pthread_sigmask
from signal import raise_signal as raise_signal
from signal import set_wakeup_fd as set_wakeup_fd
from signal import setitimer as setitimer
from signal import siginterrupt as siginterrupt
from signal import sigpending as sigpending
from signal import sigtimedwait as sigtimedwait
from signal import sigwait as sigwait
from signal import sigwaitinfo as sigwaitinfo
from signal import strsignal as strsignal
from signal import struct_siginfo as struct_siginfo
from signal import valid_signals as valid_signals
from types import FrameType
from typing import Any

from ._hub import Hub

_Handler = Callable[[int, FrameType | None], Any] | int | Handlers | None

def signal(signalnum: int, handler: _Handler) -> _Handler: ...
def getsignal(signalnum: int) -> _Handler: ...

class SignalHandler:
    signalnum: int
    handler: Callable[..., Any] | None
    args: tuple[Any, ...] | None
    kwargs: dict[str, Any] | None
    hub: Hub | None
    def __init__(self, signalnum: int, handler: Callable[..., Any], *args: Any, **kwargs: Any) -> None: ...
    def cancel(self) -> None: ...
    def handle(self) -> None: ...

def signal_handler(
    signalnum: int, handler: Callable[..., Any], *args: Any, **kwargs: Any
) -> SignalHandler: ...

__implements__: list[str]
__extensions__: list[str]
__imports__: list[str]
__all__ = [
    "ITIMER_PROF",
    "ITIMER_REAL",
    "ITIMER_VIRTUAL",
    "NSIG",
    "SIGABRT",
    "SIGALRM",
    "SIGBUS",
    "SIGCHLD",
    "SIGCLD",
    "SIGCONT",
    "SIGFPE",
    "SIGHUP",
    "SIGILL",
    "SIGINT",
    "SIGIO",
    "SIGIOT",
    "SIGKILL",
    "SIGPIPE",
    "SIGPOLL",
    "SIGPROF",
    "SIGPWR",
    "SIGQUIT",
    "SIGRTMAX",
    "SIGRTMIN",
    "SIGSEGV",
    "SIGSTKFLT",
    "SIGSTOP",
    "SIGSYS",
    "SIGTERM",
    "SIGTRAP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGUSR1",
    "SIGUSR2",
    "SIGVTALRM",
    "SIGWINCH",
    "SIGXCPU",
    "SIGXFSZ",
    "SIG_BLOCK",
    "SIG_DFL",
    "SIG_IGN",
    "SIG_SETMASK",
    "SIG_UNBLOCK",
    "Handlers",
    "ItimerError",
    "Sigmasks",
    "SignalHandler",
    "Signals",
    "alarm",
    "default_int_handler",
    "getitimer",
    "getsignal",
    "pause",
    "pidfd_send_signal",
    "pthread_kill",
    "pthread_sigmask",
    "raise_signal",
    "set_wakeup_fd",
    "setitimer",
    "siginterrupt",
    "signal",
    "signal_handler",
    "sigpending",
    "sigtimedwait",
    "sigwait",
    "sigwaitinfo",
    "strsignal",
    "struct_siginfo",
    "valid_signals",
]
