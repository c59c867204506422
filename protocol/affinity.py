"""Partition awareness: the CACHE_PARTITIONS (1101) codec, Java key hashes, key-to-node routing."""

# Theory of operation. The server hands out, per group of caches sharing one affinity, the
# primary node of every partition (parse_cache_partitions -> AffinityMapping). A key is
# routed by the Java hashCode() the server computes for it (key_hash from Python values,
# encoded_key_hash from the bytes we send), folded onto a partition the way
# RendezvousAffinityFunction does (partition_for). A complex key whose type is listed in
# the cache's key configuration is routed by its affinity field instead (affinity_key).
# Anything that cannot be routed (unknown cache, REPLICATED cache, custom affinity, arrays
# as keys...) yields None from node_for*: send it to any node; the answer is the same, it
# only costs a hop. A response carrying a newer affinity version (is_newer) makes the
# mapping stale: fetch it again before the next keyed request.

from __future__ import annotations

import decimal
import struct
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from . import _checks as check
from .binary.codec import Buffer, encode_value
from .binary.typecodes import TypeCode
from .binary.values import BinaryObject, Date, EnumValue, Time, Timestamp, Typed
from .errors import LocalProtocolError, RemoteProtocolError
from .features import Feature
from .hashing import field_id, java_string_hash
from .limits import MAX_PARTITIONS_COUNT

if TYPE_CHECKING:
    from .binary.registry import CodecContext

__all__ = [
    "MAX_PARTITIONS",
    "AffinityMapping",
    "CacheMapping",
    "UnroutableKeyError",
    "affinity_key",
    "cache_partitions",
    "encoded_affinity_hash",
    "encoded_key_hash",
    "is_newer",
    "key_hash",
    "parse_cache_partitions",
    "partition_for",
]

"""Feature bit: a ``custom_mappings`` bool in the request, ``default_affinity`` in the answer."""

MAX_PARTITIONS = MAX_PARTITIONS_COUNT
"""Upper bound on a partition count we accept: Ignite's own (protocol.limits), so a node's
partition numbers are 0..MAX_PARTITIONS-1."""

TopologyVersion = tuple[int, int]


class UnroutableKeyError(LocalProtocolError):
    """The key has no Java hash we can reproduce (arrays, collections, NULL, out-of-range...)."""


# -- Java hashCode of single values ------------------------------------------------------------

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF
_I8 = struct.Struct("<b")
_I16 = struct.Struct("<h")
_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_UUID = struct.Struct("<qq")
_OBJ_HEADER = struct.Struct("<bbhiiiii")  # code, version, flags, type id, hash, len, schema...
_FLOAT_NAN_BITS = 0x7FC00000
_DOUBLE_NAN_BITS = 0x7FF8000000000000


def _i32(x: int) -> int:
    """Wrap to a signed 32-bit int, as Java's int arithmetic does."""
    x &= _MASK32
    return x - 0x100000000 if x & 0x80000000 else x


def _in_range(value: object, bits: int) -> int:
    if not isinstance(value, int):
        raise UnroutableKeyError(f"expected an int, got {type(value).__name__}")
    limit = 1 << (bits - 1)
    if not -limit <= value < limit:
        raise UnroutableKeyError(f"{value} does not fit a signed {bits}-bit integer")
    return value


def _long_bits_hash(bits: int) -> int:
    """``(int)(v ^ (v >>> 32))`` for any 64-bit pattern (signed or unsigned)."""
    u = bits & _MASK64
    return _i32(u ^ (u >> 32))


def _hash_int(value: object) -> int:
    return _in_range(value, 32)


def _hash_short(value: object) -> int:
    return _in_range(value, 16)


def _hash_byte(value: object) -> int:
    return _in_range(value, 8)


def _hash_long(value: object) -> int:
    return _long_bits_hash(_in_range(value, 64))


def _hash_bool(value: object) -> int:
    if not isinstance(value, int):  # what the BOOL encoder accepts (bool is an int)
        raise UnroutableKeyError(f"a BOOL key must be a bool, got {type(value).__name__}")
    return 1231 if value else 1237


def _hash_char(value: object) -> int:
    unit = ord(value) if isinstance(value, str) and len(value) == 1 else value
    if not isinstance(unit, int) or not 0 <= unit <= 0xFFFF:
        raise UnroutableKeyError(f"a CHAR key must be one UTF-16 unit, got {value!r}")
    return unit


