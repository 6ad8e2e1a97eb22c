"""Type stubs for plait.green.selectors."""

import selectors as _stdselectors
from selectors import EVENT_READ as EVENT_READ
from selectors import EVENT_WRITE as EVENT_WRITE
from selectors import BaseSelector as BaseSelector
from selectors import SelectorKey as SelectorKey
from typing import Any

from ._hub import Hub

__implements__: list[str]
__all__ = [
    "EVENT_READ",
    "EVENT_WRITE",
    "BaseSelector",
    "DefaultSelector",
    "GeventSelector",
    "PollSelector",
    "SelectSelector",
    "SelectorKey",
]

class GeventSelector(_stdselectors._BaseSelectorImpl):  # type: ignore[name-defined]
    hub: Hub
    def __init__(self, hub: Hub | None = None) -> None: ...
    def register(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey: ...
    def unregister(self, fileobj: Any) -> SelectorKey: ...
    def select(self, timeout: float | None = None) -> list[tuple[SelectorKey, int]]: ...
    def close(self) -> None: ...

class SelectSelector(_stdselectors.SelectSelector): ...
class PollSelector(_stdselectors.PollSelector): ...

DefaultSelector = GeventSelector
