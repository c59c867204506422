"""``PeekModes`` for ``Cache.get_size`` (``pyignite.datatypes.key_value``)."""

from enum import IntEnum

__all__ = ["PeekModes"]


class PeekModes(IntEnum):
    ALL = 0
    NEAR = 1
    PRIMARY = 2
    BACKUP = 3
    ONHEAP = 4
    OFFHEAP = 5
