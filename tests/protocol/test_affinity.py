"""Partition awareness, pure: Java key hashes, partition maths, the 1101 codec, routing.

Expected hashes are computed from first principles by reference implementations written
here with Java's signed 32/64-bit arithmetic spelled out; the captured vectors
(tests/protocol/vectors/affinity_*.json) add real 3-node answers and, for keys of every
type, the node a real cluster stored them on.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import json
import math
import struct
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import LocalProtocolError, ProtocolError, RemoteProtocolError, hashing
from protocol.affinity import (
    AffinityMapping,
    CacheMapping,
    UnroutableKeyError,
    affinity_key,
    cache_partitions,
    encoded_affinity_hash,
    encoded_key_hash,
    is_newer,
    key_hash,
    parse_cache_partitions,
    partition_for,
)
from protocol.binary.registry import BinaryType, CodecContext, Registry
from protocol.binary.typecodes import TypeCode as T
from protocol.binary.values import BinaryObject, Date, EnumValue, Time, Timestamp, Typed
from protocol.features import Feature

VECTOR_DIR = Path(__file__).parent / "vectors"
F13 = frozenset({2, 3, 11, Feature.ALL_AFFINITY_MAPPINGS})
NODE_A = uuid.UUID("11111111-2222-3333-4444-555555555555")
NODE_B = uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")


# -- reference implementations: Java semantics, written out ---------------------------------------


def to_int(x: int) -> int:
    """Java (int) cast."""
    x %= 2**32
    return x - 2**32 if x >= 2**31 else x


def to_long(x: int) -> int:
    x %= 2**64
    return x - 2**64 if x >= 2**63 else x


def ushr64(x: int, n: int) -> int:
    """Java's >>> on a long."""
    return (x % 2**64) >> n


def ref_long_hash(v: int) -> int:
    return to_int(to_long(v ^ ushr64(v, 32)))


def ref_big_integer_hash(value: int) -> int:
    """BigInteger.hashCode: mag is |value| as big-endian ints, no leading zero ints."""
    mag = []
    rest = abs(value)
    while rest:
        mag.insert(0, rest & 0xFFFFFFFF)
        rest >>= 32
    h = 0
    for word in mag:
        h = to_int(31 * h + word)  # (int)(31*hashCode + (mag[i] & LONG_MASK))
    signum = (value > 0) - (value < 0)
    return to_int(h * signum)


def ref_big_decimal_hash(text: str) -> int:
    d = decimal.Decimal(text)
    sign, digits, exponent = d.as_tuple()
    unscaled = int(decimal.Decimal((0, digits, 0))) * (-1 if sign else 1)
    return to_int(31 * ref_big_integer_hash(unscaled) + (-exponent))


def ref_uuid_hash(u: uuid.UUID) -> int:
    msb = to_long(u.int >> 64)
    lsb = to_long(u.int & (2**64 - 1))
    hilo = msb ^ lsb
    return to_int(hilo >> 32) ^ to_int(hilo)  # ((int)(hilo >> 32)) ^ (int) hilo


def ref_partition(h: int, parts: int) -> int:
    """RendezvousAffinityFunction.calculatePartition with Java's int semantics."""
    if parts & (parts - 1) == 0:
        ushr = (h % 2**32) >> 16
        return to_int(h ^ ushr) & (parts - 1)
    rem = int(math.fmod(h, parts))  # truncating, sign of the dividend, like Java's %
    return abs(rem)


