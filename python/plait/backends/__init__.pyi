from typing import Any

__all__ = ["Dask", "Ray"]

class Dask:
    target: Any
    cluster_options: dict[str, Any]
    def __init__(self, client_or_address_or_cluster: Any = None, /, **cluster_options: Any) -> None: ...
    def _connect(
        self, max_workers: int | None, hello: bytes, complete: Any, max_tasks: int | None
    ) -> Any: ...

class Ray:
    address: str | None
    idle_timeout: float
    init_options: dict[str, Any]
    def __init__(
        self, address: str | None = None, /, *, idle_timeout: float = 10.0, **init_options: Any
    ) -> None: ...
    def _connect(
        self, max_workers: int | None, hello: bytes, complete: Any, max_tasks: int | None
    ) -> Any: ...

def resolve(backend: Any) -> Dask | Ray: ...
