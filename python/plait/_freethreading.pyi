"""Type stubs for plait._freethreading."""

__all__ = ["GREEN_UNSAFE_REASON", "green_unsafe"]

GREEN_UNSAFE_REASON: str

def green_unsafe() -> bool: ...