# -- key hashes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        (0, T.INT, 0),
        (-1, T.INT, -1),
        (2**31 - 1, T.INT, 2**31 - 1),
        (-(2**31), T.INT, -(2**31)),
        (-128, T.BYTE, -128),
        (-32768, T.SHORT, -32768),
        (0, None, 0),
        (1, None, 1),
        (-1, None, 0),  # Long.hashCode(-1L) == 0
        (2**32, None, 1),
        (2**63 - 1, None, -(2**31)),  # Long.hashCode(Long.MAX_VALUE)
        (-(2**63), None, -(2**31)),
        (5, T.LONG, 5),
        (True, None, 1231),
        (False, None, 1237),
        ("a", T.CHAR, 97),
        ("\uffff", T.CHAR, 0xFFFF),
        (0x41, T.CHAR, 0x41),
        (1.0, T.FLOAT, 1065353216),  # Float.hashCode(1.0f)
        (-0.0, T.FLOAT, -(2**31)),
        (math.nan, T.FLOAT, 0x7FC00000),
        (1.0, None, 1072693248),  # Double.hashCode(1.0)
        (0.0, None, 0),
        (-0.0, None, -(2**31)),
        (math.inf, None, 2146435072),
        (math.nan, None, 2146959360),  # canonical NaN 0x7ff8000000000000
        ("", None, 0),
        ("hello", None, 99162322),
        ("Hello", T.STRING, 69609650),
        ("😀", None, 0xD83D * 31 + 0xDE00),  # UTF-16 units, not the code point
        ("ключ", None, hashing.java_string_hash("ключ")),
        (uuid.UUID(int=0), None, 0),
        (decimal.Decimal("0"), None, 0),
        (decimal.Decimal("1"), None, 31),
        (decimal.Decimal("1.0"), None, 311),  # depends on the scale
        (decimal.Decimal("-1"), None, -31),
        (decimal.Decimal("1E+3"), None, 28),  # unscaled 1, scale -3
        (decimal.Decimal("18446744073709551616"), None, 29791),  # mag [1,0,0]: 961, then 31*961
        (Date(0), None, 0),
        (Date(-1), None, 0),
        (Timestamp(1_700_000_000_123, 456_789), None, ref_long_hash(1_700_000_000_123)),
        (Time(86_399_999), None, 86_399_999),
        (EnumValue(7, 3), None, 31 * 7 + 3),
        (EnumValue(-(2**31), 5, binary=True), T.BINARY_ENUM, to_int(31 * -(2**31) + 5)),
        (BinaryObject(1, {}, hash_code=-42), None, -42),
    ],
)
def test_known_java_hash_codes(value: Any, hint: int | None, expected: int) -> None:
    assert key_hash(value, hint) == expected


def test_floats_fold_every_nan() -> None:
    other_nan = struct.unpack("<f", struct.pack("<I", 0x7FC00001))[0]
    assert key_hash(other_nan, T.FLOAT) == 0x7FC00000
    assert encoded_key_hash(b"\x05" + struct.pack("<I", 0xFFFFFFFF)) == 0x7FC00000
    assert encoded_key_hash(b"\x06" + struct.pack("<Q", 0xFFF0000000000001)) == 2146959360


def test_typed_values_carry_their_type() -> None:
    assert key_hash(Typed(T.INT, -1)) == -1
    assert key_hash(-1) == 0  # a bare int is a Long
    assert key_hash(Typed(T.FLOAT, 1.0)) != key_hash(1.0)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (None, None),
        (b"\x01", None),
        (bytearray(b"x"), None),
        ([1], None),
        ({"a": 1}, None),
        (b"\x01", T.BYTE_ARRAY),
        (2**31, T.INT),
        (2**63, None),
        (128, T.BYTE),
        ("ab", T.CHAR),
        ("😀", T.CHAR),
        (decimal.Decimal("NaN"), None),
        (decimal.Decimal("Infinity"), None),
        (1, T.STRING),
        (1e300, T.FLOAT),  # overflows a float32: the encoder refuses it too
    ],
)
def test_unroutable_keys(value: Any, hint: int | None) -> None:
    with pytest.raises(UnroutableKeyError):
        key_hash(value, hint)
    assert issubclass(UnroutableKeyError, LocalProtocolError)


@given(st.integers(-(2**63), 2**63 - 1))
def test_long_hash_matches_reference(v: int) -> None:
    assert key_hash(v) == ref_long_hash(v)
    assert key_hash(Date(v)) == ref_long_hash(v)


@given(st.integers(-(2**31), 2**31 - 1))
def test_int_hash_is_the_value(v: int) -> None:
    assert key_hash(Typed(T.INT, v)) == v


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_double_hash_matches_reference(v: float) -> None:
    bits = struct.unpack("<q", struct.pack("<d", v))[0]
    if math.isnan(v):
        bits = 0x7FF8000000000000
    assert key_hash(v) == ref_long_hash(bits)


@given(st.uuids())
def test_uuid_hash_matches_reference(u: uuid.UUID) -> None:
    assert key_hash(u) == ref_uuid_hash(u)


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_decimal_hash_matches_reference(d: decimal.Decimal) -> None:
    if not -(2**31) <= -d.as_tuple().exponent < 2**31:  # type: ignore[operator]
        return
    assert key_hash(d) == ref_big_decimal_hash(str(d))


@given(st.text())
def test_string_hash_is_java_string_hash(s: str) -> None:
    assert key_hash(s) == hashing.java_string_hash(s)


