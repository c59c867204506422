"""Binary-type metadata operations: bodies and parsers for BINARY_TYPE_GET (3002),
BINARY_TYPE_PUT (3003), BINARY_TYPE_NAME_GET (3000) and BINARY_TYPE_NAME_PUT (3001), the
BinaryType wire structure, and builders of BinaryTypes for objects and enums.

BinaryType on the wire::

    i32 type_id | str type_name | str affinity_key_field (or NULL)
    | i32 n, n x (str field_name, i32 field type code, i32 field_id)
    | bool is_enum | [is_enum: i32 n, n x (str literal, i32 ordinal)]
    | i32 n, n x (i32 schema_id, i32 k, k x i32 field_id)

Builders return the body only (frame it with ``ClientConnection.send_request``); parsers
take ``Response.body`` and raise RemoteProtocolError on malformed bodies.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

from .. import _checks as check
from ..errors import LocalProtocolError, RemoteProtocolError
from ..hashing import field_id as _field_id
from ..hashing import schema_id as _schema_id
from ..hashing import type_id as _type_id
from .codec import Buffer, read_value, write_value
from .registry import BinaryType
from .typecodes import TypeCode

__all__ = [
    "PLATFORM_DOTNET",
    "PLATFORM_JAVA",
    "binary_type_get",
    "binary_type_name_get",
    "binary_type_name_put",
    "binary_type_put",
    "enum_type",
    "object_type",
    "parse_binary_type_get",
    "parse_binary_type_name_get",
    "parse_binary_type_name_put",
    "parse_binary_type_put",
    "read_binary_type",
    "write_binary_type",
]

PLATFORM_JAVA = 0
PLATFORM_DOTNET = 1
_PLATFORMS = (PLATFORM_JAVA, PLATFORM_DOTNET)

_I32 = struct.Struct("<i")
_I8 = struct.Struct("<b")
_FIELD = struct.Struct("<ii")  # type code, field id
_PLATFORM_TYPE = struct.Struct("<bi")


# -- building BinaryTypes ------------------------------------------------------------------


def object_type(
    type_name: str,
    fields: Iterable[tuple[str, int]],
    *,
    type_id: int | None = None,
    affinity_key_field: str | None = None,
) -> BinaryType:
    """The BinaryType of an object type with one schema: ``fields`` as (name, type code)."""
    specs = [(name, int(code), _field_id(name)) for name, code in fields]
    ids = [fid for _, _, fid in specs]
    return BinaryType(
        type_id=_type_id(type_name) if type_id is None else type_id,
        type_name=type_name,
        affinity_key_field=affinity_key_field,
        fields=specs,
        schemas={_schema_id(ids): ids} if ids else {},
    )


def enum_type(
    type_name: str, values: Iterable[str] | Mapping[str, int], *, type_id: int | None = None
) -> BinaryType:
    """The BinaryType registering an enum: no fields, no schemas, literal -> ordinal.

    ``values`` is a sequence of literals (ordinals 0, 1, ...) or a literal -> ordinal map.
    Values of the enum then travel as EnumValue(type_id, ordinal).
    """
    pairs = list(values.items()) if isinstance(values, Mapping) else [
        (name, i) for i, name in enumerate(values)
    ]
    return BinaryType(
        type_id=_type_id(type_name) if type_id is None else type_id,
        type_name=type_name,
        is_enum=True,
        enum_values=[(str(name), int(ordinal)) for name, ordinal in pairs],
    )


# -- the wire structure --------------------------------------------------------------------


def write_binary_type(buf: bytearray, bt: BinaryType) -> None:
    """Append the BinaryType structure."""
    if not isinstance(bt, BinaryType):
        raise LocalProtocolError(f"expected a BinaryType, got {type(bt).__name__}")
    out = bytearray()
    try:
        out += _I32.pack(bt.type_id)
        write_value(out, bt.type_name, TypeCode.STRING)
        write_value(out, bt.affinity_key_field, TypeCode.STRING)
        out += _I32.pack(len(bt.fields))
        for name, code, fid in bt.fields:
            write_value(out, name, TypeCode.STRING)
            out += _FIELD.pack(code, fid)
        out += _I8.pack(1 if bt.is_enum else 0)
        if bt.is_enum:
            out += _I32.pack(len(bt.enum_values))
            for literal, ordinal in bt.enum_values:
                write_value(out, literal, TypeCode.STRING)
                out += _I32.pack(ordinal)
        out += _I32.pack(len(bt.schemas))
        for sid, ids in bt.schemas.items():
            out += struct.pack(f"<ii{len(ids)}i", sid, len(ids), *ids)
    except (struct.error, TypeError, ValueError) as exc:
        name = check.describe(bt.type_name)
        raise LocalProtocolError(f"invalid BinaryType {name}: {exc}") from exc
    buf += out


class _Cursor:
    __slots__ = ("body", "pos")

    def __init__(self, body: Buffer, pos: int) -> None:
        self.body = body
        self.pos = pos

    def i32(self) -> int:
        value: int
        (value,) = _I32.unpack_from(self.body, self.pos)
        self.pos += 4
        return value

    def i8(self) -> int:
        value: int
        (value,) = _I8.unpack_from(self.body, self.pos)
        self.pos += 1
        return value

    def count(self, min_item_size: int) -> int:
        n = self.i32()
        if n < 0 or n * min_item_size > len(self.body) - self.pos:
            raise RemoteProtocolError(f"count {n} at offset {self.pos - 4} does not fit the body")
        return n

    def string(self, nullable: bool = True) -> str | None:
        value, self.pos = read_value(self.body, self.pos)
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise RemoteProtocolError(f"expected a string, got {type(value).__name__}")
        return value


def read_binary_type(body: Buffer, pos: int = 0) -> tuple[BinaryType, int]:
    """Parse a BinaryType structure at ``pos``; return it and the offset after it."""
    cur = _Cursor(body, pos)
    try:
        type_id = cur.i32()
        type_name = cur.string(nullable=False)
        affinity = cur.string()
        fields = []
        for _ in range(cur.count(9)):
            name = cur.string(nullable=False)
            code = cur.i32()
            fid = cur.i32()
            fields.append((name, code, fid))
        is_enum = cur.i8() != 0
        enum_values = []
        if is_enum:
            for _ in range(cur.count(5)):
                literal = cur.string(nullable=False)
                enum_values.append((literal, cur.i32()))
        schemas: dict[int, list[int]] = {}
        for _ in range(cur.count(8)):
            sid = cur.i32()
            k = cur.count(4)
            schemas[sid] = list(struct.unpack_from(f"<{k}i", body, cur.pos))
            cur.pos += 4 * k
    except struct.error as exc:
        raise RemoteProtocolError(f"truncated BinaryType: {exc}") from exc
    bt = BinaryType(type_id, type_name, affinity, fields, is_enum, enum_values, schemas)  # type: ignore[arg-type]
    return bt, cur.pos


def _expect_end(body: Buffer, pos: int, what: str) -> None:
    if pos != len(body):
        raise RemoteProtocolError(f"{len(body) - pos} trailing bytes after {what}")


# -- BINARY_TYPE_GET (3002) / BINARY_TYPE_PUT (3003) ----------------------------------------


def binary_type_get(type_id: int) -> bytes:
    """Body of BINARY_TYPE_GET (3002): ``i32 type_id``."""
    return _I32.pack(check.i32(type_id, "type id"))


def parse_binary_type_get(body: Buffer) -> BinaryType | None:
    """``bool exists | [BinaryType]`` -> the type, or None when the cluster does not know it."""
    if len(body) < 1:
        raise RemoteProtocolError("empty BINARY_TYPE_GET response")
    if body[0] == 0:
        _expect_end(body, 1, "a missing binary type")
        return None
    bt, pos = read_binary_type(body, 1)
    _expect_end(body, pos, "the binary type")
    return bt


def binary_type_put(bt: BinaryType) -> bytes:
    """Body of BINARY_TYPE_PUT (3003): the BinaryType (the server merges it into its own)."""
    buf = bytearray()
    write_binary_type(buf, bt)
    return bytes(buf)


def parse_binary_type_put(body: Buffer) -> None:
    """BINARY_TYPE_PUT returns nothing."""
    _expect_end(body, 0, "BINARY_TYPE_PUT")


# -- BINARY_TYPE_NAME_GET (3000) / BINARY_TYPE_NAME_PUT (3001) -------------------------------


def binary_type_name_get(type_id: int, platform: int = PLATFORM_JAVA) -> bytes:
    """Body of BINARY_TYPE_NAME_GET (3000): ``i8 platform | i32 type_id``."""
    platform = check.one_of(platform, _PLATFORMS, "platform")
    return _PLATFORM_TYPE.pack(platform, check.i32(type_id, "type id"))


def parse_binary_type_name_get(body: Buffer) -> str | None:
    """``str`` -> the class name registered for the type id on that platform."""
    cur = _Cursor(body, 0)
    try:
        name = cur.string()
    except struct.error as exc:  # pragma: no cover - read_value translates already
        raise RemoteProtocolError(f"truncated type name: {exc}") from exc
    _expect_end(body, cur.pos, "the type name")
    return name


def binary_type_name_put(type_id: int, name: str, platform: int = PLATFORM_JAVA) -> bytes:
    """Body of BINARY_TYPE_NAME_PUT (3001): ``i8 platform | i32 type_id | str name``."""
    buf = bytearray(binary_type_name_get(type_id, platform))
    write_value(buf, check.required_str(name, "type name"), TypeCode.STRING)
    return bytes(buf)


def parse_binary_type_name_put(body: Buffer) -> bool:
    """``bool`` -> whether the mapping was registered."""
    if len(body) != 1:
        raise RemoteProtocolError(f"expected a 1-byte bool, got {len(body)} bytes")
    return body[0] != 0
