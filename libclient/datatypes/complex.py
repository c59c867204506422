"""pyignite's complex-object hints (``pyignite.datatypes.complex``)."""

from ._hints import (
    BinaryObject,
    CollectionObject,
    Map,
    MapObject,
    ObjectArrayObject,
    WrappedDataObject,
)

__all__ = [
    "BinaryObject",
    "CollectionObject",
    "Map",
    "MapObject",
    "ObjectArrayObject",
    "WrappedDataObject",
]
