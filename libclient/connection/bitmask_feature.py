"""Thin-client feature flags (``pyignite.connection.bitmask_feature``)."""

from __future__ import annotations

from enum import IntFlag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["BitmaskFeature"]


class BitmaskFeature(IntFlag):
    CLUSTER_API = 1 << 2

    def __bytes__(self) -> bytes:
        return self.to_bytes(self.bit_length() // 8 + 1, byteorder="little")

    @staticmethod
    def all_supported() -> BitmaskFeature:
        supported = BitmaskFeature(0)
        for feature in BitmaskFeature:
            supported |= feature
        return supported

    @staticmethod
    def from_array(features_array: bytes | None) -> BitmaskFeature | None:
        if features_array is None:
            return None
        return BitmaskFeature(int.from_bytes(features_array, byteorder="little"))

    @staticmethod
    def from_bits(bits: Iterable[int]) -> BitmaskFeature:
        """From bit numbers, as the broker's ``hello`` lists them."""
        value = 0
        for bit in bits:
            value |= 1 << int(bit)
        return BitmaskFeature(value & int(BitmaskFeature.all_supported()))
