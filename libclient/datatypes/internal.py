"""pyignite's ``pyignite.datatypes.internal``: the type-inference markers, ``tc_map`` (type code
-> hint class) and ``Struct``/``StructArray`` as plain descriptions of a record layout.

The stub encodes nothing (the broker does), so the structs describe fields and defaults and
have no ``parse``/``from_python``; ``infer_from_python`` is not here (see libclient.wire).
"""

from __future__ import annotations

from collections import OrderedDict

from ._hints import HINT_BY_CODE, AnyDataArray, AnyDataObject

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["AnyDataArray", "AnyDataObject", "Struct", "StructArray", "tc_map"]


def tc_map(key: bytes) -> type:
    """The hint class that reads values of Ignite type code ``key`` (one byte)."""
    return HINT_BY_CODE[key[0]]


class Struct:
    """A sequence of named fields (``[(name, hint), ...]``), with defaults."""

    def __init__(self, fields: list[Any], dict_type: type = OrderedDict,
                 defaults: dict[str, Any] | None = None) -> None:
        self.fields = fields
        self.dict_type = dict_type
        self.defaults = defaults if defaults is not None else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fields={self.fields!r}, defaults={self.defaults!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]


class StructArray:
    """A counted array of records, each made of the ``following`` fields."""

    def __init__(self, following: list[Any] | None = None, counter_type: Any = None,
                 defaults: dict[str, Any] | None = None) -> None:
        self.following = following if following is not None else []
        self.counter_type = counter_type  # pyignite: ctypes.c_int; no wire format here
        self.defaults = defaults if defaults is not None else {}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(following={self.following!r}, "
                f"defaults={self.defaults!r})")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]
