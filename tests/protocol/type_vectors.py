"""The typed-value JSON of the ``types_*.json`` vectors, shared by capture_types.py (writes) and
the codec tests (replay).

A vector file is ``tests/protocol/vectors/types_<name>.json``::

    {
      "source": "where the bytes came from",
      "metadata": {"<type id>": "<BINARY_TYPE_GET response body, hex>", ...},
      "cases": [
        {"name": "...", "group": "standard|collections|objects|sql|pyignite|handles",
         "hex": "<one typed value, as the node sent it>",
         "value": TJ,                        # what it must decode to
         "encode": {"compact_footer": true}, # re-encoding "encode_value" (default "value")
                                             # with this context gives "hex" again; false
                                             # for decode-only cases
         "encode_value": TJ,                 # optional, see above
         "note": "..."}
      ],
      "exchanges": [                          # metadata ops with their parsed results
        {"name": "...", "op": "BINARY_TYPE_GET", "request_hex": "...",
         "response_hex": "...", "result": ...}
      ]
    }

The top-level keys differ from the session/value vectors on purpose: test_vectors.py
replays "values" and "sessions" only.

TJ, a typed value: ``{"type": "<TypeCode name>", "value": ...}`` with, per type,

- NULL: no value; BYTE/SHORT/INT/LONG: int; FLOAT/DOUBLE: number or "nan"/"inf"/"-inf";
  CHAR, STRING: str (a STRING may add ``"times": n``: the value repeated n times);
  BOOL: bool; BYTE_ARRAY, OPTIMIZED_MARSHALLER: hex
- UUID: str; DATE, TIME: int ms; TIMESTAMP: [ms, nanos]; DECIMAL: str (exact scale);
  ENUM/BINARY_ENUM: [type id, ordinal]
- SHORT/INT/LONG/FLOAT/DOUBLE/CHAR/BOOL_ARRAY: a list of plain values as above
- STRING/UUID/DATE/TIMESTAMP/TIME/DECIMAL/ENUM_ARRAY: a list of TJ (or NULL TJ)
- OBJECT_ARRAY: ``"type_id"`` + list of TJ; COLLECTION/MAP: ``"kind"`` + list of TJ /
  of [TJ, TJ]
- COMPLEX_OBJECT: ``"type_id"``, ``"type_name"``, ``"schema_id"``, ``"hash_code"``,
  ``"fields": [[name, TJ], ...]``, ``"raw"``: hex or null
- WRAPPED_BINARY: ``"value"`` is the TJ of the root object (it decodes to that).
"""

from __future__ import annotations

import decimal
import json
import math
import uuid
from pathlib import Path
from typing import Any

from protocol.binary.metadata import parse_binary_type_get
from protocol.binary.registry import CodecContext, Registry
from protocol.binary.typecodes import TypeCode
from protocol.binary.values import (
    BinaryObject,
    Collection,
    Date,
    EnumValue,
    Map,
    ObjectArray,
    Time,
    Timestamp,
    Typed,
)

VECTOR_DIR = Path(__file__).parent / "vectors"
Json = dict[str, Any]
T = TypeCode

_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_PLAIN_ARRAYS = {
    T.SHORT_ARRAY, T.INT_ARRAY, T.LONG_ARRAY, T.FLOAT_ARRAY, T.DOUBLE_ARRAY, T.CHAR_ARRAY,
    T.BOOL_ARRAY,
}
_TYPED_ARRAYS = {
    T.STRING_ARRAY, T.UUID_ARRAY, T.DATE_ARRAY, T.TIMESTAMP_ARRAY, T.TIME_ARRAY,
    T.DECIMAL_ARRAY, T.ENUM_ARRAY,
}


def load_type_vector_files(directory: Path = VECTOR_DIR) -> list[tuple[str, Json]]:
    return [(p.name, json.loads(p.read_text("utf-8")))
            for p in sorted(directory.glob("types_*.json"))]


def registry_from(metadata: dict[str, str]) -> Registry:
    """A Registry filled from recorded BINARY_TYPE_GET response bodies."""
    registry = Registry()
    for body in metadata.values():
        bt = parse_binary_type_get(bytes.fromhex(body))
        assert bt is not None
        registry.add(bt)
    return registry


def context_for(document: Json, *, compact_footer: bool = True) -> CodecContext:
    return CodecContext(registry_from(document.get("metadata", {})), compact_footer=compact_footer)


def _float(raw: object) -> float:
    return _SPECIAL[raw] if isinstance(raw, str) else float(raw)  # type: ignore[arg-type]


def _scalar(code: TypeCode, raw: Any) -> object:
    if code in (T.FLOAT, T.DOUBLE):
        return _float(raw)
    if code in (T.BYTE_ARRAY, T.OPTIMIZED_MARSHALLER):
        return bytes.fromhex(raw)
    if code is T.UUID:
        return uuid.UUID(raw)
    if code is T.DATE:
        return Date(raw)
    if code is T.TIME:
        return Time(raw)
    if code is T.TIMESTAMP:
        return Timestamp(*raw)
    if code is T.DECIMAL:
        return decimal.Decimal(raw)
    if code in (T.ENUM, T.BINARY_ENUM):
        return EnumValue(raw[0], raw[1], code is T.BINARY_ENUM)
    return raw


