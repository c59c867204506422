"""The root of pyignite's type-hint hierarchy: ``IgniteDataType`` with class-level ``type_name``
and ``type_id`` properties, as ``pyignite.datatypes.base`` has them."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


__all__ = ["IgniteDataType", "IgniteDataTypeMeta", "IgniteDataTypeProps"]


class IgniteDataTypeProps:
    """``type_name`` and ``type_id`` readable on hint classes and on their instances."""

    @property
    def type_name(self) -> Any:
        return getattr(self, "_type_name", None)

    @property
    def type_id(self) -> Any:
        from ..binary import entity_id

        return getattr(self, "_type_id", entity_id(getattr(self, "_type_name", None)))


class IgniteDataTypeMeta(type, IgniteDataTypeProps):
    def __getattr__(cls, name: str) -> Any:
        # Class attributes whose values need decimal/datetime (``DecimalObject.default`` ...):
        # made on first use, so importing the hints does not import those modules.
        for klass in cls.__mro__:
            make = vars(klass).get("_lazy", {}).get(name)
            if make is not None:
                value = make()
                setattr(cls, name, value)
                return value
        raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")


class IgniteDataType(metaclass=IgniteDataTypeMeta):
    """A type hint: a class naming the Ignite type a Python value is sent as.

    ``type_code`` is pyignite's one-byte code (``bytes``); the stub sends its integer value to
    the broker.  Hints carry no codec here: the broker does the binary encoding.
    """

    type_code: bytes | None = None

    @classmethod
    def hashcode(cls, value: Any, **kwargs: Any) -> int:
        """The Java hash code of ``value`` stored as this type; 0 where pyignite has none."""
        return 0

    @classmethod
    async def hashcode_async(cls, value: Any, **kwargs: Any) -> int:
        return cls.hashcode(value, **kwargs)
