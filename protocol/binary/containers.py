"""Codecs for containers: Collection (24), Map (25), wrapped binary objects (27), handles (102)
and opaque optimized-marshaller blobs (-2).

- Collection decodes to Collection(kind, items); Map to Map(kind, [(key, value), ...]) so
  unhashable keys and the server's order survive. Writers take those value classes, or
  with an explicit type code a list/tuple/set (Collection: ARR_LIST, sets HASH_SET) or a
  dict (Map: HASH_MAP). A plain dict has no automatic type (pyignite silently stores its
  keys as an array).
- A wrapped object (27: i32 n, n bytes, i32 root offset) decodes to its root value; the
  bytes are decoded on their own, so handles inside are relative to the wrapped array.
- A handle (102: i32 back-offset) is an earlier value again: the value starting at
  (position of the 102 byte - offset), which must lie inside the outermost value being
  decoded (see Decoder.resolve_handle). It is decoded once and shared; a handle into a
  value still being decoded (a cyclic graph) is refused, since frozen values cannot
  contain themselves. The encoder never writes handles (neither does pyignite).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from .._checks import one_of
from ..errors import LocalProtocolError, RemoteProtocolError
from ._engine import Buffer, Decoder, Encoder, LeafCodecs, NestedCodecs, PythonTypes
from .primitives import read_length
from .typecodes import TypeCode
from .values import (
    COLLECTION_KINDS,
    MAP_KINDS,
    Collection,
    CollectionKind,
    Map,
    MapKind,
    Typed,
)

__all__ = ["LEAF", "NESTED", "PYTHON_TYPES"]

T = TypeCode
_HEAD = struct.Struct("<ib")  # count, kind
_HEAD_W = struct.Struct("<bib")  # code, count, kind
_I32 = struct.Struct("<i")
_OPTIMIZED_W = struct.Struct("<bi")


def _read_collection(buf: Buffer, pos: int, dec: Decoder) -> tuple[object, int]:
    n, kind = _HEAD.unpack_from(buf, pos)
    pos += 5
    if n < 0 or n > len(buf) - pos:
        raise RemoteProtocolError(f"collection of {n} elements at offset {pos - 5} overruns")
    dec.enter()
    read = dec.read
    items: list[object] = []
    append = items.append
    for _ in range(n):
        value, pos = read(buf, pos)
        append(value)
    dec.depth -= 1
    return Collection(kind, items), pos


def _write_collection(buf: bytearray, value: object, enc: Encoder) -> None:
    items: Sequence[object]
    if isinstance(value, Collection):
        kind, items = value.kind, value.items
    elif isinstance(value, (list, tuple)):
        kind, items = CollectionKind.ARR_LIST, value
    elif isinstance(value, (set, frozenset)):
        kind, items = CollectionKind.HASH_SET, list(value)
    else:
        raise LocalProtocolError(f"a COLLECTION must be a Collection, got {type(value).__name__}")
    buf += _HEAD_W.pack(T.COLLECTION, len(items), one_of(kind, COLLECTION_KINDS, "collection kind"))
    if kind == CollectionKind.SINGLETON_LIST and len(items) > 1:
        # a node reads it into a one-element list: a second item fails the request's parsing
        # (IllegalStateException), and the node then closes the connection
        raise LocalProtocolError(
            f"a SINGLETON_LIST collection holds one item at most, got {len(items)}")
    write = enc.write
    for x in items:
        write(buf, x)


def _read_map(buf: Buffer, pos: int, dec: Decoder) -> tuple[object, int]:
    n, kind = _HEAD.unpack_from(buf, pos)
    pos += 5
    if n < 0 or 2 * n > len(buf) - pos:
        raise RemoteProtocolError(f"map of {n} pairs at offset {pos - 5} overruns")
    dec.enter()
    read = dec.read
    items: list[tuple[object, object]] = []
    append = items.append
    for _ in range(n):
        key, pos = read(buf, pos)
        value, pos = read(buf, pos)
        append((key, value))
    dec.depth -= 1
    return Map(kind, items), pos


def _write_map(buf: bytearray, value: object, enc: Encoder) -> None:
    if isinstance(value, Map):
        kind, items = value.kind, value.items
    elif isinstance(value, dict):
        kind, items = MapKind.HASH_MAP, list(value.items())
    else:
        raise LocalProtocolError(f"a MAP must be a Map or dict, got {type(value).__name__}")
    buf += _HEAD_W.pack(T.MAP, len(items), one_of(kind, MAP_KINDS, "map kind"))
    write = enc.write
    for pair in items:
        key, item = pair
        write(buf, key)
        write(buf, item)


def _read_wrapped(buf: Buffer, pos: int, dec: Decoder) -> tuple[object, int]:
    n, start = read_length(buf, pos)
    end = start + n
    (root,) = _I32.unpack_from(buf, end)
    if not 0 <= root < n:
        raise RemoteProtocolError(f"wrapped object root offset {root} outside its {n} bytes")
    inner = memoryview(buf)[start:end]
    saved = dec.enter_buffer()
    dec.enter()
    value, _ = dec.read(inner, root)
    dec.depth -= 1
    dec.leave_buffer(saved)
    return value, end + 4


def _read_handle(buf: Buffer, pos: int, dec: Decoder) -> tuple[object, int]:
    (offset,) = _I32.unpack_from(buf, pos)
    return dec.resolve_handle(buf, pos - 1, offset), pos + 4


def _read_optimized(buf: Buffer, pos: int) -> tuple[object, int]:
    n, start = read_length(buf, pos)
    return Typed(T.OPTIMIZED_MARSHALLER, bytes(buf[start : start + n])), start + n


def _write_optimized(buf: bytearray, value: object) -> None:
    if not isinstance(value, (bytes, bytearray)):
        raise LocalProtocolError("an OPTIMIZED_MARSHALLER value is the opaque bytes a node sent")
    buf += _OPTIMIZED_W.pack(T.OPTIMIZED_MARSHALLER, len(value))
    buf += value


# -- the codecs, in one ordered place --------------------------------------------------------

LEAF: LeafCodecs = ((T.OPTIMIZED_MARSHALLER, _read_optimized, _write_optimized),)
NESTED: NestedCodecs = (
    (T.COLLECTION, _read_collection, _write_collection),
    (T.MAP, _read_map, _write_map),
    (T.WRAPPED_BINARY, _read_wrapped, None),
    (T.HANDLE, _read_handle, None),
)

PYTHON_TYPES: PythonTypes = ((Collection, T.COLLECTION), (Map, T.MAP))
