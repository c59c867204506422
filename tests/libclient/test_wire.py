"""libclient.wire: pyignite's automatic type mapping and hints -> IPC values -> back, through
the real msgpack schema (protocol.ipc), compared with what pyignite itself decides."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections import OrderedDict

import pytest
from pyignite.datatypes.internal import AnyDataObject

from libclient import datatypes as dt
from libclient.binary import GenericObjectMeta, Registry
from libclient.wire import Codec, NeedBinaryType
from protocol import ipc
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

UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")
NOW = datetime.datetime(2024, 5, 17, 13, 45, 12, 345000)


@pytest.fixture
def codec():
    return Codec(Registry())


def roundtrip(codec: Codec, value, hint=None):
    """encode -> msgpack frame -> unpack -> decode, as a value makes the trip to a broker that
    stores it and hands it back."""
    return codec.decode(ipc.unpack(ipc.pack(codec.encode(value, hint))))


AUTO = [
    0, 1, -1, 2**63 - 1, -(2**63), 1.5, -0.0, "", "zürich ☃ 𝄞", b"", b"\x00\xff", True, False,
    None, UUID, decimal.Decimal("3.14159"), decimal.Decimal("-1E+10"),
    [1, 2, 3], [1.5, 2.5], ["a", None, "c"], [True, False], [UUID, None],
    [decimal.Decimal("1.1")],
]


@pytest.mark.parametrize("value", AUTO, ids=repr)
def test_auto_mapped_values_come_back_equal(codec, value):
    assert roundtrip(codec, value) == value


def _pyignite_code(value):
    return AnyDataObject.map_python_type(value).type_code[0]


def _our_code(codec, value):
    wire = codec.encode(value)
    if isinstance(wire, Typed):
        return wire.type_code
    return {int: 4, float: 6, str: 9, bytes: 12, bool: 8, uuid.UUID: 10, decimal.Decimal: 30,
            Date: 11, Time: 36, Collection: 24, Map: 25}[type(wire)]


@pytest.mark.parametrize("value", [
    1, 1.5, "s", b"b", bytearray(b"b"), True, UUID, decimal.Decimal(2), NOW, NOW.date(),
    datetime.timedelta(seconds=5), [1, 2], [1.5], ["a", None], [True], [UUID], [NOW],
    [decimal.Decimal(1)], [datetime.timedelta(1)], (1, [1, "a"]), (2, {"a": 1}), [1, "a"],
    {"a": 1, "b": 2}, (1, 2, 3), {1, 2},
], ids=repr)
@pytest.mark.filterwarnings("ignore:a plain dict")
def test_automatic_mapping_is_pyignites(codec, value):
    assert _our_code(codec, value) == _pyignite_code(value)


@pytest.mark.parametrize("value", [[], [None, None], [1, None], (1, 2.5), object(), 1j,
                                   [True, 1], [("a", dt.CharObject), 1]], ids=repr)
def test_unmappable_values_raise_typeerror_like_pyignite(codec, value):
    with pytest.raises(TypeError):
        AnyDataObject.map_python_type(value)
    with pytest.raises(TypeError):
        codec.encode(value)


def test_dates_times_and_timestamps_have_pyignites_shapes(codec):
    assert roundtrip(codec, NOW) == NOW.replace(microsecond=345000)
    assert roundtrip(codec, NOW.date()) == datetime.datetime(2024, 5, 17)
    assert roundtrip(codec, datetime.timedelta(hours=1, milliseconds=7)) == datetime.timedelta(
        hours=1, milliseconds=7)
    assert roundtrip(codec, (NOW, 999_999), dt.TimestampObject) == (NOW, 999_999)
    assert codec.encode((NOW, 5), dt.TimestampObject) == Timestamp(int(NOW.timestamp() * 1000), 5)
    assert roundtrip(codec, [NOW, None]) == [NOW, None]


def test_collections_maps_and_object_arrays(codec):
    assert roundtrip(codec, (dt.CollectionObject.LINKED_LIST, [1, "2", 3.0])) == (2, [1, "2", 3.0])
    linked = roundtrip(codec, (dt.MapObject.LINKED_HASH_MAP, OrderedDict([(1, "a"), ("k", 2.0)])))
    assert linked == (2, OrderedDict([(1, "a"), ("k", 2.0)]))
    assert type(linked[1]) is dict and list(linked[1]) == [1, "k"]  # as pyignite returns it
    plain = roundtrip(codec, (dt.MapObject.HASH_MAP, {"a": [1, 2]}))
    assert plain == (1, {"a": [1, 2]}) and type(plain[1]) is dict
    assert roundtrip(codec, (-1, [7, "8", 9.0]), dt.ObjectArrayObject) == (-1, [7, "8", 9.0])
    assert codec.encode((-1, [1]), dt.ObjectArrayObject) == ObjectArray(-1, [1])


def test_enums(codec):
    assert roundtrip(codec, (123, 4), dt.EnumObject) == (123, 4)
    assert codec.encode((123, 4), dt.BinaryEnumObject) == Typed(38, EnumValue(123, 4, True))
    assert roundtrip(codec, (123, 4), dt.BinaryEnumObject) == (123, 4)


@pytest.mark.parametrize("hint, value, code", [
    (dt.ByteObject, 7, 1), (dt.ShortObject, 7, 2), (dt.IntObject, 7, 3), (dt.LongObject, 7, 4),
    (dt.FloatObject, 0.5, 5), (dt.DoubleObject, 0.5, 6), (dt.CharObject, "x", 7),
    (dt.BoolObject, True, 8), (dt.String, "s", 9), (dt.ByteArrayObject, [1, 255, -1], 12),
    (dt.ShortArrayObject, [1], 13), (dt.IntArrayObject, [1, 2], 14), (dt.LongArrayObject, [1], 15),
    (dt.FloatArrayObject, [0.5], 16), (dt.DoubleArrayObject, [0.5], 17),
    (dt.CharArrayObject, ["a"], 18), (dt.BoolArrayObject, [True], 19),
    (dt.StringArrayObject, ["a"], 20), (dt.UUIDArrayObject, [UUID], 21),
    (dt.DateArrayObject, [NOW], 22), (dt.DecimalArrayObject, [decimal.Decimal(1)], 31),
    (dt.TimestampArrayObject, [(NOW, 1)], 34), (dt.TimeArrayObject, [datetime.timedelta(1)], 37),
])
def test_hints_send_pyignites_type_code(codec, hint, value, code):
    wire = codec.encode(value, hint)
    assert isinstance(wire, Typed) and wire.type_code == code == hint.type_code[0]
    ipc.unpack(ipc.pack(wire))  # and msgpack can carry it


def test_byte_arrays_accept_bytes_and_signed_ints(codec):
    assert codec.encode([1, 255, -1], dt.ByteArrayObject) == Typed(12, b"\x01\xff\xff")
    assert codec.encode(bytearray(b"ab"), dt.ByteArrayObject) == Typed(12, b"ab")
    assert roundtrip(codec, b"ab", dt.ByteArrayObject) == b"ab"


def test_none_with_any_hint_is_null(codec):
    assert codec.encode(None, dt.IntObject) is None
    assert codec.encode("anything", dt.Null) is None


def test_hinted_tuples(codec):
    assert codec.encode(("a", dt.CharObject)) == Typed(7, "a")
    assert codec.encode((1, dt.IntObject)) == Typed(3, 1)


def test_not_a_hint_is_a_parameter_error(codec):
    from libclient.exceptions import ParameterError

    with pytest.raises(ParameterError):
        codec.encode(1, int)
    with pytest.raises(ParameterError):
        codec.encode(1, dt.WrappedDataObject)


class Person(metaclass=GenericObjectMeta, type_name="test.Person", schema=OrderedDict([
    ("name", dt.String), ("age", dt.IntObject), ("born", dt.DateObject),
    ("tags", dt.StringArrayObject), ("boss", dt.BinaryObject),
])):
    pass


def test_complex_objects_go_with_typed_fields_and_come_back_as_the_class(codec):
    boss = Person(name="B", age=60)
    written: list[type] = []
    wire = codec.encode(Person(name="A", age=30, born=NOW, tags=["x"], boss=boss), None, written)
    assert written == [Person, Person]
    assert isinstance(wire, BinaryObject) and wire.type_name == "test.Person"
    assert wire.type_id == Person.type_id
    assert wire.fields["age"] == Typed(3, 30)
    assert isinstance(wire.fields["boss"], BinaryObject)
    with pytest.raises(NeedBinaryType):
        codec.decode(ipc.unpack(ipc.pack(wire)))
    codec.registry.add(Person)
    back = codec.decode(ipc.unpack(ipc.pack(wire)))
    assert back == Person(name="A", age=30, born=NOW.replace(microsecond=345000), tags=["x"],
                          boss=Person(name="B", age=60))


class Natural(metaclass=GenericObjectMeta, type_name="test.Natural", schema=OrderedDict([
    ("s", dt.String), ("n", dt.LongObject), ("d", dt.DoubleObject), ("b", dt.BoolObject),
    ("i", dt.IntObject), ("f", dt.FloatObject),
])):
    pass


def test_fields_of_their_natural_msgpack_type_go_bare_the_rest_typed(codec):
    wire = codec.encode(Natural(s="x", n=5, d=0.5, b=True, i=3, f=0.5))
    # String/str, Long/int, Double/float, Bool/bool: what the broker infers anyway
    assert wire.fields == {"s": "x", "n": 5, "d": 0.5, "b": True, "i": Typed(3, 3),
                           "f": Typed(5, 0.5)}
    assert [type(v) for v in list(wire.fields.values())[:4]] == [str, int, float, bool]
    # not the natural type: typed as before (a bool in a Long field is a Long 1)
    assert codec.encode(Natural(n=True, d=2)).fields["n"] == Typed(4, True)
    assert codec.encode(Natural(n=True, d=2)).fields["d"] == Typed(6, 2)
    assert codec.encode(Natural(**dict.fromkeys("sndbif"))).fields == dict.fromkeys("sndbif")
    assert codec.encode(Natural()).fields == {"s": None, "n": 0, "d": 0.0, "b": False,
                                              "i": Typed(3, 0), "f": Typed(5, 0.0)}


def test_an_objects_encoding_plan_is_made_once_per_class_and_schema(codec):
    cls = GenericObjectMeta("Tmp", (), {}, type_name="test.Tmp",
                            schema=OrderedDict([("a", dt.String)]))
    codec.encode(cls(a="x"))
    plan = codec._class_plan(cls)
    assert codec._class_plan(cls) is plan
    assert codec.ids(cls) == (cls.type_id, cls.schema_id)
    cls._schema = OrderedDict([("a", dt.IntObject), ("b", dt.String)])  # replaced: a new plan
    assert codec.encode(cls(a=1, b="y")).fields == {"a": Typed(3, 1), "b": "y"}
    assert codec.ids(cls) == (cls.type_id, cls.schema_id) != (plan[2], plan[3])


def test_unknown_objects_get_a_class_from_their_fields(codec):
    value = BinaryObject(1234, {"ID": 7, "NAME": "x"}, type_name="SQL_PUBLIC_CITY_abc_KEY")
    cls = codec.adopt(value)
    assert cls.__name__ == "SQL_PUBLIC_CITY_abc_KEY" and cls.type_id == 1234
    obj = codec.decode(value)
    assert (obj.ID, obj.NAME, obj.version) == (7, "x", 1)
    assert list(cls.schema) == ["ID", "NAME"]


def test_cache_config_roundtrip(codec):
    from libclient.datatypes import prop_codes as p

    config = {p.PROP_NAME: "c", p.PROP_EXPIRY_POLICY: dt.ExpiryPolicy(create=1000),
              p.PROP_QUERY_ENTITIES: [{"table_name": "T", "query_fields": [
                  {"name": "A", "type_name": "java.lang.Integer", "default_value": 5}]}]}
    wire = codec.encode_config(config)
    assert wire[p.PROP_EXPIRY_POLICY] == [1000, -2, -2]
    back = codec.decode_config(ipc.unpack(ipc.pack(wire)))
    assert back[p.PROP_EXPIRY_POLICY] == dt.ExpiryPolicy(create=1000)
    assert back[p.PROP_QUERY_ENTITIES][0]["query_fields"][0]["default_value"] == 5


def test_int_arrays_take_bools_as_pyignite_does(codec):
    assert codec.encode([1, True]) == Typed(15, [1, 1])


def test_a_plain_dict_loses_its_values_as_in_pyignite_with_a_warning(codec):
    with pytest.warns(UserWarning, match="array of its keys"):
        assert codec.encode({"a": 1, "b": 2}) == Typed(20, ["a", "b"])
