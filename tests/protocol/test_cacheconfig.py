"""Cache configuration: the 1053/1054 property list, the 1055 struct, pyignite as an oracle."""

from __future__ import annotations

import contextlib
import dataclasses
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyignite import Client as PyClient
from pyignite.connection.protocol_context import ProtocolContext
from pyignite.datatypes.cache_config import get_cache_config_struct
from pyignite.datatypes.cache_properties import prop_map
from pyignite.datatypes.expiry_policy import ExpiryPolicy as PyExpiryPolicy
from pyignite.stream import BinaryStream

from protocol import LocalProtocolError, RemoteProtocolError, ops
from protocol.cacheconfig import (
    CacheKeyConfiguration,
    ExpiryPolicy,
    Prop,
    QueryEntity,
    QueryField,
    QueryFieldAlias,
    QueryIndex,
    QueryIndexField,
    build_cache_config,
    parse_cache_config,
)
from tests.protocol.capture_ops import ReplayChecks, full_config, iter_exchanges
from tests.protocol.protocol_helpers import ignite_str

V110, V150, V170 = (1, 1, 0), (1, 5, 0), (1, 7, 0)


def h(code: int) -> bytes:
    return struct.pack("<h", code)


def i32(n: int) -> bytes:
    return struct.pack("<i", n)


def s(value: str | None) -> bytes:
    return ignite_str(value)


ENTITY = QueryEntity(
    "java.lang.Integer", "P", "T", "id", None,
    (QueryField("id", "java.lang.Integer", True, False, None, 5, 0),),
    (QueryFieldAlias("id", "ID"),),
    (QueryIndex("IDX", 0, 10, (QueryIndexField("id", True),)),),
)


def entity_bytes(precision: bool) -> bytes:
    field = s("id") + s("java.lang.Integer") + b"\x01\x00" + b"\x65"
    if precision:
        field += i32(5) + i32(0)
    return (s("java.lang.Integer") + s("P") + s("T") + s("id") + s(None)
            + i32(1) + field
            + i32(1) + s("id") + s("ID")
            + i32(1) + s("IDX") + b"\x00" + i32(10) + i32(1) + s("id") + b"\x01")


def with_length(props: bytes, count: int) -> bytes:
    body = h(count) + props
    return i32(len(body)) + body


# -- building -----------------------------------------------------------------------------------


def test_scalar_properties_in_mapping_order() -> None:
    config = {Prop.NAME: "c", Prop.CACHE_MODE: 2, Prop.COPY_ON_READ: True,
              Prop.REBALANCE_DELAY: 5, Prop.GROUP_NAME: None}
    expected = (h(0) + s("c") + h(1) + i32(2) + h(5) + b"\x01" + h(301)
                + struct.pack("<q", 5) + h(400) + b"\x65")
    assert build_cache_config(config, version=V170) == with_length(expected, 5)


@pytest.mark.parametrize(("version", "precision"), [(V170, True), (V150, True), (V110, False)])
def test_query_entities_by_version(version: tuple[int, int, int], precision: bool) -> None:
    body = build_cache_config({Prop.NAME: "c", Prop.QUERY_ENTITIES: [ENTITY]}, version=version)
    expected = h(0) + s("c") + h(200) + i32(1) + entity_bytes(precision)
    assert body == with_length(expected, 2)


def test_pyignite_shaped_dicts_build_the_same_bytes() -> None:
    as_dict = {
        "key_type_name": "java.lang.Integer", "value_type_name": "P", "table_name": "T",
        "key_field_name": "id", "value_field_name": None,
        "query_fields": [{"name": "id", "type_name": "java.lang.Integer", "is_key_field": True,
                          "is_notnull_constraint_field": False, "default_value": None,
                          "precision": 5, "scale": 0}],
        "field_name_aliases": [{"field_name": "id", "alias": "ID"}],
        "query_indexes": [{"index_name": "IDX", "index_type": 0, "inline_size": 10,
                           "fields": [{"name": "id", "is_descending": True}]}],
    }
    config = {Prop.NAME: "c", Prop.QUERY_ENTITIES: [as_dict],
              Prop.CACHE_KEY_CONFIGURATION: [{"type_name": "K", "affinity_key_field_name": "a"}],
              Prop.EXPIRY_POLICY: {"create": 1, "update": 2, "access": 3}}
    typed = {Prop.NAME: "c", Prop.QUERY_ENTITIES: [ENTITY],
             Prop.CACHE_KEY_CONFIGURATION: [CacheKeyConfiguration("K", "a")],
             Prop.EXPIRY_POLICY: ExpiryPolicy(1, 2, 3)}
    assert build_cache_config(config, version=V170) == build_cache_config(typed, version=V170)
    tuples = {**typed, Prop.CACHE_KEY_CONFIGURATION: [("K", "a")],
              Prop.EXPIRY_POLICY: (1, 2, 3)}
    assert build_cache_config(tuples, version=V170) == build_cache_config(typed, version=V170)