# -- hashes from encoded bytes --------------------------------------------------------------------


def enc(code: int, fmt: str, *values: Any) -> bytes:
    return struct.pack("<b" + fmt, code, *values)


def enc_str(s: str) -> bytes:
    data = s.encode("utf-8")
    return b"\x09" + struct.pack("<i", len(data)) + data


def enc_decimal(text: str) -> bytes:
    sign, digits, exponent = decimal.Decimal(text).as_tuple()
    magnitude = int(decimal.Decimal((0, digits, 0)))
    raw = bytearray(magnitude.to_bytes(magnitude.bit_length() // 8 + 1, "big"))
    if sign and magnitude:
        raw[0] |= 0x80
    return b"\x1e" + struct.pack("<ii", -exponent, len(raw)) + raw  # type: ignore[operator]


@pytest.mark.parametrize(
    ("data", "value", "hint"),
    [
        (enc(1, "b", -5), -5, T.BYTE),
        (enc(2, "h", 300), 300, T.SHORT),
        (enc(3, "i", -7), -7, T.INT),
        (enc(4, "q", -(2**40)), -(2**40), None),
        (enc(5, "f", 2.5), 2.5, T.FLOAT),
        (enc(6, "d", -2.5), -2.5, None),
        (enc(7, "H", 0x416), "Ж", T.CHAR),
        (enc(8, "b", 1), True, None),
        (enc(8, "b", 0), False, None),
        (enc_str("héllo 😀"), "héllo 😀", None),
        (b"\x0a" + struct.pack("<QQ", 0x0123456789ABCDEF, 0xFEDCBA9876543210),
         uuid.UUID("01234567-89abcdef-fedcba98-76543210"), None),
        (enc(11, "q", 1_700_000_000_000), Date(1_700_000_000_000), None),
        (enc(33, "qi", -5, 999_999), Timestamp(-5, 999_999), None),
        (enc(36, "q", 3_600_000), Time(3_600_000), None),
        (enc(28, "ii", 99, 2), EnumValue(99, 2), None),
        (enc(38, "ii", 99, 2), EnumValue(99, 2, binary=True), None),
        (enc_decimal("-123.450"), decimal.Decimal("-123.450"), None),
        (enc_decimal("0.00"), decimal.Decimal("0.00"), None),
        (enc_decimal("-0"), decimal.Decimal("-0"), None),
        (enc_decimal("340282366920938463463374607431768211456"),
         decimal.Decimal("340282366920938463463374607431768211456"), None),
    ],
)
def test_encoded_hash_equals_value_hash(data: bytes, value: Any, hint: int | None) -> None:
    assert encoded_key_hash(data) == key_hash(value, hint)
    assert encoded_key_hash(b"junk" + data, 4) == key_hash(value, hint)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x65", b"\x0c\x00\x00\x00\x00", b"\x03\x01", b"\x09\x05\x00\x00\x00ab",
     b"\x1e\x00\x00\x00\x00\x00\x00\x00\x00", b"\x1c\x00\x00\x00\x00\x01\x00\x00\x00",
     b"\x09\x02\x00\x00\x00\xff\xfe", b"\x18\x00\x00\x00\x00\x01"],
)
def test_encoded_unroutable(data: bytes) -> None:
    with pytest.raises(UnroutableKeyError):
        encoded_key_hash(data)


@given(st.binary(max_size=64))
def test_encoded_hash_only_raises_unroutable(data: bytes) -> None:
    try:
        h = encoded_key_hash(data)
    except UnroutableKeyError:
        return
    assert -(2**31) <= h < 2**31


# -- complex keys and affinity fields -------------------------------------------------------------


def build_object(type_name: str, fields: list[tuple[str, bytes]], *, compact: bool = False,
                 width: int = 1) -> bytes:
    """A complex object: fields given as encoded values; footer of the chosen form/width."""
    data = bytearray()
    offsets = []
    for _, value in fields:
        offsets.append(24 + len(data))
        data += value
    ids = [hashing.field_id(name) for name, _ in fields]
    off_fmt = {1: "B", 2: "H", 4: "I"}[width]
    entry = off_fmt if compact else "i" + off_fmt
    footer = b"".join(
        struct.pack("<" + entry, *(([] if compact else [fid]) + [off]))
        for fid, off in zip(ids, offsets, strict=True)
    )
    flags = 0x01 | 0x02 | {1: 0x08, 2: 0x10, 4: 0}[width] | (0x20 if compact else 0)
    schema_offset = 24 + len(data)
    header = struct.pack("<bbhiiiii", 103, 1, flags, hashing.type_id(type_name),
                         hashing.object_hash(bytes(data)), schema_offset + len(footer),
                         hashing.schema_id(ids), schema_offset)
    return header + bytes(data) + footer


