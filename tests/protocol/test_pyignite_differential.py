"""Differential tests against pyignite 0.6.1, an independent encoder of the same format.

For generated values of every type pyignite writes (automatic mapping, explicit type
classes, and GenericObjectMeta complex objects with compact and full footers) our bytes
must equal pyignite's, header hash code and schema id included. Where pyignite is wrong,
or merely differs, the difference is pinned by a test below and listed here with the
reason we follow the server instead:

D1  Decimal('1.50'), Decimal('100')
    pyignite: normalize()s them (scale 1; scale -2).
    ours: keeps the exponent, as BigDecimal("1.50") does. The node's equals/hashCode depend
    on the scale, and a DECIMAL(20,4) column answers with scale 4 (vectors decimal-scale-2,
    sql-value-*).
D2  Decimal('-0')
    pyignite: sets the sign bit on a zero magnitude.
    ours: no sign; Java has no negative zero and the node answers 0 (decimal-negative-zero).
D3  datetime / timedelta
    pyignite: int(ts * 1000) in floating point: off by one ms far from 1970, rounds toward
    zero before it, and reads naive datetimes in the local time zone.
    ours: exact integers, floored like Java's Instant.toEpochMilli; naive means UTC (a
    sans-IO codec has no clock or time zone).
D4  last field offset exactly 255
    pyignite: two-byte offsets (it tests < 255).
    ours: one-byte, as Java's BinaryWriterSchemaHolder (lastOffset < 256; vectors
    offset-255-*). The hash code agrees; the footer does not.
D5  object with no fields
    pyignite: HAS_SCHEMA + one-byte offsets, schema offset 24 (and 0.6.1 fails with a
    BufferError when it writes one into a bare stream).
    ours: no schema flag, schema offset 0, as Java's postWrite (vectors empty-*); same hash.
D6  non-ASCII type and field names
    pyignite: str.lower() of the whole name ('İ' becomes 'i̇', final sigma), then hashes
    code points (an astral character counts once).
    ours: Java's BinaryBasicIdMapper, each UTF-16 unit lower-cased on its own and units
    hashed; otherwise our ids differ from the node's and Java clients and SQL cannot read
    the fields.
D7  'a\x00b'
    pyignite: writes 'a\x00\x00' (its ctypes char array stops at the NUL).
    ours: the string as given.
D8  [1, True]
    pyignite: long[] [1, 1].  ours: refused; a Java boolean is not a long.
D9  {'k': 1}
    pyignite: an array of the keys, the values silently lost.
    ours: refused; say Map(...) or hint MAP.
D10 Timestamp nanos
    pyignite: any i32 "fraction" passes.
    ours: 0..999999 nanoseconds within the millisecond, Java's getNanos() % 1000000.

(Other pyignite bugs listed in the protocol notes — the Long key hash not truncated to
32 bits, code-point String hashes outside the BMP, byte-counting handshake lengths —
are outside the value codec and are covered by the hashing/affinity/handshake tests.)
"""

from __future__ import annotations

import datetime as dt
import decimal
import keyword
import struct
import uuid
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("pyignite")

from pyignite import GenericObjectMeta
from pyignite.client import Client
from pyignite.datatypes import (
    AnyDataObject,
    BinaryEnumObject,
    BoolArrayObject,
    BoolObject,
    ByteArrayObject,
    ByteObject,
    CharArrayObject,
    CharObject,
    CollectionObject,
    DateObject,
    DecimalArrayObject,
    DecimalObject,
    DoubleArrayObject,
    DoubleObject,
    EnumObject,
    FloatArrayObject,
    FloatObject,
    IntArrayObject,
    IntObject,
    LongArrayObject,
    LongObject,
    MapObject,
    ObjectArrayObject,
    ShortArrayObject,
    ShortObject,
    String,
    StringArrayObject,
    TimeObject,
    TimestampObject,
    UUIDArrayObject,
    UUIDObject,
)
from pyignite.datatypes import BinaryObject as TheirBinaryObject
from pyignite.stream import BinaryStream

from protocol.binary import TypeCode, encode_value
from protocol.binary.registry import CodecContext, Registry
from protocol.binary.values import (
    BinaryObject,
    Collection,
    CollectionKind,
    EnumValue,
    Map,
    ObjectArray,
    Time,
    Timestamp,
    Typed,
)
from protocol.errors import LocalProtocolError
from protocol.hashing import field_id, type_id

T = TypeCode
D = decimal.Decimal
UTC = dt.UTC
I64 = (-(2**63), 2**63 - 1)
I32 = (-(2**31), 2**31 - 1)

