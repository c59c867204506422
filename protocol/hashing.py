"""Java-compatible hashing: String.hashCode, cache ids, binary type/field/schema ids and the
complex-object hash code."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from functools import lru_cache
from operator import mul

__all__ = [
    "cache_id",
    "field_id",
    "java_lower",
    "java_string_hash",
    "object_hash",
    "schema_id",
    "type_id",
]

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


# -- binary type ids, field ids, schema ids ---------------------------------------------------


def java_lower(s: str) -> str:
    """Lower-case ``s`` one UTF-16 unit at a time, like Java's ``Character.toLowerCase``.

    Python's ``str.lower()`` applies the full (multi-character) mappings and lower-cases
    astral characters; Java's BinaryBasicIdMapper maps each ``char`` on its own with the
    simple mapping and leaves surrogate halves alone. The only BMP character whose full
    mapping differs is U+0130 (capital I with dot above): Java gives plain ``i``.
    """
    if s.isascii():
        return s.lower()
    out = []
    for ch in s:
        if ord(ch) > 0xFFFF:  # two surrogate units in Java, neither of which changes
            out.append(ch)
            continue
        low = ch.lower()
        out.append(low if len(low) == 1 else "i" if ch == "\u0130" else ch)
    return "".join(out)


@lru_cache(maxsize=4096)  # pure function of its argument; names repeat on every object
def type_id(name: str) -> int:
    """The id Ignite's default mapper gives a binary type name (lower-cased Java hash)."""
    return java_string_hash(java_lower(name))


def field_id(name: str) -> int:
    """The id of a binary object field: the same lower-cased hash as a type id."""
    return type_id(name)


_FNV1_OFFSET_BASIS = 0x811C9DC5
_FNV1_PRIME = 0x01000193


def schema_id(field_ids: Iterable[int]) -> int:
    """FNV-1a over the field ids in order (4 bytes each, low byte first); 0 for no fields."""
    h = _FNV1_OFFSET_BASIS
    empty = True
    for fid in field_ids:
        empty = False
        for shift in (0, 8, 16, 24):
            h = ((h ^ ((fid >> shift) & 0xFF)) * _FNV1_PRIME) & _MASK32
    if empty:
        return 0
    return h - (1 << 32) if h & 0x80000000 else h


# -- complex-object header hash ------------------------------------------------------------------

# h = 31*h + b over the bytes, from h = 1, is h = 31**n + sum(b[i] * 31**(n-1-i)) mod 2**32.
# Evaluating the sum chunk by chunk with map(mul) against a fixed table of powers keeps
# the per-byte work in C; the table is a constant, not a cache.
_CHUNK = 1024
_POW = [pow(31, k, 1 << 32) for k in range(_CHUNK + 1)]
_POW_DESC = _POW[_CHUNK - 1 :: -1]  # 31**(CHUNK-1) ... 31**0


def object_hash(data: bytes | bytearray | memoryview) -> int:
    """Java's BinaryArrayIdentityResolver hash of a complex object's data bytes.

    Starts at 1 and treats every byte as signed: ``h = 31*h + b`` in 32-bit arithmetic.
    ``data`` is the span from the data start to the footer start (see protocol facts §6).
    """
    view = memoryview(data).cast("b")  # signed bytes, as Java sees them
    h = 1
    n = len(view)
    for start in range(0, n, _CHUNK):
        chunk = view[start : start + _CHUNK]
        m = len(chunk)
        h = (h * _POW[m] + sum(map(mul, chunk, _POW_DESC[_CHUNK - m :]))) & _MASK32
    return h - (1 << 32) if h & 0x80000000 else h