ORDER_KEY = hashing.type_id("OrderKey")
CUSTOMER = hashing.field_id("customerId")
KEY_CONFIGS = {ORDER_KEY: CUSTOMER}


def order_key(customer: int) -> BinaryObject:
    fields = {"orderId": Typed(T.INT, 17), "customerId": Typed(T.INT, customer)}
    return BinaryObject(ORDER_KEY, fields, "OrderKey", hash_code=12345)


def test_affinity_key_picks_the_configured_field() -> None:
    key = order_key(-99)
    assert affinity_key(key, KEY_CONFIGS) == Typed(T.INT, -99)
    assert affinity_key(key, {}) is key
    assert affinity_key(key, {ORDER_KEY + 1: CUSTOMER}) is key
    assert affinity_key("plain", KEY_CONFIGS) == "plain"
    assert affinity_key(Typed(T.COMPLEX_OBJECT, key), KEY_CONFIGS) == Typed(T.INT, -99)


def order_key_context(schemas: dict[int, list[int]] | None = None) -> CodecContext:
    registry = Registry()
    fields = [("orderId", T.INT, hashing.field_id("orderId")),
              ("customerId", T.INT, CUSTOMER),
              ("name", T.STRING, hashing.field_id("name"))]
    registry.add(BinaryType(ORDER_KEY, "OrderKey", fields=fields, schemas=schemas or {}))
    return CodecContext(registry)


def test_affinity_field_typed_by_the_registry() -> None:
    key = BinaryObject(ORDER_KEY, {"orderId": 1, "customerId": -5}, "OrderKey", hash_code=3)
    assert affinity_key(key, KEY_CONFIGS) == -5  # without metadata: the automatic mapping
    ctx = order_key_context()
    assert affinity_key(key, KEY_CONFIGS, ctx) == Typed(T.INT, -5)  # as complex.py writes it
    m = AffinityMapping((1, 0), {1: CacheMapping(1, True, KEY_CONFIGS, tuple(range(1000)))})
    assert m.partition_of_key(1, key, ctx=ctx) == 5  # Integer -5, not Long -5 (hash 4)
    assert m.partition_of_key(1, key) == 4


def test_affinity_key_missing_field() -> None:
    with pytest.raises(UnroutableKeyError):
        affinity_key(BinaryObject(ORDER_KEY, {"orderId": 1}), KEY_CONFIGS)


@pytest.mark.parametrize("width", [1, 2, 4])
@pytest.mark.parametrize("compact", [False, True])
def test_encoded_affinity_field(width: int, compact: bool) -> None:
    data = build_object("OrderKey", [("orderId", enc(3, "i", 17)),
                                     ("customerId", enc(3, "i", -99)),
                                     ("name", enc_str("x"))], compact=compact, width=width)
    ids = [hashing.field_id(n) for n in ("orderId", "customerId", "name")]
    ctx = order_key_context({hashing.schema_id(ids): ids})
    assert encoded_affinity_hash(data, KEY_CONFIGS, ctx) == -99
    assert encoded_affinity_hash(data, {}) == struct.unpack_from("<i", data, 8)[0]
    if compact:
        with pytest.raises(UnroutableKeyError):
            encoded_affinity_hash(data, KEY_CONFIGS)  # no schema: cannot find the field
        with pytest.raises(UnroutableKeyError):
            encoded_affinity_hash(data, KEY_CONFIGS, order_key_context())  # unknown schema
    else:
        assert encoded_affinity_hash(data, KEY_CONFIGS) == -99  # full footers need no metadata
    wrapped = b"\x1b" + struct.pack("<i", len(data) + 3) + b"pad" + data + struct.pack("<i", 3)
    assert encoded_affinity_hash(wrapped, KEY_CONFIGS, ctx) == -99
    assert encoded_key_hash(wrapped) == encoded_key_hash(data)


