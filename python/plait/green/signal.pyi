"""Type stubs for plait.green.signal."""

from collections.abc import Callable
from signal import *  # noqa: F403
from types import FrameType
from typing import Any

from ._hub import Hub

_Handler = Callable[[int, FrameType | None], Any] | int | Handlers | None  # noqa: F405

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
__all__: list[str]
