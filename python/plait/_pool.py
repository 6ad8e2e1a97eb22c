"""The future of plait's pools (``ThreadPool``, ``ProcessPool``): a ``concurrent.futures.Future``
with the hot paths in Rust. Importing this module registers it with the binding, which makes the
futures (``_plait._set_future_type``)."""

from __future__ import annotations

import concurrent.futures

from . import _plait

__all__ = ["Future"]


class Future(_plait.FutureCore, concurrent.futures.Future):  # type: ignore[misc]
    """A ``concurrent.futures.Future`` whose methods run natively.

    It is an instance of ``concurrent.futures.Future``, so ``concurrent.futures.wait``,
    ``as_completed`` and ``asyncio.wrap_future`` accept it.
    """

    __init__ = object.__init__  # the native __new__ does all the work


_plait._set_future_type(Future)
