"""libclient.utils, libclient.constants and the hints' ``hashcode`` helpers give pyignite's
results wherever pyignite computes what Ignite does, and Ignite's where pyignite does not
(those inputs are listed with the Java value)."""

from __future__ import annotations

import asyncio
import ctypes
import datetime
import decimal
import uuid
from collections import OrderedDict

import pyignite
import pyignite.datatypes as pyd
import pyignite.utils as pyu
import pytest

import libclient
import libclient.datatypes as lcd
import libclient.utils as lcu
from libclient.exceptions import ParameterError

STRINGS = ["", "a", "abc", "Person", "CamelCase_name", "é", "日本", "x" * 200]
BYTES = [b"", b"\x01\xff", bytearray(b"abc"), memoryview(b"\x80\x7f\x00"), bytes(range(256))]
SCHEMAS = [None, {}, 5, {"A": 1, "b": 2}, OrderedDict(x=1), {"abc": 1, "def": 2, "ghi": 3}]


@pytest.mark.parametrize("data", [*STRINGS, *BYTES, None], ids=repr)
def test_hashcode_like_pyignite(data):
    assert lcu.hashcode(data) == pyu.hashcode(data)


@pytest.mark.parametrize("name", [*STRINGS, 17], ids=repr)
def test_ids_like_pyignite(name):
    assert lcu.entity_id(name) == pyu.entity_id(name)
    assert lcu.cache_id(name) == pyu.cache_id(name)


@pytest.mark.parametrize("schema", SCHEMAS, ids=repr)
def test_schema_id_like_pyignite(schema):
    assert lcu.schema_id(schema) == pyu.schema_id(schema)


def test_where_pyignite_is_not_java_ignite_wins():
    # Java hashes UTF-16 units (pyignite: code points) and lower-cases char by char.
    assert lcu.hashcode("\U0001F600") == 1772899 != pyu.hashcode("\U0001F600")
    assert lcu.entity_id("\u0130x") == lcu.entity_id("ix")
    # Both write 1.50 as 1.5 (31*15 + 1); pyignite rounds more than 28 digits, Ignite keeps
    # them: BigDecimal(2**100).hashCode() is 31 * BigInteger(mag=[16, 0, 0, 0]).hashCode() + 0.
    assert lcu.decimal_hashcode(decimal.Decimal("1.50")) == 466
    assert lcu.decimal_hashcode(decimal.Decimal(2**100)) == 31 * (((16 * 31) * 31) * 31)
    # Long.hashCode folds to a signed 32-bit int (pyignite leaves it unfolded).
    assert lcu.datetime_hashcode(10**12) == -727379736
    assert pyu.datetime_hashcode(10**12) == 3567587560


@pytest.mark.parametrize("value", ["0", "1.5", "-3.25", "1E+3", "7", "-0.001", "12.50",
                                   "100", "0.00", "-7.100", "1234567890123456789012345678"])
def test_decimal_hashcode_like_pyignite(value):
    assert lcu.decimal_hashcode(decimal.Decimal(value)) == pyu.decimal_hashcode(
        decimal.Decimal(value))


@pytest.mark.parametrize("value", ["12.50", "1.5", "-0.0100", "100", "0.00", "1E+3", "-5"])
def test_decimals_are_written_normalised_as_pyignite_writes_them(value):
    from pyignite.datatypes import DecimalObject
    from pyignite.stream import BinaryStream

    from libclient.wire import Codec
    from protocol.binary.codec import encode_value

    with BinaryStream(pyignite.Client()) as stream:
        DecimalObject.from_python(stream, decimal.Decimal(value))
        theirs = stream.getvalue()
    ours = Codec(libclient.binary.Registry()).encode(decimal.Decimal(value))
    assert bytes(encode_value(ours)) == theirs
    assert bytes(encode_value(Codec(libclient.binary.Registry()).encode(
        decimal.Decimal(value), lcd.DecimalObject))) == theirs


@pytest.mark.parametrize("ms", [0, 1234, -5, 2**31 - 1])
def test_datetime_hashcode_like_pyignite_in_int_range(ms):
    assert lcu.datetime_hashcode(ms) == pyu.datetime_hashcode(ms)