CLIENTS = {True: Client(compact_footer=True), False: Client(compact_footer=False)}


def theirs(data_type: Any, value: object, compact: bool = True) -> bytes:
    with BinaryStream(CLIENTS[compact]) as stream:
        data_type.from_python(stream, value)
        return bytes(stream.getvalue())


def their_object(obj: object, compact: bool) -> bytes:
    """pyignite's bytes for a GenericObjectMeta instance, without a server: nested objects
    are serialised first (save_to_buf), so pyignite copies them instead of registering
    their type over the network."""
    for name in type(obj).schema:  # type: ignore[attr-defined]
        nested = getattr(obj, name)
        if hasattr(type(nested), "schema_id"):
            with BinaryStream(CLIENTS[compact]) as stream:
                nested._from_python(stream, save_to_buf=True)
    with BinaryStream(CLIENTS[compact]) as stream:
        obj._from_python(stream)  # type: ignore[attr-defined]
        return bytes(stream.getvalue())


# -- generators: (pyignite value, our value) pairs -------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=20)
seconds = st.integers(-(2**34), 2**34)  # whole seconds: pyignite's float maths is exact
aware = seconds.map(lambda s: dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=s))
small_ms = st.integers(-(10**8), 10**8).map(lambda s: s * 1000)  # whole seconds, as ms
normalized = st.decimals(allow_nan=False, allow_infinity=False).filter(
    lambda d: d != 0 and d == d.normalize() and d.as_tuple() == d.normalize().as_tuple())


def _ms(value: dt.datetime) -> int:
    return (value - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(milliseconds=1)


AUTO_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(*I64), st.floats(), text, st.binary(max_size=20),
    st.uuids(), normalized, aware, small_ms.map(lambda ms: dt.timedelta(milliseconds=ms)),
    st.lists(st.integers(*I64), min_size=1, max_size=8),
    st.lists(st.floats(allow_nan=False), min_size=1, max_size=8),
    st.lists(st.booleans(), min_size=1, max_size=8),
    st.lists(st.one_of(st.none(), text), max_size=8).filter(
        lambda v: any(x is not None for x in v)),
    st.lists(st.uuids(), min_size=1, max_size=4),
    st.lists(normalized, min_size=1, max_size=4),
    st.lists(aware, min_size=1, max_size=4),
)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=500)
@given(AUTO_VALUES)
def test_automatic_mapping_matches(value: object) -> None:
    assert encode_value(value) == theirs(AnyDataObject, value)


def _pairs(data_type: Any, code: TypeCode, strategy: st.SearchStrategy[Any],
           ours: Any = None) -> st.SearchStrategy[tuple[Any, Any, object]]:
    convert = ours or (lambda v: v)
    return strategy.map(lambda v: (data_type, v, Typed(code, convert(v))))


