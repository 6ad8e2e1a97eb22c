"""Type stubs for plait.green.monkey."""

from collections.abc import Iterable
from types import ModuleType
from typing import Any, overload

from ..exceptions import MonkeyPatchWarning as MonkeyPatchWarning
from ..exceptions import PatchedTooLateWarning as PatchedTooLateWarning

saved: dict[str, dict[str, Any]]

def is_module_patched(mod_name: str) -> bool: ...
def is_object_patched(mod_name: str, item_name: str) -> bool: ...
def is_anything_patched() -> bool: ...
@overload
def get_original(mod_name: str | Iterable[str], item_name: str) -> Any: ...
@overload
def get_original(mod_name: str | Iterable[str], item_name: Iterable[str]) -> list[Any]: ...
def patch_item(module: Any, attr: str, newitem: Any) -> None: ...
def remove_item(module: Any, attr: str) -> None: ...
def patch_module(
    target_module: Any, source_module: ModuleType, items: Iterable[str] | None = None
) -> bool: ...
def patch_os() -> None: ...
def patch_time() -> None: ...
def patch_thread(
    threading: bool = True,
    _threading_local: bool = True,
    Event: bool = True,
    logging: bool = True,
    existing_locks: bool = True,
    _warnings: list[tuple[str, type[Warning]]] | None = None,
) -> None: ...
def patch_socket(dns: bool = True, aggressive: bool = True) -> None: ...
def patch_dns() -> None: ...
def patch_ssl(_warnings: list[tuple[str, type[Warning]]] | None = None, _first_time: bool = True) -> None: ...
def patch_select(aggressive: bool = True) -> None: ...
def patch_selectors(aggressive: bool = True) -> None: ...
def patch_subprocess() -> None: ...
def patch_signal() -> None: ...
def patch_queue() -> None: ...
def patch_sys(stdin: bool = True, stdout: bool = True, stderr: bool = True) -> None: ...
def patch_builtins() -> None: ...
def patch_contextvars() -> None: ...
def patch_all(
    socket: bool = True,
    dns: bool = True,
    time: bool = True,
    select: bool = True,
    thread: bool = True,
    os: bool = True,
    ssl: bool = True,
    subprocess: bool = True,
    sys: bool = False,
    aggressive: bool = True,
    Event: bool = True,
    builtins: bool = True,
    signal: bool = True,
    queue: bool = True,
    contextvars: bool = True,
    **kwargs: Any,
) -> bool | None: ...
def main(argv: list[str] | None = None) -> Any: ...

__all__ = [
    "MonkeyPatchWarning",
    "PatchedTooLateWarning",
    "get_original",
    "is_anything_patched",
    "is_module_patched",
    "is_object_patched",
    "main",
    "patch_all",
    "patch_builtins",
    "patch_contextvars",
    "patch_dns",
    "patch_item",
    "patch_module",
    "patch_os",
    "patch_queue",
    "patch_select",
    "patch_selectors",
    "patch_signal",
    "patch_socket",
    "patch_ssl",
    "patch_subprocess",
    "patch_sys",
    "patch_thread",
    "patch_time",
    "remove_item",
    "saved",
]
