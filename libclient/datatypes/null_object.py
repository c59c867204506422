"""pyignite's null hints (``pyignite.datatypes.null_object``)."""

from ._hints import (
    Null,
    Nullable,
)

__all__ = [
    "Null",
    "Nullable",
]
