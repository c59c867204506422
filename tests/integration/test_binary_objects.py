"""Complex objects through the broker: a worker's object is registered once and readable by
pyignite; objects the server built from SQL reach workers as type name + fields."""

from __future__ import annotations

import uuid
from collections import OrderedDict

import pytest
from pyignite import Client as PyigniteClient
from pyignite import GenericObjectMeta
from pyignite.datatypes import IntObject, String

from broker.devcluster.brokerproc import running_broker
from protocol.binary.values import BinaryObject
from protocol.hashing import type_id
from tests.integration.rawipc import Raw

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory):
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("objects")) as proc:
        yield proc


@pytest.fixture
def raw(broker):
    client = Raw(broker.endpoint)
    yield client
    client.close()


@pytest.fixture
def direct(ignite_node):
    client = PyigniteClient()
    client.connect(*ignite_node.addresses[0])
    yield client
    client.close()


def test_worker_object_is_registered_once_and_read_by_pyignite(raw, direct, broker):
    type_name = f"Person{uuid.uuid4().hex[:6]}"
    cache = f"objects-{uuid.uuid4().hex[:6]}"
    raw.call("cache_get_or_create", name=cache)
    person = BinaryObject(type_id(type_name), {"name": "Ada", "age": 36}, type_name=type_name)
    raw.call("cache_put", cache=cache, key=1, value=person)
    raw.call("cache_put", cache=cache, key=2, value=person)  # same schema: no new PUT
    assert broker.log().count("binary_type_registered") == 1

    back = raw.call("cache_get", cache=cache, key=1)
    assert back.type_name == type_name and back.fields == {"name": "Ada", "age": 36}

    class Person(metaclass=GenericObjectMeta, type_name=type_name,
                 schema=OrderedDict([("name", String), ("age", IntObject)])):
        pass

    theirs = direct.get_cache(cache).get(1)
    assert (theirs.name, theirs.age) == ("Ada", 36)
    described = raw.call("binary_type_get", type=type_name)
    assert described["type_name"] == type_name
    assert sorted(f[0] for f in described["fields"]) == ["age", "name"]


def test_sql_rows_reach_workers_as_type_name_and_fields(raw):
    table = f"CITY{uuid.uuid4().hex[:6]}".upper()
    value_type = f"City{uuid.uuid4().hex[:6]}"
    raw.call("sql", schema="PUBLIC", query=f"CREATE TABLE {table} (id INT PRIMARY KEY, "
             f"name VARCHAR, population BIGINT) WITH \"VALUE_TYPE={value_type}\"")
    raw.call("sql", schema="PUBLIC", query=f"INSERT INTO {table} VALUES (?, ?, ?)",
             args=[1, "Zurich", 421878])
    page = raw.call("scan", cache=f"SQL_PUBLIC_{table}", page_size=10)
    [[key, value]] = page["rows"]
    assert key == 1
    assert value.type_name == value_type
    assert value.fields == {"NAME": "Zurich", "POPULATION": 421878}


def test_registering_types_and_enums(raw):
    name = f"Shape{uuid.uuid4().hex[:6]}"
    described = raw.call("binary_type_put", type_name=name, is_enum=True,
                         schema=[["CIRCLE", 0], ["SQUARE", 1]])
    assert described["is_enum"] and described["enum_values"] == [["CIRCLE", 0], ["SQUARE", 1]]
    assert raw.call("binary_type_get", type=f"NoSuch{uuid.uuid4().hex[:6]}") is None