def _float_bits(value: object) -> int:
    bits: int
    try:
        (bits,) = _I32.unpack(_F32.pack(value))
    except (struct.error, OverflowError, TypeError) as exc:
        raise UnroutableKeyError(f"not a float: {value!r}: {exc}") from exc
    return bits


def _float_bits_hash(bits: int) -> int:
    if bits & 0x7F800000 == 0x7F800000 and bits & 0x007FFFFF:
        return _FLOAT_NAN_BITS  # floatToIntBits folds every NaN to the canonical one
    return bits


def _hash_float(value: object) -> int:
    return _float_bits_hash(_float_bits(value))


def _hash_double(value: object) -> int:
    try:
        (bits,) = _I64.unpack(_F64.pack(value))
    except (struct.error, OverflowError, TypeError) as exc:
        raise UnroutableKeyError(f"not a float: {value!r}: {exc}") from exc
    return _double_bits_hash(bits)


def _double_bits_hash(bits: int) -> int:
    u = bits & _MASK64
    if u & 0x7FF0000000000000 == 0x7FF0000000000000 and u & 0x000FFFFFFFFFFFFF:
        u = _DOUBLE_NAN_BITS  # doubleToLongBits, not doubleToRawLongBits
    return _i32(u ^ (u >> 32))


def _hash_string(value: object) -> int:
    if not isinstance(value, str):
        raise UnroutableKeyError(f"a STRING key must be a str, got {type(value).__name__}")
    return java_string_hash(value)


def _uuid_halves_hash(msb: int, lsb: int) -> int:
    x = (msb ^ lsb) & _MASK64
    return _i32((x >> 32) ^ x)


def _hash_uuid(value: object) -> int:
    if not isinstance(value, uuid.UUID):
        raise UnroutableKeyError(f"a UUID key must be a uuid.UUID, got {type(value).__name__}")
    n = value.int
    return _uuid_halves_hash(n >> 64, n)


def _big_integer_hash(magnitude: int, negative: bool) -> int:
    """``BigInteger.hashCode()``: 32-bit words of |v|, most significant first, times signum."""
    h = 0
    if magnitude:
        words = (magnitude.bit_length() + 31) >> 5
        data = magnitude.to_bytes(words * 4, "big")
        for (word,) in struct.iter_unpack(">I", data):
            h = (31 * h + word) & _MASK32
    return _i32(-h if negative else h)


def _big_decimal_hash(unscaled_magnitude: int, negative: bool, scale: int) -> int:
    """``BigDecimal.hashCode()`` = 31 * BigInteger.hashCode(unscaled) + scale."""
    return _i32(31 * _big_integer_hash(unscaled_magnitude, negative) + scale)


