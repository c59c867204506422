"""pyignite's type-inference markers (``pyignite.datatypes.internal``); the stub infers
types in libclient.wire."""

from ._hints import (
    AnyDataArray,
    AnyDataObject,
)

__all__ = [
    "AnyDataArray",
    "AnyDataObject",
]