TYPED = st.one_of(
    _pairs(ByteObject, T.BYTE, st.integers(-128, 127)),
    _pairs(ShortObject, T.SHORT, st.integers(-(2**15), 2**15 - 1)),
    _pairs(IntObject, T.INT, st.integers(*I32)),
    _pairs(LongObject, T.LONG, st.integers(*I64)),
    _pairs(FloatObject, T.FLOAT, st.floats(width=32)),
    _pairs(DoubleObject, T.DOUBLE, st.floats()),
    _pairs(CharObject, T.CHAR, st.characters(max_codepoint=0xFFFF, blacklist_categories=("Cs",))),
    _pairs(BoolObject, T.BOOL, st.booleans()),
    _pairs(String, T.STRING, text),
    _pairs(UUIDObject, T.UUID, st.uuids()),
    _pairs(DecimalObject, T.DECIMAL, normalized),
    _pairs(DateObject, T.DATE, aware),
    _pairs(TimeObject, T.TIME, small_ms.map(lambda ms: dt.timedelta(milliseconds=ms))),
    _pairs(TimestampObject, T.TIMESTAMP, st.tuples(aware, st.integers(0, 999_999)),
           lambda v: Timestamp(_ms(v[0]), v[1])),
    _pairs(EnumObject, T.ENUM, st.tuples(st.integers(*I32).filter(bool), st.integers(*I32)),
           lambda v: EnumValue(*v)),
    _pairs(BinaryEnumObject, T.BINARY_ENUM,
           st.tuples(st.integers(*I32).filter(bool), st.integers(*I32)),
           lambda v: EnumValue(*v, binary=True)),
    _pairs(ByteArrayObject, T.BYTE_ARRAY, st.binary(max_size=30)),
    _pairs(ShortArrayObject, T.SHORT_ARRAY, st.lists(st.integers(-(2**15), 2**15 - 1))),
    _pairs(IntArrayObject, T.INT_ARRAY, st.lists(st.integers(*I32))),
    _pairs(LongArrayObject, T.LONG_ARRAY, st.lists(st.integers(*I64))),
    _pairs(FloatArrayObject, T.FLOAT_ARRAY, st.lists(st.floats(width=32))),
    _pairs(DoubleArrayObject, T.DOUBLE_ARRAY, st.lists(st.floats())),
    _pairs(CharArrayObject, T.CHAR_ARRAY,
           st.lists(st.characters(max_codepoint=0xFFFF, blacklist_categories=("Cs",)))),
    _pairs(BoolArrayObject, T.BOOL_ARRAY, st.lists(st.booleans())),
    _pairs(StringArrayObject, T.STRING_ARRAY, st.lists(st.one_of(st.none(), text))),
    _pairs(UUIDArrayObject, T.UUID_ARRAY, st.lists(st.one_of(st.none(), st.uuids()))),
    _pairs(DecimalArrayObject, T.DECIMAL_ARRAY, st.lists(st.one_of(st.none(), normalized))),
    # A SINGLETON_LIST (kind 5) of two or more items: pyignite encodes it, a node fails to
    # parse it and closes the connection, so our encoder refuses it (a documented difference).
    _pairs(CollectionObject, T.COLLECTION,
           st.tuples(st.integers(-1, 5), st.lists(st.one_of(st.integers(*I64), text),
                                                  max_size=5)
                     ).filter(lambda v: v[0] != CollectionKind.SINGLETON_LIST or len(v[1]) <= 1),
           lambda v: Collection(*v)),
    _pairs(MapObject, T.MAP, st.tuples(st.sampled_from([1, 2]),
                                       st.dictionaries(text, st.integers(*I64), max_size=4)),
           lambda v: Map(v[0], list(v[1].items()))),
    _pairs(ObjectArrayObject, T.OBJECT_ARRAY,
           st.tuples(st.integers(*I32).filter(bool),
                     st.lists(st.one_of(st.none(), st.integers(*I64), text), max_size=5)),
           lambda v: ObjectArray(*v)),
)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=1000)
@given(TYPED)
def test_typed_values_match(case: tuple[Any, Any, object]) -> None:
    data_type, their_value, our_value = case
    assert encode_value(our_value) == theirs(data_type, their_value)


# -- complex objects (GenericObjectMeta) ------------------------------------------------------

# pyignite field type -> (our type code, strategy of (pyignite value, our value))
FIELD_KINDS: dict[str, tuple[Any, TypeCode, st.SearchStrategy[tuple[Any, Any]]]] = {
    "int": (IntObject, T.INT, st.integers(*I32).map(lambda v: (v, v))),
    "long": (LongObject, T.LONG, st.integers(*I64).map(lambda v: (v, v))),
    "short": (ShortObject, T.SHORT, st.integers(-(2**15), 2**15 - 1).map(lambda v: (v, v))),
    "byte": (ByteObject, T.BYTE, st.integers(-128, 127).map(lambda v: (v, v))),
    "bool": (BoolObject, T.BOOL, st.booleans().map(lambda v: (v, v))),
    "double": (DoubleObject, T.DOUBLE, st.floats(allow_nan=False).map(lambda v: (v, v))),
    "float": (FloatObject, T.FLOAT, st.floats(width=32, allow_nan=False).map(lambda v: (v, v))),
    "string": (String, T.STRING, st.one_of(st.none(), text, text.map(lambda s: s * 20)).map(
        lambda v: (v, v))),
    "uuid": (UUIDObject, T.UUID, st.uuids().map(lambda v: (v, v))),
    "decimal": (DecimalObject, T.DECIMAL, normalized.map(lambda v: (v, v))),
    "date": (DateObject, T.DATE, aware.map(lambda v: (v, v))),
    "time": (TimeObject, T.TIME, small_ms.map(lambda ms: (dt.timedelta(milliseconds=ms),
                                                          Time(ms)))),
    "bytes": (ByteArrayObject, T.BYTE_ARRAY, st.binary(max_size=300).map(lambda v: (v, v))),
    "ints": (IntArrayObject, T.INT_ARRAY, st.lists(st.integers(*I32), max_size=80).map(
        lambda v: (v, v))),
    "strings": (StringArrayObject, T.STRING_ARRAY, st.lists(text, max_size=4).map(
        lambda v: (v, v))),
    "collection": (CollectionObject, T.COLLECTION, st.lists(st.integers(*I64), max_size=4).map(
        lambda v: ((1, v), Collection(1, v)))),
    "map": (MapObject, T.MAP, st.dictionaries(text, text, max_size=3).map(
        lambda v: ((1, v), Map(1, list(v.items()))))),
}

