"""Ignite's binary data format: type codes and the typed-value codec.

Loaded on first use (PEP 562): importing ``protocol.binary.values`` alone stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TypeCode": ".typecodes",
    "decode_value": ".codec",
    "encode_value": ".codec",
    "read_value": ".codec",
    "register_python_type": ".codec",
    "register_reader": ".codec",
    "register_writer": ".codec",
    "write_value": ".codec",
}

__all__ = sorted(_EXPORTS)

TYPE_CHECKING = False
if TYPE_CHECKING:  # the names above, as type checkers see them (tests/protocol checks they agree)
    from .codec import decode_value as decode_value
    from .codec import encode_value as encode_value
    from .codec import read_value as read_value
    from .codec import register_python_type as register_python_type
    from .codec import register_reader as register_reader
    from .codec import register_writer as register_writer
    from .codec import write_value as write_value
    from .typecodes import TypeCode as TypeCode


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'protocol.binary' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