def test_encoded_affinity_field_through_a_handle() -> None:
    name = enc_str("shared")
    first = 24
    data = bytearray(name)
    handle_pos = 24 + len(data)
    data += b"\x66" + struct.pack("<i", handle_pos - first)
    ids = [hashing.field_id("a"), hashing.field_id("customerId")]
    footer = struct.pack("<iBiB", ids[0], first, ids[1], handle_pos)
    header = struct.pack("<bbhiiiii", 103, 1, 0x0B, ORDER_KEY, 1, 24 + len(data) + len(footer),
                         hashing.schema_id(ids), 24 + len(data))
    assert encoded_affinity_hash(header + data + footer, KEY_CONFIGS) == key_hash("shared")


def test_encoded_affinity_field_missing_or_broken() -> None:
    data = build_object("OrderKey", [("orderId", enc(3, "i", 1))])
    with pytest.raises(UnroutableKeyError):
        encoded_affinity_hash(data, KEY_CONFIGS)
    with pytest.raises(UnroutableKeyError):
        encoded_affinity_hash(data[:30], KEY_CONFIGS)


@given(st.binary(max_size=80), st.integers(0, 0xFFFF))
def test_encoded_affinity_hash_only_raises_unroutable(data: bytes, flags: int) -> None:
    header = b"\x67\x01" + struct.pack("<Hi", flags, ORDER_KEY)
    for candidate in (data, header + data):
        with contextlib.suppress(UnroutableKeyError):
            encoded_affinity_hash(candidate, KEY_CONFIGS, order_key_context())


# -- partitions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("h", "parts", "expected"),
    [
        (0, 1024, 0),
        (1, 1024, 1),
        (-1, 1024, (0xFFFFFFFF ^ 0xFFFF) & 1023),
        (0x12345678, 1024, (0x12345678 ^ 0x1234) & 1023),
        (-1, 1000, 1),  # Java: -1 % 1000 == -1 -> 1; Python's % would give 999
        (-123456, 1000, 456),
        (-(2**31), 1000, 2**31 % 1000),
        (2**31 - 1, 37, (2**31 - 1) % 37),
        (12345, 1, 0),
        (-12345, 3, 0),
        (-12346, 3, 1),
    ],
)
def test_partition_known_values(h: int, parts: int, expected: int) -> None:
    assert partition_for(h, parts) == expected == ref_partition(h, parts)


@given(st.integers(-(2**31), 2**31 - 1), st.integers(1, 65535))
def test_partition_in_range_and_java_exact(h: int, parts: int) -> None:
    p = partition_for(h, parts)
    assert 0 <= p < parts
    assert p == ref_partition(h, parts)


def test_partition_count_must_be_positive() -> None:
    with pytest.raises(LocalProtocolError):
        partition_for(5, 0)


# -- the 1101 codec -------------------------------------------------------------------------------


def uuid_obj(u: uuid.UUID) -> bytes:
    return b"\x0a" + struct.pack("<QQ", u.int >> 64, u.int & (2**64 - 1))


def applicable_group(caches: list[tuple[int, dict[int, int]]],
                     nodes: list[tuple[uuid.UUID, list[int]]],
                     default: bool | None = None) -> bytes:
    out = b"\x01" + struct.pack("<i", len(caches))
    for cid, configs in caches:
        out += struct.pack("<ii", cid, len(configs))
        out += b"".join(struct.pack("<ii", t, f) for t, f in configs.items())
    out += struct.pack("<i", len(nodes))
    for node, parts in nodes:
        out += uuid_obj(node) + struct.pack(f"<i{len(parts)}i", len(parts), *parts)
    if default is not None:
        out += b"\x01" if default else b"\x00"
    return out


def not_applicable_group(cache_ids: list[int]) -> bytes:
    return b"\x00" + struct.pack(f"<i{len(cache_ids)}i", len(cache_ids), *cache_ids)


def answer(version: tuple[int, int], *groups: bytes) -> bytes:
    return struct.pack("<qii", *version, len(groups)) + b"".join(groups)


SAMPLE = answer(
    (7, 3),
    applicable_group([(100, {}), (101, {ORDER_KEY: CUSTOMER})],
                     [(NODE_A, [0, 2, 4]), (NODE_B, [1, 3, 5, 6])]),
    not_applicable_group([200, 201]),
)


def test_request_bodies() -> None:
    assert cache_partitions([1, -2]) == struct.pack("<iii", 2, 1, -2)
    assert cache_partitions([]) == b"\x00\x00\x00\x00"
    assert cache_partitions([5], F13) == b"\x00" + struct.pack("<ii", 1, 5)
    assert cache_partitions([5], F13, custom_mappings=True) == b"\x01" + struct.pack("<ii", 1, 5)
    with pytest.raises(LocalProtocolError):
        cache_partitions([5], frozenset(), custom_mappings=True)
    with pytest.raises(LocalProtocolError):
        cache_partitions([2**31])