def test_key_configuration_and_expiry() -> None:
    config = {Prop.NAME: "c", Prop.CACHE_KEY_CONFIGURATION: [CacheKeyConfiguration("K", "a")],
              Prop.EXPIRY_POLICY: ExpiryPolicy(1000, -2, -1)}
    expected = (h(0) + s("c") + h(401) + i32(1) + s("K") + s("a")
                + h(407) + b"\x01" + struct.pack("<qqq", 1000, -2, -1))
    assert build_cache_config(config, version=V170) == with_length(expected, 3)
    no_policy = build_cache_config({Prop.NAME: "c", Prop.EXPIRY_POLICY: None}, version=(1, 6, 0))
    assert no_policy == with_length(h(0) + s("c") + h(407) + b"\x00", 2)


def test_ops_wrappers_use_the_same_layout() -> None:
    config = {Prop.NAME: "c", Prop.BACKUPS_NUMBER: 2}
    body = build_cache_config(config, version=V170)
    assert ops.cache_create_with_configuration(config, version=V170) == body
    assert ops.cache_get_or_create_with_configuration(config, version=V170) == body


@pytest.mark.parametrize(
    ("config", "version"),
    [
        ({Prop.BACKUPS_NUMBER: 1}, V170),
        ({Prop.NAME: None}, V170),
        ({Prop.NAME: "c", 999: 1}, V170),
        ({Prop.NAME: "c", Prop.BACKUPS_NUMBER: "1"}, V170),
        ({Prop.NAME: "c", Prop.BACKUPS_NUMBER: True}, V170),
        ({Prop.NAME: "c", Prop.COPY_ON_READ: 1}, V170),
        ({Prop.NAME: "c", Prop.REBALANCE_DELAY: 2**63}, V170),
        ({Prop.NAME: "c", Prop.SQL_SCHEMA: 5}, V170),
        ({Prop.NAME: "c", Prop.EXPIRY_POLICY: ExpiryPolicy()}, V150),
        ({Prop.NAME: "c", Prop.EXPIRY_POLICY: "soon"}, V170),
        ({Prop.NAME: "c", Prop.QUERY_ENTITIES: [{"bogus": 1}]}, V170),
        ({Prop.NAME: "c", Prop.QUERY_ENTITIES: [5]}, V170),
        ({Prop.NAME: "c", Prop.CACHE_KEY_CONFIGURATION: [("K", "a", "extra")]}, V170),
    ],
    ids=["no-name", "null-name", "unknown-code", "str-for-int", "bool-for-int",
         "int-for-bool", "long-overflow", "int-for-str", "expiry-before-1.6", "expiry-str",
         "entity-bogus-key", "entity-int", "key-config-long"],
)
def test_invalid_configurations(config: dict[int, Any], version: tuple[int, int, int]) -> None:
    with pytest.raises(LocalProtocolError):
        build_cache_config(config, version=version)


def test_not_a_mapping() -> None:
    with pytest.raises(LocalProtocolError):
        build_cache_config([(0, "c")], version=V170)  # type: ignore[arg-type]


# -- pyignite as an oracle for the request ----------------------------------------------------


def _pyignite_value(code: int, value: Any) -> Any:
    if code == Prop.EXPIRY_POLICY:
        return PyExpiryPolicy(create=value.create, update=value.update, access=value.access)
    if code in (Prop.QUERY_ENTITIES, Prop.CACHE_KEY_CONFIGURATION):
        return [dataclasses.asdict(item) for item in value]
    return value


def test_request_matches_pyignite() -> None:
    config = full_config()
    ours = build_cache_config(config, version=V170)
    with BinaryStream(PyClient()) as stream:
        for code, value in config.items():
            prop_map(code).from_python(stream, _pyignite_value(code, value))
        theirs = stream.getvalue()
    assert ours[6:].hex() == theirs.hex()  # pyignite frames the length and count itself
    assert struct.unpack_from("<ih", ours) == (len(ours) - 4, len(config))


# -- parsing ------------------------------------------------------------------------------------

RESPONSE_ORDER_BODY = (
    i32(1) + i32(2) + i32(2) + b"\x01" + s("default") + b"\x01" + b"\x00" + s(None)
    + struct.pack("<q", 7) + i32(500) + i32(1024) + s("c") + b"\x00" + i32(4) + i32(0)
    + i32(1) + b"\x01" + i32(512) + struct.pack("<q", 3) + struct.pack("<q", 0) + i32(1)
    + i32(0) + struct.pack("<q", 0) + struct.pack("<q", 10_000) + b"\x00" + i32(-1) + s("S")
    + i32(2)
)