def tj_to_python(tj: Json) -> object:
    """The value a TJ must decode to."""
    code = T[tj["type"]]
    raw = tj.get("value")
    if code is T.NULL:
        return None
    if code is T.STRING:
        return raw * tj.get("times", 1)
    if code is T.OPTIMIZED_MARSHALLER:
        return Typed(code, bytes.fromhex(raw))
    if code in _PLAIN_ARRAYS:
        if code in (T.FLOAT_ARRAY, T.DOUBLE_ARRAY):
            return [_float(x) for x in raw]
        return list(raw)
    if code in _TYPED_ARRAYS:
        return [tj_to_python(x) for x in raw]
    if code is T.OBJECT_ARRAY:
        return ObjectArray(tj["type_id"], [tj_to_python(x) for x in raw])
    if code is T.COLLECTION:
        return Collection(tj["kind"], [tj_to_python(x) for x in raw])
    if code is T.MAP:
        return Map(tj["kind"], [(tj_to_python(k), tj_to_python(v)) for k, v in raw])
    if code is T.WRAPPED_BINARY:
        return tj_to_python(raw)
    if code is T.COMPLEX_OBJECT:
        return BinaryObject(
            tj["type_id"], {name: tj_to_python(v) for name, v in tj["fields"]},
            tj.get("type_name"), tj.get("schema_id"), tj.get("hash_code"),
            bytes.fromhex(tj["raw"]) if tj.get("raw") is not None else None,
        )
    return _scalar(code, raw)


def tj_to_typed(tj: Json) -> object:
    """A value that encodes to exactly the bytes the TJ describes (Typed where needed)."""
    code = T[tj["type"]]
    raw = tj.get("value")
    if code is T.NULL:
        return None
    if code is T.OPTIMIZED_MARSHALLER:
        return tj_to_python(tj)  # already Typed
    if code in _PLAIN_ARRAYS or code in (T.BYTE, T.SHORT, T.INT, T.FLOAT, T.CHAR):
        return Typed(code, tj_to_python(tj))
    if code in _TYPED_ARRAYS:  # the array type fixes the element types (enums: per value)
        items = [tj_to_python(x) for x in raw]
        if code is T.ENUM_ARRAY and "type_id" in tj:
            return Typed(code, ObjectArray(tj["type_id"], items))
        return Typed(code, items)
    if code is T.OBJECT_ARRAY:
        return ObjectArray(tj["type_id"], [tj_to_typed(x) for x in raw])
    if code is T.COLLECTION:
        return Collection(tj["kind"], [tj_to_typed(x) for x in raw])
    if code is T.MAP:
        return Map(tj["kind"], [(tj_to_typed(k), tj_to_typed(v)) for k, v in raw])
    if code is T.COMPLEX_OBJECT:
        return BinaryObject(
            tj["type_id"], {name: tj_to_typed(v) for name, v in tj["fields"]},
            tj.get("type_name"), None, None,
            bytes.fromhex(tj["raw"]) if tj.get("raw") is not None else None,
        )
    if code is T.WRAPPED_BINARY:
        raise ValueError("wrapped objects are decode-only")
    return Typed(code, tj_to_python(tj))


def deep_same(a: object, b: object) -> bool:
    """Equal with the same types all the way down; NaN equals NaN, the sign of zero and the
    scale of a Decimal matter."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        assert isinstance(b, float)
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, decimal.Decimal):
        return a.as_tuple() == b.as_tuple()  # type: ignore[union-attr]
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(  # type: ignore[arg-type]
            deep_same(x, y) for x, y in zip(a, b, strict=True)  # type: ignore[call-overload]
        )
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(deep_same(a[k], b[k]) for k in a)
    if isinstance(a, (Collection, ObjectArray)):
        return (a.kind if isinstance(a, Collection) else a.type_id) == (  # type: ignore[union-attr]
            b.kind if isinstance(b, Collection) else b.type_id  # type: ignore[union-attr]
        ) and deep_same(a.items, b.items)  # type: ignore[union-attr]
    if isinstance(a, Map):
        return a.kind == b.kind and deep_same(a.items, b.items)  # type: ignore[union-attr]
    if isinstance(a, BinaryObject):
        assert isinstance(b, BinaryObject)
        return (
            (a.type_id, a.type_name, a.schema_id, a.hash_code, a.raw)
            == (b.type_id, b.type_name, b.schema_id, b.hash_code, b.raw)
            and deep_same(a.fields, b.fields)
        )
    if isinstance(a, Typed):
        return a.type_code == b.type_code and deep_same(a.value, b.value)  # type: ignore[union-attr]
    return a == b


def tj(code: TypeCode | str, value: object = None, **extra: object) -> Json:
    """Build a TJ (used by the capture script and the tests)."""
    name = code if isinstance(code, str) else code.name
    out: Json = {"type": name}
    if name != "NULL":
        out["value"] = value
    out.update(extra)
    return out
