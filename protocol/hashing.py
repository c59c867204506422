"""Java-compatible string hashing: String.hashCode and the cache id derived from a cache name."""

from __future__ import annotations

import sys

__all__ = ["cache_id", "java_string_hash"]

_MASK32 = 0xFFFFFFFF
# memoryview.cast("H") reads native-order units, so encode in native order.
_UTF16_NATIVE = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"


def java_string_hash(s: str) -> int:
    """Return Java's ``String.hashCode()`` of ``s`` as a signed 32-bit int.

    Java hashes UTF-16 code units, so a character outside the BMP counts as two units
    (its surrogate pair). Lone surrogates are hashed as the unit they are.
    """
    units = memoryview(s.encode(_UTF16_NATIVE, "surrogatepass")).cast("H")
    h = 0
    for unit in units:
        h = (31 * h + unit) & _MASK32
    return h - (1 << 32) if h & 0x80000000 else h


def cache_id(name: str) -> int:
    """Return the cache id Ignite derives from a cache name (its Java hashCode, not lower-cased)."""
    return java_string_hash(name)