POINT_SCHEMA = OrderedDict([("x", IntObject), ("y", IntObject)])


def _class(type_name: str, schema: OrderedDict) -> Any:
    return GenericObjectMeta("Generated", (), {}, type_name=type_name, schema=schema)


POINT_CLASS = _class("diff.Point", POINT_SCHEMA)
# pyignite makes each field an attrs attribute: Python keywords and `self` cannot be one.
NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,7}", fullmatch=True).filter(
    lambda n: n.lower() != "version" and not keyword.iskeyword(n) and n != "self")


@st.composite
def generic_objects(draw: st.DrawFn) -> tuple[Any, BinaryObject]:
    names = draw(st.lists(NAMES, min_size=1, max_size=12, unique_by=str.lower))
    schema: OrderedDict = OrderedDict()
    their_values: dict[str, Any] = {}
    our_fields: dict[str, object] = {}
    for name in names:
        if draw(st.integers(0, 9)) == 0:  # a nested object
            x, y = draw(st.integers(*I32)), draw(st.integers(*I32))
            schema[name] = TheirBinaryObject
            their_values[name] = POINT_CLASS(x=x, y=y)
            our_fields[name] = BinaryObject(type_id("diff.Point"),
                                            {"x": Typed(T.INT, x), "y": Typed(T.INT, y)},
                                            "diff.Point")
            continue
        kind = draw(st.sampled_from(sorted(FIELD_KINDS)))
        data_type, code, values = FIELD_KINDS[kind]
        their, our = draw(values)
        schema[name] = data_type
        their_values[name] = their
        our_fields[name] = Typed(code, our)
    type_name = "diff." + draw(NAMES)
    their_obj = _class(type_name, schema)(**their_values)
    return their_obj, BinaryObject(type_id(type_name), our_fields, type_name)


def _last_offset(data: bytes) -> int | None:
    flags, = struct.unpack_from("<h", data, 2)
    if not flags & 0x02:
        return None
    length, _, schema_off = struct.unpack_from("<iii", data, 12)
    width = 1 if flags & 0x08 else 2 if flags & 0x10 else 4
    compact = flags & 0x20
    entry = width if compact else width + 4
    last = schema_off + (length - schema_off) - entry + (0 if compact else 4)
    fmt = {1: "<B", 2: "<H", 4: "<I"}[width]
    return struct.unpack_from(fmt, data, last)[0]  # type: ignore[no-any-return]


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300, deadline=None)
@given(generic_objects(), st.booleans())
def test_complex_objects_match(pair: tuple[Any, BinaryObject], compact: bool) -> None:
    their_obj, our_obj = pair
    ctx = CodecContext(Registry(), compact_footer=compact)
    ours = encode_value(our_obj, ctx=ctx)
    their = their_object(their_obj, compact)
    if _last_offset(ours) == 255:  # D4: pyignite switches to two-byte offsets one early
        assert their[2] & 0x10 and ours[2] & 0x08
        assert their[8:12] == ours[8:12]  # the hash code still agrees
        return
    assert ours == their  # header (hash code, schema id, flags), fields and footer
    assert struct.unpack_from("<i", ours, 16)[0] == type(their_obj).schema_id


def test_offset_widths_match() -> None:
    schema = OrderedDict([("text", String), ("after", IntObject)])
    cls = _class("diff.Wide", schema)
    for size, flag in ((10, 0x08), (300, 0x10), (70_000, 0x00)):
        for compact in (True, False):
            their = their_object(cls(text="x" * size, after=1), compact)
            ours = encode_value(BinaryObject(type_id("diff.Wide"),
                                             {"text": "x" * size, "after": Typed(T.INT, 1)},
                                             "diff.Wide"),
                                ctx=CodecContext(Registry(), compact_footer=compact))
            assert ours == their and ours[2] & 0x18 == flag


# -- the differences, pinned --------------------------------------------------------------------