def test_parse_groups() -> None:
    m = parse_cache_partitions(SAMPLE)
    assert m.version == (7, 3)
    table = (NODE_A, NODE_B, NODE_A, NODE_B, NODE_A, NODE_B, NODE_B)
    assert m.caches[100] == CacheMapping(100, True, {}, table, True)
    assert dict(m.caches[101].key_configs) == {ORDER_KEY: CUSTOMER}
    assert m.caches[100].partitions is m.caches[101].partitions  # one table per group
    assert m.caches[100].partition_count == 7  # max listed + 1
    assert not m.caches[200].applicable and not m.caches[201].routable
    assert m.caches[200].partitions == ()


def test_parse_with_feature_13() -> None:
    body = answer((1, 0), applicable_group([(1, {})], [(NODE_A, [0])], default=False),
                  applicable_group([(2, {})], [(NODE_B, [0, 1])], default=True))
    m = parse_cache_partitions(body, F13)
    assert m.caches[1].default_affinity is False and not m.caches[1].routable
    assert m.caches[2].default_affinity is True and m.caches[2].routable
    assert m.node_for(1, 5) is None
    with pytest.raises(RemoteProtocolError):
        parse_cache_partitions(body)  # without the feature the bools are trailing junk


def test_partition_gaps_and_repeats() -> None:
    body = answer((1, 0), applicable_group([(1, {})], [(NODE_A, [0, 5]), (NODE_B, [5, 2])]))
    m = parse_cache_partitions(body)
    assert m.caches[1].partitions == (NODE_A, None, NODE_B, None, None, NODE_B)


def test_node_ids_are_shared_objects() -> None:
    body = answer((1, 0), applicable_group([(1, {})], [(NODE_A, [0])]),
                  applicable_group([(2, {})], [(NODE_A, [0])]))
    m = parse_cache_partitions(body)
    assert m.caches[1].partitions[0] is m.caches[2].partitions[0]


@pytest.mark.parametrize(
    "body",
    [
        SAMPLE + b"\x00",
        answer((1, 0), b"\x02" + struct.pack("<i", 0)),  # bool must be 0 or 1
        answer((1, 0), applicable_group([(1, {})], [(NODE_A, [-1])])),
        answer((1, 0), applicable_group([(1, {})], [(NODE_A, [65000])])),
        answer((1, 0), applicable_group([(1, {})], [(NODE_A, [2**31 - 1])])),
        answer((1, 0), applicable_group([(1, {})], [(NODE_A, [0])])).replace(
            uuid_obj(NODE_A), b"\x65" * 17),
        struct.pack("<qii", 1, 0, 2**31 - 1),
        struct.pack("<qii", 1, 0, -1),
        answer((1, 0), b"\x01" + struct.pack("<i", 2**30)),
    ],
    ids=["trailing", "bool-2", "negative-partition", "partition-65000", "partition-max",
         "null-node-id", "group-count-huge", "group-count-negative", "cache-count-huge"],
)
def test_parse_rejects(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_cache_partitions(body)


def test_every_truncation_is_a_protocol_error() -> None:
    for cut in range(len(SAMPLE)):
        with pytest.raises(RemoteProtocolError):
            parse_cache_partitions(SAMPLE[:cut])


def test_uuid_tag_checked() -> None:
    bad = SAMPLE.replace(uuid_obj(NODE_A), b"\x65" + uuid_obj(NODE_A)[1:])
    with pytest.raises(RemoteProtocolError):
        parse_cache_partitions(bad)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), st.booleans())
def test_parser_only_raises_protocol_errors(data: bytes, f13: bool) -> None:
    with contextlib.suppress(ProtocolError):
        parse_cache_partitions(data, F13 if f13 else frozenset())


@settings(max_examples=300)
@given(st.data())
def test_parser_on_mutated_sample(data: st.DataObject) -> None:
    body = bytearray(SAMPLE)
    for _ in range(data.draw(st.integers(1, 4))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ProtocolError):
        parse_cache_partitions(bytes(body))


# -- routing --------------------------------------------------------------------------------------


