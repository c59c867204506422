"""``ExpiryPolicy`` (``pyignite.datatypes.expiry_policy``): TTLs for create, update and access,
each in milliseconds or a ``timedelta``, validated as pyignite validates them."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import timedelta
    from typing import Any

__all__ = ["ExpiryPolicy"]

_FIELDS = ("create", "update", "access")


class ExpiryPolicy:
    """Set expiry policy for the cache."""

    #: Set TTL unchanged.
    UNCHANGED = -2
    #: Set TTL eternal.
    ETERNAL = -1

    __slots__ = _FIELDS
    create: int | timedelta
    update: int | timedelta
    access: int | timedelta

    def __init__(self, *, create: int | timedelta = UNCHANGED,
                 update: int | timedelta = UNCHANGED,
                 access: int | timedelta = UNCHANGED) -> None:
        for name, value in zip(_FIELDS, (create, update, access), strict=True):
            _validate(name, value)
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        _validate(name, value)
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return (f"ExpiryPolicy(create={self.create!r}, update={self.update!r}, "
                f"access={self.access!r})")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._astuple() == other._astuple()

    __hash__ = None  # type: ignore[assignment]  # unhashable (mutable), like pyignite's attrs class

    def _astuple(self) -> tuple[Any, ...]:
        return (self.create, self.update, self.access)

    def as_millis(self) -> list[int]:
        """``[create, update, access]`` in whole milliseconds, as the broker takes it."""
        return [_millis(v) for v in self._astuple()]

    @classmethod
    def from_millis(cls, value: Any) -> ExpiryPolicy | None:
        if value is None:
            return None
        if isinstance(value, dict):
            value = [value.get(k, cls.UNCHANGED) for k in _FIELDS]
        create, update, access = value
        return cls(create=create, update=update, access=access)


def _validate(name: str, value: Any) -> None:
    from datetime import timedelta  # here, so that importing libclient does not load datetime

    if not isinstance(value, int | timedelta):
        raise TypeError(f"'{name}' must be <class 'int'> or <class 'datetime.timedelta'> "
                        f"(got {value!r} that is a {type(value)!r}).")
    if isinstance(value, timedelta):
        value = value.total_seconds() * 1000
    if value < 0 and value not in (ExpiryPolicy.UNCHANGED, ExpiryPolicy.ETERNAL):
        raise ValueError(f"'{name}' value must not be negative")


def _millis(value: int | timedelta) -> int:
    if isinstance(value, int):
        return value
    return int(value.total_seconds() * 1000 // 1)  # pyignite: math.floor