def _hash_decimal(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        value = decimal.Decimal(value)  # the DECIMAL encoder takes ints too
    if not isinstance(value, decimal.Decimal):
        raise UnroutableKeyError(f"a DECIMAL key must be a Decimal, got {type(value).__name__}")
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise UnroutableKeyError(f"{value} has no Java BigDecimal equivalent")
    magnitude = int(decimal.Decimal((0, digits, 0)))  # exact, and free of int/str digit limits
    return _big_decimal_hash(magnitude, bool(sign) and magnitude != 0, _in_range(-exponent, 32))


def _ms_of(kind: type, attribute: str) -> Callable[[object], int]:
    def hash_ms(value: object) -> int:
        if isinstance(value, kind):
            return _long_bits_hash(_in_range(getattr(value, attribute), 64))
        return _hash_via_encoder(value, _KIND_CODES[kind])

    hash_ms.__name__ = f"_hash_{kind.__name__.lower()}"
    return hash_ms


def _hash_enum(value: object) -> int:
    """BinaryEnumObjectImpl.hashCode: ``31 * typeId + ordinal``."""
    if not isinstance(value, EnumValue):
        raise UnroutableKeyError(f"an ENUM key must be an EnumValue, got {type(value).__name__}")
    return _i32(31 * _in_range(value.type_id, 32) + _in_range(value.ordinal, 32))


def _hash_binary_object(value: object, ctx: CodecContext | None) -> int:
    """A complex object hashes to its header hash (the server trusts the header)."""
    if isinstance(value, BinaryObject) and value.hash_code is not None:
        return _in_range(value.hash_code, 32)
    return _hash_via_encoder(value, TypeCode.COMPLEX_OBJECT, ctx)


def _hash_via_encoder(value: object, code: int | None, ctx: CodecContext | None = None) -> int:
    """Encode with the registered codec and hash the bytes the server would receive."""
    try:
        data = encode_value(value, code, ctx=ctx)
    except LocalProtocolError as exc:
        raise UnroutableKeyError(f"cannot encode the key {value!r}: {exc}") from exc
    return encoded_key_hash(data)


_KIND_CODES: dict[type, int] = {
    Date: TypeCode.DATE,
    Timestamp: TypeCode.TIMESTAMP,
    Time: TypeCode.TIME,
}

_HASH_BY_CODE: dict[int, Callable[[object], int]] = {
    TypeCode.BYTE: _hash_byte,
    TypeCode.SHORT: _hash_short,
    TypeCode.INT: _hash_int,
    TypeCode.LONG: _hash_long,
    TypeCode.FLOAT: _hash_float,
    TypeCode.DOUBLE: _hash_double,
    TypeCode.CHAR: _hash_char,
    TypeCode.BOOL: _hash_bool,
    TypeCode.STRING: _hash_string,
    TypeCode.UUID: _hash_uuid,
    TypeCode.DATE: _ms_of(Date, "epoch_ms"),
    TypeCode.TIMESTAMP: _ms_of(Timestamp, "epoch_ms"),
    TypeCode.TIME: _ms_of(Time, "ms"),
    TypeCode.DECIMAL: _hash_decimal,
    TypeCode.ENUM: _hash_enum,
    TypeCode.BINARY_ENUM: _hash_enum,
}

# The automatic Python -> Ignite mapping of write_value, for the types hashed natively.
# bytes/bytearray map to byte[], whose Java hash is identity-based: never routable.
_HASH_BY_PYTYPE: dict[type, Callable[[object], int]] = {
    bool: _hash_bool,
    int: _hash_long,
    float: _hash_double,
    str: _hash_string,
    uuid.UUID: _hash_uuid,
    decimal.Decimal: _hash_decimal,
    Timestamp: _HASH_BY_CODE[TypeCode.TIMESTAMP],
    Date: _HASH_BY_CODE[TypeCode.DATE],
    Time: _HASH_BY_CODE[TypeCode.TIME],
    EnumValue: _hash_enum,
}

_UNROUTABLE_PYTYPES = (bytes, bytearray, memoryview, list, tuple, dict, set, frozenset)


def key_hash(value: object, hint: int | None = None, *, ctx: CodecContext | None = None) -> int:
    """Return the Java ``hashCode()`` the server computes for ``value`` used as a key.

    ``hint`` is the TypeCode the key is written with (as for ``write_value``); a
    ``Typed`` value carries its own. Without either, the Python type decides the way
    ``write_value`` does: bool -> Boolean, int -> Long, float -> Double, str -> String,
    uuid.UUID, decimal.Decimal -> BigDecimal, Timestamp/Date/Time, EnumValue,
    BinaryObject (its ``hash_code``; when None, the header hash the encoder computes,
    which needs ``ctx``). Other types are encoded with the registered codec and hashed
    from those bytes.

    Raises UnroutableKeyError for keys with no reproducible Java hash: None, bytes and
    other arrays (Java arrays hash by identity), collections, maps, out-of-range numbers.
    """
    if type(value) is Typed:
        return key_hash(value.value, value.type_code, ctx=ctx)
    if value is None:
        raise UnroutableKeyError("a NULL key cannot be routed")
    if hint is None:
        fn = _HASH_BY_PYTYPE.get(type(value))
        if fn is not None:
            return fn(value)
        if type(value) is BinaryObject:
            return _hash_binary_object(value, ctx)
        if isinstance(value, _UNROUTABLE_PYTYPES):
            raise UnroutableKeyError(f"a {type(value).__name__} key cannot be routed")
        return _hash_via_encoder(value, None, ctx)
    fn = _HASH_BY_CODE.get(hint)
    if fn is not None:
        return fn(value)
    if hint == TypeCode.COMPLEX_OBJECT:
        return _hash_binary_object(value, ctx)
    raise UnroutableKeyError(f"keys of type code {hint} cannot be routed")


# -- the same, from encoded bytes ----------------------------------------------------------------


def _read_i32(buf: Buffer, pos: int) -> int:
    value: int = _I32.unpack_from(buf, pos)[0]
    return value


def _unpacked(
    fixed: struct.Struct, then: Callable[[int], int] | None = None
) -> Callable[[Buffer, int], int]:
    """A hasher for a fixed-size payload: unpack it, then (optionally) hash the number."""
    unpack = fixed.unpack_from
    if then is None:
        return lambda buf, pos: unpack(buf, pos)[0]
    return lambda buf, pos: then(unpack(buf, pos)[0])


def _enc_string(buf: Buffer, pos: int) -> int:
    n = _read_i32(buf, pos)
    end = pos + 4 + n
    if n < 0 or end > len(buf):
        raise UnroutableKeyError(f"string length {n} runs past the key")
    try:
        text = str(buf[pos + 4 : end], "utf-8")
    except UnicodeDecodeError as exc:
        raise UnroutableKeyError(f"the key string is not UTF-8: {exc}") from exc
    return java_string_hash(text)


def _enc_uuid(buf: Buffer, pos: int) -> int:
    msb, lsb = _UUID.unpack_from(buf, pos)
    return _uuid_halves_hash(msb, lsb)


def _enc_decimal(buf: Buffer, pos: int) -> int:
    scale = _read_i32(buf, pos)
    n = _read_i32(buf, pos + 4)
    start = pos + 8
    if n <= 0 or start + n > len(buf):
        raise UnroutableKeyError(f"decimal magnitude length {n} is invalid here")
    raw = bytearray(buf[start : start + n])
    negative = bool(raw[0] & 0x80)  # sign-magnitude: the sign is the top bit of byte 0
    raw[0] &= 0x7F
    magnitude = int.from_bytes(raw, "big")
    return _big_decimal_hash(magnitude, negative and magnitude != 0, scale)


def _enc_enum(buf: Buffer, pos: int) -> int:
    type_id = _read_i32(buf, pos)
    if type_id == 0:
        raise UnroutableKeyError("an enum key with a class name instead of a type id")
    return _i32(31 * type_id + _read_i32(buf, pos + 4))


def _enc_object(buf: Buffer, pos: int) -> int:
    return _read_i32(buf, pos + 7)  # the header hash: offset 8 from the 103 byte


def _enc_wrapped(buf: Buffer, pos: int) -> int:
    _, root = _wrapped_root(buf, pos)
    if buf[root] != TypeCode.COMPLEX_OBJECT:
        raise UnroutableKeyError(f"wrapped key at offset {pos} does not hold a complex object")
    return _enc_object(buf, root + 1)


def _wrapped_root(buf: Buffer, pos: int) -> tuple[int, int]:
    """For a 27 payload at pos: (start of the inner bytes, absolute offset of the root)."""
    n = _read_i32(buf, pos)
    start = pos + 4
    if n < 0 or start + n + 4 > len(buf):
        raise UnroutableKeyError(f"wrapped object length {n} runs past the key")
    offset = _read_i32(buf, start + n)
    if not 0 <= offset < n:
        raise UnroutableKeyError(f"wrapped object root offset {offset} outside its {n} bytes")
    return start, start + offset


_enc_long = _unpacked(_I64, _long_bits_hash)
_ENCODED_HASH: list[Callable[[Buffer, int], int] | None] = [None] * 256
for _code, _fn in (
    (TypeCode.BYTE, _unpacked(_I8)),
    (TypeCode.SHORT, _unpacked(_I16)),
    (TypeCode.INT, _unpacked(_I32)),
    (TypeCode.LONG, _enc_long),
    (TypeCode.FLOAT, _unpacked(_I32, _float_bits_hash)),
    (TypeCode.DOUBLE, _unpacked(_I64, _double_bits_hash)),
    (TypeCode.CHAR, _unpacked(_U16)),
    (TypeCode.BOOL, _unpacked(_I8, _hash_bool)),
    (TypeCode.STRING, _enc_string),
    (TypeCode.UUID, _enc_uuid),
    (TypeCode.DATE, _enc_long),
    (TypeCode.TIMESTAMP, _enc_long),  # Timestamp.hashCode ignores the sub-ms nanos
    (TypeCode.TIME, _enc_long),
    (TypeCode.DECIMAL, _enc_decimal),
    (TypeCode.ENUM, _enc_enum),
    (TypeCode.BINARY_ENUM, _enc_enum),
    (TypeCode.COMPLEX_OBJECT, _enc_object),
    (TypeCode.WRAPPED_BINARY, _enc_wrapped),
):
    _ENCODED_HASH[_code & 0xFF] = _fn


def encoded_key_hash(buf: Buffer, pos: int = 0) -> int:
    """Return the Java hash of the typed value encoded at ``buf[pos]`` (type code first).

    This is the hash of exactly what the server receives, so it needs no type hint; a
    complex object hashes to the hash already in its header. Raises UnroutableKeyError
    for types with no routable hash or for bytes too short for their type.
    """
    try:
        fn = _ENCODED_HASH[buf[pos]]
    except IndexError:
        raise UnroutableKeyError(f"no key at offset {pos}") from None
    if fn is None:
        raise UnroutableKeyError(f"keys of type code {buf[pos]} cannot be routed")
    try:
        return fn(buf, pos + 1)
    except (struct.error, IndexError) as exc:
        raise UnroutableKeyError(f"truncated key at offset {pos}: {exc}") from exc


# -- partitions ----------------------------------------------------------------------------------


def partition_for(h: int, partitions: int) -> int:
    """Map a signed 32-bit key hash onto ``0..partitions-1`` as RendezvousAffinityFunction does.

    Power of two: ``(h ^ (h >>> 16)) & (partitions - 1)``; otherwise ``|h rem partitions|``
    with Java's truncating remainder (Python's ``%`` floors, so it is taken on ``abs(h)``).
    """
    if partitions & (partitions - 1) == 0 and partitions > 0:
        u = h & _MASK32
        return (u ^ (u >> 16)) & (partitions - 1)
    if partitions <= 0:
        raise LocalProtocolError(f"partition count must be positive, got {partitions}")
    return abs(h) % partitions


# -- affinity keys ---------------------------------------------------------------------------------


def affinity_key(
    value: object, key_configs: Mapping[int, int], ctx: CodecContext | None = None
) -> object:
    """Return what a key is routed by: a configured complex key's affinity field, else the key.

    ``key_configs`` maps key type id -> affinity field id (``CacheMapping.key_configs``);
    field ids are the default mapper's (lower-cased Java hash of the name). The field
    value comes back with the type code the complex-object encoder gives it: its own
    when ``Typed``, else the registry's type for that field (``ctx``), else none (the
    automatic mapping). A configured key that lacks the field raises UnroutableKeyError.
    """
    obj = value.value if type(value) is Typed else value
    if not key_configs or type(obj) is not BinaryObject:
        return value
    wanted = key_configs.get(obj.type_id)
    if wanted is None:
        return value
    for name, field_value in obj.fields.items():
        if field_id(name) == wanted:
            return _as_written(obj.type_id, name, field_value, ctx)
    raise UnroutableKeyError(f"key of type {obj.type_id} has no affinity field {wanted}")


def _as_written(type_id: int, name: str, value: object, ctx: CodecContext | None) -> object:
    """A field value typed as complex.py writes it: the registry's field type wins."""
    if ctx is None or value is None or type(value) is Typed:
        return value
    binary_type = ctx.registry.get(type_id)
    if binary_type is None:
        return value
    for field_name, code, _ in binary_type.fields:
        if field_name == name:
            return value if code == TypeCode.COMPLEX_OBJECT else Typed(code, value)
    return value


_FLAG_HAS_SCHEMA = 0x02
_FLAG_HAS_RAW = 0x04
_FLAG_OFFSET_ONE = 0x08
_FLAG_OFFSET_TWO = 0x10
_FLAG_COMPACT = 0x20
_OFFSET_READERS = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I")}


def encoded_affinity_hash(
    buf: Buffer, key_configs: Mapping[int, int], ctx: CodecContext | None = None, pos: int = 0
) -> int:
    """The routing hash of an encoded key: its affinity field's hash when configured, else its own.

    A compact footer needs the schema from ``ctx.registry``; without it, or when the
    field is missing, UnroutableKeyError is raised.
    """
    try:
        root = pos
        code = buf[pos]
        if code == TypeCode.WRAPPED_BINARY:
            _, root = _wrapped_root(buf, pos + 1)
            code = buf[root]
        if code != TypeCode.COMPLEX_OBJECT or not key_configs:
            return encoded_key_hash(buf, pos)
        _, _, flags, type_id, _, length, schema_id, schema_offset = _OBJ_HEADER.unpack_from(
            buf, root
        )
        wanted = key_configs.get(type_id)
        if wanted is None:
            return encoded_key_hash(buf, pos)
        ids = ctx.registry.schema(type_id, schema_id) if ctx is not None else None
        field_pos = _field_offset(buf, root, flags, length, schema_offset, wanted, ids)
        if buf[field_pos] == TypeCode.HANDLE:
            field_pos -= _read_i32(buf, field_pos + 1)
            if field_pos < 0:
                raise UnroutableKeyError("handle points before the key")
        return encoded_key_hash(buf, field_pos)
    except (struct.error, IndexError) as exc:
        raise UnroutableKeyError(f"truncated key: {exc}") from exc


def _field_offset(
    buf: Buffer, root: int, flags: int, length: int, schema_offset: int, wanted: int,
    schema: tuple[int, ...] | None,
) -> int:
    """Absolute position of a field's value, found through the object's footer.

    ``schema`` is the field ids in footer order, needed for a compact footer only.
    """
    if not flags & _FLAG_HAS_SCHEMA:
        raise UnroutableKeyError("the key object has no fields")
    width = 1 if flags & _FLAG_OFFSET_ONE else 2 if flags & _FLAG_OFFSET_TWO else 4
    reader = _OFFSET_READERS[width]
    end = root + length - (4 if flags & _FLAG_HAS_RAW else 0)
    start = root + schema_offset
    if not root + 24 <= start <= end <= len(buf):
        raise UnroutableKeyError("object footer outside the key")
    if flags & _FLAG_COMPACT:
        if schema is None:
            raise UnroutableKeyError("compact footer and no schema in the registry")
        if wanted not in schema:
            raise UnroutableKeyError(f"the key object lacks field {wanted}")
        entry = start + schema.index(wanted) * width
        if entry + width > end:
            raise UnroutableKeyError("compact footer shorter than its schema")
        offset: int = reader.unpack_from(buf, entry)[0]
        return root + offset
    for entry in range(start, end - width - 3, width + 4):
        if _read_i32(buf, entry) == wanted:
            offset = reader.unpack_from(buf, entry + 4)[0]
            return root + offset
    raise UnroutableKeyError(f"the key object lacks field {wanted}")


# -- the mapping ---------------------------------------------------------------------------------


def is_newer(version_a: TopologyVersion | None, version_b: TopologyVersion | None) -> bool:
    """True when affinity version ``a`` = (topVer, minorTopVer) is strictly newer than ``b``.

    Versions compare lexicographically; None (nothing seen yet) is older than any version.
    A Response whose ``affinity_version`` is newer than the mapping's makes it stale.
    """
    if version_a is None:
        return False
    return version_b is None or tuple(version_a) > tuple(version_b)


@dataclass(frozen=True, slots=True, eq=True)
class CacheMapping:
    """One cache's routing data from a CACHE_PARTITIONS answer.

    ``partitions[p]`` is the primary node of partition ``p`` (None where the server listed
    no owner); its length is the highest listed partition + 1. Caches in one group share
    the same ``partitions`` tuple. ``default_affinity`` is False only for caches sent with
    ``custom_mappings`` (bit 13) whose affinity is not Rendezvous-compatible.
    """

    cache_id: int
    applicable: bool
    key_configs: Mapping[int, int] = field(default_factory=dict, hash=False)
    partitions: tuple[uuid.UUID | None, ...] = ()
    default_affinity: bool = True

    @property
    def partition_count(self) -> int:
        return len(self.partitions)

    @property
    def routable(self) -> bool:
        """True when keys of this cache can be routed with ``partition_for``."""
        return self.applicable and self.default_affinity and bool(self.partitions)

    def partition_of(self, h: int) -> int:
        """The partition of a key hash (the cache must have partitions)."""
        return partition_for(h, len(self.partitions))


@dataclass(frozen=True, slots=True, eq=True)
class AffinityMapping:
    """The parsed answer to CACHE_PARTITIONS: a topology version and the caches' mappings."""

    version: TopologyVersion
    caches: Mapping[int, CacheMapping] = field(default_factory=dict, hash=False)

    def cache(self, cache_id: int) -> CacheMapping | None:
        return self.caches.get(cache_id)

    def partition_of_key(
        self, cache_id: int, key: object, hint: int | None = None,
        ctx: CodecContext | None = None,
    ) -> int | None:
        """The key's partition, or None when the cache or the key is not routable."""
        cache = self.caches.get(cache_id)
        if cache is None or not cache.routable:
            return None
        try:
            if cache.key_configs:
                target = affinity_key(key, cache.key_configs, ctx)
                if target is not key:
                    hint = None  # the hint typed the key, not its field
                h = key_hash(target, hint, ctx=ctx)
            else:
                h = key_hash(key, hint, ctx=ctx)
        except UnroutableKeyError:
            return None
        return partition_for(h, len(cache.partitions))

    def node_for(
        self, cache_id: int, key: object, hint: int | None = None,
        ctx: CodecContext | None = None,
    ) -> uuid.UUID | None:
        """The primary node of ``key`` in ``cache_id``, or None (send it anywhere)."""
        part = self.partition_of_key(cache_id, key, hint, ctx)
        if part is None:
            return None
        return self.caches[cache_id].partitions[part]

    def node_for_encoded(
        self, cache_id: int, key: Buffer, ctx: CodecContext | None = None, pos: int = 0
    ) -> uuid.UUID | None:
        """Like ``node_for`` for a key already encoded (type code first) at ``key[pos]``."""
        cache = self.caches.get(cache_id)
        if cache is None or not cache.routable:
            return None
        try:
            h = encoded_affinity_hash(key, cache.key_configs, ctx, pos)
        except UnroutableKeyError:
            return None
        return cache.partitions[partition_for(h, len(cache.partitions))]

    def merge(self, other: AffinityMapping) -> AffinityMapping:
        """Combine with another answer: the newer version wins; equal versions unite."""
        if is_newer(other.version, self.version):
            return other
        if is_newer(self.version, other.version):
            return self
        return AffinityMapping(self.version, MappingProxyType({**self.caches, **other.caches}))


# -- CACHE_PARTITIONS (1101) -------------------------------------------------------------------


def cache_partitions(
    cache_ids: Iterable[int],
    features: frozenset[int] = frozenset(),
    custom_mappings: bool = False,
) -> bytes:
    """Body of CACHE_PARTITIONS (1101): ``[bool custom_mappings] | i32 n | n x i32 cache_id``.

    The bool is written only when Feature.ALL_AFFINITY_MAPPINGS (bit 13) is among the negotiated
    ``features``; asking for custom mappings without it is an error.
    """
    ids = [check.i32(cache_id, "cache id") for cache_id in check.items(cache_ids, "cache ids")]
    with_flag = Feature.ALL_AFFINITY_MAPPINGS in check.feature_set(features)
    if check.flag(custom_mappings, "custom_mappings") and not with_flag:
        raise LocalProtocolError("custom_mappings needs feature bit 13 (ALL_AFFINITY_MAPPINGS)")
    try:
        body = struct.pack(f"<i{len(ids)}i", len(ids), *ids)
    except struct.error as exc:
        raise LocalProtocolError(f"cache ids must be signed 32-bit ints: {exc}") from exc
    return (b"\x01" if custom_mappings else b"\x00") + body if with_flag else body


_TOP_VERSION = struct.Struct("<qii")  # topVer, minorTopVer, group count
_PAIR = struct.Struct("<ii")


class _Reader:
    """A bounds-checked cursor over a CACHE_PARTITIONS body."""

    __slots__ = ("buf", "pos", "uuids")

    def __init__(self, buf: Buffer) -> None:
        self.buf = buf
        self.pos = 0
        self.uuids: dict[tuple[int, int], uuid.UUID] = {}

    def i32(self) -> int:
        value: int
        (value,) = _I32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return value

    def bool(self) -> bool:
        value = self.buf[self.pos]
        if value > 1:
            raise RemoteProtocolError(f"invalid bool {value} at offset {self.pos}")
        self.pos += 1
        return value == 1

    def count(self, min_item_size: int) -> int:
        n = self.i32()
        if n < 0 or n * min_item_size > len(self.buf) - self.pos:
            raise RemoteProtocolError(f"count {n} at offset {self.pos - 4} does not fit the body")
        return n

    def uuid(self) -> uuid.UUID:
        if self.buf[self.pos] != TypeCode.UUID:
            raise RemoteProtocolError(f"expected a UUID at offset {self.pos}")
        halves = _UUID.unpack_from(self.buf, self.pos + 1)
        self.pos += 17
        node = self.uuids.get(halves)
        if node is None:
            msb, lsb = halves
            node = uuid.UUID(int=((msb & _MASK64) << 64) | (lsb & _MASK64))
            self.uuids[halves] = node
        return node


def parse_cache_partitions(body: Buffer, features: frozenset[int] = frozenset()) -> AffinityMapping:
    """Parse a CACHE_PARTITIONS answer; ``features`` are the connection's negotiated bits.

    Raises RemoteProtocolError (only) on malformed bodies, including partition numbers
    outside ``0..MAX_PARTITIONS-1`` and trailing bytes.
    """
    try:
        reader = _Reader(body)
        top, minor, groups = _TOP_VERSION.unpack_from(body, 0)
        reader.pos = _TOP_VERSION.size
        if groups < 0 or groups * 5 > len(body) - reader.pos:
            raise RemoteProtocolError(f"group count {groups} does not fit the body")
        with_default_flag = Feature.ALL_AFFINITY_MAPPINGS in features
        caches: dict[int, CacheMapping] = {}
        for _ in range(groups):
            for cache in _read_group(reader, with_default_flag):
                caches[cache.cache_id] = cache
    except struct.error as exc:
        raise RemoteProtocolError(f"truncated CACHE_PARTITIONS body: {exc}") from exc
    except IndexError as exc:
        raise RemoteProtocolError(f"truncated CACHE_PARTITIONS body: {exc}") from exc
    if reader.pos != len(body):
        raise RemoteProtocolError(f"{len(body) - reader.pos} trailing bytes after the mappings")
    return AffinityMapping((top, minor), MappingProxyType(caches))


def _read_group(reader: _Reader, with_default_flag: bool) -> list[CacheMapping]:
    applicable = reader.bool()
    if not applicable:
        n = reader.count(4)
        return [CacheMapping(reader.i32(), False, default_affinity=False) for _ in range(n)]
    n = reader.count(8)
    configs: list[tuple[int, dict[int, int]]] = []
    for _ in range(n):
        cache_id = reader.i32()
        pairs = reader.count(8)
        key_configs = {}
        for _ in range(pairs):
            type_id, field_id = _PAIR.unpack_from(reader.buf, reader.pos)
            reader.pos += 8
            key_configs[type_id] = field_id
        configs.append((cache_id, key_configs))
    partitions = _read_partition_table(reader)
    default_affinity = reader.bool() if with_default_flag else True
    return [
        CacheMapping(cache_id, True, MappingProxyType(key_configs), partitions, default_affinity)
        for cache_id, key_configs in configs
    ]


def _read_partition_table(reader: _Reader) -> tuple[uuid.UUID | None, ...]:
    """``i32 nodes | nodes x (uuidobj, i32 n, n x i32 partition)`` -> partition -> node."""
    owners: list[tuple[uuid.UUID, tuple[int, ...]]] = []
    top = -1
    for _ in range(reader.count(21)):
        node = reader.uuid()
        n = reader.count(4)
        parts = struct.unpack_from(f"<{n}i", reader.buf, reader.pos)
        reader.pos += 4 * n
        if parts:
            low, high = min(parts), max(parts)
            if low < 0 or high >= MAX_PARTITIONS:
                raise RemoteProtocolError(f"partition number out of range: {low}..{high}")
            top = max(top, high)
        owners.append((node, parts))
    table: list[uuid.UUID | None] = [None] * (top + 1)
    for node, parts in owners:
        for part in parts:
            table[part] = node  # a partition listed twice: the later owner wins, as in Java
    return tuple(table)