def config_body(version: tuple[int, int, int], extra: bytes = b"") -> bytes:
    body = RESPONSE_ORDER_BODY + i32(1) + s("K") + s("a") + i32(1) + entity_bytes(
        version >= (1, 2, 0))
    if version >= (1, 6, 0):
        body += b"\x01" + struct.pack("<qqq", 1, 2, 3)
    body += extra
    return i32(len(body)) + body


@pytest.mark.parametrize("version", [V170, V150, V110])
def test_parse_fixed_order(version: tuple[int, int, int]) -> None:
    config = parse_cache_config(config_body(version), version=version)
    assert config[Prop.CACHE_ATOMICITY_MODE] == 1
    assert config[Prop.DATA_REGION_NAME] == "default"
    assert config[Prop.DEFAULT_LOCK_TIMEOUT] == 7
    assert config[Prop.NAME] == "c"
    assert config[Prop.SQL_SCHEMA] == "S"
    assert config[Prop.WRITE_SYNCHRONIZATION_MODE] == 2
    assert config[Prop.CACHE_KEY_CONFIGURATION] == [CacheKeyConfiguration("K", "a")]
    entity = ENTITY if version >= (1, 2, 0) else dataclasses.replace(
        ENTITY, query_fields=(QueryField("id", "java.lang.Integer", True, False),))
    assert config[Prop.QUERY_ENTITIES] == [entity]
    if version >= (1, 6, 0):
        assert config[Prop.EXPIRY_POLICY] == ExpiryPolicy(1, 2, 3)
        assert len(config) == len(Prop)
    else:
        assert Prop.EXPIRY_POLICY not in config
        assert len(config) == len(Prop) - 1
    assert ops.parse_cache_get_configuration(memoryview(config_body(version)),
                                             version=version) == config


def test_bytes_inside_the_length_are_skipped_bytes_after_it_refused() -> None:
    newer = config_body(V170, extra=b"\x01\x02\x03")
    assert parse_cache_config(newer, version=V170) == parse_cache_config(config_body(V170),
                                                                          version=V170)
    with pytest.raises(RemoteProtocolError):
        parse_cache_config(config_body(V170) + b"\x00", version=V170)


def test_parse_errors() -> None:
    body = config_body(V170)
    too_short = i32(len(body) - 5) + body[4:]
    for bad in (b"", i32(-1), i32(10) + bytes(10), too_short, body[:-1]):
        with pytest.raises(RemoteProtocolError):
            parse_cache_config(bad, version=V170)
    # Read as 1.5, a 1.7 body's expiry policy is just bytes inside the length: skipped.
    as_v150 = parse_cache_config(body, version=V150)
    assert Prop.EXPIRY_POLICY not in as_v150
    # Read as 1.7, a 1.5 body is one bool short of the length it declares.
    with pytest.raises(RemoteProtocolError):
        parse_cache_config(config_body(V150), version=V170)


@given(st.binary(max_size=300), st.sampled_from([V110, V150, V170]))
def test_parse_raises_only_remote_protocol_errors(data: bytes,
                                                  version: tuple[int, int, int]) -> None:
    with contextlib.suppress(RemoteProtocolError):
        parse_cache_config(i32(len(data)) + data, version=version)


@given(st.data())
def test_parse_flipped_bytes(data: st.DataObject) -> None:
    body = bytearray(config_body(V170))
    for _ in range(data.draw(st.integers(1, 4))):
        body[data.draw(st.integers(4, len(body) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(RemoteProtocolError):
        parse_cache_config(bytes(body), version=V170)


# -- pyignite as an oracle for the captured responses ------------------------------------------


def _captured_configs() -> list[Any]:
    return [pytest.param(c, e, id=i) for i, c, e in iter_exchanges("ops_cacheconfig")
            if e["op"] == "CACHE_GET_CONFIGURATION" and e["error"] is None
            and tuple(c["version"]) >= (1, 2, 0)]


def _plain(value: Any) -> Any:
    if isinstance(value, ExpiryPolicy | PyExpiryPolicy):
        return (value.create, value.update, value.access)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize(("connection", "exchange"), _captured_configs())
def test_captured_configuration_matches_pyignite(connection: Any, exchange: Any) -> None:
    version = tuple(connection["version"])
    body = bytes.fromhex(exchange["response_hex"])
    ours = parse_cache_config(body, version=version)
    struct_ = get_cache_config_struct(ProtocolContext(version, None))
    with BinaryStream(PyClient(), body) as stream:
        theirs = struct_.to_python(struct_.parse(stream).from_buffer_copy(body))
    theirs.pop("length")
    assert {Prop[k.upper()]: _plain(v) for k, v in theirs.items()} == _plain(ours)


# -- real-node vectors ------------------------------------------------------------------------


class TestCacheConfigVectors(ReplayChecks):
    vectors = "ops_cacheconfig"
