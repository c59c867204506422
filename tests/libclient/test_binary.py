"""GenericObjectMeta and the type/schema ids: the same classes, ids and instance behaviour as
pyignite's (which builds them with attrs)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from pyignite import GenericObjectMeta as PyMeta
from pyignite import datatypes as pyd
from pyignite.client import BaseClient
from pyignite.utils import entity_id as py_entity_id
from pyignite.utils import schema_id as py_schema_id

from libclient import GenericObjectMeta
from libclient import datatypes as lcd
from libclient.binary import (
    Registry,
    entity_id,
    java_hash,
    make_data_class,
    schema_id,
    type_class_name,
)
from libclient.exceptions import ParseError
from protocol.hashing import java_string_hash
from protocol.hashing import schema_id as protocol_schema_id
from protocol.hashing import type_id as protocol_type_id


def _schema(mod):
    return OrderedDict([("first_name", mod.String), ("last_name", mod.String),
                        ("age", mod.IntObject), ("tags", mod.StringArrayObject)])


def _classes():
    class Person(metaclass=GenericObjectMeta, type_name="org.example.Person",
                 schema=_schema(lcd)):
        pass

    class PyPerson(metaclass=PyMeta, type_name="org.example.Person", schema=_schema(pyd)):
        pass

    return Person, PyPerson


@pytest.mark.parametrize("name", ["", "a", "Person", "org.example.Person", "ÜBER", "x" * 300,
                                  "SQL_PUBLIC_CITY_9ac8e17a_2f99_45b7_958e_06da32882e9d"])
def test_ids_match_pyignite_and_java(name):
    assert entity_id(name) == py_entity_id(name)
    assert java_hash(name) == java_string_hash(name)


@pytest.mark.parametrize("name", ["𝄞", "İstanbul", "ΟΔΟΣ", "Straße", "a\u0130b", "ǅ"])
def test_non_ascii_names_hash_like_ignite_not_like_pyignite(name):
    # pyignite lower-cases whole strings and hashes code points; Ignite lower-cases UTF-16
    # units one by one: the stub follows Ignite (as protocol.hashing does).
    assert java_hash(name) == java_string_hash(name)
    assert entity_id(name) == protocol_type_id(name)


def test_schema_ids_match_protocol():
    fields = ["id", "Name", "İ", "𝄞x"]
    assert schema_id(dict.fromkeys(fields)) == protocol_schema_id(
        [protocol_type_id(f) for f in fields])


@pytest.mark.parametrize("fields", [{}, {"a": 1}, {"ID": 1, "NAME": 2}, {"x" * 40: 1, "Ä": 2}])
def test_schema_ids_match_pyignite(fields):
    assert schema_id(fields) == py_schema_id(fields)
    assert schema_id(7) == 7


def test_ids_are_made_of_names_or_int_ids_only():
    assert entity_id(None) is None
    assert entity_id(42) == 42
    with pytest.raises(TypeError, match="a str or an int id, not True"):
        entity_id(True)
    with pytest.raises(TypeError, match="a str or an int id, not None"):
        schema_id({"id": 1, None: 2})


def test_class_properties_match():
    ours, theirs = _classes()
    for attr in ("type_name", "type_id", "schema_id"):
        assert getattr(ours, attr) == getattr(theirs, attr)
    assert list(ours.schema) == list(theirs.schema)
    assert ours.schema is not ours._schema  # a copy, as pyignite's


def test_instances_behave_like_pyignites():
    ours_cls, theirs_cls = _classes()
    ours = ours_cls(first_name="Ivan", age=33)
    theirs = theirs_cls(first_name="Ivan", age=33)
    for attr in ("first_name", "last_name", "age", "tags", "version", "type_id", "schema_id"):
        assert getattr(ours, attr) == getattr(theirs, attr)
    assert repr(ours).replace("Person", "X") == repr(theirs).replace("PyPerson", "X")
    assert ours == ours_cls(first_name="Ivan", age=33)
    assert ours != ours_cls(first_name="Ivan", age=34)
    assert ours_cls("a", "b", 1, [], 2).version == 2  # positional, as attrs' __init__
    with pytest.raises(TypeError):
        hash(ours)
    with pytest.raises(TypeError):
        hash(theirs)
    with pytest.raises(TypeError):
        ours_cls(nickname="x")


def test_bad_field_types_raise_parse_error_like_pyignite():
    with pytest.raises(ParseError):
        class Bad(metaclass=GenericObjectMeta, schema={"x": int}):
            pass
    with pytest.raises(Exception, match="Wrong binary field type"):
        class PyBad(metaclass=PyMeta, schema={"x": int}):
            pass


def test_default_type_name_is_the_class_name():
    class Thing(metaclass=GenericObjectMeta):
        pass

    assert Thing.type_name == "Thing" and Thing.schema == OrderedDict()
    assert Thing().version == 1


def test_subclasses_work_where_pyignite_has_an_mro_error():
    ours, theirs = _classes()
    with pytest.raises(TypeError, match="method resolution"):
        class PyChild(theirs):
            pass

    class Child(ours):  # a new class with its own (empty unless given) schema
        pass

    assert Child.schema == OrderedDict() and Child().version == 1


@pytest.mark.parametrize("name", [
    "org.example.Person", "Outer$Inner", "Scala$", "Lambda$$Lambda$12", "Dot.Net+Inner",
    "SQL_PUBLIC_CITY_9ac8e17a_KEY", "1starts_with_digit", "with-dash",
])
def test_class_names_for_cluster_types_match_pyignite(name):
    assert type_class_name(name) == BaseClient._create_type_name(name)


def test_registry_sync_makes_classes_for_every_schema():
    registry = Registry()
    schemas = [OrderedDict([("a", lcd.IntObject)]), OrderedDict([("a", lcd.IntObject),
                                                                 ("b", lcd.String)])]
    registry.sync(42, {"type_exists": True, "type_name": "t.T", "schemas": schemas})
    classes = registry.schemas(42)
    assert set(classes) == {schema_id(s) for s in schemas}
    cls = classes[schema_id(schemas[1])]
    assert cls.__name__ == "TT" and cls.type_id == 42 and cls.type_name == "t.T"
    registry.sync(42, {"type_exists": False})
    assert registry.schemas(42) == classes


def test_made_classes_keep_the_real_type():
    cls = make_data_class("com.acme.Order", OrderedDict([("id", lcd.LongObject)]))
    assert cls.__name__ == "ComAcmeOrder"
    assert cls.type_name == "com.acme.Order" and cls.type_id == entity_id("com.acme.Order")
