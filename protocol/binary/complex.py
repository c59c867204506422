"""The complex-object codec (type 103): header, fields, raw data, compact and full footers.

Layout (offsets from the 103 byte): a 24-byte header (version 1, flags, type id, hash code,
total length, schema id, schema offset), for an unregistered type (id 0) a class-name
String, the named fields as full values, the raw data, the footer (per field an offset,
preceded by the field id unless COMPACT_FOOTER), and, when there are both fields and raw
data, an i32 raw-data offset. Offsets are 1, 2 or 4 bytes as the flags say; the writer
picks the width from the last field's offset the way Java does (< 256, < 65536).

Reading needs field names, which only metadata has: a compact footer needs the schema's
field ids ((type id, schema id) in the registry), a full footer the type's field names.
When the registry lacks them the reader raises UnknownSchema (see registry.py). Fields
are read at their footer offsets, as Java does, and must lie inside the object.

Writing takes a BinaryObject: fields in dict order; each field's type is the one the
registry has for it (unless that is the catch-all 103 "Object", or the value is Typed),
else inferred like a top-level value. The hash code is computed from the bytes written
(Java's BinaryArrayIdentityResolver); metadata the registry lacks goes to ctx.pending.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from ..errors import LocalProtocolError, RemoteProtocolError, UnknownSchema
from ..hashing import field_id as _field_id
from ..hashing import object_hash as _object_hash
from ..hashing import schema_id as _schema_id
from ..hashing import type_id as _type_id
from ._engine import Buffer, Decoder, Encoder, LeafCodecs, NestedCodecs, PythonTypes
from .registry import OBJECT_FIELD, CodecContext, FieldSpec, _TypeInfo
from .standard import read_class_name
from .typecodes import TypeCode
from .values import BinaryObject

__all__ = [
    "COMPACT_FOOTER",
    "HAS_RAW_DATA",
    "HAS_SCHEMA",
    "LEAF",
    "NESTED",
    "OFFSET_ONE_BYTE",
    "OFFSET_TWO_BYTES",
    "PYTHON_TYPES",
    "USER_TYPE",
    "new_object",
    "raw_object",
]

USER_TYPE = 0x0001
HAS_SCHEMA = 0x0002
HAS_RAW_DATA = 0x0004
OFFSET_ONE_BYTE = 0x0008
OFFSET_TWO_BYTES = 0x0010
COMPACT_FOOTER = 0x0020

HEADER_SIZE = 24
_HEADER = struct.Struct("<bhiiiii")  # after the 103 byte
_HEADER_W = struct.Struct("<bbhiiiii")
_I32 = struct.Struct("<i")
_PLACEHOLDER = bytes(HEADER_SIZE)
_OFFSET_FORMATS = {1: "B", 2: "H", 4: "I"}
_OBJ = TypeCode.COMPLEX_OBJECT.value
_NULL = TypeCode.NULL.value


def new_object(type_name: str, fields: dict[str, object]) -> BinaryObject:
    """A BinaryObject of the named type, its id computed the default way (lower-cased hash)."""
    return BinaryObject(_type_id(type_name), dict(fields), type_name)


def raw_object(type_id: int, raw: bytes) -> bytes:
    """The bytes of a complex object of a system type (no USER_TYPE flag; e.g. Ignite's
    predefined Binarylizable types) whose content is raw data only: header + ``raw``."""
    length = HEADER_SIZE + len(raw)
    header = _HEADER_W.pack(_OBJ, 1, HAS_RAW_DATA, type_id, _object_hash(raw), length, 0,
                            HEADER_SIZE)
    return header + raw


@lru_cache(maxsize=512)
def _footer_struct(width: int, count: int, compact: bool) -> struct.Struct:
    fmt = _OFFSET_FORMATS[width]
    return struct.Struct(f"<{count}{fmt}" if compact else "<" + ("i" + fmt) * count)


@lru_cache(maxsize=1024)
def _layout(names: tuple[str, ...]) -> tuple[tuple[int, ...], int]:
    """Field ids and schema id of a field-name sequence (a pure function, memoized)."""
    for name in names:
        if not isinstance(name, str):
            raise LocalProtocolError(f"field names must be str, got {name!r}")
    ids = tuple(_field_id(name) for name in names)
    return ids, _schema_id(ids)


# -- reading -------------------------------------------------------------------------------


def _read_object(buf: Buffer, pos: int, dec: Decoder) -> tuple[object, int]:
    start = pos - 1
    flags, type_id, hash_code, end, schema_id, schema_off = _read_header(buf, start)
    data_start = start + HEADER_SIZE
    class_name = None
    if type_id == 0:  # unregistered type: the class name comes first
        class_name, data_start = read_class_name(buf, data_start)
        if data_start > end:
            raise RemoteProtocolError(f"class name overruns the object at offset {start}")
        type_id = _type_id(class_name)
    registry = dec.registry
    info = None if registry is None else registry._info(type_id)
    if flags & HAS_SCHEMA:
        names, offsets, fields_end, footer, raw_start = _read_footer(
            buf, start, end, data_start, flags, schema_off, info, type_id, schema_id
        )
    else:
        names, offsets = (), ()
        footer = fields_end = end
        raw_start = _raw_start_without_footer(start, end, data_start, flags, schema_off)
    fields: dict[str, object] = {}
    if names:
        _read_fields(buf, dec, fields, names, offsets, start, data_start, fields_end)
    raw = bytes(buf[raw_start:footer]) if raw_start >= 0 else None
    type_name = info.type_name if info is not None else class_name
    return BinaryObject(type_id, fields, type_name, schema_id, hash_code, raw), end


def _read_header(buf: Buffer, start: int) -> tuple[int, int, int, int, int, int]:
    """The header of the object whose 103 byte is at ``start``: flags, type id, hash code,
    where the object ends, schema id and schema offset (version and length checked)."""
    version, flags, type_id, hash_code, length, schema_id, schema_off = _HEADER.unpack_from(
        buf, start + 1
    )
    if version != 1:
        raise RemoteProtocolError(f"complex object version {version} at offset {start}")
    end = start + length
    if length < HEADER_SIZE or end > len(buf):
        raise RemoteProtocolError(f"complex object length {length} at offset {start} overruns")
    return flags, type_id, hash_code, end, schema_id, schema_off


def _read_footer(
    buf: Buffer, start: int, end: int, data_start: int, flags: int, schema_off: int,
    info: _TypeInfo | None, type_id: int, schema_id: int,
) -> tuple[tuple[str, ...] | list[str], tuple[int, ...], int, int, int]:
    """An object's footer: its field names and offsets, where the fields end, where the
    footer starts and where the raw data starts (-1: none)."""
    footer = start + schema_off
    footer_end = end
    raw_start = -1
    if flags & HAS_RAW_DATA:
        footer_end -= 4
        raw_start = start + _I32.unpack_from(buf, footer_end)[0]
    width = 1 if flags & OFFSET_ONE_BYTE else 2 if flags & OFFSET_TWO_BYTES else 4
    compact = bool(flags & COMPACT_FOOTER)
    entry = width if compact else width + 4
    size = footer_end - footer
    if footer < data_start or size < 0 or size % entry:
        raise RemoteProtocolError(f"bad footer (offset {schema_off}) in object at {start}")
    fields_end = footer
    if raw_start >= 0:
        if not data_start <= raw_start <= footer:
            raise RemoteProtocolError(f"raw data offset outside the object at {start}")
        fields_end = raw_start
    count = size // entry
    if not count:
        return (), (), fields_end, footer, raw_start
    footer_struct = _footer_struct(width, count, compact)
    if compact:
        names = _compact_names(info, type_id, schema_id, count)
        return names, footer_struct.unpack_from(buf, footer), fields_end, footer, raw_start
    flat = footer_struct.unpack_from(buf, footer)
    offsets = flat[1::2]
    full_names = _full_names(info, type_id, schema_id, flat[0::2])
    return full_names, offsets, fields_end, footer, raw_start


def _raw_start_without_footer(start: int, end: int, data_start: int, flags: int,
                              schema_off: int) -> int:
    """Where the raw data of an object without fields starts (-1: none)."""
    if not flags & HAS_RAW_DATA:
        return -1
    raw_start = start + schema_off
    if not data_start <= raw_start <= end:
        raise RemoteProtocolError(f"raw data offset outside the object at {start}")
    return raw_start


def _read_fields(
    buf: Buffer, dec: Decoder, fields: dict[str, object], names: tuple[str, ...] | list[str],
    offsets: tuple[int, ...], start: int, data_start: int, fields_end: int,
) -> None:
    """Read each named field at its footer offset into ``fields`` (one nesting level down)."""
    dec.enter()
    read = dec.read
    for name, off in zip(names, offsets, strict=True):
        fpos = start + off
        if fpos < data_start or fpos >= fields_end:
            raise RemoteProtocolError(f"field {name!r} offset {off} outside object at {start}")
        value, vend = read(buf, fpos)
        if vend > fields_end:
            raise RemoteProtocolError(f"field {name!r} overruns the object at {start}")
        fields[name] = value
    dec.depth -= 1


def _compact_names(info: _TypeInfo | None, type_id: int, schema_id: int,
                   count: int) -> tuple[str, ...]:
    if info is None:
        raise UnknownSchema(type_id, schema_id, "compact footer, type unknown")
    schema_names = info.schema_names
    if schema_id not in schema_names:
        raise UnknownSchema(type_id, schema_id, "compact footer, schema unknown")
    names = schema_names[schema_id]
    if names is None:
        raise RemoteProtocolError(f"metadata of type {type_id} lacks fields of schema {schema_id}")
    if len(names) != count:
        raise RemoteProtocolError(
            f"schema {schema_id} of type {type_id} has {len(names)} fields, footer {count}"
        )
    return names


def _full_names(info: _TypeInfo | None, type_id: int, schema_id: int,
                ids: tuple[int, ...]) -> list[str]:
    if info is None:
        raise UnknownSchema(type_id, schema_id, "field names unknown")
    names_by_id = info.names_by_id
    try:
        return [names_by_id[fid] for fid in ids]
    except KeyError as exc:
        raise UnknownSchema(type_id, schema_id, f"field id {exc.args[0]} unknown") from None


# -- writing -------------------------------------------------------------------------------


def _write_object(buf: bytearray, obj: object, enc: Encoder) -> None:
    ctx, obj = _writable(obj, enc)
    type_id = obj.type_id
    info = ctx.registry._info(type_id)
    ids, sid = _layout(tuple(obj.fields))
    start = len(buf)
    buf += _PLACEHOLDER
    offsets = _write_fields(buf, obj, info.by_name if info is not None else {}, enc, start)
    flags = USER_TYPE | COMPACT_FOOTER if ctx.compact_footer else USER_TYPE
    raw = obj.raw
    raw_off = 0
    if raw is not None:
        if not isinstance(raw, (bytes, bytearray)):
            raise LocalProtocolError(f"raw data must be bytes, got {type(raw).__name__}")
        raw_off = len(buf) - start
        buf += raw
        flags |= HAS_RAW_DATA
    n = len(offsets)
    if n:
        footer = schema_off = len(buf) - start
        flags |= _write_footer(buf, offsets, ids, ctx.compact_footer)
        if raw is not None:
            buf += _I32.pack(raw_off)
    else:
        sid = 0
        footer = len(buf) - start
        schema_off = raw_off
    hash_code = _object_hash(buf[start + HEADER_SIZE : start + footer])
    buf[start : start + HEADER_SIZE] = _HEADER_W.pack(
        _OBJ, 1, flags, type_id, hash_code, len(buf) - start, sid, schema_off
    )
    if info is None or (n and sid not in info.schema_names):
        _note_pending(ctx, obj, info, buf, start, offsets, ids, sid)


def _writable(obj: object, enc: Encoder) -> tuple[CodecContext, BinaryObject]:
    """The context and the object of a COMPLEX_OBJECT write, or LocalProtocolError."""
    ctx = enc.ctx
    if ctx is None:
        raise LocalProtocolError(
            "encoding a complex object needs ctx=CodecContext(registry) (schemas, footer form)"
        )
    if not isinstance(obj, BinaryObject):
        raise LocalProtocolError(
            f"a COMPLEX_OBJECT must be a BinaryObject, got {type(obj).__name__}"
        )
    type_id = obj.type_id
    if type(type_id) is not int or type_id == 0:
        raise LocalProtocolError(f"a complex object needs a non-zero int type id, got {type_id!r}")
    return ctx, obj


def _write_fields(buf: bytearray, obj: BinaryObject, by_name: dict[str, tuple[int, int]],
                  enc: Encoder, start: int) -> list[int]:
    """Append the fields, each as the type the registry has for it (unless that is the
    catch-all "Object"); return their offsets from ``start``."""
    offsets: list[int] = []
    append = offsets.append
    write = enc.write
    for name, value in obj.fields.items():
        append(len(buf) - start)
        spec = by_name.get(name)
        if spec is None or spec[1] == _OBJ:
            write(buf, value)
        else:
            write(buf, value, spec[1])
    return offsets


def _write_footer(buf: bytearray, offsets: list[int], ids: tuple[int, ...],
                  compact: bool) -> int:
    """Append the footer of ``offsets`` (with the field ids unless compact), its offsets as
    wide as the last one needs, as Java picks; return the flags that say so."""
    n = len(offsets)
    last = offsets[-1]
    if last < 0x100:
        width, flags = 1, HAS_SCHEMA | OFFSET_ONE_BYTE
    elif last < 0x10000:
        width, flags = 2, HAS_SCHEMA | OFFSET_TWO_BYTES
    else:
        width, flags = 4, HAS_SCHEMA
    if compact:
        buf += _footer_struct(width, n, True).pack(*offsets)
    else:
        pairs = [0] * (2 * n)
        pairs[0::2] = ids
        pairs[1::2] = offsets
        buf += _footer_struct(width, n, False).pack(*pairs)
    return flags


def _note_pending(
    ctx: CodecContext, obj: BinaryObject, info: object, buf: bytearray, start: int,
    offsets: list[int], ids: tuple[int, ...], sid: int,
) -> None:
    """Record the type/schema just written for registration (slow path, once per schema)."""
    type_name = obj.type_name or (info.type_name if info is not None else None)  # type: ignore[attr-defined]
    if not type_name:
        raise LocalProtocolError(
            f"type {obj.type_id} is not in the registry and the object has no type_name: "
            "give one, or fetch the type (BINARY_TYPE_GET) first"
        )
    specs: list[FieldSpec] = []
    for name, off, fid in zip(obj.fields, offsets, ids, strict=True):
        code = buf[start + off]
        specs.append((name, OBJECT_FIELD if code == _NULL else code, fid))
    ctx.note_schema(obj.type_id, type_name, specs, ids, sid)


# -- the codec -------------------------------------------------------------------------------

LEAF: LeafCodecs = ()
NESTED: NestedCodecs = ((TypeCode.COMPLEX_OBJECT, _read_object, _write_object),)
PYTHON_TYPES: PythonTypes = ((BinaryObject, TypeCode.COMPLEX_OBJECT),)