def test_d1_decimal_scale() -> None:
    assert theirs(DecimalObject, D("1.50")) == encode_value(D("1.5"))
    assert encode_value(D("1.50")) == bytes.fromhex("1e" "02000000" "02000000" "0096")
    assert theirs(DecimalObject, D("100")) == encode_value(D("1E+2"))
    assert encode_value(D("100"))[1:5] == b"\x00\x00\x00\x00"


def test_d2_negative_zero() -> None:
    assert theirs(DecimalObject, D("-0"))[-1] == 0x80
    assert encode_value(D("-0"))[-1] == 0x00


def test_d3_dates() -> None:
    far = dt.datetime(6428, 2, 5, 5, 54, 0, 947000, tzinfo=UTC)
    assert encode_value(far) == b"\x0b" + struct.pack("<q", _ms(far))
    assert theirs(DateObject, far) == b"\x0b" + struct.pack("<q", _ms(far) - 1)
    assert theirs(TimeObject, dt.timedelta(milliseconds=1001)) == encode_value(Time(1000))
    assert encode_value(dt.timedelta(milliseconds=1001)) == encode_value(Time(1001))
    before = dt.datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC)
    assert encode_value(before) == b"\x0b" + struct.pack("<q", -1)  # floor
    assert theirs(DateObject, before) == b"\x0b" + struct.pack("<q", 0)  # toward zero


def _object_pair(field_name: str, type_name: str = "diff.Names") -> tuple[bytes, bytes]:
    cls = _class(type_name, OrderedDict([(field_name, IntObject)]))
    their = their_object(cls(**{field_name: 1}), True)
    ours = encode_value(BinaryObject(type_id(type_name), {field_name: Typed(T.INT, 1)},
                                     type_name), ctx=CodecContext(Registry()))
    return their, ours


def test_d4_offset_255() -> None:
    schema = OrderedDict([("pad", ByteArrayObject), ("last", ByteObject)])
    cls = _class("diff.Edge", schema)
    pad = bytes(255 - 24 - 5)
    their = their_object(cls(pad=pad, last=1), True)
    ours = encode_value(BinaryObject(type_id("diff.Edge"),
                                     {"pad": pad, "last": Typed(T.BYTE, 1)}, "diff.Edge"),
                        ctx=CodecContext(Registry()))
    assert _last_offset(ours) == 255
    assert ours[2] & 0x18 == 0x08 and their[2] & 0x18 == 0x10


def test_d5_empty_object() -> None:
    # pyignite's writer sets HAS_SCHEMA | OFFSET_ONE_BYTE unconditionally (binary.py
    # write_header/write_footer); 0.6.1 cannot even finish one in a bare stream.
    with pytest.raises(BufferError):
        their_object(_class("diff.Empty", OrderedDict())(), True)
    ours = encode_value(BinaryObject(type_id("diff.Empty"), {}, "diff.Empty"),
                        ctx=CodecContext(Registry()))
    assert struct.unpack_from("<hiiiii", ours, 2) == (0x01 | 0x20, type_id("diff.Empty"), 1,
                                                      24, 0, 0)


def test_d6_non_ascii_names() -> None:
    from pyignite.utils import entity_id

    for name in ("İd", "ΑΣ", "\U00010400x"):
        assert entity_id(name) != field_id(name)
    assert entity_id("plainName") == field_id("plainName")


def test_d7_nul_in_strings() -> None:
    assert theirs(String, "a\x00b") == bytes.fromhex("0903000000" "610000")
    assert encode_value("a\x00b") == bytes.fromhex("0903000000" "610062")


def test_d8_d9_lists_and_dicts() -> None:
    assert theirs(AnyDataObject, [1, True]) == encode_value([1, 1])
    with pytest.raises(LocalProtocolError):
        encode_value([1, True])
    assert theirs(AnyDataObject, {"k": 1}) == encode_value(["k"])
    with pytest.raises(LocalProtocolError):
        encode_value({"k": 1})
    assert encode_value({"k": 1}, T.MAP) == encode_value(Map(1, [("k", 1)]))


def test_d10_timestamp_nanos() -> None:
    moment = dt.datetime(2020, 1, 1, tzinfo=UTC)
    assert theirs(TimestampObject, (moment, 2_000_000))[-4:] == struct.pack("<i", 2_000_000)
    with pytest.raises(LocalProtocolError):
        encode_value(Timestamp(_ms(moment), 2_000_000))


def test_uuid_byte_order_agrees() -> None:
    u = uuid.UUID("8f1c2a3b-4d5e-4f60-8172-93a4b5c6d7e8")
    assert encode_value(u) == theirs(UUIDObject, u)
