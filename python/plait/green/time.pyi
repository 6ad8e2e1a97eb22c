"""Type stubs for plait.green.time."""

from time import *  # noqa: F403

def sleep(seconds: float = 0, ref: bool = True) -> None: ...

__implements__: list[str]
__all__: list[str]
