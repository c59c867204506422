"""The standard types, arrays and containers: round trips with boundary values, decode-only
wire forms, truncation (every prefix), trailing bytes, invalid input, unencodable values,
the automatic mapping, property tests, and the vectors captured from a real node."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import enum
import struct
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.binary import TypeCode, decode_value, encode_value, read_value, write_value
from protocol.binary.registry import CodecContext, Registry
from protocol.binary.standard import as_datetime, as_timedelta
from protocol.binary.values import (
    Collection,
    CollectionKind,
    Date,
    EnumValue,
    Map,
    MapKind,
    ObjectArray,
    Time,
    Timestamp,
    Typed,
)
from protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from protocol.hashing import type_id
from protocol.limits import MAX_DECIMAL_DIGITS
from tests.protocol.type_vectors import (
    context_for,
    deep_same,
    load_type_vector_files,
    tj,
    tj_to_python,
    tj_to_typed,
)

T = TypeCode
D = decimal.Decimal
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
U1 = uuid.UUID("8f1c2a3b-4d5e-4f60-8172-93a4b5c6d7e8")
UTC = dt.UTC


# -- wire builders, written with struct (independent of the codec) ----------------------------


def h(*parts: bytes) -> str:
    return b"".join(parts).hex()


def i8(v: int) -> bytes:
    return struct.pack("<b", v)


def i32(v: int) -> bytes:
    return struct.pack("<i", v)


def i64(v: int) -> bytes:
    return struct.pack("<q", v)


def uuid_payload(u: uuid.UUID) -> bytes:
    return struct.pack("<QQ", u.int >> 64, u.int & (2**64 - 1))


def string(s: str) -> bytes:
    data = s.encode()
    return b"\x09" + i32(len(data)) + data


def decimal_wire(scale: int, magnitude: bytes) -> bytes:
    return b"\x1e" + i32(scale) + i32(len(magnitude)) + magnitude


def java_magnitude(n: int) -> bytes:
    """BigInteger.toByteArray() of |n| (two's complement, minimal), top bit set if n < 0."""
    a = abs(n)
    size = 1
    while True:
        try:
            raw = bytearray(a.to_bytes(size, "big", signed=True))
            break
        except OverflowError:
            size += 1
    if n < 0:
        raw[0] |= 0x80
    return bytes(raw)


def ts(v: dt.datetime) -> int:
    return int((v - dt.datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1000


# (id, value, hint, exact wire hex, decoded value)
ROUND_TRIPS: list[tuple[str, object, int | None, str, object]] = [
    # UUID: two little-endian longs, msb first
    ("uuid-nil", uuid.UUID(int=0), None, h(b"\x0a", bytes(16)), uuid.UUID(int=0)),
    ("uuid-max", uuid.UUID(int=2**128 - 1), None, h(b"\x0a", b"\xff" * 16),
     uuid.UUID(int=2**128 - 1)),
    ("uuid", U1, None, h(b"\x0a", uuid_payload(U1)), U1),
    ("uuid-hint", U1, T.UUID, h(b"\x0a", uuid_payload(U1)), U1),
    # Date: i64 ms since the epoch
    ("date-epoch", Date(0), None, h(b"\x0b", i64(0)), Date(0)),
    ("date-minus-one", Date(-1), None, h(b"\x0b", i64(-1)), Date(-1)),
    ("date-max", Date(I64_MAX), None, h(b"\x0b", i64(I64_MAX)), Date(I64_MAX)),
    ("date-min", Date(I64_MIN), None, h(b"\x0b", i64(I64_MIN)), Date(I64_MIN)),
    ("date-from-naive-datetime", dt.datetime(2020, 1, 1), None, h(b"\x0b", i64(1577836800000)),
     Date(1577836800000)),
    ("date-from-aware-datetime",
     dt.datetime(2020, 1, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))),
     None, h(b"\x0b", i64(1577836800000)), Date(1577836800000)),
    ("date-floors-micros", dt.datetime(2020, 1, 1, 0, 0, 0, 123999, tzinfo=UTC), None,
     h(b"\x0b", i64(1577836800123)), Date(1577836800123)),
    ("date-floors-before-epoch", dt.datetime(1969, 12, 31, 23, 59, 59, 999500), None,
     h(b"\x0b", i64(-1)), Date(-1)),
    ("date-from-date", dt.date(2020, 1, 1), None, h(b"\x0b", i64(1577836800000)),
     Date(1577836800000)),
    ("date-from-int", 5, T.DATE, h(b"\x0b", i64(5)), Date(5)),
    # Timestamp: i64 ms + i32 nanos within the ms
    ("timestamp-zero", Timestamp(0), None, h(b"\x21", i64(0), i32(0)), Timestamp(0, 0)),
    ("timestamp-max-nanos", Timestamp(1, 999_999), None, h(b"\x21", i64(1), i32(999_999)),
     Timestamp(1, 999_999)),
    ("timestamp-negative", Timestamp(-1, 5), None, h(b"\x21", i64(-1), i32(5)),
     Timestamp(-1, 5)),
    ("timestamp-max", Timestamp(I64_MAX), None, h(b"\x21", i64(I64_MAX), i32(0)),
     Timestamp(I64_MAX)),
    ("timestamp-from-datetime", dt.datetime(2020, 1, 1, 0, 0, 0, 123456, tzinfo=UTC), T.TIMESTAMP,
     h(b"\x21", i64(1577836800123), i32(456_000)), Timestamp(1577836800123, 456_000)),
    ("timestamp-from-date-value", Date(7), T.TIMESTAMP, h(b"\x21", i64(7), i32(0)),
     Timestamp(7)),
    # Time: i64 ms since midnight
    ("time-midnight", Time(0), None, h(b"\x24", i64(0)), Time(0)),
    ("time-last-ms", Time(86_399_999), None, h(b"\x24", i64(86_399_999)), Time(86_399_999)),
    ("time-negative", Time(-1), None, h(b"\x24", i64(-1)), Time(-1)),
    ("time-from-timedelta", dt.timedelta(hours=1, microseconds=1500), None,
     h(b"\x24", i64(3_600_001)), Time(3_600_001)),
    ("time-floors-negative-timedelta", dt.timedelta(microseconds=-1), None, h(b"\x24", i64(-1)),
     Time(-1)),
    ("time-from-time", dt.time(12, 34, 56, 789_000), None, h(b"\x24", i64(45_296_789)),
     Time(45_296_789)),
    # Decimal: i32 scale, i32 n, n big-endian sign-magnitude bytes
    ("decimal-zero", D("0"), None, h(decimal_wire(0, b"\x00")), D("0")),
    ("decimal-negative-zero", D("-0"), None, h(decimal_wire(0, b"\x00")), D("0")),
    ("decimal-zero-scale", D("0.000"), None, h(decimal_wire(3, b"\x00")), D("0.000")),
    ("decimal-keeps-scale", D("1.50"), None, h(decimal_wire(2, b"\x00\x96")), D("1.50")),
    ("decimal-negative", D("-1.50"), None, h(decimal_wire(2, b"\x80\x96")), D("-1.50")),
    ("decimal-127", D(127), None, h(decimal_wire(0, b"\x7f")), D(127)),
    ("decimal-128", D(128), None, h(decimal_wire(0, b"\x00\x80")), D(128)),
    ("decimal-minus-128", D(-128), None, h(decimal_wire(0, b"\x80\x80")), D(-128)),
    ("decimal-255", D(255), None, h(decimal_wire(0, b"\x00\xff")), D(255)),
    ("decimal-256", D(256), None, h(decimal_wire(0, b"\x01\x00")), D(256)),
    ("decimal-negative-scale", D("1E+10"), None, h(decimal_wire(-10, b"\x01")), D("1E+10")),
    ("decimal-tiny", D("1E-30"), None, h(decimal_wire(30, b"\x01")), D("1E-30")),
    ("decimal-max-scale", D("1E-2147483647"), None, h(decimal_wire(I32_MAX, b"\x01")),
     D("1E-2147483647")),
    ("decimal-min-scale", D("1E+2147483648"), None, h(decimal_wire(I32_MIN, b"\x01")),
     D("1E+2147483648")),
    ("decimal-long-min", D(I64_MIN), None, h(decimal_wire(0, java_magnitude(I64_MIN))),
     D(I64_MIN)),
    ("decimal-big", D("-123456789012345678901234567890.123456789"), None,
     h(decimal_wire(9, java_magnitude(-123456789012345678901234567890123456789))),
     D("-123456789012345678901234567890.123456789")),
    ("decimal-max-digits", D("9" * MAX_DECIMAL_DIGITS), None,
     h(decimal_wire(0, java_magnitude(10**MAX_DECIMAL_DIGITS - 1))), D("9" * MAX_DECIMAL_DIGITS)),
    ("decimal-from-int", 5, T.DECIMAL, h(decimal_wire(0, b"\x05")), D(5)),
    # Enum / BinaryEnum: i32 type id, i32 ordinal
    ("enum", EnumValue(5, 1), None, h(b"\x1c", i32(5), i32(1)), EnumValue(5, 1)),
    ("binary-enum", EnumValue(-5, 0, binary=True), None, h(b"\x26", i32(-5), i32(0)),
     EnumValue(-5, 0, binary=True)),
    ("enum-hint-wins", EnumValue(5, 1, binary=True), T.ENUM, h(b"\x1c", i32(5), i32(1)),
     EnumValue(5, 1)),
    ("enum-from-tuple", (5, 2), T.ENUM, h(b"\x1c", i32(5), i32(2)), EnumValue(5, 2)),
    # primitive arrays
    ("short-array", [-(2**15), 0, 2**15 - 1], T.SHORT_ARRAY,
     h(b"\x0d", i32(3), struct.pack("<3h", -(2**15), 0, 2**15 - 1)), [-(2**15), 0, 2**15 - 1]),
    ("int-array", [I32_MIN, -1, I32_MAX], T.INT_ARRAY,
     h(b"\x0e", i32(3), struct.pack("<3i", I32_MIN, -1, I32_MAX)), [I32_MIN, -1, I32_MAX]),
    ("long-array-auto", [I64_MIN, 0, I64_MAX], None,
     h(b"\x0f", i32(3), struct.pack("<3q", I64_MIN, 0, I64_MAX)), [I64_MIN, 0, I64_MAX]),
    ("long-array-from-tuple", (1, 2), None, h(b"\x0f", i32(2), struct.pack("<2q", 1, 2)), [1, 2]),
    ("float-array", [1.5, -0.0], T.FLOAT_ARRAY, h(b"\x10", i32(2), struct.pack("<2f", 1.5, -0.0)),
     [1.5, -0.0]),
    ("double-array-auto", [-2.25, 5e-324], None,
     h(b"\x11", i32(2), struct.pack("<2d", -2.25, 5e-324)), [-2.25, 5e-324]),
    ("char-array-from-str", "aЖ", T.CHAR_ARRAY, h(b"\x12", i32(2), struct.pack("<2H", 0x61, 0x416)),
     ["a", "Ж"]),
    ("char-array-astral-is-two-units", "😀", T.CHAR_ARRAY,
     h(b"\x12", i32(2), struct.pack("<2H", 0xD83D, 0xDE00)), ["\ud83d", "\ude00"]),
    ("char-array-from-list", ["a", 0x416], T.CHAR_ARRAY,
     h(b"\x12", i32(2), struct.pack("<2H", 0x61, 0x416)), ["a", "Ж"]),
    ("bool-array-auto", [True, False], None, h(b"\x13", i32(2), b"\x01\x00"), [True, False]),
    ("byte-array-from-ints", [-1, 255, 0], T.BYTE_ARRAY, h(b"\x0c", i32(3), b"\xff\xff\x00"),
     b"\xff\xff\x00"),
    ("empty-short-array", [], T.SHORT_ARRAY, h(b"\x0d", i32(0)), []),
    ("empty-int-array", [], T.INT_ARRAY, h(b"\x0e", i32(0)), []),
    ("empty-long-array", [], T.LONG_ARRAY, h(b"\x0f", i32(0)), []),
    ("empty-float-array", [], T.FLOAT_ARRAY, h(b"\x10", i32(0)), []),
    ("empty-double-array", [], T.DOUBLE_ARRAY, h(b"\x11", i32(0)), []),
    ("empty-char-array", [], T.CHAR_ARRAY, h(b"\x12", i32(0)), []),
    ("empty-bool-array", [], T.BOOL_ARRAY, h(b"\x13", i32(0)), []),
    # arrays of standard types: i32 count + full values or NULL
    ("string-array-auto", ["a", None, "ключ"], None,
     h(b"\x14", i32(3), string("a"), b"\x65", string("ключ")), ["a", None, "ключ"]),
    ("string-array-leading-none", [None, "a"], None, h(b"\x14", i32(2), b"\x65", string("a")),
     [None, "a"]),
    ("uuid-array-auto", [U1, None], None, h(b"\x15", i32(2), b"\x0a", uuid_payload(U1), b"\x65"),
     [U1, None]),
    ("date-array-auto", [Date(1), dt.date(1970, 1, 1)], None,
     h(b"\x16", i32(2), b"\x0b", i64(1), b"\x0b", i64(0)), [Date(1), Date(0)]),
    ("timestamp-array-auto", [Timestamp(1, 2), None], None,
     h(b"\x22", i32(2), b"\x21", i64(1), i32(2), b"\x65"), [Timestamp(1, 2), None]),
    ("time-array-auto", [dt.timedelta(milliseconds=5), Time(6)], None,
     h(b"\x25", i32(2), b"\x24", i64(5), b"\x24", i64(6)), [Time(5), Time(6)]),
    ("decimal-array-auto", [D("1.5"), None], None,
     h(b"\x1f", i32(2), decimal_wire(1, b"\x0f"), b"\x65"), [D("1.5"), None]),
    ("enum-array-auto", [EnumValue(5, 1), None, EnumValue(5, 0, binary=True)], None,
     h(b"\x1d", i32(5), i32(3), b"\x1c", i32(5), i32(1), b"\x65", b"\x26", i32(5), i32(0)),
     [EnumValue(5, 1), None, EnumValue(5, 0, binary=True)]),
    ("enum-array-explicit-type", ObjectArray(9, [EnumValue(5, 1)]), T.ENUM_ARRAY,
     h(b"\x1d", i32(9), i32(1), b"\x1c", i32(5), i32(1)), [EnumValue(5, 1)]),
    ("enum-array-mixed-types", [EnumValue(5, 1), EnumValue(6, 1)], None,
     h(b"\x1d", i32(-1), i32(2), b"\x1c", i32(5), i32(1), b"\x1c", i32(6), i32(1)),
     [EnumValue(5, 1), EnumValue(6, 1)]),
    ("empty-string-array", [], T.STRING_ARRAY, h(b"\x14", i32(0)), []),
    # Object[]: component type id + count + values
    ("object-array", ObjectArray(-1, [1, "a", None]), None,
     h(b"\x17", i32(-1), i32(3), b"\x04", i64(1), string("a"), b"\x65"),
     ObjectArray(-1, [1, "a", None])),
    ("object-array-from-list", [Typed(T.INT, 1), "a"], T.OBJECT_ARRAY,
     h(b"\x17", i32(-1), i32(2), b"\x03", i32(1), string("a")), ObjectArray(-1, [1, "a"])),
    ("object-array-component", ObjectArray(77, []), None, h(b"\x17", i32(77), i32(0)),
     ObjectArray(77, [])),
    # Collection: count, kind, values; Map: count, kind, key/value pairs
    ("collection-user-set", Collection(CollectionKind.USER_SET, ["a"]), None,
     h(b"\x18", i32(1), i8(-1), string("a")), Collection(-1, ["a"])),
    ("collection-user-col", Collection(CollectionKind.USER_COL, []), None,
     h(b"\x18", i32(0), i8(0)), Collection(0, [])),
    ("collection-arr-list", Collection(CollectionKind.ARR_LIST, [1, None]), None,
     h(b"\x18", i32(2), i8(1), b"\x04", i64(1), b"\x65"), Collection(1, [1, None])),
    ("collection-linked-list", Collection(CollectionKind.LINKED_LIST, [Typed(T.INT, 2)]), None,
     h(b"\x18", i32(1), i8(2), b"\x03", i32(2)), Collection(2, [2])),
    ("collection-hash-set", Collection(CollectionKind.HASH_SET, ["x"]), None,
     h(b"\x18", i32(1), i8(3), string("x")), Collection(3, ["x"])),
    ("collection-linked-hash-set", Collection(CollectionKind.LINKED_HASH_SET, ["y", "x"]), None,
     h(b"\x18", i32(2), i8(4), string("y"), string("x")), Collection(4, ["y", "x"])),
    ("collection-singleton", Collection(CollectionKind.SINGLETON_LIST, ["a"]), None,
     h(b"\x18", i32(1), i8(5), string("a")), Collection(5, ["a"])),
    ("collection-from-list-hint", [1, "a"], T.COLLECTION,
     h(b"\x18", i32(2), i8(1), b"\x04", i64(1), string("a")), Collection(1, [1, "a"])),
    ("collection-from-set-hint", {"a"}, T.COLLECTION, h(b"\x18", i32(1), i8(3), string("a")),
     Collection(3, ["a"])),
    ("map-hash", Map(MapKind.HASH_MAP, [("k", 1)]), None,
     h(b"\x19", i32(1), i8(1), string("k"), b"\x04", i64(1)), Map(1, [("k", 1)])),
    ("map-linked-keeps-order", Map(MapKind.LINKED_HASH_MAP, [("b", None), ("a", [1])]), None,
     h(b"\x19", i32(2), i8(2), string("b"), b"\x65", string("a"), b"\x0f", i32(1), i64(1)),
     Map(2, [("b", None), ("a", [1])])),
    ("map-from-dict-hint", {"k": "v"}, T.MAP, h(b"\x19", i32(1), i8(1), string("k"), string("v")),
     Map(1, [("k", "v")])),
    ("map-empty", Map(1, []), None, h(b"\x19", i32(0), i8(1)), Map(1, [])),
    ("nested", Collection(1, [Map(2, [(Collection(1, []), ObjectArray(-1, [U1]))])]), None,
     h(b"\x18", i32(1), i8(1), b"\x19", i32(1), i8(2), b"\x18", i32(0), i8(1), b"\x17", i32(-1),
       i32(1), b"\x0a", uuid_payload(U1)),
     Collection(1, [Map(2, [(Collection(1, []), ObjectArray(-1, [U1]))])])),
    # the optimized-marshaller blob a node answers for a singleton list
    ("optimized-blob", Typed(T.OPTIMIZED_MARSHALLER, b"\x01\x02"), None,
     h(b"\xfe", i32(2), b"\x01\x02"), Typed(T.OPTIMIZED_MARSHALLER, b"\x01\x02")),
    ("typed-null", Typed(T.INT, None), None, "65", None),
]

CTX = CodecContext(Registry())


@pytest.mark.parametrize(
    ("value", "hint", "wire", "decoded"),
    [pytest.param(*case[1:], id=case[0]) for case in ROUND_TRIPS],
)
def test_round_trip(value: object, hint: int | None, wire: str, decoded: object) -> None:
    data = encode_value(value, hint)
    assert data.hex() == wire
    assert deep_same(decode_value(data), decoded)
    assert deep_same(decode_value(memoryview(data), ctx=CTX), decoded)
    assert deep_same(decode_value(bytearray(data)), decoded)


@pytest.mark.parametrize("wire", [pytest.param(c[3], id=c[0]) for c in ROUND_TRIPS])
def test_every_truncation_is_a_remote_error(wire: str) -> None:
    data = bytes.fromhex(wire)
    for cut in range(len(data)):
        with pytest.raises(RemoteProtocolError):
            decode_value(data[:cut], ctx=CTX)
        with pytest.raises(RemoteProtocolError):
            read_value(memoryview(data)[:cut], 0)


@pytest.mark.parametrize("wire", [pytest.param(c[3], id=c[0]) for c in ROUND_TRIPS])
def test_trailing_bytes(wire: str) -> None:
    data = bytes.fromhex(wire)
    with pytest.raises(RemoteProtocolError, match="trailing"):
        decode_value(data + b"\x65")
    value, end = read_value(b"junk" + data + b"\x01\x02", 4, ctx=CTX)
    assert end == 4 + len(data)
    assert deep_same(value, decode_value(data))


# -- decode-only forms --------------------------------------------------------------------------

DECODE_ONLY: list[tuple[str, str, object]] = [
    ("bool-array-nonzero-is-true", h(b"\x13", i32(2), b"\x02\xff"), [True, True]),
    ("enum-unregistered", h(b"\x1c", i32(0), string("a.B"), i32(1)), EnumValue(type_id("a.B"), 1)),
    ("enum-array-unregistered", h(b"\x1d", i32(0), string("a.B"), i32(1), b"\x26", i32(3), i32(0)),
     [EnumValue(3, 0, binary=True)]),
    ("object-array-unregistered", h(b"\x17", i32(0), string("a.B"), i32(1), b"\x65"),
     ObjectArray(type_id("a.B"), [None])),
    ("decimal-non-minimal-magnitude", h(decimal_wire(0, b"\x00\x00\x05")), D(5)),
    ("decimal-sign-bit-on-zero", h(decimal_wire(2, b"\x80")), D("0.00")),
    ("collection-handle", h(b"\x18", i32(2), i8(1), b"\x18", i32(0), i8(1), b"\x66", i32(6)),
     Collection(1, [Collection(1, []), Collection(1, [])])),
    ("map-handle-to-key", h(b"\x19", i32(1), i8(1), string("k"), b"\x66", i32(6)),
     Map(1, [("k", "k")])),
    ("handle-to-handle", h(b"\x17", i32(-1), i32(3), string("s"), b"\x66", i32(6), b"\x66", i32(5)),
     ObjectArray(-1, ["s", "s", "s"])),
    ("timestamp-nanos-not-checked", h(b"\x21", i64(0), i32(5_000_000)), Timestamp(0, 5_000_000)),
]


@pytest.mark.parametrize(("wire", "expected"),
                         [pytest.param(c[1], c[2], id=c[0]) for c in DECODE_ONLY])
def test_decode_only(wire: str, expected: object) -> None:
    data = bytes.fromhex(wire)
    assert deep_same(decode_value(data, ctx=CTX), expected)
    for cut in range(len(data)):
        with pytest.raises(RemoteProtocolError):
            decode_value(data[:cut], ctx=CTX)


def test_a_handle_is_decoded_once_and_shared() -> None:
    data = bytes.fromhex(h(b"\x17", i32(-1), i32(3), b"\x18", i32(0), i8(1), b"\x66", i32(6),
                           b"\x66", i32(11)))
    value = decode_value(data)
    assert isinstance(value, ObjectArray)
    assert value.items[1] is value.items[2]  # both handles resolve to one decoded value


INVALID: list[tuple[str, str]] = [
    ("decimal-empty-magnitude", h(decimal_wire(0, b""))),
    ("decimal-negative-length", h(b"\x1e", i32(0), i32(-1))),
    ("string-array-bad-element", h(b"\x14", i32(1), b"\x03", i32(1))),
    ("uuid-array-bad-element", h(b"\x15", i32(1), string("x"))),
    ("decimal-array-bad-element", h(b"\x1f", i32(1), b"\x04", i64(1))),
    ("enum-array-bad-element", h(b"\x1d", i32(1), i32(1), b"\x03", i32(1))),
    ("enum-unregistered-no-name", h(b"\x1c", i32(0), b"\x03", i32(1), i32(1))),
    ("object-array-negative-count", h(b"\x17", i32(-1), i32(-1))),
    ("object-array-huge-count", h(b"\x17", i32(-1), i32(I32_MAX), b"\x65")),
    ("int-array-huge-count", h(b"\x0e", i32(I32_MAX // 2), i32(1))),
    ("int-array-negative-count", h(b"\x0e", i32(-4))),
    ("collection-huge-count", h(b"\x18", i32(1000), i8(1), b"\x65")),
    ("map-huge-count", h(b"\x19", i32(1), i8(1), b"\x65")),
    ("handle-zero-offset", h(b"\x18", i32(1), i8(1), b"\x66", i32(0))),
    ("handle-forward", h(b"\x18", i32(2), i8(1), b"\x66", i32(-5), b"\x65")),
    ("handle-before-the-value", h(b"\x18", i32(1), i8(1), b"\x66", i32(7))),
    ("handle-top-level", h(b"\x66", i32(1))),
    ("handle-cycle", h(b"\x18", i32(1), i8(1), b"\x66", i32(6))),
    ("handle-inside-target-cycle", h(b"\x17", i32(-1), i32(1), b"\x18", i32(1), i8(1), b"\x66",
                                    i32(15))),
    ("wrapped-root-outside", h(b"\x1b", i32(1), b"\x65", i32(1))),
    ("wrapped-root-negative", h(b"\x1b", i32(1), b"\x65", i32(-1))),
    ("wrapped-negative-length", h(b"\x1b", i32(-1), i32(0))),
    ("wrapped-inner-truncated", h(b"\x1b", i32(2), b"\x03\x01", i32(0))),
    ("optimized-negative-length", h(b"\xfe", i32(-1))),
    ("class-java-only", h(b"\x20", i32(0))),
    ("proxy-java-only", h(b"\x23", i32(0))),
]


@pytest.mark.parametrize("wire", [pytest.param(c[1], id=c[0]) for c in INVALID])
def test_invalid_wire_values(wire: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_value(bytes.fromhex(wire), ctx=CTX)


def test_handle_chains_are_bounded() -> None:
    # A string whose payload is a chain of fake handles, each 5 bytes back, and a last
    # handle into its end: resolving it would recurse once per link.
    chain = b"\x65" + b"".join(b"\x66" + i32(5 if i else 1) for i in range(5000))
    head = b"\x17" + i32(-1) + i32(2) + b"\x09" + i32(len(chain)) + chain
    data = head + b"\x66" + i32(5)  # back to the last fake handle
    with pytest.raises(RemoteProtocolError, match="nested deeper"):
        decode_value(data)


def test_nesting_is_bounded() -> None:
    deep = b"".join(b"\x18" + i32(1) + i8(1) for _ in range(10_000)) + b"\x65"
    with pytest.raises(RemoteProtocolError, match="nested deeper"):
        decode_value(deep)
    ok = b"".join(b"\x18" + i32(1) + i8(1) for _ in range(10)) + b"\x65"
    decode_value(ok, ctx=CodecContext(Registry(), max_depth=10))
    with pytest.raises(RemoteProtocolError, match="nested deeper"):
        decode_value(ok, ctx=CodecContext(Registry(), max_depth=9))


# -- unencodable values ------------------------------------------------------------------------


class Colour(enum.IntEnum):
    RED = 3


selfish = Collection(1, [])
selfish.items.append(selfish)

UNENCODABLE: list[tuple[str, object, int | None]] = [
    ("uuid-from-str", str(U1), T.UUID),
    ("date-from-str", "2020-01-01", T.DATE),
    ("date-from-bool", True, T.DATE),
    ("date-from-timestamp", Timestamp(1, 1), T.DATE),
    ("date-overflow", 2**63, T.DATE),
    ("timestamp-nanos-too-big", Timestamp(0, 1_000_000), None),
    ("timestamp-nanos-negative", Timestamp(0, -1), None),
    ("time-from-str", "12:00", T.TIME),
    ("decimal-nan", D("NaN"), None),
    ("decimal-infinity", D("-Infinity"), None),
    ("decimal-from-float", 1.5, T.DECIMAL),
    ("decimal-scale-overflow", D("1E-2147483648"), None),
    ("enum-type-id-zero", EnumValue(0, 1), None),
    ("enum-from-int", 3, T.ENUM),
    ("empty-list", [], None),
    ("all-none-list", [None, None], None),
    ("mixed-list", [1, "a"], None),
    ("int-and-bool-list", [1, True], None),
    ("long-array-with-none", [1, None], None),
    ("list-of-bytes", [b"a"], None),
    ("list-of-lists", [[1]], None),
    ("dict", {"a": 1}, None),
    ("set", {1}, None),
    ("short-array-overflow", [40_000], T.SHORT_ARRAY),
    ("int-array-of-str", ["1"], T.INT_ARRAY),
    ("int-array-from-str", "12", T.INT_ARRAY),
    ("bool-array-of-str", ["x"], T.BOOL_ARRAY),
    ("char-array-two-chars", ["ab"], T.CHAR_ARRAY),
    ("char-array-bool", [True], T.CHAR_ARRAY),
    ("byte-array-out-of-range", [256], T.BYTE_ARRAY),
    ("string-array-of-int", [1], T.STRING_ARRAY),
    ("object-array-type-id-zero", ObjectArray(0, []), None),
    ("enum-array-type-id-zero", ObjectArray(0, [EnumValue(1, 1)]), T.ENUM_ARRAY),
    ("collection-kind-overflow", Collection(200, []), None),
    ("collection-from-int", 5, T.COLLECTION),
    ("map-from-list", [1], T.MAP),
    ("map-items-not-pairs", Map(1, [(1, 2, 3)]), None),  # type: ignore[list-item]
    ("self-containing-collection", selfish, None),
    ("element-without-type", Collection(1, [object()]), None),
    ("wrapped-is-never-written", 5, T.WRAPPED_BINARY),
    ("handle-is-never-written", 5, T.HANDLE),
    ("optimized-from-str", Typed(T.OPTIMIZED_MARSHALLER, "x"), None),
    ("unknown-typed-code", Typed(77, 1), None),
]


@pytest.mark.parametrize(("value", "hint"),
                         [pytest.param(c[1], c[2], id=c[0]) for c in UNENCODABLE])
def test_unencodable_values(value: object, hint: int | None) -> None:
    buf = bytearray(b"keep")
    with pytest.raises(LocalProtocolError):
        write_value(buf, value, hint, ctx=CTX)
    assert buf == b"keep"  # a failed write leaves the buffer alone, nested ones too


def test_int_subclass_lists_map_to_long_arrays() -> None:
    assert encode_value([Colour.RED]) == encode_value([3])


def test_conversions_back_to_python() -> None:
    assert as_datetime(Date(1577836800123)) == dt.datetime(2020, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    assert as_datetime(Timestamp(1577836800123, 456_789)) == dt.datetime(
        2020, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert as_timedelta(Time(3_600_001)) == dt.timedelta(hours=1, milliseconds=1)


# -- property tests -----------------------------------------------------------------------------

REGISTRY_CTX = CodecContext(Registry())


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_value(data, ctx=REGISTRY_CTX)
    with contextlib.suppress(ProtocolError):
        decode_value(data)


# Type-code-led inputs: a plausible head, then junk; reaches the container readers far more
# often than uniformly random bytes.
CODES = [c.value & 0xFF for c in T] + [0x66, 0x1B]


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=500)
@given(st.lists(st.tuples(st.sampled_from(CODES), st.integers(-3, 40)), max_size=12),
       st.binary(max_size=40))
def test_structured_junk_decodes_or_protocol_error(heads: list[tuple[int, int]],
                                                    tail: bytes) -> None:
    data = b"".join(bytes([c]) + struct.pack("<ib", n, n % 6 - 1) for c, n in heads) + tail
    for pos in (0, 1, 5):
        with contextlib.suppress(ProtocolError):
            read_value(data, pos, ctx=REGISTRY_CTX)


def scalar_tjs() -> st.SearchStrategy[dict]:
    ints = lambda lo, hi: st.integers(lo, hi)  # noqa: E731
    finite = st.floats(allow_nan=False)
    text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
    return st.one_of(
        st.just(tj(T.NULL)),
        ints(-128, 127).map(lambda v: tj(T.BYTE, v)),
        ints(-(2**15), 2**15 - 1).map(lambda v: tj(T.SHORT, v)),
        ints(I32_MIN, I32_MAX).map(lambda v: tj(T.INT, v)),
        ints(I64_MIN, I64_MAX).map(lambda v: tj(T.LONG, v)),
        finite.map(lambda v: tj(T.DOUBLE, v)),
        st.booleans().map(lambda v: tj(T.BOOL, v)),
        text.map(lambda v: tj(T.STRING, v)),
        st.uuids().map(lambda v: tj(T.UUID, str(v))),
        ints(I64_MIN, I64_MAX).map(lambda v: tj(T.DATE, v)),
        st.tuples(ints(I64_MIN, I64_MAX), ints(0, 999_999)).map(
            lambda v: tj(T.TIMESTAMP, list(v))),
        ints(I64_MIN, I64_MAX).map(lambda v: tj(T.TIME, v)),
        st.decimals(allow_nan=False, allow_infinity=False).map(
            lambda v: tj(T.DECIMAL, str(v if v != 0 else abs(v)))),
        st.tuples(ints(I32_MIN, I32_MAX).filter(bool), ints(I32_MIN, I32_MAX), st.booleans()).map(
            lambda v: tj(T.BINARY_ENUM if v[2] else T.ENUM, [v[0], v[1]])),
        st.lists(ints(I32_MIN, I32_MAX), max_size=5).map(lambda v: tj(T.INT_ARRAY, v)),
        st.lists(text.map(lambda v: tj(T.STRING, v)), max_size=4).map(
            lambda v: tj(T.STRING_ARRAY, v)),
        st.binary(max_size=8).map(lambda v: tj(T.BYTE_ARRAY, v.hex())),
    )


def nested_tjs() -> st.SearchStrategy[dict]:
    return st.recursive(
        scalar_tjs(),
        lambda inner: st.one_of(
            st.tuples(st.integers(-1, 4), st.lists(inner, max_size=4)).map(
                lambda v: tj(T.COLLECTION, v[1], kind=v[0])),
            st.tuples(st.sampled_from([1, 2]), st.lists(st.tuples(inner, inner), max_size=3)).map(
                lambda v: tj(T.MAP, [list(p) for p in v[1]], kind=v[0])),
            st.tuples(st.integers(-5, 5).filter(bool), st.lists(inner, max_size=4)).map(
                lambda v: tj(T.OBJECT_ARRAY, v[1], type_id=v[0])),
        ),
        max_leaves=20,
    )


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(nested_tjs())
def test_generated_values_round_trip(value: dict) -> None:
    data = encode_value(tj_to_typed(value))
    assert deep_same(decode_value(data, ctx=CTX), tj_to_python(value))
    for cut in sorted({0, len(data) // 3, len(data) // 2, len(data) - 1}):
        with pytest.raises(RemoteProtocolError):
            decode_value(data[:cut], ctx=CTX)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(nested_tjs(), st.data())
def test_mutated_encodings_decode_or_protocol_error(value: dict, data: st.DataObject) -> None:
    raw = bytearray(encode_value(tj_to_typed(value)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ProtocolError):
        decode_value(bytes(raw), ctx=CTX)


# -- vectors captured from a real node ---------------------------------------------------------

GROUPS = {"standard", "collections"}


def _vector_cases() -> list[object]:
    out = []
    for filename, doc in load_type_vector_files():
        for case in doc["cases"]:
            if case["group"] in GROUPS:
                out.append(pytest.param(doc, case, id=f"{filename}:{case['name']}"))
    return out


@pytest.mark.parametrize(("doc", "case"), _vector_cases())
def test_captured_vector(doc: dict, case: dict) -> None:
    data = bytes.fromhex(case["hex"])
    ctx = context_for(doc)
    assert deep_same(decode_value(data, ctx=ctx), tj_to_python(case["value"]))
    if case["encode"]:
        source = case.get("encode_value", case["value"])
        assert encode_value(tj_to_typed(source), ctx=ctx) == data
    for cut in range(len(data)):
        with pytest.raises(RemoteProtocolError):
            decode_value(data[:cut], ctx=ctx)
    with pytest.raises(RemoteProtocolError, match="trailing"):
        decode_value(data + b"\x00", ctx=ctx)


def test_vectors_cover_every_standard_type() -> None:
    seen = set()
    for _, doc in load_type_vector_files():
        for case in doc["cases"]:
            seen.add(case["hex"][:2])
    wanted = {T.UUID, T.DATE, T.TIMESTAMP, T.TIME, T.DECIMAL, T.BINARY_ENUM, T.SHORT_ARRAY,
              T.INT_ARRAY, T.LONG_ARRAY, T.FLOAT_ARRAY, T.DOUBLE_ARRAY, T.CHAR_ARRAY,
              T.BOOL_ARRAY, T.STRING_ARRAY, T.UUID_ARRAY, T.DATE_ARRAY, T.TIMESTAMP_ARRAY,
              T.TIME_ARRAY, T.DECIMAL_ARRAY, T.OBJECT_ARRAY, T.COLLECTION, T.MAP,
              T.WRAPPED_BINARY, T.OPTIMIZED_MARSHALLER}
    assert {f"{c.value & 0xFF:02x}" for c in wanted} <= seen


def test_a_string_a_node_wrote_with_surrogates_one_by_one_reads_back():
    """Ignite's own UTF-8 writer encodes a Java string's surrogates one by one: a lone one
    (e.g. in a cache name made from SQL's U&"\\DC80") as 3 bytes no strict decoder takes, a
    pair CESU-8 style. Both read (a pair as its character); a CI fuzz run's cache_names
    answer was INTERNAL "cannot decode the node's answer" before."""
    from protocol.ipc import pack_reply, unpack_reply

    def string(data: bytes) -> bytes:
        return b"\x09" + len(data).to_bytes(4, "little") + data

    assert decode_value(string(b"SQL_PUBLIC_\xed\xb2\x80")) == "SQL_PUBLIC_\udc80"
    assert decode_value(string(b"\xed\xa0\xbd\xed\xb8\x80")) == "\U0001F600"
    with pytest.raises(ProtocolError):
        decode_value(string(b"\xff"))
    reply = unpack_reply(pack_reply(1, 0, ["SQL_PUBLIC_\udc80"]))
    assert reply.payload == ["SQL_PUBLIC_\udc80"]  # and a worker gets it as stored