def test_node_for_routes_by_hash_and_field() -> None:
    m = parse_cache_partitions(SAMPLE)
    table = m.caches[100].partitions
    assert m.node_for(100, Typed(T.INT, 6)) == table[6 % 7]
    assert m.node_for(100, Typed(T.INT, -6)) == table[6]  # |-6 rem 7| == 6
    assert m.node_for(100, 6, T.INT) == table[6]
    # cache 101 routes OrderKey by customerId, never by the header hash 12345
    assert m.node_for(101, order_key(3)) == table[3]
    assert m.partition_of_key(101, order_key(3)) == 3
    assert m.node_for(100, order_key(3)) == table[12345 % 7]
    encoded = build_object("OrderKey", [("customerId", enc(3, "i", 4))])
    assert m.node_for_encoded(101, encoded) == table[4]


def test_node_for_gives_up_quietly() -> None:
    m = parse_cache_partitions(SAMPLE)
    assert m.node_for(999, 1) is None  # unknown cache
    assert m.node_for(200, 1) is None  # not applicable
    assert m.node_for(100, b"bytes") is None  # arrays have identity hashes
    assert m.node_for(100, None) is None
    assert m.node_for(101, BinaryObject(ORDER_KEY, {"x": 1}, hash_code=1)) is None
    assert m.node_for_encoded(100, b"\x0c\x00\x00\x00\x00") is None
    assert m.node_for_encoded(200, b"\x03\x00\x00\x00\x00") is None
    gap = parse_cache_partitions(answer((1, 0), applicable_group([(1, {})], [(NODE_A, [1])])))
    assert gap.node_for(1, Typed(T.INT, 0)) is None  # partition 0 has no listed owner


def test_is_newer() -> None:
    assert is_newer((2, 0), (1, 5))
    assert is_newer((1, 6), (1, 5))
    assert not is_newer((1, 5), (1, 5))
    assert not is_newer((1, 4), (1, 5))
    assert is_newer((0, 0), None)
    assert not is_newer(None, (0, 0))
    assert not is_newer(None, None)


def test_merge_keeps_the_newest() -> None:
    old = AffinityMapping((1, 0), {1: CacheMapping(1, False)})
    same = AffinityMapping((1, 0), {2: CacheMapping(2, False)})
    new = AffinityMapping((1, 1), {3: CacheMapping(3, False)})
    assert set(old.merge(same).caches) == {1, 2}
    assert old.merge(new) is new
    assert new.merge(old) is new


# -- captured vectors -----------------------------------------------------------------------------


def load_vectors() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, json.loads(p.read_text("utf-8")))
            for p in sorted(VECTOR_DIR.glob("affinity_*.json"))]


VECTORS = load_vectors()
ANSWERS = [pytest.param(doc, a, id=f"{name}:{a['name']}") for name, doc in VECTORS
           for a in doc["affinity"]]


def key_from_json(j: dict[str, Any]) -> Any:
    kind, raw = j["type"], j.get("value")
    if isinstance(kind, int):
        value = float(raw) if kind in (T.FLOAT, T.DOUBLE) else raw
        return Typed(kind, value)
    simple = {"bool": bool, "int": int, "str": str, "float": float, "UUID": uuid.UUID,
              "Decimal": decimal.Decimal}
    if kind in simple:
        return simple[kind](raw)
    if kind == "Timestamp":
        return Timestamp(*raw)
    if kind == "Date":
        return Date(raw)
    if kind == "Time":
        return Time(raw)
    if kind == "EnumValue":
        return EnumValue(*raw)
    if kind == "BinaryObject":
        fields = {name: key_from_json(v) for name, v in j["fields"]}
        return BinaryObject(j["type_id"], fields, j["type_name"], hash_code=j["hash_code"])
    raise ValueError(kind)


def test_vectors_are_present() -> None:
    assert VECTORS, "tests/protocol/vectors/affinity_*.json is missing"


@pytest.mark.parametrize(("doc", "entry"), ANSWERS)
def test_captured_answer(doc: dict[str, Any], entry: dict[str, Any]) -> None:
    features = frozenset(entry["features"])
    body = cache_partitions(entry["cache_ids"], features, entry["custom_mappings"])
    assert body.hex() == entry["request_body_hex"]
    m = parse_cache_partitions(bytes.fromhex(entry["response_body_hex"]), features)
    assert list(m.version) == entry["version"]
    for cid, expected in entry["caches"].items():
        cache = m.caches[int(cid)]
        assert cache.applicable == expected["applicable"]
        assert cache.default_affinity == expected["default_affinity"]
        assert cache.partition_count == expected["partition_count"]
        assert {str(t): f for t, f in cache.key_configs.items()} == expected["key_configs"]
        owners: dict[str, int] = {}
        for node in cache.partitions:
            owners[str(node)] = owners.get(str(node), 0) + 1
        assert owners == expected["owners"]
        if cache.applicable:
            assert set(owners) <= set(doc["nodes"])