def test_small_helpers_like_pyignite():
    for v in (-1, 0, 1, 2, 3, 64, 65):
        assert lcu.is_pow2(v) == pyu.is_pow2(v)
        assert lcu.int_overflow(v * 2**31) == pyu.int_overflow(v * 2**31)
        assert lcu.unsigned(-v) == pyu.unsigned(-v)
        assert lcu.unsigned(-v, ctypes.c_ulonglong) == pyu.unsigned(-v, ctypes.c_ulonglong)
    for v in ([], "ab", 5, None, iter(())):
        assert lcu.is_iterable(v) == pyu.is_iterable(v)
    assert lcu.is_hinted((5, lcd.IntObject)) and not lcu.is_hinted((5, int))
    assert lcu.capitalize("aBc") == pyu.capitalize("aBc") == "ABc"
    assert lcu.process_delimiter("a_b_c", "_") == pyu.process_delimiter("a_b_c", "_")
    assert lcu.LONG_MASK == pyu.LONG_MASK and lcu.DIGITS_PER_INT == pyu.DIGITS_PER_INT


def test_deprecated_warns_like_pyignite():
    @lcu.deprecated("1.0", "because")
    def f(x):
        return x + 1

    with pytest.warns(DeprecationWarning, match="Deprecated since 1.0. The reason: because"):
        assert f(1) == 2


def _person(meta, hints):
    return meta("Person", (), {}, type_name="Person", schema=OrderedDict(
        [("name", hints.String), ("age", hints.IntObject), ("id", hints.LongObject)]))


def test_is_binary_and_get_field_by_id():
    ours = _person(libclient.GenericObjectMeta, lcd)(name="x", age=3)
    theirs = _person(pyignite.GenericObjectMeta, pyd)(name="x", age=3)
    assert lcu.is_binary(ours) and pyu.is_binary(theirs) and not lcu.is_binary(5)
    value, hint = lcu.get_field_by_id(ours, lcu.entity_id("age"))
    assert (value, hint.__name__) == (3, pyu.get_field_by_id(theirs, pyu.entity_id("age"))[1]
                                       .__name__) == (3, "IntObject")
    assert lcu.get_field_by_id(ours, 12345) is None


HINTED = [
    ("ByteObject", -5), ("ShortObject", 300), ("IntObject", -7), ("LongObject", 2**40 + 3),
    ("FloatObject", 1.5), ("DoubleObject", -2.25), ("CharObject", "a"), ("BoolObject", True),
    ("BoolObject", False), ("String", "hello"), ("UUIDObject", uuid.UUID(int=12345678901234567)),
    ("DecimalObject", decimal.Decimal("-3.25")),
    ("TimestampObject", (datetime.datetime(2020, 1, 1, 12), 5)),
    ("DateObject", datetime.datetime(2021, 6, 1)), ("TimeObject", datetime.timedelta(seconds=5)),
    ("Int", 5), ("IntArrayObject", [1, 2]), ("MapObject", (1, {})),
]


@pytest.mark.parametrize("hint, value", HINTED, ids=lambda v: repr(v)[:20])
def test_hint_hashcode_like_pyignite(hint, value):
    # pyignite leaves 64-bit hashes (Long, Date, Timestamp, Time) unfolded: Java folds them.
    theirs = pyu.int_overflow(getattr(pyd, hint).hashcode(value))
    assert getattr(lcd, hint).hashcode(value) == theirs


def test_hint_hashcode_folds_longs_as_java():
    assert lcd.LongObject.hashcode(-1) == 0  # pyignite: -4294967296
    with pytest.raises(ParameterError):
        lcd.IntObject.hashcode("not a number")


def test_hashcode_async():
    assert asyncio.run(lcd.String.hashcode_async("abc")) == pyu.hashcode("abc")
    assert asyncio.run(lcd.Null.hashcode_async(None)) == 0


def test_binary_object_hashcode_like_pyignite():
    ours = _person(libclient.GenericObjectMeta, lcd)(name="Ann", age=30, id=2**40)
    theirs = _person(pyignite.GenericObjectMeta, pyd)(name="Ann", age=30, id=2**40)
    # without a client, the hash an object carries (none for a new object)
    assert lcd.BinaryObject.hashcode(ours) is None is pyd.BinaryObject.hashcode(theirs)
    expected = pyd.BinaryObject.hashcode(theirs, client=pyignite.Client())
    assert lcd.BinaryObject.hashcode(ours, client=libclient.Client(broker="ipc:///x")) == expected


def test_structs_describe_pyignites_layouts():
    import pyignite.datatypes.binary as pyb

    import libclient.datatypes.binary as lcb

    for name in ("binary_fields_struct", "enum_struct", "schema_fields_struct", "schema_struct"):
        theirs, ours = getattr(pyb, name), getattr(lcb, name)
        assert [f for f, _ in ours.following] == [f for f, _ in theirs.following]
    assert [f for f, _ in lcb.body_struct.fields] == [f for f, _ in pyb.body_struct.fields]
    assert lcd.tc_map(b"\x03") is lcd.IntObject and pyd.tc_map(b"\x03") is pyd.IntObject