def probe_cases() -> list[Any]:
    cases = []
    for name, doc in VECTORS:
        entry = doc["affinity"][0]
        body = bytes.fromhex(entry["response_body_hex"])
        mapping = parse_cache_partitions(body, frozenset(entry["features"]))
        for i, probe in enumerate(doc["probes"]):
            label = f"{name}:{probe['cache']}:{probe['kind']}:{i}"
            cases.append(pytest.param(mapping, probe, id=label))
    return cases


@pytest.mark.parametrize(("mapping", "probe"), probe_cases())
def test_captured_key_holder(mapping: AffinityMapping, probe: dict[str, Any]) -> None:
    """The node a real cluster stored the key on is the one we route it to."""
    cid = hashing.cache_id(probe["cache"])
    key = key_from_json(probe["key"])
    holder = uuid.UUID(probe["holder"])
    assert mapping.node_for(cid, key) == holder
    assert mapping.node_for_encoded(cid, bytes.fromhex(probe["key_hex"])) == holder


# -- agreement with the value codec ---------------------------------------------------------------

CODEC_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
    st.text(),
    st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: -(2**31) <= -d.as_tuple().exponent < 2**31),  # type: ignore[operator]
    st.builds(Timestamp, st.integers(-(2**62), 2**62), st.integers(0, 999_999)),
    st.builds(Date, st.integers(-(2**63), 2**63 - 1)),
    st.builds(Time, st.integers(0, 86_399_999)),
    st.builds(EnumValue, st.integers(-(2**31), 2**31 - 1).filter(bool), st.integers(0, 2**31 - 1)),
    st.builds(Typed, st.sampled_from([T.BYTE]), st.integers(-128, 127)),
    st.builds(Typed, st.sampled_from([T.INT]), st.integers(-(2**31), 2**31 - 1)),
    st.builds(Typed, st.sampled_from([T.FLOAT]), st.floats(width=32)),
    st.builds(Typed, st.sampled_from([T.CHAR]), st.characters(max_codepoint=0xFFFF)),
    st.datetimes(timezones=st.just(datetime.UTC)),  # no native hash: through the encoder
    st.dates(),
    st.builds(Typed, st.sampled_from([T.TIMESTAMP]), st.datetimes()),
)


def test_datetimes_hash_as_their_milliseconds() -> None:
    when = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    ms = 1_577_836_800_000
    assert key_hash(when) == key_hash(Date(ms)) == ref_long_hash(ms)
    assert key_hash(when.replace(tzinfo=None), T.TIMESTAMP) == ref_long_hash(ms)


@settings(max_examples=400)
@given(CODEC_VALUES)
def test_hash_of_value_equals_hash_of_its_encoding(value: Any) -> None:
    """What protocol.binary writes for a key hashes like the Python value does."""
    from protocol.binary import encode_value

    assert encoded_key_hash(encode_value(value)) == key_hash(value)


def test_huge_decimal_has_no_digit_limit() -> None:
    d = decimal.Decimal("7" * 5000)
    assert key_hash(d) == encoded_key_hash(enc_decimal(str(d)))


@given(st.integers(-(2**31), 2**31 - 1), st.text(max_size=20), st.booleans())
def test_complex_keys_encoded_by_the_codec(customer: int, name: str, compact: bool) -> None:
    """Header hash and affinity field of objects complex.py writes, from value and from bytes."""
    from protocol.binary import encode_value

    ctx = order_key_context()
    ctx.compact_footer = compact
    key = BinaryObject(ORDER_KEY, {"orderId": 7, "customerId": customer, "name": name}, "OrderKey")
    data = encode_value(key, ctx=ctx)
    for binary_type in ctx.take_pending():
        ctx.registry.add(binary_type)
    header_hash = struct.unpack_from("<i", data, 8)[0]
    assert key_hash(key, ctx=ctx) == header_hash == encoded_key_hash(data)
    assert encoded_affinity_hash(data, KEY_CONFIGS, ctx) == customer
    assert key_hash(affinity_key(key, KEY_CONFIGS, ctx)) == customer
